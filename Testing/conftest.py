"""pytest fixtures: a real MRML scene from the slicer-core wheel, usable by ``slicer.util``.

slicer-core has Slicer's MRML, module logics and ``slicer/util.py`` but no Qt and no
application object; ``slicer_python.mrml_application`` wires the pieces ``slicer.util``
needs (the module self-tests run on the same scene).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def mrml_scene(monkeypatch):
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core is not installed")
    from slicer_python import mrml_application

    scene, modules = mrml_application()
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    yield scene
    scene.Clear(True)
