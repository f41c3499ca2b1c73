"""The CLI while the app holds the database: the app runs the command (reset_core.handoff).

The end-to-end tests start the real app (``streamlit run``), open a page in Chromium so
that it opens its connection, and run ``python -m reset_core.cli`` in separate
processes, as a user's terminal would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 120  # s: a tiny-model job on a busy 2-core machine, worker start-up included

EXAMPLES = [
    {"instruction": "Name a primary colour.", "output": "Red."},
    {"instruction": "Say hello in French.", "output": "Bonjour."},
    {"instruction": "What is 2 + 2?", "output": "4"},
    {"instruction": "Give a synonym of happy.", "output": "Glad."},
]


def _cli(db: Path, *args: str, cwd: Path | None = None, env: dict | None = None, **kw):
    """``python -m reset_core.cli --db DB ARGS`` in its own process (this checkout's code)."""
    return subprocess.run(
        [sys.executable, "-m", "reset_core.cli", "--db", str(db), *args],
        cwd=cwd or ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=kw.get("timeout", 600),
    )


def _popen_cli(db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reset_core.cli", "--db", str(db), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(check, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def _app_holding(db: Path):
    """The real app serving ``db``, after a first page visit made it open the database."""
    from browser import chromium_page, streamlit_server

    from reset_core import handoff

    with streamlit_server(db) as url, chromium_page() as page:
        page.goto(url)
        info = _wait_for(lambda: handoff.find_app(db), "the app to open the database")
        yield info


def _write_inputs(tmp_path: Path) -> None:
    (tmp_path / "ex.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    (tmp_path / "grid.jsonl").write_text(
        json.dumps({"temperature": 0.7, "max_tokens": 3, "seed": 1}) + "\n"
    )


def _ok(r: subprocess.CompletedProcess, pid: int) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"(run by the app, pid {pid})" in r.stderr
    assert "Traceback" not in r.stderr
    return r.stdout


@pytest.mark.slow
@pytest.mark.browser
def test_the_cli_runs_every_stage_while_the_app_holds_the_database(tmp_path, tiny_model_dir):
    from devtools.openai_standin import OpenAICompatServer
    from reset_core.store import connect

    key = "sk-handoff-test-key-0123"
    # The judge endpoint refuses requests without the caller's key: the key must travel
    # from the CLI's environment to the command the app runs (the app has none).
    openai_server = OpenAICompatServer(require_key=key).start()

    db = tmp_path / "studio.duckdb"
    _write_inputs(tmp_path)
    with _app_holding(db) as app:
        pid = app["pid"]
        assert "examples" in _ok(_cli(db, "db", "info"), pid)
        # A relative path, typed in the user's own folder: the app reads that file.
        out = _ok(_cli(db, "import", "ex.jsonl", cwd=tmp_path), pid)
        assert "imported 4 new examples" in out
        out = _ok(
            _cli(
                db,
                "sample",
                "--model",
                str(tiny_model_dir),
                "--count",
                "4",
                "--grid",
                "grid.jsonl",
                "--device",
                "cpu",
                "--poll-s",
                "0.2",
                cwd=tmp_path,
            ),
            pid,
        )
        assert re.search(r"job sample-\S+ done", out), out
        out = _ok(_cli(db, "judge", "--offline"), pid)
        assert "done" in out and "0 without a score" in out
        out = _ok(
            _cli(
                db,
                "judge",
                "--llm",
                "--model",
                "gpt-4o-mini",
                "--base-url",
                openai_server.base_url,
                env={"OPENAI_API_KEY": key},
            ),
            pid,
        )
        assert "judgments" in out and "done" in out
        assert openai_server.n_requests > 0 and openai_server.unauthorized == 0
        assert "selection" in _ok(_cli(db, "select"), pid)
        out = _ok(_cli(db, "curate", "--name", "cli-set"), pid)
        set_id = re.search(r"curated set (\S+):", out).group(1)
        _ok(_cli(db, "export", set_id, "--out", "exports", cwd=tmp_path), pid)
        assert list((tmp_path / "exports").rglob("*")), (
            "export wrote nothing in the caller's folder"
        )
        info = json.loads(_ok(_cli(db, "db", "info", "--json"), pid))
        # Rejected input is still exit 2 with one line, through the app.
        bad = _cli(db, "import", "missing.jsonl", cwd=tmp_path)
        assert bad.returncode in (1, 2) and "missing.jsonl" in bad.stderr
        assert "Traceback" not in bad.stderr
    openai_server.stop()
    # The app is gone: the database opens here, and holds everything exactly once.
    con = connect(db)
    try:
        assert con.execute(
            "SELECT count(*), count(DISTINCT example_id) FROM examples"
        ).fetchone() == (4, 4)
        n_cand = con.execute(
            "SELECT count(*), count(DISTINCT candidate_id) FROM candidates"
        ).fetchone()
        assert n_cand == (4, 4)
        n_judg = con.execute(
            "SELECT count(*), count(DISTINCT judgment_id) FROM judgments"
        ).fetchone()
        assert n_judg[0] == n_judg[1] > 4  # offline and LLM verdicts, none twice
        judges = {r[0] for r in con.execute("SELECT DISTINCT judge_id FROM judgments").fetchall()}
        assert any("gpt-4o-mini" in j for j in judges), judges
        assert con.execute("SELECT count(*) FROM curated_sets").fetchone() == (1,)
        assert con.execute(
            "SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'stopped')"
        ).fetchone() == (0,)
    finally:
        con.close()
    assert info  # the read through the app answered with the counts
    logs = list((tmp_path / "jobs" / "cli").glob("*.log"))
    assert len(logs) >= 10 and all("exit status" in p.read_text() for p in logs)


@pytest.mark.slow
@pytest.mark.browser
def test_a_killed_cli_leaves_the_command_to_the_app(tmp_path, tiny_model_dir):
    from reset_core.store import connect

    db = tmp_path / "studio.duckdb"
    _write_inputs(tmp_path)
    with _app_holding(db) as app:
        _ok(_cli(db, "import", "ex.jsonl", cwd=tmp_path), app["pid"])
        proc = _popen_cli(
            db,
            "sample",
            "--model",
            str(tiny_model_dir),
            "--count",
            "4",
            "--grid",
            str(tmp_path / "grid.jsonl"),
            "--device",
            "cpu",
            "--poll-s",
            "0.2",
        )
        log_dir = tmp_path / "jobs" / "cli"

        def sample_log():
            return next((p for p in log_dir.glob("*.log") if " sample " in p.read_text()), None)

        log = _wait_for(sample_log, "the app to start the command")
        _wait_for(lambda: "started" in log.read_text(), "the job to start")
        proc.kill()  # the user's terminal is gone mid-command
        proc.wait()
        _wait_for(lambda: "exit status" in log.read_text(), "the app to finish the command")
        text = log.read_text()
        assert "exit status 0" in text and re.search(r"job sample-\S+ done", text), text
    con = connect(db)
    try:
        assert con.execute(
            "SELECT count(*), count(DISTINCT candidate_id) FROM candidates"
        ).fetchone() == (4, 4)
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.browser
def test_a_killed_app_makes_the_cli_say_how_to_resume(tmp_path, tiny_model_dir):
    from reset_core.store import connect

    db = tmp_path / "studio.duckdb"
    _write_inputs(tmp_path)
    grid = tmp_path / "grid8.jsonl"
    # More work than the tiny model finishes at once, so the app dies mid-command.
    grid.write_text(
        "".join(
            json.dumps({"temperature": 0.7, "max_tokens": 24, "seed": s}) + "\n" for s in range(8)
        )
    )
    with _app_holding(db) as app:
        _ok(_cli(db, "import", "ex.jsonl", cwd=tmp_path), app["pid"])
        proc = _popen_cli(
            db,
            "sample",
            "--model",
            str(tiny_model_dir),
            "--count",
            "4",
            "--grid",
            str(grid),
            "--device",
            "cpu",
            "--chunk-size",
            "2",
            "--poll-s",
            "0.2",
        )
        log_dir = tmp_path / "jobs" / "cli"
        _wait_for(
            lambda: any("started" in p.read_text() for p in log_dir.glob("*.log")),
            "the job to start",
        )
        os.kill(app["pid"], signal.SIGKILL)  # the app dies mid-command
        out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 1, out + err
    assert "stopped before the command finished" in err
    job_id = re.search(r"job (sample-\S+) \(sample\): reset-studio sample --resume \1", err)
    assert job_id, err
    # The sampling worker outlives the app (its own session); resuming after it ends
    # ingests what it wrote and makes only what is missing.
    job_dir = tmp_path / "jobs" / job_id.group(1)

    def worker_ended():
        p = json.loads((job_dir / "progress.json").read_text() or "{}")
        return p.get("status") not in ("queued", "running")

    _wait_for(worker_ended, "the orphaned worker to end")
    r = _cli(db, "sample", "--resume", job_id.group(1), "--poll-s", "0.2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(run by the app" not in r.stderr  # no app now: the CLI opened the database
    con = connect(db)
    try:
        assert con.execute(
            "SELECT count(*), count(DISTINCT candidate_id) FROM candidates"
        ).fetchone() == (32, 32)
    finally:
        con.close()


def test_busy_without_an_app_is_exit_3_naming_the_holder(tmp_path):
    db = tmp_path / "studio.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        r = _cli(db, "db", "info")
        assert r.returncode == 3
        assert f"held by pid {holder.pid}" in r.stderr and "duckdb.connect" in r.stderr
        assert "Traceback" not in r.stderr and "(run by the app" not in r.stderr
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_a_dead_apps_file_is_no_app(tmp_path):
    """An ``app.json`` left by a killed app (dead pid) is ignored: busy stays exit 3."""
    from reset_core import handoff, paths

    db = tmp_path / "studio.duckdb"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    app_file = paths.jobs_dir(db) / f"{db.name}.app.json"
    app_file.parent.mkdir(parents=True)
    app_file.write_text(json.dumps({"pid": dead.pid, "socket": str(tmp_path / "gone.sock")}))
    assert handoff.find_app(db) is None
    assert handoff.delegate(["db", "info"], db) is None


def test_a_served_command_runs_in_its_thread_with_its_callers_streams_and_keys(
    tmp_path, monkeypatch, capsys
):
    """In the serving process: the command's output and keys stay in its own thread."""
    import io
    import threading

    from reset_core import handoff

    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-apps-own-key")
    db = tmp_path / "studio.duckdb"
    (tmp_path / "ex.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EXAMPLES))
    out, err = io.StringIO(), io.StringIO()
    seen = {}

    def other_thread():
        seen["key"] = os.environ.get("OPENAI_API_KEY")
        print("the app's own line")

    code = handoff.run_served(
        ["--db", str(db), "import", "ex.jsonl"],
        str(tmp_path),
        {"OPENAI_API_KEY": "sk-the-callers-key", "HOME": "/nowhere"},
        out,
        err,
    )
    assert code == 0, err.getvalue()
    assert "imported 4 new examples" in out.getvalue()
    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert seen["key"] == "sk-the-apps-own-key"
    assert "the app's own line" in capsys.readouterr().out
    assert "the app's own line" not in out.getvalue()
    # The command saw its caller's key, and not a variable the caller may not send.
    env = handoff._request_env({"OPENAI_API_KEY": "sk-the-callers-key", "HOME": "/nowhere"})
    assert env["OPENAI_API_KEY"] == "sk-the-callers-key" and env.get("HOME") != "/nowhere"
    # A rejected option is argparse's exit 2, not a dead app thread.
    assert handoff.run_served(["--db", str(db), "nope"], str(tmp_path), {}, out, err) == 2


_HOLDER = """
import sys
from reset_core import handoff, store
con = store.connect(sys.argv[1])  # what the app does on its first page visit
handoff.serve(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def test_a_cli_judge_holds_the_database_only_to_plan_and_ingest(db_path, tmp_path):
    """While the CLI's judge worker runs, the database is free: another command opens
    it, then an app takes it; the app ingests the verdicts the CLI's worker wrote."""
    from devtools.openai_standin import OpenAICompatServer
    from reset_core import handoff, paths
    from reset_core.store import connect
    from tests.test_judging import _seed_db

    con = connect(db_path)
    _seed_db(con, 3)  # 12 candidates: 24 verdicts at one request in flight
    con.close()
    # Slow answers until the app has taken the database, then fast ones: the takeover
    # lands mid-job whatever the machine's load.
    with OpenAICompatServer(latency_s=3.0) as server:
        judge = _popen_cli(
            db_path,
            "judge",
            "--llm",
            "--model",
            "m",
            "--base-url",
            server.base_url,
            "--concurrency",
            "1",
        )
        try:
            _wait_for(lambda: server.n_requests >= 2, "the judge's worker to run")
            # Released: a plain command opens the file itself (no app, not busy).
            r = _cli(db_path, "db", "info")
            assert r.returncode == 0, r.stderr
            assert "(run by the app" not in r.stderr
            holder = subprocess.Popen(
                [sys.executable, "-c", _HOLDER, str(db_path)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout.readline().strip() == "held"
                assert server.n_requests < 24, "the worker ended before the app took over"
                server.latency_s = 0.0
                out, err = judge.communicate(timeout=WAIT_S)
                assert judge.returncode == 0, out + err
                assert "ingested by the app that holds the database" in out
                assert handoff.find_app(db_path)["pid"] == holder.pid
            finally:
                holder.stdin.close()
                holder.wait(30)
        finally:
            if judge.poll() is None:
                judge.kill()
    con = connect(db_path)
    try:
        assert con.execute(
            "SELECT count(*), count(DISTINCT judgment_id), count(score) FROM judgments"
        ).fetchone() == (24, 24, 24)
        assert con.execute("SELECT status FROM jobs WHERE kind = 'judge'").fetchall() == [("done",)]
    finally:
        con.close()
    assert not (paths.jobs_dir(db_path) / f"{db_path.name}.app.json").exists()


def test_the_app_waits_for_a_cli_command_that_holds_the_database(app):
    """A command started before the app was opened holds the file: the page says which
    and retries until it ends, instead of failing with a traceback."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(float(sys.argv[2]))",
            str(app.db),
            "6",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        app.run(timeout=120)  # the page retries until the holder has let go
        assert holder.poll() is not None, "the page ran while the database was held"
        assert not app.exception
    finally:
        holder.kill()
        holder.wait()
