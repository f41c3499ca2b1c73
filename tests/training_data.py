"""Helpers for the curation/training tests: a scored selection written as the judging stage would."""

from __future__ import annotations

import json
import time

import pyarrow as pa

from reset_core.store import insert_arrow

ANSWERS = [
    "The capital of France is Paris.",
    "Paris is the capital of France.",
]


def fill_picks(con, n: int = 24, per_example: int = 3, selection_id: str = "sel-1") -> None:
    """n seen examples (alternating kinds, two sources), candidates, and a scored selection.

    Candidate j of example i scores 1 - 0.01 i - 0.1 j; rank j+1; candidate 0 is picked.
    """
    ids = [f"e{i:03d}" for i in range(n)]
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": ids,
                "instruction": [f"Question {i}: what is the capital of France?" for i in range(n)],
                "context": [None if i % 2 else "Paris is the capital of France." for i in range(n)],
                "reference": ["Paris." for _ in range(n)],
                "kind": ["instruction" if i % 2 else "context" for i in range(n)],
                "source": ["alpaca" if i % 3 else "squad" for i in range(n)],
                "split": ["seen"] * n,
                "content_hash": [f"h{i}" for i in range(n)],
            }
        ),
    )
    rows = [(i, j) for i in range(n) for j in range(per_example)]
    cand = [f"c{i:03d}-{j}" for i, j in rows]
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": cand,
                "example_id": [ids[i] for i, _ in rows],
                "model_id": ["m-base"] * len(rows),
                "setting_id": ["s"] * len(rows),
                "sample_index": [j for _, j in rows],
                "seed": [j for _, j in rows],
                "text": [f"{ANSWERS[j % 2]} (candidate {j})" for _, j in rows],
                "engine": ["test"] * len(rows),
            }
        ),
    )
    con.execute(
        "INSERT INTO selections (selection_id, preset, config) VALUES (?, 'RESET', ?)",
        [selection_id, json.dumps({"weights": {"w": 2.0}, "rule": "mean"})],
    )
    insert_arrow(
        con,
        "selection_scores",
        pa.table(
            {
                "selection_id": [selection_id] * len(rows),
                "candidate_id": cand,
                "example_id": [ids[i] for i, _ in rows],
                "score": [1.0 - 0.01 * i - 0.1 * j for i, j in rows],
                "rank": [j + 1 for _, j in rows],
                "picked": [j == 0 for _, j in rows],
            }
        ),
    )


def add_event(con, event_id, example_id, action, candidate_id=None, value=None, at=None):
    """Append one review event (as the review stage will)."""
    con.execute(
        "INSERT INTO overrides (event_id, example_id, candidate_id, action, value, reviewer, "
        "created_at) VALUES (?, ?, ?, ?, ?, 'ann', coalesce(?, current_timestamp))",
        [event_id, example_id, candidate_id, action, json.dumps(value) if value else None, at],
    )


def wait_job(con, job_id: str, timeout: float = 240, until=("done", "failed", "cancelled")):
    """Poll a training job (ingesting metrics) until it reaches a final status."""
    from reset_core.training.launch import sync_training

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = sync_training(con, job_id)
        if progress.get("status") in until:
            return progress
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {progress.get('status')} after {timeout}s")
