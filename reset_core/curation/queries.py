"""What the Train page and the CLI read about curated sets: the list, a manifest, and
how many examples the MTL reference set can draw on.

>>> from reset_core.store import connect
>>> reference_counts(connect(":memory:"))
{}
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from reset_core.store import one


def reference_filter(kinds, sources, split) -> tuple[list[str], list]:
    """WHERE clauses for examples usable as MTL training data (they have a reference)."""
    where, params = ["split = ?", "reference IS NOT NULL", "trim(reference) <> ''"], [split]
    if kinds:
        where.append("kind IN (SELECT unnest(?))")
        params.append(list(kinds))
    if sources:
        where.append("source IN (SELECT unnest(?))")
        params.append(list(sources))
    return where, params


def list_sets(con):
    """Curated sets, newest first (a pandas DataFrame)."""
    return con.execute(
        "SELECT set_id, name, preset, selection_id, n_items, content_hash, created_at "
        "FROM curated_sets ORDER BY created_at DESC, set_id"
    ).df()


def set_size(con, set_id: str) -> int | None:
    """How many items a curated set holds (None: no such set).

    >>> from reset_core.store import connect
    >>> set_size(connect(":memory:"), "cs-none") is None
    True
    """
    row = one(con, "SELECT n_items FROM curated_sets WHERE set_id = ?", [set_id])
    return None if row is None else row[0]


def manifest(con, set_id: str) -> dict:
    """The stored manifest of a set."""
    row = one(con, "SELECT manifest FROM curated_sets WHERE set_id = ?", [set_id])
    if row is None:
        raise KeyError(f"no curated set {set_id!r}")
    return json.loads(row[0]) if isinstance(row[0], str) else row[0]


def reference_counts(
    con, *, kinds: Sequence[str] = (), sources: Sequence[str] = (), split: str = "seen"
) -> dict[str, int]:
    """Examples with a reference answer, by kind: what :func:`create_reference_set` can use."""
    where, params = reference_filter(kinds, sources, split)
    return dict(
        con.execute(
            f"SELECT kind, count(*) FROM examples WHERE {' AND '.join(where)} GROUP BY kind "
            "ORDER BY kind",
            params,
        ).fetchall()
    )
