"""RESET scoring and selection on a fixed, hand-computed table."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from pydantic import ValidationError

from reset_core.scoring.selection import (
    SelectionConfig,
    preview_selection,
    save_selection,
    score_candidates,
)
from reset_core.store import insert_arrow

# example -> kind; candidate -> example
EXAMPLES = {"E1": "instruction", "E2": "context", "E3": "instruction", "E4": "context"}
CANDS = {"A": "E1", "B": "E1", "C": "E2", "D": "E2", "F": "E3", "G": "E3", "H": "E4"}
# (candidate, judge, aspect, score) ; None = a failed judgment (no vote)
JUDGMENTS = [
    ("A", "X", "task", 0.5),
    ("A", "X", "instruction", 0.8),
    ("A", "X", "faithfulness", 0.0),  # not needed for an instruction example: ignored
    ("A", "Y", "task", 0.7),
    ("B", "X", "task", 0.9),
    ("B", "X", "instruction", 0.3),
    ("C", "X", "task", 0.4),
    ("C", "X", "faithfulness", 1.0),
    ("D", "X", "task", 1.0),
    ("D", "X", "faithfulness", 0.5),
    ("D", "X", "instruction", 0.0),  # not needed for a context example: ignored
    ("F", "X", "task", 0.7),
    ("F", "X", "instruction", None),  # judge failed: F is not rankable
    ("G", "X", "task", 0.2),
    ("G", "X", "instruction", 0.1),
    ("H", "X", "task", 0.9),  # no faithfulness at all
]


@pytest.fixture
def table(con):
    ex = list(EXAMPLES)
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": ex,
                "instruction": [f"do {e}" for e in ex],
                "context": [("ctx" if EXAMPLES[e] == "context" else None) for e in ex],
                "kind": [EXAMPLES[e] for e in ex],
                "source": ["t"] * len(ex),
                "split": ["seen"] * len(ex),
                "content_hash": ex,
            }
        ),
    )
    cs = list(CANDS)
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": cs,
                "example_id": [CANDS[c] for c in cs],
                "model_id": ["m"] * len(cs),
                "setting_id": ["s"] * len(cs),
                "sample_index": list(range(len(cs))),
                "seed": [0] * len(cs),
                "text": [f"answer {c}" for c in cs],
                "engine": ["test"] * len(cs),
            }
        ),
    )
    insert_arrow(
        con,
        "judgments",
        pa.table(
            {
                "judgment_id": [f"j{i}" for i in range(len(JUDGMENTS))],
                "candidate_id": [j[0] for j in JUDGMENTS],
                "judge_id": [j[1] for j in JUDGMENTS],
                "aspect": [j[2] for j in JUDGMENTS],
                "score": pa.array([j[3] for j in JUDGMENTS], pa.float64()),
                "status": ["ok" if j[3] is not None else "parse_error" for j in JUDGMENTS],
            }
        ),
    )
    return con


def _rows(con, cfg):
    return {r["candidate_id"]: r for r in score_candidates(con, cfg).to_pylist()}


def test_formula_by_hand_for_both_kinds_and_missing_aspects(table):
    r = _rows(table, SelectionConfig(judges=["X"]))
    assert r["A"]["score"] == pytest.approx(0.5 + 2 * 0.8)  # instruction: task + w·instr
    assert r["B"]["score"] == pytest.approx(0.9 + 2 * 0.3)
    assert r["C"]["score"] == pytest.approx(0.4 + 2 * 1.0)  # context: task + w·faith
    assert r["D"]["score"] == pytest.approx(1.0 + 2 * 0.5)
    assert r["G"]["score"] == pytest.approx(0.2 + 2 * 0.1)
    # A failed verdict is no vote: F lacks instruction, H lacks faithfulness.
    assert r["F"]["score"] is None and r["F"]["missing"] == "instruction"
    assert r["H"]["score"] is None and r["H"]["missing"] == "faithfulness"
    assert r["F"]["rank"] is None and not r["F"]["picked"]
    picks = {c for c, x in r.items() if x["picked"]}
    assert picks == {"A", "C", "G"}  # E4 has no rankable candidate, so no pick


def test_mean_of_judges_and_weights(table):
    r = _rows(table, SelectionConfig())  # X and Y: A's task = mean(0.5, 0.7)
    assert r["A"]["s_task"] == pytest.approx(0.6)
    assert r["A"]["score"] == pytest.approx(0.6 + 1.6)
    r0 = _rows(table, SelectionConfig(weight=0.0))
    assert r0["A"]["score"] == pytest.approx(0.6) and r0["B"]["picked"]


def test_one_named_judge_and_agreement_rule(table):
    by = {"task": "Y", "instruction": "X", "faithfulness": "X"}
    r = _rows(table, SelectionConfig(combine="judge", judge_by_aspect=by))
    assert r["A"]["score"] == pytest.approx(0.7 + 1.6)
    assert r["B"]["score"] is None and r["B"]["missing"] == "task"
    r = _rows(table, SelectionConfig(combine="agree", delta=0.1))
    assert r["A"]["score"] is None and r["A"]["missing"] == "task (judges disagree)"
    assert r["B"]["picked"]
    r = _rows(table, SelectionConfig(combine="agree", delta=0.25))
    assert r["A"]["score"] == pytest.approx(2.2)
    with pytest.raises(ValidationError, match="judge_by_aspect"):
        SelectionConfig(combine="judge", judge_by_aspect={"task": "X"})


def test_presets_on_fixed_table(table):
    picks = lambda cfg: {c for c, x in _rows(table, cfg).items() if x["picked"]}  # noqa: E731
    assert picks(SelectionConfig(preset="reset")) == {"A", "C", "G"}
    # RESET-S keeps the best third of the top-1 picks per kind: instruction A 2.2, G 0.4
    # -> ceil(2/3) = 1: A; context C 2.4 -> C
    assert picks(SelectionConfig(preset="reset_s")) == {"A", "C"}
    # ... with a stricter panel (judges agree within 0.1), A's task judges (0.5 vs 0.7)
    # disagree: A is not rankable, B (1.5) is E1's pick and the best instruction pick
    strict = SelectionConfig(preset="reset_s", require_agreement=True, delta=0.1)
    assert picks(strict) == {"B", "C"}
    assert _rows(table, strict)["A"]["missing"] == "judges disagree"
    # a threshold applies to any preset: 2.3 drops A (2.2) and G
    assert picks(SelectionConfig(preset="reset", threshold=2.3)) == {"C"}
    # custom: top-2 per example, best 3 overall: C 2.4, A 2.2, D 2.0 (B 1.5, G 0.4 cut)
    assert picks(SelectionConfig(preset="custom", top_k=2, target_size=3)) == {"C", "A", "D"}
    assert picks(SelectionConfig(preset="custom", top_k=2, threshold=1.0)) == {"A", "B", "C", "D"}


def test_overrides_are_not_baked_into_scores(table):
    def event(eid, example, cand, action, value=None):
        table.execute(
            "INSERT INTO overrides (event_id, example_id, candidate_id, action, value, reviewer, "
            "created_at) VALUES (?, ?, ?, ?, ?, 'ann', now() + to_microseconds(?))",
            [eid, example, cand, action, value, int(time.monotonic_ns() // 1000 % 10**9)],
        )

    event("o1", "E1", "A", "veto")
    event("o2", "E2", "D", "force")
    event("o3", "E3", None, "exclude")
    # The judges' picks stand in the scores; reviewers' overrides are applied when
    # picks are read (reset_core.review.events.effective_picks, tested in
    # test_scoring_panels.py).
    r = _rows(table, SelectionConfig())
    assert {c for c, x in r.items() if x["picked"]} == {"A", "C", "G"}
    assert "override" not in r["A"] and r["A"]["rank"] == 1


def test_saved_selection_and_changed_picks(table):
    first = save_selection(table, SelectionConfig())
    assert (first.n_picked, first.n_unrankable, first.n_changed) == (3, 2, None)
    stored = table.execute(
        "SELECT count(*), count(*) FILTER (WHERE picked) FROM selection_scores WHERE selection_id = ?",
        [first.selection_id],
    ).fetchall()[0]
    assert stored == (7, 3)
    # w = 0 ranks by task alone: E1 flips A -> B, E2 flips C -> D, E3 stays G.
    prev = preview_selection(table, SelectionConfig(weight=0.0))
    assert prev.n_changed == 2 and prev.selection_id is None
    second = save_selection(table, SelectionConfig(weight=0.0))
    assert second.n_changed == 2 and second.compared_to == first.selection_id
