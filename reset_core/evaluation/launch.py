"""Create, advance and run evaluations: ordinary sampling and judging jobs, frozen inputs.

:func:`create_evaluation` freezes what the checkpoints are compared on (the test set
as example ids, the decoding setting, the judge panel with each judge's spec, rubric
text included). :func:`advance_evaluation` is a step of a small state machine the
page polls and the CLI loops over: it syncs the evaluation's jobs and, when none
runs, starts the next missing work: one sampling job per checkpoint lacking answers
(one at a time), then one judging job for every verdict the frozen judges still owe.
Candidates and judgments are keyed, so a killed worker or a crashed app loses at
most a shard, and the next step makes only what is missing.

>>> import tempfile
>>> from pathlib import Path
>>> from reset_core.ingest.demo import load_demo
>>> from reset_core.store import connect
>>> from reset_core.training.launch import ensure_model
>>> tmp = tempfile.TemporaryDirectory()
>>> db = Path(tmp.name) / "studio.duckdb"
>>> con = connect(db)
>>> _ = load_demo(con)
>>> base = ensure_model(con, "data/models/smollm2-135m-instruct")
>>> cfg = EvalConfig(checkpoints=[base], tests={"count": 4})
>>> eid = create_evaluation(con, db, cfg, check=False)
>>> p = advance_evaluation(con, db, eid, launch=False)
>>> p.status, p.answers_total, len(p.running_jobs)
('sampling', 4, 1)
>>> con.close(); tmp.cleanup()
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from reset_core import jobs
from reset_core.aspects import ASPECTS
from reset_core.evaluation import queries
from reset_core.evaluation.config import EvalConfig, TestSet
from reset_core.paths import jobs_dir
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.settings import DecodingSetting
from reset_core.store import insert_arrow, one

#: Jobs of one kind an evaluation starts for the same work (per checkpoint for
#: sampling) since it was last started or resumed: the first try and two retries.
#: A verdict still missing after that (its judge failed three times) is reported as
#: missing and the evaluation finishes; a checkpoint still lacking answers fails it.
MAX_ATTEMPTS = 3

FINISHED = ("done", "failed")
#: Items per judging batch (one shard each): the most a killed judging worker loses.
JUDGE_BATCH_SIZE = 256


@dataclass
class EvalProgress:
    """Where an evaluation stands: what the page shows and the CLI prints."""

    evaluation_id: str
    status: str  # planned | sampling | judging | done | failed
    stage: str | None  # the stage of the work in flight or next: sample | judge | None
    answers_done: int
    answers_total: int
    verdicts_done: int
    verdicts_total: int
    running_jobs: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def describe(self) -> str:
        """One line: status, answers and verdicts so far, and what happens.

        >>> EvalProgress("eval-1", "judging", "judge", 4, 4, 10, 24, ["judge-1"], "judging").describe()
        'eval-1 judging · answers 4/4 · verdicts 10/24 · judging'
        """
        return (
            f"{self.evaluation_id} {self.status} · answers {self.answers_done}/"
            f"{self.answers_total} · verdicts {self.verdicts_done}/{self.verdicts_total}"
            + (f" · {self.message}" if self.message else "")
        )


# --------------------------------------------------------------------------- freezing


def _stored_judge_specs(con) -> dict[str, dict]:
    return {
        judge_id: json.loads(config) if isinstance(config, str) else config
        for judge_id, config in con.execute(
            "SELECT judge_id, config FROM judges WHERE config IS NOT NULL"
        ).fetchall()
    }


def freeze_panel(con, panel: str) -> dict:
    """The judges an evaluation scores with, frozen: ``{"panel", "judges", "specs"}``.

    ``judges`` maps each aspect to judge ids; ``specs`` each judge id to the spec that
    rebuilds it (an LLM judge's spec carries its rubric text, so its id, which hashes
    the rubric, names exactly that version). The default panel is the offline metric
    judges plus every LLM judge with valid verdicts on the seen split (placeholders
    excepted); a saved panel uses exactly the judges it names, and the default's for
    an aspect it leaves open, as :func:`reset_core.scoring.panels.resolve_panel` does.
    Raises ``ValueError`` naming the panel or judge that cannot be frozen.

    >>> from reset_core.store import connect
    >>> frozen = freeze_panel(connect(":memory:"), "default")
    >>> frozen["judges"]["task"]
    ['metric:rouge_l:v1', 'metric:token_f1:v1']
    """
    from reset_core.judging.launch import offline_specs
    from reset_core.judging.worker import build_judge
    from reset_core.scoring import queries as scoring_queries
    from reset_core.scoring.panels import get_panel

    chosen = get_panel(con, panel)  # ValueError "panel: no saved panel ..." when unknown
    placeholders = scoring_queries.placeholder_judges(con)
    stored = _stored_judge_specs(con)
    offline = {build_judge(s).judge_id: s for s in offline_specs()}
    specs: dict[str, dict] = {}

    def usable(judge_id: str) -> bool:
        return chosen.include_placeholders or judge_id not in placeholders

    # What an aspect the panel leaves open gets: the offline judges, and LLM judges
    # people have already trusted on seen data.
    default: dict[str, list[str]] = {a: [] for a in ASPECTS}
    for judge_id, spec in offline.items():
        for a in build_judge(spec).aspects:
            default[a].append(judge_id)
    for a, ids in scoring_queries.judges_with_verdicts(con, "seen").items():
        for judge_id in ids:
            spec = stored.get(judge_id)
            if spec and spec.get("type") in ("llm", "local") and usable(judge_id):
                default[a].append(judge_id)
    judges: dict[str, list[str]] = {}
    for a in ASPECTS:
        if a not in chosen.judges:
            judges[a] = default[a]
            continue
        judges[a] = []
        for judge_id in chosen.judges[a]:
            spec = stored.get(judge_id) or offline.get(judge_id)
            if spec is None:
                raise ValueError(
                    f"panel: {chosen.name!r} names judge {judge_id!r} for {a}, but no spec of "
                    "it is recorded here (it never judged in this database)"
                )
            if usable(judge_id):
                judges[a].append(judge_id)
    for a, ids in judges.items():
        if not ids:
            raise ValueError(
                f"panel: {chosen.name!r} has no usable judge for {a} "
                "(placeholder verdicts are left out unless the panel includes them)"
            )
        for judge_id in ids:
            spec = stored.get(judge_id) or offline[judge_id]
            built = build_judge(spec).judge_id
            if built != judge_id:  # the spec must rebuild this very judge, or answers
                raise ValueError(  # would be judged by another one
                    f"panel: judge {judge_id!r}'s recorded spec now builds {built!r}"
                )
            specs[judge_id] = spec
    return {"panel": chosen.model_dump(mode="json"), "judges": judges, "specs": specs}


def checkpoint_spec(
    con, model_id: str, engine: str = "transformers", batch_size: int = 16
) -> tuple[ModelSpec, str]:
    """How a registered model answers: its :class:`ModelSpec`, and its label.

    Local weights run on ``engine`` from the stored path (+ adapter); a model sampling
    registered from an endpoint runs as it was sampled. Raises ``ValueError`` naming
    the checkpoint when it is unknown or has no weights to run.
    """
    from reset_core.training.queries import model_label

    row = one(
        con,
        "SELECT path, revision, adapter_path, config FROM models WHERE model_id = ?",
        [model_id],
    )
    if row is None:
        known = [r[0] for r in con.execute("SELECT model_id FROM models ORDER BY 1").fetchall()]
        raise ValueError(
            f"checkpoints: unknown model id {model_id!r} (registered: "
            f"{', '.join(known[:10]) or 'none'}{' ...' if len(known) > 10 else ''})"
        )
    path, revision, adapter, config = row
    config = json.loads(config) if isinstance(config, str) else (config or {})
    label = model_label(con, model_id)
    if config.get("engine") == "openai":
        return ModelSpec(**{**config, "name": label}), label
    if not path:
        raise ValueError(f"checkpoints: {label} ({model_id}) has no weights path to run")
    spec = ModelSpec(
        engine=engine,
        model=path,
        revision=revision,
        adapter=adapter,
        name=label,
        batch_size=batch_size,
    )
    return spec, label


def _test_examples(con, tests: TestSet) -> list[str]:
    """The test set's example ids: a seeded subset of the matches, or one per source."""
    from reset_core.evaluation.queries import matching_sources
    from reset_core.sampling.launch import select_examples

    fields = tests.model_dump(include={"kinds", "sources", "splits", "count", "seed"})
    if not tests.per_source:
        return sorted(e[0] for e in select_examples(con, SampleSelection(**fields)))
    ids: list[str] = []
    for source in matching_sources(con, tests.kinds, tests.sources, tests.splits):
        selection = SampleSelection(**{**fields, "sources": [source]})
        ids += [e[0] for e in select_examples(con, selection)]
    return sorted(ids)


def test_set_size(con, tests: TestSet) -> dict:
    """How many examples a test set matches now, in all and per split, kind and source.

    The same resolution as :func:`create_evaluation` (count, seed and ``per_source``
    applied), so a page or a dry run can say "0 examples" before Start instead of after.
    Keys: ``total`` and ``split``, ``kind``, ``source`` (value -> count, by value).

    >>> from reset_core.ingest.demo import load_demo
    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = load_demo(con)
    >>> n = test_set_size(con, TestSet(count=10))
    >>> n["total"], sum(n["split"].values()), sum(n["kind"].values())
    (10, 10, 10)
    >>> test_set_size(con, TestSet(sources=["nowhere"]))
    {'total': 0, 'split': {}, 'kind': {}, 'source': {}}
    """
    ids = _test_examples(con, tests)
    out: dict = {"total": len(ids)}
    for col in ("split", "kind", "source"):
        rows = con.execute(
            f"SELECT {col}, count(*) FROM examples WHERE example_id IN (SELECT unnest(?)) "
            f"GROUP BY {col} ORDER BY {col}",
            [ids],
        ).fetchall()
        out[col] = {r[0]: r[1] for r in rows}
    return out


# Not a pytest test despite its name (a test module importing it would collect it).
test_set_size.__test__ = False


def describe_test_set_size(size: dict) -> str:
    """One line for :func:`test_set_size`: the total, then per split and per kind.

    >>> describe_test_set_size({"total": 48, "split": {"test_seen": 20, "test_unseen": 28},
    ...     "kind": {"context": 18, "instruction": 30}, "source": {"a": 48}})
    '48 examples: test_seen 20, test_unseen 28 · context 18, instruction 30 · 1 source'
    >>> describe_test_set_size({"total": 0, "split": {}, "kind": {}, "source": {}})
    '0 examples'
    """
    n = size["total"]
    head = f"{n:,} example{'s' * (n != 1)}"
    if not n:
        return head
    parts = [", ".join(f"{k} {v:,}" for k, v in size[col].items()) for col in ("split", "kind")]
    k = len(size["source"])
    sources = (
        ", ".join(f"{s} {v:,}" for s, v in size["source"].items())
        if 1 < k <= 4
        else f"{k} source{'s' * (k != 1)}"
    )
    return f"{head}: " + " · ".join([*parts, sources])


def _new_id() -> str:
    return f"eval-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def create_evaluation(
    con,
    db_path: str | Path,
    cfg: EvalConfig,
    *,
    experiment_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    check: bool = True,
) -> str:
    """Freeze an evaluation (test set, setting, panel, checkpoints); return its id.

    Nothing runs yet (:func:`advance_evaluation` starts the jobs). ``labels`` names
    checkpoints in tables and charts (default: :func:`model_labels`); ``check=False``
    skips checking that each checkpoint's weights can be loaded (a doctest without
    the model). Raises ``ValueError`` naming the field: an unknown checkpoint, an empty
    test set, an unknown panel.
    """
    from reset_core.sampling.launch import check_model

    labels = dict(labels or {})
    unknown_labels = set(labels) - set(cfg.checkpoints)
    if unknown_labels:
        raise ValueError(f"labels: {sorted(unknown_labels)} are not checkpoints of this evaluation")
    models: dict[str, dict] = {}
    for model_id in cfg.checkpoints:
        spec, label = checkpoint_spec(con, model_id, cfg.engine, cfg.batch_size)
        if check:
            try:
                check_model(spec)
            except ValueError as e:
                raise ValueError(f"checkpoints: {label} ({model_id}): {e}") from e
        labels.setdefault(model_id, label)
        # The answers are stored under the checkpoint's id. Sampling would compute the
        # id from the weights' path as it reads here; a model registered where its
        # path read differently (another working folder, moved weights) has another
        # one, so the stored id is kept and handed to the sampling job.
        models[model_id] = {"spec": spec.model_dump(mode="json"), "computed_id": spec.model_id}
    example_ids = _test_examples(con, cfg.tests)
    if not example_ids:
        t = cfg.tests
        raise ValueError(
            "tests: no examples match (splits="
            f"{','.join(t.splits)}, kinds={','.join(t.kinds) or 'any'}, "
            f"sources={','.join(t.sources) or 'any'}); import or split a test set first"
        )
    frozen = {
        **freeze_panel(con, cfg.panel),
        "decoding": cfg.decoding.model_dump(mode="json"),
        "setting_id": cfg.decoding.setting_id,
        "tests": cfg.tests.model_dump(mode="json"),
        "models": models,
    }
    evaluation_id = _new_id()
    name = cfg.name or " vs ".join(labels[m] for m in cfg.checkpoints)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO evaluations (evaluation_id, name, config, frozen, status, experiment_id, "
            "started_at) VALUES (?, ?, ?, ?, 'planned', ?, current_timestamp)",
            [
                evaluation_id,
                name[:200],
                cfg.model_dump_json(),
                json.dumps(frozen),
                experiment_id,
            ],
        )
        insert_arrow(
            con,
            "evaluation_examples",
            pa.table(
                {"evaluation_id": [evaluation_id] * len(example_ids), "example_id": example_ids}
            ),
        )
        insert_arrow(
            con,
            "evaluation_checkpoints",
            pa.table(
                {
                    "evaluation_id": [evaluation_id] * len(cfg.checkpoints),
                    "model_id": list(cfg.checkpoints),
                    "position": list(range(len(cfg.checkpoints))),
                    "label": [labels[m] for m in cfg.checkpoints],
                }
            ),
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return evaluation_id


# --------------------------------------------------------------------------- advancing


def _judge_aspects(frozen: dict) -> dict[str, list[str]]:
    """Judge id -> the aspects the frozen panel trusts it on."""
    out: dict[str, list[str]] = {}
    for aspect, ids in frozen["judges"].items():
        for judge_id in ids:
            out.setdefault(judge_id, []).append(aspect)
    return out


def _judge_plan(frozen: dict):
    from reset_core.judging.launch import JudgePlan

    # "needed": task everywhere, instruction on open-ended, faithfulness on context
    # examples; the splits are the test set's own.
    return JudgePlan(aspects="needed", splits=frozen["tests"]["splits"])


def _verdict_counts(con, frozen: dict, answers: Sequence[str]) -> tuple[int, int]:
    """(verdicts owed in all, of which still without a valid verdict) over ``answers``."""
    from reset_core.judging.launch import count_plan

    if not answers:
        return 0, 0
    specs, plan, only = list(frozen["specs"].values()), _judge_plan(frozen), _judge_aspects(frozen)
    total = count_plan(
        con, specs, plan.model_copy(update={"redo": True}), candidates=answers, judge_aspects=only
    )
    owed = count_plan(con, specs, plan, candidates=answers, judge_aspects=only)
    return sum(total.values()), sum(owed.values())


def _sync(con, job_id: str, stage: str) -> dict[str, Any]:
    from reset_core.judging.launch import sync_judge_job
    from reset_core.sampling.launch import sync_sampling

    return sync_sampling(con, job_id) if stage == "sample" else sync_judge_job(con, job_id)


def _attempts(con, evaluation_id: str, stage: str, model_id: str | None = None) -> list[dict]:
    """This stage's jobs (for this checkpoint) since the evaluation was last started."""
    started = one(
        con, "SELECT started_at FROM evaluations WHERE evaluation_id = ?", [evaluation_id]
    )[0]
    return [
        j
        for j in queries.evaluation_jobs(con, evaluation_id)
        if j["stage"] == stage
        and (model_id is None or j["model_id"] == model_id)
        and (started is None or j["created_at"] >= started)
    ]


def _set_status(con, evaluation_id: str, status: str, error: str | None = None) -> None:
    con.execute(
        "UPDATE evaluations SET status = ?, error = ?, finished_at = CASE WHEN ? IN "
        "('done', 'failed') THEN current_timestamp ELSE NULL END WHERE evaluation_id = ?",
        [status, error, status, evaluation_id],
    )


def _record_job(con, evaluation_id: str, job_id: str, stage: str, model_id: str | None) -> None:
    con.execute(
        "INSERT INTO evaluation_jobs (evaluation_id, job_id, stage, model_id) VALUES (?, ?, ?, ?)",
        [evaluation_id, job_id, stage, model_id],
    )


def advance_evaluation(
    con, db_path: str | Path, evaluation_id: str, *, launch: bool = True
) -> EvalProgress:
    """One step: sync the evaluation's jobs; if none runs, start the next missing work.

    Order: a sampling job for the first checkpoint (in position order) lacking answers,
    then, once every checkpoint has answered, one judging job for every verdict the
    frozen judges still owe on the answers; nothing missing marks it done. Resumable
    by construction: candidates and verdicts are keyed, so a step after a killed worker
    plans only what is missing. A finished evaluation (done, or failed: cancelled or
    out of attempts) is left as it is; :func:`resume_evaluation` restarts a failed one.
    ``launch=False`` writes the job without starting a worker (``run_evaluation`` runs
    it in this process).
    """
    ev = queries.get_evaluation(con, evaluation_id)
    if ev["status"] in FINISHED:
        return progress(con, evaluation_id)
    running = []
    for job in queries.evaluation_jobs(con, evaluation_id):
        if job["status"] == "queued" and launch:
            jobs.launch(con, job["job_id"])  # written by a headless step, never run
        active = job["status"] in jobs.ACTIVE
        if active and _sync(con, job["job_id"], job["stage"])["status"] in jobs.ACTIVE:
            running.append(job)
    if running:
        stage = running[0]["stage"]
        _set_status(con, evaluation_id, "sampling" if stage == "sample" else "judging")
        return progress(con, evaluation_id, running=[j["job_id"] for j in running])

    frozen = ev["frozen"]
    n_examples = ev["n_examples"]
    answered = queries.answer_counts(con, evaluation_id)
    for ck in ev["checkpoints"]:
        model_id = ck["model_id"]
        if answered.get(model_id, 0) >= n_examples:
            continue
        tries = _attempts(con, evaluation_id, "sample", model_id)
        if len(tries) >= MAX_ATTEMPTS:
            last = tries[-1]
            error = (
                f"{ck['label']} ({model_id}) still lacks {n_examples - answered.get(model_id, 0)} "
                f"of {n_examples} answers after {len(tries)} sampling jobs; last "
                f"{last['job_id']} {last['status']}: {last['error'] or 'no error recorded'}"
            )
            _set_status(con, evaluation_id, "failed", error)
            return progress(con, evaluation_id, message=error)
        job_id = _start_sampling(con, db_path, ev, model_id, launch)
        if job_id is None:  # nothing left to ask for, yet answers lack: examples are gone
            error = (
                f"{ck['label']} ({model_id}) lacks answers to examples that are no longer in "
                "the database; the frozen test set cannot be answered in full"
            )
            _set_status(con, evaluation_id, "failed", error)
            return progress(con, evaluation_id, message=error)
        _set_status(con, evaluation_id, "sampling")
        return progress(
            con, evaluation_id, running=[job_id], message=f"sampling answers of {ck['label']}"
        )

    answers = queries.answer_ids(con, evaluation_id)
    total, owed = _verdict_counts(con, frozen, answers)
    if owed:
        tries = _attempts(con, evaluation_id, "judge")
        if len(tries) >= MAX_ATTEMPTS and tries[-1]["status"] != "done":
            # The last judging worker died (kill -9, out of memory, a crash) before it
            # finished: the verdicts are missing because nobody asked, not because the
            # judges failed. Finishing the evaluation here would keep them missing for
            # good (a done evaluation is never resumed), so fail it instead, resumable
            # like a checkpoint out of sampling attempts. Found by the crash suite.
            last = tries[-1]
            error = (
                f"{owed} of {total} verdicts missing after {len(tries)} judging jobs; last "
                f"{last['job_id']} {last['status']}: {last['error'] or 'no error recorded'}"
            )
            _set_status(con, evaluation_id, "failed", error)
            return progress(con, evaluation_id, message=error)
        if len(tries) >= MAX_ATTEMPTS:
            message = (
                f"{owed} of {total} verdicts missing: their judges failed {len(tries)} times "
                "(failed verdicts keep their error; no score is made up)"
            )
            _set_status(con, evaluation_id, "done", message)
            return progress(con, evaluation_id, message=message)
        from reset_core.judging.launch import create_judge_job

        job_id = create_judge_job(
            con,
            db_path,
            list(frozen["specs"].values()),
            batch_size=JUDGE_BATCH_SIZE,
            plan=_judge_plan(frozen),
            candidates=answers,
            judge_aspects=_judge_aspects(frozen),
        )
        _record_job(con, evaluation_id, job_id, "judge", None)
        if launch:
            jobs.launch(con, job_id)
        _set_status(con, evaluation_id, "judging")
        return progress(con, evaluation_id, running=[job_id], message=f"judging {owed} verdicts")
    _set_status(con, evaluation_id, "done")
    return progress(con, evaluation_id, message="every answer and verdict is in")


def _start_sampling(con, db_path, ev: dict, model_id: str, launch: bool) -> str | None:
    """Start the sampling job of a checkpoint's missing answers (None: none to make)."""
    from reset_core.sampling.launch import SamplingRejected, plan_sampling, start_sampling

    frozen = ev["frozen"]
    spec = ModelSpec(**frozen["models"][model_id]["spec"])
    tests = TestSet(**frozen["tests"])
    selection = SampleSelection(
        kinds=tests.kinds, sources=tests.sources, splits=tests.splits, count=tests.count
    )
    try:
        plan = plan_sampling(
            con,
            selection,
            spec,
            [DecodingSetting(**frozen["decoding"])],
            check=False,  # checked when the evaluation was created; a failure fails the job
            example_ids=queries.example_ids(con, ev["evaluation_id"]),
            model_id=model_id,
        )
    except SamplingRejected:  # none of its examples is left
        return None
    if plan.n_new == 0:
        return None
    job_id = start_sampling(con, plan, jobs_dir(db_path), launch=False)
    _record_job(con, ev["evaluation_id"], job_id, "sample", model_id)
    if launch:
        jobs.launch(con, job_id)
    return job_id


def progress(
    con, evaluation_id: str, running: Sequence[str] = (), message: str | None = None
) -> EvalProgress:
    """Where an evaluation stands, counted in the database (no job is synced)."""
    ev = queries.get_evaluation(con, evaluation_id)
    answers = queries.answer_ids(con, evaluation_id)
    total, owed = _verdict_counts(con, ev["frozen"], answers)
    status = ev["status"]
    stage = {"sampling": "sample", "judging": "judge"}.get(status)
    if message is None:
        message = ev["error"] or {"done": "finished", "planned": "not started"}.get(status, "")
    return EvalProgress(
        evaluation_id=evaluation_id,
        status=status,
        stage=stage,
        answers_done=len(answers),
        answers_total=ev["n_examples"] * len(ev["checkpoints"]),
        verdicts_done=total - owed,
        verdicts_total=total,
        running_jobs=list(running),
        message=message,
    )


def run_evaluation(
    con,
    db_path: str | Path,
    evaluation_id: str,
    on_progress: Callable[[EvalProgress], None] | None = None,
    poll_s: float = 1.0,
    run: Callable[[Any, str], int] | None = None,
) -> EvalProgress:
    """Run an evaluation to the end in this process (the CLI's headless path).

    Each step writes its job without launching it and runs the same worker here
    (:func:`reset_core.jobs.run_here`, or ``run(con, job_id)``, which wraps it: the
    CLI's progress bar), then syncs. A job another process launched (the app) is
    waited for. ``on_progress`` gets each step's progress.
    """
    run = run or jobs.run_here
    while True:
        p = advance_evaluation(con, db_path, evaluation_id, launch=False)
        if on_progress:
            on_progress(p)
        if p.finished:
            return p
        queued = [
            j
            for j in queries.evaluation_jobs(con, evaluation_id)
            if j["job_id"] in p.running_jobs and j["status"] == "queued"
        ]
        if not queued:
            time.sleep(poll_s)  # launched elsewhere: wait for its worker
            continue
        for job in queued:
            # This process is the worker: a later sync that finds it gone (killed) marks
            # the job failed, and the next step plans what is missing.
            con.execute("UPDATE jobs SET pid = ? WHERE job_id = ?", [os.getpid(), job["job_id"]])
            code = run(con, job["job_id"])
            done = _sync(con, job["job_id"], job["stage"])
            # The worker records Ctrl-C as its failure and returns; here it must stop
            # the run, not start the next attempt.
            if code and (done.get("error") or "").startswith("KeyboardInterrupt"):
                raise KeyboardInterrupt


def resume_evaluation(con, evaluation_id: str) -> None:
    """Let a failed (cancelled, or out of attempts) evaluation run again, with fresh
    attempts; what it made is kept. A done or running evaluation is left as it is."""
    if queries.get_evaluation(con, evaluation_id)["status"] == "failed":
        con.execute(
            "UPDATE evaluations SET status = 'planned', error = NULL, finished_at = NULL, "
            "started_at = current_timestamp WHERE evaluation_id = ?",
            [evaluation_id],
        )


def cancel_evaluation(con, evaluation_id: str) -> None:
    """Stop an evaluation: its running jobs stop after their current batch, and it is
    marked failed ("cancelled"); what finished is kept (:func:`resume_evaluation`)."""
    queries.get_evaluation(con, evaluation_id)  # ValueError when unknown
    for job in queries.evaluation_jobs(con, evaluation_id):
        if job["status"] in jobs.ACTIVE:
            jobs.cancel(con, job["job_id"])
    _set_status(con, evaluation_id, "failed", "cancelled")


def checkpoint_summary(con, evaluation_id: str) -> list[dict[str, Any]]:
    """Per checkpoint, in order: answers and verdicts stored, owed and missing.

    ``verdicts_failed`` counts items whose every verdict so far is a failure (NULL
    score); ``verdicts_missing`` every item still without a valid verdict.
    """
    ev = queries.get_evaluation(con, evaluation_id)
    sql, params = queries.answers_sql(con, evaluation_id)
    by_model: dict[str, list[str]] = {}
    for candidate_id, model_id, _ in con.execute(sql, params).fetchall():
        by_model.setdefault(model_id, []).append(candidate_id)
    counts = queries.verdict_counts(con, evaluation_id)
    out = []
    for ck in ev["checkpoints"]:
        answers = by_model.get(ck["model_id"], [])
        total, owed = _verdict_counts(con, ev["frozen"], answers)
        out.append(
            {
                **ck,
                "answers": len(answers),
                "answers_total": ev["n_examples"],
                "verdicts": total - owed,
                "verdicts_total": total,
                "verdicts_failed": counts.get(ck["model_id"], {}).get("failed", 0),
                "verdicts_missing": owed,
            }
        )
    return out
