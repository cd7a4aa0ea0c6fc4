"""Atomic outputs: nothing half-written is ever left where the user looks.

``atomic_path`` gives a temporary file beside the target and renames it into place on
success. A command's folder of results goes through :mod:`.outputs` (all files or none,
and never a file RadiologyAI did not write).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import environment_error


def current_umask() -> int:
    """The process's umask (new files and folders follow it, as any program's would)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path with the same suffixes; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    suffix = "".join(path.suffixes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except OSError as exc:
        raise environment_error(exc, f"cannot write {path}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs follow the umask like any new file
        os.replace(tmp_path, path)
    except OSError as exc:  # a full disk, a read-only file system...: the user's to fix, in one line
        raise environment_error(exc, f"cannot write {path}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as strict JSON (see :func:`json_ready`) atomically."""
    return write_text(path, json.dumps(json_ready(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike):
    """Parse a JSON file the user gave (model folder, record, prediction); a clear error if it is not JSON.

    JSON only ever yields data, so an untrusted file can be read this way safely.
    """
    from .errors import RadiologyAIError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RadiologyAIError(f"{path}: not valid JSON ({exc})") from None


def write_csv(path: str | os.PathLike, dataframe) -> Path:
    """Write a pandas DataFrame as CSV (no index) atomically."""
    with atomic_path(path) as tmp:
        dataframe.to_csv(tmp, index=False)
    return Path(path)


def json_ready(value, unknown=None):
    """``value`` made of what strict JSON holds, recursively.

    numpy scalars and arrays become Python numbers and lists, tuples become lists, paths become
    strings, NaN and infinities become None, and dict keys become strings. ``unknown`` is called on
    any other object (``str`` to keep a description of it); without it, such an object is left as it
    is, and ``json.dumps`` reports it.
    """
    import math

    import numpy as np

    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): json_ready(v, unknown) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v, unknown) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    return unknown(value) if unknown is not None else value
