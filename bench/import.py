"""Import throughput: our validated import against DuckDB's own read_json, same file, same run.

Builds a JSONL file of N Alpaca-shaped rows from the real Alpaca sample in
../shared/data (rows recycled with a numbered suffix so none is a duplicate), then
times, interleaved over several rounds:

* ``raw``:  ``CREATE TABLE t AS SELECT * FROM read_json(file)`` in a fresh DuckDB, both
  into a database file (like-for-like: our import persists its rows too) and in memory;
* ``ours``: ``reset_core.ingest.import_file`` into a fresh migrated database (parse,
  validate every field, hash for dedupe, assign kind and split, one transaction).

    python bench/import.py [--rows 100000] [--rounds 3]

Target: ours costs at most 3x the raw read. Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from reset_core.ingest.config import ImportOptions
from reset_core.ingest.importer import import_file
from reset_core.store import connect

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def make_file(path: Path, rows: int) -> None:
    src = SHARED / "alpaca" / "alpaca_5000.json"
    base = json.loads(src.read_text())
    with path.open("w") as f:
        for i in range(rows):
            r = base[i % len(base)]
            f.write(json.dumps({**r, "instruction": f"{r['instruction']} (#{i})"}) + "\n")


def time_raw(path: Path, db: str) -> float:
    """DuckDB's own read_json into a table: in memory, or into a database file like ours."""
    con = duckdb.connect(db)
    t = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{path}', format='newline_delimited')")
    con.execute("CHECKPOINT") if db != ":memory:" else None
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed


def time_ours(path: Path, tmp: Path, i: int) -> float:
    con = connect(tmp / f"bench-{i}.duckdb")
    t = time.perf_counter()
    result = import_file(con, path, ImportOptions(preset="alpaca"))
    elapsed = time.perf_counter() - t
    assert result.n_added > 0
    con.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rows", type=int, default=100_000, help="rows in the JSONL file (default 100000)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "rows.jsonl"
        make_file(path, args.rows)
        raw_mem, raw_file, ours = [], [], []
        for i in range(args.rounds):
            raw_mem.append(time_raw(path, ":memory:"))
            raw_file.append(time_raw(path, str(tmp / f"raw-{i}.duckdb")))
            ours.append(time_ours(path, tmp, i))
    mem_s, file_s, ours_s = (statistics.median(x) for x in (raw_mem, raw_file, ours))
    figures = {
        "rows": args.rows,
        "raw_read_json_memory_rows_per_s": round(args.rows / mem_s),
        "raw_read_json_to_file_rows_per_s": round(args.rows / file_s),
        "ours_import_rows_per_s": round(args.rows / ours_s),
        "ours_over_raw_file_time_ratio": round(ours_s / file_s, 2),
        "ours_over_raw_memory_time_ratio": round(ours_s / mem_s, 2),
        "target_max_ratio": 3.0,
    }
    print(f"{'method':<40}{'median s':>10}{'rows/s':>12}")
    for label, sec in (
        ("duckdb read_json into memory", mem_s),
        ("duckdb read_json into a database file", file_s),
        ("reset_core import_file (database file)", ours_s),
    ):
        print(f"{label:<40}{sec:>10.3f}{round(args.rows / sec):>12,}")
    print(
        f"ours costs {figures['ours_over_raw_file_time_ratio']}x the raw read persisted to a file "
        f"(target <= 3x) and {figures['ours_over_raw_memory_time_ratio']}x an in-memory raw read"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
