"""The output contract of every command: all or nothing, and never a file RadiologyAI did not write.

:func:`staged_output_dir` yields an empty staging folder *inside* the output folder (so
every move is a rename on one file system, mount points and symlinked folders included).
When the block succeeds, its files are moved into place together; when it fails, or a move
fails half-way, the output folder is put back exactly as it was.

What may be replaced is recorded in a manifest, ``.radiologyai-outputs.json``, beside the
outputs: the relative path of every file RadiologyAI wrote there, with the command that wrote it.

- A new or empty folder is always fine.
- A non-empty folder is refused unless ``overwrite`` is set. Even then only files listed in
  its manifest are replaced, and the listed files the new run does not write again (stale
  outputs of an earlier run of the same command) are removed. A new output whose name is taken by a file
  RadiologyAI did not write is refused, and nothing is changed.
- ``shared=True`` is for single files written into a folder that holds other things (a
  features table beside the user's cohort): the folder need not be empty, only the files
  written now are touched, and the manifest keeps its other entries.
- An output folder that is, or lies inside, an input folder, or that holds an input file the
  run would replace, is refused before anything is computed.

Staging folders are named ``.radiologyai-staging-<pid>-*``; one left by a killed run
(SIGKILL, power loss) is removed by the next run into that folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from . import __version__
from .atomic import current_umask, write_text
from .errors import RadiologyAIError, environment_error

MANIFEST = ".radiologyai-outputs.json"
STAGING_PREFIX = ".radiologyai-staging-"
_REPLACED = ".replaced"  # inside the staging folder: the previous outputs until the new ones are in place


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def _check_inputs(target: Path, inputs: Iterable) -> list[Path]:
    """Refuse an output folder that is or lies inside an input folder; return the input files inside it."""
    inside = []
    for item in inputs:
        if item is None or str(item) == "":
            continue
        source = _resolved(item)
        if source.is_dir() and _is_within(target, source):
            raise RadiologyAIError(
                f"output folder {target} is inside the input folder {source}; choose another output folder"
            )
        if source.is_file() and target in source.parents:
            inside.append(source.relative_to(target))
    return inside


def read_manifest(folder: Path) -> dict[str, str]:
    """``{relative path: command}`` of the files RadiologyAI recorded as its outputs in ``folder``."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise RadiologyAIError(f"{path} is damaged; remove it, or choose another output folder")
    return {name: command for name, command in files.items() if _safe_relative(name)}


def _safe_relative(name: str) -> bool:
    """A manifest entry names a file below its folder, never outside it."""
    path = Path(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def _remove_stale_staging(folder: Path) -> None:
    """Remove staging folders of runs that no longer exist (killed before they could clean up)."""
    for entry in folder.glob(f"{STAGING_PREFIX}*"):
        pid = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that run is still going
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            continue  # another user's live process


def _own_entries(folder: Path) -> set[str]:
    return {MANIFEST} | {e.name for e in folder.glob(f"{STAGING_PREFIX}*")}


def _files_below(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


class _Commit:
    """Moves staged files into place; undoes every move if one fails."""

    def __init__(self, staging: Path, target: Path) -> None:
        self.staging, self.target = staging, target
        self.backup = staging / _REPLACED
        self.moved_in: list[Path] = []
        self.moved_out: list[tuple[Path, Path]] = []
        self.created_dirs: list[Path] = []

    def set_aside(self, name: str) -> None:
        source, kept = self.target / name, self.backup / name
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, kept)
        self.moved_out.append((kept, source))

    def put(self, name: str) -> None:
        destination = self.target / name
        missing = [
            p
            for p in [destination.parent, *destination.parent.parents]
            if _is_within(p, self.target) and not p.exists()
        ]
        for folder in reversed(missing):
            folder.mkdir()
            os.chmod(folder, 0o777 & ~current_umask())
            self.created_dirs.append(folder)
        os.replace(self.staging / name, destination)
        self.moved_in.append(destination)

    def undo(self) -> None:
        for path in reversed(self.moved_in):
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        for kept, source in reversed(self.moved_out):
            with contextlib.suppress(OSError):
                source.parent.mkdir(parents=True, exist_ok=True)
                os.replace(kept, source)


def _check_clashes(
    new: list[str], target: Path, previous: dict[str, str], overwrite: bool, protected: list[Path]
) -> None:
    """Refuse, before anything moves, to replace what RadiologyAI did not write (or an input, or
    without --overwrite)."""
    for name in new:
        destination = target / name
        if Path(name) in protected:
            raise RadiologyAIError(f"{destination} is an input of this command; choose another output folder")
        for folder in destination.parents:
            if folder == target:
                break
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise RadiologyAIError(
                    f"{folder} is in the way of the output {name}; it is left alone: choose another output folder"
                )
        if destination.is_symlink() or destination.exists():
            if destination.is_dir() or name not in previous:
                raise RadiologyAIError(
                    f"{destination} exists and was not written by RadiologyAI; it is left alone: "
                    "choose another output folder"
                )
            if not overwrite:
                raise RadiologyAIError(f"{destination} exists; add --overwrite to replace it (RadiologyAI wrote it)")


def _commit(
    staging: Path,
    target: Path,
    previous: dict[str, str],
    command: str,
    overwrite: bool,
    shared: bool,
    protected: list[Path],
) -> None:
    """Move the staged files into ``target`` together, with the manifest; undo every move if one fails."""
    new = [n for n in _files_below(staging) if not n.startswith(f"{_REPLACED}/")]
    if not new:
        return
    _check_clashes(new, target, previous, overwrite, protected)
    # Stale outputs: files the same command wrote last time and does not write now (never an input).
    stale = (
        []
        if shared
        else [
            n
            for n, c in previous.items()
            if c == command and n not in new and Path(n) not in protected and (target / n).is_file()
        ]
    )
    replaced = [n for n in new if (target / n).exists()]
    commit = _Commit(staging, target)
    try:
        for name in replaced + stale:
            commit.set_aside(name)
        for name in new:
            commit.put(name)
        files = {n: c for n, c in previous.items() if n not in stale and (target / n).is_file()}
        files.update({n: command for n in new})
        _write_manifest(target, staging, files)
    except OSError as exc:
        commit.undo()
        raise environment_error(exc, f"cannot write the results into {target}") from None
    except BaseException:
        commit.undo()
        raise
    for name in stale:  # their folders, if RadiologyAI's outputs alone filled them
        for folder in (target / name).parents:
            if folder == target:
                break
            with contextlib.suppress(OSError):
                folder.rmdir()


def _write_manifest(target: Path, staging: Path, files: dict[str, str]) -> None:
    """Written in the staging folder (a half-written one never lands in the output folder), then renamed."""
    text = (
        json.dumps({"written_by": f"radiologyai {__version__}", "files": dict(sorted(files.items()))}, indent=2) + "\n"
    )
    os.replace(write_text(staging / MANIFEST, text), target / MANIFEST)


def _entry_checks(output_dir, inputs: Iterable, overwrite: bool, shared: bool):
    """What is refused before anything is computed; returns (given path, real path, input files inside, manifest)."""
    if output_dir is None or str(output_dir).strip() == "":
        raise RadiologyAIError("the output folder is empty; give a folder name")
    given = Path(output_dir)
    target = _resolved(given)
    if target.exists() and not target.is_dir():
        raise RadiologyAIError(f"output folder {given} is a file")
    protected = _check_inputs(target, inputs)
    previous: dict[str, str] = {}
    if target.exists():
        previous = read_manifest(target)
        foreign = [e.name for e in target.iterdir() if e.name not in _own_entries(target)]
        if foreign and not overwrite and not shared:
            raise RadiologyAIError(
                f"output folder {given} is not empty; choose a new folder, or add --overwrite to "
                "replace the files an earlier RadiologyAI run wrote there (nothing else is touched)"
            )
    return given, target, protected, previous


def check_output_dir(output_dir: str | os.PathLike, *, inputs: Iterable = (), overwrite: bool = False) -> None:
    """The checks :func:`staged_output_dir` makes on entry, and that the folder can be written, for a
    command that computes for long before it writes. Leaves nothing behind."""
    _, target, _, _ = _entry_checks(output_dir, inputs, overwrite, False)
    folder = next(p for p in [target, *target.parents] if p.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise RadiologyAIError(
            f"cannot write into the output folder {output_dir}: "
            f"{folder} is {'not a folder' if not folder.is_dir() else 'not writable'}"
        )


@contextlib.contextmanager
def staged_output_dir(
    output_dir: str | os.PathLike, *, command: str, inputs: Iterable = (), overwrite: bool = False, shared: bool = False
) -> Iterator[Path]:
    """Yield an empty staging folder; on success move its files into ``output_dir`` (see the module docstring).

    ``command`` names what writes (``"vessels"``, ``"salivary train"``): a later run of the
    same command removes the files this one wrote and that one does not. Everything that can
    be checked before computing is checked on entry: the path, the inputs, an existing
    folder's contents, and that the folder is writable (the staging folder is made there).
    Put the computation inside the ``with`` block.
    """
    given, target, protected, previous = _entry_checks(output_dir, inputs, overwrite, shared)
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(target)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=target))
        os.chmod(staging, 0o777 & ~current_umask())
    except OSError as exc:
        raise environment_error(exc, f"cannot write into the output folder {given}") from None
    try:
        yield staging
        _commit(staging, target, previous, command, overwrite, shared, protected)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                target.rmdir()  # only if nothing was committed


def staged_output_files(
    paths: Iterable[str | os.PathLike], *, command: str, inputs: Iterable = (), overwrite: bool = False
):
    """:func:`staged_output_dir` for files that go together into one folder (a table and its sidecar).

    Yields the staging folder; write each file under its own name there. Returns the folder's
    context manager: all files are moved in together or none is.
    """
    paths = [Path(p) for p in paths]
    folders = {_resolved(p.parent if str(p.parent) else ".") for p in paths}
    if len(folders) != 1:
        raise RadiologyAIError("the output files must go into one folder: " + ", ".join(str(p) for p in paths))
    for path in paths:
        if str(path).strip() == "" or path.name in ("", ".", ".."):
            raise RadiologyAIError("an output file name is empty; give a file name")
        if path.is_dir():
            raise RadiologyAIError(f"output {path} is a folder; give a file name")
    if len({p.name for p in paths}) != len(paths):
        raise RadiologyAIError("two outputs have the same file name: " + ", ".join(str(p) for p in paths))
    sources = {_resolved(item) for item in inputs if item is not None and str(item)}
    for path in paths:  # the names are known now: an input among them is refused before anything is computed
        if _resolved(path) in sources:
            raise RadiologyAIError(f"output {path} is an input of this command; choose another file name")
    return staged_output_dir(folders.pop(), command=command, inputs=inputs, overwrite=overwrite, shared=True)
