"""Shard ingest throughput: ``reset-studio ingest`` against DuckDB's raw ``read_parquet`` insert.

Writes ``--candidates`` candidates (default 1,000,000) as ``--folders`` shard folders
(default 4, as four GPU machines would), in parts of ``--part-rows`` rows (default
1,024: what a vLLM worker writes per batch). Each text is a run of 100-400 consecutive
words cut from the demo data's references and passages, so lengths and compression are
those of real answers. The workstation already holds the examples (it imported the same
dataset), as in real use. Then, in the same run, into two fresh databases of the same
schema (primary key and indexes included):

- raw: ``INSERT INTO candidates SELECT ... FROM read_parquet([every part])``, the best
  plain use of DuckDB: no validation, no dedupe, nothing registered;
- ours: :func:`reset_core.shards.ingest_folders`, what ``reset-studio ingest`` runs:
  manifests and files validated, orphans refused, keys deduped against the table,
  the runs and models registered, one transaction per folder.

``fraction_of_raw`` = raw seconds / our seconds (target >= 0.5). ``--repeats`` repeats
both (fresh databases each time) and takes the median. At the default size the whole
bench takes about 3 minutes on a quiet 2-core machine (a minute writing the Parquet
files, a minute per insert), up to about 10 when other jobs share the cores;
``--candidates 100000`` takes about half a minute.

    python bench/ingest.py [--candidates 1000000] [--folders 4] [--part-rows 1024]
                           [--repeats 1] [--dir /tmp/ingest_bench]

Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reset_core import shards  # noqa: E402
from reset_core.atomic import write_json_atomic  # noqa: E402
from reset_core.sampling.config import ModelSpec  # noqa: E402
from reset_core.sampling.settings import DecodingSetting, candidate_id  # noqa: E402
from reset_core.sampling.worker import CANDIDATE_SCHEMA  # noqa: E402
from reset_core.store import connect  # noqa: E402

SAMPLES_PER_EXAMPLE = 8  # 4 settings x n=2: a small grid, as a first large run would use
COLUMNS = ", ".join(CANDIDATE_SCHEMA.names)


def corpus() -> tuple[str, np.ndarray]:
    """The demo answers and passages as one text, and where each of its words starts."""
    texts = []
    for line in (ROOT / "data" / "demo" / "demo_examples.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts += [row[k] for k in ("reference", "context") if row.get(k)]
    words = " ".join(texts).split()
    text = " ".join(words)
    starts = np.zeros(len(words) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(w) + 1 for w in words])
    return text, starts


def build(out: Path, n: int, n_folders: int, part_rows: int, seed: int = 0) -> list[Path]:
    """``n_folders`` sample shard folders holding ``n`` candidates between them."""
    rng = np.random.default_rng(seed)
    text, starts = corpus()
    n_words = len(starts) - 1
    model = ModelSpec(engine="vllm", model="Qwen/Qwen2.5-7B-Instruct")
    grid = [
        DecodingSetting(temperature=t, top_k=k, n=2, max_tokens=512)
        for t in (0.5, 1.0)
        for k in (20, -1)
    ]
    settings = [(s.setting_id, i) for s in grid for i in range(s.n)]
    n_examples = -(-n // SAMPLES_PER_EXAMPLE)
    folders = []
    per_folder = -(-n_examples // n_folders)
    done = 0
    for f in range(n_folders):
        folder = out / f"shard-{f}"
        (folder / "candidates").mkdir(parents=True)
        ex_ids = [
            f"bench:{e}" for e in range(f * per_folder, min((f + 1) * per_folder, n_examples))
        ]
        pq.write_table(examples_table(ex_ids), folder / shards.EXAMPLES)
        rows = [(e, s, i) for e in ex_ids for s, i in settings][: n - done]
        done += len(rows)
        for p in range(0, len(rows), part_rows):
            chunk = rows[p : p + part_rows]
            k = len(chunk)
            lengths = rng.integers(100, 401, k)
            offsets = rng.integers(0, n_words - 401, k)
            texts = [
                text[starts[o] : starts[o + ln] - 1]
                for o, ln in zip(offsets.tolist(), lengths.tolist(), strict=True)
            ]
            table = pa.table(
                {
                    "candidate_id": [candidate_id(e, model.model_id, s, i) for e, s, i in chunk],
                    "example_id": [e for e, _, _ in chunk],
                    "model_id": [model.model_id] * k,
                    "setting_id": [s for _, s, _ in chunk],
                    "sample_index": [i for _, _, i in chunk],
                    "seed": rng.integers(0, 2**31, k).tolist(),
                    "text": texts,
                    "finish_reason": ["stop"] * k,
                    "prompt_tokens": rng.integers(20, 2000, k).tolist(),
                    "completion_tokens": (lengths * 4 // 3).tolist(),
                    "latency_ms": rng.uniform(200, 4000, k).tolist(),
                    "engine": ["vllm"] * k,
                    "job_id": [f"sample-bench-{f}"] * k,
                },
                schema=CANDIDATE_SCHEMA,
            )
            pq.write_table(table, folder / "candidates" / f"part-{p // part_rows:06d}.parquet")
        write_json_atomic(
            folder / shards.MANIFEST,
            {
                "format": shards.FORMAT,
                "version": shards.VERSION,
                "kind": "sample",
                "run_id": f"sample-bench-{f}",
                "host": f"gpu-{f}",
                "created_at": "2026-01-01T00:00:00+00:00",
                "updated_at": "2026-01-01T01:00:00+00:00",
                "status": "done",
                "model": model.model_dump(mode="json"),
                "model_id": model.model_id,
                "grid": [s.model_dump(mode="json") for s in grid],
                "num_shards": n_folders,
                "shard_index": f,
                "counts": {"examples": len(ex_ids), "candidates_planned": len(rows)},
            },
        )
        folders.append(folder)
    return folders


def examples_table(ids: list[str]) -> pa.Table:
    k = len(ids)
    return pa.table(
        {
            "example_id": ids,
            "instruction": [f"Question {i}: what does the passage say?" for i in ids],
            "context": [None] * k,
            "reference": [None] * k,
            "kind": ["instruction"] * k,
            "source": ["bench"] * k,
            "split": ["seen"] * k,
            "content_hash": [f"h:{i}" for i in ids],
            "meta": pa.array([None] * k, pa.string()),
        }
    )


def fresh_db(path: Path, folders: list[Path]) -> object:
    """A new database with the examples already imported (as on the workstation)."""
    path.unlink(missing_ok=True)
    con = connect(path)
    con.execute(
        "INSERT INTO examples (example_id, instruction, context, reference, kind, source, split, "
        "content_hash) SELECT example_id, instruction, context, reference, kind, source, split, "
        "content_hash FROM read_parquet(?)",
        [[str(f / shards.EXAMPLES) for f in folders]],
    )
    con.execute("CHECKPOINT")
    return con


def time_raw(db: Path, folders: list[Path]) -> tuple[float, int]:
    con = fresh_db(db, folders)
    files = [str(p) for f in folders for p in sorted((f / "candidates").glob("*.parquet"))]
    t0 = time.perf_counter()
    con.execute(
        f"INSERT INTO candidates ({COLUMNS}) SELECT {COLUMNS} FROM read_parquet(?)", [files]
    )
    seconds = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM candidates").fetchone()[0]
    con.close()
    return seconds, n


def time_ours(db: Path, folders: list[Path]) -> tuple[float, int, int]:
    con = fresh_db(db, folders)
    t0 = time.perf_counter()
    reports = shards.ingest_folders(con, folders)
    seconds = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM candidates").fetchone()[0]
    # Ingesting the same folders again must add nothing (and is cheap: parts skipped).
    t1 = time.perf_counter()
    again = shards.ingest_folders(con, folders)
    rerun_s = time.perf_counter() - t1
    assert sum(r.candidates_new for r in again) == 0
    con.close()
    return seconds, n, sum(r.candidates_new for r in reports), rerun_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=1_000_000)
    ap.add_argument("--folders", type=int, default=4)
    ap.add_argument("--part-rows", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="ingest_bench_"))
    shutil.rmtree(work / "folders", ignore_errors=True)
    t0 = time.perf_counter()
    folders = build(work / "folders", args.candidates, args.folders, args.part_rows)
    build_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for f in folders for p in (f / "candidates").glob("*.parquet"))
    n_files = sum(len(list((f / "candidates").glob("*.parquet"))) for f in folders)
    print(
        f"{args.candidates:,} candidates in {args.folders} folders, {n_files} parts, "
        f"{size / 1e6:.0f} MB of Parquet (written in {build_s:.0f} s)"
    )
    raw, ours, rerun = [], [], []
    for r in range(args.repeats):
        # Alternate which goes first, so neither always meets a warm page cache.
        order = ("raw", "ours") if r % 2 == 0 else ("ours", "raw")
        for which in order:
            if which == "raw":
                s, n = time_raw(work / "raw.duckdb", folders)
                assert n == args.candidates, n
                raw.append(s)
            else:
                s, n, new, again = time_ours(work / "ours.duckdb", folders)
                assert n == new == args.candidates, (n, new)
                ours.append(s)
                rerun.append(again)
            print(f"  round {r + 1}: {which:<4} {s:7.1f} s  ({args.candidates / s:,.0f} rows/s)")
    raw_s, ours_s = statistics.median(raw), statistics.median(ours)
    figures = {
        "candidates": args.candidates,
        "folders": args.folders,
        "parts": n_files,
        "parquet_mb": round(size / 1e6, 1),
        "raw_s": round(raw_s, 2),
        "ours_s": round(ours_s, 2),
        "raw_rows_per_s": round(args.candidates / raw_s),
        "ours_rows_per_s": round(args.candidates / ours_s),
        "reingest_s": round(statistics.median(rerun), 2),
        "fraction_of_raw": round(raw_s / ours_s, 3),
    }
    print(f"{'':2}{'':<28}{'raw read_parquet':>18}{'reset-studio ingest':>22}")
    print(f"{'':2}{'seconds':<28}{raw_s:>18.1f}{ours_s:>22.1f}")
    print(f"{'':2}{'rows/s':<28}{figures['raw_rows_per_s']:>18,}{figures['ours_rows_per_s']:>22,}")
    print(f"  fraction_of_raw {figures['fraction_of_raw']} (target >= 0.5)")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
