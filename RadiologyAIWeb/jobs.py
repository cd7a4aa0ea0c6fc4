"""Long jobs for the web panels: the project's worker process (``RadiologyAICommonLib.worker``) on asyncio.

A :class:`Job` runs ``radiologyai ARGS`` in a child process, as the Slicer widgets do, and polls it from the
server's event loop, so the page stays live: progress goes to a callback, Cancel stops the whole process group
(off the loop, since the worker waits for it), and the result is the worker's :class:`WorkerResult`. No trame.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.worker import WorkerProcess, WorkerResult

POLL_S = 0.2


class Job:
    def __init__(self, args: Sequence[str], on_progress: Callable[[float, str], None] | None = None):
        self.args = list(args)
        self._worker = WorkerProcess(self.args, on_progress=on_progress)
        self._cancelling = False

    async def run(self) -> WorkerResult:
        """Start the worker and wait for it without blocking the event loop."""
        self._worker.start()
        while not self._worker.poll():
            await asyncio.sleep(POLL_S)
        return self._worker.result

    def stop(self) -> None:
        """Cancel, blocking (for shutdown, when no event loop runs any more)."""
        self._worker.cancel(grace_s=2.0)

    async def cancel(self) -> None:
        if self._cancelling:
            return
        self._cancelling = True
        await asyncio.to_thread(self._worker.cancel)


def raise_for_result(result: WorkerResult, what: str) -> None:
    """The worker's ``error:`` line as a :class:`RadiologyAIError` (a cancelled run raises nothing: check first)."""
    if result.ok:
        return
    if result.error:
        raise RadiologyAIError(result.error)
    tail = "; ".join(result.log[-3:])
    raise RadiologyAIError(f"{what} failed (exit code {result.returncode}){': ' + tail if tail else ''}")
