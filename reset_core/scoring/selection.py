"""RESET scoring and selection: kept aspect scores -> one score per candidate -> picks.

``score = s_task + w·(I_instr·s_instr + I_faith·s_faith)`` with ``w = 2.0`` by default,
``I_instr = 1`` for open-ended (``instruction``) examples and ``I_faith = 1`` for
``context`` examples. Each ``s_*`` is what the selection's judge panel makes of the
verdicts (:mod:`reset_core.scoring.panels`: which judges, on which scale, combined
how), kept per candidate in ``aspect_scores`` (:mod:`reset_core.scoring.aspect_scores`)
so that a weight or preset change reads one table. A candidate missing an aspect its
kind needs has a NULL score: it is not rankable, never scored as if the aspect were 0.

Presets: ``reset`` (top-1 per example), ``reset_s`` (RESET-S: the best-scored
fraction of those picks, :mod:`reset_core.scoring.reset_s`, the same cut curation
makes), ``custom`` (top-k, threshold, target size). Candidates come from one model
unless asked otherwise: the round's policy (``SelectionConfig.model_scope``).

Stored selections hold the judges' picks only. Human overrides are applied when
picks are read, in one place: :func:`reset_core.review.events.effective_picks`, so
an override (or lifting one) made after saving takes effect at once everywhere.

The configuration is :class:`reset_core.scoring.config.SelectionConfig`; the
stored selections are read through :mod:`reset_core.scoring.queries`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa

from reset_core.scoring import queries
from reset_core.scoring.aspect_scores import Scope, ensure_aspect_scores
from reset_core.scoring.config import SelectionConfig
from reset_core.scoring.panels import Panel, get_panel
from reset_core.scoring.queries import latest_selection
from reset_core.scoring.reset_s import keep_best_sql
from reset_core.store import one

__all__ = [
    "SelectionConfig",
    "SelectionResult",
    "count_changed",
    "prepare",
    "preview_selection",
    "save_selection",
    "score_candidates",
]


#: The round's policy per (database file, split, data stamp): finding it scans every
#: candidate (about half a second at a million), too slow to repeat on each re-rank.
_POLICY_CACHE: dict[tuple, list[str] | None] = {}


def _model_scope(con, cfg: SelectionConfig) -> list[str] | None:
    """``cfg.model_scope(con)``, remembered while candidates, examples and models stand still."""
    if cfg.all_models or cfg.model_ids:
        return cfg.model_scope(con)
    path = one(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    if not path or not path[0]:  # an in-memory database has no identity to key on
        return cfg.model_scope(con)
    models = one(con, "SELECT count(*), max(created_at)::VARCHAR FROM models")
    key = (path[0], cfg.split, queries.judge_versions(con), models)
    if key not in _POLICY_CACHE:
        if len(_POLICY_CACHE) > 64:
            _POLICY_CACHE.clear()
        _POLICY_CACHE[key] = cfg.model_scope(con)
    return _POLICY_CACHE[key]


def prepare(con, cfg: SelectionConfig) -> Scope:
    """The kept aspect scores ``cfg`` ranks from: its panel on its split and model scope.

    Builds them when missing or stale (seconds at a million candidates), else returns
    at once; pages call it once before a series of live re-ranks.
    """
    panel: Panel = get_panel(con, cfg.panel)
    return ensure_aspect_scores(con, panel, cfg.split, _model_scope(con, cfg))


def _ranking_ctes(cfg: SelectionConfig, full_rank: bool) -> str:
    """CTEs ``s`` (every candidate in scope with its RESET score) … ``picks``.

    ``full_rank`` adds ``ranked`` (each candidate's rank in its example), needed to
    store a selection; a preview of top-1 presets takes each example's best with one
    aggregate instead of ranking every candidate. Both break ties by candidate id.
    Parameter: the scope id. Numbers are validated floats/ints and written inline.
    """
    w = float(cfg.weight)
    strict = " AND agree" if cfg.require_agreement else ""
    k = cfg.k()
    thr = "" if cfg.threshold is None else f" AND score >= {float(cfg.threshold)!r}"
    missing = (
        "coalesce(missing, CASE WHEN NOT agree THEN 'judges disagree' END)"
        if cfg.require_agreement
        else "missing"
    )
    ctes = [
        f"""s AS (
            SELECT candidate_id, example_id, kind, s_task, s_instr, s_faith, agree,
                   {missing} AS missing,
                   CASE WHEN missing IS NULL{strict} THEN s_task + {w!r} * CASE kind
                       WHEN 'instruction' THEN s_instr ELSE s_faith END END AS score
            FROM aspect_scores WHERE scope = ?)"""
    ]
    if full_rank:
        ctes.append(
            """ranked AS (
            SELECT *, CASE WHEN score IS NOT NULL THEN row_number() OVER (
                PARTITION BY example_id ORDER BY score DESC NULLS LAST, candidate_id) END AS rank
            FROM s)"""
        )
        top = f"SELECT example_id, candidate_id, kind, score FROM ranked WHERE rank <= {k}{thr}"
    elif k == 1:
        top = (
            "SELECT example_id, arg_min(candidate_id, (-score, candidate_id)) AS candidate_id, "
            "any_value(kind) AS kind, max(score) AS score FROM s "
            f"WHERE score IS NOT NULL{thr} GROUP BY example_id"
        )
    else:
        top = (
            f"SELECT example_id, candidate_id, kind, score FROM s WHERE score IS NOT NULL{thr} "
            "QUALIFY row_number() OVER (PARTITION BY example_id "
            f"ORDER BY score DESC, candidate_id) <= {k}"
        )
    ctes.append(f"top AS ({top})")
    cut = keep_best_sql("top", cfg.reset_s_fraction) if cfg.preset == "reset_s" else "FROM top"
    ctes.append(f"cut AS ({cut})")
    target = (
        f" QUALIFY row_number() OVER (ORDER BY score DESC, candidate_id) <= {cfg.target_size}"
        if cfg.target_size
        else ""
    )
    ctes.append(
        f"picks AS MATERIALIZED (SELECT example_id, candidate_id, kind, score FROM cut{target})"
    )
    return "WITH " + ",\n".join(ctes)


def score_candidates(con, cfg: SelectionConfig) -> pa.Table:
    """Every candidate in ``cfg``'s scope with its aspect scores, RESET score, rank and pick.

    Returns an Arrow table (``candidate_id, example_id, kind, score, rank, s_task,
    s_instr, s_faith, agree, missing, picked``): the judges' picks, no overrides.
    Nothing is stored; see :func:`save_selection`.
    """
    scope = prepare(con, cfg)
    return con.sql(
        _ranking_ctes(cfg, full_rank=True)
        + """
        SELECT r.candidate_id, r.example_id, r.kind, r.score, r.rank, r.s_task, r.s_instr,
               r.s_faith, r.agree, r.missing, p.candidate_id IS NOT NULL AS picked
        FROM ranked r LEFT JOIN picks p ON p.candidate_id = r.candidate_id
        ORDER BY r.example_id, r.rank NULLS LAST, r.candidate_id""",
        params=[scope.scope_id],
    ).to_arrow_table()


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
    panel: Panel | None = None  # the panel used, in full
    judges: dict[str, list[str]] = field(default_factory=dict)  # the panel resolved
    model_ids: list[str] | None = None  # the models ranked (None: every model)


#: What a preview reports beyond the kept counts: picks and how many examples changed.
_SUMMARY = """
    old AS (SELECT example_id, candidate_id FROM selection_scores
            WHERE selection_id = ? AND picked),
    diff AS (SELECT example_id FROM (
                 (SELECT example_id, candidate_id FROM picks
                  EXCEPT SELECT example_id, candidate_id FROM old)
                 UNION ALL
                 (SELECT example_id, candidate_id FROM old
                  EXCEPT SELECT example_id, candidate_id FROM picks)))
    SELECT (SELECT count(*) FROM picks), (SELECT count(DISTINCT example_id) FROM picks),
           (SELECT count(DISTINCT example_id) FROM diff)
"""

#: The same when each example has at most one new pick (top-1 presets): one join on
#: the example instead of two set differences over (example, candidate) pairs.
_SUMMARY_TOP1 = """
    old AS (SELECT example_id, candidate_id FROM selection_scores
            WHERE selection_id = ? AND picked)
    SELECT (SELECT count(*) FROM picks), (SELECT count(*) FROM picks),
           (SELECT count(DISTINCT coalesce(n.example_id, o.example_id))
            FROM picks n FULL JOIN old o ON n.example_id = o.example_id
            WHERE n.candidate_id IS DISTINCT FROM o.candidate_id)
"""


def _stored_summary(k: int) -> str:
    """The pick counts of a just-stored selection (no second ranking). Params: its id, against."""
    summary = _SUMMARY_TOP1 if k == 1 else _SUMMARY
    return (
        "WITH picks AS (SELECT example_id, candidate_id FROM selection_scores "
        "WHERE selection_id = ? AND picked)," + summary
    )


def _result(row, sel_id, against, scope: Scope) -> SelectionResult:
    return SelectionResult(
        sel_id,
        *row[:5],
        n_changed=row[5] if against else None,
        compared_to=against,
        panel=scope.panel,
        judges=scope.judges,
        model_ids=scope.model_ids,
    )


def count_changed(old: dict[str, frozenset], new: dict[str, frozenset]) -> int:
    """Examples whose set of picks differs (gained, lost or swapped a pick)."""
    return sum(old.get(e, frozenset()) != new.get(e, frozenset()) for e in set(old) | set(new))


def preview_selection(con, cfg: SelectionConfig, against: str | None = None) -> SelectionResult:
    """Re-rank with ``cfg`` without storing; count picks changed against a stored selection.

    Reads only the kept aspect scores (built first if stale, see :func:`prepare`), so a
    weight or preset change is one query. ``against`` defaults to the latest selection.
    """
    scope = prepare(con, cfg)
    against = against or latest_selection(con)
    summary = _SUMMARY_TOP1 if cfg.k() == 1 else _SUMMARY
    row = one(con, _ranking_ctes(cfg, full_rank=False) + "," + summary, [scope.scope_id, against])
    # Counts that do not depend on the weight come with the kept scores.
    unrankable = scope.n_unrankable + (scope.n_disagree if cfg.require_agreement else 0)
    return _result((scope.n_candidates, unrankable, scope.n_examples, *row), None, against, scope)


def save_selection(con, cfg: SelectionConfig, against: str | None = None) -> SelectionResult:
    """Score, rank and pick with ``cfg`` and store it in ``selections``/``selection_scores``.

    Stores the judges' picks only (overrides are applied when read). The selection's
    config records the panel in full, the judges it resolved to and the models ranked.
    ``n_changed`` counts the examples whose picks differ from ``against`` (default:
    the latest stored selection).

    >>> from reset_core.scoring.queries import stored_picks
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
    >>> r.judges, r.model_ids
    ({'task': ['judge'], 'instruction': ['judge'], 'faithfulness': []}, ['m'])
    >>> task_only = save_selection(con, SelectionConfig(weight=0))
    >>> stored_picks(con, task_only.selection_id), task_only.n_changed
    ({'e1': frozenset({'b'})}, 1)
    """
    scope = prepare(con, cfg)
    against = against or latest_selection(con)
    sel_id = f"sel-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    record = cfg.model_dump(mode="json")
    record.update(
        panel=scope.panel.model_dump(mode="json"),
        judges_used=scope.judges,
        model_ids=scope.model_ids or [],
        all_models=scope.model_ids is None,
        scope=scope.scope_id,
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO selections (selection_id, preset, config) VALUES (?, ?, ?)",
            [sel_id, cfg.preset, json.dumps(record)],
        )
        # Top-k alone is a flag on the rank; a RESET-S cut or a target size needs the picks.
        simple = cfg.preset != "reset_s" and not cfg.target_size
        thr = "" if cfg.threshold is None else f" AND r.score >= {float(cfg.threshold)!r}"
        picked = (
            f"coalesce(r.rank <= {cfg.k()}{thr}, false)"
            if simple
            else ("p.candidate_id IS NOT NULL")
        )
        join = "" if simple else "LEFT JOIN picks p ON p.candidate_id = r.candidate_id"
        con.execute(
            "INSERT INTO selection_scores (selection_id, candidate_id, example_id, score, rank, "
            "picked, s_task, s_instr, s_faith, agree, missing) "
            + _ranking_ctes(cfg, full_rank=True)
            + f"""
            SELECT ?, r.candidate_id, r.example_id, r.score, r.rank, {picked},
                   r.s_task, r.s_instr, r.s_faith, r.agree, r.missing
            FROM ranked r {join}""",
            [scope.scope_id, sel_id],
        )
        row = one(con, _stored_summary(cfg.k()), [sel_id, against])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    unrankable = scope.n_unrankable + (scope.n_disagree if cfg.require_agreement else 0)
    return _result((scope.n_candidates, unrankable, scope.n_examples, *row), sel_id, against, scope)


def judge_picks(con, cfg: SelectionConfig) -> pa.Table:
    """The judges' picks under ``cfg``: (example_id, candidate_id) rows, no overrides.

    The same picks as :func:`score_candidates` ``.filter(picked)``, through the preview's
    path (each example's best by one aggregate, no full ranking): 0.9 s instead of 4.7 s
    at a million candidates. The Agreement page compares two panels with it.

    >>> from reset_core.store import connect
    >>> judge_picks(connect(":memory:"), SelectionConfig()).num_rows
    0
    """
    scope = prepare(con, cfg)
    return con.sql(
        _ranking_ctes(cfg, full_rank=False) + " SELECT example_id, candidate_id FROM picks",
        params=[scope.scope_id],
    ).to_arrow_table()
