"""Re-kind a source's stored examples, on request: the only way a stored kind changes.

Imports decide kinds once (a preset's role, an explicit kind, or ``auto`` for a column
mapping); nothing rewrites them silently afterwards. A person who imported a source
under an older rule, or with the wrong kind, asks for a re-kind here (``reset-studio
rekind``, the Data page). It runs in one transaction, says how many rows changed, and
logs itself in ``rekinds``, whose row count the derived summaries that cache kinds
(the Review queue, the analytics tables) include in their stamps, so they rebuild.
Stored selections are history and are left as scored; the result says how many of
them scored the changed examples under their old kinds.

>>> import json, tempfile
>>> from pathlib import Path
>>> from reset_core.ingest.config import ImportOptions
>>> from reset_core.ingest.importer import import_file
>>> from reset_core.store import connect
>>> tmp = tempfile.TemporaryDirectory()
>>> path = Path(tmp.name) / "pairs.jsonl"
>>> _ = path.write_text("".join(json.dumps(r) + "\\n" for r in [
...     {"instruction": "Name a colour.", "output": "Red."},
...     {"instruction": "Who wrote it?", "input": "Hamlet is by Shakespeare.", "output": "He did."}]))
>>> con = connect(":memory:")
>>> _ = import_file(con, path, ImportOptions(preset="alpaca", source="pairs", kind="context"))
>>> print(rekind_source(con, "pairs", "preset", dry_run=True).describe())
source pairs: 2 of 2 examples would change (context → instruction: 2)
>>> print(rekind_source(con, "pairs", "preset").describe())
source pairs: 2 of 2 examples changed (context → instruction: 2)
>>> rekind_source(con, "pairs", "instruction").n_changed
0
>>> tmp.cleanup()
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import duckdb

from reset_core.aspects import KINDS
from reset_core.ingest.presets import PRESET_KINDS
from reset_core.store import one

#: What a source can be re-kinded to: a kind for every row, or its import's preset role.
REKIND_TARGETS = (*KINDS, "preset")


class RekindRejected(ValueError):
    """A re-kind that cannot run; nothing was changed."""


@dataclass(frozen=True)
class RekindResult:
    source: str
    target: str
    n_examples: int
    #: ``(old kind, new kind) -> rows`` for the rows that change
    changes: dict[tuple[str, str], int]
    #: stored selections that scored changed examples under their old kinds
    n_selections: int
    dry_run: bool

    @property
    def n_changed(self) -> int:
        return sum(self.changes.values())

    def describe(self) -> str:
        """One line for the CLI and the Data page."""
        verb = "would change" if self.dry_run else "changed"
        text = f"source {self.source}: {self.n_changed} of {self.n_examples} examples {verb}"
        if self.changes:
            text += " (" + ", ".join(f"{a} → {b}: {n}" for (a, b), n in self.changes.items()) + ")"
        if self.n_selections:
            text += (
                f"; {self.n_selections} stored selection(s) scored them under their old kinds: "
                "score again to use the new ones"
            )
        return text


def _target_sql(target: str) -> str:
    """SQL for each example's new kind (over ``e`` joined to its import ``i``).

    Only fixed names (the kinds, the presets) go into the text, never user input.
    """
    if target in KINDS:
        return f"'{target}'"
    whens = " ".join(f"WHEN '{p}' THEN '{k}'" for p, k in PRESET_KINDS.items())
    return f"(CASE i.preset {whens} END)"


def rekind_source(
    con: duckdb.DuckDBPyConnection, source: str, target: str, dry_run: bool = False
) -> RekindResult:
    """Set the kind of every example of ``source`` to ``target`` in one transaction.

    ``target`` is ``instruction``, ``context`` or ``preset`` (the role the preset of
    each example's import declares; rejected when some were imported with a column
    mapping, which declares none). Rows already of the target kind are left alone.
    """
    if target not in REKIND_TARGETS:
        raise RekindRejected(f"kind: expected one of {', '.join(REKIND_TARGETS)}, got {target!r}")
    n_examples = one(con, "SELECT count(*) FROM examples WHERE source = ?", [source])[0]
    if not n_examples:
        known = [
            r[0] for r in con.execute("SELECT DISTINCT source FROM examples ORDER BY 1").fetchall()
        ]
        raise RekindRejected(
            f"source: no examples from {source!r}; sources: {', '.join(known) or 'none yet'}"
        )
    new_kind = _target_sql(target)
    scope = (
        f"FROM examples e LEFT JOIN imports i USING (import_id) WHERE e.source = ?"
        f" AND {new_kind} IS DISTINCT FROM e.kind"
    )
    if target == "preset":
        undeclared = con.execute(
            "SELECT coalesce(i.preset, 'no import record'), count(*) FROM examples e "
            "LEFT JOIN imports i USING (import_id) WHERE e.source = ? "
            "AND (i.preset IS NULL OR i.preset NOT IN (SELECT unnest(?))) GROUP BY 1 ORDER BY 1",
            [source, list(PRESET_KINDS)],
        ).fetchall()
        if undeclared:
            how = ", ".join(f"{n} via {p}" for p, n in undeclared)
            raise RekindRejected(
                f"kind: {source!r} has examples whose import declares no kind ({how}); "
                "choose instruction or context for the whole source"
            )
    changes = {
        (old, new): n
        for old, new, n in con.execute(
            f"SELECT e.kind, {new_kind}, count(*) {scope} GROUP BY ALL ORDER BY 1, 2",
            [source],
        ).fetchall()
    }
    n_selections = 0
    if changes:
        n_selections = one(
            con,
            "SELECT count(DISTINCT s.selection_id) FROM selection_scores s WHERE s.example_id IN "
            f"(SELECT e.example_id {scope})",
            [source],
        )[0]
    result = RekindResult(source, target, n_examples, changes, n_selections, dry_run)
    if dry_run or not changes:
        return result
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"UPDATE examples SET kind = t.new_kind FROM (SELECT e.example_id, {new_kind} AS "
            f"new_kind {scope}) t WHERE examples.example_id = t.example_id",
            [source],
        )
        con.execute(
            "INSERT INTO rekinds (rekind_id, source, target, n_changed, changes) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                uuid.uuid4().hex[:12],
                source,
                target,
                result.n_changed,
                json.dumps([{"from": a, "to": b, "n": n} for (a, b), n in changes.items()]),
            ],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return result


def rekind_log(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[tuple]:
    """The latest re-kinds, newest first: ``(created_at, source, target, n_changed)``.

    >>> from reset_core.store import connect
    >>> rekind_log(connect(":memory:"))
    []
    """
    return con.execute(
        "SELECT created_at, source, target, n_changed FROM rekinds "
        "ORDER BY created_at DESC LIMIT ?",
        [limit],
    ).fetchall()
