"""The HTML report opens offline in a real Chromium and draws its charts.

Every request other than the file itself is aborted (and recorded): a report that
needed a CDN would show no chart, and the test would list the URL it asked for.
"""

import evaluation_data as ev
import pytest
from browser import chromium_page
from playwright.sync_api import expect

from reset_core.evaluation.report import report_html

pytestmark = pytest.mark.browser


def test_report_renders_offline_with_drawn_charts(con, tmp_path):
    ev.fill_evaluation(con)
    path = tmp_path / "report.html"
    path.write_text(report_html(con, ev.EVAL_ID, n_boot=200), encoding="utf-8")
    asked = []

    def block(route):
        asked.append(route.request.url)
        route.abort()

    with chromium_page() as page:
        page.route(lambda url: not url.startswith("file://"), block)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        plane = page.locator(".plotly-graph-div").first
        # plotly drew the plane: an SVG with one marker per checkpoint
        expect(plane.locator("svg.main-svg").first).to_be_visible(timeout=30_000)
        expect(plane.locator(".scatterlayer .point")).to_have_count(3, timeout=30_000)
        expect(plane.locator(".xtitle")).to_contain_text("instruction following")
        expect(page.locator(".plotly-graph-div .scatterlayer .point").first).to_be_visible()
        # every chart drew (plane + a delta chart per aspect)
        assert page.locator(".plotly-graph-div svg.main-svg").count() >= 4
        expect(page.locator("h1")).to_contain_text("Evaluation base vs MTL vs RESET")
    assert asked == [] and errors == []
