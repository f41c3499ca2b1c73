"""AppTest for the Agreement, Trade-off, Decoding and Selected-candidates pages."""

import pytest
from analytics_data import cid, fill
from conftest import ROOT
from streamlit.testing.v1 import AppTest

from reset_core.store import connect


@pytest.fixture
def app(tmp_path, monkeypatch):
    db = tmp_path / "app.duckdb"
    monkeypatch.setenv("RESET_STUDIO_DB", str(db))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.db = db
    return at


@pytest.fixture
def filled_app(app):
    con = connect(app.db)
    fill(con)
    con.close()
    return app


def _text(at):
    return " ".join(
        str(e.value) for kind in ("caption", "info", "markdown") for e in getattr(at, kind)
    )


@pytest.mark.parametrize("page", ["agreement", "tradeoff", "decoding", "candidates"])
def test_pages_on_an_empty_database_explain_what_is_missing(app, page):
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception
    assert app.info, "an empty database gets a message, not an empty chart"


def test_agreement_page_shows_numbers_and_opens_disagreements(filled_app):
    at = filled_app.switch_page("pages/agreement.py").run()
    assert not at.exception
    assert "0 of 36 judgments missing" in _text(at)
    pairs = at.dataframe[0].value
    assert list(pairs["judge A"]) == ["judge:a"] and "(n=18)" in pairs.iloc[0, 2]
    assert at.metric[0].label.startswith("Krippendorff") and at.metric[0].value != "n/a"
    assert len(at.get("plotly_chart")) == 1
    at.selectbox(key="ag_aspect").select("instruction").run()
    assert "1 of 36 judgments missing" in _text(at)
    at.selectbox(key="ag_aspect").select("task").run()
    at.button(key="ag_open").click().run()
    assert not at.exception
    assert "3 candidates where judge:a and judge:b differ by at least 0.25 on task" in _text(at)
    ids = list(at.table[0].value["candidate_id"])
    assert ids == [cid("e3", "s:hot"), cid("e2", "s:cold"), cid("e4", "s:never")]


def test_agreement_page_with_one_judge_says_so(app):
    con = connect(app.db)
    fill(con, judges=("judge:a",), humans=False)
    con.close()
    app.switch_page("pages/agreement.py").run()
    assert not app.exception
    assert any("Only one judge" in i.value for i in app.info)


def test_tradeoff_page_levels(filled_app):
    at = filled_app.switch_page("pages/tradeoff.py").run()
    assert not at.exception
    assert "18 candidates: 18 with instruction, 9 with faithfulness" in _text(at)
    table = at.dataframe[0].value
    assert set(table["setting_id"]) == {"s:cold", "s:hot", "s:never"}
    at.selectbox(key="to_level").select("candidate").run()
    assert not at.exception
    assert "3 candidates lie on the Pareto frontier" in _text(at)
    at.selectbox(key="to_x").select("faithfulness").run()
    at.selectbox(key="to_y").select("faithfulness").run()
    assert not at.exception


def test_decoding_page_shows_settings_grid_and_bias(filled_app):
    at = filled_app.switch_page("pages/decoding.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["setting_id"]) == ["s:cold", "s:hot", "s:never"]
    assert list(table["n_picks"]) == [0, 6, 0]
    assert "2 of 3 settings never won a pick" in _text(at)
    assert len(at.dataframe[1].value) == 6


def test_candidates_page_reads_the_query_param_contract(filled_app):
    at = filled_app.switch_page("pages/candidates.py")
    at.query_params.update({"setting": "s:never", "split": "seen"})
    at.run()
    assert not at.exception
    assert "6 selected candidates" in _text(at)
    at.query_params.clear()
    at.query_params.update({"judge_a": "a", "judge_b": "b", "aspect": "style"})
    at.run()
    assert "aspect: must be one of" in at.error[0].value
