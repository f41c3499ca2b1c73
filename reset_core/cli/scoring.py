"""``reset-studio select``: RESET scores and picks from the stored judgments.

The flags are :class:`~reset_core.scoring.config.SelectionConfig`, as on the Judge
page (its per-judge choices stay in the app). ``--dry-run`` previews without storing;
a stored selection reports how many picks changed against the previous one::

    reset-studio select --preset reset --weight 2.0
    reset-studio select --preset reset_s --threshold 0.5 --dry-run
    reset-studio select --preset custom --top-k 2 --target-size 3000
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from reset_core.errors import validation_message


def _cmd_select(args: argparse.Namespace) -> int:
    from reset_core.options import options_from_args
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import preview_selection, save_selection
    from reset_core.store import connect

    con = connect(args.db)
    try:
        cfg = options_from_args(SelectionConfig, args)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return 2
    res = (preview_selection if args.dry_run else save_selection)(con, cfg)
    print(
        f"{'preview' if args.dry_run else 'selection ' + str(res.selection_id)} ({cfg.preset}, "
        f"w={cfg.weight:g}, {cfg.combine}): {res.n_picked} picks over {res.n_examples_with_pick}"
        f" of {res.n_examples} examples; {res.n_unrankable} of {res.n_candidates} candidates "
        "not rankable (a needed aspect has no valid verdict)"
    )
    if res.n_changed is not None:
        print(f"{res.n_changed} examples changed their pick vs {res.compared_to}")
    return 0


def add_commands(sub) -> None:
    """Add ``select`` to the ``reset-studio`` subparsers."""
    from reset_core.options import add_options
    from reset_core.scoring.config import SelectionConfig

    p = sub.add_parser("select", help="RESET scores and picks from the judgments")
    p.add_argument("--dry-run", action="store_true", help="preview without storing")
    add_options(p, SelectionConfig, exclude=("judges", "judge_by_aspect"))
    p.set_defaults(func=_cmd_select)
