"""Decoding settings as an experiment: which settings produce the picks, and what they cost.

Per decoding setting (over the chosen split, default ``seen``): candidates, picks in the
latest selection and its share of all picks, mean valid score per aspect, failed
judgments excluded, duplicate rate (the candidate's text repeats another candidate of the
same example), mean length, and distinct-1/distinct-2 diversity (distinct n-grams over
all n-grams of an equal-size text sample per setting and model, so settings compare
fairly). :func:`suggest_grid` proposes the next round's grid: settings that never win
are dropped.

All aggregation runs in SQL over the ``analytics_*`` summaries; distinct-1/2 are
stored at refresh.
"""

from __future__ import annotations

from reset_core.analytics.summaries import (
    DISTINCT_NS,
    TEXTS_PER_SETTING,
    distinct_n_sql,
    live_picks,
)
from reset_core.sampling.settings import setting_label_sql, setting_order_sql


def distinct_n(con, n: int) -> dict[str, float]:
    """Distinct n-grams / all n-grams per setting over the ``analytics_texts`` sample.

    Texts are lower-cased and split on whitespace; texts shorter than n add nothing.
    n = 1 and 2 are computed once per refresh (``analytics_diversity``).
    """
    if n in DISTINCT_NS:
        sql = f"SELECT setting_id, value FROM analytics_diversity WHERE n = {int(n)}"
    else:
        sql = distinct_n_sql(n)
    return {g: float(v) for g, v in con.execute(sql).fetchall()}


def setting_report(con, split: str = "seen") -> list[dict]:
    """One row per decoding setting with the figures listed in the module docstring.

    Each row carries ``setting``, the label people read (``T 0.5 · top-k 20``), beside
    its ``setting_id``.
    """
    with live_picks(con) as picked:
        rows = _setting_rows(con, split, picked)
        cols = [c[0] for c in rows.description]
        report = [dict(zip(cols, r, strict=True)) for r in rows.fetchall()]
    d1, d2 = distinct_n(con, 1), distinct_n(con, 2)
    for r in report:
        r["distinct_1"] = d1.get(r["setting_id"])
        r["distinct_2"] = d2.get(r["setting_id"])
        r["n_failed"] = int(r["n_failed"] or 0)
        r["text_sample"] = TEXTS_PER_SETTING
    return report


def _setting_rows(con, split: str, picked: str):
    return con.execute(
        """
        WITH s AS (
            SELECT setting_id, count(*) AS n, count(*) FILTER (WHERE {picked}) AS n_picks,
                   avg(s_task) AS task, avg(s_instr) AS instruction,
                   avg(s_faith) AS faithfulness, count(s_task) AS n_task,
                   count(s_instr) AS n_instruction, count(s_faith) AS n_faithfulness,
                   sum(n_failed) AS n_failed, avg(is_dup::INTEGER) AS dup_rate,
                   avg(n_words) AS mean_words, avg(n_chars) AS mean_chars
            FROM analytics_candidates a LEFT JOIN _live_picks _lp USING (candidate_id)
            WHERE split = ? GROUP BY setting_id
        )
        SELECT s.*, s.n_picks / nullif(sum(s.n_picks) OVER (), 0) AS pick_share,
               d.temperature, d.top_k, d.top_p, d.max_tokens, d.n AS n_per_example,
               coalesce({label}, s.setting_id) AS setting
        FROM s LEFT JOIN decoding_settings d USING (setting_id)
        ORDER BY d.temperature IS NULL, {order}, s.setting_id
        """.replace("{label}", setting_label_sql("d"))
        .replace("{order}", setting_order_sql("d"))
        .replace("{picked}", picked),
        [split],
    )


def suggest_grid(report: list[dict], rare_share: float = 0.02) -> dict:
    """Split the grid into settings to keep and settings to drop next round.

    A setting never wins when it has candidates but none was picked; it is rare when
    its share of picks is below ``rare_share``. Nothing is suggested before any pick.

    >>> r = [{"setting_id": "a", "n": 5, "n_picks": 4, "pick_share": 0.8},
    ...      {"setting_id": "b", "n": 5, "n_picks": 0, "pick_share": 0.0}]
    >>> suggest_grid(r)["drop"]
    ['b']
    """
    total = sum(r["n_picks"] or 0 for r in report)
    if total == 0:
        return {"keep": [], "drop": [], "rare": [], "note": "No picks yet: run a selection first."}
    drop = [r["setting_id"] for r in report if r["n"] and not r["n_picks"]]
    rare = [r["setting_id"] for r in report if r["n_picks"] and (r["pick_share"] or 0) < rare_share]
    keep = [
        r["setting_id"]
        for r in sorted(report, key=lambda r: -(r["pick_share"] or 0))
        if r["setting_id"] not in drop
    ]
    note = (
        f"{len(drop)} of {len(report)} settings never won a pick: drop them next round."
        if drop
        else "Every setting won at least one pick."
    )
    return {"keep": keep, "drop": drop, "rare": rare, "note": note}
