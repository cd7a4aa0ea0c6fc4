"""HipRadiomics in the browser: an MRI and its femoral-head mask (upload or data folder) and a model folder from the
data folder -> the worker process (``radiologyai hip predict``, whose JSON it reads) -> the class, its probability
and the features that contributed most."""

from __future__ import annotations

import json

from trame.widgets import html

from RadiologyAICommonLib.errors import RadiologyAIError

from .. import present
from .base import Panel, testid

MASK_COLOR = (0.95, 0.75, 0.2)
TOP_FEATURES = 5


def _read_mri(path):
    from RadiologyAICommonLib.imageio import read_volume

    return read_volume(path, "MRI", modality="MR")


def _read_mask(path):
    from RadiologyAICommonLib.imageio import read_image

    return read_image(path, "mask")


class HipRadiomicsPanel(Panel):
    name = "hipradiomics"
    title = "HipRadiomics"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.init_state(image="", mask="", model="", summary="")
        self._image = self._mask = None
        self._image_node = self._mask_node = None

    # ------------------------------------------------------------------ inputs
    async def load_image_upload(self, files) -> None:
        self._set_image(self.read_upload(files, "MRI", _read_mri), "uploaded MRI")

    async def load_image_path(self) -> None:
        path = self.data_path("image_path", "MRI")
        self._set_image(_read_mri(path), path.name)

    async def load_mask_upload(self, files) -> None:
        self._set_mask(self.read_upload(files, "mask", _read_mask), "uploaded mask")

    async def load_mask_path(self) -> None:
        path = self.data_path("mask_path", "mask")
        self._set_mask(_read_mask(path), path.name)

    def _set_image(self, image, name: str) -> None:
        self.viewer.remove(self._image_node, self._mask_node)
        self._image, self._image_node = image, self.show_volume(image, name)
        self._mask = self._mask_node = None
        self.set_loaded("image", image, name, mask="", summary="", results={"headers": [], "rows": []})

    def _set_mask(self, mask, name: str) -> None:
        import SimpleITK as sitk

        from RadiologyAICommonLib import mrml

        if self._image is None:
            raise RadiologyAIError("load the MRI before its mask")
        self.viewer.remove(self._mask_node)
        roi = sitk.Cast(mask > 0, sitk.sitkUInt8)
        self._mask_node = mrml.labelmap_to_segmentation_node(roi, {1: ("Femoral head", MASK_COLOR)}, f"{name} ROI")
        self.show_segmentation(self._mask_node)
        self._mask = mask
        self.set(mask=name)

    # ------------------------------------------------------------------ run
    async def predict(self) -> None:
        from RadiologyAICommonLib.imageio import write_image

        if self._image is None or self._mask is None:
            raise RadiologyAIError("load the MRI and its femoral-head mask first")
        model = self.data_path("model", "model folder")
        self.set(summary="", results={"headers": [], "rows": []})
        work = self.ctx.results.new_folder("hipradiomics")
        try:
            write_image(self._image, work / "image.nrrd")
            write_image(self._mask, work / "mask.nrrd")
            result = await self.run_job(
                [
                    "hip",
                    "predict",
                    str(work / "image.nrrd"),
                    str(work / "mask.nrrd"),
                    "--model",
                    str(model),
                    "--top",
                    str(TOP_FEATURES),
                ],
                "HipRadiomics",
            )
        finally:
            self.ctx.results.discard(work)
        if result is None:
            return
        try:
            prediction = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise RadiologyAIError("HipRadiomics: the prediction printed no result") from None
        import pandas as pd

        top = pd.DataFrame(
            prediction.get("top_features") or [], columns=["feature", "value", "shap_log_odds", "towards"]
        )
        self.set(
            summary=(
                f"{prediction['class']} (probability of {prediction['positive_class']} "
                f"{prediction['probability']:.2f}, threshold {prediction['threshold']:.2f})"
            ),
            results=present.table(top),
        )

    def build(self) -> None:
        k = self.key
        html.Div(
            "Radiomics classifier of the femoral head on MRI, with a model folder written by 'radiologyai hip train'.",
            classes="text-body-2",
        )
        self.volume_source("image", "MRI", self.load_image_upload, self.load_image_path)
        self.loaded_label("image", "image", "MRI")
        self.volume_source("mask", "mask", self.load_mask_upload, self.load_mask_path)
        html.Div(
            "mask: {{ %s || 'none loaded' }}" % k("mask"),
            classes="text-body-2 my-1",
            raw_attrs=testid("hipradiomics-mask"),
        )
        self.path_input("model", "model folder:")
        self.button(
            "predict",
            "Predict",
            self.action(self.predict),
            disabled=f"{k('busy')} || !{k('image')} || !{k('mask')}",
            color="primary",
        )
        self.cancel_button()
        self.progress_bar()
        self.error_banner()
        self.summary_text()
        self.table("results", "results")
