"""The built leaderboard in a real headless Chromium: it loads without console errors, the tables show the
expected rows, a click on a column header sorts it, and a hostile model name shows as text.

Needs Debian's chromium and chromium-driver and selenium (the dev extra); skipped without them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO
from test_leaderboard import HOSTILE, write_submission

from grue.leaderboard.build import build

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site built from the example, three imdb submissions (known order) and a hostile one."""
    root = tmp_path_factory.mktemp("board")
    subs = root / "subs"
    shutil.copytree(REPO / "leaderboard" / "examples", subs)
    for name, value in (("alpha", 0.55), ("beta", 0.75), ("gamma", 0.65)):
        write_submission(subs, name, {("imdb", 0): {"sentiment_score": value}, ("imdb", 1): {"sentiment_score": value + 0.02}})
    write_submission(subs, "evil", {("imdb", 0): {"sentiment_score": 0.5}}, model=HOSTILE,
                     meta={"who": HOSTILE, "model": HOSTILE, "algorithm": "PPO", "notes": "<b>not bold</b>"},
                     samples=[{"prompt": HOSTILE, "generation": "<img src=x onerror=alert(2)>", "references": ["r"]}])
    build(subs, REPO / "leaderboard" / "reported", root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ["SE_OFFLINE"] = "true"  # selenium would otherwise look for drivers on the network first
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def open_page(browser, path: Path) -> None:
    browser.get(path.as_uri())
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


def severe(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def column(browser, table, index: int) -> list[str]:
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def imdb_submissions(browser):
    return browser.find_element(By.ID, "task-imdb").find_elements(By.CSS_SELECTOR, "table.sortable")[0]


def test_page_loads_offline_with_the_expected_rows(browser, site):
    open_page(browser, site / "index.html")
    assert severe(browser) == []
    assert browser.title == "GRUE leaderboard"
    overall = browser.find_element(By.ID, "overall").find_elements(By.CSS_SELECTOR, "table.sortable")
    assert sorted(column(browser, overall[0], 1)) == ["alpha", "beta", "evil", "gamma", "tiny-ppo-smoke"]
    assert "Supervised+PPO" in column(browser, overall[1], 1)  # the paper baselines, in their own table
    # default order: best task score first; every row is incomplete (imdb only), so none has a rank
    assert column(browser, imdb_submissions(browser), 0) == ["beta", "gamma", "alpha", "evil", "tiny-ppo-smoke"]
    assert "reported in the paper, not re-run here" in browser.find_element(By.ID, "task-imdb").text
    assert "0.760 ± 0.014" in imdb_submissions(browser).text  # beta: mean of 0.75 and 0.77, std 0.01 * sqrt(2)


def test_clicking_a_header_sorts_the_column(browser, site):
    open_page(browser, site / "index.html")
    table = imdb_submissions(browser)
    heads = table.find_elements(By.CSS_SELECTOR, "thead th")
    sentiment = next(i for i, h in enumerate(heads) if h.text.startswith("sentiment_score"))
    heads[sentiment].click()  # ascending; the example skipped it, so its empty cell goes last
    assert column(browser, table, 0) == ["evil", "alpha", "gamma", "beta", "tiny-ppo-smoke"]
    assert heads[sentiment].get_attribute("aria-sort") == "ascending"
    heads[sentiment].click()
    assert column(browser, table, 0) == ["beta", "gamma", "alpha", "evil", "tiny-ppo-smoke"]
    heads[0].click()  # text column
    assert column(browser, table, 0) == ["alpha", "beta", "evil", "gamma", "tiny-ppo-smoke"]
    assert severe(browser) == []


@pytest.mark.parametrize("page", ["index.html", "submissions/evil.html"])
def test_hostile_name_shows_as_text(browser, site, page):
    open_page(browser, site / page)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert HOSTILE in browser.find_element(By.TAG_NAME, "body").text
    assert browser.execute_script("return document.scripts.length") == 1  # the page's own sorting script
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert severe(browser) == []


def test_detail_page_shows_config_and_samples(browser, site):
    open_page(browser, site / "submissions" / "tiny-ppo-smoke.html")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "tiny-ppo-smoke" in body and "imdb" in body and "Configuration, seed 0" in body
    assert browser.find_element(By.LINK_TEXT, "https://arxiv.org/abs/2210.01241").get_attribute("href").startswith("https://")
    assert severe(browser) == []
