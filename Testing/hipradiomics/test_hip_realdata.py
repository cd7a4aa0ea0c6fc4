"""HipRadiomics extraction reproduces PyRadiomics' own baseline values on its real MRI test case (brain1).

The data and baselines ship in the pyradiomics-bhklab 3.1.4 source distribution, found or fetched
by ``Testing/realdata.py``; skipped when it is not available.
Criterion: PyRadiomics' own test criterion, relative difference < 3 % for every baseline feature.
Run with: .venv/bin/python -m pytest Testing/hipradiomics -m realdata
"""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk
from realdata import data_folder_or_skip

pytestmark = pytest.mark.realdata

CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape")


@pytest.fixture(scope="module")
def sdist() -> Path:
    return data_folder_or_skip().parent


@pytest.mark.parametrize("feature_class", CLASSES)
def test_brain1_baseline(sdist, feature_class):
    from HipRadiomicsLib.extraction import extract_files
    from HipRadiomicsLib.radiomics_params import validate_params

    baseline = pd.read_csv(sdist / "data" / "baseline" / f"baseline_{feature_class}.csv", index_col=0)["brain1"]
    settings = ast.literal_eval(baseline["diagnostics_Configuration_Settings"])
    image_types = ast.literal_eval(baseline["diagnostics_Configuration_EnabledImageTypes"])
    if feature_class == "shape":
        settings["resegmentRange"] = None  # as PyRadiomics' own test does
    params = validate_params(
        {
            "setting": {k: v for k, v in settings.items() if v is not None},
            "imageType": image_types,
            "featureClass": {feature_class: None},
        },
        f"brain1 {feature_class} baseline settings",
    )
    result = extract_files(sdist / "data" / "brain1_image.nrrd", sdist / "data" / "brain1_label.nrrd", params)
    expected = {k: float(v) for k, v in baseline.items() if k.startswith(f"original_{feature_class}_")}
    compared = sorted(set(expected) & set(result.features))
    assert len(compared) >= 0.9 * len(result.features) and compared
    worst = 0.0
    for name in compared:
        ref, value = expected[name], result.features[name]
        diff = (0.0 if value == ref else 1.0) if ref == 0 else abs(1 - value / ref)
        worst = max(worst, diff)
        assert diff < 0.03, f"{name}: {value} vs baseline {ref}"
    print(f"{feature_class}: {len(compared)} features, max relative difference {worst:.2e}")
    assert sitk.ReadImage(str(sdist / "data" / "brain1_label.nrrd")).GetSize()
