"""Real chest CT slabs (pyradiomics-bhklab sdist, data/lung1_image.nrrd and lung2_image.nrrd).

Optional: ``pytest -m realdata Testing/vesselquant``; the sdist is found or fetched by ``realdata.py``
and the test is skipped when it is not available.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from realdata import data_folder_or_skip


@pytest.fixture(scope="module")
def lung_data() -> Path:
    return data_folder_or_skip()


@pytest.mark.realdata
@pytest.mark.parametrize("case", ["lung1", "lung2"])
def test_real_chest_ct(lung_data, case):
    from VesselQuantLib.pipeline import run_vessel_quant

    ct = sitk.ReadImage(str(lung_data / f"{case}_image.nrrd"))
    result = run_vessel_quant(ct)
    summary = result.summary
    print(
        case,
        {
            k: summary[k]
            for k in ("lung_volume_ml", "total_volume_ml", "vessel_fraction", "fit_alpha", "fit_r2", "runtime_s")
        },
    )
    lung = sitk.GetArrayFromImage(result.lung_mask).astype(bool)
    vessels = sitk.GetArrayFromImage(result.vessel_label).astype(bool)
    hu = sitk.GetArrayFromImage(ct)
    assert vessels.any() and not (vessels & ~lung).any()  # vessels only inside the lungs
    assert np.median(hu[lung & ~vessels]) < -700  # the lung mask holds lung, not soft tissue
    assert summary["lung_volume_ml"] > 500
    assert 0.01 <= summary["vessel_fraction"] < 0.20
    assert summary["fit_alpha"] < 0 and summary["fit_r2"] >= 0.8
