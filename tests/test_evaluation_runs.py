"""Evaluation runs: frozen inputs, ordinary sampling and judging jobs, resume, the CLI.

The tiny Llama answers (base, and base + a LoRA adapter registered as a trained
checkpoint) and the offline metric judges score, so every test runs offline in
seconds; the frozen-panel tests use an LLM judge on the local stand-in server.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reset_core.evaluation import queries
from reset_core.evaluation.config import EvalConfig, TestSet
from reset_core.evaluation.launch import (
    MAX_ATTEMPTS,
    advance_evaluation,
    cancel_evaluation,
    checkpoint_summary,
    create_evaluation,
    freeze_panel,
    resume_evaluation,
    run_evaluation,
)
from reset_core.sampling.config import ModelSpec
from reset_core.sampling.settings import candidate_id
from reset_core.store import counts, one
from reset_core.training.launch import ensure_model, model_id_for

FIXTURES = Path(__file__).parent / "fixtures"
SHORT = {"max_tokens": 12}


@pytest.fixture
def tests_db(con):
    """Test splits: open-ended (alpaca, test_seen) and context (QA, test_unseen) examples."""
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca", split="test_seen"))
    import_file(
        con, FIXTURES / "qa_squad_shape.jsonl", ImportOptions(preset="qa", split="test_unseen")
    )
    return con


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """A LoRA adapter on the tiny model whose weights change its answers."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapter")
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora).save_pretrained(out)
    return out


def _checkpoints(con, tiny_model_dir, adapter_dir, moved_id: str | None = None) -> list[str]:
    """The base (as sampling registers it) and a trained adapter checkpoint.

    ``moved_id``: register the adapter under an id other than the one its path gives
    here, as a model registered from another working folder has.
    """
    base = ensure_model(con, str(tiny_model_dir), name="tiny")
    tuned = moved_id or model_id_for(str(tiny_model_dir), str(adapter_dir))
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "training_run_id) VALUES (?, 'tiny-reset', ?, ?, 'reset', ?, 'run-1')",
        [tuned, str(tiny_model_dir), str(adapter_dir), base],
    )
    return [base, tuned]


def _cfg(checkpoints, count=4, **kw) -> EvalConfig:
    return EvalConfig(
        checkpoints=checkpoints,
        tests=TestSet(count=count),
        decoding={**EvalConfig.model_fields["decoding"].default.model_dump(), **SHORT},
        batch_size=kw.pop("batch_size", 4),
        **kw,
    )


def _shard_rows(con, job_ids, columns) -> list[tuple]:
    """Every row the jobs' workers wrote (their shards), as tuples of ``columns``."""
    rows = []
    for job_id in job_ids:
        work_dir = Path(one(con, "SELECT work_dir FROM jobs WHERE job_id=?", [job_id])[0])
        files = sorted((work_dir / "shards").glob("*.parquet"))
        if files:
            t = pq.read_table(files, columns=columns).to_pydict()
            rows += list(zip(*(t[c] for c in columns), strict=True))
    return rows


def _assert_complete(con, evaluation_id) -> None:
    """Every answer once (the expected keys, nothing else), every owed verdict once."""
    ev = queries.get_evaluation(con, evaluation_id)
    setting = ev["frozen"]["setting_id"]
    examples = queries.example_ids(con, evaluation_id)
    expected = {
        candidate_id(e, ck["model_id"], setting, 0) for ck in ev["checkpoints"] for e in examples
    }
    rows = con.execute(
        "SELECT candidate_id FROM candidates WHERE setting_id = ? AND model_id IN "
        "(SELECT model_id FROM evaluation_checkpoints WHERE evaluation_id = ?)",
        [setting, evaluation_id],
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(expected)
    assert sorted(queries.answer_ids(con, evaluation_id)) == sorted(expected)
    # Verdicts: each answer, each needed (judge, aspect) of the frozen panel, once.
    # IFEval votes only on examples carrying verifiable instructions: none here.
    kinds = dict(con.execute("SELECT example_id, kind FROM examples").fetchall())
    needed = {"task": {"instruction", "context"}, "instruction": {"instruction"}}
    needed["faithfulness"] = {"context"}
    owed = {
        (candidate_id(e, ck["model_id"], setting, 0), judge_id, aspect)
        for aspect, ids in ev["frozen"]["judges"].items()
        for judge_id in ids
        if "ifeval" not in judge_id
        for ck in ev["checkpoints"]
        for e in examples
        if kinds[e] in needed[aspect]
    }
    got = con.execute(
        "SELECT candidate_id, judge_id, aspect, count(*) FROM judgments "
        "WHERE candidate_id IN (SELECT unnest(?)) GROUP BY ALL",
        [sorted(expected)],
    ).fetchall()
    got_keys = {(c, j, a) for c, j, a, _ in got}
    assert got_keys == owed, got_keys ^ owed
    assert all(n == 1 for *_, n in got), [g for g in got if g[3] != 1]


# ------------------------------------------------------------------------- bad input


def test_create_rejects_bad_input_naming_the_field(tests_db, db_path, tiny_model_dir, tmp_path):
    con = tests_db
    base = ensure_model(con, str(tiny_model_dir))

    def rejected(cfg, match, **kw):
        with pytest.raises(ValueError, match=match):
            create_evaluation(con, db_path, cfg, **kw)

    rejected(_cfg(["m:nope"]), r"checkpoints: unknown model id 'm:nope'")
    rejected(
        EvalConfig(checkpoints=[base], tests=TestSet(sources=["nowhere"])),
        r"tests: no examples match .*sources=nowhere",
    )
    rejected(_cfg([base], panel="strict"), r"panel: no saved panel 'strict'")
    rejected(_cfg([base]), r"labels: \['m:other'\]", labels={"m:other": "x"})
    gone = ensure_model(con, str(tmp_path / "deleted-model"))
    rejected(_cfg([gone]), r"checkpoints: .*deleted-model.* does not exist")
    con.execute(
        "INSERT INTO models (model_id, name, stage) VALUES ('m:pathless', 'pathless', 'base')"
    )
    rejected(_cfg(["m:pathless"]), r"checkpoints: pathless \(m:pathless\) has no weights path")
    with pytest.raises(ValueError, match="baseline"):
        EvalConfig(checkpoints=[base], baseline="m:x")
    assert counts(con)["evaluations"] == 0  # nothing half-created


# ------------------------------------------------------------------------- end to end


def test_two_checkpoints_headless_every_answer_and_verdict_once(
    tests_db, db_path, tiny_model_dir, adapter_dir
):
    con = tests_db
    # The adapter checkpoint was registered where its path read differently: its stored
    # id is not the one sampling computes here, and the answers must land under it.
    checkpoints = _checkpoints(con, tiny_model_dir, adapter_dir, moved_id="m:registered-elsewhere")
    computed = ModelSpec(model=str(tiny_model_dir), adapter=str(adapter_dir)).model_id
    assert computed != "m:registered-elsewhere"
    cfg = _cfg(checkpoints, count=4, name="tiny before/after")
    evaluation_id = create_evaluation(con, db_path, cfg, labels={checkpoints[1]: "after"})
    assert evaluation_id.startswith("eval-")
    ev = queries.get_evaluation(con, evaluation_id)
    assert ev["status"] == "planned" and ev["n_examples"] == 4
    assert [c["label"] for c in ev["checkpoints"]] == ["tiny", "after"]
    assert ev["frozen"]["decoding"]["temperature"] == 0.0
    assert ev["frozen"]["models"]["m:registered-elsewhere"]["computed_id"] == computed

    seen = []
    p = run_evaluation(con, db_path, evaluation_id, on_progress=seen.append, poll_s=0.1)
    assert p.status == "done", p
    assert p.answers_done == p.answers_total == 8
    assert p.verdicts_done == p.verdicts_total > 0
    assert {s.status for s in seen} >= {"sampling", "judging", "done"}
    _assert_complete(con, evaluation_id)
    assert one(con, "SELECT count(*) FROM candidates WHERE model_id = ?", [computed])[0] == 0
    assert one(con, "SELECT count(*) FROM models WHERE model_id = ?", [computed])[0] == 0
    # One sampling job per checkpoint, one judging job: no second pipeline.
    stages = [j["stage"] for j in queries.evaluation_jobs(con, evaluation_id)]
    assert stages == ["sample", "sample", "judge"]
    # Done is done: another step starts nothing.
    again = advance_evaluation(con, db_path, evaluation_id)
    assert again.status == "done" and not again.running_jobs
    assert len(queries.evaluation_jobs(con, evaluation_id)) == 3
    summary = checkpoint_summary(con, evaluation_id)
    assert [s["answers"] for s in summary] == [4, 4]
    assert all(s["verdicts_missing"] == 0 and s["verdicts"] > 0 for s in summary)
    assert counts(con)["evaluations"] == 1
    listed = queries.list_evaluations(con)
    assert listed.loc[0, "evaluation_id"] == evaluation_id
    assert (listed.loc[0, "n_checkpoints"], listed.loc[0, "n_examples"]) == (2, 4)

    # A second evaluation of the same checkpoints on the same examples reuses them:
    # nothing is sampled or judged again.
    n_candidates = one(con, "SELECT count(*) FROM candidates")[0]
    n_judgments = one(con, "SELECT count(*) FROM judgments")[0]
    second = create_evaluation(con, db_path, cfg)
    assert run_evaluation(con, db_path, second, poll_s=0.1).status == "done"
    assert queries.evaluation_jobs(con, second) == []
    assert one(con, "SELECT count(*) FROM candidates")[0] == n_candidates
    assert one(con, "SELECT count(*) FROM judgments")[0] == n_judgments


# ------------------------------------------------------------------------- resume


def _advance_until(con, db_path, evaluation_id, stop, timeout_s=240):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        p = advance_evaluation(con, db_path, evaluation_id)
        if stop(p):
            return p
        time.sleep(0.1)
    raise AssertionError(f"{evaluation_id} did not get there in {timeout_s} s: {p}")


def _kill_when_shard_written(con, job_id, rng) -> None:
    """SIGKILL the job's worker at a random moment after its first shard (or at once)."""
    pid, work_dir = one(con, "SELECT pid, work_dir FROM jobs WHERE job_id=?", [job_id])
    deadline = time.monotonic() + 120
    while not list((Path(work_dir) / "shards").glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    # It may have finished first: nothing to resume then, and the result is still checked.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_kill_9_of_workers_then_advance_loses_and_duplicates_nothing(
    tests_db, db_path, tiny_model_dir, monkeypatch
):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    from reset_core.judging.worker import build_judge
    from reset_core.scoring.panels import Panel, save_panel

    con = tests_db
    base = ensure_model(con, str(tiny_model_dir))
    # Judges that start fast (no embedding model to load): the test is about resuming.
    cheap = {"task": "rouge_l", "instruction": "instruction_proxy"}
    cheap["faithfulness"] = "knowledge_precision"
    ids = {a: [build_judge({"type": "metric", "name": n}).judge_id] for a, n in cheap.items()}
    save_panel(con, Panel(name="cheap", judges=ids))
    # Small judging batches (a shard each), so the judging worker is killed mid-run too.
    monkeypatch.setattr("reset_core.evaluation.launch.JUDGE_BATCH_SIZE", 2)
    # One answer per generate call and longer answers: the worker is killed mid-run.
    cfg = _cfg([base], count=8, batch_size=1, panel="cheap")
    cfg.tests.splits = ["test_seen"]  # the short open-ended prompts: quick answers
    cfg.decoding = cfg.decoding.model_copy(update={"max_tokens": 32})
    evaluation_id = create_evaluation(con, db_path, cfg)
    p = advance_evaluation(con, db_path, evaluation_id)
    assert p.status == "sampling" and len(p.running_jobs) == 1
    _kill_when_shard_written(con, p.running_jobs[0], rng)
    # The killed job is synced (marked failed) and a new one makes only what is missing.
    p = _advance_until(con, db_path, evaluation_id, lambda p: p.status == "judging")
    judge_job = p.running_jobs[0]
    _kill_when_shard_written(con, judge_job, rng)
    p = _advance_until(con, db_path, evaluation_id, lambda p: p.finished)
    assert p.status == "done", f"random seed {seed}: {p}"
    _assert_complete(con, evaluation_id)
    jobs_ = queries.evaluation_jobs(con, evaluation_id)
    # Each killed worker left its job failed and a second job made the rest, unless the
    # kill came after its last shard (nothing left to make) or after its very end.
    for stage in ("sample", "judge"):
        statuses = [j["status"] for j in jobs_ if j["stage"] == stage]
        assert statuses in (["done"], ["failed"], ["failed", "done"]), f"seed {seed}: {jobs_}"
    sample_jobs = [j["job_id"] for j in jobs_ if j["stage"] == "sample"]
    keys = _shard_rows(con, sample_jobs, ["candidate_id"])
    assert len(keys) == len(set(keys)) == 8, f"random seed {seed}: answers made twice"
    judge_jobs = [j["job_id"] for j in jobs_ if j["stage"] == "judge"]
    work = _shard_rows(con, judge_jobs, ["candidate_id", "judge_id", "aspect"])
    assert len(work) == len(set(work)), f"random seed {seed}: a verdict made twice"


def test_cancel_then_advance_resumes(tests_db, db_path, tiny_model_dir, adapter_dir):
    con = tests_db
    checkpoints = _checkpoints(con, tiny_model_dir, adapter_dir)
    evaluation_id = create_evaluation(con, db_path, _cfg(checkpoints, count=2))
    p = advance_evaluation(con, db_path, evaluation_id, launch=False)
    assert p.status == "sampling"
    cancel_evaluation(con, evaluation_id)
    ev = queries.get_evaluation(con, evaluation_id)
    assert (ev["status"], ev["error"]) == ("failed", "cancelled")
    # A cancelled evaluation stays put (a page polling it restarts nothing) until resumed.
    assert advance_evaluation(con, db_path, evaluation_id).status == "failed"
    assert len(queries.evaluation_jobs(con, evaluation_id)) == 1
    resume_evaluation(con, evaluation_id)
    p = run_evaluation(con, db_path, evaluation_id, poll_s=0.1)
    assert p.status == "done"
    _assert_complete(con, evaluation_id)


def test_a_model_sampled_from_an_endpoint_is_a_checkpoint(tests_db, db_path, openai_server):
    """A base model sampling registered from an OpenAI-compatible server answers there."""
    from reset_core.sampling.launch import record_model_and_grid

    con = tests_db
    spec = ModelSpec(engine="openai", model="local-test", base_url=openai_server.base_url)
    record_model_and_grid(con, spec, [])
    evaluation_id = create_evaluation(con, db_path, _cfg([spec.model_id], count=2))
    assert run_evaluation(con, db_path, evaluation_id, poll_s=0.1).status == "done"
    _assert_complete(con, evaluation_id)
    engines = con.execute("SELECT DISTINCT engine FROM candidates").fetchall()
    assert engines == [("openai",)]


def test_examples_gone_from_the_database_fail_the_evaluation_clearly(
    tests_db, db_path, tiny_model_dir
):
    con = tests_db
    base = ensure_model(con, str(tiny_model_dir))
    evaluation_id = create_evaluation(con, db_path, _cfg([base], count=2))
    con.execute(
        "DELETE FROM examples WHERE example_id IN (SELECT example_id FROM evaluation_examples)"
    )
    p = advance_evaluation(con, db_path, evaluation_id, launch=False)
    assert p.status == "failed" and "no longer in the database" in p.message
    assert queries.evaluation_jobs(con, evaluation_id) == []


def test_failing_judge_is_retried_a_bounded_number_of_times_then_reported(
    tests_db, db_path, tiny_model_dir
):
    """A judge whose every request fails: NULL verdicts, retried, then reported missing."""
    from reset_core.judging.launch import llm_spec, register_judges
    from reset_core.judging.llm_judge import LLMJudgeConfig
    from reset_core.scoring.panels import Panel, save_panel

    con = tests_db
    base = ensure_model(con, str(tiny_model_dir))
    dead = LLMJudgeConfig(
        model="nobody", base_url="http://127.0.0.1:9/v1", timeout_s=0.5, max_retries=0
    )
    spec = llm_spec(con, dead)
    (judge,) = register_judges(con, [spec])
    save_panel(con, Panel(name="dead", judges={"task": [judge.judge_id]}))
    evaluation_id = create_evaluation(con, db_path, _cfg([base], count=2, panel="dead"))
    p = run_evaluation(con, db_path, evaluation_id, poll_s=0.1)
    assert p.status == "done" and p.answers_done == 2
    judge_jobs = [j for j in queries.evaluation_jobs(con, evaluation_id) if j["stage"] == "judge"]
    assert len(judge_jobs) == MAX_ATTEMPTS
    assert p.verdicts_done < p.verdicts_total
    assert (
        f"{p.verdicts_total - p.verdicts_done} of {p.verdicts_total} verdicts missing" in p.message
    )
    # The dead judge's verdicts are failures kept as NULL, never a made-up score.
    scores = con.execute(
        "SELECT DISTINCT score FROM judgments WHERE judge_id = ?", [judge.judge_id]
    ).fetchall()
    assert scores == [(None,)]
    summary = checkpoint_summary(con, evaluation_id)
    assert summary[0]["verdicts_failed"] == summary[0]["verdicts_missing"] == 2


# ------------------------------------------------------------------------- frozen panel


def test_a_frozen_panel_is_really_reused(tests_db, db_path, tiny_model_dir, openai_server):
    """A rubric edit and a panel re-save after creation change nothing of an evaluation."""
    from reset_core.judging.launch import llm_spec, register_judges
    from reset_core.judging.llm_judge import LLMJudgeConfig
    from reset_core.judging.rubrics import latest_rubric, save_rubric
    from reset_core.scoring.panels import Panel, save_panel

    con = tests_db
    base = ensure_model(con, str(tiny_model_dir))
    llm = LLMJudgeConfig(model="local-test", base_url=openai_server.base_url, timeout_s=5.0)
    (v1,) = register_judges(con, [llm_spec(con, llm)])
    panel = Panel(name="mine", judges={"task": [v1.judge_id]}, include_placeholders=True)
    save_panel(con, panel)
    first = create_evaluation(con, db_path, _cfg([base], count=2, panel="mine"))
    frozen_before = queries.get_evaluation(con, first)["frozen"]
    assert frozen_before["judges"]["task"] == [v1.judge_id]
    old_text = latest_rubric(con, "task").text

    # The rubric is edited (a new version: a new judge id) and the panel re-saved.
    save_rubric(con, "task", old_text + "\nBe strict about facts.", 1, 10)
    (v2,) = register_judges(con, [llm_spec(con, llm)])
    assert v2.judge_id != v1.judge_id
    save_panel(con, panel.model_copy(update={"judges": {"task": [v2.judge_id]}}))
    second = create_evaluation(con, db_path, _cfg([base], count=2, panel="mine"))
    assert queries.get_evaluation(con, second)["frozen"]["judges"]["task"] == [v2.judge_id]

    assert run_evaluation(con, db_path, first, poll_s=0.1).status == "done"
    # The earlier evaluation judged with its frozen spec: the old rubric text, old id.
    ev = queries.get_evaluation(con, first)
    assert ev["frozen"] == frozen_before
    (job,) = [j for j in queries.evaluation_jobs(con, first) if j["stage"] == "judge"]
    config = json.loads(one(con, "SELECT config FROM jobs WHERE job_id=?", [job["job_id"]])[0])
    (llm_job_spec,) = [s for s in config["judges"] if s["type"] == "llm"]
    assert llm_job_spec["rubrics"]["task"]["text"] == old_text
    first_counts = queries.verdict_counts(con, first)

    # The later one judges the same answers with the new version; the first reads only
    # its frozen judges' verdicts, so its counts do not move.
    assert run_evaluation(con, db_path, second, poll_s=0.1).status == "done"
    assert sorted(queries.answer_ids(con, first)) == sorted(queries.answer_ids(con, second))
    by_judge = dict(
        con.execute(
            "SELECT judge_id, count(*) FROM judgments WHERE judge_id IN (?, ?) GROUP BY ALL",
            [v1.judge_id, v2.judge_id],
        ).fetchall()
    )
    assert by_judge == {v1.judge_id: 2, v2.judge_id: 2}
    assert queries.verdict_counts(con, first) == first_counts
    assert queries.get_evaluation(con, first)["frozen"] == frozen_before
    assert advance_evaluation(con, db_path, first).status == "done"


def test_default_panel_freezes_offline_judges_and_trusted_llm_judges(con):
    from reset_core.judging.launch import offline_specs
    from reset_core.judging.worker import build_judge

    frozen = freeze_panel(con, "default")
    offline = {build_judge(s).judge_id for s in offline_specs()}
    assert set(frozen["specs"]) == offline
    assert {j for ids in frozen["judges"].values() for j in ids} == offline
    assert frozen["panel"]["name"] == "default"


# ------------------------------------------------------------------------- CLI


def test_cli_evaluates_by_label_lists_and_resumes(
    tests_db, db_path, tiny_model_dir, adapter_dir, capsys
):
    from reset_core.cli import main
    from reset_core.training.queries import model_labels

    con = tests_db
    base, tuned = _checkpoints(con, tiny_model_dir, adapter_dir)
    label = model_labels(con)[tuned]
    con.close()  # the CLI opens the database itself (one writer)
    db = ["--db", str(db_path)]
    assert main([*db, "evaluate", "--checkpoints", f"base,{label}", "--count", "2",
                 "--max-tokens", "8", "--poll-s", "0.1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "2 checkpoints x 2 examples" in out and "done" in out
    lines = [line for line in out.splitlines() if line.startswith(("tiny", label[:20]))]
    assert len(lines) == 2 and all("2/2" in line for line in lines), out
    assert main([*db, "evaluate", "--list"]) == 0
    listed = capsys.readouterr().out
    evaluation_id = listed.split()[0]
    assert evaluation_id.startswith("eval-") and "done" in listed
    assert main([*db, "evaluate", "--resume", evaluation_id]) == 0
    assert f"resuming {evaluation_id}" in capsys.readouterr().out
    # Rejected options: exit 2 with the field named.
    assert main([*db, "evaluate", "--checkpoints", "nope"]) == 2
    assert "checkpoints: 'nope' is no model id" in capsys.readouterr().err
    assert main([*db, "evaluate", "--checkpoints", base, "--splits", "bogus"]) == 2
    assert "splits" in capsys.readouterr().err
    assert main([*db, "evaluate", "--resume", "eval-missing"]) == 5  # not found
    assert main([*db, "evaluate"]) == 2


def test_cli_dry_run_says_how_many_test_examples_match_and_creates_nothing(
    tests_db, db_path, tiny_model_dir, capsys
):
    from reset_core.cli import main
    from reset_core.evaluation import launch

    con = tests_db
    base = ensure_model(con, str(tiny_model_dir), name="tiny")
    size = launch.test_set_size(con, TestSet(count=3))
    con.close()
    assert size["total"] == 3  # the fixture holds more test examples than that
    db = ["--db", str(db_path)]
    assert main([*db, "evaluate", "--checkpoints", base, "--count", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"test set: {launch.describe_test_set_size(size)}" in out, out
    assert "test set: 3 examples: " in out and "3 answers to make at most" in out
    assert main([*db, "evaluate", "--checkpoints", base, "--sources", "nowhere", "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "test set: 0 examples" in captured.out and "tests: no examples match" in captured.err
    assert main([*db, "evaluate", "--list"]) == 0
    assert "no evaluations yet" in capsys.readouterr().out


def test_per_source_test_set_takes_count_of_each_source(con):
    """A stratified test set: at most ``count`` of every matching source, seeded."""
    from reset_core.evaluation.config import TestSet
    from reset_core.evaluation.launch import _test_examples
    from reset_core.ingest.demo import load_demo

    load_demo(con)
    tests = TestSet(splits=["test_seen", "test_unseen"], count=5, per_source=True)
    ids = _test_examples(con, tests)
    sources = dict(
        con.execute(
            "SELECT source, count(*) FROM examples WHERE example_id IN (SELECT unnest(?)) "
            "GROUP BY source",
            [ids],
        ).fetchall()
    )
    # Every demo source has test examples; each gives 5, none crowds out the others.
    assert sources == {
        s: 5
        for s in (
            "adversarial_qa",
            "dolly",
            "dolly_context",
            "ifeval",
            "natural_questions",
            "self_instruct",
        )
    }
    assert _test_examples(con, tests) == ids  # seeded: the same subset again
    plain = _test_examples(con, tests.model_copy(update={"per_source": False}))
    assert len(plain) == 5


def test_base_is_the_embedded_model_before_anything_is_trained(db_path, capsys):
    """``--checkpoints base`` on a fresh demo database: the embedded SmolLM2, registered
    then, listed by ``model list`` with the id evaluate accepts."""
    from reset_core.cli import main
    from reset_core.cli.evaluation import resolve_checkpoints
    from reset_core.models import default_model_path
    from reset_core.store import connect

    assert main(["--db", str(db_path), "model", "list"]) == 0
    assert "no models registered yet" in capsys.readouterr().out
    con = connect(db_path)
    [base] = resolve_checkpoints(con, ["base"])
    assert base == model_id_for(str(default_model_path()))
    with pytest.raises(ValueError, match="'mtl': no such checkpoint yet"):
        resolve_checkpoints(con, ["mtl"])
    con.close()
    assert main(["--db", str(db_path), "model", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(base) and "SmolLM2-135M-Instruct" in out and "[base]" in out
