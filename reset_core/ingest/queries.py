"""The examples as the Data and Sample pages see them: counts, breakdowns, filtered pages.

Everything is filtered, ordered and windowed in SQL; a page never loads the table.

>>> from reset_core.store import connect
>>> count_examples(connect(":memory:"), kinds=["context"])
0
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from reset_core.store import one


def example_breakdown(con: duckdb.DuckDBPyConnection, by: str) -> list[tuple[str, int]]:
    """Example counts grouped by ``kind``, ``source`` or ``split``."""
    if by not in ("kind", "source", "split"):
        raise ValueError(f"cannot group examples by {by!r}")
    return con.execute(
        f"SELECT {by}, count(*) AS n FROM examples GROUP BY {by} ORDER BY n DESC, {by}"
    ).fetchall()


def example_filter(
    kinds: Sequence[str] = (),
    sources: Sequence[str] = (),
    splits: Sequence[str] = (),
    search: str = "",
) -> tuple[str, list]:
    clauses, params = [], []
    for col, values in (("kind", kinds), ("source", sources), ("split", splits)):
        if values:
            clauses.append(f"{col} IN (SELECT unnest(?))")
            params.append(list(values))
    if search:
        clauses.append("(instruction ILIKE ? OR context ILIKE ?)")
        params += [f"%{search}%", f"%{search}%"]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def count_examples(con: duckdb.DuckDBPyConnection, **filters) -> int:
    """How many examples match the filters of :func:`examples_page`."""
    where, params = example_filter(**filters)
    return one(con, f"SELECT count(*) FROM examples{where}", params)[0]


def examples_page(
    con: duckdb.DuckDBPyConnection,
    *,
    kinds: Sequence[str] = (),
    sources: Sequence[str] = (),
    splits: Sequence[str] = (),
    search: str = "",
    page: int = 0,
    page_size: int = 50,
):
    """One page of examples as a pandas DataFrame, filtered, ordered and windowed in SQL.

    The UI never loads the whole table; pair with :func:`count_examples` for paging.

    >>> from reset_core.store import connect
    >>> examples_page(connect(":memory:"), kinds=["context"]).shape[0]
    0
    """
    where, params = example_filter(kinds, sources, splits, search)
    return con.execute(
        "SELECT example_id, kind, source, split, instruction, context, reference "
        f"FROM examples{where} ORDER BY source, example_id LIMIT ? OFFSET ?",
        [*params, page_size, page * page_size],
    ).df()


def distinct_values(con: duckdb.DuckDBPyConnection, column: str) -> list[str]:
    """Distinct values of an example column, for filter widgets."""
    if column not in ("kind", "source", "split"):
        raise ValueError(f"no filter on {column!r}")
    return [
        r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM examples ORDER BY 1").fetchall()
    ]
