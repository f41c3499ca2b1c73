"""A person in Chromium opens the app, imports a file and sees the counts change."""

import pytest
from browser import chromium_page, streamlit_server
from conftest import FIXTURES

pytestmark = pytest.mark.browser


def test_import_a_file_in_the_browser_and_see_counts_change(tmp_path):
    with streamlit_server(tmp_path / "ui.duckdb") as url, chromium_page() as page:
        page.goto(url)
        page.get_by_text("Import examples →").wait_for(timeout=30_000)
        assert page.get_by_test_id("stMetricValue").first.inner_text() == "0"

        page.get_by_role("link", name="Import examples →").click()
        page.get_by_text("No examples yet").wait_for(timeout=30_000)
        page.locator("input[type=file]").set_input_files(str(FIXTURES / "self_instruct_seed.jsonl"))
        page.get_by_text("preset self_instruct").wait_for(timeout=30_000)
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Imported 6 new examples").wait_for(timeout=30_000)
        page.get_by_text("6 matching examples").wait_for(timeout=30_000)

        page.get_by_role("link", name="Home").click()
        # Examples in: the guided path's first step is the MTL baseline.
        page.get_by_role("link", name="Train MTL on references →").wait_for(timeout=30_000)
        assert page.get_by_test_id("stMetricValue").first.inner_text() == "6"


def test_first_visit_straight_to_a_page_still_goes_through_the_router(tmp_path):
    """A pages/ folder puts Streamlit in legacy mode until app.py runs; ui.py routes anyway."""
    with streamlit_server(tmp_path / "ui.duckdb") as url, chromium_page() as page:
        page.goto(url + "/data")
        page.get_by_text("No examples yet").wait_for(timeout=30_000)
        page.get_by_text("Reviewer").wait_for(timeout=30_000)  # the router's sidebar
        assert page.get_by_role("link", name="Home").count() == 1
