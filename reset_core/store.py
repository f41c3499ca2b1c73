"""DuckDB store: opening the database, bulk ingest, and the queries the UI needs.

One writer: the app (or one CLI command) owns the read-write connection. Each thread
takes its own ``con.cursor()``. Workers never open the database; they write Parquet
shards that :func:`ingest_shards` loads by key, so loading a shard twice is a no-op.

>>> con = connect(":memory:")
>>> counts(con)["examples"]
0
"""

from __future__ import annotations

import glob
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from reset_core.migrations import migrate

#: Tables whose shards workers write, and the key that makes ingest idempotent.
SHARD_TARGETS: dict[str, tuple[str, ...]] = {
    "candidates": ("candidate_id",),
    "judgments": ("judgment_id",),
    "training_metrics": ("run_id", "step"),
}

#: The loop's stages, in order, as (label, table) for the home page and `db info`.
LOOP_TABLES: list[tuple[str, str]] = [
    ("examples", "examples"),
    ("candidates", "candidates"),
    ("judgments", "judgments"),
    ("picks", "selection_scores"),
    ("curated sets", "curated_sets"),
    ("training runs", "training_runs"),
    ("evaluations", "evaluations"),
]


class DatabaseBusy(RuntimeError):
    """Another process holds the database's write lock (DuckDB allows one writer).

    ``holder``: what holds it, as ``"pid N: its command line"`` when DuckDB names the
    process (it does on Linux), else None.
    """

    def __init__(self, message: str, holder: str | None = None):
        super().__init__(message)
        self.holder = holder


def lock_holder(error: str) -> str | None:
    """The process DuckDB's lock error names, with its command line where readable.

    >>> lock_holder('Could not set lock on "x": Conflicting lock is held in /bin/py (PID 999999999)')
    'pid 999999999: /bin/py'
    """
    import re

    m = re.search(r"held in (.*?) \(PID (\d+)\)", error)
    if not m:
        return None
    pid, exe = int(m.group(2)), m.group(1)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    except OSError:
        command = ""
    return f"pid {pid}: {command or exe}"


def one(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> tuple | None:
    """The first row of a query, with the result drained.

    DuckDB 2 refuses further work on a connection (``register``, …) while a result
    is only partly fetched, so never leave a ``fetchone()`` behind.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def database_key(con: duckdb.DuckDBPyConnection) -> str:
    """Which database ``con`` (a connection or one of its cursors) works on: its file.

    Every in-memory database answers ``":memory:"``: DuckDB names them all alike, so
    they share what is keyed on this (a lock is then merely coarser, never wrong).
    """
    row = one(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    return str(Path(row[0]).resolve()) if row and row[0] else ":memory:"


# Derived tables (the review queue, the analytics summaries) are rebuilt on read by
# whichever script run finds them stale. The app's script runs are threads sharing
# one connection through cursors, and two rebuilds of one table at once end in a
# DuckDB write-write conflict (or twice the work), so each (database, cache) has
# one lock in the process. Reentrant: a rebuild may call another that takes it.
_REBUILD_LOCKS: dict[tuple[str, str], threading.RLock] = {}
_REBUILD_LOCKS_GUARD = threading.Lock()


def rebuild_lock(con: duckdb.DuckDBPyConnection, cache: str) -> threading.RLock:
    """The process's lock for rebuilding ``cache`` in the database ``con`` works on.

    Hold it to rebuild, and check staleness again once it is held: the thread that
    held it before may just have done the same rebuild. Readers take no lock (a
    rebuild is one transaction, so they see the old rows or the new ones).

    >>> con = connect(":memory:")
    >>> rebuild_lock(con, "review_queue") is rebuild_lock(con.cursor(), "review_queue")
    True
    """
    key = (database_key(con), cache)
    with _REBUILD_LOCKS_GUARD:
        return _REBUILD_LOCKS.setdefault(key, threading.RLock())


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        holder = lock_holder(str(e))
        raise DatabaseBusy(
            f"{path} is open for writing in another process ("
            + (f"held by {holder}" if holder else str(e))
            + "). One process owns the database: stop the app (or the other command) "
            "first, or point this one at another file with --db / $RESET_STUDIO_DB.",
            holder=holder,
        ) from None
    if not read_only:
        migrate(con)
    return con


def insert_arrow(
    con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, on_conflict: str = "nothing"
) -> int:
    """Bulk-insert an Arrow table by column name; return rows written.

    ``on_conflict``: ``"nothing"`` keeps the stored row, ``"update"`` replaces it
    (used where a rerun legitimately supersedes, e.g. a retried failed judgment).
    """
    if data.num_rows == 0:
        return 0
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    before = _count(con, table)
    con.register("_incoming", data)
    try:
        verb = "OR IGNORE" if on_conflict == "nothing" else "OR REPLACE"
        con.execute(f"INSERT {verb} INTO {table} ({cols}) SELECT {cols} FROM _incoming")
    finally:
        con.unregister("_incoming")
    after = _count(con, table)
    return after - before if on_conflict == "nothing" else data.num_rows


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return one(con, f"SELECT count(*) FROM {table}")[0]


def ingest_shards(
    con: duckdb.DuckDBPyConnection,
    target: str,
    paths: str | Path | Iterable[str | Path],
    on_conflict: str = "nothing",
) -> int:
    """Load finished Parquet shards into ``target``; return the number of new rows.

    ``paths`` is a folder (every ``*.parquet`` in it), a glob, or a list of files.
    Files still being written have a temporary name (``*.parquet.tmp``) and are never
    matched. Idempotent twice over: shards already ingested are skipped by path, and
    rows are keyed (``SHARD_TARGETS``) so a shard re-written under another name adds
    nothing. All files of one call load in one transaction.

    >>> con = connect(":memory:")
    >>> ingest_shards(con, "candidates", [])
    0
    """
    if target not in SHARD_TARGETS:
        raise ValueError(
            f"unknown shard target {target!r}; expected one of {sorted(SHARD_TARGETS)}"
        )
    files = _shard_files(paths)
    if not files:
        return 0
    seen = {
        r[0]
        for r in con.execute(
            "SELECT path FROM ingested_shards WHERE path IN (SELECT unnest(?))", [files]
        ).fetchall()
    }
    new = [f for f in files if f not in seen]
    if not new:
        return 0
    cols = [r[0] for r in con.execute(f"DESCRIBE {target}").fetchall()]
    shard_cols = [
        r[0]
        for r in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?, union_by_name=true)", [new]
        ).fetchall()
    ]
    use = [c for c in cols if c in shard_cols]
    missing_keys = [k for k in SHARD_TARGETS[target] if k not in use]
    if missing_keys:
        raise ValueError(f"shards for {target} lack key column(s) {missing_keys}: {new[0]}")
    col_sql = ", ".join(f'"{c}"' for c in use)
    verb = "OR IGNORE" if on_conflict == "nothing" else "OR REPLACE"
    before = _count(con, target)
    con.execute("BEGIN TRANSACTION")
    try:
        # Dedupe inside the batch too: a resumed worker may have written a key twice.
        keys = ", ".join(SHARD_TARGETS[target])
        con.execute(
            f"INSERT {verb} INTO {target} ({col_sql}) "
            f"SELECT {col_sql} FROM read_parquet(?, union_by_name=true) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys}) = 1",
            [new],
        )
        con.execute(
            "INSERT INTO ingested_shards (path, target, n_rows) "
            "SELECT filename, ?, count(*) FROM read_parquet(?, filename=true) GROUP BY filename",
            [target, new],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return _count(con, target) - before


def _shard_files(paths: str | Path | Iterable[str | Path]) -> list[str]:
    if isinstance(paths, str | Path):
        p = Path(paths)
        found = sorted(glob.glob(str(p / "*.parquet"))) if p.is_dir() else sorted(glob.glob(str(p)))
    else:
        found = [str(x) for x in paths]
    return [str(Path(f).resolve()) for f in found if str(f).endswith(".parquet")]


#: What each of :func:`counts` counts, in words (the home page's metric help).
COUNT_HELP = {
    "examples": "Examples in the database, every split.",
    "candidates": "Generated answers, from every model and sampling job.",
    "judgments": "Verdicts: one per candidate, judge and aspect, failed ones included.",
    "picks": "Candidates picked by the latest scoring run (before reviewers' overrides).",
    "curated sets": "Frozen training sets.",
    "training runs": "Training runs started, whatever their status.",
    "evaluations": "Evaluations created (checkpoints compared on a frozen test set), whatever "
    "their status.",
}


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How far the loop has got: rows per stage (see :data:`COUNT_HELP`).

    Picks are those of the latest scoring run only: saving several runs must not
    multiply them.
    """
    from reset_core.scoring.queries import LATEST_SELECTION_SQL

    out = {}
    for label, table in LOOP_TABLES:
        where = (
            f" WHERE picked AND selection_id = ({LATEST_SELECTION_SQL})"
            if table == "selection_scores"
            else ""
        )
        out[label] = one(con, f"SELECT count(*) FROM {table}{where}")[0]
    return out
