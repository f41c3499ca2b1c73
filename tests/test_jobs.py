"""Worker jobs: launch, progress, cancel, crash, kill -9 and resume, without duplicates."""

import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest

from reset_core import jobs
from reset_core.store import ingest_shards

TESTS = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def _entries_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _job(con, tmp_path, n=20, sleep=0.0, entry="job_entries:write_items"):
    items = pa.table({"item": [f"k{i:03d}" for i in range(n)]})
    return jobs.create_job(con, tmp_path / "jobs", "sample", entry, {"sleep": sleep}, items)


def _ingest(con):
    return lambda shard_dir: ingest_shards(con, "candidates", shard_dir)


def _wait(con, job_id, until, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = jobs.sync_job(con, job_id, _ingest(con))
        if until(progress):
            return progress
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not get there: {progress}")


def test_job_runs_to_done_and_shards_are_ingested(con, tmp_path):
    job_id = _job(con, tmp_path, n=15)
    jobs.launch(con, job_id)
    progress = _wait(con, job_id, lambda p: p["status"] == "done")
    assert progress["n_done"] == progress["n_total"] == 15
    assert con.execute("SELECT count(*) FROM candidates").fetchall() == [(15,)]
    assert con.execute("SELECT status, n_done FROM jobs").fetchall() == [("done", 15)]


def test_kill_9_then_resume_leaves_no_missing_and_no_duplicate_keys(con, tmp_path):
    job_id = _job(con, tmp_path, n=40, sleep=0.05)
    pid = jobs.launch(con, job_id)
    _wait(con, job_id, lambda p: p.get("n_done", 0) >= 10)
    os.kill(pid, signal.SIGKILL)
    progress = _wait(con, job_id, lambda p: p["status"] == "failed")
    assert "exited without finishing" in progress["error"]
    partial = con.execute("SELECT count(*) FROM candidates").fetchall()[0][0]
    assert 10 <= partial < 40
    jobs.launch(con, job_id)  # resume: the worker skips keys it already wrote
    _wait(con, job_id, lambda p: p["status"] == "done")
    keys = [r[0] for r in con.execute("SELECT candidate_id FROM candidates").fetchall()]
    assert sorted(keys) == [f"k{i:03d}" for i in range(40)]
    shard_rows = pa.concat_tables(
        __import__("pyarrow.parquet").parquet.read_table(f)
        for f in sorted((tmp_path / "jobs" / job_id / "shards").glob("*.parquet"))
    )
    assert shard_rows.num_rows == 40  # nothing was generated twice


def test_cancel_stops_after_current_item_and_keeps_finished_shards(con, tmp_path):
    job_id = _job(con, tmp_path, n=200, sleep=0.05)
    jobs.launch(con, job_id)
    _wait(con, job_id, lambda p: p.get("n_done", 0) >= 3)
    jobs.cancel(con, job_id)
    _wait(con, job_id, lambda p: p["status"] == "cancelled")
    n = con.execute("SELECT count(*) FROM candidates").fetchall()[0][0]
    assert 3 <= n < 200


def test_crash_marks_job_failed_with_the_error(con, tmp_path):
    job_id = _job(con, tmp_path, n=3, entry="job_entries:explode")
    jobs.launch(con, job_id)
    progress = _wait(con, job_id, lambda p: p["status"] == "failed")
    assert "MemoryError: CUDA out of memory" in progress["error"]
    assert con.execute("SELECT status, error FROM jobs").fetchall()[0][1].startswith("MemoryError")
