"""``reset-studio import``: examples from a file or datasets folder, all or nothing.

The flags are :class:`~reset_core.ingest.importer.ImportOptions`, as on the Data page::

    reset-studio import data/demo/demo_examples.jsonl --preset alpaca
    reset-studio import data.jsonl --preset alpaca --split seen
    reset-studio import qa.parquet --mapping instruction=question,context=passage,reference=answers[0]
    reset-studio import pool.jsonl --split-ratios seen=0.8,test_seen=0.2 --seed 1
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from reset_core.errors import validation_message


def _cmd_import(args: argparse.Namespace) -> int:
    from reset_core.ingest.config import ImportOptions, ImportRejected
    from reset_core.ingest.importer import import_file
    from reset_core.options import options_from_args
    from reset_core.store import connect

    try:
        opts = options_from_args(ImportOptions, args)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return 2
    con = connect(args.db)
    try:
        result = import_file(con, args.file, opts)
    except ImportRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was imported; the database is unchanged", file=sys.stderr)
        return 1
    print(
        f"imported {result.n_added} new examples from {result.path} (preset {result.preset}; "
        f"{result.n_rows} rows, {result.n_duplicates} duplicates skipped)"
    )
    return 0


def add_commands(sub) -> None:
    """Add ``import`` to the ``reset-studio`` subparsers."""
    from reset_core.ingest.config import ImportOptions
    from reset_core.options import add_options

    p = sub.add_parser("import", help="import examples from a file or datasets folder")
    p.add_argument("file", help=".jsonl, .json, .csv, .parquet or a Hugging Face datasets folder")
    add_options(p, ImportOptions)
    p.set_defaults(func=_cmd_import)
