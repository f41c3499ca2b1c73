"""The Review page with Streamlit's AppTest: the queue, each action, undo, two reviewers at once."""

import pytest
from conftest import ROOT
from review_data import SELECTION, seed
from streamlit.testing.v1 import AppTest
from visible import visible_text

from reset_core.review.events import effective_picks, example_state, history
from reset_core.store import connect


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "review.duckdb"
    con = connect(path)
    seed(con)
    con.close()
    monkeypatch.setenv("RESET_STUDIO_DB", str(path))
    return path


def review_app(reviewer: str | None = "alice", example: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if reviewer:
        at.session_state["reviewer"] = reviewer
    at.switch_page("pages/review.py").run()
    assert not at.exception
    if example:
        at.query_params["example"] = example
        at.run()
        assert not at.exception
    return at


def state(db, ex):
    con = connect(db)
    try:
        return example_state(con, ex, SELECTION)
    finally:
        con.close()


def picks(db):
    con = connect(db)
    try:
        return {
            r["example_id"]: r["candidate_id"] for r in effective_picks(con, SELECTION).to_pylist()
        }
    finally:
        con.close()


def messages(at, kind="success"):
    return [m.value for m in getattr(at, kind)]


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_queue_counts_filters_and_sorts_in_sql(db):
    at = review_app()
    assert metrics(at)["Matching examples"] == "6"
    assert metrics(at)["Left to review"] == "6"
    assert metrics(at)["Reviewed in this selection"] == "0 / 6"
    table = at.dataframe[0].value
    assert list(table["example_id"]) == [f"ex-{i}" for i in range(6)]
    at.multiselect(key="rv_kinds").select("context").run()
    assert metrics(at)["Matching examples"] == "3"
    at.slider(key="rv_disagree").set_value(0.5).run()
    assert list(at.dataframe[0].value["example_id"]) == ["ex-1"]  # judges 0.1 vs 0.9
    at.slider(key="rv_disagree").set_value(0.0).run()
    at.text_input(key="rv_search").input("haiku").run()
    assert metrics(at)["Matching examples"] == "0"  # haiku examples are instruction kind
    at.multiselect(key="rv_kinds").unselect("context").run()
    assert metrics(at)["Matching examples"] == "3"
    at.text_input(key="rv_search").input("").run()
    at.selectbox(key="rv_sort").select("lowest pick score first").run()
    first = at.dataframe[0].value.iloc[0]
    assert first["pick_score"] == min(at.dataframe[0].value["pick_score"])


def test_anonymous_reviewer_cannot_act(db):
    at = review_app(reviewer=None, example="ex-0")
    assert any("Enter your name" in w.value for w in at.warning)
    assert at.button(key="rv_veto_pick").disabled
    assert at.button(key="rv_accept").disabled


def test_accept_marks_reviewed_and_counts_drop(db):
    at = review_app(example="ex-0")
    at.button(key="rv_accept").click().run()
    assert not at.exception
    # Candidates read as what made them (setting and sample), not as ids.
    c0 = "T 0 · top-k all, sample 0"
    assert f"Recorded: accepted the pick ({c0}) of ex-0. Current pick: {c0}." in messages(at)
    st = state(db, "ex-0")
    assert st.reviewed and not st.overridden
    at.button(key="rv_back").click().run()
    assert metrics(at)["Left to review"] == "5"
    at.selectbox(key="rv_reviewed").select("yes").run()
    assert list(at.dataframe[0].value["example_id"]) == ["ex-0"]


def test_veto_pick_with_reason_moves_the_pick(db):
    at = review_app(example="ex-0")
    at.text_input(key="rv_reason_ex-0").input("off topic").run()
    at.button(key="rv_veto_pick").click().run()
    assert not at.exception
    assert "Current pick: T 1 · top-k 50 · top-p 0.9, sample 1." in messages(at)[0]
    assert picks(db)["ex-0"] == "ex-0/c1"
    h = history(connect(db), "ex-0")
    assert (h[0].action, h[0].reviewer, h[0].reason) == ("veto", "alice", "off topic")
    assert h[0].previous["pick"] == "ex-0/c0"
    assert at.text_input(key="rv_reason_ex-0").value == ""  # cleared for the next action
    # Back in the queue: what a reviewer scans sits first, the pick's setting by its values
    # (the new pick's, after the veto), long text last.
    at.button(key="rv_back").click().run()
    table = at.dataframe[0].value
    assert list(table.columns[:4]) == ["example_id", "setting", "reviewed", "overridden"]
    assert table.columns[-1] == "instruction"
    row = table.set_index("example_id").loc["ex-0"]
    assert (row["setting"], row["reviewed"], row["overridden"]) == (
        "T 1 · top-k 50 · top-p 0.9",
        True,
        True,
    )
    assert table.set_index("example_id").loc["ex-2", "setting"] == "T 0 · top-k all"


def test_force_then_unveto_by_candidate_buttons(db):
    at = review_app(example="ex-1")
    at.button(key="rv_force_2").click().run()  # third candidate card
    assert picks(db)["ex-1"] == "ex-1/c2"
    assert at.button(key="rv_force_2").disabled  # already forced
    at.button(key="rv_veto_0").click().run()
    assert "ex-1/c0" in state(db, "ex-1").vetoed
    at.button(key="rv_unveto_0").click().run()
    assert "ex-1/c0" not in state(db, "ex-1").vetoed
    assert picks(db)["ex-1"] == "ex-1/c2"


def test_exclude_and_include_again(db):
    at = review_app(example="ex-2")
    at.button(key="rv_exclude").click().run()
    assert "ex-2" not in picks(db)
    assert at.button(key="rv_exclude").label == "Include again"
    at.button(key="rv_exclude").click().run()
    assert picks(db)["ex-2"] == "ex-2/c0"


def test_rank_candidates_in_order(db):
    at = review_app(example="ex-4")
    ms = at.multiselect(key="rv_rank_ex-4")
    ms.select("ex-4/c2").select("ex-4/c1").select("ex-4/c0")  # inside a form: no rerun
    at.button(key="rv_save_rank").click().run()
    assert not at.exception
    assert state(db, "ex-4").ranking == ("ex-4/c2", "ex-4/c1", "ex-4/c0")
    assert picks(db)["ex-4"] == "ex-4/c2"


def test_manual_scores(db):
    at = review_app(example="ex-5")
    at.number_input(key="rv_score_ex-5_1_task").set_value(0.95).run()
    at.number_input(key="rv_score_ex-5_1_faithfulness").set_value(0.2).run()
    at.button(key="rv_save_scores_1").click().run()
    assert not at.exception
    assert state(db, "ex-5").scores == {"ex-5/c1": {"task": 0.95, "faithfulness": 0.2}}
    assert any("Your scores: task 0.95, faithfulness 0.20" in c.value for c in at.caption)


def test_note_is_recorded_and_empty_note_is_refused(db):
    at = review_app(example="ex-0")
    at.button(key="rv_add_note").click().run()
    assert any("value.text" in e for e in messages(at, "error"))
    at.text_area(key="rv_note_ex-0").input("rhyme is off").run()
    at.button(key="rv_add_note").click().run()
    h = history(connect(db), "ex-0")
    assert [(e.action, e.value) for e in h] == [("note", {"text": "rhyme is off"})]
    assert not state(db, "ex-0").reviewed


def test_undo_reverts_the_latest_action_and_shows_it_in_history(db):
    at = review_app(example="ex-0")
    assert at.button(key="rv_undo").disabled
    at.button(key="rv_veto_pick").click().run()
    at.button(key="rv_force_2").click().run()
    assert picks(db)["ex-0"] == "ex-0/c2"
    undo = at.button(key="rv_undo")
    assert undo.label == "Undo the forced pick"
    assert "alice forced candidate (T 1 · top-k 50 · top-p 0.9, sample 2) as the pick of ex-0" in (
        undo.help
    )
    at.button(key="rv_undo").click().run()
    assert picks(db)["ex-0"] == "ex-0/c1"
    at.button(key="rv_undo").click().run()
    assert picks(db)["ex-0"] == "ex-0/c0"
    assert at.button(key="rv_undo").disabled
    hist = next(e for e in at.expander if e.label.startswith("History"))
    assert hist.label == "History (4 events)"
    text = hist.markdown[0].value.replace("\\", "")
    assert "undid the forced pick on ex-0" in text and "undid the veto on ex-0" in text
    assert "forced candidate (T 1 · top-k 50 · top-p 0.9, sample 2) as the pick of ex-0" in text
    assert "by alice at" in text  # who undid it, not the undo's event id
    assert "ev-" not in visible_text(at)


def test_two_sessions_on_one_example_lose_nothing_and_see_who_changed_it(db):
    alice = review_app("alice", example="ex-0")
    bob = review_app("bob", example="ex-0")
    bob.button(key="rv_veto_pick").click().run()  # bob acts on what he sees
    alice.button(key="rv_force_2").click().run()  # alice acts on the state she saw
    warn = messages(alice, "warning")
    assert any(
        "Changed by someone else" in w and "bob vetoed candidate (T 0 · top-k all, sample 0)" in w
        for w in warn
    )
    # Alice's undo targets her own latest event, the one she was shown.
    alice.button(key="rv_undo").click().run()
    h = history(connect(db), "ex-0")
    assert [(e.action, e.reviewer) for e in h] == [
        ("veto", "bob"),
        ("force", "alice"),
        ("undo", "alice"),
    ]
    assert h[2].value["event_id"] == h[1].event_id
    assert picks(db)["ex-0"] == "ex-0/c1"  # bob's veto still holds
    # Bob's stale undo button named bob's veto; it still undoes exactly that event.
    bob.button(key="rv_undo").click().run()
    assert picks(db)["ex-0"] == "ex-0/c0"
    assert any("alice" in w for w in messages(bob, "warning"))


def test_queue_opens_example_and_next_walks_the_queue(db):
    at = review_app()
    at.button(key="rv_next_unreviewed").click().run()
    assert at.query_params["example"] == ["ex-0"] or at.query_params["example"] == "ex-0"
    at.button(key="rv_accept").click().run()
    at.button(key="rv_next_unrev").click().run()
    assert "Example ex-1" in [s.value for s in at.subheader]
    # Opened by "next unreviewed" (no queue position yet): Next/Previous still walk the
    # queue in order instead of bouncing back to the first unreviewed example.
    at.button(key="rv_next").click().run()
    assert at.query_params["example"] == "ex-2"
    at.button(key="rv_next").click().run()
    assert at.query_params["example"] == "ex-3"
    at.button(key="rv_prev").click().run()
    assert at.query_params["example"] == "ex-2"
