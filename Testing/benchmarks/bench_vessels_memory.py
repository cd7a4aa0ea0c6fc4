"""Where VesselQuant's memory goes: resident memory and allocated bytes per pipeline stage, on one CT.

While ``run_vessel_quant`` runs, a thread reads every 10 ms the process's resident memory (``/proc/self/statm``) and
the bytes glibc's allocator has handed out (``mallinfo2``: in use in the main arena, where a run's volumes live, plus
mapped blocks). Each stage, wrapped for the run, reports its wall time and the largest of both within it. Resident
above allocated is freed memory the process still holds (holes the next arrays did not fit) plus the libraries'
own (about 330 MiB). The run's peak is ``ru_maxrss``, as in ``bench_vessels_speed.py``, which holds the goal.

Linux with glibc 2.33 or later. The sampling costs a few per cent of the run's time.

    PYTHONPATH=VesselQuant:RadiologyAICommon:Testing/benchmarks .venv/bin/python \\
        Testing/benchmarks/bench_vessels_memory.py CT   # a file or a DICOM folder
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import importlib
import os
import resource
import sys
import threading
import time

from bench_vessels_speed import read_ct

STAGES = {
    "VesselQuantLib.pipeline": [
        "segment_lungs",
        "multiscale_vesselness",
        "segment_vessels",
        "find_nodule_like",
        "compute_centerline",
    ],
    "VesselQuantLib.graphcut": [
        "fit_intensity_model",
        "_seed_states",
        "_data_term",
        "_fix_specks_and_islands",
        "_minimum_cut",
        "_remove_specks",
    ],
}
MIB = 2**20


class _MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h)
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


class Sampler(threading.Thread):
    """(time, resident bytes, allocated bytes) every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, interval: float = 0.01):
        super().__init__(daemon=True)
        self.interval, self.samples, self._stop_event = interval, [], threading.Event()
        self._mallinfo2 = ctypes.CDLL(None).mallinfo2
        self._mallinfo2.restype = _MallInfo2
        self._page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        with open("/proc/self/statm", encoding="ascii") as statm:
            while not self._stop_event.is_set():
                statm.seek(0)
                resident = int(statm.read().split()[1]) * self._page
                info = self._mallinfo2()
                self.samples.append((time.perf_counter(), resident, info.uordblks + info.hblkhd))
                time.sleep(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peaks(self, start: float, end: float) -> tuple[float, float]:
        """The largest resident and allocated MiB sampled in [start, end] (NaN when none was)."""
        inside = [(r, a) for t, r, a in self.samples if start <= t <= end]
        if not inside:
            return float("nan"), float("nan")
        return max(r for r, _ in inside) / MIB, max(a for _, a in inside) / MIB


def wrap_stages(spans: list) -> None:
    """Replace each stage function by one that records (depth, name, start, end) into ``spans``."""
    depth = [0]
    for module_name, names in STAGES.items():
        module = importlib.import_module(module_name)
        for name in names:
            function = getattr(module, name)

            def recorded(*args, _function=function, _name=name, **kwargs):
                start = time.perf_counter()
                depth[0] += 1
                try:
                    return _function(*args, **kwargs)
                finally:
                    depth[0] -= 1
                    spans.append((depth[0], _name, start, time.perf_counter()))

            setattr(module, name, functools.wraps(function)(recorded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct", help="a CT file or DICOM folder")
    args = parser.parse_args()
    if not (hasattr(os, "confstr") and str(os.confstr("CS_GNU_LIBC_VERSION")).startswith("glibc")):
        sys.exit("needs glibc (mallinfo2)")
    from VesselQuantLib.pipeline import run_vessel_quant

    ct = read_ct(args.ct)
    spans: list = []
    wrap_stages(spans)
    sampler = Sampler()
    sampler.start()
    start = time.perf_counter()
    result = run_vessel_quant(ct)
    end = time.perf_counter()
    sampler.stop()
    resident, allocated = sampler.peaks(start, end)
    at = max((r, t) for t, r, _ in sampler.samples)[1] - start
    print(
        f"{args.ct}: {end - start:.1f} s; lung {result.summary['lung_volume_ml']:.0f} ml, vessels "
        f"{result.summary['total_volume_ml']:.1f} ml"
    )
    print(
        f"peak resident {resident:.0f} MiB (ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
        f" MiB, the CT read included) at {at:.1f} s, peak allocated {allocated:.0f} MiB"
    )
    print(f"{'stage':40s} {'start s':>8s} {'wall s':>7s} {'resident MiB':>13s} {'allocated MiB':>14s}")
    for depth, name, begin, finish in sorted(spans, key=lambda span: span[2]):
        resident, allocated = sampler.peaks(begin, finish)
        print(
            f"{'  ' * depth + name:40s} {begin - start:8.1f} {finish - begin:7.2f} {resident:13.0f} {allocated:14.0f}"
        )


if __name__ == "__main__":
    main()
