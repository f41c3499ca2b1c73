"""The LLM judge against a real third-party OpenAI-compatible server: llama.cpp's.

``llama-cpp-python[server]`` (the ``realserver`` extra; ``make test`` installs it)
serves the embedded SmolLM2 GGUF. That server refuses ``response_format`` json_schema
with HTTP 500 and a validation error, and constrains answers to the schema given with
``json_object``. The judge must fall back at once (no retries spent on the refusal),
store every verdict with the mode the server accepted, and treat this server as
another judge than the local stand-in even under the same model name.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp.server", reason="needs the realserver extra (make test installs it)")

from devtools.openai_standin import OpenAICompatServer  # noqa: E402
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig  # noqa: E402
from tests.test_judge_endpoints import _run_job  # noqa: E402
from tests.test_judging import _seed_db  # noqa: E402

pytestmark = pytest.mark.slow

MODEL = "gpt-4o-mini"  # the Judge page's default name: the server answers to it too


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """``python -m llama_cpp.server`` on the embedded GGUF, aliased to :data:`MODEL`.

    Its output goes to a file, never a pipe, so a chatty server can never block on a
    full pipe buffer; the file is shown when the server does not come up.
    """
    from reset_core.models import GGUF_FILE, _gguf_dir

    gguf = _gguf_dir() / GGUF_FILE
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--model_alias",
                MODEL,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=2) as r:
                    models = json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server not up in 180 s:\n{log_path.read_text()}")
                time.sleep(0.5)
        assert [m["id"] for m in models["data"]] == [MODEL]
        yield base_url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cfg(base_url: str, **kw) -> LLMJudgeConfig:
    # A 135M model on a shared CPU: short verdicts, patient timeouts, two in flight.
    base = {"model": MODEL, "base_url": base_url, "max_tokens": 64, "concurrency": 2}
    return LLMJudgeConfig(**{"timeout_s": 300.0, "max_retries": 2, **base, **kw})


def _sample_demo(con, db_path: Path, base_url: str) -> int:
    """Candidates for a few demo examples, sampled through the same server."""
    from reset_core.ingest.demo import load_demo
    from reset_core.jobs import run_worker
    from reset_core.paths import jobs_dir
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.launch import plan_sampling, start_sampling, sync_sampling

    load_demo(con)
    plan = plan_sampling(
        con,
        SampleSelection(count=2),
        ModelSpec(engine="openai", model=MODEL, base_url=base_url, concurrency=2),
        [{"temperature": 0.7, "max_tokens": 24, "n": 2, "seed": 1}],
        check=False,
    )
    job = start_sampling(con, plan, jobs_dir(db_path), launch=False)
    work = con.execute("SELECT work_dir FROM jobs WHERE job_id=?", [job]).fetchall()[0][0]
    assert run_worker(work) == 0
    assert sync_sampling(con, job)["status"] == "done"
    n = con.execute("SELECT count(*) FROM candidates").fetchall()[0][0]
    assert n == 4
    return n


def test_the_llm_judge_scores_demo_candidates_through_llama_cpp(con, db_path, llama_server):
    from reset_core.judging.launch import cache_path, llm_spec, plan_items

    base_url, log_path = llama_server
    _sample_demo(con, db_path, base_url)
    spec = llm_spec(con, _cfg(base_url))
    n_items = plan_items(con, [spec]).num_rows
    assert n_items == 8  # task + instruction or faithfulness, per candidate
    prog = _run_job(con, db_path, spec)
    (judge_id,) = prog["endpoints"]
    # every verdict came back in json_object mode (the schema constrains the answer) ...
    assert prog["endpoints"][judge_id] == {
        "endpoint": base_url,
        "placeholder": False,
        "output_modes": {"json_object": n_items},
    }
    rows = con.execute(
        "SELECT output_mode, status, count(*), count(score) FROM judgments GROUP BY ALL"
    ).fetchall()
    assert {r[0] for r in rows} == {"json_object"} and sum(r[2] for r in rows) == n_items
    assert not [r for r in rows if r[1].startswith("http_") or r[1] == "timeout"], rows
    assert sum(r[3] for r in rows) > 0, rows  # the constrained JSON parses into scores
    # ... after exactly one refused json_schema request: no retries wasted on it
    ledger = prog["ledger"][judge_id]
    assert ledger["requests"] == n_items + 1, ledger
    assert "json_schema" in log_path.read_text()  # the server logged the refusal
    assert con.execute(
        "SELECT endpoint, placeholder FROM judges WHERE judge_id = ?", [judge_id]
    ).fetchall() == [(base_url, False)]
    # a later run (a new judge on the same cache) starts in json_object: no refusal
    from reset_core.judging.base import JudgeItem

    item = JudgeItem("x", "x-1", "task", "Name a colour.", None, "Red.", "instruction", "Blue.")
    later = LLMJudge(_cfg(base_url), cache=cache_path(db_path))
    (verdict,) = later.judge([item])
    assert later.ledger.requests == 1 and verdict.output_mode == "json_object"
    assert verdict.status not in ("http_error", "http_5xx"), verdict


def test_standin_then_llama_cpp_under_the_same_model_name(con, db_path, llama_server):
    """The real server judges everything afresh; selection uses only its verdicts."""
    from reset_core.judging.launch import llm_spec, plan_items
    from reset_core.scoring import panels
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import save_selection

    base_url, _ = llama_server
    n = _seed_db(con, 1)
    with OpenAICompatServer() as standin:
        prog = _run_job(con, db_path, llm_spec(con, _cfg(standin.base_url)))
        (fake_id,) = prog["endpoints"]
        assert prog["endpoints"][fake_id]["placeholder"] is True
    spec = llm_spec(con, _cfg(base_url))
    assert plan_items(con, [spec]).num_rows == 2 * n  # the stand-in's verdicts count for nothing
    prog = _run_job(con, db_path, spec)
    (real_id,) = prog["endpoints"]
    assert real_id != fake_id
    assert prog["ledger"][real_id]["requests"] == 2 * n + 1  # all afresh (+1 json_schema refusal)
    assert prog["ledger"][real_id]["cache_hits"] == 0
    assert dict(con.execute("SELECT judge_id, placeholder FROM judges").fetchall()) == {
        fake_id: True,
        real_id: False,
    }
    real = {
        (c, a): s
        for c, a, s in con.execute(
            "SELECT candidate_id, aspect, score FROM judgments WHERE judge_id = ?", [real_id]
        ).fetchall()
    }
    assert len(real) == 2 * n
    if not hasattr(panels, "resolve_panel"):
        pytest.skip("placeholder exclusion in selection lands with the scoring branch (#11)")
    cfg = SelectionConfig()
    save_selection(con, cfg)
    kinds = dict(con.execute("SELECT example_id, kind FROM examples").fetchall())
    scored = con.execute("SELECT candidate_id, example_id, score FROM selection_scores").fetchall()
    assert len(scored) == n
    for cid, eid, score in scored:
        second = real[(cid, "instruction" if kinds[eid] == "instruction" else "faithfulness")]
        task = real[(cid, "task")]
        if task is None or second is None:  # the real judge gave no vote: not rankable
            assert score is None, cid
        else:
            assert score == pytest.approx(task + cfg.weight * second), cid
