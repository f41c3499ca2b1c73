"""The judging worker: runs in its own process and never opens the database.

:func:`run_judge_job` judges the job's input (written by
:mod:`reset_core.judging.launch`) in batches, writes one Parquet shard per batch,
skips keys already written (resume), stops between batches on cancel, and stops
cleanly at the budget cap. :func:`build_judge` turns a judge spec into a judge.

>>> spec = {"type": "metric", "name": "rouge_l"}
>>> build_judge(spec).judge_id
'metric:rouge_l:v1'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reset_core.judging.base import Judge, JudgeItem, judgment_id, judgments_table
from reset_core.judging.engine import JudgeCache, Ledger
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig, LocalLLMJudge
from reset_core.judging.metric_judges import METRIC_JUDGES
from reset_core.judging.rubrics import Rubric

ENTRY = "reset_core.judging.worker:run_judge_job"


def _rubrics(spec: dict) -> dict[str, Rubric] | None:
    r = spec.get("rubrics")
    return {a: Rubric(**d) for a, d in r.items()} if r else None


def _metric(spec: dict, cache: Any) -> Judge:
    if spec["name"] not in METRIC_JUDGES:
        raise ValueError(f"unknown metric judge {spec['name']!r}; have {sorted(METRIC_JUDGES)}")
    return METRIC_JUDGES[spec["name"]]()


def _config(spec: dict) -> LLMJudgeConfig:
    # A spec written before the prompt template was versioned has no prompt_version: it
    # was made (and its jobs' items keyed) with template 1. Reading it as the current
    # template would give another judge id, and a resumed job would silently skip its
    # items; llm_spec writes the version into every new spec.
    return LLMJudgeConfig(**{"prompt_version": 1, **spec.get("config", {})})


def _llm(spec: dict, cache: Any) -> Judge:
    return LLMJudge(_config(spec), _rubrics(spec), cache=cache)


def _local(spec: dict, cache: Any) -> Judge:
    return LocalLLMJudge(_config(spec), _rubrics(spec), model_path=spec.get("model_path"))


#: Judge kinds by spec ``type``: a plain dict, one contract test covers them all.
JUDGE_TYPES = {"metric": _metric, "llm": _llm, "local": _local}


def build_judge(spec: dict, cache: JudgeCache | str | Path | None = None) -> Judge:
    """A judge from its spec: ``{"type": "metric", "name": ...}``, ``{"type": "llm",
    "config": {...LLMJudgeConfig}, "rubrics": {aspect: Rubric dict}}`` or ``"local"``."""
    if spec.get("type") not in JUDGE_TYPES:
        raise ValueError(
            f"judge type must be one of {sorted(JUDGE_TYPES)}, got {spec.get('type')!r}"
        )
    return JUDGE_TYPES[spec["type"]](spec, cache)


def items_from_table(t: pa.Table) -> list[JudgeItem]:
    cols = t.to_pydict()
    # Example metadata travels as JSON text (absent from inputs written before it did).
    metas = [json.loads(m) if m else None for m in cols.get("meta", [None] * t.num_rows)]
    return [
        JudgeItem(
            cols["example_id"][i],
            cols["candidate_id"][i],
            cols["aspect"][i],
            cols["instruction"][i],
            cols["context"][i],
            cols["reference"][i],
            cols["kind"][i],
            cols["text"][i],
            cols["finish_reason"][i],
            metas[i],
        )
        for i in range(t.num_rows)
    ]


def run_judge_job(ctx) -> None:
    """Worker entry: judge the job's input in shards; resume, cancel and budget aware."""
    from reset_core.jobs import JobStopped

    cfg = ctx.config
    # A shard folder's run (reset_core.shards) names itself and keys its verdicts without
    # the run (``judgment_id_scope``), so two machines' folders agree on every key.
    job_id = cfg.get("job_id") or ctx.job_dir.name
    scope = cfg.get("judgment_id_scope", job_id)
    table = ctx.read_input()
    done = ctx.done_keys("judgment_id")
    ids = [
        judgment_id(scope, j, c, a)
        for j, c, a in zip(
            table["judge_id"].to_pylist(),
            table["candidate_id"].to_pylist(),
            table["aspect"].to_pylist(),
            strict=True,
        )
    ]
    todo_mask = pa.array([i not in done for i in ids])
    ctx.start(table.num_rows, table.num_rows - sum(todo_mask.to_pylist()))
    todo = table.filter(todo_mask)
    spent = _spent_by_judge(ctx.shard_dir)
    batch = int(cfg.get("batch_size", 256))
    ledgers: dict[str, dict] = {}
    endpoints: dict[str, dict] = {}
    for n, spec in enumerate(cfg["judges"], 1):
        judge = build_judge(spec, cache=cfg.get("cache_path"))
        mine = todo.filter(pa.compute.equal(todo["judge_id"], judge.judge_id))
        if mine.num_rows == 0:
            continue
        ledger: Ledger | None = getattr(judge, "ledger", None)
        if ledger is not None:
            ledger.cost_usd = spent.get(judge.judge_id, 0.0)  # a resume counts what was spent
        ctx.phase(f"judge {n}/{len(cfg['judges'])}: {judge.judge_id}")
        # An in-process model judges a few items a second on a CPU: smaller shards so
        # cancel and resume work at that pace too. Progress moves per item or answered
        # request within a shard either way.
        step = min(batch, 16) if spec.get("type") == "local" else batch
        for start in range(0, mine.num_rows, step):
            if ctx.cancelled():
                return
            items = items_from_table(mine.slice(start, step))
            judgments = judge.judge(items, progress=ctx.partial)
            # Who answered travels in the progress file (the worker never opens the
            # database): the app marks the judge a placeholder when the stand-in did.
            endpoints[judge.judge_id] = endpoint_report(judge)
            ctx.extra["endpoints"] = endpoints
            ctx.write(judgments_table(judgments, job_id, id_scope=scope))
            if ledger is not None:
                ledgers[judge.judge_id] = ledger.summary()
                ctx.extra["ledger"] = ledgers
                if ledger.stopped:
                    ctx._report("running")
                    raise JobStopped(
                        f"budget cap of ${ledger.budget_usd} reached for {judge.judge_id} "
                        f"after ${ledger.cost_usd:.4f}; relaunch with a higher cap to resume"
                    )


def endpoint_report(judge: Judge) -> dict[str, Any]:
    """What a judge learnt about its endpoint in this run, for ``judges`` in the database.

    >>> endpoint_report(build_judge({"type": "metric", "name": "rouge_l"}))
    {'endpoint': 'in-process', 'placeholder': False, 'output_modes': {}}
    """
    return {
        "endpoint": getattr(judge, "endpoint_id", "in-process"),
        "placeholder": bool(getattr(judge, "placeholder", False)),
        "output_modes": dict(getattr(judge, "modes_used", {})),
    }


def _spent_by_judge(shard_dir: Path) -> dict[str, float]:
    files = sorted(shard_dir.glob("*.parquet"))
    if not files:
        return {}
    t = pq.read_table(files, columns=["judge_id", "cost_usd"]).to_pandas()
    return t.groupby("judge_id")["cost_usd"].sum().to_dict()
