"""A person clicks a cell of the agreement heatmap and lands on those candidates."""

import pytest
from analytics_data import cid, fill
from browser import chromium_page, streamlit_server

from reset_core.store import connect

pytestmark = pytest.mark.browser


def test_click_heatmap_cell_opens_the_disagreeing_candidates(tmp_path):
    db = tmp_path / "ui.duckdb"
    con = connect(db)
    fill(con, humans=False)
    con.close()
    with streamlit_server(db) as url, chromium_page() as page:
        page.goto(url + "/agreement")
        page.get_by_text("Judge vs judge").wait_for(timeout=30_000)
        # the matrix has two off-diagonal cells (judge:a × judge:b); click one
        cell = page.locator(".js-plotly-plot .scatterlayer path.point").first
        cell.wait_for(timeout=30_000)
        cell.click(force=True)
        page.get_by_text("3 candidates where").wait_for(timeout=30_000)
        assert "judge_a=" in page.url and "aspect=task" in page.url and "disagree=0.25" in page.url
        body = page.locator("body").inner_text()
        assert "differ by at least 0.25 on task" in body
        grid = page.get_by_test_id("stTable")
        grid.wait_for(timeout=30_000)
        text = grid.inner_text()
        for e, s in (("e3", "s:hot"), ("e2", "s:cold"), ("e4", "s:never")):
            assert cid(e, s) in text
