"""Links from the analytics pages into Review: the query-parameter contract.

The Agreement heatmap and the Trade-off scatter open "these candidates in Review" by
switching to the Review page with query parameters (so the link survives a reload and
can be shared). Review reads them with :func:`parse`, narrows its queue to the examples
holding a linked candidate (``QueueFilter.link``) and shows only the linked candidates
in the example view. Two forms:

Rater disagreement (Agreement heatmap cell, :func:`disagreement_query`)
    ``judge_a``, ``judge_b`` (judge ids; ``human`` = mean manual score), ``aspect``,
    ``disagree`` (minimum absolute score gap in [0, 1]).
Trade-off selection (a box or lasso region, :func:`region_query`)
    ``candidates`` (comma-separated candidate ids, at most :data:`MAX_IDS`) for a
    per-candidate selection, or ``setting`` / ``model`` / ``kind`` (comma-separated)
    for selected aggregate points; ``split`` narrows either. ``via`` names the view
    that made the link when it is not the trade-off chart (the Evaluate page's
    before/after browser links the two answers it shows), for the banner.

:func:`linked_sql` is the one SQL definition of "the linked candidates"; it reads the
analytics summaries (``reset_core.analytics.summaries``), which must be fresh.

>>> parse({"judge_a": "j1", "judge_b": "j2", "aspect": "task", "disagree": "0.5"})["disagree"]
0.5
>>> parse({"setting": "s:1,s:2"})["setting"]
['s:1', 's:2']
"""

from __future__ import annotations

from collections.abc import Mapping

from reset_core.analytics.summaries import HUMAN, HUMAN_SCORES_SQL
from reset_core.aspects import ASPECTS
from reset_core.store import one

MAX_IDS = 500
_LISTS = ("candidates", "setting", "model", "kind")
#: every query parameter of the contract (Review clears these to drop the filter)
KEYS = ("judge_a", "judge_b", "aspect", "disagree", *_LISTS, "split", "via")


def parse(params: Mapping[str, str]) -> dict | None:
    """The analytics selection named by query params, or None when there is none.

    Raises ``ValueError`` naming the parameter when one is malformed.
    """
    if params.get("judge_a") and params.get("judge_b") and params.get("aspect"):
        try:
            gap = float(params.get("disagree", "0.25"))
        except ValueError:
            raise ValueError(f"disagree: not a number: {params.get('disagree')!r}") from None
        if not 0 <= gap <= 1:
            raise ValueError(f"disagree: must be in [0, 1], got {gap:g}")
        if params["aspect"] not in ASPECTS:
            raise ValueError(f"aspect: must be one of {list(ASPECTS)}, got {params['aspect']!r}")
        return {
            "form": "disagreement",
            "judge_a": params["judge_a"],
            "judge_b": params["judge_b"],
            "aspect": params["aspect"],
            "disagree": gap,
        }
    sel = {k: [v for v in params[k].split(",") if v] for k in _LISTS if params.get(k)}
    if not sel:
        return None
    if "candidates" in sel:
        sel["candidates"] = sel["candidates"][:MAX_IDS]
    sel["form"] = "region"
    sel["split"] = params.get("split") or None
    sel["via"] = params.get("via") or None
    return sel


def disagreement_query(judge_a: str, judge_b: str, aspect: str, disagree: float = 0.25) -> dict:
    """Query parameters that open a rater pair's disagreements in Review.

    >>> disagreement_query("j1", "j2", "task", 0.5)
    {'judge_a': 'j1', 'judge_b': 'j2', 'aspect': 'task', 'disagree': '0.5'}
    """
    if aspect not in ASPECTS:
        raise ValueError(f"aspect: must be one of {list(ASPECTS)}, got {aspect!r}")
    return {"judge_a": judge_a, "judge_b": judge_b, "aspect": aspect, "disagree": f"{disagree:g}"}


def region_query(
    candidates: list[str] | None = None,
    setting: list[str] | None = None,
    model: list[str] | None = None,
    kind: list[str] | None = None,
    split: str | None = None,
) -> dict:
    """Query parameters for a trade-off selection (ids capped at :data:`MAX_IDS`).

    >>> region_query(setting=["s:1"], split="seen")
    {'setting': 's:1', 'split': 'seen'}
    """
    q = {}
    for key, vals in (
        ("candidates", (candidates or [])[:MAX_IDS]),
        ("setting", setting),
        ("model", model),
        ("kind", kind),
    ):
        if vals:
            q[key] = ",".join(vals)
    if split:
        q["split"] = split
    return q


def linked_sql(sel: dict) -> tuple[str, list]:
    """SQL (and its positional parameters) selecting the linked candidates.

    Columns: ``candidate_id, example_id, gap`` (the two raters' absolute score gap for a
    disagreement link, NULL for a region).
    """
    if sel["form"] == "disagreement":
        a, b, aspect = sel["judge_a"], sel["judge_b"], sel["aspect"]
        # 1e-9: scores like 0.75 - 0.5 must count as a gap of 0.25
        if HUMAN in (a, b):
            judge = b if a == HUMAN else a
            sql = f"""
                SELECT j.candidate_id, j.example_id, abs(j.score - h.score) AS gap
                FROM analytics_reviewed j JOIN ({HUMAN_SCORES_SQL}) h USING (candidate_id)
                WHERE j.aspect = ? AND j.judge_id = ? AND j.score IS NOT NULL
                  AND abs(j.score - h.score) >= ? - 1e-9"""
            return sql, [aspect, aspect, judge, sel["disagree"]]
        # stored once per pair with judge_a < judge_b, largest gap first
        sql = """
            SELECT candidate_id, example_id, gap FROM analytics_gaps
            WHERE aspect = ? AND judge_a = ? AND judge_b = ? AND gap >= ? - 1e-9"""
        return sql, [aspect, min(a, b), max(a, b), sel["disagree"]]
    clauses, params = [], []
    for key, col in (
        ("candidates", "candidate_id"),
        ("setting", "setting_id"),
        ("model", "model_id"),
        ("kind", "kind"),
    ):
        if sel.get(key):
            clauses.append(f"{col} IN (SELECT unnest(?))")
            params.append(list(sel[key]))
    if sel.get("split"):
        clauses.append("split = ?")
        params.append(sel["split"])
    where = " AND ".join(clauses) or "true"
    sql = f"SELECT candidate_id, example_id, NULL::DOUBLE AS gap FROM analytics_candidates WHERE {where}"
    return sql, params


def counts(con, sel: dict) -> dict[str, int]:
    """How many candidates a link names, and in how many examples."""
    sql, params = linked_sql(sel)
    n, m = one(con, f"SELECT count(*), count(DISTINCT example_id) FROM ({sql})", params)
    return {"candidates": n, "examples": m}


def linked_in(con, sel: dict, example_ids: list[str]) -> dict[str, list[tuple[str, float | None]]]:
    """The linked candidates of the given examples: example -> [(candidate, gap)], largest gap first.

    >>> from reset_core.store import connect
    >>> linked_in(connect(":memory:"), parse({"setting": "s:1"}), ["e1"])
    {}
    """
    sql, params = linked_sql(sel)
    out: dict[str, list[tuple[str, float | None]]] = {}
    for cid, ex, gap in con.execute(
        f"SELECT candidate_id, example_id, gap FROM ({sql}) "
        "WHERE example_id IN (SELECT unnest(?)) ORDER BY gap DESC NULLS LAST, candidate_id",
        [*params, list(example_ids)],
    ).fetchall():
        out.setdefault(ex, []).append((cid, gap))
    return out


def describe(sel: dict, n: dict[str, int], names: Mapping[str, str] | None = None) -> str:
    """One line saying what a link filters to, for the Review banner.

    ``names``: labels for setting and model ids (``T 0.5 · top-k 20``, a model's
    name), so the banner reads as values rather than ids.

    >>> describe(parse({"judge_a": "a", "judge_b": "b", "aspect": "task", "disagree": ".3"}),
    ...          {"candidates": 3, "examples": 2})
    '3 candidates (in 2 examples) where a and b disagree by at least 0.3 on task'
    >>> describe(parse({"setting": "s:1"}), {"candidates": 1, "examples": 1}, {"s:1": "T 1 · top-k all"})
    '1 candidate (in 1 example) from the trade-off selection: setting T 1 · top-k all'
    >>> describe(parse({"candidates": "a,b", "via": "the before/after browser"}),
    ...          {"candidates": 2, "examples": 1})
    '2 candidates (in 1 example) linked from the before/after browser'
    """
    names = names or {}
    head = f"{n['candidates']:,} candidate{'s' * (n['candidates'] != 1)} (in {n['examples']:,} example{'s' * (n['examples'] != 1)})"
    if sel["form"] == "disagreement":
        return (
            f"{head} where {sel['judge_a']} and {sel['judge_b']} disagree by at least "
            f"{sel['disagree']:g} on {sel['aspect']}"
        )
    if sel.get("via"):
        return f"{head} linked from {sel['via']}"
    parts = []
    if sel.get("candidates"):
        parts.append(f"{len(sel['candidates']):,} selected on the trade-off chart")
    for key, label in (("setting", "setting"), ("model", "model"), ("kind", "kind")):
        if sel.get(key):
            parts.append(f"{label} {', '.join(names.get(v, v) for v in sel[key])}")
    if sel.get("split"):
        parts.append(f"split {sel['split']}")
    return f"{head} from the trade-off selection: " + "; ".join(parts)
