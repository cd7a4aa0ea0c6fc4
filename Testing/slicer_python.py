"""A fresh 3D Slicer's Python, emulated: only what Slicer bundles (and what a module installs) imports.

Slicer imports every scripted module file at start-up, before any Apply. Its Python then
holds the standard library, Slicer itself and the packages its SuperBuild installs; a
module's ``Resources/requirements.txt`` is installed only later, on the first Apply
(``RadiologyAICommonLib.dependencies.ensure_requirements``). This file keeps that package
set in one place and emulates it with an import hook, so the tests can load each module as
a new user's Slicer would.

Run as a script (what the tests do, each check in a fresh interpreter)::

    python Testing/slicer_python.py load VesselQuant          # the module file, as at start-up
    python Testing/slicer_python.py requirements VesselQuant  # every Lib file, after its requirements
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import re
import sys
import types
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = "RadiologyAICommon"
MODULES = ["VesselQuant", "PhantomQA", "SalivarySeg", "HipRadiomics"]
ALL_MODULES = [COMMON, *MODULES]

# What a fresh Slicer (>= 5.10) bundles in its Python, by distribution name. Source: Slicer's
# SuperBuild/External_python-{numpy,scipy,SimpleITK,pydicom,pillow,requests-requirements,packaging}.cmake
# and its VTK build (vtk is Slicer's own, so the PyPI wheel's dependencies are not taken along).
# python-requests-requirements installs requests with certifi, idna, charset-normalizer and urllib3.
SLICER_BUNDLED_DISTRIBUTIONS = (
    "numpy",
    "scipy",
    "SimpleITK",
    "vtk",
    "pydicom",
    "pillow",
    "packaging",
    "requests",
    "certifi",
    "idna",
    "charset-normalizer",
    "urllib3",
)
# Slicer's own Python packages. slicer-core (MRML) stands in for Slicer's `slicer`; vtk's wheel for Slicer's VTK.
# slicer_layer_dm: the layer displayable managers (trame-slicer's web front-end installs them); once installed, the
# slicer-core wheel's ``slicer`` package imports them as part of ``slicer``, as desktop Slicer has its own.
SLICER_OWN_IMPORTS = ("slicer", "slicer_core", "slicer_layer_dm", "vtk", "vtkmodules", "vtkCommonCorePython")
# The PyTorch extension (PyTorchUtils) installs torch on request; SalivarySeg asks for it on Apply.
TORCH_FROM_EXTENSION = {"SalivarySeg": ("torch",)}


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(lines: list[str]) -> list[str]:
    """Distribution names of requirement lines (versions, extras and markers dropped)."""
    from packaging.requirements import Requirement

    return [Requirement(line).name for line in lines]


def distribution_closure(names) -> set[str]:
    """``names`` and everything they require (extras off), as installed here; normalised names."""
    from packaging.requirements import Requirement

    todo, seen = [normalise(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normalise(requirement.name))
    return seen


def import_names(distributions) -> set[str]:
    """Top-level import names provided by the (installed) ``distributions``."""
    wanted = {normalise(d) for d in distributions}
    names = set()
    for top, dists in importlib.metadata.packages_distributions().items():
        if wanted & {normalise(d) for d in dists}:
            names.add(top)
    return names


def project_imports() -> set[str]:
    """The project's own importable names: the module files and their Lib packages."""
    return {name for module in ALL_MODULES for name in (module, f"{module}Lib")}


def module_requirements(module: str) -> list[str]:
    """Requirement lines of ``<module>/Resources/requirements.txt``."""
    sys.path.insert(0, str(ROOT / COMMON))
    from RadiologyAICommonLib.dependencies import read_requirements

    return read_requirements(ROOT / module / "Resources" / "requirements.txt")


def allowed_imports(extra_distributions=()) -> set[str]:
    """Top-level names a fresh Slicer can import, plus ``extra_distributions`` and what they require."""
    bundled = import_names(SLICER_BUNDLED_DISTRIBUTIONS)  # no closure: Slicer builds these itself
    extra = import_names(distribution_closure(extra_distributions)) if extra_distributions else set()
    return set(sys.stdlib_module_names) | bundled | extra | set(SLICER_OWN_IMPORTS) | project_imports()


class SlicerImportGuard(importlib.abc.MetaPathFinder):
    """Finds top-level packages only within ``allowed``: anything else is "not installed".

    It takes the place of the finders that search the file system (``PathFinder``, editable
    installs), and asks them only for allowed names, so a refused package looks exactly like a
    missing one: ``import`` raises ``ModuleNotFoundError`` and ``importlib.util.find_spec``
    returns None, as libraries probing for optional extras expect.
    """

    def __init__(self, allowed: set[str], finders: list) -> None:
        self.allowed = allowed
        self.finders = finders
        self.refused: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top not in self.allowed and not top.startswith("_"):  # private C modules belong to allowed packages
            self.refused.append(fullname)
            return None
        for finder in self.finders:
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):
        """Installed distributions' metadata stays visible (``ensure_requirements`` reads versions from it)."""
        for finder in self.finders:
            if hasattr(finder, "find_distributions"):
                yield from finder.find_distributions(*args, **kwargs)

    def invalidate_caches(self) -> None:
        for finder in self.finders:
            if hasattr(finder, "invalidate_caches"):
                finder.invalidate_caches()


def install_guard(allowed: set[str]) -> SlicerImportGuard:
    """Put the guard in front of the file-system finders and forget already imported non-allowed modules."""
    for name in list(sys.modules):
        if name.split(".")[0] not in allowed and not name.startswith("_"):
            del sys.modules[name]
    kept = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter)
    finders = [f for f in sys.meta_path if f not in kept]
    guard = SlicerImportGuard(allowed, finders)
    sys.meta_path[:] = [f for f in sys.meta_path if f in kept] + [guard]
    return guard


# -- the Qt-bound parts of Slicer's Python API, which slicer-core does not have ----------------------------


def scripted_module_stubs() -> dict[str, types.ModuleType]:
    """Stand-ins for ``slicer.ScriptedLoadableModule``, ``slicer.i18n`` and ``slicer.parameterNodeWrapper``.

    Each of these imports Qt/CTK in Slicer. Only what a module file needs at import time and
    what its self-test calls is given: the base classes (the test base is a real
    ``unittest.TestCase`` whose ``delayDisplay`` only records the message), ``tr`` /
    ``translate`` returning their text, and a ``parameterNodeWrapper`` that keeps the class as
    it is (its annotations are read by the .ui checks).
    """
    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent) -> None:
            self.parent = parent
            self.moduleName = type(self).__name__

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None) -> None:
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None) -> None:
            self.parent = parent

    class ScriptedLoadableModuleTest(unittest.TestCase):
        messages: list

        def delayDisplay(self, message, msec=None):  # noqa: N802 - Slicer's name
            self.__dict__.setdefault("messages", []).append(message)

    for cls in (
        ScriptedLoadableModule,
        ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
    ):
        cls.__module__ = slm.__name__
        setattr(slm, cls.__name__, cls)
    slm.__all__ = [n for n in vars(slm) if n.startswith("ScriptedLoadable")]

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text

    wrapper = types.ModuleType("slicer.parameterNodeWrapper")

    class WithinRange:
        def __init__(self, minimum, maximum) -> None:
            self.minimum, self.maximum = minimum, maximum

    class Choice:
        def __init__(self, choices) -> None:
            self.choices = list(choices)

    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.WithinRange = WithinRange
    wrapper.Choice = Choice
    return {m.__name__: m for m in (slm, i18n, wrapper)}


class _QtPlaceholder(types.ModuleType):
    """``qt`` / ``ctk`` at import time only: any attribute is a placeholder class (nothing runs Qt here)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        placeholder = type(name, (), {})
        setattr(self, name, placeholder)
        return placeholder


def install_qt_placeholders() -> None:
    """Let Slicer-only helpers (``RadiologyAICommonLib.slicerui``) import, so their other imports are checked."""
    for name in ("qt", "ctk"):
        sys.modules.setdefault(name, _QtPlaceholder(name))


def install_stubs() -> None:
    """Put the stand-ins into ``sys.modules`` and onto the ``slicer`` package."""
    import slicer

    for name, stub in scripted_module_stubs().items():
        sys.modules[name] = stub
        setattr(slicer, name.split(".", 1)[1], stub)


def mrml_application():
    """A real MRML scene from slicer-core, wired as ``slicer.util`` expects; returns ``(scene, slicer.modules)``.

    slicer-core has Slicer's MRML, module logics and ``slicer/util.py`` but no Qt and no
    application object: the scene gets an application logic with its colour logic's default
    colour nodes, and segmentations and volumes logics, which ``slicer.modules`` hands out.
    """
    import slicer

    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = slicer.vtkSlicerColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(scene)  # adds the default colour tables
    app_logic.SetColorLogic(color_logic)
    logics = {}
    for name, cls in (
        ("segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
        ("volumes", slicer.vtkSlicerVolumesLogic),
    ):
        logic = cls()
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        logics[name] = types.SimpleNamespace(logic=lambda logic=logic: logic)
    scene._radiologyai_logics = (app_logic, color_logic, logics)  # keep the logics alive with the scene
    return scene, types.SimpleNamespace(**logics)


def import_module_file(module: str):
    """Import ``<module>/<module>.py`` the way Slicer does at start-up (its folder on ``sys.path``)."""
    for folder in ALL_MODULES:
        path = str(ROOT / folder)
        if path not in sys.path:
            sys.path.insert(0, path)
    return importlib.import_module(module)


def lib_modules(module: str) -> list[str]:
    """Dotted names of every file of ``<module>Lib``."""
    lib = ROOT / module / f"{module}Lib"
    names = []
    for path in sorted(lib.rglob("*.py")):
        if path.name == "__main__.py":  # ``python -m`` entry point: importing it runs the command line
            continue
        parts = path.relative_to(lib.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def widget_setup_objects(module: str) -> list[str]:
    """Names the widget's ``setup()`` calls or imports (the logic class, helpers imported there)."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    widgets = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}Widget"]
    setups = [n for w in widgets for n in w.body if isinstance(n, ast.FunctionDef) and n.name == "setup"]
    names = []
    for node in (node for setup in setups for node in ast.walk(setup)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [f"{node.module}:{alias.name}" for alias in node.names]
    return names


def check_load(module: str) -> list[str]:
    """Start-up load of ``module`` in a fresh Slicer; returns what failed (empty: it loads)."""
    guard = install_guard(allowed_imports() | {"qt", "ctk"})
    install_stubs()
    install_qt_placeholders()
    failures = []
    try:
        file_module = import_module_file(module)
        parent = types.SimpleNamespace()  # what Slicer hands a module: fields the module fills in
        getattr(file_module, module)(parent)  # what Slicer does next: the module's metadata
        if module != COMMON:
            getattr(file_module, f"{module}Logic")()  # the widget's setup() makes one
        for reference in widget_setup_objects(module):
            name, attribute = reference.split(":")
            getattr(importlib.import_module(name), attribute)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        failures.append(f"{module}: {type(exc).__name__}: {exc}")
    _report_refused(guard)
    return failures


def check_requirements(module: str) -> list[str]:
    """With the bundled set plus exactly ``module``'s requirements, every file of its Lib imports."""
    extra = requirement_names(module_requirements(module)) + list(TORCH_FROM_EXTENSION.get(module, ()))
    guard = install_guard(allowed_imports(extra) | {"qt", "ctk"})
    install_stubs()
    install_qt_placeholders()
    import_module_file(module)
    failures = []
    for name in lib_modules(module):
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    _report_refused(guard)
    return failures


def _report_refused(guard: SlicerImportGuard) -> None:
    """Imports that were refused but caught (optional extras of a library): shown, not failures."""
    for name in dict.fromkeys(guard.refused):
        print(f"note: refused and caught: {name}", file=sys.stderr)


def check_self_test(module: str) -> list[str]:
    """The module's ``<Module>Test`` on a slicer-core scene, started as a fresh Slicer would run it.

    Slicer starts with only its bundled packages: the module file is imported then. The
    requirements become importable only once ``ensure_requirements`` has been called (as the
    consent path on Apply installs them), so a self-test that imports a requirement before
    asking for it fails here as it would in a new user's Slicer.
    """
    guard = install_guard(allowed_imports() | {"qt", "ctk"})
    install_stubs()
    install_qt_placeholders()
    import slicer

    from RadiologyAICommonLib import dependencies

    slicer.mrmlScene, slicer.modules = mrml_application()
    file_module = import_module_file(module)
    ensure = dependencies.ensure_requirements

    def ensure_then_allow(requirements, purpose):
        ensure(requirements, purpose)
        extra = requirement_names(requirements) + list(TORCH_FROM_EXTENSION.get(module, ()))
        guard.allowed |= allowed_imports(extra)

    dependencies.ensure_requirements = ensure_then_allow
    case = getattr(file_module, f"{module}Test")()
    result = unittest.TestResult()
    case.run(result)
    failures = [f"{module}Test: {text}" for _, text in result.errors + result.failures]
    if result.testsRun != 1 or result.skipped:
        failures.append(f"{module}Test: did not run ({result.skipped})")
    elif not failures and "Test passed" not in case.__dict__.get("messages", []):
        failures.append(f"{module}Test: finished without 'Test passed' ({case.__dict__.get('messages')})")
    return failures


# -- every import statement, function bodies included -------------------------------------------------------

# Imported only inside Slicer, from Slicer itself or the extension it names (never from requirements.txt).
SLICER_RUNTIME_IMPORTS = {"qt", "ctk", "slicer", "PyTorchUtils"}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _guarded_lines(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside ``try:`` blocks that catch a failed import (optional extras)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = set()
            for handler in node.handlers:
                if handler.type is None:
                    caught.add("BaseException")
                else:
                    caught |= {ast.unparse(t).split(".")[-1] for t in getattr(handler.type, "elts", [handler.type])}
            if caught & _IMPORT_ERRORS:
                lines |= {
                    n.lineno
                    for stmt in node.body
                    for n in ast.walk(stmt)
                    if isinstance(n, (ast.Import, ast.ImportFrom))
                }
    return lines


def _file_imports(path: Path, package: str | None) -> tuple[set[str], list[tuple[str, int]]]:
    """(project modules, external ``(top-level name, line)``) that ``path`` imports anywhere, optional ones left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded, project, external = _guarded_lines(tree), set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the same Lib package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in project_imports():
                project.add(name)
            elif top not in sys.stdlib_module_names and node.lineno not in guarded and top != "__future__":
                external.append((top, node.lineno))
    return project, external


def _project_file(name: str) -> tuple[Path, str] | None:
    """The file and package of a project module name (``VesselQuantLib.pipeline``), if it is one."""
    parts = name.split(".")
    for length in range(len(parts), 0, -1):
        head = parts[:length]
        module = head[0][:-3] if head[0].endswith("Lib") else head[0]
        base = ROOT / module / Path(*head)
        for path, package in ((base.with_suffix(".py"), ".".join(head[:-1])), (base / "__init__.py", ".".join(head))):
            if path.is_file():
                return path, package or head[0]
    return None


def reachable_external_imports(module: str) -> dict[str, list[str]]:
    """Every non-optional third-party import reachable from ``<module>.py`` and its Lib, with where it is."""
    start = [f"{module}"] + lib_modules(module)
    seen, todo, found = set(), list(start), {}
    while todo:
        name = todo.pop()
        located = _project_file(name)
        if located is None or located[0] in seen:
            continue
        seen.add(located[0])
        project, external = _file_imports(*located)
        todo += sorted(project)
        for top, line in external:
            found.setdefault(top, []).append(f"{located[0].relative_to(ROOT)}:{line}")
    return found


def check_all_imports(module: str) -> list[str]:
    """Every import the module can reach, function bodies included, is bundled, required or Slicer's own."""
    extra = requirement_names(module_requirements(module)) + list(TORCH_FROM_EXTENSION.get(module, ()))
    allowed = allowed_imports(extra) | SLICER_RUNTIME_IMPORTS
    return [
        f"{module}: '{top}' is imported ({', '.join(where[:3])}) but neither bundled with Slicer nor in "
        f"{module}/Resources/requirements.txt"
        for top, where in sorted(reachable_external_imports(module).items())
        if top not in allowed
    ]


def main(argv: list[str]) -> int:
    check, module = argv
    checks = {
        "load": check_load,
        "requirements": check_requirements,
        "all-imports": check_all_imports,
        "self-test": check_self_test,
    }
    failures = checks[check](module)
    if not failures:
        print(f"{module}: {check} ok")
    for line in failures:
        print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
