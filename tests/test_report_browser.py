"""The HTML report in headless Chromium: every image shown, no console error, not blank."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.analysis import write_report
from tests.analysis_fixtures import synthetic_run

# a real browser (headless Chromium and its driver) in subprocesses: out of the fast tier
pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WINDOW_WIDTH_PX = 1280
MAX_SCREENSHOT_HEIGHT_PX = 12_000
PAGE_LOAD_TIMEOUT_S = 30
# Set to a folder to keep the screenshot for a human to look at.
SCREENSHOT_DIR_ENV = "HARNESS_SCREENSHOT_DIR"


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver packages "
                    "(apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 f"--window-size={WINDOW_WIDTH_PX},900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
    try:
        yield browser
    finally:
        browser.quit()


def test_report_renders_in_chromium(driver: Any, tmp_path: Path) -> None:
    from PIL import Image

    run_dir = synthetic_run(tmp_path / "browser-run", repeats=2)
    html_path, _ = write_report([run_dir])
    driver.get(html_path.resolve().as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);")
    assert len(images) >= 7
    for complete, width, alt in images:
        assert complete and width > 0, f"image not shown: {alt}"
    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe

    height = int(driver.execute_script("return document.documentElement.scrollHeight;"))
    assert 3_000 < height < 60_000, height  # tables, guidance and seven figures
    driver.set_window_size(WINDOW_WIDTH_PX, min(height, MAX_SCREENSHOT_HEIGHT_PX))
    png = driver.get_screenshot_as_png()
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    assert shot.width >= WINDOW_WIDTH_PX * 0.9 and shot.height > 2_000
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500, "the page looks blank"
    # Figures carry both colour families: some orange-red and some blue pixels.
    rgb = np.asarray(shot.resize((shot.width // 4, shot.height // 4))).astype(int)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert int(((red > 180) & (green < 140) & (blue < 90)).sum()) > 50
    assert int(((blue > 150) & (red < 90)).sum()) > 50
    keep = os.environ.get(SCREENSHOT_DIR_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "report-screenshot.png").write_bytes(png)


FIRST_SCREEN_PX = (1366, 768)
REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def test_what_to_run_is_the_first_screen_and_nothing_scrolls_sideways(
        driver: Any, tmp_path: Path) -> None:
    """At 1366x768, the "What to run" table of the published runs' report starts inside the
    first viewport, and the page is no wider than the window."""
    runs = [REFERENCE / name for name in ("io_bound", "cpu_bound", "hello")]
    html_path, _ = write_report(runs, tmp_path / "report")
    driver.set_window_size(*FIRST_SCREEN_PX)
    driver.get(html_path.resolve().as_uri())
    inner_height = int(driver.execute_script("return window.innerHeight;"))
    top = float(driver.execute_script(
        "return document.getElementById('what-to-run').getBoundingClientRect().top;"))
    rows = int(driver.execute_script(
        "return document.querySelectorAll('#what-to-run tbody tr').length;"))
    assert rows >= 3 and 0 <= top < inner_height / 2, (rows, top, inner_height)
    first_row_bottom = float(driver.execute_script(
        "return document.querySelector('#what-to-run tbody tr').getBoundingClientRect()"
        ".bottom;"))
    assert first_row_bottom <= inner_height, first_row_bottom  # a whole answer is on screen
    wide = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth];")
    assert wide[0] <= wide[1], wide
    keep = os.environ.get(SCREENSHOT_DIR_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "report-first-screen.png").write_bytes(driver.get_screenshot_as_png())
