"""Static checks that every module follows Slicer's scripted-module conventions and ARCHITECTURE.md's layers.

The widget layer cannot run here (no Slicer application, no Qt), so it is checked by
parsing: classes and methods of the template, valid Qt Designer XML, every Lib file and
resource listed in CMake, and the import rules (no slicer/qt in cores, no qt in logic).
Qt's own loader checks the .ui files in test_slicer_ui.py; the modules load in an emulated
fresh Slicer in test_slicer_runtime.py.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from slicer_python import ALL_MODULES, COMMON, MODULES, ROOT, SLICER_BUNDLED_DISTRIBUTIONS, normalise

# Lib files allowed to import slicer: MRML adapters and Slicer-only helpers. Only slicerui may import qt.
SLICER_ADAPTERS = {"logic.py", "mrml.py", "dependencies.py", "logicbase.py", "slicerui.py"}
QT_ALLOWED = {"slicerui.py"}
WIDGET_METHODS = {
    "setup",
    "cleanup",
    "enter",
    "exit",
    "onSceneStartClose",
    "onSceneEndClose",
    "initializeParameterNode",
    "setParameterNode",
    "_checkCanApply",
    "onApplyButton",
}
# Never pip-installed inside Slicer: what it bundles, Slicer itself, and torch (the PyTorch extension's job).
SHIPPED_BY_SLICER = {normalise(name) for name in SLICER_BUNDLED_DISTRIBUTIONS} | {"slicer-core", "torch"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [ast.unparse(base) for base in cls.bases]


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _lib_files(module: str) -> list[Path]:
    return sorted((ROOT / module / f"{module}Lib").rglob("*.py"))


@pytest.mark.parametrize("module", ALL_MODULES)
def test_module_layout(module):
    folder = ROOT / module
    for relative in [
        f"{module}.py",
        f"{module}Lib/__init__.py",
        "CMakeLists.txt",
        f"Resources/Icons/{module}.png",
        "Resources/requirements.txt",
    ]:
        assert (folder / relative).is_file(), f"{module}: missing {relative}"
    if module != COMMON:
        for relative in [f"{module}Lib/logic.py", f"{module}Lib/cli.py", f"Resources/UI/{module}.ui", "README.md"]:
            assert (folder / relative).is_file(), f"{module}: missing {relative}"
    png = (folder / f"Resources/Icons/{module}.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), f"{module}: icon is not a PNG"


@pytest.mark.parametrize("module", ALL_MODULES)
def test_module_class_follows_template(module):
    tree = _tree(ROOT / module / f"{module}.py")
    classes = _classes(tree)
    assert module in classes and "ScriptedLoadableModule" in _base_names(classes[module])
    assert f"{module}Test" in classes and "ScriptedLoadableModuleTest" in _base_names(classes[f"{module}Test"])
    test_methods = {n.name for n in classes[f"{module}Test"].body if isinstance(n, ast.FunctionDef)}
    assert {"setUp", "runTest"} <= test_methods and any(m.startswith("test_") for m in test_methods)
    init = ast.unparse(next(n for n in classes[module].body if isinstance(n, ast.FunctionDef) and n.name == "__init__"))
    for attribute in ("title", "categories", "dependencies", "contributors", "helpText", "acknowledgementText"):
        assert f"self.parent.{attribute}" in init, f"{module}: parent.{attribute} not set"
    if module == COMMON:
        assert "self.parent.hidden = True" in init
    else:
        assert re.search(r"self\.parent\.dependencies = \[[^\]]*'RadiologyAICommon'", init.replace('"', "'"))
        assert "RadiologyAI" in init.split("self.parent.categories", 1)[1].split("\n", 1)[0]


@pytest.mark.parametrize("module", MODULES)
def test_widget_follows_template(module):
    path = ROOT / module / f"{module}.py"
    tree = _tree(path)
    classes = _classes(tree)
    widget = classes.get(f"{module}Widget")
    assert widget is not None, f"{module}Widget missing"
    assert {"ScriptedLoadableModuleWidget", "VTKObservationMixin"} <= set(_base_names(widget))
    methods = {n.name for n in widget.body if isinstance(n, ast.FunctionDef)}
    assert WIDGET_METHODS <= methods, f"{module}Widget lacks {sorted(WIDGET_METHODS - methods)}"
    parameter_classes = [
        c for c in classes.values() if any(ast.unparse(d) == "parameterNodeWrapper" for d in c.decorator_list)
    ]
    assert parameter_classes, f"{module}: no @parameterNodeWrapper parameter class"
    source = path.read_text(encoding="utf-8")
    assert f'self.resourcePath("UI/{module}.ui")' in source or f"self.resourcePath('UI/{module}.ui')" in source
    assert "slicer.util.childWidgetVariables" in source and "connectGui(self.ui)" in source
    assert re.search(rf"from {module}Lib\.logic import .*\b{module}Logic\b", source), f"{module}: logic not imported"
    logic_tree = _tree(ROOT / module / f"{module}Lib" / "logic.py")
    logic = _classes(logic_tree).get(f"{module}Logic")
    assert logic is not None and "LogicBase" in _base_names(logic), f"{module}Logic must derive from LogicBase"


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_matches_widget(module):
    ui_path = ROOT / module / "Resources" / "UI" / f"{module}.ui"
    root = ET.parse(ui_path).getroot()  # valid XML
    assert root.tag == "ui" and root.get("version") == "4.0"
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget" and top.get("name") == module
    # Names and parameter bindings are checked with Qt's own loader in test_slicer_ui.py. Every MRML node
    # selector gets the scene from the root widget.
    selectors = {w.get("name") for w in top.iter("widget") if w is not top and w.get("class", "").startswith("qMRML")}
    connected = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    assert selectors <= connected, (
        f"{module}.ui: selectors without setMRMLScene connection: {sorted(selectors - connected)}"
    )
    parameter_names = {p.findtext("string") for p in root.iter("property") if p.get("name") == "SlicerParameterName"}
    assert parameter_names, f"{module}.ui: no widget carries SlicerParameterName"


@pytest.mark.parametrize("module", ALL_MODULES)
def test_cmake_lists_every_script_and_resource(module):
    folder = ROOT / module
    cmake = (folder / "CMakeLists.txt").read_text()
    assert f"set(MODULE_NAME {module})" in cmake
    assert "slicerMacroBuildScriptedModule" in cmake and "WITH_GENERIC_TESTS" in cmake
    listed = cmake.replace("${MODULE_NAME}", module)
    for path in [folder / f"{module}.py", *_lib_files(module)]:
        relative = path.relative_to(folder).as_posix()
        assert re.search(rf"(^|\s){re.escape(relative)}(\s|$)", listed, re.M), (
            f"{module}/CMakeLists.txt lacks {relative}"
        )
    for path in sorted((folder / "Resources").rglob("*")):
        if path.is_file():
            relative = path.relative_to(folder).as_posix()
            assert re.search(rf"(^|\s){re.escape(relative)}(\s|$)", listed, re.M), (
                f"{module}/CMakeLists.txt lacks {relative}"
            )


@pytest.mark.parametrize("module", ALL_MODULES)
def test_layers_keep_slicer_and_qt_out_of_cores(module):
    for path in _lib_files(module):
        roots = _imported_roots(_tree(path))
        if path.name not in SLICER_ADAPTERS:
            assert not roots & {"slicer", "qt", "ctk", "__main__"}, (
                f"{path.relative_to(ROOT)} is a core: it must not import {sorted(roots & {'slicer', 'qt', 'ctk'})}"
            )
        if path.name not in QT_ALLOWED:
            assert not roots & {"qt", "ctk", "PythonQt"}, f"{path.relative_to(ROOT)} must not import Qt"


@pytest.mark.parametrize("module", ALL_MODULES)
def test_requirements_leave_slicer_packages_alone(module):
    from RadiologyAICommonLib.dependencies import read_requirements

    for requirement in read_requirements(ROOT / module / "Resources" / "requirements.txt"):
        name = normalise(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        assert name not in SHIPPED_BY_SLICER, f"{module}: {name} must not be pip-installed inside Slicer"


def test_untrusted_files_never_unpickled():
    for module in ALL_MODULES:
        for path in _lib_files(module):
            source = path.read_text(encoding="utf-8")
            assert not re.search(r"^\s*import (pickle|joblib|dill|cloudpickle)\b", source, re.M), path
            assert "yaml.load(" not in source and "yaml.unsafe_load" not in source, path
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                    safe = any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in node.keywords
                    )
                    assert safe, f"{path}:{node.lineno}: torch.load without weights_only=True"


def test_extension_cmake_and_index_entry():
    import json

    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"project\(RadiologyAI\)", cmake)
    for key in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ):
        assert re.search(rf"set\({key}\s", cmake), key
    for line in (
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert line in cmake
    for module in ALL_MODULES:
        assert f"add_subdirectory({module})" in cmake
    entry = json.loads((ROOT / "RadiologyAI.json").read_text())
    assert entry["category"] == "Quantification" and entry["scm_url"].startswith("https://")
    assert (ROOT / "LICENSE.txt").is_file() and (ROOT / "RadiologyAI.png").is_file()


def test_repository_text_files_use_lf():
    for path in ROOT.rglob("*"):
        if ".venv" in path.parts or ".git" in path.parts or not path.is_file():
            continue
        if (
            path.suffix in {".py", ".ui", ".txt", ".md", ".json", ".yaml", ".cmake", ".toml"}
            or path.name == "CMakeLists.txt"
        ):
            assert b"\r\n" not in path.read_bytes(), f"{path} has CRLF line endings"
