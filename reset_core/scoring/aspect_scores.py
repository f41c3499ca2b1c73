"""Per-candidate aspect scores under a panel, kept so a re-rank never re-aggregates judgments.

Turning verdicts into ``s_task``, ``s_instr`` and ``s_faith`` (latest valid verdict
per judge, the panel's scale per judge and aspect, the panel's combination rule) is
the expensive part of scoring: seconds over millions of judgments. It depends only
on the panel, the split, the model scope and the judgments, not on the weight or the
preset, so it is done once per (panel, split, model scope) into ``aspect_scores``
and rebuilt only when its inputs change (the stamp below, as ``review_queue_state``
does for the Review queue). A weight or preset change then reads one table.

Columns per candidate: ``s_task, s_instr, s_faith`` (the combined score of each
aspect, NULL when no panel judge gave a valid verdict, or, with ``combine=agree``,
when they disagree), ``agree`` (the judges' linear scores are within the panel's
delta on every aspect the candidate's kind needs; true with one judge) and
``missing`` (why the candidate is not rankable, NULL when it is).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from reset_core.scoring import queries
from reset_core.scoring.panels import Panel, resolve_panel
from reset_core.store import one

#: Scopes kept at once; older ones are dropped when a new one is built (each holds a
#: row per candidate, and a user compares a few panels at a time).
KEEP_SCOPES = 4


@dataclass(frozen=True)
class Scope:
    """One kept set of aspect scores: what it was built from."""

    scope_id: str
    panel: Panel
    judges: dict[str, list[str]]  # the panel resolved: judges used per aspect
    split: str
    model_ids: list[str] | None  # None: every model
    built: bool  # whether this call (re)built it
    seconds: float  # time of the last build
    n_candidates: int = 0  # candidates in scope
    n_examples: int = 0  # their examples
    n_unrankable: int = 0  # missing an aspect their kind needs
    n_disagree: int = 0  # rankable, but the panel's judges disagree (beyond delta)


def scope_id(panel: Panel, split: str, model_ids: Sequence[str] | None) -> str:
    """The key of a (panel, split, model scope): equal for panels that score alike."""
    models = None if model_ids is None else sorted(model_ids)
    key = json.dumps([panel.fingerprint(), split, models])
    return "as-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def _aggregate_sql(
    panel: Panel, judges: dict[str, list[str]], split: str, model_ids: Sequence[str] | None
) -> tuple[str, list]:
    """SELECT of one row per candidate in scope with its combined aspect scores."""
    # Linear scores need no scope statistics: the final join to the scope filters them.
    verdicts, params = queries.scaled_verdicts_sql(
        panel.scale, split, model_ids, in_scope=panel.scale != "linear"
    )
    aspects = [a for a, ids in judges.items() for _ in ids]
    ids = [j for ids in judges.values() for j in ids]
    scope, scope_params = queries.scope_sql(model_ids)
    delta = float(panel.delta)
    cols = {"task": "task", "instruction": "instr", "faithfulness": "faith"}
    # One pass over the verdicts, grouped by candidate: per aspect the mean of the
    # scaled scores, the spread of the linear ones (agreement) and how many judges.
    per_aspect = ",\n".join(
        f"avg(scaled) FILTER (WHERE aspect = '{a}') AS m_{c}, "
        f"max(lin) FILTER (WHERE aspect = '{a}') - min(lin) FILTER (WHERE aspect = '{a}') "
        f"AS sp_{c}, count(*) FILTER (WHERE aspect = '{a}') AS n_{c}"
        for a, c in cols.items()
    )

    def value(c: str) -> str:
        if panel.combine == "agree":
            return f"CASE WHEN sp_{c} <= {delta!r} THEN m_{c} END"
        return f"m_{c}"

    def missing(aspect: str, c: str, kind: str | None) -> str:
        need = f"cand.kind = '{kind}' AND " if kind else ""
        return (
            f"CASE WHEN {need}({value(c)}) IS NULL THEN '{aspect}' || "
            f"CASE WHEN coalesce(n_{c}, 0) > 0 THEN ' (judges disagree)' ELSE '' END END"
        )

    sql = f"""
        WITH v AS ({verdicts}),
        wide AS (SELECT candidate_id, {per_aspect} FROM v GROUP BY candidate_id),
        cand AS ({scope})
        SELECT cand.candidate_id, cand.example_id, cand.kind,
            {value("task")} AS s_task, {value("instr")} AS s_instr, {value("faith")} AS s_faith,
            coalesce(sp_task, 0) <= {delta!r}
                AND coalesce(CASE WHEN cand.kind = 'instruction' THEN sp_instr
                                  ELSE sp_faith END, 0) <= {delta!r} AS agree,
            nullif(concat_ws(', ',
                {missing("task", "task", None)},
                {missing("instruction", "instr", "instruction")},
                {missing("faithfulness", "faith", "context")}), '') AS missing
        FROM cand LEFT JOIN wide USING (candidate_id)
    """
    return sql, [aspects, ids, *params, split, *scope_params]


def ensure_aspect_scores(
    con,
    panel: Panel,
    split: str = "seen",
    model_ids: Sequence[str] | None = None,
    force: bool = False,
) -> Scope:
    """The kept aspect scores of (panel, split, models), (re)built if missing or stale.

    ``panel`` must be a :class:`Panel` (resolve a name with
    :func:`~reset_core.scoring.panels.get_panel`); ``model_ids`` None = every model.
    Cheap when fresh (a stamp of row counts); a rebuild is one ``INSERT … SELECT``
    in a transaction, so readers see the old or the new scores, never a mix.
    """
    sid = scope_id(panel, split, model_ids)
    stamp = queries.judge_versions(con)
    models = None if model_ids is None else sorted(model_ids)
    if not force:
        fresh = _stored(con, sid, panel, split, models, built=False)
        if fresh is not None and fresh[0] == stamp:
            return fresh[1]
    t0 = time.perf_counter()
    judges = resolve_panel(con, panel, split, model_ids)
    sql, params = _aggregate_sql(panel, judges, split, model_ids)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM aspect_scores WHERE scope = ?", [sid])
        con.execute("DELETE FROM aspect_scores_state WHERE scope = ?", [sid])
        stale = [
            r[0]
            for r in con.execute(
                "SELECT scope FROM aspect_scores_state ORDER BY built_at DESC, scope "
                f"OFFSET {KEEP_SCOPES - 1}"
            ).fetchall()
        ]
        if stale:
            con.execute("DELETE FROM aspect_scores WHERE scope IN (SELECT unnest(?))", [stale])
            con.execute(
                "DELETE FROM aspect_scores_state WHERE scope IN (SELECT unnest(?))", [stale]
            )
        con.execute(
            f"INSERT INTO aspect_scores SELECT ?::VARCHAR AS scope, * FROM ({sql})",
            [sid, *params],
        )
        seconds = time.perf_counter() - t0
        con.execute(
            "INSERT INTO aspect_scores_state (scope, stamp, panel, judges, split, model_ids, "
            "n_candidates, n_examples, n_unrankable, n_disagree, seconds) "
            "SELECT ?, ?, ?, ?, ?, ?, count(*), count(DISTINCT example_id), "
            "count(*) FILTER (WHERE missing IS NOT NULL), "
            "count(*) FILTER (WHERE missing IS NULL AND NOT agree), ? "
            "FROM aspect_scores WHERE scope = ?",
            [
                sid,
                stamp,
                panel.model_dump_json(),
                json.dumps(judges),
                split,
                json.dumps(models),
                seconds,
                sid,
            ],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return _stored(con, sid, panel, split, models, built=True)[1]


def _stored(con, sid, panel, split, models, built: bool) -> tuple[str, Scope] | None:
    """(stamp, Scope) of a kept scope as its state row says, or None."""
    row = one(
        con,
        "SELECT stamp, judges, seconds, n_candidates, n_examples, n_unrankable, n_disagree "
        "FROM aspect_scores_state WHERE scope = ?",
        [sid],
    )
    if row is None:
        return None
    judges = json.loads(row[1]) if isinstance(row[1], str) else row[1]
    return row[0], Scope(sid, panel, judges, split, models, built, row[2], *row[3:])


def plain_scores_sql(
    panel: Panel, judges: dict[str, list[str]], split: str, model_ids: Sequence[str] | None
) -> tuple[str, list]:
    """The aggregation as one query from raw judgments (what a re-rank costs without keeping).

    The same SELECT :func:`ensure_aspect_scores` stores, with its parameters; the
    bench times it as the baseline. ``judges``: the panel resolved
    (:func:`~reset_core.scoring.panels.resolve_panel`).
    """
    return _aggregate_sql(panel, judges, split, model_ids)
