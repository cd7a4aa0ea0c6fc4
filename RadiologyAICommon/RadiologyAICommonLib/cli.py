"""The ``radiologyai`` command line: one entry point, one sub-command per module.

Each module's ``<Module>Lib/cli.py`` provides ``configure_parser(parser)``, which adds its
arguments (or its own sub-commands) and sets ``handler=func`` with
``func(args, progress) -> int | None``. Modules are imported lazily and cheaply (their
heavy dependencies load inside the handlers), so ``radiologyai --help`` is instant and a
module that is not installed gives a clear error instead of breaking the others.

Contract (ARCHITECTURE.md, "Contracts"): a :class:`RadiologyAIError` prints one ``error: <message>`` line on
stderr and exits 2, without a traceback. ``--progress lines`` prints machine-readable
progress lines for the Slicer worker process (:mod:`.worker`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from typing import Iterator, Sequence

from . import __version__
from .errors import RadiologyAIError, Terminated
from .progress import format_progress_line

# sub-command -> (module providing configure_parser, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "vessels": ("VesselQuantLib.cli", "lung-vessel segmentation and per-radius quantification on chest CT"),
    "phantom": ("PhantomQALib.cli", "CT dose x reconstruction study on a lung-vessel phantom"),
    "salivary": ("SalivarySegLib.cli", "salivary-gland tumour segmentation (V-Net) and classification (ResNet-50)"),
    "hip": ("HipRadiomicsLib.cli", "radiomics classifier: PyRadiomics, Boruta, XGBoost, AUC with DeLong CI"),
    "web": ("RadiologyAIWeb.cli", "the browser front-end (trame-slicer): all four modules on a local web server"),
}

EXIT_USER_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's single-line error contract."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise RadiologyAIError(f"{message} (see '{self.prog} --help')")


def require(module: str, extra: str):
    """Import an optional heavy dependency, or raise a clear error naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RadiologyAIError(
            f"this command needs the Python package '{module}' ({exc}); "
            f"install it with: pip install 'radiologyai[{extra}]'"
        ) from None


def add_overwrite_argument(parser) -> None:
    """``--overwrite``: the one switch every command that writes outputs takes (see :mod:`.outputs`)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty output folder, replacing only the files an earlier RadiologyAI run wrote there",
    )


def add_series_argument(parser) -> None:
    """``--series UID``: which DICOM series to read when the image folder holds several (see ``imageio.read_image``)."""
    parser.add_argument(
        "--series",
        metavar="UID",
        help="SeriesInstanceUID of the DICOM series to read when the image folder holds several (the error lists them)",
    )


def _unavailable(name: str, reason: str):
    def handler(args, progress):
        raise RadiologyAIError(f"'radiologyai {name}' is not available: {reason}")

    return handler


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="radiologyai",
        description="RadiologyAI: lung-vessel quantification, phantom dose QA, salivary tumour AI and hip radiomics.",
    )
    parser.add_argument("--version", action="version", version=f"radiologyai {__version__}")
    parser.add_argument(
        "--progress",
        choices=("bar", "lines", "none"),
        default="bar",
        help="progress display on stderr: a bar (default), machine-readable lines for the Slicer worker, or none",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected failure")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
            configure = module.configure_parser
        except (ImportError, AttributeError) as exc:
            sub.set_defaults(handler=_unavailable(name, f"its module could not be loaded ({exc})"))
            continue
        configure(sub)
        if sub.get_default("handler") is None and not _has_subcommands(sub):
            sub.set_defaults(handler=_unavailable(name, "not yet implemented"))
    return parser


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)


class _Progress:
    """Progress reporter for the CLI: a tqdm bar, worker lines, or nothing."""

    def __init__(self, mode: str):
        self.mode = mode
        self._bar = None

    def __call__(self, fraction: float, message: str) -> None:
        if self.mode == "lines":
            print(format_progress_line(fraction, message), file=sys.stderr, flush=True)
        elif self.mode == "bar":
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=1000, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}", leave=True
                )
            self._bar.set_description_str(message[:40].ljust(40))
            self._bar.n = int(round(min(max(fraction, 0.0), 1.0) * 1000))
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def _quiet_libraries(debug: bool) -> Iterator[None]:
    """Library warnings (Python's, ITK's) stay off the user's terminal unless ``--debug``; worker processes
    inherit that through PYTHONWARNINGS. Restored afterwards (``main`` may run inside another program)."""
    if debug:
        yield
        return
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    saved = os.environ.get("PYTHONWARNINGS")
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    os.environ["PYTHONWARNINGS"] = "ignore"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
        if saved is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = saved


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread, so cleanup runs as for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    with _sigterm_unwinds(), _quiet_libraries(debug):
        return _run(argv, debug)


def _run(argv: list[str], debug: bool) -> int:
    progress = _Progress("none")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        progress = _Progress(args.progress)
        handler = getattr(args, "handler", None)
        if handler is None:
            raise RadiologyAIError(f"choose a sub-command (see 'radiologyai {args.command} --help')")
        result = handler(args, progress)
        progress.close()
        return int(result or 0)
    except RadiologyAIError as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        progress.close()
        terminated = isinstance(exc, Terminated)
        print(f"error: {'terminated' if terminated else 'interrupted'}", file=sys.stderr, flush=True)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except Exception as exc:  # a bug, not a user mistake: still one line unless --debug
        progress.close()
        if debug:
            raise
        print(f"error: internal error ({type(exc).__name__}: {exc}); rerun with --debug and report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
