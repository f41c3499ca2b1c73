"""Reading stored selections: which one is the latest, and what it picked.

"The latest selection" is defined here once; the Review queue, analytics and curation
all default to it.

>>> from reset_core.store import connect
>>> latest_selection(connect(":memory:")) is None
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from reset_core.store import one

#: The newest selection; ties on the creation time go to the larger id.
LATEST_SELECTION_SQL = (
    "SELECT selection_id FROM selections ORDER BY created_at DESC, selection_id DESC LIMIT 1"
)


def latest_selection(con) -> str | None:
    """The id of the newest selection, or None before anything was scored."""
    row = one(con, LATEST_SELECTION_SQL)
    return row[0] if row else None


def stored_picks(con, selection_id: str) -> dict[str, frozenset]:
    """Each example's picked candidate ids in a stored selection."""
    rows = con.execute(
        "SELECT example_id, list(candidate_id) FROM selection_scores "
        "WHERE selection_id = ? AND picked GROUP BY example_id",
        [selection_id],
    ).fetchall()
    return {e: frozenset(c) for e, c in rows}


def list_selections(con):
    """Scoring runs with their panel and pick counts, newest first (a pandas DataFrame).

    Columns: selection_id, preset, panel (its name; NULL for selections saved before
    panels), scale (the panel's scale method), weight, created_at, picks.

    >>> from reset_core.store import connect
    >>> list(list_selections(connect(":memory:")).columns)
    ['selection_id', 'preset', 'panel', 'scale', 'weight', 'created_at', 'picks']
    """
    return con.execute(
        "SELECT s.selection_id, s.preset, "
        "coalesce(s.config->>'$.panel.name', s.config->>'$.panel') AS panel, "
        "s.config->>'$.panel.scale' AS scale, (s.config->>'$.weight')::DOUBLE AS weight, "
        "s.created_at, "
        "(SELECT count(*) FROM selection_scores x WHERE x.selection_id = s.selection_id AND x.picked)"
        " AS picks FROM selections s ORDER BY s.created_at DESC, s.selection_id"
    ).df()


def selection_rows(con, selection_id: str, picks_only: bool = True, limit: int = 200):
    """A window of a stored selection: per candidate its scores, rank and pick (DataFrame).

    Columns: example_id, setting (the candidate's decoding setting by its values),
    kind, rank, picked (the judges' pick), score, s_task, s_instr, s_faith (rounded to
    3 places), agree, missing, override (a reviewer's veto, force or exclusion in force
    now, read live), instruction, candidate (its text); by example, then rank (not
    rankable last). ``picks_only`` keeps the judges' picks.

    >>> from reset_core.store import connect
    >>> selection_rows(connect(":memory:"), "sel-unknown").shape
    (0, 14)
    """
    from reset_core.review.events import current_overrides
    from reset_core.sampling.settings import setting_label_sql

    con.register("_live_ov", current_overrides(con))
    try:
        return _selection_rows(con, selection_id, picks_only, limit, setting_label_sql("d"))
    finally:
        con.unregister("_live_ov")


def _selection_rows(con, selection_id, picks_only, limit, label_sql):
    return con.execute(
        f"SELECT s.example_id, coalesce({label_sql}, c.setting_id) AS setting, "
        "e.kind, s.rank, s.picked, round(s.score, 3) AS score, "
        "round(s.s_task, 3) AS s_task, round(s.s_instr, 3) AS s_instr, "
        "round(s.s_faith, 3) AS s_faith, s.agree, s.missing, "
        "coalesce(ex.action, ov.action) AS override, "
        "e.instruction, c.text AS candidate FROM selection_scores s "
        "JOIN candidates c USING (candidate_id) JOIN examples e ON e.example_id = s.example_id "
        "LEFT JOIN decoding_settings d ON d.setting_id = c.setting_id "
        "LEFT JOIN _live_ov ov ON ov.candidate_id = s.candidate_id "
        "LEFT JOIN (SELECT * FROM _live_ov WHERE action = 'exclude') ex "
        "ON ex.example_id = s.example_id "
        f"WHERE s.selection_id = ? {'AND s.picked' if picks_only else ''} "
        "ORDER BY s.example_id, s.rank NULLS LAST LIMIT ?",
        [selection_id, limit],
    ).df()


# ----------------------------------------------------------------------------- panels


def upsert_panel(con, name: str, config_json: str) -> None:
    """Store a panel's JSON under ``name``, replacing one of that name."""
    con.execute(
        "INSERT OR REPLACE INTO panels (name, config, created_at) VALUES (?, ?, now())",
        [name, config_json],
    )


def saved_panels(con) -> list[tuple[str, str]]:
    """(name, config JSON) of every saved panel, by name."""
    return [
        (n, c if isinstance(c, str) else json.dumps(c))
        for n, c in con.execute("SELECT name, config FROM panels ORDER BY name").fetchall()
    ]


def placeholder_judges(con) -> set[str]:
    """Judges whose verdicts are placeholders (the local stand-in server's)."""
    return {
        r[0]
        for r in con.execute(
            "SELECT judge_id FROM judges WHERE coalesce(placeholder, false)"
        ).fetchall()
    }


def scope_sql(model_ids: Sequence[str] | None, alias: str = "c") -> tuple[str, list]:
    """The candidates being ranked: a split, and these models (None = every model).

    Returns a SELECT of ``candidate_id, example_id, kind`` and its parameters after
    the split's (the caller passes ``[split, *params]``).
    """
    sql = (
        f"SELECT {alias}.candidate_id, {alias}.example_id, e.kind FROM candidates {alias} "
        f"JOIN examples e ON e.example_id = {alias}.example_id WHERE e.split = ?"
    )
    if model_ids is None:
        return sql, []
    return sql + f" AND {alias}.model_id IN (SELECT unnest(?))", [list(model_ids)]


def judges_with_verdicts(
    con, split: str, model_ids: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Per aspect, the judges with at least one valid verdict on the candidates in scope."""
    scope, params = scope_sql(model_ids)
    rows = con.execute(
        f"SELECT aspect, list(DISTINCT judge_id ORDER BY judge_id) FROM judgments "
        f"WHERE score IS NOT NULL AND candidate_id IN (SELECT candidate_id FROM ({scope})) "
        "GROUP BY aspect",
        [split, *params],
    ).fetchall()
    return dict(rows)


def judge_versions(con) -> str:
    """What the kept aspect scores depend on besides the panel and scope: a cheap stamp.

    Judgments, candidates and examples are only ever appended (keys, never replaced),
    so their row counts are a complete change counter; DuckDB answers ``count(*)``
    from table metadata. The judges' placeholder flags are a handful of rows. A
    re-kind (``rekinds``, one row per request) changes stored kinds, which the kept
    scores cache, so its count is part of the stamp too.
    """
    row = one(
        con,
        "SELECT * FROM (SELECT count(*) FROM judgments), (SELECT count(*) FROM candidates), "
        "(SELECT count(*) FROM examples), (SELECT count(*) FROM rekinds), "
        "(SELECT coalesce(string_agg(judge_id || ':' || coalesce(placeholder, false)::VARCHAR, "
        "',' ORDER BY judge_id), '') FROM judges)",
    )
    return hashlib.sha1(repr(row).encode()).hexdigest()[:16]


def scaled_verdicts_sql(
    scale: str, split: str, model_ids: Sequence[str] | None, in_scope: bool = True
) -> tuple[str, list]:
    """Each panel judge's latest valid verdict per candidate in scope, and its scaled score.

    A SELECT of ``candidate_id, judge_id, aspect, lin, scaled``:
    ``lin`` is the judge's own [0, 1] score (what ``agree`` compares), ``scaled`` the
    same on the panel's scale, computed per judge and aspect over the candidates in
    scope (see :data:`reset_core.scoring.panels.SCALE_HELP`). Parameters:
    ``[aspects, judge_ids, *params]`` where the two lists pair up the panel's (aspect,
    judge) choices and ``params`` is returned. ``in_scope=False`` keeps verdicts on
    candidates outside the scope (only for the linear scale, whose scores do not depend
    on the other candidates, when the caller joins the scope itself: it saves a
    semi-join over every judgment).
    """
    if not in_scope and scale != "linear":
        raise ValueError(f"scale: {scale} needs the scope's verdicts only (in_scope=True)")
    scope, params = scope_sql(model_ids)
    where = f"AND j.candidate_id IN (SELECT candidate_id FROM ({scope}))" if in_scope else ""
    over = "OVER (PARTITION BY judge_id, aspect"
    scaled = {
        "linear": "lin",
        "rank": f"percent_rank() {over} ORDER BY lin)",
        "standard": f"coalesce((lin - avg(lin) {over})) / nullif(stddev_pop(lin) {over}), 0), 0)",
    }[scale]
    sql = f"""
        WITH pj AS (SELECT unnest(?::VARCHAR[]) AS aspect, unnest(?::VARCHAR[]) AS judge_id),
        latest AS (
            -- the latest valid verdict per candidate, judge and aspect (a re-judged
            -- candidate counts once)
            SELECT j.candidate_id, j.judge_id, j.aspect, arg_max(j.score, j.created_at) AS lin
            FROM judgments j JOIN pj ON pj.judge_id = j.judge_id AND pj.aspect = j.aspect
            WHERE j.score IS NOT NULL {where}
            GROUP BY j.candidate_id, j.judge_id, j.aspect)
        SELECT candidate_id, judge_id, aspect, lin, {scaled} AS scaled
        FROM latest"""
    return sql, ([split, *params] if in_scope else [])


def judge_score_distribution(
    con, panel, split: str = "seen", model_ids: Sequence[str] | None = None, bins: int = 20
):
    """Each panel judge's score histogram per aspect, on the panel's scale (a DataFrame).

    Columns: ``judge_id, aspect, bin`` (0 … bins-1), ``lo, hi`` (the bin's edges on
    the scale), ``n`` (verdicts in the bin); bins with no verdict are left out.
    ``lo``/``hi`` are in [0, 1] for linear and rank; standardised scores span their
    own range per judge. What the Judge page draws so the user sees what the scale
    method did. ``panel``: a name or a :class:`~reset_core.scoring.panels.Panel`.

    >>> from reset_core.store import connect
    >>> judge_score_distribution(connect(":memory:"), "default").shape
    (0, 6)
    """
    from reset_core.scoring.panels import get_panel, resolve_panel

    panel = get_panel(con, panel)
    judges = resolve_panel(con, panel, split, model_ids)
    aspects = [a for a, ids in judges.items() for _ in ids]
    ids = [j for ids in judges.values() for j in ids]
    sql, params = scaled_verdicts_sql(panel.scale, split, model_ids)
    # [0, 1] scales share fixed bins so judges compare at a glance; z-scores have no bounds.
    edges = (
        "min(scaled) AS lo, max(scaled) AS hi"
        if panel.scale == "standard"
        else "0.0::DOUBLE AS lo, 1.0::DOUBLE AS hi"
    )
    return con.execute(
        f"""
        WITH v AS ({sql}),
        r AS (SELECT judge_id, aspect, {edges} FROM v GROUP BY ALL),
        b AS (SELECT v.judge_id, v.aspect, r.lo, r.hi,
                     least({bins - 1}, CASE WHEN r.hi > r.lo
                         THEN floor((v.scaled - r.lo) / (r.hi - r.lo) * {bins}) ELSE 0 END
                     )::INTEGER AS bin
              FROM v JOIN r USING (judge_id, aspect))
        SELECT judge_id, aspect, bin, any_value(lo) + bin * (any_value(hi) - any_value(lo)) / {bins}
                   AS lo,
               any_value(lo) + (bin + 1) * (any_value(hi) - any_value(lo)) / {bins} AS hi,
               count(*) AS n
        FROM b GROUP BY judge_id, aspect, bin ORDER BY judge_id, aspect, bin
        """,
        [aspects, ids, *params],
    ).df()
