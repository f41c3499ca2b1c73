"""``reset-studio judge``: verdicts on the candidates, the worker run in this process.

Offline metric judges need no API; the LLM judge's flags are
:class:`~reset_core.judging.llm_judge.LLMJudgeConfig`, as on the Judge page. The cost
estimate and the duration estimate (from this machine's last runs of the same judges)
are printed first; ``--dry-run`` stops there::

    reset-studio judge --offline                                        # metric judges
    OPENAI_API_KEY=... reset-studio judge --llm --model gpt-4o --dry-run  # cost estimate
    reset-studio judge --llm --base-url http://127.0.0.1:8000/v1 --model m --budget-usd 5
    reset-studio judge --offline --aspects all --redo --limit 100
    reset-studio judge --offline --splits seen,test_seen                  # test answers too
    reset-studio judge --llm --model gpt-4o-mini --batch                   # Batch API, 50% off

``--batch`` sends the LLM judge's requests through the OpenAI Batch API (half the
price, answers within 24 h) as a ``judge_batch`` job, followed here until its batches
end (``--poll-s`` between checks); the job id it prints is what ``reset-studio jobs
status`` follows. Exit status 4 when a batch expired or was cancelled half done (the
finished half is stored; resuming the job submits only the rest), 1 when one failed.

On a machine with no database, ``--out DIR2 --from DIR [DIR ...]`` judges the candidates
of shard folders into a shard folder (``docs/shards.md``); ``reset-studio ingest DIR2``
loads it::

    reset-studio judge --offline --out judged-0 --from shard-0 shard-1

``reset-studio injection-check`` counts the candidates whose text is aimed at the
judge (prompt injection) and, with ``--llm``, judges each flagged one also without
its flagged sentences and reports the share whose score moved by a point or more.
"""

from __future__ import annotations

import argparse
import json
import sys

from reset_core.cli import exit_codes
from reset_core.cli.jobs import exit_status as job_exit_status
from reset_core.cli.progress import ProgressBar, add_quiet, run_job
from reset_core.errors import rejection_message


def _judge_specs(args: argparse.Namespace, con) -> list[dict]:
    from reset_core.judging.launch import llm_spec, offline_specs
    from reset_core.judging.llm_judge import LLMJudgeConfig
    from reset_core.options import options_from_args

    specs = offline_specs() if args.offline else []
    if args.llm or args.local:
        cfg = options_from_args(LLMJudgeConfig, args)
        specs.append(llm_spec(con, cfg, local=args.local))
    if not specs:
        raise ValueError("choose judges: --offline, --llm and/or --local")
    return specs


def _print_estimates(est: dict, note: str = "") -> None:
    """One line per judge: items, requests, tokens and the cost range (``note`` after it)."""
    for judge_id, e in est.items():
        print(
            f"{judge_id}: {e['n_items']} items, {e['n_requests']} requests "
            f"({e['n_cached']} cached), ~{e['prompt_tokens']:,} prompt tokens, "
            f"estimated ${e['cost_usd']:.4f} (at most ${e['cost_usd_max']:.4f}){note}"
        )


def _cmd_judge(args: argparse.Namespace) -> int:
    if args.out is not None or args.sources:
        return _cmd_judge_out(args)
    if args.batch:
        return _cmd_judge_batch(args)
    import time

    from reset_core import handoff
    from reset_core.judging.launch import (
        JudgePlan,
        cache_path,
        check_endpoints,
        create_judge_job,
        estimate_judging,
        estimate_plan,
    )
    from reset_core.judging.queries import injection_counts, job_judgment_counts
    from reset_core.options import options_from_args
    from reset_core.store import connect

    con = connect(args.db)
    try:
        specs = _judge_specs(args, con)
        check_endpoints(specs)  # a key variable or host the deployment refuses: say which
        plan = options_from_args(JudgePlan, args)
        est = estimate_plan(con, specs, plan, cache=cache_path(args.db))
    except ValueError as e:  # a pydantic ValidationError is one too
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    _print_estimates(est)
    n_items = sum(e["n_items"] for e in est.values())
    if n_items:
        print(estimate_judging(con, specs, est))
    if args.dry_run or n_items == 0:
        if n_items == 0:
            from reset_core.sampling.queries import count_candidates

            print(
                "nothing to judge: every candidate of these splits already has a verdict "
                "from these judges"
                if count_candidates(con)
                else "nothing to judge: no candidates yet (reset-studio sample makes them)"
            )
        return exit_codes.OK
    job_id = create_judge_job(con, args.db, specs, plan=plan)
    t0 = time.monotonic()
    # Headless: the same worker, in this process, with a bar following its progress file
    # and the database closed while it runs (the app may open it meanwhile, and then
    # ingests the verdicts itself).
    _, interrupted = run_job(
        con, job_id, ProgressBar("judgments", quiet=args.quiet), release_db=args.db
    )
    prog = handoff.sync(args.db, job_id)
    con = handoff.reopen(args.db)  # None: the app holds it now
    if con is None:
        print(
            f"job {job_id}: {prog['status']} in {time.monotonic() - t0:.1f}s; "
            f"{prog.get('n_done', 0)} items judged, ingested by the app that holds the database"
        )
    else:
        n, n_scored = job_judgment_counts(con, job_id)
        flagged = injection_counts(con, job_id)["flagged"]
        print(
            f"job {job_id}: {prog['status']} in {time.monotonic() - t0:.1f}s; "
            f"{n} judgments, {n_scored} scored, {n - n_scored} without a score; "
            f"{flagged} judged candidates flagged for prompt injection"
        )
    if prog.get("ledger"):
        print(json.dumps(prog["ledger"], indent=2))
    for judge_id, e in (prog.get("endpoints") or {}).items():
        if e["output_modes"]:
            modes = ", ".join(f"{m} ×{k}" for m, k in e["output_modes"].items())
            print(f"{judge_id} at {e['endpoint']}: output modes {modes}")
        if e["placeholder"]:
            print(
                f"note: {judge_id} was answered by the local stand-in server; its verdicts are "
                "placeholders, left out of selection unless a panel includes placeholders",
                file=sys.stderr,
            )
    if prog.get("error"):
        print(f"note: {prog['error']}", file=sys.stderr)
    if interrupted:
        print(
            f"interrupted: saved judgments kept; reset-studio jobs resume {job_id}", file=sys.stderr
        )
        return exit_codes.INTERRUPTED
    if prog["status"] == "stopped":  # the budget cap: resumable with a higher one
        print(f"stopped: reset-studio jobs resume {job_id} --budget-usd X", file=sys.stderr)
    return job_exit_status(prog["status"])


def _cmd_judge_batch(args: argparse.Namespace) -> int:
    """``judge --llm --batch``: the LLM judge through the Batch API, followed to its end."""
    from reset_core import handoff
    from reset_core.judging.batch import BatchConfig, batch_summary
    from reset_core.judging.launch import (
        JudgePlan,
        cache_path,
        check_endpoints,
        create_judge_job,
        estimate_plan,
    )
    from reset_core.judging.queries import job_judgment_counts
    from reset_core.options import options_from_args
    from reset_core.store import connect

    con = connect(args.db)
    try:
        if args.offline or args.local or not args.llm:
            raise ValueError(
                "--batch: the Batch API takes the --llm judge alone; run --offline or "
                "--local judges in a separate command"
            )
        batch = options_from_args(BatchConfig, args)
        specs = _judge_specs(args, con)
        check_endpoints(specs)
        plan = options_from_args(JudgePlan, args)
        est = estimate_plan(con, specs, plan, cache=cache_path(args.db), batch=True)
    except ValueError as e:
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    _print_estimates(est, " at Batch API prices (50% off)")
    n_items = sum(e["n_items"] for e in est.values())
    if n_items:
        print(f"{n_items:,} items · results within 24 h (the Batch API's completion window)")
    if args.dry_run or n_items == 0:
        if n_items == 0:
            print("nothing to judge: every candidate of these splits has a verdict from this judge")
        return exit_codes.OK
    job_id = create_judge_job(con, args.db, specs, plan=plan, batch=batch)
    print(
        f"job {job_id}: submitting to the Batch API and polling every {batch.poll_s:g} s; "
        f"follow it with: reset-studio jobs status {job_id}",
        flush=True,
    )
    # Headless: the same worker, in this process, with a bar and the database closed
    # while it polls (hours, possibly): the app may open it meanwhile and ingest.
    _, interrupted = run_job(
        con, job_id, ProgressBar("judgments", quiet=args.quiet), release_db=args.db
    )
    prog = handoff.sync(args.db, job_id)
    con = handoff.reopen(args.db)  # None: the app holds it now
    if con is None:
        print(f"job {job_id}: {prog['status']}; ingested by the app that holds the database")
    else:
        n, n_scored = job_judgment_counts(con, job_id)
        print(
            f"job {job_id}: {prog['status']}; {n} judgments, {n_scored} scored, "
            f"{n - n_scored} without a score"
        )
    for line in batch_summary(prog):
        print(line)
    if prog.get("ledger"):
        print(json.dumps(prog["ledger"], indent=2))
    if prog.get("error"):
        print(f"note: {prog['error']}", file=sys.stderr)
    if interrupted:
        print(
            f"interrupted: its batches were asked to cancel, finished answers kept; "
            f"reset-studio jobs resume {job_id} submits the rest",
            file=sys.stderr,
        )
        return exit_codes.INTERRUPTED
    # Expired or cancelled half done is resumable (STOPPED); a failed batch is a failure.
    return job_exit_status(prog["status"])


def _cmd_injection_check(args: argparse.Namespace) -> int:
    from reset_core.judging.injection import flag_candidates, measure_flagged
    from reset_core.judging.queries import injection_counts
    from reset_core.judging.worker import build_judge
    from reset_core.store import connect

    con = connect(args.db)
    flag_candidates(con)
    n = injection_counts(con)
    print(f"{n['flagged']} of {n['scanned']} candidates carry text aimed at the judge")
    if not args.llm or not n["flagged"]:
        return exit_codes.OK
    try:
        specs = _judge_specs(args, con)
    except ValueError as e:
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    eff = measure_flagged(con, build_judge(specs[-1]), limit=args.limit)
    share = "n/a" if eff.moved_share is None else f"{eff.moved_share:.1%}"
    print(
        f"{eff.n_flagged} flagged candidates judged with and without the flagged text: "
        f"{eff.n_compared} compared, {eff.n_moved} moved by >= {eff.threshold:g} point "
        f"({share})"
    )
    return exit_codes.OK


# ------------------------------------------------------------ shard folders (--out), #14
def _cmd_judge_out(args: argparse.Namespace) -> int:
    """``judge --out DIR2 --from DIR ...``: judge shard folders into one, no database."""
    from reset_core.cli import exit_codes
    from reset_core.judging.launch import JudgePlan
    from reset_core.options import options_from_args
    from reset_core.shards import ShardRejected, judge_to_folder, print_progress

    try:
        if args.out is None or not args.sources:
            raise ShardRejected("--out and --from go together: judge shard folders into a folder")
        if args.dry_run:
            raise ShardRejected("--dry-run: not available with --out")
        plan = options_from_args(JudgePlan, args)
        manifest = judge_to_folder(
            args.out,
            args.sources,
            lambda con: _judge_specs(args, con),
            plan,
            echo=lambda p: print_progress(p, "judgments"),
        )
    except ValueError as e:  # ShardRejected and pydantic's ValidationError are ValueErrors
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    counts = manifest["counts"]
    print(
        f"{args.out}: run {manifest['run_id']} {manifest['status']}; "
        f"{counts.get('judgments_rows', 0)} of {counts['judgments_planned']} judgments on "
        f"{counts['candidates']} candidates"
        + (f"; {manifest['error']}" if manifest.get("error") else "")
    )
    return {
        "done": exit_codes.OK,
        "stopped": exit_codes.STOPPED,
        "cancelled": exit_codes.INTERRUPTED,
    }.get(manifest["status"], exit_codes.FAILED)


def add_commands(sub) -> None:
    """Add ``judge`` and ``injection-check`` to the ``reset-studio`` subparsers."""
    from reset_core.judging.batch import BatchConfig
    from reset_core.judging.launch import JudgePlan
    from reset_core.judging.llm_judge import LLMJudgeConfig
    from reset_core.options import add_options

    p = sub.add_parser("judge", help="judge the candidates (offline metric judges and/or an LLM)")
    p.add_argument("--offline", action="store_true", help="the metric judges (no API needed)")
    p.add_argument("--llm", action="store_true", help="an LLM judge over an OpenAI-compatible API")
    p.add_argument("--local", action="store_true", help="the LLM judge on the local model (weak)")
    p.add_argument(
        "--batch",
        action="store_true",
        help="send the --llm judge's requests through the OpenAI Batch API: 50%% cheaper, "
        "results within 24 h (a judge_batch job; exit 4 when a batch expired half done)",
    )
    add_options(p, BatchConfig)
    add_options(p, JudgePlan)
    p.add_argument("--dry-run", action="store_true", help="print the cost estimate and stop")
    add_quiet(p)
    add_options(p, LLMJudgeConfig)
    g = p.add_argument_group(
        "shard folders (no database)",
        "judge the candidates of shard folders (reset-studio sample --out) into a shard "
        "folder on a machine with no database; reset-studio ingest loads it (docs/shards.md)",
    )
    g.add_argument("--out", metavar="DIR", help="write a shard folder of judgments here")
    g.add_argument(
        "--from", dest="sources", nargs="+", metavar="DIR", help="the shard folders to judge"
    )
    p.set_defaults(func=_cmd_judge)

    p = sub.add_parser(
        "injection-check",
        help="count candidates aimed at the judge; with --llm, how often their score moves",
    )
    p.add_argument(
        "--llm", action="store_true", help="judge each flagged candidate with and without it"
    )
    p.add_argument("--limit", type=int, default=None, help="measure at most this many")
    add_options(p, LLMJudgeConfig)
    p.set_defaults(func=_cmd_injection_check, offline=False, local=False)
