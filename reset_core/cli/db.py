"""``reset-studio db info | db init``: where the loop stands, and a ready database.

::

    reset-studio db init --demo          # create or migrate; load the demo set when empty
    reset-studio db info                 # counts per stage and example breakdowns
    reset-studio db info --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reset_core.cli import exit_codes


def _cmd_db_info(args: argparse.Namespace) -> int:
    from reset_core.ingest.queries import example_breakdown
    from reset_core.migrations import current_version
    from reset_core.store import connect, counts

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
        return exit_codes.OK
    print(f"database   {info['database']}")
    print(f"migrations {', '.join(info['migrations'])}")
    for label, n in info["counts"].items():
        print(f"{label:<14}{n:>10,}")
    for key in ("examples_by_kind", "examples_by_split", "examples_by_source"):
        if info[key]:
            print(
                f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in info[key].items())
            )
    return exit_codes.OK


def _cmd_db_init(args: argparse.Namespace) -> int:
    from reset_core.ingest.demo import load_demo
    from reset_core.store import connect

    con = connect(args.db)
    if args.demo:
        n = load_demo(con)
        print(f"demo set: {n} examples added" if n else "demo set: database already has examples")
    print(f"database ready at {Path(args.db).resolve()}")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``db info`` and ``db init`` to the ``reset-studio`` subparsers."""
    db = sub.add_parser("db", help="database commands").add_subparsers(
        dest="db_command", required=True
    )
    p = db.add_parser("info", help="where the loop stands: counts per stage and example breakdowns")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_db_info)
    p = db.add_parser("init", help="create or migrate the database")
    p.add_argument("--demo", action="store_true", help="load the bundled demo set when it is empty")
    p.set_defaults(func=_cmd_db_init)
