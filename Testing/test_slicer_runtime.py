"""Every module loads in a fresh 3D Slicer, and its requirements.txt is enough once installed.

Each check runs ``Testing/slicer_python.py`` in a new interpreter, where an import hook lets
only the standard library, Slicer's bundled packages and Slicer itself (slicer-core here)
be imported (see that file for the list and its source):

- ``load``: the module file as Slicer imports it at start-up, its module class, its logic
  class and what the widget's ``setup()`` imports;
- ``requirements``: with the module's ``Resources/requirements.txt`` (and what those
  require) importable too, every file of ``<Module>Lib`` imports;
- ``all-imports``: every import the module can reach, function bodies included, is bundled,
  required or Slicer's own (so a lazily imported package cannot be missing after Apply);
- ``self-test``: the module's own ``<Module>Test`` (what Slicer's self-test runs) on a
  slicer-core scene, the module file imported with only the bundled set, the requirements
  importable only once the test has asked for them with ``ensure_module_requirements``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from slicer_python import ALL_MODULES, ROOT

SCRIPT = ROOT / "Testing" / "slicer_python.py"


def _run(check: str, module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), check, module], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


@pytest.mark.parametrize("check", ["load", "requirements", "all-imports", "self-test"])
@pytest.mark.parametrize("module", ALL_MODULES)
def test_module_in_fresh_slicer(module, check):
    result = _run(check, module)
    assert result.returncode == 0, (
        f"{module} fails the fresh-Slicer '{check}' check:\n{result.stdout}{result.stderr[-2000:]}"
    )
    assert f"{module}: {check} ok" in result.stdout


def test_guard_refuses_what_slicer_lacks():
    """The emulation is not vacuous: pandas is installed here, but a fresh Slicer cannot import it."""
    code = (
        "import slicer_python as s; s.install_guard(s.allowed_imports())\n"
        "import numpy, SimpleITK, scipy, vtk\n"
        "for name in ('pandas', 'maxflow', 'yaml', 'matplotlib', 'torch'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ModuleNotFoundError:\n"
        "        print('refused', name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT / "Testing"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        f"refused {n}" for n in ("pandas", "maxflow", "yaml", "matplotlib", "torch")
    ]


def test_load_check_catches_a_load_time_import(tmp_path):
    """A module file importing a requirement at load fails the check (the finding of the first wave)."""
    code = (
        "import sys, slicer_python as s\n"
        "s.install_guard(s.allowed_imports() | {'BadModule'}); s.install_stubs()\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "try:\n"
        "    import BadModule\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('refused:', exc.name)\n"
    )
    (tmp_path / "BadModule.py").write_text("from slicer.ScriptedLoadableModule import *\nimport pandas\n")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT / "Testing"
    )
    assert result.stdout.strip() == "refused: pandas", result.stderr


def test_all_imports_check_finds_a_lazy_import():
    """The static check sees imports inside functions and leaves out optional ones in try/except ImportError."""
    import ast

    import slicer_python as s

    tree = ast.parse("def f():\n    import xgboost\ntry:\n    import dask\nexcept ImportError:\n    dask = None\n")
    guarded = s._guarded_lines(tree)
    imports = [(n.names[0].name, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Import)]
    assert [name for name, line in imports if line not in guarded] == ["xgboost"]


def _run_in_slicer_emulation(*args) -> subprocess.CompletedProcess:
    """``Testing/Slicer/run_self_tests.py`` as ``Slicer --python-script`` runs it, on slicer-core."""
    code = (
        "import runpy, sys, slicer_python as s\n"
        "s.install_stubs(); s.install_qt_placeholders()\n"
        "import slicer, slicer.util\n"
        "slicer.mrmlScene, slicer.modules = s.mrml_application()\n"
        "for name in s.ALL_MODULES:\n"
        "    s.import_module_file(name); setattr(slicer.modules, name.lower(), object())\n"
        "slicer.util.exit = lambda status: print('exit', status)\n"
        f"sys.argv = ['run_self_tests.py', *{list(args)!r}]\n"
        f"runpy.run_path({str(ROOT / 'Testing' / 'Slicer' / 'run_self_tests.py')!r}, run_name='__main__')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT / "Testing"
    )


def test_slicer_self_test_runner_reports_and_exits():
    result = _run_in_slicer_emulation("RadiologyAICommon")
    assert result.stdout.splitlines()[-2:] == ["1 passed, 0 failed", "exit 0"], result.stdout + result.stderr[-2000:]
    result = _run_in_slicer_emulation("NoSuchModule")
    assert result.stdout.splitlines()[-1] == "exit 2" and "unknown module(s) NoSuchModule" in result.stderr
