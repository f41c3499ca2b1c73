"""``reset-studio curate | export``: freeze picks into a curated set, write it TRL-ready.

The same library calls as the Train page; ``curate``'s flags are
:class:`~reset_core.curation.config.CurationSpec`. Without ``--selection`` it freezes
the latest selection's picks; ``--references`` freezes the examples' references
instead (the MTL set). Exports never overwrite and carry a manifest beside them::

    reset-studio curate --selection sel-1 --preset RESET-S --target-size 3000
    reset-studio curate --preview
    reset-studio curate --references --kinds instruction context      # MTL set
    reset-studio export cs-0123abcd --form prompt_completion --format parquet --out exports/
"""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from reset_core.cli import exit_codes
from reset_core.errors import validation_message


def _cmd_curate(args: argparse.Namespace) -> int:
    from reset_core.curation import config as curation_config
    from reset_core.curation import queries as curation_queries
    from reset_core.curation import sets as curation
    from reset_core.options import options_from_args
    from reset_core.store import connect

    con = connect(args.db)
    try:
        if args.references:
            set_id = curation.create_reference_set(
                con,
                kinds=args.kinds or (),
                sources=args.sources or (),
                split=args.split,
                target_size=args.target_size,
                name=args.name or "",
            )
        else:
            if not args.selection_id:
                from reset_core.scoring.queries import latest_selection

                args.selection_id = latest_selection(con)
                if not args.selection_id:
                    print(
                        "error: no selection yet: run `reset-studio select` first "
                        "(or use --references for the MTL set)",
                        file=sys.stderr,
                    )
                    return exit_codes.REJECTED
                print(f"using the latest selection, {args.selection_id}")
            spec = options_from_args(curation_config.CurationSpec, args)
            if args.preview:
                p = curation.preview(con, spec)
                p.pop("scores"), p.pop("score_by_kind")
                print(json.dumps(p, indent=2))
                return exit_codes.OK
            set_id = curation.create_curated_set(con, spec)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.FAILED
    man = curation_queries.manifest(con, set_id)
    print(f"curated set {set_id}: {man['n_items']} items, by kind {man['by_kind']}")
    return exit_codes.OK


def _cmd_export(args: argparse.Namespace) -> int:
    from reset_core.curation.export import export_set
    from reset_core.store import connect

    con = connect(args.db)
    try:
        out = export_set(con, args.set_id, args.out, form=args.form, fmt=args.format)
    except KeyError as e:  # an unknown set id
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    except (ValueError, FileExistsError) as e:  # a bad form/format, an existing file
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    print(f"wrote {out} (manifest beside it)")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``curate`` and ``export`` to the ``reset-studio`` subparsers."""
    from reset_core.curation.config import CurationSpec
    from reset_core.curation.export import FORMATS, FORMS
    from reset_core.options import add_options

    p = sub.add_parser("curate", help="freeze picks (or references, for MTL) into a curated set")
    p.add_argument(
        "--selection",
        dest="selection_id",
        help="the scoring run whose picks to freeze (default: the latest)",
    )
    p.add_argument(
        "--references",
        action="store_true",
        help="freeze examples with their references as completions (the MTL training set)",
    )
    # The filters come first: --references takes them too, with --split.
    add_options(p, CurationSpec, only=("kinds", "sources"))
    p.add_argument("--split", default="seen", help="split to take references from (--references)")
    p.add_argument(
        "--preview", action="store_true", help="print what would be frozen; write nothing"
    )
    add_options(p, CurationSpec, exclude=("selection_id", "kinds", "sources"))
    p.set_defaults(func=_cmd_curate)

    p = sub.add_parser(
        "export", help="write a curated set as TRL-ready JSONL, Parquet or datasets folder"
    )
    p.add_argument("set_id")
    p.add_argument(
        "--form", choices=FORMS, default="messages", help="chat messages or prompt/completion"
    )
    p.add_argument("--format", choices=FORMATS, default="jsonl", help="file format")
    p.add_argument("--out", default="exports", help="file or folder (default: exports/)")
    p.set_defaults(func=_cmd_export)
