"""Run every RadiologyAI module's self-test inside a real 3D Slicer; exit non-zero on a failure.

    Slicer --no-main-window \
        --additional-module-paths RadiologyAICommon VesselQuant PhantomQA SalivarySeg HipRadiomics \
        --python-script Testing/Slicer/run_self_tests.py [--install] [Module ...]

(from the repository root; an Extension Manager install needs no ``--additional-module-paths``).
Each ``<Module>Test`` is what *Reload and Test* runs in the module panel: it asks for the
module's ``Resources/requirements.txt`` first (the consent dialog on Apply), then runs the
logic on a tiny case and checks the results. ``--install`` installs the missing requirements
beforehand without asking (for unattended machines). SalivarySeg needs the PyTorch extension.
The test suite runs the same test bodies on slicer-core (``Testing/test_slicer_runtime.py``).
"""

import importlib
import sys
import traceback
import unittest
from pathlib import Path

import slicer

MODULES = ["RadiologyAICommon", "VesselQuant", "PhantomQA", "SalivarySeg", "HipRadiomics"]


def _install_requirements(name: str) -> None:
    from RadiologyAICommonLib.dependencies import missing_requirements, module_requirements_file, read_requirements

    module_file = importlib.import_module(name).__file__
    missing = missing_requirements(read_requirements(module_requirements_file(module_file)))
    if missing:
        print(f"{name}: installing {', '.join(missing)}", flush=True)
        slicer.util.pip_install(missing)


def _run(name: str) -> bool:
    try:
        module = importlib.import_module(name)  # loaded by Slicer at start-up: this only looks it up
        case = getattr(module, f"{name}Test")()
    except Exception:  # noqa: BLE001 - a module that does not load is a failed test
        print(f"{name}: FAILED to load\n{traceback.format_exc()}", flush=True)
        return False
    result = unittest.TestResult()
    case.run(result)
    for _, text in result.errors + result.failures:
        print(f"{name}: FAILED\n{text}", flush=True)
    ok = result.wasSuccessful() and result.testsRun == 1
    print(f"{name}: {'passed' if ok else 'failed'}", flush=True)
    return ok


def main(argv: list) -> int:
    install = "--install" in argv
    names = [a for a in argv if not a.startswith("--")] or MODULES
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        print(f"error: unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}", file=sys.stderr)
        return 2
    not_loaded = [n for n in names if not hasattr(slicer.modules, n.lower())]
    if not_loaded:
        root = Path(__file__).resolve().parents[2]
        print(
            f"error: Slicer did not load {', '.join(not_loaded)}; start it with --additional-module-paths "
            + " ".join(str(root / n) for n in MODULES),
            file=sys.stderr,
        )
        return 2
    if install:
        for name in names:
            _install_requirements(name)
    failed = [name for name in names if not _run(name)]
    print(f"{len(names) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    slicer.util.exit(main(sys.argv[1:]))
