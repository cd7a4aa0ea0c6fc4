"""What the web server may read and accept: files under ``--data-dir`` only, and size-limited uploads.

No trame here (plain Python, tested without a browser):

* :class:`DataDir` resolves a path the browser sent *relative to the data folder*, following symlinks, and refuses
  anything that ends up outside it (``..``, absolute paths, links pointing out);
* :func:`save_uploads` writes uploaded files (the dicts trame's client sends: ``name``, ``size``, ``content``) into
  a fresh temporary folder under a safe name, refusing more than ``max_bytes`` in all. Nothing uploaded is ever
  executed or imported: the panels only read it with the project's image readers (``imageio.read_volume``).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from RadiologyAICommonLib.errors import RadiologyAIError

DEFAULT_MAX_UPLOAD_MB = 512
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DataDir:
    """The one server-side folder the browser may pick files from (None: no data folder given)."""

    root: Path | None

    @classmethod
    def from_option(cls, value: str | os.PathLike | None) -> "DataDir":
        if value is None or str(value) == "":
            return cls(None)
        root = Path(value).expanduser()
        if not root.is_dir():
            raise RadiologyAIError(f"--data-dir {value}: not a folder")
        return cls(root.resolve())

    def resolve(self, relative: str, what: str = "file") -> Path:
        """The real path of ``relative`` inside the data folder; a clear error if it is outside or missing."""
        if self.root is None:
            raise RadiologyAIError("the server was started without --data-dir: upload the file instead")
        text = (relative or "").strip()
        if not text:
            raise RadiologyAIError(f"enter the {what}'s path inside the data folder")
        if "\x00" in text:
            raise RadiologyAIError(f"{what} '{text}': not a valid path")
        candidate = Path(text)
        if candidate.is_absolute():
            raise RadiologyAIError(f"{what} '{text}': give a path relative to the data folder, not an absolute one")
        path = (self.root / candidate).resolve()
        if not path.is_relative_to(self.root):
            raise RadiologyAIError(f"{what} '{text}': outside the data folder")
        if not path.exists():
            raise RadiologyAIError(f"{what} '{text}': no such file or folder in the data folder")
        return path

    def listing(self, limit: int = 500, depth: int = 3) -> list[str]:
        """Relative paths of the files and folders in the data folder (for the browser's suggestions)."""
        if self.root is None:
            return []
        found: list[str] = []
        for directory, folders, files in os.walk(self.root, followlinks=False):
            here = Path(directory)
            level = len(here.relative_to(self.root).parts)
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            if level >= depth:
                folders[:] = []
            for name in folders + sorted(f for f in files if not f.startswith(".")):
                found.append((here / name).relative_to(self.root).as_posix())
                if len(found) >= limit:
                    return found
        return found


_HEADER_BYTES = 65536
_NRRD_DATA_FILE = re.compile(rb"^\s*data\s?file\s*:\s*(.*?)\s*$", re.I | re.M)
_META_DATA_FILE = re.compile(rb"^\s*ElementDataFile\s*=\s*(.*?)\s*$", re.M)


def check_data_files(path: str | os.PathLike, root: str | os.PathLike) -> None:
    """Refuse an image header whose voxels live in another file outside ``root``.

    A NRRD (``data file:``) or MetaImage (``ElementDataFile =``) header may name any file as its voxel data,
    an absolute path included, and the readers would read it: the server would show a file it must not read as an
    image. The named file must be inside ``root`` (the upload's folder, or the data folder); the list and pattern
    forms (several files) are refused. A folder (a DICOM series, a model folder) may hold no link to a file outside.
    """
    path, root = Path(path), Path(root).resolve()
    if path.is_dir():
        for file in path.rglob("*"):
            if not file.resolve().is_relative_to(root):
                raise RadiologyAIError(f"{path.name}: {file.relative_to(path)} links to a file outside the folder")
        return
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except OSError as exc:
        raise RadiologyAIError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    if head.startswith(b"NRRD"):
        header = head.split(b"\n\n", 1)[0]
        found = _NRRD_DATA_FILE.search(header)
    elif _META_DATA_FILE.search(head[:4096]):
        found = _META_DATA_FILE.search(head[:4096])
        if found and found.group(1).strip().upper() == b"LOCAL":
            return
    else:
        return
    if not found:
        return
    value = found.group(1).decode("utf-8", "replace").strip()
    if not value or value.upper().startswith("LIST") or " " in value or "%" in value:
        raise RadiologyAIError(f"{path.name}: image data split over several files is not accepted here")
    target = (path.parent / value).resolve()
    if not target.is_relative_to(root):
        raise RadiologyAIError(f"{path.name}: its header names a data file outside the folder it may read ({value})")


def safe_filename(name: str) -> str:
    """The last component of an uploaded file's name, with anything but letters, digits, ``._-`` replaced."""
    base = str(name or "").replace("\\", "/").split("/")[-1]
    base = _SAFE_NAME.sub("_", base).lstrip(".")
    return base or "upload"


def _content_bytes(upload: dict) -> bytes:
    content = upload.get("content")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, list):  # a chunked upload: a list of byte strings
        return b"".join(bytes(part) for part in content)
    raise RadiologyAIError(f"upload '{upload.get('name', '?')}': no file content received")


def check_upload_size(uploads: list[dict], max_bytes: int) -> None:
    """Refuse before writing anything if the declared sizes already exceed the limit."""
    declared = sum(int(u.get("size") or 0) for u in uploads)
    if declared > max_bytes:
        raise RadiologyAIError(
            f"upload of {declared / 1e6:.1f} MB is over this server's limit of {max_bytes / 1e6:.0f} MB "
            "(start it with a larger --max-upload-mb, or put the file in the data folder)"
        )


def save_uploads(uploads: list[dict] | dict | None, max_bytes: int, parent: str | os.PathLike | None = None) -> Path:
    """Write the uploaded files into a new temporary folder and return it (one file: the folder holds it alone).

    The sizes are checked twice: as declared by the browser, before anything is written, and as received.
    """
    if isinstance(uploads, dict):
        uploads = [uploads]
    uploads = [u for u in (uploads or []) if u]
    if not uploads:
        raise RadiologyAIError("choose a file to upload")
    check_upload_size(uploads, max_bytes)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
    total = 0
    used: set[str] = set()
    for upload in uploads:
        data = _content_bytes(upload)
        total += len(data)
        if total > max_bytes:
            _remove_tree(folder)
            check_upload_size([{"size": total}], max_bytes)
        name = safe_filename(upload.get("name", ""))
        stem, n = name, 1
        while name in used:
            name, n = f"{n}_{stem}", n + 1
        used.add(name)
        (folder / name).write_bytes(data)
    return folder


def uploaded_path(folder: Path) -> Path:
    """What to read from an upload folder: its single file, or the folder itself (a DICOM series, several files)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return files[0] if len(files) == 1 else folder


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
