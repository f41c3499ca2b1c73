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
