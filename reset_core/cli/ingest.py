"""``reset-studio import``, ``benchmark`` and ``rekind``: examples in from a file, all or
nothing; the built-in benchmarks; kinds on request.

The flags are :class:`~reset_core.ingest.importer.ImportOptions`, as on the Data page::

    reset-studio import data/demo/demo_examples.jsonl --preset alpaca
    reset-studio import data.jsonl --preset alpaca --split seen
    reset-studio import qa.parquet --mapping instruction=question,context=passage,reference=answers[0]
    reset-studio import pool.jsonl --split-ratios seen=0.8,test_seen=0.2 --seed 1
    reset-studio import alpaca.json --dry-run      # rows by kind and split; imports nothing

``reset-studio benchmark`` installs a bundled offline test set (the same import, into a
test split), e.g. IFEval's 541 prompts::

    reset-studio benchmark list
    reset-studio benchmark install ifeval

``reset-studio rekind`` changes the kind of a source's stored examples, on request only::

    reset-studio rekind --source alpaca --kind preset      # the role its preset declares
    reset-studio rekind --source my_qa --kind context --dry-run

``reset-studio ingest`` loads shard folders made on other machines (``sample --out``,
``judge --out``; see ``docs/shards.md``), by key, each folder in one transaction::

    reset-studio ingest shard-0 shard-1 judged-0
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from reset_core.cli import exit_codes
from reset_core.errors import validation_message


def _cmd_import(args: argparse.Namespace) -> int:
    from reset_core.ingest.config import ImportOptions, ImportRejected
    from reset_core.ingest.importer import describe_counts, import_file, read_examples
    from reset_core.options import options_from_args
    from reset_core.store import connect

    try:
        opts = options_from_args(ImportOptions, args)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    try:
        parsed = read_examples(args.file, opts)
    except ImportRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was imported; the database is unchanged", file=sys.stderr)
        return exit_codes.FAILED
    # What the file holds, before anything is committed (all a dry run does).
    print(
        f"{parsed.path}: preset {parsed.preset}, {parsed.n_rows} rows, "
        f"{parsed.table.num_rows} unique ({parsed.n_duplicates} duplicates within the file)"
    )
    print(f"  {parsed.kind_note}")
    print(f"  {describe_counts(parsed.counts())}")
    if args.dry_run:
        print("dry run: nothing was imported")
        return exit_codes.OK
    con = connect(args.db)
    try:
        result = import_file(con, args.file, opts, parsed=parsed)
    except ImportRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was imported; the database is unchanged", file=sys.stderr)
        return exit_codes.FAILED
    print(
        f"imported {result.n_added} new examples from {result.path} (preset {result.preset}; "
        f"{result.n_rows} rows, {result.n_duplicates} duplicates skipped)"
    )
    if result.n_added:
        print(f"  added {describe_counts(result.added)}")
    return exit_codes.OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from reset_core.evaluation.benchmarks import BENCHMARKS, benchmark_status, install_benchmark
    from reset_core.ingest.config import ImportRejected
    from reset_core.store import connect

    con = connect(args.db)
    if args.action == "list":
        for s in benchmark_status(con):
            print(
                f"{s['name']}: {s['title']}; {s['installed']}/{s['total']} in a test split"
                + (f", {s['in_seen']} in seen (training data)" if s["in_seen"] else "")
                + f"; {s['license']}, {s['credit']}"
            )
        return exit_codes.OK
    if args.name not in BENCHMARKS:
        print(
            f"error: unknown benchmark {args.name!r}; built in: {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return exit_codes.REJECTED
    try:
        r = install_benchmark(con, args.name)
    except ImportRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was imported; the database is unchanged", file=sys.stderr)
        return exit_codes.FAILED
    b = BENCHMARKS[args.name]
    print(
        f"{args.name}: {r['n_rows']} prompts; {r['added']} added to {b.split} (source "
        f"{b.source}), {r['already_present']} already present"
    )
    print(
        f"  {r['installed']} now in a test split: an evaluation's test set with source {b.source}"
    )
    if r["in_seen"]:
        print(
            f"  {r['in_seen']} sit in the seen split (training data, e.g. the demo's): they keep "
            "it, and evaluations on the test splits leave them out"
        )
    return exit_codes.OK


def _cmd_rekind(args: argparse.Namespace) -> int:
    from reset_core.ingest.rekind import RekindRejected, rekind_source
    from reset_core.store import connect

    con = connect(args.db)
    try:
        result = rekind_source(con, args.source, args.kind, dry_run=args.dry_run)
    except RekindRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was changed", file=sys.stderr)
        return exit_codes.REJECTED
    print(result.describe())
    if args.dry_run:
        print("dry run: nothing was changed")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``import`` to the ``reset-studio`` subparsers."""
    from reset_core.ingest.config import ImportOptions
    from reset_core.options import add_options

    p = sub.add_parser("import", help="import examples from a file or datasets folder")
    p.add_argument("file", help=".jsonl, .json, .csv, .parquet or a Hugging Face datasets folder")
    add_options(p, ImportOptions)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read and validate the file, print its rows by kind and split, import nothing",
    )
    p.set_defaults(func=_cmd_import)

    from reset_core.evaluation.benchmarks import BENCHMARKS

    p = sub.add_parser(
        "benchmark",
        help="built-in offline test sets (IFEval's 541 prompts): list them or install one",
        description="Install a bundled benchmark: an ordinary import (same validation and "
        "content dedupe) into a test split, so evaluations select it and training never "
        "sees it. Prompts already stored (e.g. the demo's) keep their split.",
    )
    p.add_argument(
        "action", choices=("list", "install"), help="list the benchmarks, or install one"
    )
    p.add_argument(
        "name",
        nargs="?",
        default="ifeval",
        help=f"the benchmark to install: {', '.join(BENCHMARKS)} (default ifeval)",
    )
    p.set_defaults(func=_cmd_benchmark)

    from reset_core.ingest.rekind import REKIND_TARGETS

    p = sub.add_parser(
        "rekind",
        help="set the kind of every example of a source (one transaction; says what changed)",
    )
    p.add_argument("--source", required=True, help="the source (dataset) whose examples to re-kind")
    p.add_argument(
        "--kind",
        required=True,
        choices=REKIND_TARGETS,
        help="instruction or context for every example of the source, or preset: the role "
        "its import's preset declares (alpaca, dolly, chat, self_instruct, ifeval: instruction; "
        "qa, nq, summarization: context)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    p.set_defaults(func=_cmd_rekind)

    # ---------------------------------------------------------------- shard folders, #14
    p = sub.add_parser(
        "ingest",
        help="load shard folders from other machines (sample/judge --out), by key",
        description="Validate every folder's manifest and files first (nothing is loaded if "
        "one is bad), then load each folder in one transaction: new examples, candidates and "
        "judgments by key, and the runs, models and judges the app lists. Loading a folder "
        "twice, or two folders that overlap, adds nothing twice.",
    )
    p.add_argument("folders", nargs="+", metavar="DIR", help="shard folders (docs/shards.md)")
    p.set_defaults(func=_cmd_ingest)


def _cmd_ingest(args: argparse.Namespace) -> int:
    from reset_core.cli import exit_codes
    from reset_core.shards import ShardRejected, check_folder, ingest_folder
    from reset_core.store import connect

    try:
        for folder in args.folders:  # all of them, before the database is even opened
            check_folder(folder)
    except ShardRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was ingested; the database is unchanged", file=sys.stderr)
        return exit_codes.REJECTED
    con = connect(args.db)
    done = 0
    try:
        for folder in args.folders:
            print(ingest_folder(con, folder).describe())
            done += 1
    except ShardRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print(
            f"that folder changed nothing; {done} folder(s) before it were ingested",
            file=sys.stderr,
        )
        return exit_codes.REJECTED
    return exit_codes.OK
