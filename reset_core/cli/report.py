"""``reset-studio report``: an evaluation or an experiment as one HTML file or Markdown.

The same library call as the Evaluate page's export (``reset_core.evaluation.report``);
the flags are :class:`~reset_core.evaluation.report.ReportOptions`. The HTML file is
self-contained (charts embedded, plotly inlined): it opens offline. An existing file
is never replaced unless ``--force``::

    reset-studio report eval-20260101-120000-a1b2c3 --out report.html
    reset-studio report eval-20260101-120000-a1b2c3 --format md --out report.md
    reset-studio report --experiment exp-20260101-120000-d4e5f6 --out experiment.html
"""

from __future__ import annotations

import argparse
import sys

from reset_core.cli import exit_codes
from reset_core.errors import rejection_message


def _cmd_report(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from reset_core.evaluation.report import ReportOptions, write_report
    from reset_core.options import options_from_args
    from reset_core.store import connect

    if not args.evaluation_id and not args.experiment_id:
        print("error: give an evaluation id, or --experiment ID", file=sys.stderr)
        return exit_codes.REJECTED
    try:
        options = options_from_args(ReportOptions, args)
    except ValidationError as e:
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    con = connect(args.db)
    try:
        path = write_report(
            con,
            args.out,
            args.evaluation_id,
            args.experiment_id,
            options,
            force=args.force,
        )
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.FAILED
    except ValueError as e:  # an unknown evaluation, experiment or baseline
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    finally:
        con.close()
    print(f"wrote {path}")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``report`` to the ``reset-studio`` subparsers."""
    from reset_core.evaluation.report import ReportOptions
    from reset_core.options import add_options

    p = sub.add_parser(
        "report", help="write an evaluation or experiment report (self-contained HTML or Markdown)"
    )
    p.add_argument(
        "evaluation_id", nargs="?", help="the evaluation to report (or use --experiment)"
    )
    p.add_argument(
        "--experiment",
        dest="experiment_id",
        help="an experiment: its recipe and steps around its evaluation's report",
    )
    p.add_argument("--out", required=True, help="the file to write (.html or .md)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_options(p, ReportOptions)
    p.set_defaults(func=_cmd_report)
