"""Live progress: what workers write to progress.json while a batch is still in flight.

Every worker reports through :class:`reset_core.jobs.JobContext`; these tests record
each ``progress.json`` it writes (with the write throttle off, so what is counted is
what the worker reports, not how fast this machine is) and check that progress moves
inside a batch: per decoding step for sampling, per item for judging.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from reset_core import jobs
from reset_core.jobs import JobContext
from reset_core.paths import jobs_dir
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.launch import plan_sampling, start_sampling
from reset_core.sampling.settings import DecodingSetting

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def reports(monkeypatch) -> list[dict]:
    """Every progress.json a JobContext writes, in order."""
    heard: list[dict] = []
    real = jobs.write_json_atomic

    def record(path, data):
        if Path(path).name == "progress.json":
            heard.append(copy.deepcopy(data))
        return real(path, data)

    monkeypatch.setattr(jobs, "write_json_atomic", record)
    return heard


def _context(con, job_id: str) -> JobContext:
    work_dir = jobs.work_dir(con, job_id)
    config = jobs.read_json(work_dir / "job.json")["config"]
    return JobContext(work_dir, config, report_every_s=0.0)


def test_job_context_phase_partial_rate_and_eta(tmp_path, reports):
    ctx = JobContext(tmp_path, {}, report_every_s=0.0)
    ctx.start(10)
    assert reports[-1]["n_total"] == 10 and reports[-1]["rate_per_s"] is None
    assert reports[-1]["eta_s"] is None  # nothing finished yet: no rate, no ETA
    ctx.phase("loading model")
    assert reports[-1]["phase"] == "loading model" and reports[-1]["rate_per_s"] is None
    ctx.phase("generating", clock=True)
    ctx.partial(2.5, "token 3/8")
    p = reports[-1]
    assert (p["n_done"], p["n_partial"], p["detail"]) == (0, 2.5, "token 3/8")
    assert p["rate_per_s"] > 0 and p["eta_s"] == pytest.approx(7.5 / p["rate_per_s"])
    ctx.advance(4)
    p = reports[-1]
    assert (p["n_done"], p["n_partial"], p["detail"], p["phase"]) == (4, 0, None, "generating")
    assert p["eta_s"] == pytest.approx(6 / p["rate_per_s"])


def test_partial_reports_are_throttled_but_phases_and_saved_work_are_not(tmp_path, reports):
    ctx = JobContext(tmp_path, {}, report_every_s=3600.0)
    ctx.start(10)
    ctx.partial(1.0, "token 1/8")
    ctx.partial(2.0, "token 2/8")
    assert len(reports) == 1  # only start() wrote
    ctx.phase("next")
    ctx.advance(3)
    assert [r.get("phase") for r in reports] == [None, "next", "next"]
    assert reports[-1]["n_done"] == 3


def test_sync_job_uses_the_planned_size_until_the_worker_counts(con, tmp_path):
    import pyarrow as pa

    job_id = jobs.create_job(con, tmp_path, "t", "x:y", {}, pa.table({"k": ["a", "b", "c"]}))
    JobContext(jobs.work_dir(con, job_id), {}).phase("loading")  # no start() yet
    progress = jobs.sync_job(con, job_id)
    assert progress["n_total"] == 3 and progress["phase"] == "loading"
    assert "0/3 items · loading" in jobs.describe_progress({**progress, "status": "running"})


def test_sampling_worker_reports_decoding_steps_within_one_batch(
    con, db_path, tiny_model_dir, reports
):
    """One batch of 18 candidates: progress moves step by step long before its shard lands."""
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file
    from reset_core.sampling.worker import run

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    grid = [DecodingSetting(temperature=t, max_tokens=12) for t in (0.0, 0.7, 1.0)]
    spec = ModelSpec(model=str(tiny_model_dir), device="cpu", batch_size=32)
    plan = plan_sampling(con, SampleSelection(count=6), spec, grid)
    job_id = start_sampling(con, plan, jobs_dir(db_path), launch=False)
    run(_context(con, job_id))

    phases = [r["phase"] for r in reports]
    assert any(p and "importing torch" in p for p in phases)
    assert any(p and "reading the weights" in p for p in phases)
    # the prefill (every prompt token at once, the longest step) layer by layer: the 6
    # examples' prompts, read once for all 3 settings; then every decoding step
    prefill = [r["detail"] for r in reports if "prompts: layer" in (r["detail"] or "")]
    assert prefill and prefill[0].startswith("batch 1/1 · reading 6 prompts: layer ")
    in_flight = [r for r in reports if r["n_done"] == 0 and r["n_partial"] > 0]
    steps = [r["detail"] for r in in_flight if "token" in (r["detail"] or "")]
    assert len(set(steps)) >= 5 and all(s.startswith("batch 1/1 · token ") for s in steps)
    shares = [r["n_partial"] for r in in_flight]
    assert shares == sorted(shares) and shares[0] > 0 and shares[-1] <= 18
    assert all(r["rate_per_s"] for r in in_flight)  # a rate as soon as work is finished
    assert (
        reports[-1]["n_done"] == 18
        and len(list((jobs.work_dir(con, job_id) / "shards").glob("*"))) == 1
    )


def test_judging_worker_reports_items_within_one_shard(con, db_path, reports):
    from reset_core.judging.launch import create_judge_job, offline_specs
    from reset_core.judging.worker import run_judge_job
    from tests.test_judging import _seed_db

    _seed_db(con)
    job_id = create_judge_job(con, db_path, offline_specs())
    ctx = _context(con, job_id)
    n_total = ctx.read_input().num_rows
    run_judge_job(ctx)

    first_shard = next(i for i, r in enumerate(reports) if r["n_done"] > 0)
    in_flight = [r["n_partial"] for r in reports[:first_shard] if r["n_partial"]]
    assert in_flight == list(range(1, reports[first_shard]["n_done"] + 1))  # every item
    assert any("rouge_l" in (r["phase"] or "") for r in reports[:first_shard])
    assert reports[-1]["n_done"] == n_total


def test_training_worker_reports_phases_and_micro_batches(con, db_path, tiny_model_dir, reports):
    import pyarrow as pa

    from reset_core.training.config import TrainConfig
    from reset_core.training.launch import start_training
    from reset_core.training.worker import train_job

    cfg = TrainConfig(
        base_model=str(tiny_model_dir),
        max_steps=2,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=3,
        merge=False,
    )
    data = pa.table({"prompt": ["Say hi."] * 6, "completion": ["Hi!"] * 6})
    _, job_id = start_training(con, db_path, cfg, data=data, launch=False)
    assert jobs.sync_job(con, job_id)["n_total"] is None  # steps, unknown before the trainer
    train_job(_context(con, job_id))

    assert reports[0]["phase"].startswith("loading ") and reports[0]["n_total"] is None
    micro = [(r["n_done"], r["n_partial"], r["detail"]) for r in reports if r["n_partial"]]
    # the forward/backward passes inside each optimizer step, before the step lands
    assert micro == [
        (0, pytest.approx(1 / 3, abs=1e-3), "micro-batch 1/3"),
        (0, pytest.approx(2 / 3, abs=1e-3), "micro-batch 2/3"),
        (1, pytest.approx(1 / 3, abs=1e-3), "micro-batch 1/3"),
        (1, pytest.approx(2 / 3, abs=1e-3), "micro-batch 2/3"),
    ]
    assert [r["phase"] for r in reports][-1].startswith("saving the adapter")
    assert max(r["n_done"] for r in reports) == 2 and reports[-1]["n_total"] == 2
