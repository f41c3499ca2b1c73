"""Reading stored selections: which one is the latest, and what it picked.

"The latest selection" is defined here once; the Review queue, analytics and curation
all default to it.

>>> from reset_core.store import connect
>>> latest_selection(connect(":memory:")) is None
True
"""

from __future__ import annotations

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
    """Scoring runs with their pick counts, newest first (a pandas DataFrame)."""
    return con.execute(
        "SELECT s.selection_id, s.preset, s.created_at, "
        "(SELECT count(*) FROM selection_scores x WHERE x.selection_id = s.selection_id AND x.picked)"
        " AS picks FROM selections s ORDER BY s.created_at DESC, s.selection_id"
    ).df()


def selection_rows(con, selection_id: str, picks_only: bool = True, limit: int = 200):
    """A window of a stored selection: per candidate its scores, rank and pick (DataFrame).

    Columns: example_id, setting (the candidate's decoding setting by its values),
    kind, rank, picked, score, s_task, s_instr, s_faith (rounded to 3 places), agree,
    missing, override, instruction, candidate (its text); by example, then rank (not
    rankable last). ``picks_only`` keeps the picked rows.

    >>> from reset_core.store import connect
    >>> selection_rows(connect(":memory:"), "sel-unknown").shape
    (0, 14)
    """
    from reset_core.sampling.settings import setting_label_sql

    return con.execute(
        f"SELECT s.example_id, coalesce({setting_label_sql('d')}, c.setting_id) AS setting, "
        "e.kind, s.rank, s.picked, round(s.score, 3) AS score, "
        "round(s.s_task, 3) AS s_task, round(s.s_instr, 3) AS s_instr, "
        "round(s.s_faith, 3) AS s_faith, s.agree, s.missing, s.override, "
        "e.instruction, c.text AS candidate FROM selection_scores s "
        "JOIN candidates c USING (candidate_id) JOIN examples e ON e.example_id = s.example_id "
        "LEFT JOIN decoding_settings d ON d.setting_id = c.setting_id "
        f"WHERE s.selection_id = ? {'AND s.picked' if picks_only else ''} "
        "ORDER BY s.example_id, s.rank NULLS LAST LIMIT ?",
        [selection_id, limit],
    ).df()
