"""SalivarySeg in the browser, as its Slicer widget: a CT (upload or data folder) and a model folder from the data
folder -> ``SalivarySegLogic.predictionArguments`` -> the worker process (``radiologyai salivary predict``) ->
``SalivarySegLogic.loadPrediction`` -> the tumour overlay, the class and its probability, the label download."""

from __future__ import annotations

from trame.widgets import html

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.workdir import output_dir

from .. import present
from .base import Panel, read_ct, testid

SOFT_TISSUE_WINDOW = (400.0, 40.0)


class SalivarySegPanel(Panel):
    name = "salivaryseg"
    title = "SalivarySeg"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.init_state(ct="", model="", summary="", download="")
        self._ct_node = None
        self._segmentation = None
        self._output = None

    async def load_upload(self, files) -> None:
        self._set_ct(self.read_upload(files, "CT", read_ct), "uploaded CT")

    async def load_path(self) -> None:
        path = self.data_path("ct_path", "CT")
        self._set_ct(read_ct(path), path.name)

    def _set_ct(self, image, name: str) -> None:
        self._clear()
        self.viewer.remove(self._ct_node)
        self._ct_node = self.show_volume(image, name, SOFT_TISSUE_WINDOW)
        self.set_loaded("ct", image, name, status="CT loaded", progress=0)

    async def predict(self) -> None:
        from SalivarySegLib.logic import SalivarySegLogic

        if self._ct_node is None:
            raise RadiologyAIError("load a CT first")
        model = self.data_path("model", "model folder")
        logic = SalivarySegLogic()
        self._clear()
        ct_node = self._ct_node
        work = self.ctx.results.new_folder("salivaryseg")
        try:
            args = logic.predictionArguments(ct_node, str(model), str(work))
            result = await self.run_job(args + ["--threads", "1"], "SalivarySeg")
        except Exception:
            self.ctx.results.discard(work)
            raise
        if result is None or ct_node is not self._ct_node:
            self.ctx.results.discard(work)
            return
        prediction = logic.loadPrediction(output_dir(work), ct_node)
        self._segmentation = prediction.segmentationNode
        self._output = work
        self.show_segmentation(prediction.segmentationNode)
        rows = [{"class": name, "probability": p} for name, p in sorted(prediction.probabilities.items())]
        token = self.ctx.results.publish(output_dir(work))
        import pandas as pd

        self.set(
            summary=prediction.summary,
            results=present.table(pd.DataFrame(rows, columns=["class", "probability"])),
            download=self.ctx.results.url(token, "tumour_label.nrrd"),
        )

    def _clear(self) -> None:
        self.viewer.remove(self._segmentation)
        self._segmentation = None
        self.ctx.results.discard(self._output)
        self._output = None
        self.set(summary="", results={"headers": [], "rows": []}, download="")

    def build(self) -> None:
        k = self.key
        html.Div(
            "Parotid / submandibular tumour segmentation (V-Net) and benign/malignant class (ResNet) of a CT, "
            "with a model folder written by 'radiologyai salivary train'.",
            classes="text-body-2",
        )
        self.volume_source("ct", "CT", self.load_upload, self.load_path)
        self.loaded_label("ct", "ct", "CT")
        self.path_input("model", "model folder:")
        self.button(
            "predict", "Predict", self.action(self.predict), disabled=f"{k('busy')} || !{k('ct')}", color="primary"
        )
        self.cancel_button()
        self.progress_bar()
        self.error_banner()
        self.summary_text()
        self.table("results", "results")
        html.A(
            "Download the tumour label (NRRD)",
            v_if=k("download"),
            href=(k("download"),),
            download="tumour_label.nrrd",
            raw_attrs=testid("salivaryseg-download-segmentation"),
        )
