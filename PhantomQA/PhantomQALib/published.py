"""The seed study's published figures (Hernandez-Giron et al.) used for calibration and reports.

Published: the IQR (HU) of the vessel voxels that the automatic tool found on the 3 mm
radius vessels, at the lowest and highest CTDIvol (0.2 and 4.0 mGy):
FBP 120 -> 37 HU, IR 62 -> 25 HU, DLR 62 -> 36 HU; and the detected vessel-tree volume
(DLR 6.4-7.4 ml, IR 4.2-5.5 ml).

Intermediate doses (0.5, 1.0, 2.1 mGy) are interpolated with the physics of the
measurement: the measured IQR is a noise part whose SD scales as 1/sqrt(dose) (quantum
noise) added in quadrature to a dose-independent part a (partial volume at the vessel
wall, material texture)::

    IQR(d) = sqrt(a^2 + b^2 / d)

with a and b solved exactly from the two published end points of each reconstruction.
"""

from __future__ import annotations

import math

PUBLISHED_IQR_3MM_HU: dict[str, dict[float, float]] = {
    "fbp": {0.2: 120.0, 4.0: 37.0},
    "ir": {0.2: 62.0, 4.0: 25.0},
    "dlr": {0.2: 62.0, 4.0: 36.0},
}
PUBLISHED_VOLUME_ML: dict[str, tuple[float, float]] = {"ir": (4.2, 5.5), "dlr": (6.4, 7.4)}
STUDY_DOSES_MGY = (0.2, 0.5, 1.0, 2.1, 4.0)
STUDY_RECONS = ("fbp", "ir", "dlr")
CALIBRATION_RADIUS_MM = 3.0


def iqr_model_constants(recon: str) -> tuple[float, float]:
    """(a, b) of IQR(d) = sqrt(a^2 + b^2 / d) through the two published points."""
    (d1, q1), (d2, q2) = sorted(PUBLISHED_IQR_3MM_HU[recon].items())
    b2 = (q1**2 - q2**2) / (1.0 / d1 - 1.0 / d2)
    a2 = q2**2 - b2 / d2
    return math.sqrt(max(a2, 0.0)), math.sqrt(max(b2, 0.0))


def published_iqr_3mm(recon: str, ctdivol_mgy: float) -> float:
    """Published (end points) or physics-interpolated (other doses) 3 mm IQR in HU."""
    table = PUBLISHED_IQR_3MM_HU.get(recon)
    if table is None:
        return float("nan")
    for dose, value in table.items():
        if math.isclose(dose, ctdivol_mgy, rel_tol=1e-6):
            return value
    a, b = iqr_model_constants(recon)
    return math.sqrt(a * a + b * b / ctdivol_mgy)


def is_published_point(recon: str, ctdivol_mgy: float) -> bool:
    return any(math.isclose(d, ctdivol_mgy, rel_tol=1e-6) for d in PUBLISHED_IQR_3MM_HU.get(recon, {}))
