"""Judging jobs, app side (owns the database): plan, estimate, start and follow them.

A :class:`JudgePlan` says which (judge, candidate, aspect) items a run takes: the
aspects each example's kind needs, the chosen splits, and only what has no valid
verdict yet. :func:`estimate_plan` is the dry run (items, requests, cache hits, tokens,
cost), counted in the database; :func:`create_judge_job` streams the plan's items
(:func:`plan_items`) into the job folder for :mod:`reset_core.judging.worker`;
:func:`sync_judge_job` ingests its shards.

>>> [s["name"] for s in offline_specs()]  # two independent judges per aspect
['rouge_l', 'token_f1', 'instruction_proxy', 'ifeval', 'knowledge_precision', 'embedding_support']
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field

from reset_core import jobs
from reset_core.aspects import ASPECTS
from reset_core.ingest.config import SPLITS  # noqa: F401 - the splits a plan can judge
from reset_core.judging.base import Judge, JudgeItem
from reset_core.judging.batch import COMPLETION_WINDOW, COMPLETION_WINDOW_S, BatchConfig
from reset_core.judging.batch import ENTRY as BATCH_ENTRY
from reset_core.judging.batch import KIND as BATCH_KIND
from reset_core.judging.engine import env_endpoint
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig, LocalLLMJudge, render_messages
from reset_core.judging.metric_judges import DEFAULT_OFFLINE, METRIC_JUDGES
from reset_core.judging.rubrics import latest_rubric
from reset_core.judging.worker import ENTRY, build_judge, items_from_table
from reset_core.store import one

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
    """The no-API panel: two metric judges per aspect (see ``DEFAULT_OFFLINE``)."""
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


class JudgePlan(BaseModel):
    """Which items a judging run takes: the help texts of the CLI flags and the Judge page."""

    aspects: Literal["needed", "all"] = Field(
        "needed",
        description="needed: only the aspects the RESET formula uses for each example's kind "
        "(task always; instruction for open-ended, faithfulness for context examples); "
        "all: every aspect each judge can score",
    )
    splits: list[Literal["seen", "test_seen", "test_unseen"]] = Field(
        default_factory=lambda: ["seen"],
        min_length=1,
        description="the example splits whose candidates are judged: seen (what RESET "
        "samples and selects from), test_seen and test_unseen (test answers, to compare "
        "models); e.g. seen,test_seen",
    )
    redo: bool = Field(False, description="judge again what already has a valid verdict")
    limit: int | None = Field(None, ge=1, description="judge at most this many items")


#: Items with a valid verdict: the judge gave a score, or said it cannot score this
#: item at all (``not_applicable``: no reference, no context; asking again would say
#: the same). A failure (timeout, parse error, ...) is a NULL score and is judged again.
#: Only the plan's judges' rows are read: an anti join against a handful of judges'
#: verdicts, not every verdict in the database.
_DONE = (
    "ANTI JOIN (SELECT candidate_id, judge_id, aspect FROM judgments "
    "WHERE judge_id IN (SELECT unnest(?)) AND (score IS NOT NULL OR status = 'not_applicable')) "
    "done ON done.candidate_id = c.candidate_id AND done.judge_id = ja.judge_id "
    "AND done.aspect = ja.aspect "
)
_NEEDED = (
    "(ja.aspect = 'task' OR (ja.aspect = 'instruction' AND e.kind = 'instruction') "
    "OR (ja.aspect = 'faithfulness' AND e.kind = 'context'))"
)
_ITEM_COLUMNS = (
    "ja.judge_id, c.candidate_id, c.example_id, ja.aspect, e.instruction, e.context, "
    "e.reference, e.kind, c.text, c.finish_reason, CAST(e.meta AS VARCHAR) AS meta"
)


def _plan_from(
    judges: list[Judge],
    plan: JudgePlan,
    candidates: Sequence[str] | None = None,
    judge_aspects: Mapping[str, Sequence[str]] | None = None,
) -> tuple[str, list]:
    """The FROM/WHERE of a plan over ``candidates c``, ``examples e``, judge aspects ``ja``.

    The judge × aspect pairs are a VALUES list, so the plan is one statement the
    database runs (and a cursor of another thread can run too). ``candidates``
    restricts it to those candidate ids (an evaluation's answers); None = all.
    ``judge_aspects`` (judge id -> aspects) keeps only those aspects of each judge
    (a frozen panel that trusts a judge on some of the aspects it scores).
    """
    pairs = [
        (j.judge_id, a)
        for j in judges
        for a in j.aspects
        if judge_aspects is None or a in judge_aspects.get(j.judge_id, ())
    ]
    if not pairs:  # VALUES needs a row: a pair no candidate matches keeps the SQL valid
        return (
            "FROM candidates c JOIN examples e USING (example_id) "
            "CROSS JOIN (SELECT NULL::VARCHAR AS judge_id, NULL::VARCHAR AS aspect) ja "
            "WHERE false",
            [],
        )
    values = ", ".join("(?, ?)" for _ in pairs)
    params: list = [v for p in pairs for v in p]
    sql = (
        "FROM candidates c JOIN examples e USING (example_id) "
        f"CROSS JOIN (VALUES {values}) ja(judge_id, aspect) "
    )
    if not plan.redo:
        sql += _DONE
        params.append([j.judge_id for j in judges])
    where = ["e.split IN (SELECT unnest(?))"]
    params.append(list(plan.splits))
    if candidates is not None:
        where.append("c.candidate_id IN (SELECT unnest(?))")
        params.append(list(candidates))
    if plan.aspects == "needed":
        where.append(_NEEDED)
    for j in judges:
        # A judge that votes only on some examples (IFEval: those carrying verifiable
        # instructions) is not handed the others at all.
        if getattr(j, "applies_sql", None):
            where.append(f"(ja.judge_id <> ? OR ({j.applies_sql}))")
            params.append(j.judge_id)
    return sql + f"WHERE {' AND '.join(where)}", params


def _plan(plan: JudgePlan | None, kw: dict) -> JudgePlan:
    if plan is not None and kw:
        raise TypeError("give either a JudgePlan or its fields, not both")
    return plan if plan is not None else JudgePlan(**kw)


def plan_items(
    con,
    specs: list[dict],
    plan: JudgePlan | None = None,
    *,
    candidates: Sequence[str] | None = None,
    judge_aspects: Mapping[str, Sequence[str]] | None = None,
    **kw: Any,
) -> pa.Table:
    """The work of a judging run, one row per (judge, candidate, aspect), as Arrow.

    Per :class:`JudgePlan`: the aspects each example's kind needs (or all a judge
    scores), the chosen splits (default ``seen``), and only items without a valid
    verdict from that judge unless ``redo``; only ``candidates`` and ``judge_aspects``
    when given (see :func:`_plan_from`). The rows carry what the worker needs (texts
    included); :func:`estimate_plan` sizes the same plan without reading them.
    """
    plan = _plan(plan, kw)
    sql, params = _plan_from([build_judge(s) for s in specs], plan, candidates, judge_aspects)
    sql = (
        f"SELECT {_ITEM_COLUMNS} {sql} "
        "ORDER BY ja.judge_id, c.example_id, c.candidate_id, ja.aspect"
    )
    if plan.limit:
        sql += f" LIMIT {int(plan.limit)}"
    return con.sql(sql, params=params).to_arrow_table()


def _plan_batches(
    con,
    specs: list[dict],
    plan: JudgePlan,
    batch_rows: int = 100_000,
    candidates: Sequence[str] | None = None,
    judge_aspects: Mapping[str, Sequence[str]] | None = None,
):
    """:func:`plan_items` as a stream of Arrow record batches (a big plan never sits whole
    in Python memory: the job input is written batch by batch)."""
    sql, params = _plan_from([build_judge(s) for s in specs], plan, candidates, judge_aspects)
    sql = (
        f"SELECT {_ITEM_COLUMNS} {sql} "
        "ORDER BY ja.judge_id, c.example_id, c.candidate_id, ja.aspect"
    )
    if plan.limit:
        sql += f" LIMIT {int(plan.limit)}"
    cur = con.cursor()  # its own cursor: the caller's stays free while the stream is read
    reader = cur.sql(sql, params=params).to_arrow_reader(batch_rows)

    def batches():
        try:
            yield from reader
        finally:
            cur.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


# ------------------------------------------------------------------ the estimate, in SQL
#: Python's whitespace (what ``str.split()`` splits on) as an RE2 class: the "words"
#: token counter counts runs of anything else.
_NOT_SPACE = "[^" + "".join(f"\\x{{{i:x}}}" for i in range(0x110000) if chr(i).isspace()) + "]+"


def _words_sql(col: str) -> str:
    return f"len(regexp_extract_all(coalesce({col}, ''), '{_NOT_SPACE}'))"


def _prompt_shapes(judge: LLMJudge | LocalLLMJudge) -> pa.Table:
    """Per aspect, group size and which optional fields are shown: the prompt's fixed part.

    A request's prompt is the rendered template with the example's fields and the
    candidates' texts filled in, so its length is the template's own characters (and
    words) plus those of each field it shows. Rendering each shape once with one-letter
    stand-ins measures the fixed part and how often each field appears, from the same
    :func:`render_messages` the worker sends: the SQL estimate follows any template change.
    """
    rows = []
    k = judge.config.candidates_per_call

    def prompt(aspect, g, ctx, ref, fill):
        items = [
            JudgeItem(
                "e",
                f"c{i}",
                aspect,
                fill["instruction"],
                fill["context"] if ctx else None,
                fill["reference"] if ref else None,
                "context" if ctx else "instruction",
                fill["text"],
            )
            for i in range(g)
        ]
        return "\n".join(
            m["content"]
            for m in render_messages(judge.rubrics[aspect], items, judge.config.prompt_version)
        )

    one = dict.fromkeys(("instruction", "context", "reference", "text"), "x")
    for aspect in judge.aspects:
        for g in range(1, k + 1):
            for ctx in (False, True):
                for ref in (False, True):
                    base = prompt(aspect, g, ctx, ref, one)
                    # How many times each field shows: the growth when it grows by one.
                    times = {
                        f: len(prompt(aspect, g, ctx, ref, {**one, f: "xx"})) - len(base)
                        for f in one
                    }
                    times["text"] //= g
                    n_fields = sum(times[f] for f in ("instruction", "context", "reference"))
                    n_fields += times["text"] * g
                    rows.append(
                        {
                            "aspect": aspect,
                            "g": g,
                            "has_ctx": ctx,
                            "has_ref": ref,
                            "chars": len(base) - n_fields,
                            "words": len(base.split()) - n_fields,
                            "t_instruction": times["instruction"],
                            "t_context": times["context"],
                            "t_reference": times["reference"],
                            "t_text": times["text"],
                        }
                    )
    return pa.Table.from_pylist(rows)


_REQUESTS_SQL = """
WITH items AS (
    SELECT c.example_id, c.candidate_id, ja.aspect, ja.judge_id,
           coalesce(e.context, '') <> '' AS has_ctx,
           coalesce(e.reference, '') <> '' AS has_ref,
           length(e.instruction) AS n_instruction, length(coalesce(e.context, '')) AS n_context,
           length(coalesce(e.reference, '')) AS n_reference, length(coalesce(c.text, '')) AS n_text,
           {words_items}
           {chunk} AS chunk
    {plan_from}
), requests AS ({requests}
), sized AS (
    SELECT r.touched, r.g,
           {tokens} AS prompt_tokens
    FROM requests r JOIN _shapes s
      ON s.aspect = r.aspect AND s.g = r.g AND s.has_ctx = r.has_ctx AND s.has_ref = r.has_ref
)
SELECT touched, count(*) AS n_requests, coalesce(sum(g), 0) AS n_items,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens
FROM sized GROUP BY touched
"""
#: Pointwise (one candidate per call): every item is its own request.
_ONE_PER_REQUEST = """
    SELECT *, 1 AS g, touched_item AS touched FROM items"""
#: Several candidates per call: an example's items of one aspect, in candidate order,
#: in chunks of ``k`` (as :meth:`LLMJudge.requests` groups them).
_GROUPED = """
    SELECT example_id, aspect, chunk, any_value(has_ctx) AS has_ctx,
           any_value(has_ref) AS has_ref, count(*) AS g,
           any_value(n_instruction) AS n_instruction, any_value(n_context) AS n_context,
           any_value(n_reference) AS n_reference, sum(n_text) AS n_text,
           {words_requests}
           bool_or(touched_item) AS touched
    FROM items GROUP BY example_id, aspect, chunk"""


def _llm_estimate(con, judge, spec: dict, plan: JudgePlan, cache: Path | None) -> dict:
    """One LLM judge's dry run (:class:`~reset_core.judging.llm_judge.CostEstimate`
    fields) computed in the database: requests grouped and prompt tokens counted from
    text lengths, as :meth:`LLMJudge.estimate` does per rendered prompt.

    Cache hits need each request's content hash, which only the rendered prompt gives.
    A request can only be in the cache if this judge has sent a prompt for the same
    example and aspect before, which left a verdict in ``judgments``; those few (every
    one, with ``redo``) are rendered and looked up in Python, exactly as the worker
    would, and replace their SQL figures. One exception errs on the safe side: answers
    cached by a worker killed before it saved their batch count as requests to send.
    """
    cfg = judge.config
    k = cfg.candidates_per_call
    words = cfg.token_counter == "words"
    plan_from, params = _plan_from([judge], plan)
    cached_possible = cache is not None and Path(cache).exists()
    touched = (
        "EXISTS (SELECT 1 FROM judgments jt JOIN candidates ct USING (candidate_id) "
        "WHERE jt.judge_id = ja.judge_id AND jt.aspect = ja.aspect "
        "AND ct.example_id = c.example_id)"
        if cached_possible
        else "false"
    )
    if words:
        tokens = (
            "greatest(1, s.words + s.t_instruction * r.w_instruction + s.t_context * "
            "r.w_context + s.t_reference * r.w_reference + s.t_text * r.w_text)"
        )
        words_items = (
            f"{_words_sql('e.instruction')} AS w_instruction, {_words_sql('e.context')} AS "
            f"w_context, {_words_sql('e.reference')} AS w_reference, "
            f"{_words_sql('c.text')} AS w_text,"
        )
        words_requests = (
            "any_value(w_instruction) AS w_instruction, any_value(w_context) AS w_context, "
            "any_value(w_reference) AS w_reference, sum(w_text) AS w_text,"
        )
    else:  # approx: characters / 4, rounded up
        tokens = (
            "greatest(1, (s.chars + s.t_instruction * r.n_instruction + s.t_context * "
            "r.n_context + s.t_reference * r.n_reference + s.t_text * r.n_text + 3) // 4)"
        )
        words_items = words_requests = ""
    grouped = k > 1
    sql = _REQUESTS_SQL.format(
        chunk=(
            "(row_number() OVER (PARTITION BY c.example_id, ja.aspect "
            f"ORDER BY c.candidate_id) - 1) // {k}"
            if grouped
            else "0"
        ),
        requests=_GROUPED.format(words_requests=words_requests) if grouped else _ONE_PER_REQUEST,
        plan_from=plan_from,
        words_items=words_items + f" {touched} AS touched_item,",
        tokens=tokens,
    )
    cur = con.cursor()  # the shapes table is this cursor's alone
    try:
        cur.register("_shapes", _prompt_shapes(judge))
        rows = cur.execute(sql, params).fetchall()
    finally:
        cur.close()
    n_items = n_req = pt = 0
    hit_items = None
    for touched_group, n_r, n_i, p in rows:
        if touched_group:
            hit_items = n_i
            continue
        n_req, n_items, pt = n_req + n_r, n_items + int(n_i), pt + int(p)
    n_cached = 0
    if hit_items:
        # The groups this judge has seen before: their exact requests and cache keys.
        est = _touched_estimate(con, judge, spec, plan, cache)
        n_items += est.n_items
        n_req += est.n_requests
        n_cached = est.n_cached
        pt += est.prompt_tokens
    ct = n_req * cfg.expected_output_tokens
    return {
        "n_items": n_items,
        "n_requests": n_req,
        "n_cached": n_cached,
        "prompt_tokens": pt,
        "completion_tokens": ct,
        "cost_usd": judge.ledger.cost(pt, ct),
        "cost_usd_max": judge.ledger.cost(pt, n_req * cfg.max_tokens),
    }


def _touched_estimate(con, judge, spec: dict, plan: JudgePlan, cache: Path):
    """:meth:`LLMJudge.estimate` on the planned items of the (example, aspect) groups this
    judge has judged before: the only ones whose requests the cache can hold."""
    plan_from, params = _plan_from([judge], plan)
    sql = (
        f"SELECT {_ITEM_COLUMNS} {plan_from} AND EXISTS (SELECT 1 FROM judgments jt "
        "JOIN candidates ct USING (candidate_id) WHERE jt.judge_id = ja.judge_id "
        "AND jt.aspect = ja.aspect AND ct.example_id = c.example_id) "
        "ORDER BY c.example_id, c.candidate_id, ja.aspect"
    )
    items = con.sql(sql, params=params).to_arrow_table()
    return build_judge(spec, cache=cache).estimate(items_from_table(items))


def _count_by_judge(
    con,
    judges: list[Judge],
    plan: JudgePlan,
    candidates: Sequence[str] | None = None,
    judge_aspects: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, int]:
    plan_from, params = _plan_from(judges, plan, candidates, judge_aspects)
    rows = con.execute(f"SELECT ja.judge_id, count(*) {plan_from} GROUP BY ALL", params).fetchall()
    return dict(rows)


def count_plan(
    con,
    specs: list[dict],
    plan: JudgePlan | None = None,
    *,
    candidates: Sequence[str] | None = None,
    judge_aspects: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, int]:
    """Items of a plan per judge id, counted in the database (nothing is read or sent).

    With ``redo`` every item the plan covers; without it those still owed a valid
    verdict. ``limit`` is not applied.

    >>> from reset_core.store import connect
    >>> count_plan(connect(":memory:"), offline_specs()[:1])
    {}
    """
    plan = plan or JudgePlan()
    judges = [build_judge(s) for s in specs]
    return _count_by_judge(con, judges, plan, candidates, judge_aspects)


def estimate_plan(
    con,
    specs: list[dict],
    plan: JudgePlan | None = None,
    *,
    cache: str | Path | None = None,
    batch: bool = False,
    **kw: Any,
) -> dict[str, dict[str, Any]]:
    """Dry run per judge id: items, requests, cache hits, tokens and cost; nothing is sent.

    The same figures :meth:`LLMJudge.estimate` gives per rendered prompt, computed in
    the database from text lengths (a million candidates take seconds, not minutes).
    Metric and in-process judges send nothing and cost nothing: they are listed with
    their item counts and zeros. ``plan.limit`` caps the whole run, as the job does:
    the first ``limit`` items in judge order. ``batch``: the LLM judges' costs at Batch
    API prices (:data:`~reset_core.judging.batch.BATCH_DISCOUNT` off).
    """
    plan = _plan(plan, kw)
    judges = [build_judge(s) for s in specs]
    out: dict[str, dict[str, Any]] = {}
    counts = _count_by_judge(con, judges, plan)
    left = plan.limit
    for spec, judge in sorted(zip(specs, judges, strict=True), key=lambda p: p[1].judge_id):
        n = counts.get(judge.judge_id, 0)
        if left is not None:
            n = min(n, left)
        if isinstance(judge, LLMJudge) and n:
            if left is not None and n < counts.get(judge.judge_id, 0):
                # A limit that cuts this judge's items: the figures of exactly those items.
                est = vars(_limited_estimate(con, spec, plan, left, cache))
            else:
                est = _llm_estimate(con, judge, spec, plan, Path(cache) if cache else None)
            if batch:  # prices are linear in tokens: the discount scales the totals
                from reset_core.judging.batch import BATCH_DISCOUNT

                for k in ("cost_usd", "cost_usd_max"):
                    est[k] *= 1.0 - BATCH_DISCOUNT
                est["batch_discount"] = BATCH_DISCOUNT
        else:
            est = {
                "n_items": n,
                "n_requests": 0,
                "n_cached": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "cost_usd_max": 0.0,
            }
        out[judge.judge_id] = est
        if left is not None:
            left -= est["n_items"]
    return out


#: Estimates already computed in this process, by (judges, plan, cache, data stamp).
_ESTIMATES: OrderedDict[tuple, dict] = OrderedDict()
_ESTIMATES_KEPT = 16


def data_stamp(con) -> tuple:
    """What a plan depends on in the database: it differs whenever candidates, examples
    or verdicts were added or removed (cheap: table counts and the newest verdict)."""
    return one(
        con,
        "SELECT (SELECT count(*) FROM candidates), (SELECT count(*) FROM examples), "
        "(SELECT count(*) FROM judgments), (SELECT max(created_at)::VARCHAR FROM judgments)",
    )


def estimate_plan_cached(
    con,
    specs: list[dict],
    plan: JudgePlan,
    *,
    cache: str | Path | None = None,
    batch: bool = False,
) -> dict[str, dict[str, Any]]:
    """:func:`estimate_plan`, kept per process until the data or the cache file changes.

    The Judge page reruns on every widget change; at a million candidates the estimate
    takes about a second, the stamp a few milliseconds. Returns a copy to keep safe.
    """
    cache_stamp = None
    if cache is not None and Path(cache).exists():
        st = Path(cache).stat()
        cache_stamp = (str(Path(cache).resolve()), st.st_mtime_ns, st.st_size)
    key = (
        json.dumps(specs, sort_keys=True, default=str),
        plan.model_dump_json(),
        str(cache),
        cache_stamp,
        data_stamp(con),
        batch,
    )
    if key in _ESTIMATES:
        _ESTIMATES.move_to_end(key)
    else:
        _ESTIMATES[key] = estimate_plan(con, specs, plan, cache=cache, batch=batch)
        while len(_ESTIMATES) > _ESTIMATES_KEPT:
            _ESTIMATES.popitem(last=False)
    return {k: dict(v) for k, v in _ESTIMATES[key].items()}


def _limited_estimate(con, spec: dict, plan: JudgePlan, limit: int, cache):
    """A run cut by ``--limit``: a small, known number of items, estimated per item."""
    judge = build_judge(spec, cache=cache)
    sql, params = _plan_from([judge], plan)
    sql = (
        f"SELECT {_ITEM_COLUMNS} {sql} ORDER BY ja.judge_id, c.example_id, c.candidate_id, "
        f"ja.aspect LIMIT {int(limit)}"
    )
    return judge.estimate(items_from_table(con.sql(sql, params=params).to_arrow_table()))


def check_endpoints(specs: list[dict]) -> None:
    """Refuse an LLM judge whose key variable or endpoint this deployment does not allow.

    :class:`~reset_core.deployment.SecretNotAllowed` names the field, before anything is
    written; the worker checks again before it sends (a job folder can be edited, a
    config can come from the database or the CLI).
    """
    for spec in specs:
        if spec.get("type") == "llm":
            c = LLMJudgeConfig(**spec.get("config", {}))
            env_endpoint(c.base_url, c.base_url_env, c.api_key_env)


def create_judge_job(
    con,
    db_path: str | Path,
    specs: list[dict],
    items: pa.Table | None = None,
    batch_size: int = 256,
    plan: JudgePlan | None = None,
    *,
    candidates: Sequence[str] | None = None,
    judge_aspects: Mapping[str, Sequence[str]] | None = None,
    batch: BatchConfig | None = None,
    **kw: Any,
) -> str:
    """Register the judges, plan the items (unless given) and write the job; not launched.

    ``batch``: judge through the OpenAI Batch API (:mod:`reset_core.judging.batch`), a
    job of kind ``judge_batch``; its specs must be one OpenAI-compatible LLM judge.

    The plan streams from the database into the job's input file in record batches;
    ``candidates`` and ``judge_aspects`` restrict it (an evaluation's answers, and
    the aspects its frozen panel trusts each judge on; see :func:`_plan_from`).
    """
    from reset_core.jobs import create_job
    from reset_core.paths import jobs_dir

    check_endpoints(specs)
    if batch is not None and (len(specs) != 1 or specs[0].get("type") != "llm"):
        raise ValueError(
            "batch: the Batch API takes one LLM judge over an OpenAI-compatible endpoint; "
            "run the offline and local judges as a separate job"
        )
    plan = _plan(plan, kw)
    if items is None:
        judges = [build_judge(s) for s in specs]
        n = sum(_count_by_judge(con, judges, plan, candidates, judge_aspects).values())
        n = min(n, plan.limit) if plan.limit else n
    else:
        n = items.num_rows
    if n == 0:
        raise ValueError(
            "nothing to judge: every candidate already has a verdict from these judges"
        )
    register_judges(con, specs)
    # The moment texts go to a judge is when their injection flags matter: scan the
    # candidates not scanned yet (incremental), so the run's summary can count them.
    from reset_core.judging.injection import flag_candidates

    flag_candidates(con)
    config = {
        "judges": specs,
        "cache_path": str(cache_path(db_path)),
        "batch_size": batch_size,
        "plan": plan.model_dump(exclude_none=True),
    }
    kind, entry = "judge", ENTRY
    if batch is not None:
        kind, entry = BATCH_KIND, BATCH_ENTRY
        config["batch"] = batch.model_dump()
    inputs = (
        items
        if items is not None
        else _plan_batches(con, specs, plan, candidates=candidates, judge_aspects=judge_aspects)
    )
    return create_job(con, jobs_dir(db_path), kind, entry, config, inputs)


def sync_judge_job(con, job_id: str) -> dict[str, Any]:
    """Ingest a judging job's finished shards and mirror its progress (idempotent)."""
    from reset_core.jobs import sync_job
    from reset_core.store import ingest_shards

    progress = sync_job(con, job_id, ingest=lambda d: ingest_shards(con, "judgments", d))
    record_endpoints(con, progress.get("endpoints") or {})
    if progress.get("status") in ("done", "failed", "cancelled"):
        keep_default_scores(con)
    return progress


def sync_batch_job(con, job_id: str) -> dict[str, Any]:
    """A Batch API judging job: its verdicts as any judging job's, and a ``jobs`` row per
    batch it created (:func:`reset_core.judging.batch.record_batch_rows`)."""
    from reset_core.judging.batch import record_batch_rows

    progress = sync_judge_job(con, job_id)
    record_batch_rows(con, job_id, progress)
    return progress


def sync_batch_row(con, row_id: str) -> dict[str, Any]:
    """One batch's row: its job is synced (which rewrites the row), then the row is read.

    The progress has the batch's own counts (requests answered of those it holds), what
    the provider says of it, and ``job``: the job that owns it, which cancel and resume
    act on.
    """
    import time

    (config,) = one(con, "SELECT config FROM jobs WHERE job_id = ?", [row_id])
    cfg = json.loads(config)
    sync_batch_job(con, cfg["job"])
    status, n_done, n_total, error = one(
        con, "SELECT status, n_done, n_total, error FROM jobs WHERE job_id = ?", [row_id]
    )
    return {
        "status": status,
        "n_done": n_done,
        "n_total": n_total,
        "error": error,
        "phase": f"batch {cfg['batch_id']}",
        "detail": cfg.get("batch_status"),
        "updated_at": time.time(),
        "job": cfg["job"],
        "batch_id": cfg["batch_id"],
    }


def keep_default_scores(con) -> None:
    """Build the kept aspect scores the Judge page opens on, as soon as verdicts land.

    The default selection (default panel, seen split, the round's policy) re-ranks
    from kept per-candidate aspect scores; building them takes seconds at a million
    candidates. Paying that when a judging job ends, while the person watches its
    progress, keeps the first visit to the scores fast. Cheap when they are current;
    a failure here never fails the job (the page builds them on its first visit).
    """
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import prepare

    try:
        prepare(con, SelectionConfig())
    except Exception as e:  # noqa: BLE001 - an optimisation; the page rebuilds on demand
        import logging

        logging.getLogger(__name__).warning("kept aspect scores not prebuilt: %s", e)


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
    if spec["type"] == "metric":
        # A metric judge slower than the rest (a model, a big import) says its own rate.
        per_s, startup = getattr(METRIC_JUDGES.get(spec["name"]), "assumed_rate", (per_s, startup))
    return (
        per_s,
        startup,
        ("metric judges" if spec["type"] == "metric" else "local judge") + " on CPU",
    )


def _counts_per_judge(items: pa.Table | dict[str, dict[str, Any]] | dict[str, int]) -> dict:
    """Items per judge id, from planned items (Arrow) or per-judge counts."""
    if isinstance(items, pa.Table):
        counts = pa.compute.value_counts(items["judge_id"]).to_pylist() if items.num_rows else []
        return {c["values"]: c["counts"] for c in counts}
    return {k: v["n_items"] if isinstance(v, dict) else int(v) for k, v in items.items()}


def estimate_judging(
    con,
    specs: list[dict],
    items: pa.Table | dict[str, dict[str, Any]] | dict[str, int],
    batch: bool = False,
) -> jobs.LaunchEstimate:
    """How long judging ``items`` should take here: the duration side of :func:`estimate_job`.

    Measured on this database's last finished jobs with the same judges (the same
    judge ids), or assumed per judge type before their first run, each judge's items
    at its own rate (the worker runs the judges one after another). ``items``: the
    planned items (Arrow, with a ``judge_id`` column), or their number per judge id
    (:func:`estimate_plan`'s result, or plain counts).

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

    ``batch``: the LLM judges' requests go through the Batch API (the Judge page runs
    them as a batch job beside an online job of the other judges). Their duration is
    the provider's, bounded by the completion window, so it is stated as that bound:

    >>> print(estimate_judging(connect(":memory:"), [metric, llm], items, batch=True))
    ... # doctest: +NORMALIZE_WHITESPACE
    3,000 judgments here · under a minute (no run of these judges yet: assuming ~100
    judgments/s (metric judges on CPU), plus ~10 s to start); 240 LLM requests through
    the Batch API, answered within its 24h window: up to 24.0 h in all
    """
    if batch:
        n_of = _counts_per_judge(items)
        by_id = {build_judge(s).judge_id: s for s in specs}  # each judge built once
        n_batch = sum(n_of.get(j, 0) for j, s in by_id.items() if s["type"] == "llm")
        online = [s for s in specs if s["type"] != "llm"]
        n_online = {j: n_of.get(j, 0) for j, s in by_id.items() if s["type"] != "llm"}
        local = estimate_judging(con, online or specs, n_online)
        return replace(
            local,
            wait_up_to_s=COMPLETION_WINDOW_S if n_batch else None,
            waits_for=f"{n_batch:,} LLM requests through the Batch API, answered within its "
            f"{COMPLETION_WINDOW} window",
        )
    judge_set = _judge_set(specs)
    runs = [
        (c, p) for c, p in jobs.finished_runs(con, "judge") if _judge_set(c["judges"]) == judge_set
    ]
    n_of = _counts_per_judge(items)
    n_items = sum(n_of.values())
    measured = jobs.measure(runs, unit="judgments", subject="these judges")
    if measured is not None:
        return jobs.LaunchEstimate(n_items, measured)
    seconds, startup, basis = 0.0, 0.0, []
    for spec in specs:
        per_s, start, words = _assumed_rate(spec)
        seconds += n_of.get(build_judge(spec).judge_id, 0) / per_s
        startup = max(startup, start)
        if words not in basis:
            basis.append(words)
    per_s = n_items / seconds if seconds else _assumed_rate(specs[0])[0]
    assumed = jobs.Throughput(
        "judgments", per_s, startup, "these judges", assumption=f"({'; '.join(basis)})"
    )
    return jobs.LaunchEstimate(n_items, assumed)


def set_job_budget(con, job_id: str, budget_usd: float | None) -> int:
    """Give a judging job's LLM judges a new budget cap before it is relaunched.

    The route for a job that stopped at its cap ("relaunch with a higher budget cap"):
    the cap lives in the job's ``job.json``; the worker counts what the finished shards
    already spent against it (a resume does not start from $0). The judges' ids do not
    include the cap, so the shards already written still count as done. Returns how
    many judges got the cap; raises ``KeyError`` for an unknown job and ``ValueError``
    for a job that is not a judging job, has no LLM judge, or a cap that is not positive::

        set_job_budget(con, "judge-20250101-120000-abc123", 10.0)
        jobs.requeue(con, "judge-20250101-120000-abc123")
    """
    from reset_core.atomic import write_json_atomic

    if budget_usd is not None and not budget_usd > 0:
        raise ValueError(f"budget_usd: must be greater than 0, got {budget_usd}")
    kind = jobs.job_kind(con, job_id)
    if kind is None:
        raise KeyError(f"no job {job_id!r}")
    if kind != "judge":
        raise ValueError(f"budget_usd: job {job_id} is a {kind} job; only judging jobs have a cap")
    path = jobs.work_dir(con, job_id) / "job.json"
    spec = jobs.read_json(path)
    n = 0
    for judge in spec.get("config", {}).get("judges", []):
        if judge.get("type") in ("llm", "local") and isinstance(judge.get("config"), dict):
            judge["config"]["budget_usd"] = budget_usd
            n += 1
    if not n:
        raise ValueError(f"budget_usd: job {job_id} has no LLM judge, so no budget cap")
    write_json_atomic(path, spec)
    # The table's copy of the config says what the job ran with (launch estimates read it).
    con.execute("UPDATE jobs SET config = ? WHERE job_id = ?", [json.dumps(spec["config"]), job_id])
    return n
