"""AppTest for the Agreement, Trade-off and Decoding pages, and their links into Review."""

import pytest
from analytics_data import SETTINGS, cid, fill

from reset_core.store import connect


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


@pytest.mark.parametrize("page", ["agreement", "tradeoff", "decoding"])
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
    # Review, filtered to the pair's disagreements
    assert at.title[0].value == "Review"
    assert dict(at.query_params) == {
        "judge_a": "judge:a",
        "judge_b": "judge:b",
        "aspect": "task",
        "disagree": "0.25",
    }
    assert (
        "3 candidates (in 3 examples) where judge:a and judge:b disagree by at least 0.25 on task"
        in _text(at).replace("\\", "")
    )
    queue = at.dataframe[0].value
    assert list(queue["example_id"]) == ["e2", "e3", "e4"]
    assert list(queue["linked"]) == [cid("e2", "s:cold"), cid("e3", "s:hot"), cid("e4", "s:never")]


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


def shown_candidates(at) -> list[str]:
    """Candidate ids on the cards of the example view, in order."""
    return [
        m.value.split("**")[1].split(". ", 1)[1].replace("\\", "")
        for m in at.markdown
        if m.value.startswith("**") and ". c" in m.value.split("**")[1]
    ]


def test_review_reads_a_trade_off_link_and_shows_only_its_candidates(filled_app):
    at = filled_app.switch_page("pages/review.py")
    at.query_params.update({"setting": "s:never", "split": "seen"})
    at.run()
    assert not at.exception
    assert (
        "6 candidates (in 6 examples) from the trade-off selection: setting s:never; split seen"
        in (_text(at).replace("\\", ""))
    )
    queue = at.dataframe[0].value
    assert list(queue["linked"]) == [cid(f"e{i}", "s:never") for i in range(1, 7)]
    # The example view shows the linked candidate only, until "show all" is on.
    at.query_params["example"] = "e2"
    at.run()
    assert not at.exception
    assert shown_candidates(at) == [cid("e2", "s:never")]
    at.toggle(key="rv_show_all").set_value(True).run()
    assert sorted(shown_candidates(at)) == sorted(cid("e2", s) for s in SETTINGS)
    # "Next unreviewed" walks the filtered queue (e1-e4 carry review events already).
    at.button(key="rv_next_unrev").click().run()
    assert at.query_params["example"] == "e5"
    at.toggle(key="rv_show_all").set_value(False).run()
    assert shown_candidates(at) == [cid("e5", "s:never")]
    # Clearing the filter leaves the example open with every candidate.
    at.button(key="rv_clear_link").click().run()
    assert "setting" not in at.query_params and "Filtered" not in _text(at)
    assert len(shown_candidates(at)) == 3


def test_review_says_when_a_link_is_malformed(filled_app):
    at = filled_app.switch_page("pages/review.py")
    at.query_params.update({"judge_a": "a", "judge_b": "b", "aspect": "style"})
    at.run()
    assert not at.exception
    assert "aspect: must be one of" in at.error[0].value
    assert len(at.dataframe[0].value) == 6, "the queue shows everything"
