"""Links from the analytics pages into Review: the query-parameter contract.

The Agreement heatmap and the Trade-off scatter open "these candidates in Review" by
switching to the Review page with query parameters. Review reads them with
:func:`parse` and lists the candidates with :func:`candidates_for`. Two forms:

Rater disagreement (Agreement heatmap cell)
    ``judge_a``, ``judge_b`` (judge ids; ``human`` = mean manual score), ``aspect``,
    ``disagree`` (minimum absolute score gap in [0, 1]).
Trade-off selection (a box or lasso region)
    ``candidates`` (comma-separated candidate ids, at most :data:`MAX_IDS`) for a
    per-candidate selection, or ``setting`` / ``model`` / ``kind`` (comma-separated)
    for selected aggregate points; ``split`` narrows either.

>>> parse({"judge_a": "j1", "judge_b": "j2", "aspect": "task", "disagree": "0.5"})["disagree"]
0.5
>>> parse({"setting": "s:1,s:2"})["setting"]
['s:1', 's:2']
"""

from __future__ import annotations

from collections.abc import Mapping

from reset_core.agreement import disagreements

MAX_IDS = 500
_LISTS = ("candidates", "setting", "model", "kind")


def parse(params: Mapping[str, str]) -> dict | None:
    """The analytics selection named by query params, or None when there is none."""
    if params.get("judge_a") and params.get("judge_b") and params.get("aspect"):
        try:
            gap = float(params.get("disagree", "0.25"))
        except ValueError:
            raise ValueError(f"disagree: not a number: {params.get('disagree')!r}") from None
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
    sel["form"] = "region"
    sel["split"] = params.get("split") or None
    return sel


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


def candidates_for(con, sel: dict, limit: int = 50, offset: int = 0) -> tuple[int, list[dict]]:
    """The candidates a parsed selection names: (total, one page of rows)."""
    if sel["form"] == "disagreement":
        return disagreements(
            con, sel["judge_a"], sel["judge_b"], sel["aspect"], sel["disagree"], limit, offset
        )
    clauses, params = [], []
    for key, col in (
        ("candidates", "candidate_id"),
        ("setting", "setting_id"),
        ("model", "model_id"),
        ("kind", "kind"),
    ):
        if sel.get(key):
            clauses.append(f"a.{col} IN (SELECT unnest(?))")
            params.append(sel[key][:MAX_IDS] if key == "candidates" else sel[key])
    if sel.get("split"):
        clauses.append("a.split = ?")
        params.append(sel["split"])
    where = " AND ".join(clauses) or "true"
    rows = con.execute(
        f"""
        SELECT a.candidate_id, a.example_id, a.model_id, a.setting_id, a.kind, a.s_task,
               a.s_instr, a.s_faith, a.picked, count(*) OVER () AS total
        FROM analytics_candidates a WHERE {where}
        ORDER BY a.example_id, a.candidate_id LIMIT {int(limit)} OFFSET {int(offset)}
        """,
        params,
    ).fetchall()
    total = rows[0][-1] if rows else 0
    keys = ("candidate_id", "example_id", "model_id", "setting_id", "kind", "s_task", "s_instr")
    page = [dict(zip((*keys, "s_faith", "picked"), r[:-1], strict=True)) for r in rows]
    if page:
        texts = dict(
            con.execute(
                "SELECT candidate_id, text FROM candidates WHERE candidate_id IN "
                "(SELECT unnest(?))",
                [[p["candidate_id"] for p in page]],
            ).fetchall()
        )
        for p in page:
            p["text"] = texts.get(p["candidate_id"], "")
    return total, page
