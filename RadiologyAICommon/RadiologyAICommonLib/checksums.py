"""Model folders are all or nothing: ``checksums.json`` holds the SHA-256 of every file that changes a prediction.

A loader refuses a folder without that file, a file it does not cover, and a file whose
checksum differs, so an edited ``config.json`` (swapped class names, a zero threshold) or a
replaced weights file is an error, never a different prediction. It guards against edits and
damage, not against someone who rewrites the checksums on purpose: the loaders still never
execute code from a model file (weights-only PyTorch loading, XGBoost JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from .atomic import write_json
from .errors import RadiologyAIError

CHECKSUMS_FILE = "checksums.json"
FORMAT = "radiologyai-checksums"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: str | os.PathLike, names: Iterable[str]) -> Path:
    """Write ``checksums.json`` for the files ``names`` of ``folder`` (call it after they are complete)."""
    folder = Path(folder)
    return write_json(
        folder / CHECKSUMS_FILE, {"format": FORMAT, "sha256": {n: sha256_of(folder / n) for n in sorted(names)}}
    )


def verify_checksums(folder: str | os.PathLike, required: Iterable[str]) -> None:
    """Refuse ``folder`` unless ``checksums.json`` covers every file in ``required`` and every one matches."""
    folder = Path(folder)
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        raise RadiologyAIError(
            f"model folder {folder}: {CHECKSUMS_FILE} is missing, so its files cannot be checked "
            "(edited, or written by an older RadiologyAI); retrain the model or restore the folder"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RadiologyAIError(f"{path}: not valid JSON ({exc})") from None
    sums = data.get("sha256") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(sums, dict):
        raise RadiologyAIError(f"{path}: not a RadiologyAI checksum file")
    for name in required:
        if name not in sums:
            raise RadiologyAIError(
                f"{path} does not cover {name}; the folder was edited: retrain the model or restore it"
            )
        if sha256_of(folder / name) != sums[name]:
            raise RadiologyAIError(
                f"{folder / name}: checksum does not match {CHECKSUMS_FILE}; the file was edited, "
                "replaced or is damaged"
            )
