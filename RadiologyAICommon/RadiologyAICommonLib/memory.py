"""Refuse work the machine's memory cannot hold, before allocating it (a typo must not end in the
kernel's OOM killer)."""

from __future__ import annotations

import os

from .errors import RadiologyAIError


def available_memory_bytes() -> int | None:
    """Memory the system can give this process now (Linux MemAvailable; else physical memory); None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(need_bytes: float, what: str) -> None:
    """Raise a RadiologyAIError when ``need_bytes`` is more than the memory available now."""
    available = available_memory_bytes()
    if available is not None and need_bytes > available:
        raise RadiologyAIError(
            f"{what} needs about {need_bytes / 2**30:.1f} GiB of memory and "
            f"{available / 2**30:.1f} GiB is available; use a smaller volume or a larger machine"
        )
