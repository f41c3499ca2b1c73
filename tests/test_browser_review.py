"""A reviewer in Chromium: veto, force, rank, reload; state persists, picks and export follow;
a candidate carrying script and onerror payloads shows as text and runs nothing."""

import json

import pytest
from browser import chromium_page, pick_option, streamlit_server
from playwright.sync_api import expect
from review_data import PAYLOAD, SELECTION, seed

from reset_core.curation.config import CurationSpec
from reset_core.curation.export import export_set
from reset_core.curation.sets import create_curated_set
from reset_core.review.events import effective_picks, history
from reset_core.store import connect

pytestmark = pytest.mark.browser

T = 30_000
#: ex-3's candidates as the page names them: by decoding setting and sample.
C0, C1, C2 = (
    "T 0 · top-k all, sample 0",
    "T 1 · top-k 50 · top-p 0.9, sample 1",
    "T 1 · top-k 50 · top-p 0.9, sample 2",
)


def recorded(page, text):
    page.get_by_text(text).first.wait_for(timeout=T)


def test_veto_force_rank_reload_and_payloads_stay_inert(tmp_path):
    db = tmp_path / "review.duckdb"
    con = connect(db)
    seed(con)
    con.close()
    with streamlit_server(db) as url, chromium_page() as page:
        # Any script the payload managed to run would set this flag.
        page.add_init_script("window.__xss = undefined")
        page.goto(url + "/review")
        page.get_by_text("Matching examples").wait_for(timeout=T)
        page.get_by_role("textbox", name="Reviewer").fill("alice")
        page.get_by_role("textbox", name="Reviewer").press("Enter")
        page.get_by_text("Enter your name").wait_for(state="detached", timeout=T)

        page.get_by_placeholder("example id").fill("ex-3")
        page.get_by_placeholder("example id").press("Enter")
        page.locator(".st-key-rv_open button").click()
        page.get_by_text("Example ex-3").wait_for(timeout=T)

        # The payload candidate is shown as its literal text, with no live elements.
        text_box = page.locator(".st-key-rv_text_0")
        expect(text_box).to_contain_text("onerror", timeout=T)
        shown = " ".join(text_box.inner_text().split())
        for piece in (
            "<script>",
            "window",
            "</script>",
            "<img src",
            "onerror",
            "**bold**",
            "$x^2$",
        ):
            assert piece in shown.replace(" ", "") or piece in shown, piece
        assert text_box.locator("script, img, a, strong").count() == 0
        assert page.evaluate("window.__xss") is None

        # Veto the judge pick with its keyboard shortcut (V).
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("v")
        recorded(page, f"Recorded: vetoed candidate ({C0}) of ex-3. Current pick: {C1}.")
        # Force the third candidate.
        page.locator(".st-key-rv_force_2 button").first.click()
        recorded(
            page, f"Recorded: forced candidate ({C2}) as the pick of ex-3. Current pick: {C2}."
        )
        # Rank: second, first, third.
        rank = page.locator(".st-key-rv_rank_ex-3")
        for option in (f"2. {C1}", f"1. {C0}", f"3. {C2}"):
            pick_option(page, rank.locator("input"), option)
            page.keyboard.press("Escape")
            expect(rank).to_contain_text(option, timeout=T)
        page.get_by_role("button", name="Save ranking").click()
        recorded(page, "Recorded: ranked 3 candidates of ex-3.")

        page.reload()
        page.get_by_text("Example ex-3").wait_for(timeout=T)
        page.get_by_text(f"Current pick: {C2} (force)").wait_for(timeout=T)
        page.get_by_text("History (3 events)").wait_for(timeout=T)
        card0 = page.locator(".st-key-rv_cand_0")
        assert "vetoed" in card0.inner_text() and "your rank 2" in card0.inner_text()
        assert "your rank 1" in page.locator(".st-key-rv_cand_1").inner_text()
        assert "forced" in page.locator(".st-key-rv_cand_2").inner_text()
        page.get_by_text("History (3 events)").click()
        page.get_by_text(f"forced candidate ({C2}) as the pick of ex-3").first.wait_for(timeout=T)
        assert "ev-" not in page.inner_text("body")  # events read as what they did
        assert page.evaluate("window.__xss") is None

    # The server is gone (one writer at a time); the database holds the events.
    con = connect(db)
    assert [e.action for e in history(con, "ex-3")] == ["veto", "force", "rank"]
    picks = {r["example_id"]: r for r in effective_picks(con, SELECTION).to_pylist()}
    assert (picks["ex-3"]["candidate_id"], picks["ex-3"]["source"]) == ("ex-3/c2", "force")
    # What is curated and exported for training follows the review.
    set_id = create_curated_set(con, CurationSpec(selection_id=SELECTION))
    out = export_set(con, set_id, tmp_path, form="prompt_completion", fmt="jsonl")
    rows = {r["example_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    text = dict(con.execute("SELECT candidate_id, text FROM candidates").fetchall())
    assert rows["ex-3"]["completion"][0]["content"] == text["ex-3/c2"]
    assert rows["ex-3"]["completion"][0]["content"] != PAYLOAD
    assert rows["ex-0"]["completion"][0]["content"] == text["ex-0/c0"]
