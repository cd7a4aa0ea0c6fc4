"""What the four panels share: state keys under the panel's name, the error banner, progress, Cancel, jobs, and the
small widgets (buttons, file pickers, tables) with their stable ``data-testid`` (``<panel>-<what>``).

A click schedules an asyncio task and returns at once, so the page stays live while a job runs; the task
reports through the trame state. A :class:`RadiologyAIError` shows its message in the panel's error banner
(``<panel>-error``); any other exception shows one line naming it (the traceback only with ``--debug``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RadiologyAICommonLib.errors import RadiologyAIError

from ..jobs import Job, raise_for_result
from ..security import check_data_files, save_uploads, uploaded_path

log = logging.getLogger("RadiologyAIWeb")


def testid(value: str) -> list[str]:
    return [f'data-testid="{value}"']


def read_ct(path):
    """A CT as the CLI reads it (a file or a DICOM folder; a one-line error otherwise)."""
    from RadiologyAICommonLib.imageio import read_volume

    return read_volume(path, "CT", modality="CT")


class Panel:
    name = "panel"  # prefix of state keys and test ids
    title = "Panel"

    def __init__(self, ctx):
        self.ctx = ctx
        self.state = ctx.state
        self.viewer = ctx.viewer
        self._job: Job | None = None
        self._tasks: set[asyncio.Task] = set()
        self.volume_node = None  # what the views show while this panel's tab is open
        self.segmentation_nodes: list = []
        self.init_state(busy=False, progress=0, status="", error="", loads=0)  # loads: volumes loaded so far

    # ------------------------------------------------------------------ state
    def key(self, what: str) -> str:
        return f"{self.name}_{what}"

    def init_state(self, **values) -> None:
        for what, value in values.items():
            self.state.setdefault(self.key(what), value)

    def set(self, **values) -> None:
        with self.state:
            for what, value in values.items():
                self.state[self.key(what)] = value

    def get(self, what: str):
        return self.state[self.key(what)]

    # ------------------------------------------------------------------ actions
    def action(self, coroutine_function):
        """A click handler that runs ``coroutine_function(*args)`` as a task, guarded by the error banner."""

        def handler(*args):
            task = asyncio.get_event_loop().create_task(self._guarded(coroutine_function, *args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return handler

    async def _guarded(self, coroutine_function, *args) -> None:
        self.set(error="")
        try:
            await coroutine_function(*args)
        except RadiologyAIError as exc:
            self.set(error=str(exc), busy=False, status="")
        except Exception as exc:  # a bug: one line in the banner and the log, never a crash of the server
            if self.ctx.debug:
                log.exception("%s: internal error", self.name)
            else:
                log.error("%s: internal error (%s: %s)", self.name, type(exc).__name__, exc)
            self.set(error=f"internal error ({type(exc).__name__}: {exc})", busy=False, status="")

    async def run_job(self, args: list[str], what: str):
        """Run ``radiologyai ARGS`` in the worker process; returns its result, or None when cancelled."""
        if self._job is not None:
            raise RadiologyAIError(f"{self.title} is already running; cancel it first")

        def progress(fraction: float, message: str) -> None:
            self.set(progress=round(100 * max(0.0, min(1.0, fraction)), 1), status=message)

        self._job = Job(args, on_progress=progress)
        self.set(busy=True, progress=0, status=f"{what}: starting")
        try:
            result = await self._job.run()
        finally:
            self._job = None
            self.set(busy=False)
        if result.cancelled:
            self.set(status=f"{what}: cancelled", progress=0)
            return None
        raise_for_result(result, what)
        self.set(progress=100, status=f"{what}: done")
        return result

    def stop(self) -> None:
        """Server shutdown: stop a running job's worker (it runs in its own process group)."""
        if self._job is not None:
            self._job.stop()

    async def cancel(self) -> None:
        if self._job is not None:
            self.set(status="cancelling")
            await self._job.cancel()

    # ------------------------------------------------------------------ inputs
    def read_upload(self, files, what: str, reader):
        """Save an upload (size-limited) in a temporary folder, read it with ``reader(path)``, remove the copy."""
        folder = save_uploads(files, self.ctx.max_upload_bytes, parent=self.ctx.workspace)
        path = uploaded_path(folder)
        try:
            for file in folder.iterdir():
                check_data_files(file, folder)
            return reader(path)
        except RadiologyAIError as exc:  # the message names the upload, not the server's temporary folder
            shown = path.name if path.is_file() else f"the {len(list(folder.iterdir()))} uploaded files"
            raise RadiologyAIError(str(exc).replace(str(path), shown)) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def data_path(self, what_key: str, what: str) -> Path:
        """The path typed in the field ``what_key``, inside the data folder (and so is any data file it names)."""
        path = self.ctx.data_dir.resolve(self.get(what_key) or "", what)
        check_data_files(path, self.ctx.data_dir.root)
        return path

    def show_volume(self, image, name: str, window: tuple[float, float] | None = None):
        """A SimpleITK image as a new volume node, shown in the slice views; returns the node."""
        from RadiologyAICommonLib import mrml

        node = mrml.image_to_volume_node(image, name)
        node.CreateDefaultDisplayNodes()
        if window is not None:
            display = node.GetDisplayNode()
            display.AutoWindowLevelOff()
            display.SetWindowLevel(*window)
        self.viewer.show_volume(node)
        self.volume_node = node
        return node

    def set_loaded(self, label_key: str, image, name: str, **values) -> None:
        """The loaded-volume label ``label_key`` reads ``name (size)`` and ``loads`` counts one more, in one state
        update with ``values``: a test that waits for the count then reads the text, never an older one."""
        size = "x".join(str(n) for n in image.GetSize())
        self.set(**{label_key: f"{name} ({size} voxels)"}, loads=self.get("loads") + 1, **values)

    def show_segmentation(self, node, **options) -> None:
        """Overlay and 3D surfaces of ``node`` (hidden until this panel's tab is opened, if another one is)."""
        self.viewer.show_segmentation(node, **options)
        self.segmentation_nodes = [n for n in self.segmentation_nodes if self.viewer.has(n)] + [node]
        if self.state["active_panel"] != self.name:
            self.viewer.set_visible(node, False)

    def activate(self, active: bool) -> None:
        """The tab was opened (or left): the views show this panel's volume and segmentations only."""
        for node in self.segmentation_nodes:
            if self.viewer.has(node):
                self.viewer.set_visible(node, active)
        if active:
            shown = self.volume_node if self.viewer.has(self.volume_node) else None
            self.viewer.show_volume(shown, reset=False)  # None: empty views for a panel with no volume yet

    # ------------------------------------------------------------------ widgets
    def loaded_label(self, what: str, text_key: str, label: str) -> None:
        """``<label>: <name (size)>``; its ``data-loads`` counts the loads (a test waits for it to change)."""
        html.Div(
            f"{label}: {{{{ {self.key(text_key)} || 'none loaded' }}}}",
            classes="text-body-2 my-1",
            raw_attrs=testid(f"{self.name}-{what}") + [f':data-loads="{self.key("loads")}"'],
        )

    def volume_source(self, what: str, label: str, load_upload, load_path) -> None:
        """Upload (one file, or the files of a DICOM series) or a path in the data folder, then Load."""
        self.upload_input(f"{what}-upload", f"{label} file(s):", self.action(load_upload), multiple=True)
        with html.Div(classes="d-flex align-center"):
            self.path_input(f"{what}_path", "or in the data folder:")
            self.button(f"load-{what}", "Load", self.action(load_path), disabled=self.key("busy"))

    def error_banner(self) -> None:
        v3.VAlert(
            v_if=self.key("error"),
            type="error",
            variant="tonal",
            density="compact",
            closable=True,
            text=(self.key("error"),),
            click_close=f"{self.key('error')} = ''",
            raw_attrs=testid(f"{self.name}-error"),
            classes="my-2",
        )

    def progress_bar(self) -> None:
        v3.VProgressLinear(
            model_value=(self.key("progress"),),
            active=(f"{self.key('busy')} || {self.key('progress')} > 0",),
            height=8,
            color="primary",
            raw_attrs=testid(f"{self.name}-progress") + [f':data-value="{self.key("progress")}"'],
            classes="my-1",
        )
        html.Div("{{ %s }}" % self.key("status"), classes="text-caption", raw_attrs=testid(f"{self.name}-status"))

    def summary_text(self, classes: str = "text-body-1 my-2") -> None:
        """The panel's one-line result summary (state ``summary``), shown once there is one."""
        html.Div(
            "{{ %s }}" % self.key("summary"),
            v_if=self.key("summary"),
            classes=classes,
            raw_attrs=testid(f"{self.name}-summary"),
        )

    def button(self, what: str, label: str, click, disabled: str | None = None, **kwargs) -> None:
        v3.VBtn(
            label,
            click=click,
            disabled=(disabled,) if disabled else False,
            density="comfortable",
            classes="mr-2 my-1",
            raw_attrs=testid(f"{self.name}-{what}"),
            **kwargs,
        )

    def cancel_button(self) -> None:
        self.button(
            "cancel",
            "Cancel",
            self.action(self.cancel),
            disabled=f"!{self.key('busy')}",
            color="warning",
            variant="outlined",
        )

    def upload_input(self, what: str, label: str, handler, multiple: bool = False) -> None:
        """A plain file input; the browser refuses files over the limit before sending anything."""
        limit = self.ctx.max_upload_bytes
        trigger = self.ctx.server.controller.trigger_name(handler)
        error = self.key("error")
        message = f"upload over the limit of this server ({limit / 1e6:.0f} MB): put the file in its data folder"
        change = (  # inside a double-quoted HTML attribute: single quotes only
            f"Array.from($event.target.files).reduce((a, f) => a + f.size, 0) > {limit} "
            f"? ({error} = '{message}') : trigger('{trigger}', [$event.target.files])"
        )
        with html.Div(classes="my-1"):
            html.Label(label, classes="text-body-2 mr-2")
            html.Input(type="file", change=change, multiple=multiple, raw_attrs=testid(f"{self.name}-{what}"))

    def path_input(self, what: str, label: str) -> None:
        """A text field for a path inside the data folder, with the folder's files as suggestions."""
        with html.Div(classes="my-1 d-flex align-center"):
            html.Label(label, classes="text-body-2 mr-2")
            html.Input(
                v_model=(self.key(what), ""),
                list="radiologyai-data-files",
                placeholder="path inside the data folder",
                style="border: 1px solid #999; padding: 2px 6px; flex: 1",
                raw_attrs=testid(f"{self.name}-{what.replace('_', '-')}"),
            )

    def table(self, what: str, state_name: str) -> None:
        """A table whose body rows are ``state[<panel>_<state_name>].rows``."""
        data = self.key(state_name)
        self.init_state(**{state_name: {"headers": [], "rows": []}})
        with v3.VTable(
            density="compact",
            v_if=f"{data}.rows.length",
            raw_attrs=testid(f"{self.name}-{what}"),
            classes="my-2",
            style="max-height: 320px; overflow-y: auto",
        ):
            with html.Thead():
                with html.Tr():
                    html.Th("{{ h }}", v_for=f"h in {data}.headers", key=("h",))
            with html.Tbody():
                with html.Tr(v_for=f"(row, i) in {data}.rows", key=("i",)):
                    html.Td("{{ cell }}", v_for="(cell, j) in row", key=("j",))

    def build(self) -> None:  # the panel's content, inside its tab
        raise NotImplementedError
