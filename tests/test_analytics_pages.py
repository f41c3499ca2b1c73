"""AppTest for the Agreement, Trade-off and Decoding pages, and their links into Review."""

import re

import pytest
from analytics_data import SETTINGS, cid, fill
from visible import visible_text, visible_texts

from reset_core.store import connect

#: The fixture's settings as people read them (temperature 0.2/1.2/1.5, top-k -1).
LABEL = {
    "s:cold": "T 0.2 · top-k all",
    "s:hot": "T 1.2 · top-k all",
    "s:never": "T 1.5 · top-k all",
}
#: Setting and model ids of the fixture: never in visible text (hover and tooltips only).
IDS = re.compile(r"(?<![\w:])(s:(cold|hot|never)|m:mtl)\b")


def assert_no_ids(at):
    shown = [t for t in visible_texts(at) if IDS.search(t)]
    assert not shown, shown


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
    # Linked candidates read as what made them: one per example here, by its setting.
    assert list(queue["linked"]) == [
        f"{LABEL['s:cold']}, sample 0",
        f"{LABEL['s:hot']}, sample 0",
        f"{LABEL['s:never']}, sample 0",
    ]


def test_agreement_page_with_one_judge_says_so_once_and_how_to_fix_it(app):
    con = connect(app.db)
    fill(con, judges=("judge:a",), humans=False)
    con.close()
    app.switch_page("pages/agreement.py").run()
    assert not app.exception
    two_judges = [i.value for i in app.info if "needs two" in i.value]
    assert len(two_judges) == 1 and "Only one judge" in two_judges[0]
    assert "second judge on the Judge page" in two_judges[0]
    assert app.get("page_link")[0].proto.page == "judge"
    # No heatmap without two raters, so none of its controls either.
    assert not app.get("plotly_chart")
    keys = {w.key for w in [*app.selectbox, *app.slider]}
    assert "ag_stat" not in keys and "ag_gap" not in keys
    assert not [m for m in app.metric if m.label.startswith("Krippendorff")]
    assert sum("No manual" in i.value for i in app.info) == 1


def test_agreement_page_with_two_judges_shows_the_heatmap_and_its_controls(filled_app):
    at = filled_app.switch_page("pages/agreement.py").run()
    keys = {w.key for w in [*at.selectbox, *at.slider]}
    assert {"ag_stat", "ag_gap"} <= keys
    assert not [i for i in at.info if "needs two" in i.value]


def test_tradeoff_page_levels(filled_app):
    at = filled_app.switch_page("pages/tradeoff.py").run()
    assert not at.exception
    assert "18 candidates: 18 with instruction, 9 with faithfulness" in _text(at)
    table = at.dataframe[0].value
    assert set(table["setting"]) == set(LABEL.values())
    assert_no_ids(at)
    # Labels in the legend, none drawn on the markers (they overlapped); ids in the hover.
    spec = at.get("plotly_chart")[0].proto.spec
    assert '"mode":"markers"' in spec.replace(" ", "") and "setting_id" in spec
    for level in ("setting_model", "model", "kind"):
        at.selectbox(key="to_level").select(level).run()
        assert not at.exception
        assert_no_ids(at)
    at.selectbox(key="to_level").select("candidate").run()
    assert not at.exception
    assert "3 candidates lie on the Pareto frontier" in _text(at)
    assert_no_ids(at)
    at.selectbox(key="to_x").select("faithfulness").run()
    at.selectbox(key="to_y").select("faithfulness").run()
    assert not at.exception


def test_decoding_page_shows_settings_grid_and_bias(filled_app):
    at = filled_app.switch_page("pages/decoding.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["setting"]) == [LABEL["s:cold"], LABEL["s:hot"], LABEL["s:never"]]
    # The judges picked s:hot six times; alice's veto (e1) and force (e2) move two of
    # those picks to s:cold, and analytics shows the picks with overrides applied.
    assert list(table["n_picks"]) == [2, 4, 0]
    assert "1 of 3 settings never won a pick" in _text(at)
    assert len(at.dataframe[1].value) == 6
    # The suggested grid names settings by their values; the ids wait in the tooltip.
    drop = next(m for m in at.markdown if m.value.startswith("Drop"))
    drop_text = drop.value.replace("\\", "")
    assert LABEL["s:cold"] not in drop_text and LABEL["s:never"] in drop_text
    assert "s:never" in drop.proto.help
    assert_no_ids(at)


def shown_candidates(at) -> list[str]:
    """Candidate ids of the cards of the example view, in order (from each card's tooltip)."""
    return [m.proto.help.split()[1] for m in at.markdown if m.proto.help.startswith("candidate ")]


def test_review_reads_a_trade_off_link_and_shows_only_its_candidates(filled_app):
    at = filled_app.switch_page("pages/review.py")
    at.query_params.update({"setting": "s:never", "split": "seen"})
    at.run()
    assert not at.exception
    assert (
        "6 candidates (in 6 examples) from the trade-off selection: setting T 1.5 · top-k all; "
        "split seen" in (_text(at).replace("\\", ""))
    )
    queue = at.dataframe[0].value
    assert list(queue["linked"]) == [f"{LABEL['s:never']}, sample 0"] * 6
    assert list(queue.columns[:4]) == ["example_id", "setting", "reviewed", "overridden"]
    assert_no_ids(at)
    # The example view shows the linked candidate only, until "show all" is on.
    at.query_params["example"] = "e2"
    at.run()
    assert not at.exception
    assert shown_candidates(at) == [cid("e2", "s:never")]
    # The card reads as its setting and sample (numbered as in the full list, best first).
    assert f"**3. {LABEL['s:never']}, sample 0**" in visible_text(at)
    assert_no_ids(at)
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
