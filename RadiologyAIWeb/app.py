"""The trame application: one tab per module on the left, the slice and 3D views on the right.

``serve(host, port, data_dir, ...)`` builds it and blocks until the server stops (SIGTERM/SIGINT). Result files
(downloads, PhantomQA's report.html) are served from the app's temporary workspace under
``/radiologyai-results/<token>/<file>``; that workspace is removed on exit.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

from trame.app import get_server
from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_vuetify.ui.vuetify3 import SinglePageLayout

from .context import RESULTS_ROUTE, AppContext
from .panels.base import testid
from .security import DataDir
from .viewer import Viewer

log = logging.getLogger("RadiologyAIWeb")
UPLOAD_MESSAGE_MARGIN = 8 * 1024 * 1024  # websocket frame overhead above the upload limit


def _panel_classes():
    from .panels.hipradiomics import HipRadiomicsPanel
    from .panels.phantomqa import PhantomQAPanel
    from .panels.salivaryseg import SalivarySegPanel
    from .panels.vesselquant import VesselQuantPanel

    return [VesselQuantPanel, PhantomQAPanel, SalivarySegPanel, HipRadiomicsPanel]


class WebApp:
    def __init__(self, data_dir: DataDir, max_upload_bytes: int, workspace: Path, debug: bool = False):
        self.server = get_server(client_type="vue3", ws_max_msg_size=max_upload_bytes + UPLOAD_MESSAGE_MARGIN)
        self.viewer = Viewer(self.server, debug=debug)
        self.ctx = AppContext(self.server, self.viewer, data_dir, max_upload_bytes, workspace, debug=debug)
        self.panels = [cls(self.ctx) for cls in _panel_classes()]
        self.server.state.setdefault("active_panel", self.panels[0].name)
        self.server.state.setdefault("data_files", data_dir.listing())
        self.server.state.change("active_panel")(self._on_tab)
        self.server.controller.on_server_bind.add(self._add_routes)
        self.server.controller.on_server_ready.add(self._quiet_disconnects)
        self._build_ui()

    def _on_tab(self, active_panel, **_) -> None:
        for panel in self.panels:
            panel.activate(panel.name == active_panel)
        self.server.state.data_files = self.ctx.data_dir.listing()  # files added since are suggested too

    # ---------------------------------------------------------------- HTTP: result files
    def _add_routes(self, wslink_server) -> None:
        from aiohttp import web

        store = self.ctx.results

        async def result_file(request):
            path = store.file(request.match_info["token"], request.match_info["name"])
            if path is None:
                raise web.HTTPNotFound()
            return web.FileResponse(path)

        wslink_server.app.router.add_get(RESULTS_ROUTE + "/{token}/{name}", result_file)

    def _quiet_disconnects(self, **_) -> None:
        """A browser tab closing while a view image is on its way is normal: no traceback on the terminal for it.
        Any other exception left in a task is logged on one line (with its traceback under --debug)."""
        import asyncio

        def handler(loop, context):
            exc = context.get("exception")
            if isinstance(exc, ConnectionError):  # aiohttp's ClientConnectionResetError among them
                return
            if self.ctx.debug:
                loop.default_exception_handler(context)
            else:
                log.error("%s%s", context.get("message", "error"), f" ({type(exc).__name__}: {exc})" if exc else "")

        asyncio.get_event_loop().set_exception_handler(handler)

    # ---------------------------------------------------------------- page
    def _build_ui(self) -> None:
        with SinglePageLayout(self.server) as layout:
            self.layout = layout
            layout.title.set_text("RadiologyAI")
            with layout.toolbar:
                v3.VSpacer()
                html.Div(
                    "data folder: " + (str(self.ctx.data_dir.root) if self.ctx.data_dir.root else "none"),
                    classes="text-caption mr-4",
                )
            with layout.content:
                with html.Datalist(id="radiologyai-data-files"):
                    html.Option(v_for="f in data_files", key=("f",), value=("f",))
                with html.Div(classes="d-flex", style="height: calc(100vh - 64px)"):
                    with html.Div(style="width: 520px; min-width: 420px; overflow-y: auto", classes="pa-2"):
                        with v3.VTabs(v_model=("active_panel",), density="compact"):
                            for panel in self.panels:
                                v3.VTab(panel.title, value=panel.name, raw_attrs=testid(f"tab-{panel.name}"))
                        with v3.VWindow(v_model=("active_panel",)):
                            for panel in self.panels:
                                with v3.VWindowItem(value=panel.name, raw_attrs=testid(f"panel-{panel.name}")):
                                    with html.Div(classes="pa-2"):
                                        panel.build()
                    with html.Div(style="flex: 1; position: relative", raw_attrs=testid("viewer")):
                        self.viewer.build_ui(layout)

    def start(self, host: str, port: int) -> None:
        self.server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0)


def serve(host: str, port: int, data_dir: DataDir, max_upload_bytes: int, debug: bool = False) -> None:
    workspace = Path(tempfile.mkdtemp(prefix="radiologyai-web-"))
    saved_argv = sys.argv
    sys.argv = sys.argv[:1]  # trame parses the command line too: keep radiologyai's own options away from it
    try:
        app = WebApp(data_dir, max_upload_bytes, workspace, debug=debug)
        print(
            f"RadiologyAI web: http://{host}:{port}/ (data folder: {data_dir.root or 'none'}); Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        try:
            app.start(host, port)
        finally:
            for panel in app.panels:
                panel.stop()
    finally:
        sys.argv = saved_argv
        shutil.rmtree(workspace, ignore_errors=True)
