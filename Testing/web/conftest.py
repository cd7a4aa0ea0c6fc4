"""Fixtures of the browser tests: the ``radiologyai web`` server on a free loopback port, and headless Chromium.

The server runs as a subprocess (``python -m RadiologyAICommonLib web``), one per test session, with a data
folder the tests fill; it is stopped by its PID. The browser is Debian's Chromium driven by Playwright
(``executable_path=/usr/bin/chromium``; ``playwright install`` is never needed). Without Chromium, Playwright,
trame-slicer or EGL the browser tests skip and say which is missing; CI (.ci/run) installs all of them.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from web_helpers import ROOT, server_env

CHROMIUM = os.environ.get("RADIOLOGYAI_CHROMIUM", "/usr/bin/chromium")
MAX_UPLOAD_MB = 5
SERVER_START_S = 120


def _missing() -> str | None:
    for module, what in (
        ("trame", "trame (pip install 'radiologyai[web]')"),
        ("trame_slicer", "trame-slicer (pip install 'radiologyai[web]')"),
        ("playwright", "playwright (pip install 'radiologyai[test]')"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if ctypes.util.find_library("EGL") is None:
        return "no EGL library for headless rendering (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def browser_requirements():
    reason = _missing()
    if reason and os.environ.get("RADIOLOGYAI_REQUIRE_BROWSER_TESTS"):  # set by .ci/run, which installs them
        pytest.fail(f"browser tests cannot run: {reason}")
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def warm_numba():
    """Compile VesselQuant's numba kernels once (they are cached on disk), so a run in the server takes seconds."""
    from VesselQuantLib.pipeline import run_vessel_quant
    from VesselQuantLib.vessel_phantom import make_vessel_phantom

    run_vessel_quant(make_vessel_phantom(size_xyz=(48, 48, 24), seed=1, root_radius_mm=1.5).image)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("web-data")


class WebServer:
    def __init__(self, process: subprocess.Popen, url: str, data_dir: Path, log: Path):
        self.process, self.url, self.data_dir, self.log = process, url, data_dir, log

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def children(self) -> list[int]:
        """PIDs of the server's child processes (the worker of a running job)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="session")
def web_server(browser_requirements, data_dir, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("web-server") / "stderr.txt"
    command = [
        sys.executable,
        "-m",
        "RadiologyAICommonLib",
        "web",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--max-upload-mb",
        str(MAX_UPLOAD_MB),
    ]
    with open(log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env=server_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
    server = WebServer(process, f"http://127.0.0.1:{port}/", data_dir, log)
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if not server.alive():
            pytest.fail(f"the web server exited with {process.returncode}:\n{server.stderr()}")
        try:
            with urllib.request.urlopen(server.url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"the web server did not answer within {SERVER_START_S} s:\n{server.stderr()}")
        time.sleep(0.5)
    yield server
    server.stop()
    if os.environ.get("RADIOLOGYAI_WEB_SERVER_LOG"):  # keep the server's stderr for a look
        shutil.copyfile(log, os.environ["RADIOLOGYAI_WEB_SERVER_LOG"])
    if "Traceback" in server.stderr() or "Warning" in server.stderr():
        pytest.fail(f"the web server printed a traceback or a warning:\n{server.stderr()}")


@pytest.fixture(scope="session")
def browser(browser_requirements):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, web_server):
    """A fresh tab on the app, once its first panel is on screen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    context = browser.new_context(viewport={"width": 1500, "height": 950}, accept_downloads=True)
    tab = context.new_page()
    tab.goto(web_server.url)
    tab.wait_for_selector('[data-testid="tab-vesselquant"]', timeout=60_000)
    # The open tab is server state, shared by all pages. A click made before the page's connection is up can be
    # lost (a full CI run once waited 30 s for a panel that never opened), so click again until the panel is shown.
    deadline = time.monotonic() + 60
    while True:
        tab.click('[data-testid="tab-vesselquant"]')
        try:
            tab.wait_for_selector('[data-testid="vesselquant-load-sample"]', timeout=5_000)
            break
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise
    yield tab
    context.close()
