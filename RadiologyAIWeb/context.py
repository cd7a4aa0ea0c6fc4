"""What every panel shares: the trame server and state, the viewer, the data folder, limits and the result store.

:class:`ResultStore` keeps each run's output folder under the app's temporary workspace and hands out a
random token per folder; the app serves ``/radiologyai-results/<token>/<file>`` from it (downloads, report.html),
checking that the file really is inside that folder. No trame import here.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .security import DataDir

RESULTS_ROUTE = "/radiologyai-results"


class ResultStore:
    def __init__(self, workspace: Path):
        self.workspace = workspace
        self._folders: dict[str, Path] = {}

    def new_folder(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.workspace))

    def publish(self, folder: Path) -> str:
        """A token under which the files of ``folder`` can be fetched."""
        token = secrets.token_urlsafe(12)
        self._folders[token] = folder.resolve()
        return token

    def url(self, token: str, name: str) -> str:
        return f"{RESULTS_ROUTE}/{token}/{name}"

    def file(self, token: str, name: str) -> Path | None:
        """The file ``name`` of the folder published as ``token``; None if unknown or outside it."""
        folder = self._folders.get(token)
        if folder is None or not name:
            return None
        path = (folder / name).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None
        return path

    def discard(self, folder: Path | None) -> None:
        if folder is None:
            return
        folder = folder.resolve()
        for token in [t for t, f in self._folders.items() if f == folder or f.is_relative_to(folder)]:
            del self._folders[token]
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class AppContext:
    server: object
    viewer: object
    data_dir: DataDir
    max_upload_bytes: int
    workspace: Path
    results: ResultStore = field(init=False)
    debug: bool = False

    def __post_init__(self):
        self.results = ResultStore(self.workspace)

    @property
    def state(self):
        return self.server.state
