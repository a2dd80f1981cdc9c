"""`newsrec serve` in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
loads the page served by the command itself, picks a reader, filters, searches, and meets an unknown reader; at a
desktop's width (1280 px) and at a phone's (390 px), where the titles still get the width. Full-page screenshots go to
build/screenshots/ (or $NEWSREC_SCREENSHOTS). Skipped, never faked, when Chromium is absent (`.ci/run` installs it
when it can)."""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from newsrec.contract_server.server import free_port, wait_listening

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                                      reason="needs chromium and chromedriver (Debian packages)")]
SHOTS = Path(os.environ.get("NEWSREC_SCREENSHOTS", Path(__file__).resolve().parent.parent / "build" / "screenshots"))
DESKTOP, PHONE = 1280, 390  # CSS px; the page stacks its columns below 800
MAX_SHOT_HEIGHT = 2400


@pytest.fixture(scope="module")
def server(fed: Path) -> str:
    """`newsrec serve` over the fed embedded index, in its own process on a free port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "newsrec", "serve", "--index", str(fed), "--port", str(port)],
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={DESKTOP},1000",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def width(browser):
    """Sets the viewport's width (CSS px; a phone's as a phone lays it out: `mobile`, whose viewport widens to
    whatever overflows it), back to the desktop's afterwards."""
    def set_width(pixels: int) -> None:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": pixels, "height": 900,
                                                                       "deviceScaleFactor": 1,
                                                                       "mobile": pixels < 800})
    set_width(DESKTOP)
    yield set_width
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def shoot(browser, name: str) -> Path:
    """The whole page (up to MAX_SHOT_HEIGHT px) at the viewport's width, as build/screenshots/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    width, height = browser.execute_script("return [window.innerWidth, document.documentElement.scrollHeight]")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, MAX_SHOT_HEIGHT), "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000
    return path


def navigate(browser, element) -> None:
    """Click `element` (a link or the form's button) and wait until the next page has loaded: a click may return
    before the navigation commits, and the old page's elements would be read."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    wait = WebDriverWait(browser, 60)
    wait.until(expected_conditions.staleness_of(page))
    wait.until(lambda driver: driver.execute_script("return document.readyState") == "complete")


def rows(browser, table: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, f"#{table} tr.hit")


def cell_widths(browser, css: str) -> list[float]:
    return browser.execute_script(f"return [...document.querySelectorAll('{css}')]"
                                  ".map(e => e.getBoundingClientRect().width)")


def test_a_readers_recommendations_then_a_filter_then_a_search(server: str, browser, width):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server + "/")
    assert "not Vespa" in browser.find_element(By.ID, "backend").text
    assert rows(browser, "popular")
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "#users a"))  # the first sample reader
    recommended = rows(browser, "recommendations")
    assert recommended and browser.find_elements(By.CSS_SELECTOR, "#history li")
    first = [r.get_attribute("data-news-id") for r in recommended]
    assert min(cell_widths(browser, "#recommendations td.news")) > 0.4 * DESKTOP  # titles get room beside the scores
    assert recommended[0].find_element(By.CSS_SELECTOR, ".why").text.startswith("1st by the second phase")
    shoot(browser, "recommendations")

    shown = {r.get_attribute("data-category") for r in recommended}
    choices = Select(browser.find_element(By.ID, "category"))
    other = next(o.get_attribute("value") for o in choices.options if o.get_attribute("value") not in shown | {""})
    choices.select_by_value(other)
    navigate(browser, browser.find_element(By.ID, "go"))
    filtered = rows(browser, "recommendations")
    assert filtered and {r.get_attribute("data-category") for r in filtered} == {other}
    assert [r.get_attribute("data-news-id") for r in filtered] != first
    shoot(browser, "filtered")

    Select(browser.find_element(By.ID, "category")).select_by_value("")
    word = rows(browser, "popular")[0].find_element(By.CSS_SELECTOR, ".title").text.split()[0]
    browser.find_element(By.ID, "search-input").send_keys(word)
    navigate(browser, browser.find_element(By.ID, "go"))
    assert rows(browser, "search-results") and "personalized for" in browser.find_element(By.ID, "search").text
    assert browser.find_element(By.ID, "category-matches").text.startswith("Matches per category")
    shoot(browser, "search")


def test_an_unknown_reader_sees_a_message_and_the_fallback(server: str, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    field = browser.find_element(By.ID, "user-input")
    field.clear()
    field.send_keys("U_nobody")
    navigate(browser, browser.find_element(By.ID, "go"))
    assert "unknown user 'U_nobody'" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert browser.find_element(By.ID, "fallback").is_displayed() and rows(browser, "popular")
    shoot(browser, "unknown-reader")


def test_at_a_phones_width_the_page_fits_and_titles_get_the_width(server: str, browser, width):
    from selenium.webdriver.common.by import By

    width(PHONE)
    browser.get(server + "/")
    navigate(browser, browser.find_element(By.CSS_SELECTOR, "#users a"))
    assert rows(browser, "recommendations") and rows(browser, "popular")
    viewport, page_width = browser.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
    assert viewport == PHONE and page_width <= PHONE  # nothing wider than the phone: no sideways scrolling
    for table in ("recommendations", "popular"):  # each hit's title over the full width, its scores below it
        assert min(cell_widths(browser, f"#{table} td.news")) > 0.8 * PHONE, table
    scores = browser.find_elements(By.CSS_SELECTOR, "#recommendations tr.hit td.num")
    assert scores and all(s.is_displayed() and s.text for s in scores)
    legend = browser.find_element(By.ID, "legend")
    assert legend.is_displayed() and "decides the order" in legend.text
    shoot(browser, "recommendations-phone")
