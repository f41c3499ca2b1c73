"""A person picks a judge panel on the Judge page and saves a selection with it.

In the browser the "Scores and picks" section is a fragment: choosing a panel re-runs
only that section, which AppTest does not exercise. Waits are on what the person sees.
"""

import pytest
from browser import chromium_page, streamlit_server
from panel_data import fill_two_panels
from playwright.sync_api import expect

from reset_core.store import connect

pytestmark = pytest.mark.browser

T = 30_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser_panels") / "ui.duckdb"
    con = connect(db)
    fill_two_panels(con)
    con.close()
    with streamlit_server(db) as url, chromium_page() as page:
        yield url, page


def picks(page):
    return (
        page.locator(".st-key-scores_and_picks")
        .get_by_test_id("stMetric")
        .filter(has=page.get_by_text("Picks", exact=True))
        .get_by_test_id("stMetricValue")
    )


def idle(page) -> None:
    """Wait until the page's script run is over (a dropdown opened mid-run is redrawn shut)."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stApp]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=T,
    )


def choose(page, key: str, option: str) -> None:
    """Open the selectbox ``key`` and pick ``option``, as a person would: click again if
    the list closed (a script run that ends just then redraws the box shut)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        idle(page)
        page.locator(f".st-key-{key} input").click()  # the box, not its label
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=3_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"{option!r} never showed in the {key} list")


def test_choose_a_saved_panel_and_save_a_selection_with_it(app):
    url, page = app
    page.goto(url + "/judge")
    shown = page.locator(".st-key-panel_shown")
    # The default panel is on screen before anything is saved: its judges and rule.
    expect(shown).to_contain_text("Panel default", timeout=T)
    expect(shown).to_contain_text("mean of linear [0,1] scores", timeout=T)
    expect(picks(page)).to_have_text("4", timeout=T)

    choose(page, "panel_choice", "only-j2")
    expect(shown).to_contain_text("Panel only-j2", timeout=T)
    expect(picks(page)).to_have_text("3", timeout=T)  # J2 never judged e4

    page.locator(".st-key-save_selection button").click()
    expect(page.get_by_text("with panel only-j2: 3 picks")).to_be_visible(timeout=T)
    expect(page.get_by_text("Saved selections", exact=True)).to_be_visible(timeout=T)
