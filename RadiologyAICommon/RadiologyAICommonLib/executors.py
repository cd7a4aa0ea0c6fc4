"""The executor that PhantomQA's study and HipRadiomics' cohort extraction map their work over.

- ``workers == 1`` and no scheduler: run in this process (no pool; easiest to debug);
- default: a local ``concurrent.futures.ProcessPoolExecutor`` with ``workers`` processes;
- ``scheduler="tcp://host:8786"``: a ``dask.distributed`` cluster, through
  ``Client(address).get_executor()`` (a ``concurrent.futures.Executor``). The workers must
  see the same file system paths as this process (shared storage).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Iterator

from .errors import RadiologyAIError


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class InlineExecutor(Executor):
    """Runs each call at submit time in this process (same interface as a pool).

    After a call fails, later submissions are cancelled instead of run (a study stops at its
    first error, as it does with a pool).
    """

    def __init__(self):
        self._failed = False

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        if self._failed:
            future.cancel()
            return future
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through future.result(), like a pool
            self._failed = True
            future.set_exception(exc)
        return future


def _limit_threads() -> None:
    """One compute thread per worker process: the pool supplies the parallelism."""
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except Exception:  # noqa: BLE001 - best effort
        pass
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # noqa: BLE001 - numba is optional outside VesselQuant
        pass


@contextlib.contextmanager
def open_executor(
    workers: int | None = None, scheduler: str | None = None, connect_timeout_s: float = 20.0
) -> Iterator[Executor]:
    """Yield the executor for ``workers`` processes (or a dask ``scheduler``) and close it afterwards."""
    if scheduler:
        from .cluster import connect_scheduler

        client = connect_scheduler(scheduler, connect_timeout_s)
        try:
            yield client.get_executor()
        finally:
            client.close()
        return
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise RadiologyAIError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        yield InlineExecutor()
        return
    # Workers start from a fresh server process, never forked from this one: a process whose compute thread
    # pools have run (numba on GNU OpenMP, ITK) cannot safely fork workers that use them again.
    context = (
        multiprocessing.get_context("forkserver") if "forkserver" in multiprocessing.get_all_start_methods() else None
    )
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_limit_threads, mp_context=context)
    try:
        yield pool
    except BaseException as exc:
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: stop the workers now, not after their scans
            _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes. concurrent.futures has no public call for it before Python 3.14
    (``terminate_workers``), so this reads the pool's process table, as that method does."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
