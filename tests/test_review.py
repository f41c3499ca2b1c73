"""The review event model: actions, undo, derived state, effective picks, concurrency, export."""

import json
import random
import re
import threading

import pytest
from review_data import PAYLOAD, SELECTION, seed

from reset_core.curation.config import CurationSpec
from reset_core.curation.export import export_set
from reset_core.curation.sets import create_curated_set
from reset_core.review import events as review
from reset_core.review.events import (
    ReviewError,
    effective_picks,
    example_state,
    history,
    record,
    undo,
)
from reset_core.review.text import escape_markdown, highlight_markdown, unsupported_spans


@pytest.fixture
def rcon(con):
    seed(con)
    return con


def picks(con, **kw):
    return {
        r["example_id"]: r["candidate_id"]
        for r in effective_picks(con, SELECTION, **kw).to_pylist()
    }


def test_judge_picks_without_overrides(rcon):
    assert picks(rcon) == {f"ex-{i}": f"ex-{i}/c0" for i in range(6)}


def test_veto_moves_to_next_best_then_none_and_unveto_restores(rcon):
    record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c0", reason="off topic")
    assert picks(rcon)["ex-0"] == "ex-0/c1"
    rows = {r["example_id"]: r for r in effective_picks(rcon, SELECTION).to_pylist()}
    assert rows["ex-0"]["source"] == "next_best" and rows["ex-0"]["judge_pick"] == "ex-0/c0"
    record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c1")
    record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c2")
    assert "ex-0" not in picks(rcon)
    none = {
        r["example_id"]: r for r in effective_picks(rcon, SELECTION, include_none=True).to_pylist()
    }
    assert none["ex-0"]["candidate_id"] is None and none["ex-0"]["source"] == "none"
    record(rcon, "ex-0", "unveto", "bob", candidate_id="ex-0/c0")
    assert picks(rcon)["ex-0"] == "ex-0/c0"


def test_veto_skips_unrankable_candidates(rcon):
    # ex-2/c1 has no RESET score (a judge failed): never a fallback pick.
    record(rcon, "ex-2", "veto", "alice", candidate_id="ex-2/c0")
    assert picks(rcon)["ex-2"] == "ex-2/c2"


def test_force_replaces_pick_and_a_later_force_or_veto_wins(rcon):
    record(rcon, "ex-1", "force", "alice", candidate_id="ex-1/c2")
    assert picks(rcon)["ex-1"] == "ex-1/c2"
    record(rcon, "ex-1", "force", "alice", candidate_id="ex-1/c1")
    assert picks(rcon)["ex-1"] == "ex-1/c1"
    record(rcon, "ex-1", "veto", "bob", candidate_id="ex-1/c1")
    assert picks(rcon)["ex-1"] == "ex-1/c0"  # force lifted by the veto: judge pick again
    record(rcon, "ex-1", "force", "bob", candidate_id="ex-1/c1")  # forcing lifts the veto
    st = example_state(rcon, "ex-1", SELECTION)
    assert st.forced == "ex-1/c1" and "ex-1/c1" not in st.vetoed and st.pick_source == "force"


def test_exclude_removes_example_and_include_brings_it_back(rcon):
    record(rcon, "ex-4", "exclude", "alice", reason="duplicate")
    assert "ex-4" not in picks(rcon)
    assert example_state(rcon, "ex-4", SELECTION).pick_source == "excluded"
    record(rcon, "ex-4", "include", "alice")
    assert picks(rcon)["ex-4"] == "ex-4/c0"


def test_rank_orders_picks_and_skips_vetoed(rcon):
    record(rcon, "ex-5", "rank", "alice", value={"ranking": ["ex-5/c2", "ex-5/c0", "ex-5/c1"]})
    assert picks(rcon)["ex-5"] == "ex-5/c2"
    record(rcon, "ex-5", "veto", "alice", candidate_id="ex-5/c2")
    assert picks(rcon)["ex-5"] == "ex-5/c0"
    assert example_state(rcon, "ex-5", SELECTION).ranking == ("ex-5/c2", "ex-5/c0", "ex-5/c1")


def test_manual_scores_merge_per_aspect_and_null_clears(rcon):
    record(
        rcon,
        "ex-0",
        "score",
        "alice",
        candidate_id="ex-0/c1",
        value={"aspect": "task", "score": 0.7},
    )
    record(
        rcon,
        "ex-0",
        "score",
        "bob",
        candidate_id="ex-0/c1",
        value={"aspect": "instruction", "score": 1},
    )
    assert example_state(rcon, "ex-0", SELECTION).scores == {
        "ex-0/c1": {"task": 0.7, "instruction": 1.0}
    }
    rows = review.manual_scores(rcon).to_pylist()
    assert {(r["aspect"], r["score"]) for r in rows} == {("task", 0.7), ("instruction", 1.0)}
    record(
        rcon,
        "ex-0",
        "score",
        "bob",
        candidate_id="ex-0/c1",
        value={"aspect": "task", "score": None},
    )
    assert example_state(rcon, "ex-0", SELECTION).scores == {"ex-0/c1": {"instruction": 1.0}}


def test_note_is_history_not_a_decision_and_accept_is(rcon):
    record(rcon, "ex-0", "note", "alice", value={"text": "check the rhyme"})
    st = example_state(rcon, "ex-0", SELECTION)
    assert not st.reviewed and not st.overridden
    r = record(rcon, "ex-0", "accept", "alice")
    assert r.event.candidate_id == "ex-0/c0" and r.event.value == {"candidate_id": "ex-0/c0"}
    assert r.state.reviewed and not r.state.overridden


def test_every_event_keeps_who_when_reason_and_previous_state(rcon):
    r1 = record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c0", reason="wrong")
    r2 = record(rcon, "ex-0", "force", "bob", candidate_id="ex-0/c2")
    h = history(rcon, "ex-0")
    assert [(e.action, e.reviewer, e.reason) for e in h] == [
        ("veto", "alice", "wrong"),
        ("force", "bob", None),
    ]
    assert h[0].previous["pick"] == "ex-0/c0" and h[0].previous["vetoed"] == []
    assert h[1].previous["pick"] == "ex-0/c1" and h[1].previous["vetoed"] == ["ex-0/c0"]
    assert h[0].created_at < h[1].created_at
    assert r2.previous.version == r1.event.event_id
    # Append-only: the rows are exactly the two events, none rewritten.
    raw = rcon.execute("SELECT action, value FROM overrides ORDER BY created_at").fetchall()
    assert [(a, json.loads(v)) for a, v in raw] == [
        ("veto", {}),
        ("force", {}),
    ]


def test_undo_cancels_latest_live_event_in_turn(rcon):
    record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c0")
    record(rcon, "ex-0", "force", "alice", candidate_id="ex-0/c2")
    u1 = undo(rcon, "ex-0", "alice")
    assert u1.event.value["event_id"] == history(rcon, "ex-0")[1].event_id
    assert picks(rcon)["ex-0"] == "ex-0/c1"  # the veto still holds
    undo(rcon, "ex-0", "alice")
    assert picks(rcon)["ex-0"] == "ex-0/c0"
    with pytest.raises(ReviewError, match="nothing left to undo"):
        undo(rcon, "ex-0", "alice")
    h = history(rcon, "ex-0")
    assert [e.action for e in h] == ["veto", "force", "undo", "undo"]
    assert h[0].undone_by == h[3].event_id and h[1].undone_by == h[2].event_id


def test_undo_a_named_event_and_refuse_double_or_undo_of_undo(rcon):
    v = record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c0").event
    record(rcon, "ex-0", "note", "bob", value={"text": "fine"})
    u = undo(rcon, "ex-0", "carol", event_id=v.event_id)
    assert picks(rcon)["ex-0"] == "ex-0/c0"
    with pytest.raises(ReviewError, match="already undone by carol"):
        undo(rcon, "ex-0", "alice", event_id=v.event_id)
    with pytest.raises(ReviewError, match="an undo cannot be undone"):
        undo(rcon, "ex-0", "alice", event_id=u.event.event_id)
    with pytest.raises(ReviewError, match="no event"):
        undo(rcon, "ex-0", "alice", event_id="ev-nope")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(action="wave"), "action: 'wave' is not one of"),
        (dict(action="veto"), "candidate_id: required for veto"),
        (dict(action="veto", candidate_id="ex-1/c0"), "not a candidate of 'ex-0'"),
        (dict(action="exclude", candidate_id="ex-0/c0"), "applies to the whole example"),
        (dict(action="veto", candidate_id="ex-0/c0", value={"vetoed": 1}), "unexpected field"),
        (dict(action="rank", value={"ranking": ["ex-0/c0", "ex-0/c0"]}), "appears twice"),
        (dict(action="rank", value={"ranking": "ex-0/c0"}), "value.ranking"),
        (
            dict(action="score", candidate_id="ex-0/c0", value={"aspect": "task", "score": 1.5}),
            r"value.score: must be in \[0, 1\]",
        ),
        (
            dict(action="score", candidate_id="ex-0/c0", value={"aspect": "style", "score": 1}),
            "value.aspect: 'style' is not one of",
        ),
        (dict(action="note", value={"text": "  "}), "value.text"),
        (dict(action="note", value={"text": "x", "extra": 1}), "unexpected field"),
    ],
)
def test_bad_actions_are_refused_with_the_field_named_and_nothing_stored(rcon, kwargs, message):
    with pytest.raises(ReviewError, match=message):
        record(rcon, "ex-0", reviewer="alice", **kwargs)
    assert rcon.execute("SELECT count(*) FROM overrides").fetchall() == [(0,)]


def test_unknown_example_and_missing_reviewer(rcon):
    with pytest.raises(ReviewError, match="example_id: no example"):
        record(rcon, "nope", "note", "alice", value={"text": "x"})
    with pytest.raises(ReviewError, match="reviewer: a name is required"):
        record(rcon, "ex-0", "note", "  ", value={"text": "x"})


def test_seen_version_reports_who_changed_the_example_since(rcon):
    seen = example_state(rcon, "ex-0", SELECTION).version  # alice opens the example
    assert seen is None
    record(rcon, "ex-0", "veto", "bob", candidate_id="ex-0/c0", seen=None)  # bob acts first
    r = record(rcon, "ex-0", "force", "alice", candidate_id="ex-0/c2", seen=seen)
    assert [(e.action, e.reviewer) for e in r.concurrent] == [("veto", "bob")]
    again = record(rcon, "ex-0", "note", "alice", value={"text": "ok"}, seen=r.state.version)
    assert again.concurrent == []
    assert len(history(rcon, "ex-0")) == 3


def test_two_reviewers_hammering_one_example_lose_no_event(rcon):
    """Threads with their own cursors append concurrently; every event is stored, in order."""
    n = 15
    errors = []
    barrier = threading.Barrier(2)

    def reviewer(name, cand):
        cur = rcon.cursor()
        try:
            barrier.wait()
            for k in range(n):
                action = "veto" if k % 2 == 0 else "force"
                record(cur, "ex-1", action, name, candidate_id=cand, reason=f"{name} {k}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=reviewer, args=("alice", "ex-1/c1")),
        threading.Thread(target=reviewer, args=("bob", "ex-1/c2")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    h = history(rcon, "ex-1")
    assert len(h) == 2 * n
    assert {e.reason for e in h} == {f"{who} {k}" for who in ("alice", "bob") for k in range(n)}
    assert len({e.created_at for e in h}) == 2 * n  # strictly ordered
    # Each event's previous state is the state right after the event before it.
    for before, after in zip(h, h[1:], strict=False):
        assert after.previous["version"] == before.event_id


def test_sql_and_python_derivations_agree_on_random_histories(con):
    """The bulk SQL (queue, exports) and the per-example replay (example view) must agree."""
    seed(con, n_examples=12, per_example=4)
    rng = random.Random(7)
    actions = ["veto", "unveto", "force", "unforce", "exclude", "include", "rank", "undo"]
    actions += ["veto", "score", "note", "accept"]
    for _ in range(300):
        ex = f"ex-{rng.randrange(12)}"
        cand = f"{ex}/c{rng.randrange(4)}"
        a = rng.choice(actions)
        try:
            if a in ("veto", "unveto", "force", "unforce"):
                record(con, ex, a, "r", candidate_id=cand)
            elif a in ("exclude", "include"):
                record(con, ex, a, "r")
            elif a == "rank":
                order = [f"{ex}/c{j}" for j in rng.sample(range(4), rng.randrange(0, 5))]
                record(con, ex, a, "r", value={"ranking": order})
            elif a == "score":
                score = rng.choice([None, rng.random()])
                record(con, ex, a, "r", candidate_id=cand, value={"aspect": "task", "score": score})
            elif a == "note":
                record(con, ex, a, "r", value={"text": "n"})
            elif a == "accept":
                record(con, ex, a, "r")
            else:
                undo(con, ex, "r")
        except ReviewError as e:
            assert "nothing left to undo" in str(e)
    bulk = {}
    for r in effective_picks(con, SELECTION, include_none=True).to_pylist():
        bulk.setdefault(r["example_id"], {"picks": set(), "source": set()})
        if r["candidate_id"]:
            bulk[r["example_id"]]["picks"].add(r["candidate_id"])
        bulk[r["example_id"]]["source"].add(r["source"])
    scores_sql = {
        (r["candidate_id"], r["aspect"]): r["score"] for r in review.manual_scores(con).to_pylist()
    }
    scores_py = {}
    for i in range(12):
        st = example_state(con, f"ex-{i}", SELECTION)
        assert set(st.picks) == bulk[f"ex-{i}"]["picks"], f"ex-{i}"
        for c, s in st.scores.items():
            scores_py.update({(c, a): v for a, v in s.items()})
    assert scores_py == scores_sql


def test_selection_with_two_picks_refills_a_vetoed_one(rcon):
    rcon.execute("UPDATE selection_scores SET picked = rank <= 2 WHERE example_id = 'ex-0'")
    assert set(effective_picks(rcon, SELECTION, ["ex-0"]).column("candidate_id").to_pylist()) == {
        "ex-0/c0",
        "ex-0/c1",
    }
    record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c0")
    rows = effective_picks(rcon, SELECTION, ["ex-0"]).to_pylist()
    assert {(r["candidate_id"], r["source"]) for r in rows} == {
        ("ex-0/c1", "judge"),
        ("ex-0/c2", "next_best"),
    }


def test_export_reflects_overrides(rcon, tmp_path):
    """Review overrides reach the exported file: curate a set from the selection, export it."""
    record(rcon, "ex-0", "veto", "alice", candidate_id="ex-0/c0")
    record(rcon, "ex-1", "force", "alice", candidate_id="ex-1/c2")
    record(rcon, "ex-2", "exclude", "alice")
    set_id = create_curated_set(rcon, CurationSpec(selection_id=SELECTION))
    out = export_set(rcon, set_id, tmp_path, form="prompt_completion", fmt="jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    text = dict(rcon.execute("SELECT candidate_id, text FROM candidates").fetchall())
    got = {r["example_id"]: r["completion"][0]["content"] for r in rows}
    assert got["ex-0"] == text["ex-0/c1"]  # vetoed pick replaced by the next best
    assert got["ex-1"] == text["ex-1/c2"]  # forced
    assert "ex-2" not in got  # excluded
    overrides = json.loads(out.with_name(out.name + ".manifest.json").read_text())["overrides"]
    assert overrides["by_outcome"] == {"judge": 3, "next_best": 1, "force": 1}
    assert overrides["examples_changed"] == ["ex-0", "ex-1"]
    ctx = next(r for r in rows if r["example_id"] == "ex-1")
    assert ctx["prompt"][0]["content"].endswith("The glacier carries rocks and sand to the valley.")
    assert ctx["completion"][0]["content"].startswith("The glacier carries rocks to Paris")


def test_markdown_escape_makes_payloads_literal():
    md = escape_markdown(PAYLOAD)
    # Every Markdown/HTML special character carries a backslash; the text is otherwise intact.
    assert re.search(r"(?<!\\)[<>*\[\]()$:=\"_]", md) is None
    assert md.replace("\\", "") == PAYLOAD


def test_unsupported_spans_highlight_after_escaping():
    answer = "The glacier carries <rocks> to Paris in 1999."
    spans = unsupported_spans(answer, "The glacier carries rocks and sand.")
    assert [answer[s:e] for s, e in spans] == ["Paris", "1999"]
    md = highlight_markdown(answer, spans)
    assert ":orange-background[Paris]" in md and "\\<rocks\\>" in md


def test_current_overrides_drops_lifted_and_replaced_overrides(rcon):
    """The live overrides in force: lifted and replaced overrides drop out."""
    from reset_core.review.events import current_overrides as override_state

    record(rcon, "ex-0", "force", "alice", candidate_id="ex-0/c1")
    record(rcon, "ex-0", "force", "bob", candidate_id="ex-0/c2")  # replaces alice's force
    record(rcon, "ex-1", "veto", "alice", candidate_id="ex-1/c0")
    record(rcon, "ex-1", "veto", "alice", candidate_id="ex-1/c1")
    record(rcon, "ex-1", "unveto", "bob", candidate_id="ex-1/c1")
    record(rcon, "ex-2", "exclude", "alice")
    record(rcon, "ex-3", "exclude", "alice")
    record(rcon, "ex-3", "include", "alice")
    rows = {
        (r["example_id"], r["candidate_id"], r["action"]) for r in override_state(rcon).to_pylist()
    }
    assert rows == {
        ("ex-0", "ex-0/c2", "force"),
        ("ex-1", "ex-1/c0", "veto"),
        ("ex-2", None, "exclude"),
    }
