"""The CLI's progress bars, driven by real worker jobs: a TTY bar, plain log lines, quiet,
Ctrl-C (saved work kept, exit 130) and following a job another process runs."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from reset_core import jobs
from reset_core.cli.progress import ProgressBar, follow, run_job
from reset_core.store import connect, ingest_shards

TESTS = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def _entries_importable(monkeypatch):
    # The worker imports tests/job_entries.py, in this process and in launched ones.
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(TESTS)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _job(con, tmp_path, n=8, sleep=0.05):
    items = pa.table({"item": [f"k{i:03d}" for i in range(n)]})
    return jobs.create_job(
        con, tmp_path / "jobs", "sample", "job_entries:write_items", {"sleep": sleep}, items
    )


def _sync(con, job_id):
    return jobs.sync_job(con, job_id, lambda d: ingest_shards(con, "candidates", d))


def test_bar_on_a_tty_redraws_one_line_in_place(con, tmp_path):
    job = _job(con, tmp_path, n=8, sleep=0.1)
    out = FakeTTY()
    code, interrupted = run_job(con, job, ProgressBar("candidates", stream=out), poll_s=0.05)
    assert (code, interrupted) == (0, False)
    text = out.getvalue()
    frames = text.split("\r")[1:]
    # several redraws while it ran, one line in all (ended by one newline), the last: done
    assert len(frames) >= 3 and text.count("\n") == 1 and text.endswith("\n")
    assert "running" in text and frames[-1].rstrip().endswith("done · 8/8 candidates")
    assert frames[-1].startswith("[" + "#" * 24 + "] 100%")
    partial = [f for f in frames if " 0/8" not in f and "8/8" not in f]
    assert partial, "no frame showed the job part way"
    assert _sync(con, job)["status"] == "done"


def test_plain_lines_when_not_a_tty_and_nothing_when_quiet(con, tmp_path):
    job = _job(con, tmp_path, n=6, sleep=0.05)
    out = io.StringIO()
    # a long interval: lines only when the status changes, and the final line
    run_job(con, job, ProgressBar("candidates", stream=out, interval_s=3600), poll_s=0.02)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 1 <= len(lines) <= 3 and lines[-1].endswith("done · 6/6 candidates")
    # a short interval: a line per change of the counts, each a whole line
    job = _job(con, tmp_path, n=6, sleep=0.1)
    out = io.StringIO()
    run_job(con, job, ProgressBar("candidates", stream=out, interval_s=0.0), poll_s=0.02)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and lines == sorted(set(lines), key=lines.index)  # no repeats
    quiet = io.StringIO()
    job = _job(con, tmp_path, n=3, sleep=0.0)
    run_job(con, job, ProgressBar("candidates", stream=quiet, quiet=True))
    assert quiet.getvalue() == "" and _sync(con, job)["status"] == "done"


def test_ctrl_c_stops_after_the_batch_keeps_saved_work_and_resumes(con, tmp_path):
    job = _job(con, tmp_path, n=40, sleep=0.05)
    job_dir = jobs.work_dir(con, job)

    def interrupt_when_started():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if jobs.read_json(job_dir / "progress.json").get("n_done", 0) >= 3:
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
                return
            time.sleep(0.02)

    # What was there before: Python's default handler, or SIG_IGN when the test run was
    # started as a background job of a shell without job control (which ignores SIGINT).
    before = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt_when_started, daemon=True).start()
    out = io.StringIO()
    code, interrupted = run_job(con, job, ProgressBar("candidates", stream=out), poll_s=0.05)
    assert interrupted and code == 0
    assert "cancelling: the worker stops after its current batch" in out.getvalue()
    progress = _sync(con, job)
    assert progress["status"] == "cancelled" and 3 <= progress["n_done"] < 40
    saved = con.execute("SELECT count(*) FROM candidates").fetchone()[0]
    assert saved == progress["n_done"]
    # the handler from before is back, and a resume redoes only what is missing
    assert signal.getsignal(signal.SIGINT) is before
    jobs.requeue(con, job)
    assert run_job(con, job, ProgressBar("candidates", quiet=True)) == (0, False)
    assert _sync(con, job)["status"] == "done"
    assert con.execute(
        "SELECT count(*), count(DISTINCT candidate_id) FROM candidates"
    ).fetchone() == (40, 40)


def test_follow_a_launched_worker_to_its_end(con, tmp_path):
    job = _job(con, tmp_path, n=10, sleep=0.05)
    jobs.launch(con, job)
    out = FakeTTY()
    progress = follow(con, job, _sync, ProgressBar("candidates", stream=out), poll_s=0.1)
    assert progress["status"] == "done" and progress["n_done"] == 10
    assert out.getvalue().split("\r")[-1].rstrip().endswith("done · 10/10 candidates")
    assert con.execute("SELECT count(*) FROM candidates").fetchone() == (10,)


def test_jobs_status_follow_from_the_cli(db_path, tmp_path, capsys):
    from reset_core import paths
    from reset_core.cli import main

    con = connect(db_path)
    items = pa.table({"item": [f"k{i:03d}" for i in range(5)]})
    job = jobs.create_job(
        con, paths.jobs_dir(db_path), "sample", "job_entries:write_items", {"sleep": 0.1}, items
    )
    jobs.launch(con, job)
    con.close()
    assert main(["--db", str(db_path), "jobs", "status", job, "--follow", "--poll-s", "0.1"]) == 0
    captured = capsys.readouterr()
    assert f"{job} (sample): done · 5/5 candidates" in captured.out
    assert "done · 5/5 candidates" in captured.err.splitlines()[-1]  # the bar: on stderr
