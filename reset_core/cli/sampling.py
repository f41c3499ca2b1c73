"""``reset-studio sample``: candidates over a decoding grid, the worker in the foreground.

The model flags are :class:`~reset_core.sampling.config.ModelSpec`, as on the Sample
page; the selection flags are comma lists, and the defaults are the page's (a first run
of about a minute on a CPU). Without ``--model`` it samples the round's policy (the
newest MTL or RESET checkpoint; RESET samples one policy per round), or the embedded
SmolLM2 before one exists, and says which. It prints the plan's size and estimated duration (from this
machine's last runs of the same model), then starts (or resumes) the same worker job as
the page, follows it and ingests its shards; Ctrl-C cancels the job after its current
batch, and ``--resume`` redoes only missing candidates::

    reset-studio sample                      # a first run: about a minute on a CPU laptop
    reset-studio sample --kinds instruction --count 500 --max-tokens 256   # real data
    reset-studio sample --engine openai --model my-model --base-url http://127.0.0.1:8000/v1
    reset-studio sample --grid grid.jsonl --splits seen,test_seen
    reset-studio sample --resume sample-20250101-120000-abc123

On a machine with no database, ``--out DIR`` writes a shard folder instead (see
``docs/shards.md``); examples come from ``--data FILE`` read with the flags of
``reset-studio import``, and ``--num-shards``/``--shard-index`` split the work across
machines. ``reset-studio ingest DIR`` loads it on the workstation::

    reset-studio sample --out shard-0 --data alpaca.json --preset alpaca --count 100000 \
        --num-shards 4 --shard-index 0 --engine vllm --model Qwen/Qwen2.5-7B-Instruct
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from reset_core import paths
from reset_core.cli import exit_codes
from reset_core.cli.jobs import exit_status as job_exit_status
from reset_core.cli.progress import ProgressBar, add_quiet
from reset_core.errors import validation_message


def _selection(args: argparse.Namespace):
    """The examples to sample, from the selection flags (``--selection-seed``: ``--seed``
    is the import's split seed under ``--out``)."""
    from reset_core.sampling.config import SampleSelection

    return SampleSelection(
        kinds=args.kinds,
        sources=args.sources,
        splits=args.splits,
        count=args.count,
        seed=args.selection_seed,
    )


def _cmd_sample(args: argparse.Namespace) -> int:
    """Sample in the foreground: start (or resume) a job's worker, follow it, ingest its shards."""
    if args.out is not None:
        return _cmd_sample_out(args)

    from reset_core import handoff, jobs
    from reset_core.models import ModelUnavailable, default_model_path
    from reset_core.options import options_from_args
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.launch import (
        SamplingRejected,
        default_model,
        estimate_sampling,
        plan_sampling,
        resume_sampling,
        start_sampling,
    )
    from reset_core.sampling.settings import GridRejected, default_grid, load_grid_file
    from reset_core.store import connect

    con = connect(args.db)
    try:
        if args.resume:
            job_id = args.resume
            if jobs.job_kind(con, job_id) is None:
                print(f"error: no job {job_id!r} (reset-studio jobs list)", file=sys.stderr)
                return exit_codes.NOT_FOUND
            resume_sampling(con, job_id)
            print(f"resuming {job_id}: only missing candidates are generated")
        else:
            if args.model is None and args.engine in (None, "transformers"):
                if args.adapter is None:
                    # One policy per round: the round's policy, else the embedded model.
                    chosen = default_model(con)
                    args.model, args.adapter = chosen.spec["model"], chosen.spec["adapter"]
                    args.name = args.name or chosen.spec["name"]
                    print(f"model (no --model given): {chosen.why}")
                else:
                    args.model = str(default_model_path())
            spec = options_from_args(ModelSpec, args)
            selection = _selection(args)
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
            print(estimate_sampling(con, plan))
            job_id = start_sampling(con, plan, paths.jobs_dir(args.db), chunk_size=args.chunk_size)
            print(f"job {job_id} started")
    except (SamplingRejected, GridRejected, ModelUnavailable, ValidationError) as e:
        msg = validation_message(e) if isinstance(e, ValidationError) else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return exit_codes.REJECTED
    # The worker is a separate process: the database is closed while it runs and
    # opened only to ingest its shards, so the app (or another command) may open it
    # meanwhile; then the app ingests them (reset_core.handoff).
    con.close()
    bar = ProgressBar("candidates", quiet=args.quiet)
    interrupted = []

    def say_cancelling() -> None:
        interrupted.append(True)
        if not bar.quiet:
            bar.stream.write("\ncancelling: the worker stops after its current batch\n")

    progress = handoff.follow(
        args.db, job_id, bar.update, poll_s=args.poll_s, on_interrupt=say_cancelling
    )
    bar.close(progress)
    if interrupted:
        print(f"interrupted: saved candidates kept; resume with --resume {job_id}", file=sys.stderr)
        return exit_codes.INTERRUPTED
    print(
        f"job {job_id} {progress['status']}"
        + (f": {progress['error']}" if progress.get("error") else "")
    )
    return job_exit_status(progress["status"])


# ------------------------------------------------------------ shard folders (--out), #14
def _grid_from_args(args: argparse.Namespace):
    from reset_core.sampling.settings import default_grid, load_grid_file

    if args.grid:
        return load_grid_file(args.grid)
    return default_grid(max_tokens=args.max_tokens, n=args.samples)


def _cmd_sample_out(args: argparse.Namespace) -> int:
    """``sample --out DIR``: sample into a shard folder, no database (reset_core.shards)."""
    from reset_core.cli import exit_codes
    from reset_core.ingest.config import ImportOptions, ImportRejected
    from reset_core.models import ModelUnavailable, default_model_path
    from reset_core.options import options_from_args
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.launch import SamplingRejected
    from reset_core.sampling.settings import GridRejected
    from reset_core.shards import ShardRejected, print_progress, sample_to_folder

    try:
        if not args.data:
            raise ShardRejected(
                "--data: --out needs the dataset file to sample (read with the same flags "
                "as reset-studio import, so example ids match the workstation's)"
            )
        if args.resume:
            raise ShardRejected("--resume: with --out, rerun the same command to resume")
        if args.model is None and args.engine in (None, "transformers"):
            args.model = str(default_model_path())
            print(f"model (no --model given): the embedded model at {args.model}")
        spec = options_from_args(ModelSpec, args)
        import_options = options_from_args(ImportOptions, args)
        selection = _selection(args)
        manifest = sample_to_folder(
            args.out,
            args.data,
            import_options,
            selection,
            spec,
            _grid_from_args(args),
            num_shards=args.num_shards,
            shard_index=args.shard_index,
            chunk_size=args.chunk_size,
            echo=lambda p: print_progress(p, "candidates"),
        )
    except (
        ShardRejected,
        ImportRejected,
        SamplingRejected,
        GridRejected,
        ModelUnavailable,
        ValidationError,
    ) as e:
        msg = validation_message(e) if isinstance(e, ValidationError) else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return exit_codes.REJECTED
    counts = manifest["counts"]
    print(
        f"{args.out}: run {manifest['run_id']} {manifest['status']}; "
        f"{counts.get('candidates_rows', 0)} of {counts['candidates_planned']} candidates "
        f"for {counts['examples']} examples (shard {args.shard_index} of {args.num_shards})"
        + (f"; {manifest['error']}" if manifest.get("error") else "")
    )
    return {"done": exit_codes.OK, "cancelled": exit_codes.INTERRUPTED}.get(
        manifest["status"], exit_codes.FAILED
    )


def _add_out_options(p: argparse.ArgumentParser) -> None:
    from reset_core.ingest.config import ImportOptions
    from reset_core.options import add_options

    g = p.add_argument_group(
        "shard folder (no database)",
        "--out DIR samples into a shard folder (docs/shards.md) on a machine with no "
        "database; reset-studio ingest DIR loads it. Examples come from --data FILE, read "
        "with the import flags below as reset-studio import reads it.",
    )
    g.add_argument("--out", metavar="DIR", help="write a shard folder here; no database")
    g.add_argument("--data", metavar="FILE", help="with --out: the dataset file to sample")
    g.add_argument(
        "--num-shards",
        type=int,
        default=1,
        help="with --out: split the selected examples into this many shards (stable hash "
        "of example_id)",
    )
    g.add_argument(
        "--shard-index", type=int, default=0, help="with --out: which shard this run makes"
    )
    add_options(g, ImportOptions)


def add_commands(sub) -> None:
    """Add ``sample`` to the ``reset-studio`` subparsers."""
    from reset_core.config_file import record_fields
    from reset_core.options import add_options, comma_list, help_text
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.settings import DEFAULT_MAX_TOKENS

    p = sub.add_parser(
        "sample",
        help="generate candidates over a decoding grid (runs the worker in the foreground)",
    )
    add_options(p, ModelSpec)
    # The SampleSelection fields, written out: one comma list per flag, and
    # --selection-seed beside the engine's flags. Their help is the model's.
    S = lambda name: help_text(SampleSelection, name).replace("%", "%%")  # noqa: E731
    p.add_argument("--kinds", type=comma_list, default="", help=S("kinds") + " Comma list.")
    p.add_argument("--sources", type=comma_list, default="", help=S("sources") + " Comma list.")
    p.add_argument("--splits", type=comma_list, default="seen", help=S("splits") + " Comma list.")
    count = SampleSelection.model_fields["count"].default
    p.add_argument("--count", type=int, default=count, help=S("count"))
    p.add_argument("--selection-seed", type=int, default=0, help=S("seed"))
    # [sampling.selection] in reset-studio.toml sets these flags' defaults too.
    record_fields(
        p,
        SampleSelection,
        {f: f for f in ("kinds", "sources", "splits", "count")} | {"seed": "selection_seed"},
    )
    p.add_argument(
        "--grid", help="JSON list or JSONL of decoding settings (default: the default grid)"
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"default grid: max_tokens ({DEFAULT_MAX_TOKENS})",
    )
    p.add_argument("--samples", type=int, default=1, help="default grid: samples per setting (1)")
    p.add_argument("--chunk-size", type=int, help="candidates per shard (default: per engine)")
    p.add_argument("--resume", metavar="JOB_ID", help="relaunch a stopped job: only missing keys")
    p.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    add_quiet(p)
    _add_out_options(p)
    p.set_defaults(func=_cmd_sample)
