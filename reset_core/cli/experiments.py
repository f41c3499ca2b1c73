"""``reset-studio experiment``: the paper's experiments (or your recipe), run headless.

A recipe is a TOML file (:class:`~reset_core.evaluation.experiments.Recipe`); the
built-ins are ``data/experiments/*.toml`` and a user's sit in ``experiments/`` beside the
database. Each job runs in this process (the same workers the app launches); the run
ends with one evaluation comparing the experiment's checkpoints::

    reset-studio experiment --list
    reset-studio experiment mtl-tradeoff
    reset-studio experiment decoding-ablation --examples 400 --tests 300   # a real run
    reset-studio experiment --recipe my-recipe.toml
    reset-studio experiment --resume exp-20260101-120000-abc123             # after a kill
"""

from __future__ import annotations

import argparse
import sys
import time

from reset_core.cli import exit_codes
from reset_core.cli.progress import add_quiet, job_runner
from reset_core.errors import rejection_message


def _print_list(args) -> int:
    from reset_core.evaluation.experiments import list_experiments, list_recipes, step_names

    for name, r in list_recipes(args.db).items():
        arms = ", ".join(a.name for a in r.arms) or "none"
        print(f"{name}: {' '.join(r.description.split())}")
        print(
            f"    {r.examples.count} seen examples · arms: {arms} · evaluates "
            f"{', '.join(r.checkpoints())} (baseline {r.evaluation.baseline}) on "
            f"{r.evaluation.tests.count} test examples · {len(step_names(r))} steps"
        )
    from reset_core.store import connect

    df = list_experiments(connect(args.db))
    if len(df):
        print("\nexperiments in this database:")
        for r in df.itertuples():
            print(
                f"  {r.experiment_id}  {r.name:<20} {r.status:<8} {r.steps_done}/{r.steps_total} "
                f"steps" + (f" · evaluation {r.evaluation_id}" if r.evaluation_id else "")
            )
    return exit_codes.OK


def _cmd_experiment(args: argparse.Namespace) -> int:
    from reset_core.evaluation import experiments as ex
    from reset_core.store import connect

    if args.list:
        return _print_list(args)
    if sum(x is not None for x in (args.name, args.recipe, args.resume)) != 1:
        print("error: give one of NAME, --recipe FILE or --resume ID (or --list)", file=sys.stderr)
        return exit_codes.REJECTED
    con = connect(args.db)
    if args.resume:
        exp_id = args.resume
        try:
            ex.get_experiment(con, exp_id)
        except KeyError as e:
            print(f"error: {e.args[0]}", file=sys.stderr)
            return exit_codes.NOT_FOUND
    else:
        try:
            recipe = ex.load_recipe(args.recipe or args.name, args.db)
            exp_id = ex.start_experiment(
                con,
                args.db,
                recipe,
                **{
                    k: v
                    for k, v in (
                        ("examples", args.examples),
                        ("tests", args.tests),
                        ("max_steps", args.max_steps),
                    )
                    if v is not None
                },
            )
        except ValueError as e:  # a RecipeError, a ValidationError, a rejected model
            print(f"error: {rejection_message(e)}", file=sys.stderr)
            return exit_codes.REJECTED
        print(f"experiment {exp_id} ({recipe.name}): {' '.join(recipe.description.split())}")
    started = time.monotonic()
    last = [None]

    def show(p) -> None:
        line = f"[{p.steps_done}/{p.steps_total}] {p.message}"
        if line != last[0]:
            print(f"{time.monotonic() - started:7.0f}s {line}", flush=True)
            last[0] = line

    try:
        p = ex.run_experiment(
            con, args.db, exp_id, on_progress=show, until=args.until, run=job_runner(args.quiet)
        )
    except KeyboardInterrupt:
        print(f"interrupted; resume with --resume {exp_id}", file=sys.stderr)
        return exit_codes.INTERRUPTED
    took = time.monotonic() - started
    if p.status == "failed":
        print(f"failed at {p.step}: {p.message}\nresume with --resume {exp_id}", file=sys.stderr)
        return exit_codes.FAILED
    if p.status == "done":
        print(f"done in {took:.0f}s: evaluation {p.evaluation_id}")
        print(f"report: reset-studio report --experiment {exp_id} --out {exp_id}.html")
    else:
        print(f"stopped before {p.step} after {took:.0f}s; continue with --resume {exp_id}")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``experiment`` to the ``reset-studio`` subparsers."""
    p = sub.add_parser(
        "experiment",
        help="run one of the paper's experiments (or a recipe file) headless, ending in an "
        "evaluation",
    )
    p.add_argument("name", nargs="?", help="a recipe's name: mtl-tradeoff, decoding-ablation, ...")
    p.add_argument("--list", action="store_true", help="list the recipes and experiments")
    p.add_argument("--recipe", metavar="FILE", help="run the recipe in this TOML file")
    p.add_argument("--resume", metavar="ID", help="continue an interrupted or failed experiment")
    p.add_argument("--examples", type=int, help="seen examples to use (scales the recipe)")
    p.add_argument("--tests", type=int, help="test examples to evaluate on")
    p.add_argument("--max-steps", type=int, help="cap every training run at this many steps")
    p.add_argument(
        "--until",
        metavar="STEP",
        help="stop before this step (e.g. evaluate); --resume continues from there",
    )
    add_quiet(p)
    p.set_defaults(func=_cmd_experiment)
