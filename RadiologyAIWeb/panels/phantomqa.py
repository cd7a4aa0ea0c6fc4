"""PhantomQA in the browser, as its Slicer widget: run the demo study (or a quick variant of it) or a study on a
manifest from the data folder, in the worker process (``radiologyai phantom demo | study``); then
``PhantomQALogic.loadResults`` -> the summary table, the dose plots of the report and a link to ``report.html``."""

from __future__ import annotations

import os

from trame.widgets import html
from trame.widgets import vuetify3 as v3

from RadiologyAICommonLib.errors import RadiologyAIError
from RadiologyAICommonLib.workdir import output_dir

from .. import present
from ..security import check_data_files
from .base import Panel, testid

# The quick variant: the small phantom, FBP at two doses, two repetitions (4 acquisitions, about 20 s on 2 cores).
QUICK_DEMO = ["--phantom", "small", "--doses", "1.0,4.0", "--recons", "fbp", "--repetitions", "2"]
TABLE_COLUMNS = (
    "recon",
    "ctdivol_mgy",
    "radius_mm",
    "mpv_mean_hu",
    "mpv_sd_hu",
    "iqr_mean_hu",
    "iqr_sd_hu",
    "detection_mean",
)


def result_field(results, name: str):
    """A field of ``PhantomQALogic.loadResults``' return value: a dataclass attribute, or a dict key (older API)."""
    if isinstance(results, dict):
        return results.get(name)
    return getattr(results, name, None)


def result_values(results) -> list:
    """All fields of that return value (dict or dataclass)."""
    import dataclasses

    if isinstance(results, dict):
        return list(results.values())
    if dataclasses.is_dataclass(results):
        return [getattr(results, f.name) for f in dataclasses.fields(results)]
    return list(vars(results).values())


class PhantomQAPanel(Panel):
    name = "phantomqa"
    title = "PhantomQA"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.init_state(quick=True, manifest="", plot="", report="", summary="")
        self._output = None

    async def run_demo(self) -> None:
        from PhantomQALib.logic import PhantomQALogic

        quick = bool(self.get("quick"))
        work = self.ctx.results.new_folder("phantomqa")
        args = PhantomQALogic.demoArguments(str(output_dir(work)), workers=1 if quick else (os.cpu_count() or 1))
        await self._run(args + ["--no-scans"] + (QUICK_DEMO if quick else []), work, "PhantomQA demo")

    async def run_manifest(self) -> None:
        from PhantomQALib.logic import PhantomQALogic

        manifest = self.data_path("manifest", "manifest")
        self._check_manifest(manifest)
        work = self.ctx.results.new_folder("phantomqa")
        args = PhantomQALogic.studyArguments(str(manifest), str(output_dir(work)), workers=1)
        await self._run(args, work, "PhantomQA study")

    def _check_manifest(self, manifest) -> None:
        """The scans a manifest lists must be in the data folder too (the server reads nothing else).

        Checked on the CSV's ``path`` column before PhantomQA's own reader (run by the study) looks at the files,
        so the server does not even say whether a file outside exists; the reader validates everything else.
        """
        import csv

        if manifest.is_dir():
            return  # a DICOM folder, already inside the data folder
        root = self.ctx.data_dir.root
        try:
            with open(manifest, newline="", encoding="utf-8-sig") as handle:
                paths = [(row.get("path") or "").strip() for row in csv.DictReader(handle)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise RadiologyAIError(f"manifest {manifest.name}: cannot read it as CSV ({exc})") from None
        for text in filter(None, paths):
            scan = (manifest.parent / text).resolve()  # an absolute path replaces the parent
            if not scan.is_relative_to(root):
                raise RadiologyAIError(f"manifest {manifest.name}: {text} is outside the data folder")
            if scan.exists():
                check_data_files(scan, root)

    async def _run(self, args, work, what: str) -> None:
        self._clear()
        try:
            result = await self.run_job(args, what)
        except Exception:
            self.ctx.results.discard(work)
            raise
        if result is None:
            self.ctx.results.discard(work)
            return
        self._show(output_dir(work))
        self._output = work

    def _show(self, out) -> None:
        import slicer

        from PhantomQALib.logic import PhantomQALogic
        from PhantomQALib.reporting import dose_figure

        results = PhantomQALogic().loadResults(str(out))
        summary_node, volumes_node = result_field(results, "summaryTable"), result_field(results, "volumesTable")
        summary, volumes = slicer.util.dataframeFromTable(summary_node), slicer.util.dataframeFromTable(volumes_node)
        self.viewer.remove(
            *[n for n in result_values(results) if hasattr(n, "GetID")]
        )  # tables and charts: shown here, not in the views
        token = self.ctx.results.publish(out)
        report = self.ctx.results.url(token, "report.html") if (out / "report.html").is_file() else ""
        doses = ", ".join(f"{d:g}" for d in sorted(set(summary["ctdivol_mgy"])))
        self.set(
            results=present.table(summary, columns=TABLE_COLUMNS),
            plot=present.figure_url(dose_figure(summary, volumes)),
            report=report,
            summary=f"{len(set(summary['recon']))} reconstruction(s) at {doses} mGy; mean \u00b1 SD over repetitions",
        )

    def _clear(self) -> None:
        self.ctx.results.discard(self._output)
        self._output = None
        self.set(results={"headers": [], "rows": []}, plot="", report="", summary="")

    def build(self) -> None:
        k = self.key
        html.Div(
            "CT dose x reconstruction study on a lung-vessel phantom: simulated (the demo) or real scans "
            "(a manifest CSV in the data folder).",
            classes="text-body-2",
        )
        v3.VSwitch(
            v_model=(k("quick"),),
            label="quick demo (small phantom, FBP, 2 doses, 2 repetitions: ~20 s)",
            density="compact",
            hide_details=True,
            color="primary",
            raw_attrs=testid("phantomqa-quick"),
        )
        self.button("run-demo", "Run demo", self.action(self.run_demo), disabled=k("busy"), color="primary")
        with html.Div(classes="d-flex align-center"):
            self.path_input("manifest", "manifest:")
            self.button("run-manifest", "Run study", self.action(self.run_manifest), disabled=k("busy"))
        self.cancel_button()
        self.progress_bar()
        self.error_banner()
        self.summary_text("text-body-2 my-2")
        html.A(
            "Open report.html",
            v_if=k("report"),
            href=(k("report"),),
            target="_blank",
            classes="my-2 d-block",
            raw_attrs=testid("phantomqa-report"),
        )
        html.Img(v_if=k("plot"), src=(k("plot"),), style="max-width: 100%", raw_attrs=testid("phantomqa-plot"))
        self.table("results", "results")
