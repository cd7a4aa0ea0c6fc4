"""The module .ui files through Qt's own loader, checked against the widget code and the parameter node.

What ``slicer.util.loadUI`` and ``parameterNodeWrapper.connectGui`` do in Slicer, short of
CTK and Slicer's own widget classes (QUiLoader makes those their declared base class):

- the file loads with ``QUiLoader`` (PySide6, offscreen);
- every ``self.ui.<name>`` the widget uses names a widget of the loaded tree;
- every widget with a ``SlicerParameterName`` names a field of the module's parameter node
  class, and the widget class can represent the field's type (the connectors of Slicer's
  ``parameterNodeWrapper/guiConnectors.py``: which widget class goes with which type, and
  whether a range or a ``Choice`` must be annotated).

Run as a script, one module per interpreter: ``python Testing/slicer_ui.py VesselQuant [file.ui]``.
"""

from __future__ import annotations

import ast
import enum
import os
import pathlib
import sys
import typing
import xml.etree.ElementTree as ET

from slicer_python import ROOT, import_module_file, install_stubs

# Widget class -> the (unannotated) field types Slicer's GUI connectors bind it to.
_NODE = "MRML node"
CONNECTABLE_TYPES = {
    "QCheckBox": {bool},
    "QPushButton": {bool},
    "QSlider": {int},
    "QSpinBox": {int},
    "QDoubleSpinBox": {float},
    "ctkSliderWidget": {float},
    "QComboBox": {int, float, str, bool, enum.Enum},
    "QLineEdit": {str},
    "QTextEdit": {str},
    "ctkPathLineEdit": {pathlib.Path},
    "ctkDirectoryButton": {pathlib.Path},
    "qMRMLNodeComboBox": {_NODE},
    "qMRMLSubjectHierarchyTreeView": {_NODE},
}
NEEDS_RANGE = {"QSlider", "ctkSliderWidget"}  # the connector refuses an unbounded value
NEEDS_CHOICE_UNLESS_ENUM = {"QComboBox"}


def ui_names_used(module: str) -> set[str]:
    """Every ``self.ui.<name>`` in the module file."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }


def declared_classes(ui_file: pathlib.Path) -> dict[str, str]:
    """Widget name -> the class the .ui declares (QUiLoader replaces unknown ones by their base)."""
    return {w.get("name"): w.get("class") for w in ET.parse(ui_file).getroot().iter("widget")}


def _field_kind(annotation):
    """(unannotated type, annotation extras) of a parameter node field; MRML node types become _NODE."""
    extras = ()
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extras = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if all(getattr(a, "__name__", "").startswith("vtkMRML") for a in members):
            return _NODE, tuple(extras)
    if getattr(annotation, "__name__", "").startswith("vtkMRML"):
        return _NODE, tuple(extras)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return enum.Enum, tuple(extras)
    if annotation in (pathlib.PurePath, pathlib.PosixPath, pathlib.WindowsPath):
        return pathlib.Path, tuple(extras)
    return annotation, tuple(extras)


def check_ui(module: str, ui_file: pathlib.Path | None = None) -> list[str]:
    """Problems of ``ui_file`` (default ``<module>/Resources/UI/<module>.ui``); empty: it binds as in Slicer."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QWidget

    ui_file = ui_file or ROOT / module / "Resources" / "UI" / f"{module}.ui"
    messages = []
    qInstallMessageHandler(lambda kind, context, text: messages.append((kind, text)))
    app = QApplication.instance() or QApplication([])  # noqa: F841 - QUiLoader needs one
    loader = QUiLoader()
    root = loader.load(str(ui_file))
    if root is None:
        return [f"{ui_file.name}: QUiLoader could not load it: {loader.errorString()}"]
    problems = [
        f"{ui_file.name}: Qt: {text}"
        for kind, text in messages
        if kind in (QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
    ]
    widgets = {w.objectName(): w for w in root.findChildren(QWidget)}
    widgets[root.objectName()] = root
    classes = declared_classes(ui_file)
    problems += [
        f"{module}.py uses self.ui.{name}, which {ui_file.name} does not have"
        for name in sorted(ui_names_used(module) - set(widgets))
    ]

    install_stubs()
    file_module = import_module_file(module)
    parameter_class = getattr(file_module, f"{module}ParameterNode")
    fields = typing.get_type_hints(parameter_class, include_extras=True)
    wrapper = sys.modules["slicer.parameterNodeWrapper"]
    for name, widget in sorted(widgets.items()):
        parameter = widget.property("SlicerParameterName")
        if parameter is None:
            continue
        widget_class = classes.get(name, widget.metaObject().className())
        if parameter not in fields:
            problems.append(f"{name}: SlicerParameterName '{parameter}' is not a field of {parameter_class.__name__}")
            continue
        kind, extras = _field_kind(fields[parameter])
        if kind not in CONNECTABLE_TYPES.get(widget_class, set()):
            problems.append(f"{name} ({widget_class}) cannot represent {parameter}: {fields[parameter]}")
        if widget_class in NEEDS_RANGE and not any(isinstance(e, wrapper.WithinRange) for e in extras):
            problems.append(f"{name} ({widget_class}) needs a WithinRange annotation on {parameter}")
        if (
            widget_class in NEEDS_CHOICE_UNLESS_ENUM
            and kind is not enum.Enum
            and not any(isinstance(e, wrapper.Choice) for e in extras)
        ):
            problems.append(f"{name} ({widget_class}) needs a Choice annotation on {parameter}")
    return problems


def main(argv: list[str]) -> int:
    module, *ui_file = argv
    problems = check_ui(module, pathlib.Path(ui_file[0]) if ui_file else None)
    for line in problems:
        print(line)
    if not problems:
        print(f"{module}: ui ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
