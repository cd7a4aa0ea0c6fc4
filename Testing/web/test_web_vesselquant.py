"""VesselQuant in the browser: sample -> Apply -> table, overlay, downloads; bad uploads; Cancel; the data folder."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

from web_helpers import (
    click_and_wait_for_load,
    changed_fraction,
    tid,
    wait_for_stable_view,
    wait_for_view,
    write_dicom_series,
)

SCREENSHOT = Path(__file__).resolve().parents[2] / "Screenshots" / "RadiologyAIWeb.png"
RUN_TIMEOUT_MS = 180_000


def _load_sample(page):
    click_and_wait_for_load(page, "vesselquant-load-sample", "vesselquant-ct")
    assert "sample phantom" in page.inner_text(tid("vesselquant-ct"))


def test_sample_apply_shows_table_overlay_and_downloads(page, web_server, warm_numba, tmp_path):
    _load_sample(page)
    before = wait_for_stable_view(page)

    page.click(tid("vesselquant-apply"))
    page.wait_for_selector(f'{tid("vesselquant-results")} tbody tr', timeout=RUN_TIMEOUT_MS)

    header = page.locator(f'{tid("vesselquant-results")} thead th').all_inner_texts()
    assert header == ["radius_mm", "voxel_count", "volume_ml", "median_hu", "iqr_hu"]
    rows = page.locator(f'{tid("vesselquant-results")} tbody tr')
    assert rows.count() >= 5
    radii = [float(rows.nth(i).locator("td").first.inner_text()) for i in range(rows.count())]
    assert radii == sorted(radii) and radii[0] > 0
    assert page.locator(tid("vesselquant-plot")).is_visible()
    assert "Vessel volume" in page.locator(tid("vesselquant-summary")).inner_text()

    # the overlay: the slice view's pixels change (vessel and lung segments drawn over the CT)
    after = wait_for_view(page, lambda pixels: changed_fraction(before, pixels) > 0.02)
    assert changed_fraction(before, after) > 0.02

    for testid, magic in (("vesselquant-download-segmentation", b"NRRD"), ("vesselquant-download-csv", b"radius_mm")):
        href = page.locator(tid(testid)).get_attribute("href")
        response = page.request.get(web_server.url.rstrip("/") + href)
        assert response.ok and response.body().startswith(magic), testid
    assert page.request.get(web_server.url.rstrip("/") + "/radiologyai-results/nothing/per_radius.csv").status == 404

    time.sleep(1.0)
    page.screenshot(path=str(tmp_path / "vesselquant.png"))
    if os.environ.get("RADIOLOGYAI_SCREENSHOTS"):  # refresh the README's screenshot
        shutil.copyfile(tmp_path / "vesselquant.png", SCREENSHOT)


def test_bad_upload_shows_the_error_and_the_server_keeps_working(page, web_server, tmp_path):
    bad = tmp_path / "broken.nrrd"
    bad.write_bytes(b"NRRD0004\nthis is not an image\n")
    page.set_input_files(tid("vesselquant-upload"), str(bad))
    banner = page.wait_for_selector(tid("vesselquant-error"), timeout=30_000)
    assert "CT" in banner.inner_text() and "Traceback" not in banner.inner_text()

    sneaky = tmp_path / "sneaky.mhd"  # its voxels "are" a server file outside the upload: refused, never read
    sneaky.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = {web_server.log}\n"
    )
    page.set_input_files(tid("vesselquant-upload"), str(sneaky))
    page.wait_for_selector(f'{tid("vesselquant-error")}:has-text("data file outside")', timeout=10_000)

    too_big = tmp_path / "big.nrrd"
    too_big.write_bytes(b"\0" * (6 * 1024 * 1024))  # the test server accepts 5 MB
    page.set_input_files(tid("vesselquant-upload"), str(too_big))
    page.wait_for_selector(f'{tid("vesselquant-error")}:has-text("over the limit")', timeout=10_000)

    _load_sample(page)  # still working
    assert page.locator(tid("vesselquant-error")).count() == 0
    assert web_server.alive()
    assert "Traceback" not in web_server.stderr()


def test_data_folder_file_loads_and_nothing_outside_it(page, web_server, tmp_path):
    from VesselQuantLib.vessel_phantom import make_vessel_phantom

    sitk.WriteImage(
        make_vessel_phantom(size_xyz=(40, 40, 20), seed=2, root_radius_mm=1.5).image,
        str(web_server.data_dir / "chest.nrrd"),
    )
    page.fill(tid("vesselquant-path"), "chest.nrrd")
    page.click(tid("vesselquant-load-data"))
    page.wait_for_selector(f'{tid("vesselquant-ct")}:has-text("chest.nrrd (40x40x20 voxels)")', timeout=30_000)

    (tmp_path / "secret.nrrd").write_bytes(b"outside")
    for outside in ("../secret.nrrd", str(tmp_path / "secret.nrrd")):
        page.fill(tid("vesselquant-path"), outside)
        page.click(tid("vesselquant-load-data"))
        page.wait_for_selector(f'{tid("vesselquant-error")}:has-text("data folder")', timeout=10_000)
        page.click(f'{tid("vesselquant-error")} button')  # close the banner
        page.wait_for_selector(tid("vesselquant-error"), state="detached", timeout=5_000)


def test_dicom_series_upload_and_data_folder(page, web_server, tmp_path):
    from VesselQuantLib.vessel_phantom import make_vessel_phantom

    image = make_vessel_phantom(size_xyz=(36, 32, 12), seed=4, root_radius_mm=1.5, euler_angles=(0, 0, 0)).image
    files = write_dicom_series(tmp_path / "series", image)
    page.set_input_files(tid("vesselquant-upload"), [str(f) for f in files])
    page.wait_for_selector(f'{tid("vesselquant-ct")}:has-text("36x32x12 voxels")', timeout=30_000)

    write_dicom_series(web_server.data_dir / "dicom" / "chest", image)
    page.fill(tid("vesselquant-path"), "dicom/chest")
    page.click(tid("vesselquant-load-data"))
    page.wait_for_selector(f'{tid("vesselquant-ct")}:has-text("chest (36x32x12 voxels)")', timeout=30_000)


def test_cancel_stops_the_run(page, web_server):
    _load_sample(page)
    page.click(tid("vesselquant-apply"))
    page.wait_for_selector(f'{tid("vesselquant-cancel")}:not([disabled])', timeout=30_000)
    status = page.locator(tid("vesselquant-status"))
    deadline = time.monotonic() + 60
    while "starting" in status.inner_text() and time.monotonic() < deadline:  # until the pipeline reports progress
        time.sleep(0.2)
    assert web_server.children(), "no worker process was running"
    page.click(tid("vesselquant-cancel"))
    page.wait_for_selector(f'{tid("vesselquant-status")}:has-text("cancelled")', timeout=30_000)
    assert page.locator(f'{tid("vesselquant-results")} tbody tr').count() == 0
    deadline = time.monotonic() + 10
    while web_server.children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not web_server.children(), "the worker process is still running"
    assert page.locator(tid("vesselquant-apply")).is_enabled()


def test_each_tab_shows_its_own_volume(page):
    _load_sample(page)
    ct = wait_for_stable_view(page)
    bright = (ct > 60).any(axis=-1).mean()
    page.click(tid("tab-hipradiomics"))  # no MRI loaded there: the slice view empties (its icons and slider stay)
    wait_for_view(page, lambda pixels: (pixels > 60).any(axis=-1).mean() < 0.2 * bright)
    page.click(tid("tab-vesselquant"))
    wait_for_view(page, lambda pixels: changed_fraction(ct, pixels) < 0.01)


def test_every_panel_has_its_progress_status_and_cancel(page):
    # (the error banners are server state shared by all pages: an earlier test may have left one open)
    for panel in ("vesselquant", "phantomqa", "salivaryseg", "hipradiomics"):
        page.click(tid(f"tab-{panel}"))
        for what in ("progress", "status", "cancel"):
            page.wait_for_selector(tid(f"{panel}-{what}"), state="attached", timeout=10_000)


def _outward_address() -> str | None:
    """This machine's address on its network (none: no network interface but loopback)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # UDP: nothing is sent
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_server_listens_on_loopback_only(web_server):
    import socket
    from urllib.parse import urlparse

    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    port = urlparse(web_server.url).port
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=3).close()
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
