"""The published-vs-simulated table the PhantomQA benchmarks print (bench_phantom_demo.py,
bench_phantom_calibration.py)."""

from __future__ import annotations

import numpy as np

# The calibration fits these doses; the study's other doses (0.5, 2.1 mGy) are held out.
FIT_DOSES = (0.2, 1.0, 4.0)


def print_comparison_table(table, fit_doses=FIT_DOSES, measured: str = "simulated") -> None:
    """Markdown table of ``PhantomQALib.aggregate.published_comparison`` rows, then the MPV/IQR hits per dose role."""
    print(
        f"\n| quantity | recon | CTDIvol (mGy) | dose used for | {measured} (mean ± SD) | "
        "worst repetition | published | off | within 15 % |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in table.itertuples(index=False):
        role = "fit" if any(np.isclose(row.ctdivol_mgy, d) for d in fit_doses) else "held out"
        digits = 2 if row.quantity.startswith("volume") else 0
        print(
            f"| {row.quantity} | {row.recon.upper()} | {row.ctdivol_mgy:g} | {role} | "
            f"{row.mean:.{digits}f} ± {row.sd:.{digits}f} | {row.worst:.{digits}f} | {row.published} | "
            f"{row.off_pct:+.1f} % | {'yes' if row.within else 'no'} |"
        )
    hu = table[table["quantity"].str.startswith(("MPV", "IQR"))]
    for role, pick in (("fit doses", True), ("held-out doses", False)):
        part = hu[[any(np.isclose(d, f) for f in fit_doses) == pick for d in hu["ctdivol_mgy"]]]
        if len(part):
            print(
                f"{role}: MPV/IQR within 15 %: {int(part['within'].sum())}/{len(part)}; "
                f"mean |off| {part['off_pct'].abs().mean():.1f} %, worst {part['off_pct'].abs().max():.1f} %"
            )
