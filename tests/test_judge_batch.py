"""The OpenAI Batch API for judging, against the local stand-in's /v1/files and /v1/batches."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from reset_core.judging.batch import (
    BATCH_DISCOUNT,
    MAX_BYTES_PER_FILE,
    MAX_REQUESTS_PER_FILE,
    plan_parts,
    write_request_files,
)
from reset_core.judging.llm_judge import LLMJudgeConfig

N_EXAMPLES = 4  # per kind: 8 examples, 2 candidates each, 2 needed aspects: 32 items


def _seed(con, fault: str | None = "schema") -> int:
    """Examples of both kinds, two candidates each; one candidate asks the stand-in for a
    verdict without the required fields (a parse failure, online and in a batch alike)."""
    from reset_core.store import insert_arrow

    ex = [(f"i{i}", "instruction", None) for i in range(N_EXAMPLES)]
    ex += [(f"x{i}", "context", f"Paris is the capital of France {i}.") for i in range(N_EXAMPLES)]
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": [e[0] for e in ex],
                "instruction": [f"Question {e[0]}?" for e in ex],
                "context": [e[2] for e in ex],
                "reference": ["Paris is the capital."] * len(ex),
                "kind": [e[1] for e in ex],
                "source": ["t"] * len(ex),
                "split": ["seen"] * len(ex),
                "content_hash": [e[0] for e in ex],
            }
        ),
    )
    texts = ["Paris.", "It is Lyon, I think."]
    cands = [(f"{e[0]}-{s}", e[0], t) for e in ex for s, t in enumerate(texts)]
    if fault:
        cands[0] = (cands[0][0], cands[0][1], f"Paris. [[fault:{fault}]]")
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": [c[0] for c in cands],
                "example_id": [c[1] for c in cands],
                "model_id": ["m"] * len(cands),
                "setting_id": ["s"] * len(cands),
                "sample_index": [int(c[0][-1]) for c in cands],
                "seed": [0] * len(cands),
                "text": [c[2] for c in cands],
                "engine": ["test"] * len(cands),
            }
        ),
    )
    return 2 * len(cands)  # task + the kind's aspect


def _cfg(srv, **kw) -> LLMJudgeConfig:
    base = {
        "model": "local-test",
        "base_url": srv.base_url,
        "timeout_s": 5.0,
        "max_retries": 1,
        "backoff_s": 0.01,
        "price_input_per_mtok": 2.0,
        "price_output_per_mtok": 8.0,
    }
    return LLMJudgeConfig(**{**base, **kw})


def _db(tmp_path: Path, name: str, fault: str | None = "schema"):
    from reset_core.store import connect

    (tmp_path / name).mkdir()
    db = tmp_path / name / "studio.duckdb"
    con = connect(db)
    return con, db, _seed(con, fault)


def _verdicts(con) -> list[tuple]:
    return con.execute(
        "SELECT candidate_id, aspect, status, score, raw_score FROM judgments ORDER BY 1, 2"
    ).fetchall()


def _work_dir(con, job) -> Path:
    from reset_core.jobs import work_dir

    return work_dir(con, job)


def _batch_job(con, db, srv, poll_s: float = 0.05, **kw) -> str:
    from reset_core.judging.batch import BatchConfig
    from reset_core.judging.launch import create_judge_job, llm_spec

    spec = llm_spec(con, _cfg(srv, **kw))
    return create_judge_job(con, db, [spec], batch=BatchConfig(poll_s=poll_s))


@pytest.fixture
def srv():
    from devtools.openai_standin import OpenAICompatServer

    with OpenAICompatServer(timeout_fault_s=5.0) as s:
        s.batch_step_s = 0.02
        yield s


# --------------------------------------------------------------------------- request files


def test_request_files_split_at_the_request_count_limit(tmp_path):
    lines = [json.dumps({"custom_id": f"r{i}"}).encode() + b"\n" for i in range(7)]
    files = write_request_files(lines, tmp_path, "r0", max_requests=3, max_bytes=10_000)
    assert [f["n_requests"] for f in files] == [3, 3, 1]
    assert [f["name"] for f in files] == ["r0-0000.jsonl", "r0-0001.jsonl", "r0-0002.jsonl"]
    # Every line once, in order, nothing else in the folder (no temporary files left).
    back = b"".join((tmp_path / f["name"]).read_bytes() for f in files)
    assert back == b"".join(lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f["name"] for f in files]
    assert [f["bytes"] for f in files] == [
        len(b"".join(lines[0:3])),
        len(b"".join(lines[3:6])),
        len(lines[6]),
    ]


def test_request_files_split_at_the_byte_limit_exactly(tmp_path):
    line = b"x" * 99 + b"\n"  # 100 bytes
    files = write_request_files([line] * 5, tmp_path / "a", "r0", max_requests=100, max_bytes=200)
    assert [f["bytes"] for f in files] == [200, 200, 100]  # 200 bytes fit, 201 do not
    files = write_request_files([line] * 5, tmp_path / "b", "r0", max_requests=100, max_bytes=199)
    assert [f["n_requests"] for f in files] == [1] * 5
    # One request over the limit can go in no file: refused, and no file is left.
    with pytest.raises(ValueError, match="over the Batch API's 150 bytes per file"):
        write_request_files([line[:50], line * 2], tmp_path / "c", "r0", 100, 150)
    assert list((tmp_path / "c").iterdir()) == []


def test_the_api_limits_at_their_real_sizes():
    assert (MAX_REQUESTS_PER_FILE, MAX_BYTES_PER_FILE) == (50_000, 200_000_000)
    assert plan_parts([300] * 50_000) == [(0, 50_000)]
    assert plan_parts([300] * 50_001) == [(0, 50_000), (50_000, 50_001)]
    # Long contexts: 90 MB requests, two to a file; exactly 200 MB still fits.
    assert plan_parts([90_000_000] * 3) == [(0, 2), (2, 3)]
    assert plan_parts([100_000_000, 100_000_000, 1]) == [(0, 2), (2, 3)]
    with pytest.raises(ValueError):
        plan_parts([MAX_BYTES_PER_FILE + 1])


# --------------------------------------------------------------------------- the full flow


@pytest.mark.parametrize("per_call", [1, 2])
def test_batch_judging_equals_online_judging_at_half_the_price(tmp_path, srv, per_call):
    """Candidates -> a batch job -> judgments equal in count and parse to an online run;
    with two candidates per call as well (shuffled, the shown order stored)."""
    from reset_core.jobs import run_here
    from reset_core.judging.launch import create_judge_job, llm_spec, sync_judge_job

    on_con, on_db, n = _db(tmp_path, "online")
    job = create_judge_job(
        on_con, on_db, [llm_spec(on_con, _cfg(srv, candidates_per_call=per_call))]
    )
    assert run_here(on_con, job) == 0
    online = sync_judge_job(on_con, job)
    online_bodies = [json.dumps(b, sort_keys=True) for b in srv.bodies]
    n_req = n // per_call  # two candidates per example: pairs
    assert len(online_bodies) == n_req

    con, db, _ = _db(tmp_path, "batch")
    bjob = _batch_job(con, db, srv, candidates_per_call=per_call)
    assert con.execute("SELECT kind FROM jobs WHERE job_id = ?", [bjob]).fetchall() == [
        ("judge_batch",)
    ]
    assert run_here(con, bjob) == 0
    prog = sync_judge_job(con, bjob)
    assert prog["status"] == "done", prog
    assert srv.n_requests == n_req  # the chat endpoint saw only the online run
    assert srv.batch_calls["upload"] == srv.batch_calls["create"] == 1
    assert srv.batch_calls["request"] == n_req

    # The same requests, byte for byte in JSON terms, as the online judge sent.
    folder = _work_dir(con, bjob)
    sent = [
        json.loads(line)
        for f in sorted((folder / "requests").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert {s["url"] for s in sent} == {"/v1/chat/completions"}
    assert sorted(json.dumps(s["body"], sort_keys=True) for s in sent) == sorted(online_bodies)
    assert len({s["custom_id"] for s in sent}) == n_req

    # The same verdicts: count, statuses, scores, shown order; the parse failure is a
    # NULL score with its error (two per request it spoils: its aspects, or its pair).
    assert _verdicts(con) == _verdicts(on_con)
    order = "SELECT candidate_id, aspect, permutation FROM judgments ORDER BY 1, 2"
    assert con.execute(order).fetchall() == on_con.execute(order).fetchall()
    failed = con.execute(
        "SELECT status, score, error FROM judgments WHERE score IS NULL"
    ).fetchall()
    assert len(failed) == 2 * per_call and {f[0] for f in failed} == {"schema_error"}
    assert all(f[2] for f in failed)
    # The ledger records batch prices: the same tokens at half the cost.
    (jid,) = prog["ledger"]
    on_cost, b_cost = online["ledger"][jid]["cost_usd"], prog["ledger"][jid]["cost_usd"]
    assert on_cost > 0 and b_cost == pytest.approx(on_cost * (1 - BATCH_DISCOUNT))
    stored = con.execute("SELECT sum(cost_usd) FROM judgments").fetchall()[0][0]
    assert stored == pytest.approx(b_cost)
    # The stand-in's verdicts are placeholders, and the job says so, as online.
    assert prog["endpoints"][jid]["placeholder"] is True
    state = json.loads((folder / "batches.json").read_text())
    assert [p["status"] for p in state["parts"]] == ["completed"]
    assert state["parts"][0]["file_id"] and state["parts"][0]["batch_id"]


def test_a_run_over_the_file_limit_is_several_batches_of_one_job(tmp_path, srv):
    from reset_core.jobs import run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, n = _db(tmp_path, "a")
    job = _batch_job(con, db, srv)
    spec_path = _work_dir(con, job) / "job.json"
    spec = json.loads(spec_path.read_text())
    spec["config"]["max_requests_per_file"] = 10  # the API's 50,000, scaled down
    spec_path.write_text(json.dumps(spec))
    assert run_here(con, job) == 0
    prog = sync_judge_job(con, job)
    assert prog["status"] == "done"
    assert [b["n_requests"] for b in prog["batches"]] == [10, 10, 10, n - 30]
    assert srv.batch_calls["create"] == 4 and srv.batch_calls["request"] == n
    assert con.execute(
        "SELECT count(DISTINCT (candidate_id, aspect)) FROM judgments"
    ).fetchall() == [(n,)]


def test_a_cached_answer_is_not_sent_again(tmp_path, srv):
    from reset_core.jobs import run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, n = _db(tmp_path, "a", fault=None)
    job = _batch_job(con, db, srv)
    assert run_here(con, job) == 0
    sync_judge_job(con, job)
    # The same judge again (redo): every answer parsed, so the cache holds them all.
    from reset_core.judging.batch import BatchConfig
    from reset_core.judging.launch import create_judge_job, llm_spec

    again = create_judge_job(
        con, db, [llm_spec(con, _cfg(srv))], batch=BatchConfig(poll_s=0.05), redo=True
    )
    assert run_here(con, again) == 0
    sync_judge_job(con, again)
    assert srv.batch_calls["upload"] == srv.batch_calls["create"] == 1
    assert con.execute(
        "SELECT count(*), count(score), bool_and(cached) FROM judgments WHERE job_id = ?",
        [again],
    ).fetchall() == [(n, n, True)]


def test_an_expired_half_done_batch_is_ingested_once_and_resumed(tmp_path, srv):
    from reset_core.jobs import requeue, run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, n = _db(tmp_path, "a")
    srv.batch_faults = ["expire_half"]
    job = _batch_job(con, db, srv)
    run_here(con, job)
    prog = sync_judge_job(con, job)
    assert prog["status"] == "stopped", prog
    assert f"{n // 2} of {n} requests have no answer" in prog["error"]
    assert "expired" in prog["error"] and "Resume the job" in prog["error"]
    half = con.execute("SELECT count(*) FROM judgments").fetchall()[0][0]
    assert half == n // 2
    assert srv.batch_calls["request"] == n // 2

    requeue(con, job)  # what `reset-studio jobs resume` and the app's resume do
    assert run_here(con, job) == 0
    prog = sync_judge_job(con, job)
    assert prog["status"] == "done", prog
    assert srv.batch_calls["upload"] == srv.batch_calls["create"] == 2
    assert srv.batch_calls["request"] == n  # the second batch held only the missing half
    state = json.loads((_work_dir(con, job) / "batches.json").read_text())
    assert [(p["round"], p["status"], p["n_requests"]) for p in state["parts"]] == [
        (0, "expired", n),
        (1, "completed", n // 2),
    ]
    rows = con.execute(
        "SELECT count(*), count(DISTINCT (candidate_id, aspect)) FROM judgments"
    ).fetchall()
    assert rows == [(n, n)]  # every item once: no duplicate from the expired batch
    # A rerun of the finished job changes nothing and calls nothing.
    requeue(con, job)
    assert run_here(con, job) == 0
    sync_judge_job(con, job)
    assert srv.batch_calls["upload"] == 2
    assert con.execute("SELECT count(*) FROM judgments").fetchall()[0][0] == n


def test_an_outage_while_polling_is_waited_out(tmp_path, srv):
    from reset_core.jobs import run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, n = _db(tmp_path, "a")
    srv.batch_retrieve_503 = 3  # more than the client's own retries (1) cover
    job = _batch_job(con, db, srv, max_retries=1)
    assert run_here(con, job) == 0
    assert sync_judge_job(con, job)["status"] == "done"
    assert srv.batch_retrieve_503 == 0
    assert con.execute("SELECT count(*) FROM judgments").fetchall()[0][0] == n


def test_the_budget_cap_keeps_requests_out_of_the_batch(tmp_path, srv):
    from reset_core.jobs import run_here
    from reset_core.judging.batch import _batch_judge
    from reset_core.judging.launch import llm_spec, sync_judge_job
    from reset_core.judging.worker import items_from_table

    con, db, n = _db(tmp_path, "a", fault=None)
    spec = llm_spec(con, _cfg(srv))
    judge = _batch_judge(spec, None)
    from reset_core.judging.launch import plan_items

    reqs = judge.requests(items_from_table(plan_items(con, [spec])))
    # A cap that holds the worst case (at batch prices) of exactly the first five.
    cap = sum(judge._worst_case(r) for r in reqs[:5]) * 1.0000001
    job = _batch_job(con, db, srv, budget_usd=cap)
    run_here(con, job)
    prog = sync_judge_job(con, job)
    assert prog["status"] == "stopped" and "budget cap" in prog["error"]
    assert srv.batch_calls["request"] == 5
    assert con.execute("SELECT count(*) FROM judgments").fetchall()[0][0] == 5
    (ledger,) = prog["ledger"].values()
    assert 0 < ledger["cost_usd"] <= cap


def test_a_failed_batch_fails_the_job_with_its_reason(tmp_path, srv):
    from reset_core.jobs import run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, _ = _db(tmp_path, "a")
    srv.batch_faults = ["fail"]
    job = _batch_job(con, db, srv)
    run_here(con, job)
    prog = sync_judge_job(con, job)
    assert prog["status"] == "failed"
    assert "token_limit_exceeded" in prog["error"]
    assert con.execute("SELECT count(*) FROM judgments").fetchall()[0][0] == 0


def test_a_restart_resumes_polling_without_a_second_upload_or_batch(tmp_path, srv):
    from reset_core.jobs import launch, requeue, run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, n = _db(tmp_path, "a")
    srv.batch_faults = ["hold"]  # the batch stays in_progress until released
    job = _batch_job(con, db, srv)
    pid = launch(con, job)  # the usual worker process, as the app starts it
    state_path = _work_dir(con, job) / "batches.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        parts = json.loads(state_path.read_text())["parts"] if state_path.exists() else []
        if parts and parts[0].get("batch_id"):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker never recorded its batch")
    os.kill(pid, signal.SIGKILL)  # killed mid-poll: no chance to say anything
    os.waitpid(pid, 0)
    assert sync_judge_job(con, job)["status"] == "failed"
    assert srv.batch_calls["upload"] == srv.batch_calls["create"] == 1

    # Worse: killed right after the API answered, before the ids were written. The
    # state then holds only the times the upload and create began.
    state = json.loads(state_path.read_text())
    assert state["parts"][0]["uploading_at"] and state["parts"][0]["creating_at"]
    state["parts"][0].update(file_id=None, batch_id=None, status=None)
    state_path.write_text(json.dumps(state))

    srv.batch_release.set()
    requeue(con, job)
    assert run_here(con, job) == 0
    prog = sync_judge_job(con, job)
    assert prog["status"] == "done", prog
    assert srv.batch_calls["upload"] == srv.batch_calls["create"] == 1  # found, not redone
    assert con.execute("SELECT count(*) FROM judgments").fetchall()[0][0] == n


def test_cancel_asks_the_api_to_cancel_and_a_resume_sends_only_the_rest(tmp_path, srv):
    from reset_core.jobs import requeue, run_here
    from reset_core.judging.launch import sync_judge_job

    con, db, n = _db(tmp_path, "a")
    srv.batch_faults = ["hold"]
    job = _batch_job(con, db, srv)
    folder = _work_dir(con, job)

    def cancel_once_submitted():  # what the app's Cancel button does, mid-poll
        while not srv.batches:
            time.sleep(0.02)
        (folder / "cancel").touch()

    threading.Thread(target=cancel_once_submitted, daemon=True).start()
    run_here(con, job)
    assert sync_judge_job(con, job)["status"] == "cancelled"
    assert srv.batch_calls["cancel"] == 1
    deadline = time.time() + 30
    while next(iter(srv.batches.values()))["status"] != "cancelled" and time.time() < deadline:
        time.sleep(0.05)
    requeue(con, job)  # polls the cancelled batch, ingests nothing it did not run: stopped
    run_here(con, job)
    prog = sync_judge_job(con, job)
    assert prog["status"] == "stopped" and f"{n} of {n} requests" in prog["error"]
    requeue(con, job)
    assert run_here(con, job) == 0
    assert sync_judge_job(con, job)["status"] == "done"
    assert srv.batch_calls["create"] == 2 and srv.batch_calls["request"] == n


# --------------------------------------------------------------------------- estimate, CLI


def test_the_cost_estimate_carries_the_batch_discount(tmp_path, srv):
    from reset_core.judging.launch import estimate_plan, estimate_plan_cached, llm_spec

    con, db, n = _db(tmp_path, "a")
    spec = llm_spec(con, _cfg(srv))
    cache = tmp_path / "none.sqlite"
    (online,) = estimate_plan(con, [spec], cache=cache).values()
    (batch,) = estimate_plan(con, [spec], cache=cache, batch=True).values()
    assert online["n_requests"] == batch["n_requests"] == n
    assert online["cost_usd"] > 0
    assert batch["cost_usd"] == pytest.approx(online["cost_usd"] * (1 - BATCH_DISCOUNT))
    assert batch["cost_usd_max"] == pytest.approx(online["cost_usd_max"] * 0.5)
    assert batch["batch_discount"] == BATCH_DISCOUNT and "batch_discount" not in online
    from reset_core.judging.launch import JudgePlan

    cached = estimate_plan_cached(con, [spec], JudgePlan(), cache=cache, batch=True)
    assert next(iter(cached.values()))["cost_usd"] == pytest.approx(batch["cost_usd"])
    plain = estimate_plan_cached(con, [spec], JudgePlan(), cache=cache)
    assert next(iter(plain.values()))["cost_usd"] == pytest.approx(online["cost_usd"])


def test_cli_batch_exit_codes(tmp_path, srv, capsys):
    from reset_core.cli import main

    con, db, n = _db(tmp_path, "a", fault=None)  # a NULL verdict would be judged again
    con.close()
    args = ["--db", str(db), "judge", "--llm", "--batch", "--poll-s", "0.05"]
    args += ["--model", "local-test", "--base-url", srv.base_url, "--price-input-per-mtok", "2"]

    assert main([*args, "--offline"]) == 2
    assert "--batch" in capsys.readouterr().err

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "at Batch API prices (50% off)" in out and "within 24 h" in out
    assert srv.batch_calls["upload"] == 0

    srv.batch_faults = ["fail", "expire_half"]
    assert main(args) == 1  # the batch failed
    out = capsys.readouterr().out
    assert "reset-studio jobs status judge_batch-" in out
    assert main(args) == 4  # expired half done: stopped, resumable
    captured = capsys.readouterr()
    assert "expired, " in captured.out and "Resume the job" in captured.err
    assert main(args) == 0  # a new job takes what is still unjudged
    assert "completed" in capsys.readouterr().out

    from reset_core.store import connect

    con = connect(db)
    assert con.execute(
        "SELECT count(DISTINCT (candidate_id, aspect)), count(*) FROM judgments"
    ).fetchall() == [(n, n)]
    con.close()

    # Each batch is a row of its own: the failed one, the expired one, the last one.
    assert main(["--db", str(db), "jobs", "list", "--kind", "batch", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["status"] for r in rows) == ["done", "failed", "stopped"]
    expired = next(r for r in rows if r["status"] == "stopped")
    assert 0 < expired["n_done"] < expired["n_total"]
    assert f"expired with {expired['n_done']}/{expired['n_total']} requests" in expired["error"]
    assert all(r["job_id"].startswith("judge_batch-") and ".r0-" in r["job_id"] for r in rows)
    assert main(["--db", str(db), "jobs", "status", expired["job_id"]]) == 4
    out = capsys.readouterr().out
    assert f"{expired['job_id']} (batch): stopped · {expired['n_done']}/" in out
    owner = expired["job_id"].rsplit(".", 1)[0]
    assert main(["--db", str(db), "jobs", "cancel", expired["job_id"]]) == 0
    out = capsys.readouterr().out
    assert f"is a batch of job {owner}: cancelling {owner}" in out
    assert f"{owner} is stopped: nothing to cancel" in out


def test_the_judge_page_offers_the_batch_api_and_follows_its_job(tmp_path, srv, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_judge_page import ROOT, _wait_until_done

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch-page-key")
    con, db, n = _db(tmp_path, "a", fault=None)
    con.close()  # the page owns the database now
    at = AppTest.from_file(str(ROOT / "pages" / "judge.py"), default_timeout=60)
    at.session_state["db_path"] = str(db)
    at.run()
    at.checkbox(key="use_offline").uncheck()
    at.radio(key="llm_mode").set_value("OpenAI-compatible endpoint")
    at.run()
    at.text_input(key="llm_base_url").set_value(srv.base_url)
    at.run()
    assert not at.exception
    online = [c.value for c in at.caption if "items to judge" in c.value]
    assert online and "Batch API" not in online[0]
    at.checkbox(key="llm_batch").check()
    at.run()
    at.number_input(key="llm_poll_s").set_value(1.0)
    at.run()
    (caption,) = [c.value for c in at.caption if "items to judge" in c.value]
    assert f"{n} items to judge" in caption and "Batch API rates (50% off)" in caption
    # Half the online figure (the same items, tokens and prices).
    online_cost = float(online[0].split("estimated $")[1].split()[0])
    assert float(caption.split("estimated $")[1].split()[0]) == pytest.approx(
        online_cost / 2, abs=1e-4
    )
    # The duration is the provider's, known only by the completion window: the launch
    # says so and asks first (the online estimate said "under a minute").
    (info,) = [i.value for i in at.info if "LLM requests through the Batch API" in i.value]
    assert f"{n} LLM requests through the Batch API, answered within its 24h window" in info
    assert "up to 24.0 h" in info
    at.button(key="launch").click().run()
    assert "judge_job" not in at.session_state
    assert any("This job should take up to 24.0 h" in w.value for w in at.warning)
    at.button(key="launch_confirm").click().run()
    assert not at.exception
    job_id = at.session_state["judge_job"]
    assert job_id.startswith("judge_batch-")
    _wait_until_done(db, job_id)
    at.run()
    bars = [p.proto.text for p in at.get("progress")]
    assert bars[0] == f"{job_id}: done · {n}/{n} items"
    assert any(c.value.endswith(f"completed, {n}/{n} requests finished") for c in at.caption)
    assert srv.batch_calls["create"] == 1
