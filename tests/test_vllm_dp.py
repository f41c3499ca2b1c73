"""vLLM data parallel (``ModelSpec.data_parallel_size``): the split, the GPU slices, the wiring.

There is no GPU here: the ranks run the vLLM stand-in of ``tests/vllm_standin`` (the
API surface RESET Studio uses, run by transformers on the tiny Llama), which logs
each ``generate`` call with its process's ``CUDA_VISIBLE_DEVICES``. The real vLLM
DP path (engines on real GPUs) is not exercised by these tests.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from reset_core.sampling.base import GenerationRequest
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.data_parallel import rank_devices, split_for_ranks
from reset_core.sampling.settings import DecodingSetting, default_grid

FIXTURES = Path(__file__).parent / "fixtures"
STANDIN = Path(__file__).parent / "vllm_standin"


# ------------------------------------------------------------------ the split


@pytest.mark.parametrize("dp", [1, 2, 3, 4, 8])
def test_split_covers_everything_once_keeps_examples_whole_and_balances(dp):
    rng = random.Random(dp)
    settings = [DecodingSetting(temperature=t, n=n) for t, n in ((0.5, 1), (1.0, 3))]
    requests = [
        GenerationRequest(f"e{i}", [], s, tuple(range(rng.randint(1, s.n))))
        for i in range(23)
        for s in settings
    ]
    parts = split_for_ranks(requests, dp)
    assert len(parts) == dp
    assert [r for part in parts for r in part] == requests  # contiguous, in order, once
    owner = {}
    for rank, part in enumerate(parts):
        for r in part:
            assert owner.setdefault(r.example_id, rank) == rank  # an example stays whole
    sizes = [sum(len(r.sample_indices) for r in part) for part in parts]
    biggest_example = 1 + 3
    assert max(sizes) - min(sizes) <= 2 * biggest_example


def test_fewer_examples_than_ranks_leaves_ranks_empty():
    reqs = [GenerationRequest("only", [], DecodingSetting(), (0,))]
    assert [len(p) for p in split_for_ranks(reqs, 4)] == [0, 1, 0, 0]


def test_rank_devices_slice_the_visible_gpus():
    assert [rank_devices(r, 2, None) for r in range(3)] == ["0,1", "2,3", "4,5"]
    assert [rank_devices(r, 1, "3, 5") for r in range(2)] == ["3", "5"]
    with pytest.raises(ValueError, match="rank 1 needs GPUs 2..3 of CUDA_VISIBLE_DEVICES=0,1,2"):
        rank_devices(1, 2, "0,1,2")


def test_data_parallel_size_has_help_and_bounds():
    from reset_core.options import help_text

    assert "DP replicas of TP GPUs each" in help_text(ModelSpec, "data_parallel_size")
    with pytest.raises(ValueError):
        ModelSpec(engine="vllm", model="m", data_parallel_size=0)
    # how the weights run is not which weights they are
    assert (
        ModelSpec(engine="vllm", model="m", data_parallel_size=4).model_id
        == ModelSpec(engine="vllm", model="m").model_id
    )


# ------------------------------------------------------------------ the wiring


@pytest.fixture
def examples(con):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    return con


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """The stand-in on the path of every worker process, logging to a file."""
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(STANDIN), os.environ.get("PYTHONPATH", "")])
    )
    log = tmp_path / "vllm-calls.jsonl"
    monkeypatch.setenv("VLLM_STANDIN_LOG", str(log))
    monkeypatch.delenv("VLLM_STANDIN_CRASH_AT_CALL", raising=False)
    return log


def _wait(con, job_id, timeout_s=300):
    from reset_core.sampling.launch import sync_sampling

    deadline = time.monotonic() + timeout_s
    while (progress := sync_sampling(con, job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, progress
        time.sleep(0.2)
    return progress


def _start(con, db_path, tiny_model_dir, dp, chunk_size=None):
    from reset_core.paths import jobs_dir
    from reset_core.sampling.launch import plan_sampling, start_sampling

    spec = ModelSpec(engine="vllm", model=str(tiny_model_dir), data_parallel_size=dp)
    plan = plan_sampling(con, SampleSelection(count=4), spec, default_grid(max_tokens=4))
    return plan, start_sampling(con, plan, jobs_dir(db_path), chunk_size=chunk_size)


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_on_their_own_gpus_make_every_candidate_once(
    examples, db_path, tiny_model_dir, standin, monkeypatch
):
    from reset_core.store import one

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    plan, job_id = _start(examples, db_path, tiny_model_dir, dp=2)
    progress = _wait(examples, job_id)
    assert progress["status"] == "done", progress.get("error")
    assert progress["n_done"] == plan.n_candidates == 24
    n, distinct, engines = one(
        examples,
        "SELECT count(*), count(DISTINCT candidate_id), list(DISTINCT engine) "
        "FROM candidates WHERE job_id=?",
        [job_id],
    )
    assert n == distinct == 24 and engines == ["vllm"]
    calls = _calls(standin)
    by_rank = {}
    for c in calls:
        by_rank.setdefault((c["pid"], c["cuda_visible_devices"]), []).extend(c["prompts"])
    # two engine processes, one per GPU slice, neither the job's own worker
    assert sorted(d for _, d in by_rank) == ["3", "5"]
    assert len({pid for pid, _ in by_rank}) == 2
    # each rank prompted its own examples: 2 examples x 6 settings each, no overlap
    prompts = list(by_rank.values())
    assert [len(p) for p in prompts] == [12, 12]
    assert not set(prompts[0]) & set(prompts[1])


@pytest.mark.slow
def test_a_failed_rank_fails_the_job_naming_it_and_resume_completes(
    examples, db_path, tiny_model_dir, standin, monkeypatch
):
    from reset_core.sampling.launch import resume_sampling
    from reset_core.store import one

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("VLLM_STANDIN_CRASH_AT_CALL", "2")  # each rank's second batch
    plan, job_id = _start(examples, db_path, tiny_model_dir, dp=2, chunk_size=6)
    progress = _wait(examples, job_id)
    assert progress["status"] == "failed"
    assert "2 of 2 data-parallel ranks failed" in progress["error"]
    assert "rank 0 (CUDA_VISIBLE_DEVICES=0)" in progress["error"]
    assert "rank 1 (CUDA_VISIBLE_DEVICES=1)" in progress["error"]
    assert "EngineDeadError" in progress["error"]
    kept = one(examples, "SELECT count(*) FROM candidates WHERE job_id=?", [job_id])[0]
    assert kept == 12  # each rank's first shard of 6
    monkeypatch.delenv("VLLM_STANDIN_CRASH_AT_CALL")
    resume_sampling(examples, job_id)
    assert _wait(examples, job_id)["status"] == "done"
    n, distinct = one(examples, "SELECT count(*), count(DISTINCT candidate_id) FROM candidates", [])
    assert n == distinct == plan.n_candidates


def test_too_few_visible_gpus_fails_the_job_before_any_engine_starts(
    examples, db_path, tiny_model_dir, standin, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    _, job_id = _start(examples, db_path, tiny_model_dir, dp=2)
    progress = _wait(examples, job_id)
    assert progress["status"] == "failed"
    assert "rank 1 needs GPUs 1..1 of CUDA_VISIBLE_DEVICES=0, which lists 1" in progress["error"]
    assert not standin.exists()  # no engine was started


@pytest.mark.slow
def test_ranks_write_into_a_shard_folder_that_ingests_once(
    tmp_path, tiny_model_dir, standin, monkeypatch
):
    """sample --out on a GPU box with data_parallel_size: the ranks' candidates land in
    the shard folder's candidates/part-* (not a job folder's shards/), carry the folder's
    run id, and ingest on the workstation once."""
    from reset_core.cli import main
    from reset_core.shards import ingest_folder, read_manifest
    from reset_core.store import connect, one

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    out = tmp_path / "gpu-box"
    argv = ["sample", "--out", str(out), "--data", str(FIXTURES / "alpaca.json")]
    argv += ["--preset", "alpaca", "--engine", "vllm", "--model", str(tiny_model_dir)]
    argv += ["--data-parallel-size", "2", "--count", "4", "--max-tokens", "4"]
    assert main(argv) == 0
    manifest = read_manifest(out)
    parts = sorted((out / "candidates").glob("part-*.parquet"))
    assert parts and not (out / "shards").exists()
    assert len({json.loads(c)["pid"] for c in (standin.read_text().splitlines())}) == 2
    con = connect(tmp_path / "w.duckdb")
    ingest_folder(con, out)
    ingest_folder(con, out)  # twice: still once each
    n, distinct, jobs_ = one(
        con, "SELECT count(*), count(DISTINCT candidate_id), list(DISTINCT job_id) FROM candidates"
    )
    assert n == distinct == manifest["counts"]["candidates_planned"] > 0
    assert jobs_ == [manifest["run_id"]]
