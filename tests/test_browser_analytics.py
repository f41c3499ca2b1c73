"""A person opens analytics selections in Review: a heatmap cell, a trade-off region.

Waits are on what the person would see, never on sleeps: Playwright's ``expect``
assertions retry until the page shows the expected state. Two things made the first
version of this test flaky: it read a table's text once, the moment the table element
appeared, while Streamlit was still filling its cells (about one run in five saw an
empty id column); and it clicked the plotly marker with ``force=True``, which skips
Playwright's checks and can land before plotly has wired its hover/click handlers.
Here the pointer first hovers the cell and waits for plotly's hover label (proof that
plotly tracks the point under the pointer), then clicks at that spot.
"""

import re

import pytest
from analytics_data import fill
from browser import chromium_page, streamlit_server
from playwright.sync_api import expect

from reset_core.store import connect

pytestmark = pytest.mark.browser

T = 30_000
#: The fixture's settings as the pages name them (the ids stay in links and tooltips).
LABEL = {
    "s:cold": "T 0.2 · top-k all",
    "s:hot": "T 1.2 · top-k all",
    "s:never": "T 1.5 · top-k all",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser_analytics") / "ui.duckdb"
    con = connect(db)
    fill(con, humans=False)
    con.close()
    with streamlit_server(db) as url, chromium_page() as page:
        yield url, page


def center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def shown_cards(page):
    return page.locator("[class*='st-key-rv_cand_']")


def expect_example(page, example: str, candidate: str, gap: str) -> None:
    """The example view of ``example`` shows exactly one card: the linked candidate."""
    expect(page.get_by_text(f"Example {example}", exact=True)).to_be_visible(timeout=T)
    expect(shown_cards(page)).to_have_count(1, timeout=T)
    expect(shown_cards(page)).to_contain_text(candidate, timeout=T)
    expect(shown_cards(page)).to_contain_text(f"linked · gap {gap}", timeout=T)


def test_click_heatmap_cell_opens_the_disagreeing_candidates_in_review(app):
    url, page = app
    page.goto(url + "/agreement")
    expect(page.get_by_text("Judge vs judge")).to_be_visible(timeout=T)
    # The matrix has two off-diagonal cells (judge:a × judge:b); take the one whose
    # row is judge:a: the marker nearer the bottom of the chart (plotly's y axis rises).
    cells = page.locator(".js-plotly-plot .scatterlayer path.point")
    expect(cells).to_have_count(2, timeout=T)
    x, y = max((center(cells.nth(i)) for i in range(2)), key=lambda p: p[1])
    page.mouse.move(x, y)
    expect(page.locator(".js-plotly-plot .hoverlayer .hovertext")).to_be_visible(timeout=T)
    page.mouse.click(x, y)

    expect(page).to_have_url(re.compile(r"/review\?.*aspect=task"), timeout=T)
    banner = page.locator(".st-key-rv_link")
    expect(banner).to_contain_text(
        "3 candidates (in 3 examples) where judge:a and judge:b disagree by at least 0.25 on task",
        timeout=T,
    )
    assert "judge_a=judge%3Aa" in page.url and "disagree=0.25" in page.url
    expect(page.get_by_test_id("stMetric").first).to_contain_text("3", timeout=T)

    # Walk the filtered queue: each example shows only its disagreeing candidate.
    page.locator(".st-key-rv_next_unreviewed button").click()
    expect_example(page, "e2", f"{LABEL['s:cold']}, sample 0", "0.25")
    page.locator(".st-key-rv_next button").click()
    expect_example(page, "e3", f"{LABEL['s:hot']}, sample 0", "0.50")
    page.locator(".st-key-rv_next button").click()
    expect_example(page, "e4", f"{LABEL['s:never']}, sample 0", "0.25")

    # Clearing the filter keeps the example and shows all its candidates.
    banner.locator(".st-key-rv_clear_link button").click()
    expect(banner).to_have_count(0, timeout=T)
    expect(shown_cards(page)).to_have_count(3, timeout=T)


def test_box_select_on_trade_off_opens_those_candidates_in_review(app):
    url, page = app
    page.goto(url + "/tradeoff")
    chart = page.locator(".js-plotly-plot").first
    # Per decoding setting: three points (one legend entry each, no text drawn on them);
    # s:never is the lowest on both axes.
    points = chart.locator(".scatterlayer .trace path.point")
    expect(points).to_have_count(3, timeout=T)
    expect(chart.locator(".scatterlayer .textpoint")).to_have_count(0)
    x, y = min((center(points.nth(i)) for i in range(3)), key=lambda p: p[0])
    chart.hover()
    chart.locator(".modebar-btn[data-title='Box Select']").click()
    page.mouse.move(x - 25, y - 25)
    page.mouse.down()
    page.mouse.move(x + 25, y + 25, steps=8)
    page.mouse.up()

    expect(page).to_have_url(re.compile(r"/review\?.*setting=s%3Anever"), timeout=T)
    expect(page.locator(".st-key-rv_link")).to_contain_text(
        "6 candidates (in 6 examples) from the trade-off selection: "
        f"setting {LABEL['s:never']}; split seen",
        timeout=T,
    )
    page.locator(".st-key-rv_next_unreviewed button").click()
    expect(page.get_by_text("Example e1", exact=True)).to_be_visible(timeout=T)
    expect(shown_cards(page)).to_have_count(1, timeout=T)
    expect(shown_cards(page)).to_contain_text(f"{LABEL['s:never']}, sample 0", timeout=T)
