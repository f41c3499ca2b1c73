"""The ``reset-studio`` command: one subcommand per stage, over the same library calls as the app.

Examples::

    reset-studio import data/demo/demo_examples.jsonl --preset alpaca
    reset-studio db info
    reset-studio db init --demo
    reset-studio model prepare
    reset-studio sample --kinds instruction --count 50 --max-tokens 64
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from reset_core import paths
from reset_core.errors import validation_message


def _cmd_import(args: argparse.Namespace) -> int:
    from reset_core.ingest.config import ImportOptions, ImportRejected
    from reset_core.ingest.importer import import_file
    from reset_core.options import options_from_args
    from reset_core.store import connect

    try:
        opts = options_from_args(ImportOptions, args)
    except ValidationError as e:
        print(f"error: {validation_message(e)}", file=sys.stderr)
        return 2
    con = connect(args.db)
    try:
        result = import_file(con, args.file, opts)
    except ImportRejected as e:
        print(f"error: {e}", file=sys.stderr)
        print("nothing was imported; the database is unchanged", file=sys.stderr)
        return 1
    print(
        f"imported {result.n_added} new examples from {result.path} (preset {result.preset}; "
        f"{result.n_rows} rows, {result.n_duplicates} duplicates skipped)"
    )
    return 0


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
        return 0
    print(f"database   {info['database']}")
    print(f"migrations {', '.join(info['migrations'])}")
    for label, n in info["counts"].items():
        print(f"{label:<14}{n:>10,}")
    for key in ("examples_by_kind", "examples_by_split", "examples_by_source"):
        if info[key]:
            print(
                f"{key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in info[key].items())
            )
    return 0


def _cmd_db_init(args: argparse.Namespace) -> int:
    from reset_core.ingest.demo import load_demo
    from reset_core.store import connect

    con = connect(args.db)
    if args.demo:
        n = load_demo(con)
        print(f"demo set: {n} examples added" if n else "demo set: database already has examples")
    print(f"database ready at {Path(args.db).resolve()}")
    return 0


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from reset_core.models import ModelUnavailable, prepare_default_model

    try:
        out = prepare_default_model(args.out)
    except ModelUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"embedded model ready at {out}")
    return 0


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


def _cmd_judge(args: argparse.Namespace) -> int:
    import time

    from reset_core.jobs import run_worker
    from reset_core.judging.launch import (
        cache_path,
        create_judge_job,
        estimate_job,
        plan_items,
        sync_judge_job,
    )
    from reset_core.store import connect, one

    con = connect(args.db)
    try:
        specs = _judge_specs(args, con)
        plan = {"aspects": args.aspects, "redo": args.redo, "limit": args.limit}
        items = plan_items(con, specs, **plan)
    except (ValidationError, ValueError) as e:
        msg = validation_message(e) if isinstance(e, ValidationError) else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    est = estimate_job(specs, items, cache_path(args.db))
    for judge_id, e in est.items():
        print(
            f"{judge_id}: {e['n_items']} items, {e['n_requests']} requests "
            f"({e['n_cached']} cached), ~{e['prompt_tokens']:,} prompt tokens, "
            f"estimated ${e['cost_usd']:.4f} (at most ${e['cost_usd_max']:.4f})"
        )
    if args.dry_run or items.num_rows == 0:
        if items.num_rows == 0:
            print("nothing to judge: every candidate already has a verdict from these judges")
        return 0
    job_id = create_judge_job(con, args.db, specs, items=items, **plan)
    work_dir = one(con, "SELECT work_dir FROM jobs WHERE job_id = ?", [job_id])[0]
    con.execute(
        "UPDATE jobs SET status='running', started_at=current_timestamp WHERE job_id=?", [job_id]
    )
    t0 = time.monotonic()
    run_worker(work_dir)  # headless: the same worker, in this process
    prog = sync_judge_job(con, job_id)
    row = con.execute(
        "SELECT count(*), count(score) FROM judgments WHERE job_id = ?", [job_id]
    ).fetchall()[0]
    print(
        f"job {job_id}: {prog['status']} in {time.monotonic() - t0:.1f}s; "
        f"{row[0]} judgments, {row[1]} scored, {row[0] - row[1]} without a score"
    )
    if prog.get("ledger"):
        print(json.dumps(prog["ledger"], indent=2))
    if prog.get("error"):
        print(f"note: {prog['error']}", file=sys.stderr)
    return 0 if prog["status"] in ("done", "stopped") else 1


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


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _cmd_sample(args: argparse.Namespace) -> int:
    """Sample in the foreground: start (or resume) a job's worker, follow it, ingest its shards."""
    import time

    from reset_core import jobs
    from reset_core.models import ModelUnavailable, default_model_path
    from reset_core.options import options_from_args
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.launch import (
        SamplingRejected,
        plan_sampling,
        resume_sampling,
        start_sampling,
        sync_sampling,
    )
    from reset_core.sampling.settings import GridRejected, default_grid, load_grid_file
    from reset_core.store import connect

    con = connect(args.db)
    try:
        if args.resume:
            job_id = args.resume
            resume_sampling(con, job_id)
            print(f"resuming {job_id}: only missing candidates are generated")
        else:
            if args.model is None and args.engine in (None, "transformers"):
                args.model = str(default_model_path())
            spec = options_from_args(ModelSpec, args)
            selection = SampleSelection(
                kinds=_csv(args.kinds),
                sources=_csv(args.sources),
                splits=_csv(args.splits),
                count=args.count,
                seed=args.selection_seed,
            )
            if args.grid:
                grid = load_grid_file(args.grid)
            else:
                grid = default_grid(max_tokens=args.max_tokens, n=args.samples)
            plan = plan_sampling(con, selection, spec, grid)
            print(
                f"{len(plan.example_ids)} examples x {len(plan.grid)} settings: "
                f"{plan.n_candidates} candidates, {plan.n_existing} already stored, "
                f"{plan.n_new} to generate with {spec.engine} {spec.display_name}"
            )
            job_id = start_sampling(con, plan, paths.jobs_dir(args.db), chunk_size=args.chunk_size)
            print(f"job {job_id} started")
    except (SamplingRejected, GridRejected, ModelUnavailable, ValidationError) as e:
        msg = validation_message(e) if isinstance(e, ValidationError) else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    progress: dict = {}
    try:
        while True:
            progress = sync_sampling(con, job_id)
            rate, eta = progress.get("rate_per_s") or 0.0, progress.get("eta_s")
            print(
                f"\r{progress.get('n_done', 0)}/{progress.get('n_total', '?')} candidates, "
                f"{rate:.2f}/s, ETA {'?' if eta is None else f'{eta:.0f} s'}   ",
                end="",
                flush=True,
            )
            if progress["status"] not in jobs.ACTIVE:
                break
            time.sleep(args.poll_s)
    except KeyboardInterrupt:
        print("\ncancelling: the worker stops after its current batch", file=sys.stderr)
        jobs.cancel(con, job_id)
        while (progress := sync_sampling(con, job_id))["status"] in jobs.ACTIVE:
            time.sleep(0.5)
    print()
    print(
        f"job {job_id} {progress['status']}"
        + (f": {progress['error']}" if progress.get("error") else "")
    )
    return 0 if progress["status"] == "done" else 1


def build_parser() -> argparse.ArgumentParser:
    from reset_core.ingest.config import ImportOptions
    from reset_core.options import add_options

    parser = argparse.ArgumentParser(prog="reset-studio", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        default=str(paths.default_db_path()),
        help="DuckDB file (default: $RESET_STUDIO_DB or data/reset_studio.duckdb)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="import examples from a file or datasets folder")
    p.add_argument("file", help=".jsonl, .json, .csv, .parquet or a Hugging Face datasets folder")
    add_options(p, ImportOptions)
    p.set_defaults(func=_cmd_import)

    db = sub.add_parser("db", help="database commands").add_subparsers(
        dest="db_command", required=True
    )
    p = db.add_parser("info", help="where the loop stands: counts per stage and example breakdowns")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_db_info)
    p = db.add_parser("init", help="create or migrate the database")
    p.add_argument("--demo", action="store_true", help="load the bundled demo set when it is empty")
    p.set_defaults(func=_cmd_db_init)

    model = sub.add_parser("model", help="models").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("prepare", help="convert the embedded SmolLM2 model to safetensors once")
    p.add_argument("--out", default=str(paths.DEFAULT_MODEL_DIR), help="output folder")
    p.set_defaults(func=_cmd_model_prepare)

    from reset_core.judging.llm_judge import LLMJudgeConfig
    from reset_core.scoring.config import SelectionConfig

    p = sub.add_parser("judge", help="judge the candidates (offline metric judges and/or an LLM)")
    p.add_argument("--offline", action="store_true", help="the metric judges (no API needed)")
    p.add_argument("--llm", action="store_true", help="an LLM judge over an OpenAI-compatible API")
    p.add_argument("--local", action="store_true", help="the LLM judge on the local model (weak)")
    p.add_argument(
        "--aspects",
        choices=["needed", "all"],
        default="needed",
        help="needed: only what the RESET formula uses per example kind",
    )
    p.add_argument("--redo", action="store_true", help="judge again what already has a verdict")
    p.add_argument("--limit", type=int, help="judge at most this many items")
    p.add_argument("--dry-run", action="store_true", help="print the cost estimate and stop")
    add_options(p, LLMJudgeConfig)
    p.set_defaults(func=_cmd_judge)

    p = sub.add_parser("select", help="RESET scores and picks from the judgments")
    p.add_argument("--dry-run", action="store_true", help="preview without storing")
    add_options(p, SelectionConfig, exclude=("judges", "judge_by_aspect"))
    p.set_defaults(func=_cmd_select)
    from reset_core.sampling.config import ModelSpec

    p = sub.add_parser(
        "sample",
        help="generate candidates over a decoding grid (runs the worker in the foreground)",
    )
    add_options(p, ModelSpec)
    p.add_argument(
        "--kinds", default="", help="comma-separated kinds (instruction,context); empty = all"
    )
    p.add_argument("--sources", default="", help="comma-separated sources; empty = all")
    p.add_argument("--splits", default="seen", help="comma-separated splits (default: seen)")
    p.add_argument("--count", type=int, default=50, help="at most this many examples (default 50)")
    p.add_argument("--selection-seed", type=int, default=0, help="which examples when more match")
    p.add_argument(
        "--grid", help="JSON list or JSONL of decoding settings (default: the default grid)"
    )
    p.add_argument("--max-tokens", type=int, default=128, help="default grid: max_tokens (128)")
    p.add_argument("--samples", type=int, default=1, help="default grid: samples per setting (1)")
    p.add_argument("--chunk-size", type=int, help="candidates per shard (default: per engine)")
    p.add_argument("--resume", metavar="JOB_ID", help="relaunch a stopped job: only missing keys")
    p.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_sample)
    from reset_core.cli.training import add_commands as add_training_commands

    add_training_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from reset_core.store import DatabaseBusy

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DatabaseBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
