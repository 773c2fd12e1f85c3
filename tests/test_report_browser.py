"""report.html as a person sees it: opened from disk in headless Chromium (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flairseg.cli import main
from flairseg.io import sample_case_path

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="the browser test needs selenium (pip install -e '.[test]')"
)
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no headless browser: install Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver)",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The released model's prediction of two cases, one with its manual mask, one without."""
    cases = tmp_path_factory.mktemp("cases")
    sample = sample_case_path()
    shutil.copytree(sample, cases / sample.name)
    bare = cases / "NO_TRUTH_CASE"
    bare.mkdir()
    for tif in sorted(sample.glob("*.tif")):
        if not tif.name.endswith("_mask.tif"):
            shutil.copy(tif, bare / tif.name.replace(sample.name, bare.name))
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["predict", "-i", str(cases), "-o", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never download a driver or browser
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _cases(browser) -> list[str]:
    from selenium.webdriver.common.by import By

    return [
        row.find_elements(By.TAG_NAME, "td")[0].text
        for row in browser.find_elements(By.CSS_SELECTOR, "#cases tbody tr")
    ]


def test_report_lists_sorts_and_shows_every_case(run: Path, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((run / "report" / "report.html").resolve().as_uri())
    assert sorted(_cases(browser)) == ["NO_TRUTH_CASE", sample_case_path().name]
    headings = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#cases th")]
    assert "Dice" in headings and "flags" in headings and headings[0] == "case"
    case_heading = browser.find_elements(By.CSS_SELECTOR, "#cases th")[0]
    case_heading.click()
    assert _cases(browser) == sorted(_cases(browser))
    case_heading.click()
    assert _cases(browser) == sorted(_cases(browser), reverse=True)
    browser.find_elements(By.CSS_SELECTOR, "#cases th")[headings.index("Dice")].click()
    # the scored case sorts after the empty cell of the unscored one
    assert _cases(browser)[-1] == sample_case_path().name
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 3  # the Dice distribution and one overlay per case
    assert all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img) for img in images
    )
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_a_large_run_links_its_montages_and_they_load(
    run: Path, browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EMBEDDED_CASES the page links montages/... instead of embedding them; opened from disk they still load."""
    from selenium.webdriver.common.by import By

    from flairseg import html_report

    report = tmp_path / "report"
    shutil.copytree(run / "report", report)
    monkeypatch.setattr(html_report, "EMBEDDED_CASES", 1)
    html_report.write_html_report(report, "two cases, linked")
    browser.get((report / "report.html").resolve().as_uri())
    overlays = [
        img for img in browser.find_elements(By.TAG_NAME, "img") if img.get_attribute("alt").startswith("overlay")
    ]
    assert len(overlays) == 2 and all(img.get_attribute("src").startswith("file:") for img in overlays)
    assert all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img) for img in overlays
    )
