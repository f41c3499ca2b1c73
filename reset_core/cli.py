"""The ``reset-studio`` command: one subcommand per stage, over the same library calls as the app.

Examples::

    reset-studio import data/demo/demo_examples.jsonl --preset alpaca
    reset-studio db info
    reset-studio db init --demo
    reset-studio model prepare
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from reset_core import paths


def _cmd_import(args: argparse.Namespace) -> int:
    from reset_core.ingest import ImportOptions, ImportRejected, import_file
    from reset_core.options import options_from_args
    from reset_core.store import connect

    try:
        opts = options_from_args(ImportOptions, args)
    except ValidationError as e:
        print(f"error: {_validation_message(e)}", file=sys.stderr)
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


def _validation_message(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in e.errors()
    )


def _cmd_db_info(args: argparse.Namespace) -> int:
    from reset_core.migrations import current_version
    from reset_core.store import connect, counts, example_breakdown

    con = connect(args.db)
    info = {
        "database": str(Path(args.db).resolve()),
        "migrations": current_version(con),
        "counts": counts(con),
        "examples_by_kind": dict(example_breakdown(con, "kind")),
        "examples_by_split": dict(example_breakdown(con, "split")),
        "examples_by_source": dict(example_breakdown(con, "source")),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"database   {info['database']}")
    print(f"migrations {', '.join(info['migrations'])}")
    for label, n in info["counts"].items():
        print(f"{label:<14}{n:>10,}")
    for key in ("examples_by_kind", "examples_by_split", "examples_by_source"):
        if info[key]:
            print(
                f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in info[key].items())
            )
    return 0


def _cmd_db_init(args: argparse.Namespace) -> int:
    from reset_core.demo import load_demo
    from reset_core.store import connect

    con = connect(args.db)
    if args.demo:
        n = load_demo(con)
        print(f"demo set: {n} examples added" if n else "demo set: database already has examples")
    print(f"database ready at {Path(args.db).resolve()}")
    return 0


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from reset_core.models import ModelUnavailable, prepare_default_model

    try:
        out = prepare_default_model(args.out)
    except ModelUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"embedded model ready at {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from reset_core.ingest import ImportOptions
    from reset_core.options import add_options

    parser = argparse.ArgumentParser(prog="reset-studio", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        default=str(paths.default_db_path()),
        help="DuckDB file (default: $RESET_STUDIO_DB or data/reset_studio.duckdb)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="import examples from a file or datasets folder")
    p.add_argument("file", help=".jsonl, .json, .csv, .parquet or a Hugging Face datasets folder")
    add_options(p, ImportOptions)
    p.set_defaults(func=_cmd_import)

    db = sub.add_parser("db", help="database commands").add_subparsers(
        dest="db_command", required=True
    )
    p = db.add_parser("info", help="where the loop stands: counts per stage and example breakdowns")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_db_info)
    p = db.add_parser("init", help="create or migrate the database")
    p.add_argument("--demo", action="store_true", help="load the bundled demo set when it is empty")
    p.set_defaults(func=_cmd_db_init)

    model = sub.add_parser("model", help="models").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("prepare", help="convert the embedded SmolLM2 model to safetensors once")
    p.add_argument("--out", default=str(paths.DEFAULT_MODEL_DIR), help="output folder")
    p.set_defaults(func=_cmd_model_prepare)
    from reset_core.cli_training import add_commands as add_training_commands

    add_training_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from reset_core.store import DatabaseBusy

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DatabaseBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
