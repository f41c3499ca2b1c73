"""Sampling jobs end to end: validation before launch, worker processes, resume, failures."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reset_core.paths import jobs_dir
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.launch import (
    SamplingRejected,
    plan_sampling,
    resume_sampling,
    start_sampling,
    sync_sampling,
)
from reset_core.sampling.settings import DecodingSetting, candidate_id, default_grid
from reset_core.store import one

FIXTURES = Path(__file__).parent / "fixtures"
STANDIN = Path(__file__).parent / "vllm_standin"


@pytest.fixture
def examples(con):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    return con


def _wait(con, job_id, timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progress = sync_sampling(con, job_id)
        if progress["status"] not in ("queued", "running"):
            return progress
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still running after {timeout_s} s")


def _shard_keys(con, job_id) -> list[str]:
    work_dir = Path(one(con, "SELECT work_dir FROM jobs WHERE job_id=?", [job_id])[0])
    files = sorted((work_dir / "shards").glob("*.parquet"))
    return pq.read_table(files, columns=["candidate_id"]).column(0).to_pylist() if files else []


def _expected_keys(plan) -> set[str]:
    return {
        candidate_id(e, plan.model.model_id, s.setting_id, i)
        for e in plan.example_ids
        for s in plan.grid
        for i in range(s.n)
    }


def _tiny(tiny_model_dir, **kw) -> ModelSpec:
    return ModelSpec(model=str(tiny_model_dir), device="cpu", **kw)


# ------------------------------------------------------------------ validation before launch


def test_invalid_grid_value_is_rejected_naming_field_and_bound(examples, tiny_model_dir):
    with pytest.raises(SamplingRejected) as info:
        plan_sampling(
            examples,
            SampleSelection(),
            _tiny(tiny_model_dir),
            [{"temperature": 0.5}, {"temperature": 2.5}, {"top_k": 0}, {"max_tokens": 0}],
        )
    msg = str(info.value)
    assert "setting 2: temperature" in msg and "less than or equal to 2" in msg
    assert "setting 3: top_k" in msg and "use -1" in msg
    assert "setting 4: max_tokens" in msg and "greater than or equal to 1" in msg


def test_empty_selection_is_refused(examples, tiny_model_dir):
    with pytest.raises(SamplingRejected, match="no examples match"):
        plan_sampling(
            examples, SampleSelection(sources=["nowhere"]), _tiny(tiny_model_dir), default_grid()
        )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/no/such/model", "does not exist"),
        ("./relative/missing", "does not exist"),
        ("not a valid id!", "does not exist"),
        (
            "nobody-xyz/definitely-not-a-model-4711",
            "hub id 'nobody-xyz/definitely-not-a-model-4711'",
        ),
    ],
)
def test_unknown_model_path_or_hub_id_is_rejected(examples, model, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never reach the network
    with pytest.raises(SamplingRejected, match=message):
        plan_sampling(examples, SampleSelection(), ModelSpec(model=model), default_grid())


def test_folder_without_config_is_not_a_model(examples, tmp_path):
    with pytest.raises(SamplingRejected, match="no config.json"):
        plan_sampling(examples, SampleSelection(), ModelSpec(model=str(tmp_path)), default_grid())


def test_unreachable_endpoint_and_unserved_model_are_rejected(examples, openai_server):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = ModelSpec(engine="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(SamplingRejected, match="unreachable"):
        plan_sampling(examples, SampleSelection(), spec, default_grid())
    spec = ModelSpec(engine="openai", model="gpt-9", base_url=openai_server.base_url)
    with pytest.raises(SamplingRejected, match="does not serve model 'gpt-9'.*local-test"):
        plan_sampling(examples, SampleSelection(), spec, default_grid())


def test_vllm_engine_without_vllm_is_rejected(examples, tiny_model_dir):
    spec = ModelSpec(engine="vllm", model=str(tiny_model_dir))
    with pytest.raises(SamplingRejected, match="needs vLLM installed"):
        plan_sampling(examples, SampleSelection(), spec, default_grid())


def test_plan_counts_and_skips_what_is_stored(examples, tiny_model_dir):
    grid = default_grid(max_tokens=4, n=2)
    plan = plan_sampling(examples, SampleSelection(count=3), _tiny(tiny_model_dir), grid)
    assert (len(plan.example_ids), plan.n_candidates, plan.n_existing) == (3, 36, 0)
    bigger = plan_sampling(examples, SampleSelection(count=5), _tiny(tiny_model_dir), grid)
    assert bigger.example_ids[:3] == plan.example_ids  # a stable shuffle: count only extends


# ------------------------------------------------------------------ worker jobs


def test_job_generates_records_and_ingests_every_candidate(examples, db_path, tiny_model_dir):
    grid = [DecodingSetting(temperature=0.3, max_tokens=6, n=2), DecodingSetting(max_tokens=4)]
    plan = plan_sampling(examples, SampleSelection(count=4), _tiny(tiny_model_dir), grid)
    job_id = start_sampling(examples, plan, jobs_dir(db_path), chunk_size=5)
    progress = _wait(examples, job_id)
    assert progress["status"] == "done", progress
    assert progress["n_done"] == progress["n_total"] == 12
    rows = examples.execute(
        "SELECT candidate_id, seed, engine, job_id, sample_index FROM candidates"
    ).fetchall()
    assert {r[0] for r in rows} == _expected_keys(plan)
    assert {r[2] for r in rows} == {"transformers"} and {r[3] for r in rows} == {job_id}
    assert len({r[1] for r in rows}) == 12  # every candidate its own seed
    assert one(examples, "SELECT count(*) FROM decoding_settings")[0] == 2
    assert one(examples, "SELECT model_id, name FROM models") == (
        plan.model.model_id,
        "tiny-llama0",
    )
    assert one(examples, "SELECT status, n_done FROM jobs WHERE job_id=?", [job_id]) == ("done", 12)
    # Planning the same again finds everything stored.
    again = plan_sampling(examples, SampleSelection(count=4), _tiny(tiny_model_dir), grid)
    assert again.n_new == 0


def test_a_job_folder_runs_in_this_process_with_run_worker(examples, db_path, tiny_model_dir):
    """What a headless run or another machine does with a job folder: no database needed."""
    from reset_core.jobs import run_worker

    grid = [DecodingSetting(temperature=0.7, max_tokens=4, n=2)]
    plan = plan_sampling(examples, SampleSelection(count=3), _tiny(tiny_model_dir), grid)
    job_id = start_sampling(examples, plan, jobs_dir(db_path), launch=False)
    work_dir = one(examples, "SELECT work_dir FROM jobs WHERE job_id=?", [job_id])[0]
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert run_worker(work_dir) == 0  # the worker's own SIGTERM handler: restored below
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert sorted(_shard_keys(examples, job_id)) == sorted(_expected_keys(plan))
    progress = sync_sampling(examples, job_id)
    assert progress["status"] == "done" and progress["n_done"] == 6, progress
    stored = {r[0] for r in examples.execute("SELECT candidate_id FROM candidates").fetchall()}
    assert stored == _expected_keys(plan)


def test_resume_after_kill_9_leaves_no_missing_and_no_duplicate_keys(
    examples, db_path, tiny_model_dir
):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    grid = default_grid(temperatures=(0.2, 0.9), max_tokens=24, n=2)
    plan = plan_sampling(examples, SampleSelection(count=8), _tiny(tiny_model_dir), grid)
    job_id = start_sampling(examples, plan, jobs_dir(db_path), chunk_size=4)
    pid = one(examples, "SELECT pid FROM jobs WHERE job_id=?", [job_id])[0]
    # Kill at a random point after the first shard (before it is the trivial case).
    work_dir = Path(one(examples, "SELECT work_dir FROM jobs WHERE job_id=?", [job_id])[0])
    deadline = time.monotonic() + 120
    while not list((work_dir / "shards").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 2.0))
    os.kill(pid, signal.SIGKILL)
    progress = _wait(examples, job_id)
    expected = _expected_keys(plan)
    if progress["status"] == "done":  # the whole job beat the random kill: nothing to resume
        assert set(_shard_keys(examples, job_id)) == expected
        return
    assert progress["status"] == "failed", f"random seed {seed}"
    before = set(_shard_keys(examples, job_id))
    assert before < expected
    resume_sampling(examples, job_id)
    progress = _wait(examples, job_id)
    assert progress["status"] == "done", f"random seed {seed}: {progress}"
    keys = _shard_keys(examples, job_id)
    assert len(keys) == len(set(keys)), f"duplicate keys in shards (random seed {seed})"
    assert set(keys) == expected, f"missing keys (random seed {seed})"
    stored = [r[0] for r in examples.execute("SELECT candidate_id FROM candidates").fetchall()]
    assert len(stored) == len(set(stored)) and set(stored) == expected
    # The resumed run started from what was there: progress counted it as done already.
    assert progress["n_done"] == len(expected)


def test_cancel_keeps_finished_shards_and_resume_completes(examples, db_path, tiny_model_dir):
    from reset_core.jobs import cancel

    grid = default_grid(max_tokens=24, n=2)
    plan = plan_sampling(examples, SampleSelection(count=8), _tiny(tiny_model_dir), grid)
    job_id = start_sampling(examples, plan, jobs_dir(db_path), chunk_size=4)
    work_dir = Path(one(examples, "SELECT work_dir FROM jobs WHERE job_id=?", [job_id])[0])
    deadline = time.monotonic() + 120
    while not list((work_dir / "shards").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    cancel(examples, job_id)
    progress = _wait(examples, job_id)
    assert progress["status"] in ("cancelled", "failed", "done")
    kept = one(examples, "SELECT count(*) FROM candidates")[0]
    assert kept >= 1
    if progress["status"] != "done":
        resume_sampling(examples, job_id)
        assert _wait(examples, job_id)["status"] == "done"
    assert set(_shard_keys(examples, job_id)) == _expected_keys(plan)


def test_model_load_error_fails_the_job_with_the_error(examples, db_path, tiny_model_dir, tmp_path):
    model = tmp_path / "vanishing-model"
    shutil.copytree(tiny_model_dir, model)
    plan = plan_sampling(
        examples, SampleSelection(count=2), _tiny(model), default_grid(max_tokens=4)
    )
    (model / "model.safetensors").unlink()  # gone between planning and the worker's load
    job_id = start_sampling(examples, plan, jobs_dir(db_path))
    progress = _wait(examples, job_id)
    assert progress["status"] == "failed"
    assert "ModelLoadError" in progress["error"] and "could not load model" in progress["error"]
    assert one(examples, "SELECT error FROM jobs WHERE job_id=?", [job_id])[0] == progress["error"]


def test_engine_crash_fails_the_job_and_keeps_finished_shards(
    examples, db_path, tiny_model_dir, monkeypatch
):
    """vLLM (stand-in) dies on its second generate call: the first shard is kept and ingested."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(STANDIN), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("VLLM_STANDIN_CRASH_AT_CALL", "2")
    spec = ModelSpec(engine="vllm", model=str(tiny_model_dir))
    plan = plan_sampling(examples, SampleSelection(count=4), spec, default_grid(max_tokens=4))
    job_id = start_sampling(examples, plan, jobs_dir(db_path), chunk_size=6)
    progress = _wait(examples, job_id)
    assert progress["status"] == "failed" and "EngineDeadError" in progress["error"]
    assert one(examples, "SELECT count(*) FROM candidates WHERE engine='vllm'")[0] == 6
    monkeypatch.delenv("VLLM_STANDIN_CRASH_AT_CALL")
    resume_sampling(examples, job_id)
    assert _wait(examples, job_id)["status"] == "done"
    assert one(examples, "SELECT count(*) FROM candidates")[0] == 24


def test_openai_job_with_failing_request_keeps_the_rest(examples, db_path, openai_server):
    """A request that still fails after retries fails the job; every other candidate is kept."""
    spec = ModelSpec(engine="openai", model="local-test", base_url=openai_server.base_url)
    grid = [DecodingSetting(temperature=0.7, max_tokens=16, n=3)]
    # Break one of the examples the selection picks (the pick is a shuffle by seed).
    first = plan_sampling(examples, SampleSelection(count=5), spec, grid).example_ids[0]
    examples.execute(
        "UPDATE examples SET instruction = instruction || ' [[fault:503]]' WHERE example_id = ?",
        [first],
    )
    plan = plan_sampling(examples, SampleSelection(count=5), spec, grid)
    assert first in plan.example_ids
    job_id = start_sampling(examples, plan, jobs_dir(db_path))
    progress = _wait(examples, job_id)
    assert progress["status"] == "failed" and "503" in progress["error"]
    assert one(examples, "SELECT count(*) FROM candidates")[0] == 12  # 4 good examples x 3


def test_cli_without_model_samples_the_rounds_policy_and_says_so(
    examples, db_path, tiny_model_dir, tmp_path, capsys
):
    import json

    from reset_core.cli import main
    from reset_core.training.launch import model_id_for

    # The tiny model stands in for an MTL checkpoint a Train run registered.
    policy = model_id_for(str(tiny_model_dir))
    examples.execute(
        "INSERT INTO models (model_id, name, path, stage, training_run_id) "
        "VALUES (?, 'tiny-mtl', ?, 'mtl', 'run-1')",
        [policy, str(tiny_model_dir)],
    )
    examples.close()
    grid = tmp_path / "grid.jsonl"
    grid.write_text(json.dumps({"temperature": 0.5, "max_tokens": 2}) + "\n")
    args = ["--db", str(db_path), "sample", "--count", "2", "--grid", str(grid)]
    assert main([*args, "--device", "cpu", "--poll-s", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "model (no --model given): tiny-mtl" in out
    assert "the round's policy, the newest MTL or RESET checkpoint" in out
    from reset_core.store import connect

    con = connect(db_path)
    assert con.execute("SELECT DISTINCT model_id FROM candidates").fetchall() == [(policy,)]
    assert con.execute("SELECT count(*) FROM candidates").fetchone() == (2,)
    con.close()
