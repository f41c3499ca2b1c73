"""Judging jobs, app side (owns the database): plan, estimate, start and follow them.

:func:`plan_items` picks the (candidate, aspect, judge) triples still without a valid
verdict, :func:`estimate_job` is the dry run, :func:`create_judge_job` writes the job
folder for :mod:`reset_core.judging.worker`, :func:`sync_judge_job` ingests its shards.

>>> [s["name"] for s in offline_specs()]
['rouge_l', 'instruction_proxy', 'knowledge_precision']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from reset_core import jobs
from reset_core.aspects import ASPECTS
from reset_core.judging.base import Judge
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig
from reset_core.judging.metric_judges import DEFAULT_OFFLINE
from reset_core.judging.rubrics import latest_rubric
from reset_core.judging.worker import ENTRY, build_judge, items_from_table

#: Before the first run of a judge set the estimate assumes, per judge type,
#: (judgments/s, seconds to start): the metric judges as measured on a busy shared
#: 2-core CPU (ROUGE-L and knowledge precision about 120/s once warm, the instruction
#: proxy far faster; imports and ROUGE's first call about 10 s); the local judge,
#: SmolLM2 in the worker on a CPU, a rough guess. An API judge: ``concurrency``
#: requests in flight at ``LLM_REQUEST_S`` each.
DEFAULT_JUDGE_RATES = {"metric": (100.0, 10.0), "local": (0.5, 15.0)}
LLM_REQUEST_S = 3.0


def cache_path(db_path: str | Path) -> Path:
    """The LLM verdict cache lives beside the database (deleting it only costs requests)."""
    return Path(db_path).resolve().parent / "judge_cache.sqlite"


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
        # Where its verdicts come from (part of its id); metric judges run in-process.
        "endpoint": [getattr(j, "endpoint_id", "in-process") for j in judges],
        "placeholder": [False for _ in judges],  # set once its worker meets the stand-in
    }
    from reset_core.store import insert_arrow

    insert_arrow(con, "judges", pa.table(rows))
    return judges


def plan_items(
    con,
    specs: list[dict],
    *,
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
        # RESET samples and judges the seen split.
        where, params = ["e.split = 'seen'"], []
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

    progress = sync_job(con, job_id, ingest=lambda d: ingest_shards(con, "judgments", d))
    record_endpoints(con, progress.get("endpoints") or {})
    return progress


def record_endpoints(con, endpoints: dict[str, dict]) -> None:
    """Mark the judges whose worker got answers from the local stand-in as placeholders.

    ``endpoints``: the worker's report, judge id -> {"placeholder": bool, ...}. Only
    ever sets the flag: one answer from the stand-in makes every verdict suspect.
    """
    ids = [j for j, e in endpoints.items() if e.get("placeholder")]
    if ids:
        con.execute(
            "UPDATE judges SET placeholder = true WHERE judge_id IN (SELECT unnest(?))", [ids]
        )


def _judge_set(specs: list[dict]) -> frozenset[str] | None:
    """The judge ids of a job's specs (None when one cannot be built any more)."""
    try:
        return frozenset(build_judge(s).judge_id for s in specs)
    except Exception:  # noqa: BLE001 - an old job's judge (e.g. its model gone) matches nothing
        return None


def _assumed_rate(spec: dict) -> tuple[float, float, str]:
    """(judgments/s, seconds to start, in words) assumed for one judge before any run."""
    if spec["type"] == "llm":
        cfg = LLMJudgeConfig(**spec.get("config", {}))
        per_s = cfg.concurrency * cfg.candidates_per_call / LLM_REQUEST_S
        return per_s, 0.0, f"{cfg.concurrency} requests in flight at ~{LLM_REQUEST_S:g} s each"
    per_s, startup = DEFAULT_JUDGE_RATES[spec["type"]]
    return (
        per_s,
        startup,
        ("metric judges" if spec["type"] == "metric" else "local judge") + " on CPU",
    )


def estimate_judging(con, specs: list[dict], items: pa.Table) -> jobs.LaunchEstimate:
    """How long judging ``items`` should take here: the duration side of :func:`estimate_job`.

    Measured on this database's last finished jobs with the same judges (the same
    judge ids), or assumed per judge type before their first run, each judge's items
    at its own rate (the worker runs the judges one after another).

    >>> from reset_core.store import connect
    >>> metric = offline_specs()[0]
    >>> llm = {"type": "llm", "config": {"model": "m", "concurrency": 4}}
    >>> items = pa.table({"judge_id": [build_judge(metric).judge_id] * 3000
    ...                   + [build_judge(llm).judge_id] * 240})
    >>> est = estimate_judging(connect(":memory:"), [metric, llm], items)
    >>> est.seconds  # 3000 / 100 per s + 240 / (4 / 3 s) + 10 s to start
    220.0
    >>> print(est)  # doctest: +NORMALIZE_WHITESPACE
    3,240 judgments · about 4 min (no run of these judges yet: assuming ~15 judgments/s
    (metric judges on CPU; 4 requests in flight at ~3 s each), plus ~10 s to start)
    """
    judge_set = _judge_set(specs)
    runs = [
        (c, p) for c, p in jobs.finished_runs(con, "judge") if _judge_set(c["judges"]) == judge_set
    ]
    measured = jobs.measure(runs, unit="judgments", subject="these judges")
    if measured is not None:
        return jobs.LaunchEstimate(items.num_rows, measured)
    counts = pa.compute.value_counts(items["judge_id"]).to_pylist() if items.num_rows else []
    n_of = {c["values"]: c["counts"] for c in counts}
    seconds, startup, basis = 0.0, 0.0, []
    for spec in specs:
        per_s, start, words = _assumed_rate(spec)
        seconds += n_of.get(build_judge(spec).judge_id, 0) / per_s
        startup = max(startup, start)
        if words not in basis:
            basis.append(words)
    per_s = items.num_rows / seconds if seconds else _assumed_rate(specs[0])[0]
    assumed = jobs.Throughput(
        "judgments", per_s, startup, "these judges", assumption=f"({'; '.join(basis)})"
    )
    return jobs.LaunchEstimate(items.num_rows, assumed)
