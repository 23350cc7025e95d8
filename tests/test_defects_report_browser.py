"""The genre picker as a learner sees it: JupyterLab in headless Chromium, driven by playwright.

Skipped unless playwright (the Python package; no browser download) and Chromium are there. To run:

    pip install --target /tmp/pw playwright     # or into the venv
    PYTHONPATH=/tmp/pw .venv/bin/python -m pytest -q tests/test_defects_report_browser.py

Checks what only a browser shows: the grid at its own width (not stretched to the output area), the
whole word "temperature" in the slider's label, and no grid left under "choose at least one genre".
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Chromium (apt install chromium)")
TESTS = Path(__file__).resolve().parent

CELL = f"""import sys
sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]  # this checkout: tests, gankit
from test_defects_report_widgets import StandIn
from gankit.widgets import genre_picker

box = genre_picker(StandIn("poster-cgan"), n=16, genres=("Horror",))
box"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving tmp_path, with one notebook holding the picker."""
    nb = {
        "cells": [{"cell_type": "code", "metadata": {}, "source": CELL, "outputs": [],
                   "execution_count": None}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    (tmp_path / "picker.ipynb").write_text(json.dumps(nb))
    port, token = _free_port(), secrets.token_hex(8)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "rt")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}"]
    cmd += ["--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}"]
    cmd += [f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True"]
    cmd += ["--allow-root"] if os.geteuid() == 0 else []  # containers run as root
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            assert server.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(1)
        yield f"{url}/lab/tree/picker.ipynb?token={token}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_genre_picker_in_jupyterlab(lab, tmp_path):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120e3)
        try:
            check_picker(page, lab)
        finally:
            page.screenshot(path=str(tmp_path / "picker.png"))  # what the browser showed last
            browser.close()


def check_picker(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-CodeCell')")
    page.wait_for_selector("text=Python 3 (ipykernel) | Idle")  # the kernel is ready
    page.click(".jp-CodeCell .jp-InputArea-editor")
    page.keyboard.press("Shift+Enter")
    img = page.wait_for_selector(".jp-OutputArea-output img")
    page.wait_for_function("img => img.naturalWidth > 0", arg=img)
    shown = img.evaluate(
        "img => ({natural: img.naturalWidth, width: img.getBoundingClientRect().width,"
        " area: img.closest('.jp-OutputArea-output').getBoundingClientRect().width})"
    )
    assert shown["area"] > shown["natural"] + 100, shown  # room to stretch it, were it allowed
    assert abs(shown["width"] - shown["natural"]) <= 1, shown  # shown at its own width
    label = page.locator(".widget-label", has_text="temperature").first
    assert label.inner_text().strip() == "temperature"
    assert label.evaluate("el => el.scrollWidth <= el.clientWidth"), "label cut"
    page.locator(".jp-OutputArea-output select").first.select_option([])  # no genre at all
    page.wait_for_selector("text=choose at least one genre")
    page.wait_for_function("img => img.getBoundingClientRect().height === 0", arg=img)
