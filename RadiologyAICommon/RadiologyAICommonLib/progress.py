"""Progress-callback protocol shared by every long-running core.

A callback takes ``(fraction, message)`` with ``fraction`` in [0, 1]. Cores call it at
natural milestones; they never print. ``subprogress`` maps a sub-task onto a slice of
the parent's range so nested steps compose without knowing about each other.
"""

from typing import Callable

ProgressCallback = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """Callback that ignores progress (the default for every core)."""


def subprogress(callback: ProgressCallback | None, start: float, end: float) -> ProgressCallback:
    """Return a callback reporting a sub-task's [0, 1] progress as [start, end] of ``callback``."""
    parent = callback or no_progress
    span = end - start

    def report(fraction: float, message: str) -> None:
        parent(start + span * min(max(float(fraction), 0.0), 1.0), message)

    return report


PROGRESS_PREFIX = "PROGRESS"


def format_progress_line(fraction: float, message: str) -> str:
    """One machine-readable progress line, as the CLI prints it for the worker process."""
    return f"{PROGRESS_PREFIX} {min(max(fraction, 0.0), 1.0):.4f} {message}".rstrip()


def parse_progress_line(line: str) -> tuple[float, str] | None:
    """Inverse of :func:`format_progress_line`; ``None`` for any other line."""
    parts = line.strip().split(" ", 2)
    if len(parts) < 2 or parts[0] != PROGRESS_PREFIX:
        return None
    try:
        fraction = float(parts[1])
    except ValueError:
        return None
    return fraction, parts[2] if len(parts) == 3 else ""
