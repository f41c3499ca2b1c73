"""A small, fixed analytics database: every figure in the analytics tests is computable by hand.

Six seen examples (e1–e3 open-ended, e4–e6 grounded), three decoding settings
(``s:cold``, ``s:hot``, ``s:never``) × one model = 18 candidates. Two judges score
``task`` and ``instruction`` on every candidate and ``faithfulness`` on grounded ones;
one of judge B's verdicts failed (NULL). The latest selection picks the best of
``s:cold``/``s:hot`` per example; ``s:never`` never wins. Reviewers alice and carol
scored four candidates' task; alice vetoed one pick and forced another candidate.
"""

from __future__ import annotations

import json

import pyarrow as pa

from reset_core.store import insert_arrow

EXAMPLES = [f"e{i}" for i in range(1, 7)]
SETTINGS = {"s:cold": 0.2, "s:hot": 1.2, "s:never": 1.5}
#: (example, setting) -> text; e1's cold and hot answers are identical (a duplicate)
TEXTS = {
    ("e1", "s:cold"): "the sky is blue",
    ("e1", "s:hot"): "the sky is blue",
    ("e1", "s:never"): "blue sky maybe",
    ("e2", "s:cold"): "paris is the capital",
    ("e2", "s:hot"): "paris of course is the capital city",
    ("e2", "s:never"): "london",
    ("e3", "s:cold"): "four",
    ("e3", "s:hot"): "two plus two is four",
    ("e3", "s:never"): "five",
    ("e4", "s:cold"): "the report says sales rose",
    ("e4", "s:hot"): "sales rose by ten percent last year",
    ("e4", "s:never"): "sales fell",
    ("e5", "s:cold"): "ada wrote the first program",
    ("e5", "s:hot"): "ada lovelace wrote notes on the engine",
    ("e5", "s:never"): "babbage",
    ("e6", "s:cold"): "the river floods in spring",
    ("e6", "s:hot"): "spring floods come from snow melt",
    ("e6", "s:never"): "never floods",
}
# Judge A's and judge B's scores per (example, setting, aspect). B differs from A on a
# few items so agreement is high but imperfect.
_A = {"s:cold": 0.75, "s:hot": 1.0, "s:never": 0.25}
JUDGE_A = {}
JUDGE_B = {}
for _e in EXAMPLES:
    for _s, _v in _A.items():
        for _asp in ("task", "instruction", "faithfulness"):
            if _asp == "faithfulness" and _e in ("e1", "e2", "e3"):
                continue
            JUDGE_A[(_e, _s, _asp)] = _v
            JUDGE_B[(_e, _s, _asp)] = _v
JUDGE_A[("e2", "s:cold", "task")] = 0.5
JUDGE_B[("e3", "s:hot", "task")] = 0.5
JUDGE_B[("e4", "s:never", "task")] = 0.0
JUDGE_B[("e5", "s:cold", "faithfulness")] = 0.5
JUDGE_B[("e6", "s:hot", "instruction")] = None  # the judge failed: excluded, counted
PICKS = {e: "s:hot" for e in EXAMPLES}


def cid(example: str, setting: str) -> str:
    return f"c:{example}:{setting}"


def fill(con, judges: tuple[str, ...] = ("judge:a", "judge:b"), humans: bool = True) -> None:
    """Write the fixed data set into a migrated database."""
    con.execute(
        "INSERT INTO decoding_settings VALUES "
        + ", ".join(f"('{s}', {t}, -1, 1.0, 64, 0, 1)" for s, t in SETTINGS.items())
    )
    con.execute("INSERT INTO models (model_id, name, stage) VALUES ('m:mtl', 'mtl', 'mtl')")
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": EXAMPLES,
                "instruction": [f"question {e}" for e in EXAMPLES],
                "context": [None, None, None, "ctx", "ctx", "ctx"],
                "kind": ["instruction"] * 3 + ["context"] * 3,
                "source": ["test"] * 6,
                "split": ["seen"] * 6,
                "content_hash": EXAMPLES,
            }
        ),
    )
    keys = list(TEXTS)
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": [cid(e, s) for e, s in keys],
                "example_id": [e for e, _ in keys],
                "model_id": ["m:mtl"] * len(keys),
                "setting_id": [s for _, s in keys],
                "sample_index": [0] * len(keys),
                "seed": [0] * len(keys),
                "text": [TEXTS[k] for k in keys],
                "engine": ["test"] * len(keys),
            }
        ),
    )
    rows = []
    for judge, table in zip(judges, (JUDGE_A, JUDGE_B), strict=False):
        for (e, s, asp), score in table.items():
            rows.append(
                {
                    "judgment_id": f"j:{judge}:{e}:{s}:{asp}",
                    "candidate_id": cid(e, s),
                    "judge_id": judge,
                    "aspect": asp,
                    "score": score,
                    "status": "ok" if score is not None else "parse_error",
                }
            )
    insert_arrow(con, "judgments", pa.Table.from_pylist(rows))
    con.execute("INSERT INTO selections VALUES ('sel:1', 'reset', '{}', now())")
    insert_arrow(
        con,
        "selection_scores",
        pa.Table.from_pylist(
            [
                {
                    "selection_id": "sel:1",
                    "candidate_id": cid(e, s),
                    "example_id": e,
                    "score": 1.0,
                    "rank": 1 if PICKS[e] == s else 2,
                    "picked": PICKS[e] == s,
                }
                for e, s in keys
            ]
        ),
    )
    if humans:
        add_human_events(con)


#: manual task scores: alice and carol agree on three of four candidates
HUMAN_TASK = {
    ("alice", "e1", "s:cold"): 0.75,
    ("alice", "e2", "s:hot"): 1.0,
    ("alice", "e3", "s:never"): 0.25,
    ("alice", "e4", "s:hot"): 0.5,
    ("carol", "e1", "s:cold"): 0.75,
    ("carol", "e2", "s:hot"): 1.0,
    ("carol", "e3", "s:never"): 0.0,
    ("carol", "e4", "s:hot"): 0.5,
}


def add_human_events(con) -> None:
    events = []
    for i, ((reviewer, e, s), score) in enumerate(HUMAN_TASK.items()):
        events.append(
            (f"o:{i}", e, cid(e, s), "score", {"aspect": "task", "score": score}, reviewer)
        )
    # a superseded score (alice first said 0.0 for e4 hot, then 0.5 above, later in time)
    events.insert(
        0, ("o:early", "e4", cid("e4", "s:hot"), "score", {"aspect": "task", "score": 0.0}, "alice")
    )
    # an undone score: must not count
    events.append(
        ("o:bad", "e5", cid("e5", "s:hot"), "score", {"aspect": "task", "score": 0.0}, "carol")
    )
    events.append(("o:undo", "e5", None, "undo", {"event_id": "o:bad"}, "carol"))
    # vetoes / forces: alice vetoes e1's pick (s:hot) and forces e2's s:cold
    events.append(("o:veto", "e1", cid("e1", "s:hot"), "veto", None, "alice"))
    events.append(("o:force", "e2", cid("e2", "s:cold"), "force", None, "alice"))
    insert_arrow(
        con,
        "overrides",
        pa.Table.from_pylist(
            [
                {
                    "event_id": ev,
                    "example_id": e,
                    "candidate_id": c,
                    "action": a,
                    "value": json.dumps(v) if v is not None else None,
                    "reviewer": r,
                    "created_at": f"2025-01-01 00:00:{i:02d}",
                }
                for i, (ev, e, c, a, v, r) in enumerate(events)
            ]
        ),
    )
