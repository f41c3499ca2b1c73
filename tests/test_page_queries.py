"""The read-only queries the Judge, Sample and Train pages call, on a known dataset.

``review_data.seed``: 6 examples x 3 candidates, two judges on two aspects each, one
failed verdict (``ex-2/c1``, LLM judge, task) and a scored selection with one pick
per example.
"""

from __future__ import annotations

import json

import pytest
import review_data

from reset_core import jobs
from reset_core.judging import queries as judging_queries
from reset_core.sampling.queries import count_candidates
from reset_core.scoring.queries import selection_rows
from reset_core.store import connect
from reset_core.training.queries import trained_checkpoints


@pytest.fixture
def seeded():
    con = connect(":memory:")
    review_data.seed(con)
    yield con
    con.close()


def test_judgment_summary_counts_failures_and_puts_them_first(seeded):
    s = judging_queries.judgment_summary(seeded)
    assert tuple(s.columns) == judging_queries.SUMMARY_COLUMNS
    assert int(s["n"].sum()) == 6 * 3 * 2 * 2
    assert int(s["failed"].sum()) == 1 and int(s["scored"].sum()) == 6 * 3 * 2 * 2 - 1
    first = s.iloc[0]
    assert (first["judge_id"], first["aspect"], first["failed"]) == ("llm-judge@v1", "task", 1)
    assert (s["n"] == s["scored"] + s["failed"]).all()


def test_failed_verdicts_are_listed_first_with_their_candidate(seeded):
    assert judging_queries.judgment_statuses(seeded) == ["parse_error", "ok"]
    failed = judging_queries.judgments_with_status(seeded, "parse_error")
    assert len(failed) == 1
    assert failed["score"].isna().all() and failed["candidate"][0].startswith("River runs")
    assert len(judging_queries.judgments_with_status(seeded, "ok", limit=5)) == 5


def test_judge_ids_are_every_judge_sorted(seeded):
    assert judging_queries.judge_ids(seeded) == sorted(review_data.JUDGES)


def test_selection_rows_picks_only_or_all(seeded):
    picks = selection_rows(seeded, review_data.SELECTION)
    assert len(picks) == 6 and picks["picked"].all()
    assert list(picks["example_id"]) == sorted(picks["example_id"])
    every = selection_rows(seeded, review_data.SELECTION, picks_only=False)
    assert len(every) == 18
    # Within an example by rank, the not-rankable candidate last.
    ex2 = every[every["example_id"] == "ex-2"]
    assert ex2["rank"].isna().tolist() == [False, False, True]
    assert len(selection_rows(seeded, review_data.SELECTION, picks_only=False, limit=4)) == 4


def test_count_candidates(seeded):
    assert count_candidates(seeded) == 18


def test_trained_checkpoints_leave_out_registered_bases(seeded):
    seeded.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, training_run_id, "
        "created_at) VALUES ('m:base', 'tiny', '/m/tiny', NULL, 'base', NULL, '2024-01-01'), "
        "('m:mtl', 'mtl', '/r/1', NULL, 'mtl', 'r1', '2024-01-02'), "
        "('m:reset', 'reset', '/m/tiny', '/r/2/adapter', 'reset', 'r2', '2024-01-03')"
    )
    assert trained_checkpoints(seeded) == [
        ("m:reset", "reset", "/m/tiny", "/r/2/adapter", "reset"),
        ("m:mtl", "mtl", "/r/1", None, "mtl"),
    ]


def test_job_reading(seeded, tmp_path):
    rows = [
        ("judge-a", "judge", "done", "2024-01-01"),
        ("judge-b", "judge", "failed", "2024-01-02"),
        ("judge-c", "judge", "running", "2024-01-03"),
        ("sample-a", "sample", "queued", "2024-01-04"),
        ("sample-b", "sample", "running", "2024-01-05"),
        ("sample-c", "sample", "cancelled", "2024-01-06"),
    ]
    for job_id, kind, status, created in rows:
        seeded.execute(
            "INSERT INTO jobs (job_id, kind, status, config, work_dir, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [job_id, kind, status, json.dumps({}), str(tmp_path / job_id), created],
        )
    assert jobs.recent_jobs(seeded, "judge") == [
        ("judge-c", "running"),
        ("judge-b", "failed"),
        ("judge-a", "done"),
    ]
    assert jobs.recent_jobs(seeded, "judge", limit=2)[-1] == ("judge-b", "failed")
    assert jobs.recent_jobs(seeded, "train") == []
    assert sorted(jobs.active_job_ids(seeded, "sample")) == ["sample-a", "sample-b"]
    assert jobs.active_job_ids(seeded, "judge") == ["judge-c"]
    assert jobs.work_dir(seeded, "sample-c") == tmp_path / "sample-c"
    with pytest.raises(KeyError):
        jobs.work_dir(seeded, "nope")
