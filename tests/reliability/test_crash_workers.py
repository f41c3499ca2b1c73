"""Crash safety of the workers: ``kill -9`` at seeded random points, then resume as the app does.

One job per worker kind (sampling, judging, training, evaluation) is killed and
relaunched again and again; each kill is one trial. A trial's kill lands either in
the worker's start-up (a seeded delay after launch: python, torch, the model) or in
its work (a seeded delay after the worker says its work began: generating, judging,
training). After each kill the test does what the app does (sync: ingest the shards,
mark the job failed; for an evaluation, ``advance``) and checks the invariants:

* nothing lost: every row the worker saved (its shards) is in the database, and
  every row the database had before the kill is still there;
* nothing made twice: no key appears twice in the shards (a resumed worker skips
  what is saved) nor in the database;
* training: each attempt's first logged step follows the last complete checkpoint
  (it resumed there, not at step 0), and no output folder exists before the end.

Then the job is let finish and the final result is checked whole: every expected key
exactly once, the adapter written once. Each trial is recorded with
:func:`tests.reliability.record.record` for docs/reliability.md.

Start-up dominates a trial (measured on this 2-core machine at load ~1.5: ~5 s before
the tiny Llama generates, ~7 s before training, ~1 s before a judge on the local
endpoint answers; 4-10x that under a load of 20), so most kills of the sampling and
training workers land in start-up and six (sampling) or five (training) wait for the work; the kinds whose
worker starts fast (judging, the evaluation's endpoint workers) land mostly in the work.
A kill aimed at the work comes a seeded delay after the attempt's first saved progress,
or as soon as it saved a bounded amount more, so a fast machine cannot finish the job
inside one trial. Both crash files took 225 s at load ~1.5 (``--durations``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reset_core import jobs
from reset_core.paths import jobs_dir
from reset_core.store import insert_arrow, one
from tests.reliability.record import record

FIXTURES = Path(__file__).parent.parent / "fixtures"
#: Kills per worker kind (the issue asks for at least 20).
TRIALS = 20
SEED = 13


# --------------------------------------------------------------------------- killing


@dataclass(frozen=True)
class Kill:
    """Where one SIGKILL landed: what the worker last reported before it."""

    trial: int
    aimed: str  # "start-up" (delay after launch) or "work" (delay after the work began)
    delay_s: float
    landed: str  # "start-up" or "work", from the worker's own last report
    phase: str  # the worker's last reported phase
    n_done: int  # saved work the worker had reported (this job, all attempts)
    started: float  # time.monotonic() at launch: a trial's wall time is measured from it

    def wall_s(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def where(self) -> str:
        return f"{self.landed} ({self.phase}, {self.n_done} done)"


def _sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # reap it: launch() made it our child
        os.waitpid(pid, 0)


def kill_worker(
    job_dir: Path,
    pid: int,
    trial: int,
    aimed: str,
    delay_s: float,
    working: Callable[[dict], bool],
    saved_before: int = 0,
    stop_at: int | None = None,
    timeout_s: float = 300,  # start-up alone took ~50 s under a load of 25 on 2 cores
) -> Kill:
    """SIGKILL the worker ``pid`` ``delay_s`` after launch, or after its first progress.

    "First progress": the worker reports saved work beyond ``saved_before`` (what was
    saved before this attempt), so a kill aimed at the work always finds rows saved
    by this attempt and a batch in flight. ``stop_at``: kill at once when the worker
    reports that much saved work (a fast machine must not finish the job inside one
    trial's delay; the kill then lands in the batch after it).
    """
    t0 = started = time.monotonic()
    progress_file = job_dir / "progress.json"

    def mine(p: dict) -> bool:  # a report of this attempt (the file outlives attempts)
        return p.get("pid") == pid

    if aimed == "work":
        while not (
            mine(p := jobs.read_json(progress_file))
            and working(p)
            and (p.get("n_done") or 0) > saved_before
        ):
            if p.get("pid") == pid and p.get("status") not in jobs.ACTIVE:
                pytest.fail(f"trial {trial}: the worker ended before its work began: {p}")
            if time.monotonic() - t0 > timeout_s:
                pytest.fail(f"trial {trial}: no work after {timeout_s} s: {p}")
            time.sleep(0.02)
        t0 = time.monotonic()
    while time.monotonic() < t0 + delay_s:
        p = jobs.read_json(progress_file)
        if stop_at is not None and mine(p) and (p.get("n_done") or 0) >= stop_at:
            break
        time.sleep(0.01)
    p = jobs.read_json(progress_file)
    _sigkill(pid)
    ours = mine(p)
    return Kill(
        trial=trial,
        aimed=aimed,
        delay_s=round(delay_s, 3),
        landed="work" if ours and working(p) else "start-up",
        phase=(p.get("phase") if ours else None) or "python start",
        n_done=int(p.get("n_done") or 0),
        started=started,
    )


def plan_kills(
    rng: random.Random, n_work: int, start_max_s: float, work_max_s: float, n: int = TRIALS
):
    """``n`` (aimed, delay) pairs: ``n_work`` aimed at the work, the rest at start-up."""
    aims = ["work"] * n_work + ["start-up"] * (n - n_work)
    rng.shuffle(aims)
    return [(a, rng.uniform(0.05, start_max_s if a == "start-up" else work_max_s)) for a in aims]


def assert_mix(kind: str, kills: list[Kill], n_work: int) -> None:
    """The trials really covered both: kills in start-up and kills in the work."""
    landed = [k.landed for k in kills]
    assert landed.count("work") >= n_work, f"{kind}: too few kills in the work: {kills}"
    assert landed.count("start-up") >= 1, f"{kind}: no kill in start-up: {kills}"


def _shard_rows(job_dir: Path, columns: list[str]) -> list[tuple]:
    files = sorted((job_dir / "shards").glob("*.parquet"))
    if not files:
        return []
    t = pq.read_table(files, columns=columns).to_pydict()
    return list(zip(*(t[c] for c in columns), strict=True))


def _dupes(rows: list) -> int:
    return len(rows) - len(set(rows))


def _wait(sync: Callable[[], dict], timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        progress = sync()
        if progress["status"] not in jobs.ACTIVE:
            return progress
        time.sleep(0.2)
    raise AssertionError(f"still running after {timeout_s} s: {progress}")


def _keys_check(kind: str, kill: Kill, saved: list, stored: list, before: set, expected: set):
    """The invariants after one kill: nothing lost, nothing twice, nothing unexpected."""
    lost = len(before - set(stored)) + len(set(saved) - set(stored))
    dup = _dupes(saved) + _dupes(stored)
    extra = set(stored) - expected
    record(
        "crash",
        f"{kind} worker, trial {kill.trial}",
        f"killed in {kill.where()}; synced: {len(set(stored))}/{len(expected)} stored",
        aimed=kill.aimed,
        delay_s=kill.delay_s,
        wall_s=kill.wall_s(),
        landed=kill.landed,
        phase=kill.phase,
        rows_before=len(before),
        rows_after=len(set(stored)),
        lost=lost,
        duplicated=dup,
    )
    assert lost == 0, f"{kind} trial {kill.trial}: {lost} rows lost after a kill in {kill.where()}"
    assert dup == 0, f"{kind} trial {kill.trial}: {dup} rows made twice ({kill.where()})"
    assert not extra, f"{kind} trial {kill.trial}: unexpected keys {sorted(extra)[:5]}"
    return set(stored)


def _final_check(
    kind: str, noun: str, kills: list, expected: set, saved: list, final: list
) -> None:
    """Record and assert a job's end after its kills: every key once, saved and stored."""
    record(
        "crash",
        f"{kind} worker, final resume",
        f"done: {len(set(final))}/{len(expected)} {noun} after {len(kills)} kills",
        lost=len(expected - set(final)),
        duplicated=_dupes(saved) + _dupes(final),
    )
    assert _dupes(saved) == 0 and sorted(final) == sorted(expected) == sorted(saved)


# --------------------------------------------------------------------------- sampling


def _working_phase(prefix: str) -> Callable[[dict], bool]:
    return lambda p: (p.get("phase") or "").startswith(prefix)


def test_sampling_worker_killed_20_times_loses_and_duplicates_no_candidate(
    con, db_path, tiny_model_dir
):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.launch import (
        plan_sampling,
        resume_sampling,
        start_sampling,
        sync_sampling,
    )
    from reset_core.sampling.settings import candidate_id, default_grid

    rng = random.Random(SEED)
    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    import_file(con, FIXTURES / "dolly_unused.jsonl", ImportOptions(preset="alpaca"))
    # 16 examples x 6 settings x 4 samples = 384 candidates, one example (24) a shard.
    # The tiny Llama is fast when the machine is quiet (~150 candidates/s at 64 tokens):
    # 16 shards leave room for six kills in the work, each stopped one shard in.
    grid = default_grid(
        temperatures=(0.2, 0.4, 0.6, 0.8, 1.0, 1.2), top_ks=(-1,), max_tokens=64, n=4
    )
    spec = ModelSpec(model=str(tiny_model_dir), device="cpu")
    plan = plan_sampling(con, SampleSelection(count=16), spec, grid)
    expected = {
        candidate_id(e, plan.model.model_id, s.setting_id, i)
        for e in plan.example_ids
        for s in plan.grid
        for i in range(s.n)
    }
    assert len(expected) == 384
    job_id = start_sampling(con, plan, jobs_dir(db_path), launch=False, chunk_size=1)
    job_dir = jobs.work_dir(con, job_id)

    def stored() -> list[str]:
        q = "SELECT candidate_id FROM candidates WHERE job_id = ?"
        return [r[0] for r in con.execute(q, [job_id]).fetchall()]

    n_work = 6
    kills, before = [], set()
    for trial, (aimed, delay) in enumerate(plan_kills(rng, n_work, 2.0, 1.5), 1):
        pid = jobs.launch(con, job_id) if trial == 1 else resume_sampling(con, job_id)
        kill = kill_worker(
            job_dir,
            pid,
            trial,
            aimed,
            delay,
            _working_phase("generating"),
            len(before),
            stop_at=len(before) + 24,  # one shard
        )
        kills.append(kill)
        progress = sync_sampling(con, job_id)
        assert progress["status"] == "failed", f"trial {trial}: {kill} did not land: {progress}"
        saved = [r[0] for r in _shard_rows(job_dir, ["candidate_id"])]
        before = _keys_check("sampling", kill, saved, stored(), before, expected)
    assert_mix("sampling", kills, n_work)

    resume_sampling(con, job_id)
    progress = _wait(lambda: sync_sampling(con, job_id))
    assert progress["status"] == "done", progress
    saved = [r[0] for r in _shard_rows(job_dir, ["candidate_id"])]
    _final_check("sampling", "candidates", kills, expected, saved, stored())
    assert progress["n_done"] == len(expected)


# --------------------------------------------------------------------------- judging


def _seed_candidates(con, n_examples: int, prefix: str = "x", split: str = "seen") -> int:
    """Open-ended and context examples with two candidates each (as sampling leaves them)."""
    ids = [f"{prefix}{i:03d}" for i in range(n_examples)]
    kinds = ["instruction" if i % 2 else "context" for i in range(n_examples)]
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": ids,
                "instruction": [f"Question {i}: what is the capital of France?" for i in ids],
                "context": [None if k == "instruction" else "Paris is the capital." for k in kinds],
                "reference": ["Paris."] * n_examples,
                "kind": kinds,
                "source": ["crash"] * n_examples,
                "split": [split] * n_examples,
                "content_hash": ids,
            }
        ),
    )
    rows = [(e, j) for e in ids for j in range(2)]
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": [f"{e}-{j}" for e, j in rows],
                "example_id": [e for e, _ in rows],
                "model_id": ["m"] * len(rows),
                "setting_id": ["s"] * len(rows),
                "sample_index": [j for _, j in rows],
                "seed": [j for _, j in rows],
                "text": [("Paris." if j == 0 else "Lyon, I think.") for _, j in rows],
                "engine": ["test"] * len(rows),
            }
        ),
    )
    return len(rows)


def _llm_judge(con, server, **kw) -> dict:
    from reset_core.judging.launch import llm_spec
    from reset_core.judging.llm_judge import LLMJudgeConfig

    cfg = {"model": "local-test", "base_url": server.base_url, "timeout_s": 5.0, **kw}
    return llm_spec(con, LLMJudgeConfig(**cfg))


def test_judging_worker_killed_20_times_loses_and_duplicates_no_judgment(
    con, db_path, openai_server
):
    from reset_core.judging.launch import create_judge_job, plan_items, sync_judge_job

    rng = random.Random(SEED + 1)
    # 100 examples, 2 candidates each: 200 task verdicts + 100 instruction + 100
    # faithfulness. At 50 ms a request, two in flight, 4 items a shard: ~10 s of requests.
    openai_server.latency_s = 0.05
    _seed_candidates(con, 100)
    spec = _llm_judge(con, openai_server, concurrency=2)
    items = plan_items(con, [spec])
    key = ["candidate_id", "judge_id", "aspect"]
    expected = set(zip(*(items.column(c).to_pylist() for c in key), strict=True))
    job_id = create_judge_job(con, db_path, [spec], batch_size=4)
    job_dir = jobs.work_dir(con, job_id)
    assert len(expected) == items.num_rows == 400

    def stored() -> list[tuple]:
        # Keyed by (candidate, judge, aspect): a second verdict on one of them would be a
        # duplicate even under another judgment id.
        q = "SELECT candidate_id, judge_id, aspect FROM judgments WHERE job_id = ?"
        return con.execute(q, [job_id]).fetchall()

    n_work = 10
    kills, before = [], set()
    for trial, (aimed, delay) in enumerate(plan_kills(rng, n_work, 2.0, 0.5), 1):
        pid = jobs.launch(con, job_id)
        kill = kill_worker(
            job_dir,
            pid,
            trial,
            aimed,
            delay,
            _working_phase("judge "),
            len(before),
            stop_at=len(before) + 12,  # three shards of 4
        )
        kills.append(kill)
        progress = sync_judge_job(con, job_id)
        assert progress["status"] == "failed", f"trial {trial}: {kill} did not land: {progress}"
        saved = _shard_rows(job_dir, key)
        before = _keys_check("judging", kill, saved, stored(), before, expected)
    assert_mix("judging", kills, n_work)

    jobs.launch(con, job_id)
    progress = _wait(lambda: sync_judge_job(con, job_id))
    assert progress["status"] == "done", progress
    _final_check("judging", "judgments", kills, expected, _shard_rows(job_dir, key), stored())
    # Every verdict is a real one from the endpoint: no kill left a made-up or empty score.
    assert one(con, "SELECT count(score) FROM judgments WHERE job_id = ?", [job_id])[0] == 400


# --------------------------------------------------------------------------- training


def _last_checkpoint_step(job_dir: Path) -> int:
    """The step of the newest complete checkpoint (as the worker resumes from), 0 if none."""
    steps = [
        int(d.name.rsplit("-", 1)[1])
        for d in (job_dir / "checkpoints").glob("checkpoint-*")
        if (d / "trainer_state.json").exists()
    ]
    return max(steps, default=0)


def test_training_worker_killed_20_times_resumes_from_its_last_checkpoint(
    con, db_path, tiny_model_dir
):
    from training_data import fill_picks

    from reset_core.curation.config import CurationSpec
    from reset_core.curation.sets import create_curated_set
    from reset_core.training import launch as runs
    from reset_core.training.config import TrainConfig

    rng = random.Random(SEED + 2)
    fill_picks(con, n=32)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(
        base_model=str(tiny_model_dir),
        num_train_epochs=1,
        per_device_train_batch_size=1,
        save_steps=2,
        learning_rate=1e-3,
    )
    run_id, job_id = runs.start_training(
        con, db_path, cfg, set_id=set_id, name="crash", launch=False
    )
    job_dir = jobs.work_dir(con, job_id)
    output_dir = Path(
        one(con, "SELECT output_dir FROM training_runs WHERE run_id = ?", [run_id])[0]
    )
    total_steps = 32

    def steps() -> list[int]:
        q = "SELECT step FROM training_metrics WHERE run_id = ? ORDER BY step"
        return [r[0] for r in con.execute(q, [run_id]).fetchall()]

    n_work = 5
    kills = []
    for trial, (aimed, delay) in enumerate(plan_kills(rng, n_work, 2.0, 1.2), 1):
        checkpoint = _last_checkpoint_step(job_dir)
        shards_before = set((job_dir / "shards").glob("*.parquet"))
        pid = jobs.launch(con, job_id)
        # Aimed at the work: after this attempt saved a checkpoint of its own (its step
        # save_steps + 1 began after that save), so every later attempt has one to resume.
        after_step = checkpoint + cfg.save_steps
        kill = kill_worker(
            job_dir,
            pid,
            trial,
            aimed,
            delay,
            _working_phase("training"),
            after_step,
            stop_at=after_step + 3,
        )
        kills.append(kill)
        progress = runs.sync_training(con, job_id)
        assert progress["status"] == "failed", f"trial {trial}: {kill} did not land: {progress}"
        # This attempt's metric shards: its first step follows the checkpoint it resumed.
        new = sorted(set((job_dir / "shards").glob("*.parquet")) - shards_before)
        first = (
            min(pq.read_table(new, columns=["step"]).column(0).to_pylist(), default=None)
            if new
            else None
        )
        logged = steps()
        gaps = sorted(set(range(1, max(logged, default=0) + 1)) - set(logged))
        record(
            "crash",
            f"training worker, trial {trial}",
            f"killed in {kill.where()}; resumed at checkpoint {checkpoint}, first step "
            f"{first if first is not None else '(none logged)'}",
            aimed=kill.aimed,
            delay_s=kill.delay_s,
            wall_s=kill.wall_s(),
            landed=kill.landed,
            phase=kill.phase,
            resumed_from_step=checkpoint,
            first_step=first,
            steps_logged=len(logged),
            lost=len(gaps),
            duplicated=_dupes(logged),
        )
        assert first is None or first == checkpoint + 1, (
            f"trial {trial}: the attempt started at step {first}, not after checkpoint {checkpoint}"
        )
        assert not gaps and _dupes(logged) == 0, f"trial {trial}: steps lost {gaps}"
        assert not output_dir.exists(), f"trial {trial}: an output folder before the end"
    assert_mix("training", kills, n_work)
    resumed_at = _last_checkpoint_step(job_dir)
    assert resumed_at > 0, "no kill left a checkpoint: the final run would not resume"

    jobs.launch(con, job_id)
    progress = _wait(lambda: runs.sync_training(con, job_id))
    assert progress["status"] == "done", progress
    result = jobs.read_json(job_dir / "result.json")
    logged = steps()
    record(
        "crash",
        "training worker, final resume",
        f"done: resumed from {Path(result['resumed_from']).name}, {result['global_step']} steps",
        resumed_from_step=resumed_at,
        lost=len(set(range(1, total_steps + 1)) - set(logged)),
        duplicated=_dupes(logged),
    )
    assert result["resumed_from"].endswith(f"checkpoint-{resumed_at}")  # the saved step, not 0
    assert result["global_step"] == total_steps and logged == list(range(1, total_steps + 1))
    # The adapter exists once: one output folder, no half-written sibling, one model.
    assert (output_dir / "adapter" / "adapter_config.json").exists()
    assert [p.name for p in output_dir.parent.iterdir()] == [output_dir.name]
    assert one(con, "SELECT count(*) FROM models WHERE training_run_id = ?", [run_id])[0] == 1


# --------------------------------------------------------------------------- evaluation


def test_evaluation_workers_killed_20_times_then_advance_loses_and_duplicates_nothing(
    con, db_path, openai_server, monkeypatch
):
    """The evaluation's own sampling and judging workers are killed; ``advance`` (what the
    Evaluate page calls while it polls) resumes, and Resume restarts it when a stage ran
    out of attempts."""
    from reset_core.aspects import ASPECTS
    from reset_core.evaluation import queries
    from reset_core.evaluation.config import EvalConfig, TestSet
    from reset_core.evaluation.launch import (
        MAX_ATTEMPTS,
        advance_evaluation,
        create_evaluation,
        resume_evaluation,
    )
    from reset_core.judging.launch import register_judges
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.launch import record_model_and_grid
    from reset_core.sampling.settings import candidate_id
    from reset_core.scoring.panels import Panel, save_panel

    rng = random.Random(SEED + 3)
    # Both workers talk to the local endpoint (50 ms a request, one at a time for the
    # answers, two for verdicts), so a worker starts in ~2 s and works for seconds.
    openai_server.latency_s = 0.05
    n = 160
    _seed_candidates(con, n, prefix="t", split="test_seen")
    model = ModelSpec(engine="openai", model="local-test", base_url=openai_server.base_url)
    model = model.model_copy(update={"concurrency": 1})
    record_model_and_grid(con, model, [])
    # Verdicts in shards of 4 (the default is 256: one shard for the whole run here).
    monkeypatch.setattr("reset_core.evaluation.launch.JUDGE_BATCH_SIZE", 4)
    spec = _llm_judge(con, openai_server, concurrency=2)
    (judge,) = register_judges(con, [spec])
    # The endpoint judge on every aspect: no metric or embedding judge to load.
    save_panel(con, Panel(name="crash", judges={a: [judge.judge_id] for a in ASPECTS}))
    cfg = EvalConfig(
        checkpoints=[model.model_id],
        tests=TestSet(count=n, splits=["test_seen"]),
        decoding={**EvalConfig.model_fields["decoding"].default.model_dump(), "max_tokens": 8},
        panel="crash",
    )
    evaluation_id = create_evaluation(con, db_path, cfg)
    ev = queries.get_evaluation(con, evaluation_id)
    setting = ev["frozen"]["setting_id"]
    expected = {
        candidate_id(e, model.model_id, setting, 0) for e in queries.example_ids(con, evaluation_id)
    }
    assert len(expected) == n

    def eval_jobs(stage: str) -> list[str]:
        return [
            j["job_id"] for j in queries.evaluation_jobs(con, evaluation_id) if j["stage"] == stage
        ]

    def saved() -> tuple[list, list]:
        """What the evaluation's workers saved: answer ids, and verdict keys."""
        answers = [
            r[0]
            for j in eval_jobs("sample")
            for r in _shard_rows(jobs.work_dir(con, j), ["candidate_id"])
        ]
        verdicts = [
            r
            for j in eval_jobs("judge")
            for r in _shard_rows(jobs.work_dir(con, j), ["candidate_id", "judge_id", "aspect"])
        ]
        return answers, verdicts

    def check(kill: Kill, stage: str, before: dict) -> dict:
        answers, verdicts = saved()
        stored_a = [
            r[0]
            for r in con.execute(
                "SELECT candidate_id FROM candidates WHERE model_id = ?", [model.model_id]
            ).fetchall()
        ]
        stored_v = con.execute(
            "SELECT candidate_id, judge_id, aspect FROM judgments WHERE candidate_id IN "
            "(SELECT unnest(?))",
            [sorted(expected)],
        ).fetchall()
        lost = (
            len(before["a"] - set(stored_a))
            + len(set(answers) - set(stored_a))
            + len(before["v"] - set(stored_v))
            + len(set(verdicts) - set(stored_v))
        )
        dup = _dupes(answers) + _dupes(stored_a) + _dupes(verdicts) + _dupes(stored_v)
        record(
            "crash",
            f"evaluation ({stage} worker), trial {kill.trial}",
            f"killed in {kill.where()}; advanced: {len(set(stored_a))}/{n} answers, "
            f"{len(set(stored_v))}/{2 * n} verdicts",
            aimed=kill.aimed,
            delay_s=kill.delay_s,
            wall_s=kill.wall_s(),
            landed=kill.landed,
            phase=kill.phase,
            answers=len(set(stored_a)),
            verdicts=len(set(stored_v)),
            lost=lost,
            duplicated=dup,
        )
        assert lost == 0, f"evaluation trial {kill.trial}: {lost} answers/verdicts lost"
        assert dup == 0, f"evaluation trial {kill.trial}: {dup} answers/verdicts made twice"
        assert set(stored_a) <= expected
        return {"a": set(stored_a), "v": set(stored_v)}

    # Ten kills of the sampling worker, then ten of the judging worker.
    plan = plan_kills(rng, 5, 1.5, 0.4, n=10) + plan_kills(rng, 5, 1.5, 0.3, n=10)
    kills: list[Kill] = []
    stage_of: dict[int, str] = {}
    before = {"a": set(), "v": set()}
    resumed = 0
    while len(kills) < 2 * 10:
        p = advance_evaluation(con, db_path, evaluation_id)
        if p.status == "failed":  # a stage out of attempts: the page's Resume button
            assert f"after {MAX_ATTEMPTS} " in p.message, p
            resume_evaluation(con, evaluation_id)
            resumed += 1
            continue
        assert p.status in ("sampling", "judging"), (
            f"evaluation ended after {len(kills)} kills: {p}"
        )
        stage = "sample" if p.status == "sampling" else "judge"
        if stage == "sample" and len(kills) >= 10:  # enough sampling kills: let it finish
            time.sleep(0.2)
            continue
        job_id = p.running_jobs[0]
        pid = one(con, "SELECT pid FROM jobs WHERE job_id = ?", [job_id])[0]
        aimed, delay = plan[len(kills)]
        working = _working_phase("generating" if stage == "sample" else "judge ")
        # Each attempt is a new job (it plans only what is missing): its first progress
        # is its first shard.
        kill = kill_worker(
            jobs.work_dir(con, job_id), pid, len(kills) + 1, aimed, delay, working, stop_at=16
        )
        kills.append(kill)
        stage_of[kill.trial] = stage
        advance_evaluation(con, db_path, evaluation_id, launch=False)  # sync: marks it failed
        status = one(con, "SELECT status FROM jobs WHERE job_id = ?", [job_id])[0]
        assert status == "failed", f"trial {kill.trial}: {kill} did not land: {status}"
        before = check(kill, "sampling" if stage == "sample" else "judging", before)
    assert list(stage_of.values()) == ["sample"] * 10 + ["judge"] * 10
    assert_mix("evaluation (sampling)", kills[:10], 2)
    assert_mix("evaluation (judging)", kills[10:], 2)

    deadline = time.monotonic() + 240
    while not (p := advance_evaluation(con, db_path, evaluation_id)).finished:
        assert time.monotonic() < deadline, p
        time.sleep(0.2)
    stored_v = con.execute(
        "SELECT candidate_id, judge_id, aspect, count(*), count(score) FROM judgments "
        "WHERE candidate_id IN (SELECT unnest(?)) GROUP BY ALL",
        [sorted(expected)],
    ).fetchall()
    stored_a = [
        r[0]
        for r in con.execute(
            "SELECT candidate_id FROM candidates WHERE model_id = ?", [model.model_id]
        ).fetchall()
    ]
    record(
        "crash",
        "evaluation, final advance",
        f"{p.status}: {p.answers_done}/{p.answers_total} answers, {p.verdicts_done}/"
        f"{p.verdicts_total} verdicts after {len(kills)} kills and {resumed} resumes",
        lost=(p.answers_total - p.answers_done) + (p.verdicts_total - p.verdicts_done),
        duplicated=sum(r[3] - 1 for r in stored_v) + _dupes(stored_a),
    )
    assert p.status == "done" and p.message == "every answer and verdict is in", p
    assert sorted(stored_a) == sorted(expected)
    # Each answer: task, plus instruction (open-ended) or faithfulness (context), once,
    # each a real score from the endpoint (no kill left a made-up or empty one).
    assert {r[0] for r in stored_v} == expected and len(stored_v) == 2 * n
    assert all(r[3] == r[4] == 1 for r in stored_v)
    answers, verdicts = saved()
    assert _dupes(answers) == 0 and _dupes(verdicts) == 0
