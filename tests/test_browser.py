"""The class report in a real browser: Debian's chromium and chromium-driver, driven by selenium.

The page is opened from a file:// URL, as an instructor opens it: no console error, every plot
loaded, the table sorts, every submission's link opens its feedback page. The corpus page's
screenshot is written to tmp_path, and to $AUTOGRADER_SCREENSHOT when set (how
docs/class_report.png, shown in the README, is made).
"""

import os
import shutil
from pathlib import Path

import pytest

from autograder.cli.main import main
from autograder.classwide.class_report import INDEX

from .test_class_report import CLASS, write_submission

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WIDTH = 1280


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        message = "chromium and chromium-driver (Debian packages, installed by .ci/run) are missing"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},1000", "--lang=fr-FR"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)   # Debian's driver: nothing downloaded
    yield driver
    driver.quit()


def column_values(browser, column: int) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#submissions-table tbody tr'),"
        " r => r.cells[arguments[0]].getAttribute('data-sort') || r.cells[arguments[0]].textContent.trim())", column)


def sort_by(browser, label: str) -> int:
    from selenium.webdriver.common.by import By

    headers = browser.find_elements(By.CSS_SELECTOR, "#submissions-table thead th")
    column = next(i for i, th in enumerate(headers) if th.text.startswith(label))
    headers[column].find_element(By.TAG_NAME, "button").click()
    return column


def check_page(browser, out: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get((out / INDEX).as_uri())
    assert browser.title.startswith("Rapport de classe")
    images = browser.execute_script("return Array.from(document.images, i => [i.complete, i.naturalWidth])")
    assert len(images) == 3 and all(done and width > 0 for done, width in images), images
    assert browser.execute_script(
        "return Array.from(document.querySelectorAll('script[src], link[href], img'))"
        ".filter(e => !(e.src || e.href || '').startsWith('data:')).length") == 0, "nothing outside the page"

    column = sort_by(browser, "total")
    totals = [float(v) for v in column_values(browser, column)]
    assert totals == sorted(totals) and len(set(totals)) > 1
    sort_by(browser, "total")
    assert [float(v) for v in column_values(browser, column)] == sorted(totals, reverse=True)
    names = column_values(browser, sort_by(browser, "copie"))
    assert browser.execute_script("return arguments[0].slice().sort((a, b) => a.localeCompare(b, 'fr'))", names) == names

    links = [(a.text, a.get_attribute("href"))
             for a in browser.find_elements(By.CSS_SELECTOR, "#submissions-table tbody td:first-child a")]
    assert sorted(name for name, _ in links) == sorted(p.parent.name for p in out.glob("*/results.json"))
    browser.find_element(By.LINK_TEXT, links[0][0]).click()     # a real click, then every link
    assert browser.title == f"Retour de correction : {links[0][0]}"
    for name, href in links:
        browser.get(href)
        assert browser.title == f"Retour de correction : {name}", href
        assert browser.find_element(By.TAG_NAME, "strong").text == name
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_small_class_page_in_a_real_browser(browser, tmp_path):
    out = tmp_path / "out"
    for i, (name, nb) in enumerate(CLASS.items()):
        write_submission(out, name if i else "Élève #1 ?", nb, failing=("q1.4", "q4.4")[: i % 3])
    assert main(["report", str(out)]) == 0
    check_page(browser, out)
    browser.get((out / INDEX).as_uri())
    marks = browser.find_elements("css selector", "#copies-suspectes article pre mark")
    assert marks and all(m.is_displayed() for m in marks[:3])


def test_the_corpus_page_in_a_real_browser_and_its_screenshot(browser, graded, tmp_path):
    check_page(browser, graded.out)
    browser.get((graded.out / INDEX).as_uri())
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(height, 2400))
    shot = tmp_path / "class_report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    if os.environ.get("AUTOGRADER_SCREENSHOT"):
        shutil.copy(shot, os.environ["AUTOGRADER_SCREENSHOT"])
