"""Judging as a worker job: plan the items in the app, judge them in a worker process.

App side (owns the database): :func:`plan_items` picks the (candidate, aspect, judge)
triples still without a valid verdict, :func:`estimate_job` is the dry run,
:func:`create_judge_job` writes the job folder, :func:`sync_judge_job` ingests shards.
Worker side (never opens the database): :func:`run_judge_job` judges in batches,
writes one Parquet shard per batch, skips keys already written (resume), stops
between batches on cancel, and stops cleanly at the budget cap.

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

from reset_core.judging.base import ASPECTS, Judge, JudgeItem, judgment_id, judgments_table
from reset_core.judging.engine import JudgeCache, Ledger
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig, LocalLLMJudge
from reset_core.judging.metric_judges import DEFAULT_OFFLINE, METRIC_JUDGES
from reset_core.judging.rubrics import Rubric, latest_rubric

ENTRY = "reset_core.judging.worker:run_judge_job"


def cache_path(db_path: str | Path) -> Path:
    """The LLM verdict cache lives beside the database (deleting it only costs requests)."""
    return Path(db_path).resolve().parent / "judge_cache.sqlite"


def _rubrics(spec: dict) -> dict[str, Rubric] | None:
    r = spec.get("rubrics")
    return {a: Rubric(**d) for a, d in r.items()} if r else None


def _metric(spec: dict, cache: Any) -> Judge:
    if spec["name"] not in METRIC_JUDGES:
        raise ValueError(f"unknown metric judge {spec['name']!r}; have {sorted(METRIC_JUDGES)}")
    return METRIC_JUDGES[spec["name"]]()


def _llm(spec: dict, cache: Any) -> Judge:
    return LLMJudge(LLMJudgeConfig(**spec.get("config", {})), _rubrics(spec), cache=cache)


def _local(spec: dict, cache: Any) -> Judge:
    return LocalLLMJudge(
        LLMJudgeConfig(**spec.get("config", {})), _rubrics(spec), model_path=spec.get("model_path")
    )


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


def offline_specs() -> list[dict]:
    """The demo's no-API panel: one metric judge per aspect."""
    return [{"type": "metric", "name": n} for n in DEFAULT_OFFLINE]


def llm_spec(con, config: LLMJudgeConfig, local: bool = False, model_path: str | None = None):
    """An LLM judge spec with the database's latest rubric of every aspect frozen into it."""
    spec = {
        "type": "local" if local else "llm",
        "config": config.model_dump(),
        "rubrics": {a: latest_rubric(con, a).to_dict() for a in ASPECTS},
    }
    if model_path:
        spec["model_path"] = model_path
    return spec


def register_judges(con, specs: list[dict]) -> list[Judge]:
    """Build the judges and record them in ``judges`` (id, name, kind, what it measures)."""
    judges = [build_judge(s) for s in specs]
    rows = {
        "judge_id": [j.judge_id for j in judges],
        "name": [j.name for j in judges],
        "kind": [j.kind for j in judges],
        "model": [getattr(getattr(j, "config", None), "model", None) for j in judges],
        "description": [j.description for j in judges],
        "config": [json.dumps(s) for s in specs],
    }
    from reset_core.store import insert_arrow

    insert_arrow(con, "judges", pa.table(rows))
    return judges


def plan_items(
    con,
    specs: list[dict],
    *,
    splits: tuple[str, ...] = ("seen",),
    candidate_job: str | None = None,
    aspects: str = "needed",
    redo: bool = False,
    limit: int | None = None,
) -> pa.Table:
    """The work of a judging run, one row per (judge, candidate, aspect), as Arrow.

    ``aspects="needed"``: the aspects the RESET formula uses for each example's kind
    (task always; instruction for open-ended, faithfulness for context examples);
    ``"all"``: every aspect each judge can score. Triples that already have a valid
    verdict from that judge are left out unless ``redo``.
    """
    if aspects not in ("needed", "all"):
        raise ValueError(f"aspects must be 'needed' or 'all', got {aspects!r}")
    judges = [build_judge(s) for s in specs]
    jrows = pa.table(
        {
            "judge_id": [j.judge_id for j in judges for a in j.aspects],
            "aspect": [a for j in judges for a in j.aspects],
        }
    )
    con.register("_judge_aspects", jrows)
    try:
        where, params = ["e.split IN (SELECT unnest(?))"], [list(splits)]
        if candidate_job:
            where.append("c.job_id = ?")
            params.append(candidate_job)
        needed = (
            "(ja.aspect = 'task' OR (ja.aspect = 'instruction' AND e.kind = 'instruction') "
            "OR (ja.aspect = 'faithfulness' AND e.kind = 'context'))"
        )
        if aspects == "needed":
            where.append(needed)
        if not redo:
            where.append(
                "NOT EXISTS (SELECT 1 FROM judgments j WHERE j.candidate_id = c.candidate_id "
                "AND j.judge_id = ja.judge_id AND j.aspect = ja.aspect AND j.score IS NOT NULL)"
            )
        sql = (
            "SELECT ja.judge_id, c.candidate_id, c.example_id, ja.aspect, e.instruction, "
            "e.context, e.reference, e.kind, c.text, c.finish_reason "
            "FROM candidates c JOIN examples e USING (example_id) CROSS JOIN _judge_aspects ja "
            f"WHERE {' AND '.join(where)} ORDER BY ja.judge_id, c.example_id, c.candidate_id, ja.aspect"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister("_judge_aspects")


def items_from_table(t: pa.Table) -> list[JudgeItem]:
    cols = t.to_pydict()
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
        )
        for i in range(t.num_rows)
    ]


def estimate_job(specs: list[dict], items: pa.Table, cache: str | Path | None) -> dict[str, Any]:
    """Dry run per judge: requests, cache hits, tokens and cost; nothing is sent.

    Metric judges cost nothing and send nothing; they are listed with zeros.
    """
    out = {}
    for spec in specs:
        judge = build_judge(spec, cache=cache)
        mine = items.filter(pa.compute.equal(items["judge_id"], judge.judge_id))
        if isinstance(judge, LLMJudge):
            out[judge.judge_id] = vars(judge.estimate(items_from_table(mine)))
        else:
            n = mine.num_rows
            out[judge.judge_id] = {
                "n_items": n,
                "n_requests": 0,
                "n_cached": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "cost_usd_max": 0.0,
            }
    return out


def create_judge_job(
    con,
    db_path: str | Path,
    specs: list[dict],
    items: pa.Table | None = None,
    batch_size: int = 256,
    **plan: Any,
) -> str:
    """Register the judges, plan the items (unless given) and write the job; not launched."""
    from reset_core.jobs import create_job
    from reset_core.paths import jobs_dir

    register_judges(con, specs)
    if items is None:
        items = plan_items(con, specs, **plan)
    if items.num_rows == 0:
        raise ValueError(
            "nothing to judge: every candidate already has a verdict from these judges"
        )
    config = {
        "judges": specs,
        "cache_path": str(cache_path(db_path)),
        "batch_size": batch_size,
        "plan": {k: v for k, v in plan.items() if v is not None},
    }
    return create_job(con, jobs_dir(db_path), "judge", ENTRY, config, items)


def sync_judge_job(con, job_id: str) -> dict[str, Any]:
    """Ingest a judging job's finished shards and mirror its progress (idempotent)."""
    from reset_core.jobs import sync_job
    from reset_core.store import ingest_shards

    return sync_job(con, job_id, ingest=lambda d: ingest_shards(con, "judgments", d))


def run_judge_job(ctx) -> None:
    """Worker entry: judge the job's input in shards; resume, cancel and budget aware."""
    from reset_core.jobs import JobStopped

    job_id = ctx.job_dir.name
    table = ctx.read_input()
    cfg = ctx.config
    done = ctx.done_keys("judgment_id")
    ids = [
        judgment_id(job_id, j, c, a)
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
    for spec in cfg["judges"]:
        judge = build_judge(spec, cache=cfg.get("cache_path"))
        mine = todo.filter(pa.compute.equal(todo["judge_id"], judge.judge_id))
        ledger: Ledger | None = getattr(judge, "ledger", None)
        if ledger is not None:
            ledger.cost_usd = spent.get(judge.judge_id, 0.0)  # a resume counts what was spent
        # An in-process model judges a few items a second on a CPU: smaller shards so
        # progress, cancel and resume work at that pace too.
        step = min(batch, 16) if spec.get("type") == "local" else batch
        for start in range(0, mine.num_rows, step):
            if ctx.cancelled():
                return
            items = items_from_table(mine.slice(start, step))
            judgments = judge.judge(items)
            ctx.write(judgments_table(judgments, job_id))
            if ledger is not None:
                ledgers[judge.judge_id] = ledger.summary()
                ctx.extra["ledger"] = ledgers
                if ledger.stopped:
                    ctx._report("running")
                    raise JobStopped(
                        f"budget cap of ${ledger.budget_usd} reached for {judge.judge_id} "
                        f"after ${ledger.cost_usd:.4f}; relaunch with a higher cap to resume"
                    )


def _spent_by_judge(shard_dir: Path) -> dict[str, float]:
    files = sorted(shard_dir.glob("*.parquet"))
    if not files:
        return {}
    t = pq.read_table(files, columns=["judge_id", "cost_usd"]).to_pandas()
    return t.groupby("judge_id")["cost_usd"].sum().to_dict()
