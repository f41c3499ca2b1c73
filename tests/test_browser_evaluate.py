"""A person compares two checkpoints in the before/after browser and opens one example in
Review, in Debian's Chromium. Waits are on what the person sees, never on sleeps.

The evaluation is ``tests/evaluation_data.py``'s (three checkpoints, twelve test
examples with known scores); a RESET selection of its test_seen answers gives Review a
queue, so the link lands on an example view.
"""

import re
from pathlib import Path

import evaluation_data as ed
import pytest
from browser import chromium_page, streamlit_server
from playwright.sync_api import expect

from reset_core.scoring.config import SelectionConfig
from reset_core.scoring.selection import save_selection
from reset_core.store import connect

pytestmark = pytest.mark.browser

T = 30_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser_evaluate") / "ui.duckdb"
    con = connect(db)
    ed.fill_evaluation(con)
    save_selection(con, SelectionConfig(split="test_seen", all_models=True))
    con.close()
    with streamlit_server(db) as url, chromium_page() as page:
        yield url, page


def idle(page) -> None:
    """Wait until the page's script run is over (a dropdown opened mid-run is redrawn shut)."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stApp]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'",
        timeout=T,
    )


def choose(page, key: str, option) -> None:
    """Open the selectbox ``key`` and pick ``option`` (text or pattern), as a person would;
    click again if the list closed (a script run that ends just then redraws it shut)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(5):
        idle(page)
        page.locator(f".st-key-{key} input").click()
        try:
            page.get_by_role("option", name=option).click(timeout=3_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"{option!r} never showed in the {key} list")


def test_before_after_side_by_side_and_open_in_review(app):
    url, page = app
    page.goto(url + "/evaluate")
    # The tab is a link target too; a person clicks it.
    page.get_by_role("tab", name="Before/after").click()
    expect(page).to_have_url(re.compile(r"ev_tab=Before"), timeout=T)
    # The baseline before, the last other checkpoint after.
    expect(page.get_by_role("combobox", name="Before (A)")).to_have_value("base", timeout=T)
    expect(page.get_by_role("combobox", name="After (B)")).to_have_value("RESET round 1")
    expect(page.get_by_text("Examples 1–12 of 12")).to_be_visible(timeout=T)

    # Grounded examples only, then c1: both answers side by side with their scores.
    choose(page, "ba_kind", "context")
    expect(page.get_by_text("Examples 1–6 of 6")).to_be_visible(timeout=T)
    choose(page, "ba_example", re.compile(r"^c1 · B − A \+0\.300$"))
    side_a, side_b = page.locator(".st-key-ba_side_a"), page.locator(".st-key-ba_side_b")
    expect(side_a).to_contain_text("A: base", timeout=T)
    expect(side_a).to_contain_text("Answer to c1 by m:base", timeout=T)
    expect(side_a).to_contain_text("faithfulness 0.600", timeout=T)
    expect(side_b).to_contain_text("B: RESET round 1", timeout=T)
    expect(side_b).to_contain_text("Answer to c1 by m:reset", timeout=T)
    expect(side_b).to_contain_text("faithfulness 0.900", timeout=T)
    expect(page.locator(".st-key-ba_example_view")).to_contain_text(
        "Question c1: please answer.", timeout=T
    )

    # The same two answers in Review: the example opens with just those candidates.
    # The link is redrawn for c1 once the script run ends: click that one, not the last one's.
    idle(page)
    link = page.get_by_role("link", name="Open this example in Review")
    expect(link).to_have_attribute("href", re.compile(r"example=c1\b"), timeout=T)
    link.click()
    expect(page).to_have_url(re.compile(r"/review\?.*example=c1"), timeout=T)
    assert "candidates=" in page.url
    expect(page.get_by_text("Example c1", exact=True)).to_be_visible(timeout=T)
    banner = page.locator(".st-key-rv_link")
    expect(banner).to_contain_text(
        "2 candidates (in 1 example) linked from the before/after browser", timeout=T
    )
    cards = page.locator("[class*='st-key-rv_cand_']")
    expect(cards).to_have_count(2, timeout=T)
    expect(cards.nth(0)).to_contain_text("Answer to c1 by", timeout=T)


def test_a_test_unseen_example_opens_in_review_read_only(app):
    """The selection holds only test_seen answers: c4's link still shows both, read-only."""
    from urllib.parse import urlencode

    url, page = app
    ids = ",".join(ed.cand("c4", m) for m in ("m:base", "m:mtl"))
    query = {"example": "c4", "candidates": ids, "via": "the before/after browser"}
    page.goto(url + "/review?" + urlencode(query))
    expect(page.get_by_text("Example c4", exact=True)).to_be_visible(timeout=T)
    expect(page.locator(".st-key-rv_link")).to_contain_text(
        "2 candidates (in 1 example) linked from the before/after browser", timeout=T
    )
    expect(page.get_by_text("does not score this example")).to_be_visible(timeout=T)
    cards = page.locator("[class*='st-key-rv_cand_']")
    expect(cards).to_have_count(2, timeout=T)
    expect(cards.nth(0)).to_contain_text("faithfulness", timeout=T)
    expect(page.get_by_role("button", name="Accept pick")).to_have_count(0)


def test_results_download_the_report_built_on_click(app):
    url, page = app
    page.goto(url + "/evaluate?ev_tab=Results")
    expect(page.get_by_text("Judge panel", exact=True)).to_be_visible(timeout=T)
    # The HTML is built when the button is clicked (plotly inlined: one offline file).
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download report (HTML, opens offline)").click()
    d = download.value
    assert d.suggested_filename == f"{ed.EVAL_ID}.html"
    html = Path(d.path()).read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "base vs MTL vs RESET" in html
    assert "<script src=" not in html  # nothing fetched from the network
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download tables (Markdown)").click()
    md = Path(download.value.path()).read_text(encoding="utf-8")
    assert "| " in md and "RESET round 1" in md
