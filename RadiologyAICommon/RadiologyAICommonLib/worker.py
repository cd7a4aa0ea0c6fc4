"""Run the ``radiologyai`` CLI in a worker process for the Slicer widgets.

Long jobs (training, inference, a whole phantom study) run out of process so Slicer stays
responsive and Cancel really stops them, as MONAIAuto3DSeg does. The worker is plain
Python (no Qt): the widget polls :meth:`WorkerProcess.poll` from a ``qt.QTimer``, which
delivers progress on the GUI thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .progress import ProgressCallback, parse_progress_line


def scripted_modules_paths() -> list[str]:
    """Folders that hold the ``<Module>Lib`` packages (one folder when installed in Slicer)."""
    here = Path(__file__).resolve().parent.parent  # .../RadiologyAICommon or the scripted-modules folder
    paths = {str(here)}
    for sibling in ("VesselQuant", "PhantomQA", "SalivarySeg", "HipRadiomics"):
        if (here.parent / sibling / f"{sibling}Lib").is_dir():  # source tree layout
            paths.add(str(here.parent / sibling))
    return sorted(paths)


def default_python() -> str:
    """Slicer's own Python launcher when running inside Slicer, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def cli_command(args: Sequence[str], python: str | None = None) -> list[str]:
    """The command line that runs ``radiologyai ARGS`` with progress lines."""
    return [python or default_python(), "-m", "RadiologyAICommonLib", "--progress", "lines", *args]


@dataclass
class WorkerResult:
    returncode: int | None = None
    stdout: str = ""
    log: list[str] = field(default_factory=list)  # stderr lines that were not progress
    error: str = ""  # the "error: ..." message, if any
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled


class WorkerProcess:
    """A CLI run in a subprocess: progress lines parsed, error line surfaced, cancellable."""

    def __init__(
        self,
        args: Sequence[str],
        on_progress: ProgressCallback | None = None,
        on_log: Callable[[str], None] | None = None,
        python: str | None = None,
        cwd: str | None = None,
        command: Sequence[str] | None = None,
    ):
        # ``command`` replaces the whole command line (any program speaking the progress-line protocol).
        self.command = list(command) if command is not None else cli_command(args, python)
        self.on_progress = on_progress
        self.on_log = on_log
        self.cwd = cwd
        self.result = WorkerResult()
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stdout: list[str] = []

    def start(self) -> "WorkerProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(scripted_modules_paths() + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # own process group, so cancel reaches children too
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            cwd=self.cwd,
            **kwargs,
        )
        for stream, name in ((self._process.stdout, "out"), (self._process.stderr, "err")):
            thread = threading.Thread(target=self._pump, args=(stream, name), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _pump(self, stream, name: str) -> None:
        for line in stream:
            self._lines.put((name, line.rstrip("\n")))
        stream.close()

    def _drain(self) -> None:
        while True:
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                return
            if name == "out":
                self._stdout.append(line)
                continue
            progress = parse_progress_line(line)
            if progress is not None:
                if self.on_progress:
                    self.on_progress(*progress)
            elif line.startswith("error: "):
                self.result.error = line[len("error: ") :]
            elif line.strip():
                self.result.log.append(line)
                if self.on_log:
                    self.on_log(line)

    def poll(self) -> bool:
        """Deliver pending progress; True once the process has finished and all output is read."""
        if self._process is None:
            raise RuntimeError("worker not started")
        self._drain()
        if self._process.poll() is None or any(t.is_alive() for t in self._threads):
            return False
        self._drain()
        self.result.returncode = self._process.returncode
        self.result.stdout = "\n".join(self._stdout)
        return True

    def wait(self, timeout: float | None = None) -> WorkerResult:
        """Block until finished (delivering progress), then return the result."""
        if self._process is None:
            self.start()
        self._process.wait(timeout)
        for thread in self._threads:
            thread.join()
        while not self.poll():
            pass
        return self.result

    def cancel(self, grace_s: float = 5.0) -> None:
        """Stop the worker and everything it started.

        SIGTERM first, to the whole process group: the command removes its staging folder and
        stops its pool (exit 143); whatever is still alive after ``grace_s`` is killed.
        """
        if self._process is None or self._process.poll() is not None:
            return
        self.result.cancelled = True
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)], capture_output=True)
            self._process.wait()
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self._process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self._process.wait(grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self._process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)  # pool workers still draining after the main process left
