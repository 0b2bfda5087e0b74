"""The built leaderboard in a real headless Chromium: it loads without console errors, the tables show the
expected rows, a click on a column header sorts it, a hostile model name shows as text, and the pages read
well on a 1400 px screen and a 400 px phone (screenshots of both in $TMPDIR/grue-leaderboard-screenshots/).

Needs Debian's chromium and chromium-driver and selenium (the dev extra); skipped without them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import REPO
from test_leaderboard import HOSTILE, write_submission

from grue.leaderboard.build import build

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

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
        write_submission(
            subs, name, {("imdb", 0): {"sentiment_score": value}, ("imdb", 1): {"sentiment_score": value + 0.02}}
        )
    write_submission(
        subs,
        "evil",
        {("imdb", 0): {"sentiment_score": 0.5}},
        model=HOSTILE,
        meta={"who": HOSTILE, "model": HOSTILE, "algorithm": "PPO", "notes": "<b>not bold</b>"},
        samples=[{"prompt": HOSTILE, "generation": "<img src=x onerror=alert(2)>", "references": ["r"]}],
    )
    build(subs, REPO / "leaderboard" / "reported", root / "site")
    return root / "site"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ["SE_OFFLINE"] = "true"  # selenium would otherwise look for drivers on the network first
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
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
    return [
        row.find_elements(By.TAG_NAME, "td")[index].text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


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
    assert (
        browser.find_element(By.LINK_TEXT, "https://arxiv.org/abs/2210.01241")
        .get_attribute("href")
        .startswith("https://")
    )
    assert severe(browser) == []


SCREENS = {"desktop": (1400, 900), "phone": (400, 800)}
"""Viewport (width, height) in CSS pixels."""
SHOTS = Path(tempfile.gettempdir()) / "grue-leaderboard-screenshots"
# every table (the closed <details> opened first), the box that scrolls it sideways if any, and the page's width
LAYOUT_JS = """
document.querySelectorAll("details").forEach(function (d) { d.open = true; });
var vw = document.documentElement.clientWidth, tables = [];
document.querySelectorAll("table").forEach(function (t, i) {
  var box = t.parentElement;
  while (box && box !== document.body && ["auto", "scroll"].indexOf(getComputedStyle(box).overflowX) < 0) { box = box.parentElement; }
  box = box === document.body ? null : box;
  var r = t.getBoundingClientRect();
  tables.push({i: i, right: r.right, width: r.width, box_right: box ? box.getBoundingClientRect().right : null,
               scrolls: box ? box.scrollWidth > box.clientWidth : false});
});
return {window: window.innerWidth, vw: vw, page: document.documentElement.scrollWidth, tables: tables};
"""


def on_screen(browser, screen: str):
    width, height = SCREENS[screen]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": screen == "phone"},
    )


@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.parametrize("page", ["index.html", "submissions/tiny-ppo-smoke.html"])
def test_pages_fit_the_screen(browser, site, screen, page):
    """The page never scrolls sideways; a table wider than a phone scrolls in its own box; on a 1400 px
    screen no table needs to."""
    SHOTS.mkdir(exist_ok=True)
    on_screen(browser, screen)
    try:
        open_page(browser, site / page)
        browser.save_screenshot(str(SHOTS / f"{screen}-{Path(page).stem}.png"))
        layout = browser.execute_script(LAYOUT_JS)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert layout["window"] == SCREENS[screen][0] and layout["page"] <= layout["vw"]  # vw: less a scroll bar
    assert layout["tables"] and all(t["width"] > 0 for t in layout["tables"])
    for t in layout["tables"]:
        fits = t["right"] <= layout["vw"] + 0.5
        assert fits or (t["box_right"] is not None and t["box_right"] <= layout["vw"] + 0.5), t
        if screen == "desktop":
            assert fits and not t["scrolls"], t


@pytest.mark.parametrize("screen", SCREENS)
def test_first_screen_shows_the_ranking(browser, site, screen):
    """Without scrolling, the overall table's rank, name, overall score and status, heads and first row."""
    on_screen(browser, screen)
    try:
        open_page(browser, site / "index.html")
        table = browser.find_element(By.ID, "overall").find_elements(By.CSS_SELECTOR, "table.sortable")[0]
        heads = [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")]
        first = table.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")
        wanted = [heads.index(h) for h in ("Rank", "Submission", "Overall", "Status")]
        cells = [table.find_elements(By.CSS_SELECTOR, "thead th")[i] for i in wanted] + [first[i] for i in wanted]
        boxes = [
            browser.execute_script(
                "var r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];", c
            )
            for c in cells
        ]
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    width, height = SCREENS[screen]
    assert all(0 <= left and 0 <= top and right <= width and bottom <= height for left, top, right, bottom in boxes), (
        boxes
    )
    assert first[wanted[1]].text == "beta" and first[wanted[3]].text.startswith("incomplete")
