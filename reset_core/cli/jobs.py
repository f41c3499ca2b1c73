"""``reset-studio jobs list|status|cancel|resume``: every kind of worker job, from a shell.

A job is a folder and a ``jobs`` row (see :mod:`reset_core.jobs`); these commands
work on any kind (``sample``, ``judge``, ``train`` …) through the stage's own sync,
which ingests finished shards by key. ``resume`` runs the worker again here, with a
progress bar; it redoes only missing keys. A judging job that stopped at its budget cap
resumes with a higher cap (``--budget-usd``)::

    reset-studio jobs list --kind judge --status stopped
    reset-studio jobs status judge-20250101-120000-abc123 --follow
    reset-studio jobs cancel sample-20250101-120000-abc123
    reset-studio jobs resume judge-20250101-120000-abc123 --budget-usd 10

Each batch of a Batch API judging job has a row too (kind ``batch``); ``status`` shows
that batch, ``cancel`` and ``resume`` act on the job that owns it.

Exit status: ``status``/``resume`` return the job's end as the other commands do (0
done, 1 failed, 4 stopped or cancelled: resumable), 5 for an unknown id, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys

from reset_core.cli import exit_codes
from reset_core.cli.progress import UNITS, ProgressBar, add_quiet, follow, run_job


def exit_status(status: str | None) -> int:
    """A job's end as an exit status: 0 done, 4 stopped/cancelled (resumable), 1 otherwise.

    >>> [exit_status(s) for s in ("done", "stopped", "cancelled", "failed")]
    [0, 4, 4, 1]
    """
    if status == "done":
        return exit_codes.OK
    if status in ("stopped", "cancelled"):
        return exit_codes.STOPPED
    return exit_codes.FAILED


def _kind_or_missing(con, job_id: str) -> str | None:
    from reset_core import jobs

    kind = jobs.job_kind(con, job_id)
    if kind is None:
        print(f"error: no job {job_id!r} (reset-studio jobs list shows them)", file=sys.stderr)
    return kind


def _owner(con, job_id: str, kind: str, verb: str) -> tuple[str, str]:
    """Cancel and resume act on the job that owns a batch's row (it holds the requests
    and polls every batch of the run); say so, and return that job and its kind."""
    from reset_core.judging.batch import KIND, ROW_KIND
    from reset_core.store import one

    if kind != ROW_KIND:
        return job_id, kind
    (config,) = one(con, "SELECT config FROM jobs WHERE job_id = ?", [job_id])
    owner = json.loads(config)["job"]
    print(f"{job_id} is a batch of job {owner}: {verb} {owner} (every batch of that run)")
    return owner, KIND


def _cmd_list(args: argparse.Namespace) -> int:
    from reset_core import jobs
    from reset_core.store import connect

    con = connect(args.db)
    rows = jobs.list_jobs(con, kind=args.kind, status=args.status, limit=args.limit)
    if args.json:
        for r in rows:
            print(json.dumps(r, default=str))
        return exit_codes.OK
    if not rows:
        print("no jobs" + (" of that kind/status" if args.kind or args.status else " yet"))
        return exit_codes.OK
    for r in rows:
        total = "?" if r["n_total"] is None else f"{r['n_total']:,}"
        err = f"  {r['error'][:80]}" if r["error"] else ""
        print(
            f"{r['job_id']:<40} {r['kind']:<8} {r['status']:<10} "
            f"{r['n_done']:,}/{total}  {r['created_at']:%Y-%m-%d %H:%M}{err}"
        )
    return exit_codes.OK


def _cmd_status(args: argparse.Namespace) -> int:
    from reset_core import jobs
    from reset_core.store import connect

    con = connect(args.db)
    kind = _kind_or_missing(con, args.job_id)
    if kind is None:
        return exit_codes.NOT_FOUND
    sync = jobs.stage_sync(kind)
    unit = UNITS.get(kind, "items")
    if args.follow:
        bar = ProgressBar(unit, quiet=args.quiet)
        try:
            progress = follow(con, args.job_id, sync, bar, poll_s=args.poll_s)
        except KeyboardInterrupt:
            return exit_codes.INTERRUPTED
    else:
        progress = sync(con, args.job_id)
    if args.json:
        print(json.dumps({"job_id": args.job_id, "kind": kind, **progress}, default=str))
    else:
        print(f"{args.job_id} ({kind}): {jobs.describe_progress(progress, unit)}")
        if progress.get("error"):
            print(f"  {progress['error']}")
    status = progress.get("status")
    return exit_codes.OK if status in jobs.ACTIVE else exit_status(status)


def _cmd_cancel(args: argparse.Namespace) -> int:
    from reset_core import jobs
    from reset_core.store import connect

    con = connect(args.db)
    kind = _kind_or_missing(con, args.job_id)
    if kind is None:
        return exit_codes.NOT_FOUND
    args.job_id, kind = _owner(con, args.job_id, kind, "cancelling")
    progress = jobs.stage_sync(kind)(con, args.job_id)
    if progress.get("status") not in jobs.ACTIVE:
        print(f"{args.job_id} is {progress.get('status')}: nothing to cancel")
        return exit_codes.OK
    jobs.cancel(con, args.job_id)
    print(f"{args.job_id}: asked to stop after its current batch (saved work is kept)")
    return exit_codes.OK


def _cmd_resume(args: argparse.Namespace) -> int:
    from reset_core import jobs
    from reset_core.errors import rejection_message
    from reset_core.store import connect

    con = connect(args.db)
    kind = _kind_or_missing(con, args.job_id)
    if kind is None:
        return exit_codes.NOT_FOUND
    args.job_id, kind = _owner(con, args.job_id, kind, "resuming")
    sync = jobs.stage_sync(kind)
    progress = sync(con, args.job_id)
    # A running job has a live worker (sync marks one whose process is gone as failed);
    # a queued one that no worker took (its launcher died first) can be run here.
    if progress.get("status") == "running":
        print(
            f"error: job {args.job_id} is {progress['status']}; follow it with "
            f"reset-studio jobs status {args.job_id} --follow",
            file=sys.stderr,
        )
        return exit_codes.REJECTED
    if progress.get("status") == "done" and args.budget_usd is None:
        print(f"{args.job_id} is done: nothing to resume")
        return exit_codes.OK
    if args.budget_usd is not None:
        from reset_core.judging.launch import set_job_budget

        try:
            set_job_budget(con, args.job_id, args.budget_usd)
        except ValueError as e:
            print(f"error: {rejection_message(e)}", file=sys.stderr)
            return exit_codes.REJECTED
        print(f"{args.job_id}: budget cap now ${args.budget_usd:g}")
    jobs.requeue(con, args.job_id)
    print(f"resuming {args.job_id}: only missing keys are redone", flush=True)
    unit = UNITS.get(kind, "items")
    _, interrupted = run_job(con, args.job_id, ProgressBar(unit, quiet=args.quiet))
    progress = sync(con, args.job_id)
    print(f"{args.job_id} ({kind}): {jobs.describe_progress(progress, unit)}")
    if progress.get("error"):
        print(f"note: {progress['error']}", file=sys.stderr)
    if interrupted:
        return exit_codes.INTERRUPTED
    return exit_status(progress.get("status"))


def add_commands(sub) -> None:
    """Add ``jobs list|status|cancel|resume`` to the ``reset-studio`` subparsers."""
    from reset_core.judging.llm_judge import LLMJudgeConfig
    from reset_core.options import help_text

    jobs_p = sub.add_parser("jobs", help="worker jobs of every kind: list, status, cancel, resume")
    cmds = jobs_p.add_subparsers(dest="jobs_command", required=True)

    p = cmds.add_parser("list", help="jobs, newest first")
    p.add_argument("--kind", help="only this kind (sample, judge, train …)")
    p.add_argument(
        "--status", choices=["queued", "running", "done", "failed", "cancelled", "stopped"]
    )
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_cmd_list)

    p = cmds.add_parser("status", help="a job's progress (ingests its finished shards)")
    p.add_argument("job_id", metavar="JOB")
    p.add_argument("--follow", action="store_true", help="follow it with a bar until it ends")
    p.add_argument("--json", action="store_true", help="the progress as one JSON object")
    p.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    add_quiet(p)
    p.set_defaults(func=_cmd_status)

    p = cmds.add_parser("cancel", help="ask a running job to stop after its current batch")
    p.add_argument("job_id", metavar="JOB")
    p.set_defaults(func=_cmd_cancel)

    p = cmds.add_parser(
        "resume", help="run a stopped, cancelled or failed job again here: only missing keys"
    )
    p.add_argument("job_id", metavar="JOB")
    p.add_argument(
        "--budget-usd",
        type=float,
        default=None,
        help=help_text(LLMJudgeConfig, "budget_usd")
        + " (judging jobs: relaunch with a higher cap)",
    )
    add_quiet(p)
    p.set_defaults(func=_cmd_resume)
