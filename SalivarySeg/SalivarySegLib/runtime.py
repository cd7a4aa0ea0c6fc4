"""Device, CPU threads and seeds."""

from __future__ import annotations

import os
import random

import numpy as np

from RadiologyAICommonLib.errors import RadiologyAIError


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Use ``threads`` CPU threads for torch (default: the CPUs this process may run on)."""
    import torch

    if threads is not None and threads < 1:
        raise RadiologyAIError(f"--threads must be at least 1, got {threads}")
    n = int(threads or available_cpus())
    torch.set_num_threads(n)
    return n


def resolve_device(device: str | None) -> str:
    """'cpu', 'cuda' or 'cuda:N' checked against what is available; None -> cuda if available, else cpu."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RadiologyAIError(f"--device {device}: no CUDA GPU is available to PyTorch here; use --device cpu")
        return device
    raise RadiologyAIError(f"--device must be cpu or cuda, got {device!r}")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, torch and MONAI (``set_determinism``)."""
    import torch
    from monai.utils import set_determinism

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    set_determinism(seed=seed)
