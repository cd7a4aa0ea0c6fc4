"""The slice and 3D views of the web front-end: the only module of the app that imports trame-slicer.

trame-slicer's API is young (its README says so), so everything the app asks of it goes through
:class:`Viewer`: one slicer-core MRML scene shown in an axial slice view and a 3D view rendered on the server.
The scene is also bound to ``slicer.mrmlScene`` / ``slicer.modules``, which is where the modules' logic classes
(``RadiologyAICommonLib.mrml``, ``slicer.util``) create their nodes, so a logic result appears in the views.
Versions: trame-slicer 2.0.0 with slicer-core 5.13 (pinned in pyproject's ``web`` extra).
"""

from __future__ import annotations

import os
import types

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # headless: EGL, no X server

import slicer  # noqa: E402
from trame_slicer.core import LayoutManager, SlicerApp  # noqa: E402
from trame_slicer.rca_view import register_rca_factories  # noqa: E402
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition  # noqa: E402

LAYOUT_ID = "RadiologyAI"


class Viewer:
    def __init__(self, server, debug: bool = False):
        self.app = SlicerApp()
        if not debug:  # VTK's warnings (interactor deprecations, EGL probing) stay off the terminal
            from vtkmodules.vtkCommonCore import vtkObject

            vtkObject.GlobalWarningDisplayOff()
        self.scene = self.app.scene
        self._bind_slicer_globals()
        register_rca_factories(self.app.view_manager, server)
        self.layout = LayoutManager(self.scene, self.app.view_manager, server)
        self.layout.register_layout(
            LAYOUT_ID,
            Layout(LayoutDirection.Horizontal, [ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.threed_view()]),
        )
        self.layout.set_layout(LAYOUT_ID)
        self._shown: list = []

    def _bind_slicer_globals(self) -> None:
        """What ``slicer.util`` and the logic classes look up on the ``slicer`` module (no Slicer application)."""
        slicer.mrmlScene = self.scene
        logics = {
            "segmentations": self.app.segmentations_logic,
            "volumes": self.app.volumes_logic,
        }
        slicer.modules = types.SimpleNamespace(
            **{name: types.SimpleNamespace(logic=lambda logic=logic: logic) for name, logic in logics.items()}
        )

    def build_ui(self, layout) -> None:
        """Place the view grid in the trame layout being built."""
        self.layout.initialize_layout_grid(layout)

    # ---------------------------------------------------------------- showing nodes
    def show_volume(self, volume_node, reset: bool = True) -> None:
        """``volume_node`` as the slice background (no volume rendering: the 3D view shows segmentations)."""
        self.app.display_manager.show_volume_in_slice_background(volume_node)
        self.app.display_manager.show_volume_in_slice_foreground(None)
        if reset:
            self.app.display_manager.reset_views()
        self.render()

    def set_visible(self, node, visible: bool) -> None:
        display = node.GetDisplayNode()
        if display is not None:
            display.SetVisibility(visible)
        self.render()

    def has(self, node) -> bool:
        return node is not None and bool(self.scene.IsNodePresent(node))

    def show_segmentation(self, segmentation_node, hidden_in_3d: tuple[str, ...] = (), opacity_2d: float = 0.6) -> None:
        """Overlay on the slices (filled + outline) and closed surfaces in 3D; ``hidden_in_3d``: segment names."""
        segmentation_node.CreateDefaultDisplayNodes()
        segmentation_node.CreateClosedSurfaceRepresentation()
        display = segmentation_node.GetDisplayNode()
        display.SetVisibility(True)
        display.SetOpacity2DFill(opacity_2d)
        segmentation = segmentation_node.GetSegmentation()
        for name in hidden_in_3d:
            segment_id = segmentation.GetSegmentIdBySegmentName(name)
            if segment_id:
                display.SetSegmentVisibility3D(segment_id, False)
        self.app.display_manager.set_node_visible_in_group(segmentation_node)
        for view in self.app.view_manager.get_threed_views():
            view.reset_view()
            view.schedule_render()
        for view in self.app.view_manager.get_slice_views():
            view.schedule_render()

    def remove(self, *nodes) -> None:
        """Take nodes (and their display/storage nodes) out of the scene."""
        for node in nodes:
            if self.has(node):
                self.scene.RemoveNode(node)

    def render(self) -> None:
        for view in self.app.view_manager.get_views():
            view.schedule_render()
