"""``reset-studio review list|export``: the reviewers' override events, from a shell.

Every veto, forced pick, ranking, manual score, note and undo is one append-only event
(:mod:`reset_core.review.events`); ``list`` shows them newest first, filtered by
reviewer, kind (the action) and example; ``export`` writes them to a file whose suffix
picks the format (``.jsonl``, ``.csv``, ``.parquet``), never overwriting one::

    reset-studio review list --reviewer alice --kind veto
    reset-studio review list --example ex-12 --format jsonl
    reset-studio review export overrides.parquet
    reset-studio review export alice.csv --reviewer alice
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reset_core.cli import exit_codes

#: Export formats by file suffix.
FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _events(args: argparse.Namespace, limit: int | None):
    from reset_core.review.queries import override_events
    from reset_core.store import connect

    con = connect(args.db)
    return override_events(
        con, reviewer=args.reviewer, action=args.kind, example_id=args.example, limit=limit
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from reset_core.curation.export import write_neutralised_csv
    from reset_core.review.events import ReviewError

    try:
        table = _events(args, args.limit)
    except ReviewError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    rows = table.to_pylist()
    if args.format == "jsonl":
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    elif args.format == "csv":
        write_neutralised_csv(table, sys.stdout)
    elif not rows:
        print("no review events" + (" match" if args.reviewer or args.kind or args.example else ""))
    else:
        for r in rows:
            target = r["candidate_id"] or "-"
            undone = f"  (undone by {r['undone_by']})" if r["undone_by"] else ""
            reason = f"  reason: {r['reason']}" if r["reason"] else ""
            value = "" if r["value"] in (None, "{}", "null") else f" {r['value']}"
            print(
                f"{r['created_at'][:19]}  {r['reviewer']:<12} {r['action']:<8} "
                f"{r['example_id']} {target}{value}{reason}{undone}"
            )
    return exit_codes.OK


def _cmd_export(args: argparse.Namespace) -> int:
    from reset_core.curation.export import write_table
    from reset_core.review.events import ReviewError

    out = Path(args.file)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        print(
            f"error: {out}: the suffix picks the format; use one of {', '.join(FORMATS)}",
            file=sys.stderr,
        )
        return exit_codes.REJECTED
    try:
        table = _events(args, None)
        write_table(table, out, fmt)  # atomic: a reader sees the whole file or none
    except ReviewError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    print(f"{table.num_rows} review events written to {out}")
    return exit_codes.OK


def _add_filters(p: argparse.ArgumentParser) -> None:
    from reset_core.review.events import ACTIONS

    p.add_argument("--reviewer", help="only this reviewer's events")
    p.add_argument("--kind", choices=ACTIONS, help="only this kind of event (the action)")
    p.add_argument("--example", help="only this example's events (an example id)")


def add_commands(sub) -> None:
    """Add ``review list`` and ``review export`` to the ``reset-studio`` subparsers."""
    review = sub.add_parser("review", help="reviewers' override events: list and export")
    cmds = review.add_subparsers(dest="review_command", required=True)
    p = cmds.add_parser("list", help="override events, newest first")
    _add_filters(p)
    p.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    p.add_argument("--limit", type=int, default=None, help="at most this many events")
    p.set_defaults(func=_cmd_list)
    p = cmds.add_parser("export", help="write the override events to FILE (.jsonl/.csv/.parquet)")
    p.add_argument("file", metavar="FILE")
    _add_filters(p)
    p.set_defaults(func=_cmd_export)
