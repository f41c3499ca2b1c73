"""``reset-studio train``: a LoRA adapter on a curated set or an exported file, as a worker job.

The same library calls as the Train page; the flags are
:class:`~reset_core.training.config.TrainConfig`. It prints the run's steps and estimated
duration (from this machine's last runs of the same model) before it starts. The command runs the same worker
process as the page and follows it (Ctrl-C cancels the job, keeping its last
checkpoint; ``--resume`` relaunches it)::

    reset-studio train --set cs-0123abcd --max-steps 20
    reset-studio train --data exports/cs-0123abcd-messages.jsonl --base-model my/model
    reset-studio train --set cs-0123abcd --no-wait
    reset-studio train --resume train-20250101-120000-abc123
    reset-studio train --set cs-0123abcd --num-processes 8 --distributed ddp   # 8 GPUs
    reset-studio train --set cs-0123abcd --num-processes 8 --distributed deepspeed

With ``--num-processes N`` the worker runs N ranks under ``accelerate launch`` (one per
GPU) with the strategy's config from ``reset_core/training/configs/`` (or
``--accelerate-config FILE``); progress, metrics and the model are the same as a
one-process run's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from reset_core.cli import exit_codes
from reset_core.cli.jobs import exit_status as job_exit_status
from reset_core.cli.progress import ProgressBar, add_quiet, follow
from reset_core.errors import validation_message


def _loss(progress: dict) -> str | None:
    return None if progress.get("loss") is None else f"loss {progress['loss']:.4f}"


def _follow(con, job_id: str, run_id: str | None, quiet: bool = False) -> int:
    from reset_core.training.launch import sync_training

    bar = ProgressBar("steps", quiet=quiet, extra=_loss)
    try:
        p = follow(con, job_id, sync_training, bar, poll_s=2.0)
    except KeyboardInterrupt:
        print("cancelled (the last checkpoint is kept; resume with --resume)", file=sys.stderr)
        return exit_codes.INTERRUPTED
    if p["status"] == "done":
        from reset_core.training.queries import model_label

        label = model_label(con, p.get("model_id"))
        print(f"done: model {label} ({p.get('model_id')}; run {run_id}, job {job_id})")
        return exit_codes.OK
    print(f"{p['status']}: {p.get('error') or ''}", file=sys.stderr)
    return job_exit_status(p["status"])


def _cmd_train(args: argparse.Namespace) -> int:
    from reset_core import jobs
    from reset_core.curation.queries import set_size
    from reset_core.models import ModelUnavailable, default_model_path
    from reset_core.options import options_from_args
    from reset_core.store import connect
    from reset_core.training.config import TrainConfig
    from reset_core.training.launch import check_launchable, estimate_training, start_training
    from reset_core.training.queries import run_for_job

    con = connect(args.db)
    if args.resume:
        run_id = run_for_job(con, args.resume)
        if run_id is None:
            print(f"error: no training job {args.resume!r}", file=sys.stderr)
            return exit_codes.NOT_FOUND
        jobs.launch(con, args.resume)
        return _follow(con, args.resume, run_id, args.quiet)
    if (args.set_id is None) == (args.data is None):
        print(
            "error: give one of --set SET_ID or --data FILE (or --resume JOB_ID)", file=sys.stderr
        )
        return exit_codes.REJECTED
    if args.base_model is None:
        try:
            args.base_model = str(default_model_path())
        except ModelUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return exit_codes.FAILED
    try:
        cfg = options_from_args(TrainConfig, args)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    try:
        check_launchable(cfg)  # e.g. deepspeed asked for but not installed
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    data = None
    if args.data:
        from reset_core.curation.export import load_exported

        data = load_exported(Path(args.data)).data.table
    n_items = data.num_rows if data is not None else set_size(con, args.set_id)
    if n_items is not None:
        print(estimate_training(con, cfg, n_items), flush=True)
    try:
        run_id, job_id = start_training(
            con, args.db, cfg, set_id=args.set_id, data=data, name=args.name or ""
        )
    except KeyError as e:  # an unknown curated set or model id
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return exit_codes.NOT_FOUND
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    print(f"training run {run_id} (job {job_id}); worker log in its job folder", flush=True)
    if args.no_wait:
        return exit_codes.OK
    return _follow(con, job_id, run_id, args.quiet)


def add_commands(sub) -> None:
    """Add ``train`` to the ``reset-studio`` subparsers."""
    from reset_core.options import add_options
    from reset_core.training.config import TrainConfig

    p = sub.add_parser("train", help="train a LoRA adapter on a curated set (a worker job)")
    p.add_argument("--set", dest="set_id", help="curated set id")
    p.add_argument(
        "--data", help="or an exported file/folder (any form reset-studio export writes)"
    )
    p.add_argument("--resume", metavar="JOB_ID", help="relaunch an interrupted training job")
    p.add_argument(
        "--name",
        help="a name for the run and its model (default: what it is, e.g. "
        "'SmolLM2-135M-Instruct + LoRA (RESET round 1)')",
    )
    p.add_argument("--no-wait", action="store_true", help="launch and return")
    add_quiet(p)
    add_options(p, TrainConfig)
    p.set_defaults(func=_cmd_train)
