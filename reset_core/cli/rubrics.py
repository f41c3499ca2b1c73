"""``reset-studio rubrics list|show|save``: the LLM judge's rubrics, versioned, as on the Judge page.

Each aspect's rubric is versioned (``task-v1``, ``task-v2`` …); an LLM judge freezes
the latest version of each into its job, and its id changes with it, so verdicts under
an old rubric stay apart. ``save`` stores an edited text as the next version (an
unchanged text and scale keep the latest)::

    reset-studio rubrics list
    reset-studio rubrics show faithfulness-v1
    reset-studio rubrics save task --file task-rubric.txt --scale-min 1 --scale-max 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reset_core.aspects import ASPECTS
from reset_core.cli import exit_codes


def _cmd_list(args: argparse.Namespace) -> int:
    from reset_core.judging.rubrics import rubric_versions
    from reset_core.store import connect

    con = connect(args.db)
    for aspect in ASPECTS:
        versions = rubric_versions(con, aspect)
        for i, r in enumerate(versions):
            if args.json:
                print(json.dumps({"rubric_id": r.rubric_id, "latest": i == 0, **r.to_dict()}))
                continue
            first = r.text.strip().splitlines()[0] if r.text.strip() else ""
            latest = " (latest)" if i == 0 else ""
            print(
                f"{r.rubric_id:<18} scale {r.scale_min:g}-{r.scale_max:g}{latest:<9}  "
                f"{first[:70]}{'…' if len(first) > 70 else ''}"
            )
    return exit_codes.OK


def _cmd_show(args: argparse.Namespace) -> int:
    from reset_core.judging.rubrics import rubric_versions
    from reset_core.store import connect

    aspect, _, _ = args.rubric_id.rpartition("-v")
    if aspect not in ASPECTS:
        # An aspect alone (``task``) shows its latest version.
        aspect = args.rubric_id if args.rubric_id in ASPECTS else None
    if aspect is None:
        print(
            f"error: no rubric {args.rubric_id!r} (ids look like task-v1; "
            "reset-studio rubrics list shows them)",
            file=sys.stderr,
        )
        return exit_codes.NOT_FOUND
    con = connect(args.db)
    versions = rubric_versions(con, aspect)
    match = [r for r in versions if args.rubric_id in (r.rubric_id, aspect)]
    if not match:
        print(f"error: no rubric {args.rubric_id!r}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    r = match[0]
    if args.json:
        print(json.dumps({"rubric_id": r.rubric_id, **r.to_dict()}))
    else:
        print(f"{r.rubric_id} (scale {r.scale_min:g} to {r.scale_max:g})\n\n{r.text}")
    return exit_codes.OK


def _cmd_save(args: argparse.Namespace) -> int:
    from reset_core.judging.rubrics import latest_rubric, save_rubric
    from reset_core.store import connect

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as e:
        print(f"error: --file {args.file}: {e.strerror or e}", file=sys.stderr)
        return exit_codes.REJECTED
    con = connect(args.db)
    current = latest_rubric(con, args.aspect)
    lo = current.scale_min if args.scale_min is None else args.scale_min
    hi = current.scale_max if args.scale_max is None else args.scale_max
    try:
        r = save_rubric(con, args.aspect, text.strip(), lo, hi)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    same = r.rubric_id == current.rubric_id
    print(f"{r.rubric_id}: " + ("unchanged (the latest version)" if same else "saved"))
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``rubrics list|show|save`` to the ``reset-studio`` subparsers."""
    rub = sub.add_parser("rubrics", help="the LLM judge's rubrics: list, show, save a new version")
    cmds = rub.add_subparsers(dest="rubrics_command", required=True)
    p = cmds.add_parser("list", help="every version of every aspect's rubric")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_cmd_list)
    p = cmds.add_parser("show", help="one rubric's text (ID like task-v2, or an aspect: latest)")
    p.add_argument("rubric_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="as one JSON object")
    p.set_defaults(func=_cmd_show)
    p = cmds.add_parser("save", help="store an edited rubric text as the aspect's next version")
    p.add_argument("aspect", choices=ASPECTS)
    p.add_argument("--file", required=True, help="the rubric text (UTF-8)")
    p.add_argument("--scale-min", type=float, help="lowest score (default: the latest's)")
    p.add_argument("--scale-max", type=float, help="highest score (default: the latest's)")
    p.set_defaults(func=_cmd_save)
