"""PhantomQA in the browser: the quick demo -> summary table, dose plot and report.html; a manifest out of bounds."""

from __future__ import annotations

from web_helpers import tid

RUN_TIMEOUT_MS = 240_000


def _open(page):
    page.click(tid("tab-phantomqa"))
    page.wait_for_selector(tid("phantomqa-run-demo"), timeout=10_000)


def test_quick_demo_shows_summary_plot_and_report(page, web_server, warm_numba):
    _open(page)
    page.click(tid("phantomqa-run-demo"))
    page.wait_for_selector(f'{tid("phantomqa-results")} tbody tr', timeout=RUN_TIMEOUT_MS)

    header = page.locator(f'{tid("phantomqa-results")} thead th').all_inner_texts()
    assert header[:3] == ["recon", "ctdivol_mgy", "radius_mm"]
    cells = page.locator(f'{tid("phantomqa-results")} tbody tr td:first-child').all_inner_texts()
    assert set(cells) == {"fbp"} and len(cells) >= 4
    doses = {float(t) for t in page.locator(f'{tid("phantomqa-results")} tbody tr td:nth-child(2)').all_inner_texts()}
    assert doses == {1.0, 4.0}
    assert page.locator(tid("phantomqa-plot")).is_visible()

    href = page.locator(tid("phantomqa-report")).get_attribute("href")
    report = page.request.get(web_server.url.rstrip("/") + href)
    assert report.ok and "<html" in report.text() and "data:image/png;base64" in report.text()


def test_manifest_must_be_in_the_data_folder(page, web_server, tmp_path):
    _open(page)
    outside = tmp_path / "scan.nrrd"
    outside.write_bytes(b"not read")
    (web_server.data_dir / "manifest.csv").write_text(
        f"path,recon,ctdivol_mgy,repetition\n{outside},fbp,1.0,1\n", encoding="utf-8"
    )
    page.fill(tid("phantomqa-manifest"), "manifest.csv")
    page.click(tid("phantomqa-run-manifest"))
    page.wait_for_selector(f'{tid("phantomqa-error")}:has-text("outside the data folder")', timeout=10_000)
    assert not web_server.children()
