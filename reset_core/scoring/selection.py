"""RESET scoring and selection: judgments -> one score per candidate -> picks per example.

``score = s_task + w·(I_instr·s_instr + I_faith·s_faith)`` with ``w = 2.0`` by default,
``I_instr = 1`` for open-ended (``instruction``) examples and ``I_faith = 1`` for
``context`` examples. Each ``s_*`` combines the valid verdicts of the chosen judges
for that aspect (mean, one named judge, or mean only where they agree within δ). A
candidate missing an aspect its kind needs has a NULL score: it is not rankable,
never scored as if the aspect were 0.

Presets: ``reset`` (top-1 per seen example), ``reset_s`` (top-1 only where the score
clears a threshold and the judges agree), ``custom`` (top-k, threshold, target size).
Human overrides (append-only ``overrides`` events) are applied on top by
:func:`override_state`: veto removes a candidate from picking, force picks it,
exclude drops the example; ``undo`` cancels an earlier event.

Everything runs in SQL so it stays fast at a million candidates.

The configuration is :class:`reset_core.scoring.config.SelectionConfig`; the
stored selections are read through :mod:`reset_core.scoring.queries`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa

from reset_core.scoring.config import SelectionConfig
from reset_core.scoring.queries import latest_selection, stored_picks


def override_state(con) -> pa.Table:
    """Current human overrides: (example, candidate, action) rows of veto/force/exclude.

    Derived by the review event model (:func:`reset_core.review.current_overrides`),
    so selection, exports and the review page agree on what an override means
    (undo, unveto/unforce/include, a later force replacing an earlier one).
    """
    from reset_core.review.events import current_overrides

    return current_overrides(con)


def _scores_sql(cfg: SelectionConfig) -> tuple[str, list]:
    """SQL for every candidate of the split: aspect scores, RESET score, rank, picked."""
    params: list = []
    judge_filter = ""
    if cfg.combine == "judge":
        pairs = ", ".join(["(?, ?)"] * len(cfg.judge_by_aspect))
        for a, j in cfg.judge_by_aspect.items():
            params += [a, j]
        judge_filter = (
            f"AND EXISTS (SELECT 1 FROM (VALUES {pairs}) v(a, j) "
            "WHERE v.a = aspect AND v.j = judge_id)"
        )
    elif cfg.judges:
        judge_filter = "AND judge_id IN (SELECT unnest(?))"
        params.append(list(cfg.judges))
    agree_val = "CASE WHEN spread <= ? THEN mean END" if cfg.combine == "agree" else "mean"
    w, thr, k = cfg.weight, cfg.effective_threshold(), cfg.k()
    sql = f"""
    WITH latest AS (
        SELECT candidate_id, judge_id, aspect, score FROM judgments
        WHERE score IS NOT NULL {judge_filter}
        QUALIFY row_number() OVER (
            PARTITION BY candidate_id, judge_id, aspect ORDER BY created_at DESC, judgment_id) = 1
    ),
    per_aspect AS (
        SELECT candidate_id, aspect, avg(score) AS mean, max(score) - min(score) AS spread,
               count(*) AS n
        FROM latest GROUP BY candidate_id, aspect
    ),
    cand AS (
        SELECT c.candidate_id, c.example_id, e.kind
        FROM candidates c JOIN examples e USING (example_id) WHERE e.split = ?
    ),
    wide AS (
        SELECT cand.candidate_id, cand.example_id, cand.kind,
            max({agree_val}) FILTER (WHERE aspect = 'task') AS s_task,
            max({agree_val}) FILTER (WHERE aspect = 'instruction') AS s_instr,
            max({agree_val}) FILTER (WHERE aspect = 'faithfulness') AS s_faith,
            coalesce(bool_and(spread <= ?) FILTER (WHERE aspect = 'task'
                OR (aspect = 'instruction' AND cand.kind = 'instruction')
                OR (aspect = 'faithfulness' AND cand.kind = 'context')), true) AS agree,
            max(n) FILTER (WHERE aspect = 'task') AS n_task,
            max(n) FILTER (WHERE aspect = 'instruction') AS n_instr,
            max(n) FILTER (WHERE aspect = 'faithfulness') AS n_faith
        FROM cand LEFT JOIN per_aspect USING (candidate_id)
        GROUP BY cand.candidate_id, cand.example_id, cand.kind
    ),
    scored AS (
        SELECT *,
            CASE WHEN s_task IS NULL
                   OR (kind = 'instruction' AND s_instr IS NULL)
                   OR (kind = 'context' AND s_faith IS NULL) THEN NULL
                 ELSE s_task + ? * (CASE WHEN kind = 'instruction' THEN s_instr ELSE 0 END
                                  + CASE WHEN kind = 'context' THEN s_faith ELSE 0 END)
            END AS score,
            nullif(concat_ws(', ',
                CASE WHEN s_task IS NULL THEN
                    'task' || CASE WHEN n_task > 0 THEN ' (judges disagree)' ELSE '' END END,
                CASE WHEN kind = 'instruction' AND s_instr IS NULL THEN
                    'instruction' || CASE WHEN n_instr > 0 THEN ' (judges disagree)' ELSE '' END END,
                CASE WHEN kind = 'context' AND s_faith IS NULL THEN
                    'faithfulness' || CASE WHEN n_faith > 0 THEN ' (judges disagree)' ELSE '' END END
            ), '') AS missing
        FROM wide
    ),
    with_ov AS (
        SELECT s.*,
            ex.example_id IS NOT NULL AS excluded,
            coalesce(ov.action = 'veto', false) AS vetoed,
            coalesce(ov.action = 'force', false) AS forced
        FROM scored s
        LEFT JOIN (SELECT DISTINCT example_id FROM _ov WHERE action = 'exclude'
                   AND candidate_id IS NULL) ex USING (example_id)
        LEFT JOIN (SELECT * FROM _ov WHERE candidate_id IS NOT NULL) ov
               ON ov.example_id = s.example_id AND ov.candidate_id = s.candidate_id
    ),
    ranked AS (
        SELECT *,
            CASE WHEN score IS NOT NULL AND NOT vetoed THEN row_number() OVER (
                PARTITION BY example_id, (score IS NOT NULL AND NOT vetoed)
                ORDER BY score DESC, candidate_id) END AS rank,
            count(*) FILTER (WHERE forced) OVER (PARTITION BY example_id) AS n_forced
        FROM with_ov
    ),
    eligible AS (
        SELECT *,
            rank IS NOT NULL AND NOT excluded AND NOT forced AND rank <= ? - n_forced
            {"AND score >= ?" if thr is not None else ""}
            {"AND agree" if cfg.needs_agreement() else ""} AS is_natural
        FROM ranked
    ),
    cut AS (
        SELECT *, CASE WHEN is_natural THEN row_number() OVER (
            PARTITION BY is_natural ORDER BY score DESC, candidate_id) END AS overall
        FROM eligible
    )
    SELECT candidate_id, example_id, kind, score, rank, s_task, s_instr, s_faith, agree,
        missing,
        (NOT excluded) AND (forced OR (is_natural {"AND overall <= ?" if cfg.target_size else ""}))
            AS picked,
        CASE WHEN excluded THEN 'exclude' WHEN forced THEN 'force' WHEN vetoed THEN 'veto' END
            AS override
    FROM cut
    """
    params.append(cfg.split)
    if cfg.combine == "agree":
        params += [cfg.delta] * 3
    params += [cfg.delta, w, k]
    if thr is not None:
        params.append(thr)
    if cfg.target_size:
        params.append(cfg.target_size)
    return sql, params


def score_candidates(con, cfg: SelectionConfig, overrides: pa.Table | None = None):
    """Every candidate of ``cfg.split`` with its aspect scores, RESET score, rank and pick.

    Returns an Arrow table. Nothing is stored; see :func:`save_selection`.
    """
    sql, params = _scores_sql(cfg)
    ov = overrides if overrides is not None else override_state(con)
    con.register("_ov", ov)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister("_ov")


@dataclass
class SelectionResult:
    selection_id: str | None
    n_candidates: int
    n_unrankable: int
    n_examples: int
    n_picked: int
    n_examples_with_pick: int
    n_changed: int | None  # examples whose picks differ from the compared selection
    compared_to: str | None


def _summary(t: pa.Table) -> dict:
    d = t.select(["example_id", "score", "picked"]).to_pandas()
    return {
        "n_candidates": len(d),
        "n_unrankable": int(d["score"].isna().sum()),
        "n_examples": int(d["example_id"].nunique()),
        "n_picked": int(d["picked"].sum()),
        "n_examples_with_pick": int(d.loc[d["picked"], "example_id"].nunique()),
    }


def _picks(t: pa.Table) -> dict[str, frozenset]:
    d = t.select(["example_id", "candidate_id", "picked"]).to_pandas()
    d = d[d["picked"]]
    return {e: frozenset(g["candidate_id"]) for e, g in d.groupby("example_id")}


def count_changed(old: dict[str, frozenset], new: dict[str, frozenset]) -> int:
    """Examples whose set of picks differs (gained, lost or swapped a pick)."""
    return sum(old.get(e, frozenset()) != new.get(e, frozenset()) for e in set(old) | set(new))


def preview_selection(con, cfg: SelectionConfig, against: str | None = None) -> SelectionResult:
    """Re-rank with ``cfg`` without storing; count picks changed against a stored selection."""
    t = score_candidates(con, cfg)
    against = against or latest_selection(con)
    changed = count_changed(stored_picks(con, against), _picks(t)) if against else None
    return SelectionResult(None, **_summary(t), n_changed=changed, compared_to=against)


def save_selection(con, cfg: SelectionConfig, against: str | None = None) -> SelectionResult:
    """Score, rank and pick with ``cfg`` and store it in ``selections``/``selection_scores``.

    ``n_changed`` counts the examples whose picks differ from ``against`` (default:
    the latest stored selection).

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute("INSERT INTO examples (example_id, instruction, kind, source, split, "
    ...                 "content_hash) VALUES ('e1', 'Say hi', 'instruction', 'demo', 'seen', 'h')")
    >>> _ = con.execute("INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, "
    ...     "sample_index, seed, text, engine) VALUES ('a', 'e1', 'm', 's', 0, 0, 'Hi!', 't'), "
    ...     "('b', 'e1', 'm', 's', 1, 1, 'Bye.', 't')")
    >>> _ = con.execute("INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, "
    ...     "status) VALUES ('j1', 'a', 'judge', 'task', 0.6, 'ok'), "
    ...     "('j2', 'a', 'judge', 'instruction', 0.9, 'ok'), ('j3', 'b', 'judge', 'task', 0.8, 'ok'), "
    ...     "('j4', 'b', 'judge', 'instruction', 0.3, 'ok')")
    >>> r = save_selection(con, SelectionConfig(preset="reset"))
    >>> r.n_candidates, r.n_picked, stored_picks(con, r.selection_id), r.n_changed
    (2, 1, {'e1': frozenset({'a'})}, None)
    >>> task_only = save_selection(con, SelectionConfig(weight=0))
    >>> stored_picks(con, task_only.selection_id), task_only.n_changed
    ({'e1': frozenset({'b'})}, 1)
    """
    against = against or latest_selection(con)
    t = score_candidates(con, cfg)
    sel_id = f"sel-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    changed = count_changed(stored_picks(con, against), _picks(t)) if against else None
    rows = t.select(
        ["candidate_id", "example_id", "score", "rank", "picked", "s_task", "s_instr", "s_faith"]
        + ["agree", "missing", "override"]
    )
    rows = rows.append_column("selection_id", pa.array([sel_id] * rows.num_rows, pa.string()))
    from reset_core.store import insert_arrow

    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO selections (selection_id, preset, config) VALUES (?, ?, ?)",
            [sel_id, cfg.preset, json.dumps(cfg.model_dump())],
        )
        insert_arrow(con, "selection_scores", rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return SelectionResult(sel_id, **_summary(t), n_changed=changed, compared_to=against)
