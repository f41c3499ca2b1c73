"""Built-in offline benchmarks: test sets bundled with the app, scored with no API key.

A benchmark is a file under ``data/benchmarks`` plus how to import it. Installing one
is an ordinary import (the same importer, validation and content-hash dedupe as any
user file) into a test split, so an evaluation selects it like any test set
(:func:`benchmark_tests`) and never trains on it.

IFEval's 541 prompts go to ``test_unseen`` under source ``ifeval``. The demo already
holds 47 of them (38 in ``seen``, 9 in ``test_seen``, same ids and content): the import
dedupes them by content, so they keep their split. :func:`install_benchmark` says so
(``already_present``, ``in_seen``) and :func:`benchmark_tests` picks only the test
splits, so an evaluation on IFEval answers the 503 prompts the loop never trains on.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> r = install_benchmark(con, "ifeval")
>>> r["added"], r["already_present"], r["in_seen"], r["n_rows"]
(541, 0, 0, 541)
>>> install_benchmark(con, "ifeval")["added"]
0
>>> benchmark_tests("ifeval").sources
['ifeval']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from reset_core.evaluation.config import TestSet
from reset_core.paths import BENCHMARKS_DIR
from reset_core.store import one


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    #: the bundled file, under ``data/benchmarks``
    file: Path
    #: the import preset that reads it (``reset_core.ingest.presets``)
    preset: str
    source: str
    split: str
    kind: str
    license: str
    credit: str
    n_rows: int


BENCHMARKS: dict[str, Benchmark] = {
    "ifeval": Benchmark(
        name="ifeval",
        title="IFEval: instruction following by verifiable instructions (541 prompts)",
        file=BENCHMARKS_DIR / "ifeval_input_data.jsonl",
        preset="ifeval",
        source="ifeval",
        split="test_unseen",
        kind="instruction",
        license="CC BY 4.0",
        credit=(
            "Zhou et al. 2023, Instruction-Following Evaluation for Large Language Models "
            "(arXiv 2311.07911); google-research/google-research "
            "instruction_following_eval/data/input_data.jsonl at 19638399"
        ),
        n_rows=541,
    ),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; built in: {', '.join(BENCHMARKS)}") from None


def install_benchmark(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    """Import benchmark ``name`` through the normal importer; idempotent.

    Returns ``added`` (new examples), ``already_present`` (its prompts stored before,
    by content, which keep their split), ``in_seen`` (how many of its prompts sit in
    the ``seen`` split, i.e. are training data and so left out of its test set),
    ``installed`` (its prompts now stored in a test split), ``n_rows`` and ``import_id``.
    """
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file, read_examples

    b = get_benchmark(name)
    options = ImportOptions(preset=b.preset, source=b.source, split=b.split, kind=b.kind)
    parsed = read_examples(b.file, options)
    if parsed.table.num_rows != b.n_rows:
        raise ValueError(f"{b.file}: {parsed.table.num_rows} prompts, expected {b.n_rows}")
    result = import_file(con, b.file, options, parsed=parsed)
    con.register("_bench", parsed.table.select(["content_hash"]))
    try:
        by_split = dict(
            con.execute(
                "SELECT e.split, count(*) FROM examples e SEMI JOIN _bench b "
                "ON e.content_hash = b.content_hash GROUP BY ALL"
            ).fetchall()
        )
    finally:
        con.unregister("_bench")
    return {
        "name": name,
        "import_id": result.import_id,
        "n_rows": result.n_rows,
        "added": result.n_added,
        "already_present": result.n_duplicates,
        "in_seen": by_split.get("seen", 0),
        "installed": by_split.get("test_seen", 0) + by_split.get("test_unseen", 0),
    }


def benchmark_tests(name: str) -> TestSet:
    """The test set selecting benchmark ``name``: its source, test splits only (never
    training data), every prompt (count = its size)."""
    b = get_benchmark(name)
    return TestSet(sources=[b.source], splits=["test_seen", "test_unseen"], count=b.n_rows)


def benchmark_status(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per benchmark: name, title, installed (its source's examples in a test split),
    in_seen (its source's examples in ``seen``), total (its size), license, credit."""
    out = []
    for b in BENCHMARKS.values():
        test, seen = one(
            con,
            "SELECT count(*) FILTER (WHERE split <> 'seen'), count(*) FILTER (WHERE split = 'seen') "
            "FROM examples WHERE source = ?",
            [b.source],
        )
        out.append(
            {
                "name": b.name,
                "title": b.title,
                "installed": test,
                "in_seen": seen,
                "total": b.n_rows,
                "license": b.license,
                "credit": b.credit,
            }
        )
    return out
