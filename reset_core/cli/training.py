"""``reset-studio curate | export | train``: the CLI side of curation and training.

The same library calls as the Train page; ``train`` runs the same worker process
and follows it (Ctrl-C cancels the job, keeping its last checkpoint)::

    reset-studio curate --selection sel-1 --preset RESET-S --target-size 3000
    reset-studio curate --references --kinds instruction context      # MTL set
    reset-studio export cs-0123abcd --form prompt_completion --format parquet --out exports/
    reset-studio train --set cs-0123abcd --max-steps 20
    reset-studio train --data exports/cs-0123abcd-messages.jsonl --base-model my/model
    reset-studio train --resume train-20250101-120000-abc123
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError

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
                    return 2
                print(f"using the latest selection, {args.selection_id}")
            args.kinds, args.sources = args.kinds or [], args.sources or []
            spec = options_from_args(curation_config.CurationSpec, args)
            if args.preview:
                p = curation.preview(con, spec)
                p.pop("scores"), p.pop("score_by_kind")
                print(json.dumps(p, indent=2))
                return 0
            set_id = curation.create_curated_set(con, spec)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    man = curation_queries.manifest(con, set_id)
    print(f"curated set {set_id}: {man['n_items']} items, by kind {man['by_kind']}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from reset_core.curation.export import export_set
    from reset_core.store import connect

    con = connect(args.db)
    try:
        out = export_set(con, args.set_id, args.out, form=args.form, fmt=args.format)
    except (KeyError, ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} (manifest beside it)")
    return 0


def _follow(con, job_id: str, run_id: str | None) -> int:
    from reset_core import jobs
    from reset_core.training.launch import sync_training

    last = None
    try:
        while True:
            p = sync_training(con, job_id)
            line = f"{p.get('status')} step {p.get('n_done', 0)}/{p.get('n_total') or '?'}"
            if p.get("loss") is not None:
                line += f" loss {p['loss']:.4f}"
            if line != last:
                print(line, flush=True)
                last = line
            if p.get("status") in ("done", "failed", "cancelled"):
                break
            time.sleep(2)
    except KeyboardInterrupt:
        jobs.cancel(con, job_id)
        print("cancelling (the last checkpoint is kept; resume with --resume)", file=sys.stderr)
        while sync_training(con, job_id).get("status") in jobs.ACTIVE:
            time.sleep(1)
        return 130
    if p["status"] == "done":
        print(f"done: model {p.get('model_id')} (run {run_id}, job {job_id})")
        return 0
    print(f"{p['status']}: {p.get('error') or ''}", file=sys.stderr)
    return 1


def _cmd_train(args: argparse.Namespace) -> int:
    from reset_core import jobs
    from reset_core.models import ModelUnavailable, default_model_path
    from reset_core.options import options_from_args
    from reset_core.store import connect, one
    from reset_core.training.config import TrainConfig
    from reset_core.training.launch import start_training

    con = connect(args.db)
    if args.resume:
        row = one(con, "SELECT run_id FROM training_runs WHERE job_id = ?", [args.resume])
        if row is None:
            print(f"error: no training job {args.resume!r}", file=sys.stderr)
            return 1
        jobs.launch(con, args.resume)
        return _follow(con, args.resume, row[0])
    if (args.set_id is None) == (args.data is None):
        print(
            "error: give one of --set SET_ID or --data FILE (or --resume JOB_ID)", file=sys.stderr
        )
        return 2
    if args.base_model is None:
        try:
            args.base_model = str(default_model_path())
        except ModelUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    try:
        cfg = options_from_args(TrainConfig, args)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return 2
    data = None
    if args.data:
        from reset_core.curation.export import load_exported

        data = load_exported(Path(args.data)).data.table
    try:
        run_id, job_id = start_training(
            con, args.db, cfg, set_id=args.set_id, data=data, name=args.name or ""
        )
    except (KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"training run {run_id} (job {job_id}); worker log in its job folder", flush=True)
    if args.no_wait:
        return 0
    return _follow(con, job_id, run_id)


def add_commands(sub) -> None:
    """Add ``curate``, ``export`` and ``train`` to the ``reset-studio`` subparsers."""
    from reset_core.curation.config import CurationSpec
    from reset_core.curation.export import FORMATS, FORMS
    from reset_core.options import add_options
    from reset_core.training.config import TrainConfig

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
    p.add_argument("--kinds", nargs="*", help=CurationSpec.model_fields["kinds"].description)
    p.add_argument("--sources", nargs="*", help=CurationSpec.model_fields["sources"].description)
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

    p = sub.add_parser("train", help="train a LoRA adapter on a curated set (a worker job)")
    p.add_argument("--set", dest="set_id", help="curated set id")
    p.add_argument(
        "--data", help="or an exported file/folder (any form reset-studio export writes)"
    )
    p.add_argument("--resume", metavar="JOB_ID", help="relaunch an interrupted training job")
    p.add_argument("--name", help="a label for the run and its model")
    p.add_argument("--no-wait", action="store_true", help="launch and return")
    add_options(p, TrainConfig)
    p.set_defaults(func=_cmd_train)
