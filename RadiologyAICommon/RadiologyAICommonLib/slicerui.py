"""Qt glue shared by the module widgets (runs only inside Slicer's GUI).

This is the one file of the common Lib that imports ``qt``: it belongs to the widget
layer. Cores and logic never import it.

``WorkerRunner`` drives a :class:`~.worker.WorkerProcess` from the GUI thread with a
``qt.QTimer``: it updates a progress bar and a status label, lets the user cancel, and on
failure shows the worker's ``error:`` line in an error dialog.
"""

from __future__ import annotations

from typing import Callable, Sequence

import qt
import slicer

from .worker import WorkerProcess, WorkerResult


class WorkerRunner:
    """Run ``radiologyai ARGS`` as a worker process with progress shown in the widget."""

    def __init__(self, progress_bar=None, status_label=None, poll_ms: int = 200):
        self.progress_bar = progress_bar
        self.status_label = status_label
        self.worker: WorkerProcess | None = None
        self._timer = qt.QTimer()
        self._timer.setInterval(poll_ms)
        self._timer.connect("timeout()", self._poll)
        self._on_finished: Callable[[WorkerResult], None] | None = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, args: Sequence[str], on_finished: Callable[[WorkerResult], None]) -> None:
        if self.running:
            raise RuntimeError("a job is already running")
        self._on_finished = on_finished
        self._show(0.0, "Starting...")
        self.worker = WorkerProcess(args, on_progress=self._show).start()
        self._timer.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self._show(0.0, "Cancelled")

    def _show(self, fraction: float, message: str) -> None:
        if self.progress_bar is not None:
            self.progress_bar.setValue(int(round(100 * fraction)))
        if self.status_label is not None:
            self.status_label.text = message
        slicer.app.processEvents()

    def _poll(self) -> None:
        if self.worker is None or not self.worker.poll():
            return
        self._timer.stop()
        result = self.worker.result
        self.worker = None
        if result.cancelled:
            self._show(0.0, "Cancelled")
        elif not result.ok:
            self._show(0.0, "Failed")
            message = result.error or "\n".join(result.log[-15:]) or f"exit code {result.returncode}"
            slicer.util.errorDisplay(message, windowTitle="RadiologyAI")
        else:
            self._show(1.0, "Done")
        if self._on_finished is not None:
            self._on_finished(result)
