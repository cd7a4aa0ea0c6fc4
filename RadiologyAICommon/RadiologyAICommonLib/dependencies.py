"""Install a module's Python dependencies inside Slicer, with the user's consent, on first use.

Never called at import time: a widget calls :func:`ensure_requirements` when the user
presses Apply. Slicer ≥ 5.12 has ``slicer.packaging.pip_ensure`` (it asks, installs and
reports); older Slicer gets a confirmation dialog and ``slicer.util.pip_install``.
Packages Slicer ships (SimpleITK, numpy, vtk) and torch (the PyTorch extension's job) are
never listed in ``Resources/requirements.txt``.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from .errors import RadiologyAIError


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt (comments and blanks dropped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def module_requirements_file(module_file: str | Path) -> Path:
    """``Resources/requirements.txt`` beside a module file (where the widget's ``resourcePath`` looks)."""
    return Path(module_file).resolve().parent / "Resources" / "requirements.txt"


def ensure_module_requirements(module_file: str | Path, purpose: str) -> None:
    """:func:`ensure_requirements` for the ``Resources/requirements.txt`` of the module file ``module_file``.

    The one call a widget's Apply (and a module's self-test) makes before it imports anything
    beyond what Slicer bundles.
    """
    ensure_requirements(read_requirements(module_requirements_file(module_file)), purpose)


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements whose distribution is not installed or whose pinned version differs."""
    missing = []
    for requirement in requirements:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(==\s*([^;,\s]+))?", requirement)
        if not match:
            missing.append(requirement)
            continue
        name, pinned = match.group(1), match.group(3)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if pinned and installed != pinned:
            missing.append(requirement)
    return missing


def ensure_requirements(requirements: list[str], purpose: str) -> None:
    """Make sure ``requirements`` are installed in Slicer's Python, asking the user first."""
    missing = missing_requirements(requirements)
    if not missing:
        return
    import slicer

    packaging = getattr(slicer, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        packaging.pip_ensure(missing)
        return
    text = f"{purpose} needs these Python packages, which are not installed yet:\n\n" + "\n".join(missing)
    if not slicer.util.confirmOkCancelDisplay(text + "\n\nInstall them now? This may take a few minutes."):
        raise RadiologyAIError(f"{purpose} cannot run without: {', '.join(missing)}")
    slicer.util.pip_install(missing)


def ensure_torch() -> None:
    """torch comes from Slicer's PyTorch extension (PyTorchUtils), never a raw pip install."""
    try:
        import PyTorchUtils  # noqa: F401 - provided by the PyTorch extension
    except ImportError:
        raise RadiologyAIError(
            "PyTorch is needed: install the 'PyTorch' extension from the Extensions Manager and restart Slicer"
        ) from None
    logic = PyTorchUtils.PyTorchUtilsLogic()
    if not logic.torchInstalled():
        import slicer

        if not slicer.util.confirmOkCancelDisplay(
            "PyTorch is not installed yet. Install it now (it may take several minutes)?"
        ):
            raise RadiologyAIError("this module cannot run without PyTorch")
        if logic.installTorch(askConfirmation=False) is None:
            raise RadiologyAIError("PyTorch could not be installed; see the PyTorch module")
