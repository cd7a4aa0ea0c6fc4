"""VesselQuant in the browser, as its Slicer widget: a CT (upload, data-folder file or DICOM folder, or the built-in
sample phantom) -> Apply in the worker process (``radiologyai vessels``) -> ``VesselQuantLogic.loadResult`` ->
overlay on the slices, vessels in 3D, the per-radius table, the volume/IQR plot and the downloads."""

from __future__ import annotations

import asyncio

from trame.widgets import html

from RadiologyAICommonLib.errors import RadiologyAIError

from .. import present
from .base import Panel, read_ct, testid

# The Slicer widget's sample phantom (VesselQuant.py, VesselQuantTest): 100 x 100 x 48 voxels, two trees.
SAMPLE = {"size_xyz": (100, 100, 48), "seed": 3, "root_radius_mm": 2.5}
LUNG_WINDOW = (1500.0, -600.0)
TABLE_COLUMNS = ("radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu")
DOWNLOADS = (
    ("segmentation", "vessel_label.nrrd", "segmentation (NRRD)"),
    ("radius", "vessel_radius.nrrd", "radius map (NRRD)"),
    ("csv", "per_radius.csv", "per-radius table (CSV)"),
)


class VesselQuantPanel(Panel):
    name = "vesselquant"
    title = "VesselQuant"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.init_state(ct="", summary="", plot="", downloads=[], path="")
        self._ct_node = None
        self._nodes = None
        self._output = None

    # ------------------------------------------------------------------ inputs
    async def load_sample(self) -> None:
        from VesselQuantLib.vessel_phantom import make_vessel_phantom

        self.set(busy=True, status="making the sample phantom")
        try:
            phantom = await asyncio.to_thread(make_vessel_phantom, **SAMPLE)
        finally:
            self.set(busy=False)
        self._set_ct(phantom.image, "VesselQuant sample phantom")

    async def load_upload(self, files) -> None:
        image = self.read_upload(files, "CT", read_ct)
        self._set_ct(image, _name_of(files, "uploaded CT"))

    async def load_data(self) -> None:
        path = self.data_path("path", "CT")
        self._set_ct(read_ct(path), path.name)

    def _set_ct(self, image, name: str) -> None:
        self._clear_results()
        self.viewer.remove(self._ct_node)
        self._ct_node = self.show_volume(image, name, LUNG_WINDOW)
        self.set_loaded("ct", image, name, status="CT loaded", progress=0)

    # ------------------------------------------------------------------ run
    async def apply(self) -> None:
        from RadiologyAICommonLib.workdir import output_dir
        from VesselQuantLib.logic import VesselQuantLogic

        if self._ct_node is None:
            raise RadiologyAIError("load a CT first (upload, data folder or the sample)")
        self._clear_results()
        ct_node = self._ct_node
        work = self.ctx.results.new_folder("vesselquant")
        try:
            args = VesselQuantLogic().processArguments(ct_node, None, work)
            result = await self.run_job(args, "VesselQuant")
        except Exception:
            self.ctx.results.discard(work)
            raise
        if result is None or ct_node is not self._ct_node:  # cancelled, or another CT loaded meanwhile
            self.ctx.results.discard(work)
            return
        self._show(output_dir(work), ct_node)
        self._output = work

    def _show(self, out, ct_node) -> None:
        from VesselQuantLib.logic import VesselQuantLogic

        nodes = VesselQuantLogic().loadOutput(out, ct_node)
        self._nodes = nodes
        self.show_segmentation(nodes.segmentation, hidden_in_3d=("Lungs",))
        per_radius = nodes.result.per_radius
        summary = nodes.result.summary
        token = self.ctx.results.publish(out)
        self.set(
            results=present.table(per_radius, columns=TABLE_COLUMNS),
            plot=present.vessel_plot(per_radius),
            summary=(
                f"Vessel volume {summary['total_volume_ml']:.1f} ml in {summary['lung_volume_ml']:.0f} ml of lung "
                f"({summary['vessel_fraction']:.1%}); small vessels {summary['small_vessel_volume_ml']:.1f} ml; "
                f"log-linear fit R\u00b2 {summary['fit_r2']:.2f}"
            ),
            downloads=[
                {
                    "id": f"{self.name}-download-{key}",
                    "href": self.ctx.results.url(token, file),
                    "label": label,
                    "file": file,
                }
                for key, file, label in DOWNLOADS
            ],
        )

    def _clear_results(self) -> None:
        if self._nodes is not None:
            n = self._nodes
            self.viewer.remove(n.segmentation, n.radiusVolume, n.table, n.chart, n.summaryTable)
            self._nodes = None
        self.ctx.results.discard(self._output)
        self._output = None
        self.set(results={"headers": [], "rows": []}, plot="", summary="", downloads=[])

    # ------------------------------------------------------------------ UI
    def build(self) -> None:
        k = self.key
        html.Div("Lung-vessel segmentation and per-radius quantification of a chest CT (HU).", classes="text-body-2")
        self.button("load-sample", "Load sample phantom", self.action(self.load_sample), disabled=k("busy"))
        self.upload_input("upload", "CT file(s):", self.action(self.load_upload), multiple=True)
        with html.Div(classes="d-flex align-center"):
            self.path_input("path", "or in the data folder:")
            self.button("load-data", "Load", self.action(self.load_data), disabled=k("busy"))
        self.loaded_label("ct", "ct", "CT")
        self.button("apply", "Apply", self.action(self.apply), disabled=f"{k('busy')} || !{k('ct')}", color="primary")
        self.cancel_button()
        self.progress_bar()
        self.error_banner()
        self.summary_text("text-body-2 my-2")
        html.Img(v_if=k("plot"), src=(k("plot"),), style="max-width: 100%", raw_attrs=testid("vesselquant-plot"))
        self.table("results", "results")
        with html.Div(v_if=f"{k('downloads')}.length", classes="my-2"):
            html.Span("Download: ", classes="text-body-2")
            html.A(
                "{{ d.label }}",
                v_for=f"d in {k('downloads')}",
                key=("d.id",),
                href=("d.href",),
                download=("d.file",),
                classes="mr-3",
                raw_attrs=[':data-testid="d.id"'],
            )


def _name_of(files, default: str) -> str:
    if isinstance(files, list) and len(files) == 1 and isinstance(files[0], dict):
        return str(files[0].get("name") or default)[:80]
    return default
