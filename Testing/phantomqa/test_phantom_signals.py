"""SIGTERM or Ctrl-C during a study with a process pool: one line, no orphan processes, nothing left on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from phantomqa_helpers import SMALL_SIZE, SMALL_SPACING


def _processes_in_group(group: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.parametrize("how", ["sigterm-main", "sigint-group"])
def test_a_signal_stops_the_pool_and_leaves_nothing(tmp_path, how):
    out = tmp_path / "study"
    command = [
        sys.executable,
        "-m",
        "RadiologyAICommonLib",
        "--progress",
        "lines",
        "phantom",
        "simulate",
        "--output-dir",
        str(out),
        "--doses",
        "0.5,1,2,4",
        "--recons",
        "fbp,ir,dlr",
        "--repetitions",
        "4",
        "--workers",
        "2",
        "--phantom",
        "small",
        "--size",
        ",".join(map(str, SMALL_SIZE)),
        "--spacing",
        ",".join(map(str, SMALL_SPACING)),
    ]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True, cwd=tmp_path
    )
    lines = []
    deadline = time.monotonic() + 240
    for line in process.stderr:  # wait until the pool's workers are simulating
        lines.append(line)
        if "simulating" in line and out.exists() or time.monotonic() > deadline:
            break
    assert out.exists(), "".join(lines)  # the staging folder inside it is there
    if how == "sigterm-main":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    rest = process.stderr.read()
    code = process.wait(timeout=120)
    errors = [line for line in rest.splitlines() if not line.startswith("PROGRESS")]
    assert code == (143 if how == "sigterm-main" else 130), rest
    assert errors == ["error: terminated" if how == "sigterm-main" else "error: interrupted"], rest
    time.sleep(1.0)
    assert _processes_in_group(process.pid) == []  # no pool worker, forkserver or resource tracker left
    assert not out.exists() and os.listdir(tmp_path) == []
