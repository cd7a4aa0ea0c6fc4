"""SalivarySeg and HipRadiomics in the browser, end to end with a model folder from the data folder.

The models are the modules' own tiny test models (``salivary_helpers.tiny_model``, ``hip_testdata.model``),
cached per test process: in a whole-suite run the module tests have trained them already, so these tests cost only
the predictions. Run alone, they train them first (about a minute each on 2 cores).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk

from web_helpers import tid

TESTING = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_MS = 180_000


def _helpers(folder: str, module: str):
    path = str(TESTING / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return __import__(module)


@pytest.fixture(scope="module")
def salivary_inputs(web_server):
    helpers = _helpers("salivaryseg", "salivary_helpers")
    shutil.copytree(helpers.tiny_model(), web_server.data_dir / "salivary-model", dirs_exist_ok=True)
    sitk.WriteImage(helpers.tiny_case(50).image, str(web_server.data_dir / "salivary_ct.nrrd"))


@pytest.fixture(scope="module")
def hip_inputs(web_server):
    data = _helpers("hipradiomics", "hip_testdata")
    shutil.copytree(data.model(), web_server.data_dir / "hip-model", dirs_exist_ok=True)
    case = pd.read_csv(data.cohort()).iloc[0]
    folder = data.cohort().parent
    for column, name in (("image", "hip_image.nrrd"), ("mask", "hip_mask.nrrd")):
        source = Path(case[column]) if Path(case[column]).is_absolute() else folder / case[column]
        shutil.copyfile(source, web_server.data_dir / name)


def _load(page, panel: str, what: str, path: str) -> None:
    page.fill(tid(f"{panel}-{what}-path"), path)
    page.click(tid(f"{panel}-load-{what}"))
    page.wait_for_selector(f'{tid(f"{panel}-{what}")}:has-text("{path}")', timeout=30_000)


def test_salivary_prediction_with_a_model_folder(page, web_server, salivary_inputs):
    page.click(tid("tab-salivaryseg"))
    _load(page, "salivaryseg", "ct", "salivary_ct.nrrd")

    page.fill(tid("salivaryseg-model"), "no-such-model")
    page.click(tid("salivaryseg-predict"))
    page.wait_for_selector(f'{tid("salivaryseg-error")}:has-text("no-such-model")', timeout=10_000)

    page.fill(tid("salivaryseg-model"), "salivary-model")
    page.click(tid("salivaryseg-predict"))
    summary = page.wait_for_selector(tid("salivaryseg-summary"), timeout=RUN_TIMEOUT_MS).inner_text()
    assert "probability" in summary or summary == "No tumour found"
    if "probability" in summary:
        classes = page.locator(f'{tid("salivaryseg-results")} tbody tr td:first-child').all_inner_texts()
        assert len(classes) == 2
        assert page.locator(tid("salivaryseg-download-segmentation")).get_attribute("href")


def test_hip_prediction_with_a_model_folder(page, web_server, hip_inputs):
    page.click(tid("tab-hipradiomics"))
    _load(page, "hipradiomics", "image", "hip_image.nrrd")
    _load(page, "hipradiomics", "mask", "hip_mask.nrrd")
    page.fill(tid("hipradiomics-model"), "hip-model")
    page.click(tid("hipradiomics-predict"))
    summary = page.wait_for_selector(tid("hipradiomics-summary"), timeout=RUN_TIMEOUT_MS).inner_text()
    assert "probability" in summary and "threshold" in summary
    header = page.locator(f'{tid("hipradiomics-results")} thead th').all_inner_texts()
    assert header == ["feature", "value", "shap_log_odds", "towards"]
    assert 1 <= page.locator(f'{tid("hipradiomics-results")} tbody tr').count() <= 5  # the model's features, at most 5
