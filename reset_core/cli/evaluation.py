"""``reset-studio evaluate``: checkpoints compared on a frozen test set, run headless.

The flags are :class:`~reset_core.evaluation.config.EvalConfig` and its
:class:`~reset_core.evaluation.config.TestSet`, as on the Evaluate page. Checkpoints
are model ids or the labels the app shows (``reset-studio model list``), plus the
shortcuts ``base`` (the base model of the newest trained checkpoint), ``mtl`` (the
newest MTL checkpoint) and ``latest`` (the newest trained checkpoint). The same
sampling and judging workers as the app run in this process; the command prints each
step, then answers and verdicts per checkpoint. ``--resume`` continues an evaluation
(after Ctrl-C, a kill or a failure: only what is missing is made)::

    reset-studio evaluate --checkpoints base,mtl,latest
    reset-studio evaluate --checkpoints m:0123abcd,latest --splits test_unseen --count 200
    reset-studio evaluate --checkpoints base,latest --sources ifeval --max-tokens 512
    reset-studio evaluate --resume eval-20250101-120000-abc123
    reset-studio evaluate --list
"""

from __future__ import annotations

import argparse
import sys

from reset_core.cli import exit_codes
from reset_core.cli.progress import add_quiet, job_runner
from reset_core.errors import rejection_message

#: Decoding flags offered (the rest of the setting stays greedy: seed 0, n 1).
DECODING_FLAGS = ("temperature", "top_k", "top_p", "max_tokens")


def _embedded_model(con) -> str | None:
    """The embedded SmolLM2's model id (registered now if it was not), or None."""
    from reset_core.models import DEFAULT_MODEL_NAME, default_model_path
    from reset_core.training.launch import ensure_model

    path = default_model_path()
    if not (path / "config.json").exists():
        return None
    return ensure_model(con, str(path), name=DEFAULT_MODEL_NAME)


def resolve_checkpoints(con, names: list[str]) -> list[str]:
    """Model ids for ``names``: ids, the labels the app shows, or base / mtl / latest.

    Raises ``ValueError`` naming the checkpoint that matches no model, or several.
    """
    from reset_core.training.queries import lineage, model_labels

    labels = model_labels(con)
    newest = con.execute(
        "SELECT model_id, lower(coalesce(s.preset, m.stage)) FROM models m "
        "LEFT JOIN curated_sets s ON s.set_id = m.curated_set_id "
        "WHERE m.training_run_id IS NOT NULL ORDER BY m.created_at DESC, m.model_id"
    ).fetchall()
    shortcuts: dict[str, str | None] = {
        "latest": newest[0][0] if newest else None,
        "mtl": next((m for m, stage in newest if stage == "mtl"), None),
    }
    root = lineage(con, shortcuts["latest"])[-1] if shortcuts["latest"] else None
    shortcuts["base"] = root["model_id"] if root and not root.get("missing") else None
    if shortcuts["base"] is None and "base" in [n.lower() for n in names]:
        # Nothing trained yet: the base is the embedded model, as on the Evaluate page.
        shortcuts["base"] = _embedded_model(con)
    out = []
    for name in names:
        if name in labels:
            out.append(name)
            continue
        if name.lower() in shortcuts:
            if shortcuts[name.lower()] is None:
                raise ValueError(f"checkpoints: {name!r}: no such checkpoint yet (train one first)")
            out.append(shortcuts[name.lower()])
            continue
        hits = [m for m, label in labels.items() if label.lower() == name.lower()]
        if len(hits) != 1:
            raise ValueError(
                f"checkpoints: {name!r} "
                + (
                    f"matches several models ({', '.join(hits)}); give the id"
                    if hits
                    else "is no model id, label, base, mtl or latest; known: "
                    + "; ".join(f"{m} ({lab})" for m, lab in list(labels.items())[:10])
                )
            )
        out.append(hits[0])
    return out


def _config(con, args: argparse.Namespace):
    from reset_core.evaluation.config import GREEDY, EvalConfig, TestSet
    from reset_core.options import options_from_args
    from reset_core.sampling.settings import DecodingSetting

    if not args.checkpoints:
        raise ValueError("checkpoints: give at least one (model ids, labels, base, mtl, latest)")
    checkpoints = resolve_checkpoints(con, args.checkpoints)
    baseline = resolve_checkpoints(con, [args.baseline])[0] if args.baseline else None
    given = {f: getattr(args, f) for f in DECODING_FLAGS if getattr(args, f) is not None}
    decoding = DecodingSetting(**{**GREEDY.model_dump(), **given})
    tests = options_from_args(TestSet, args)
    return EvalConfig(
        name=args.name,
        checkpoints=checkpoints,
        baseline=baseline,
        tests=tests,
        decoding=decoding,
        panel=args.panel or "default",
        engine=args.engine or "transformers",
        batch_size=args.batch_size or EvalConfig.model_fields["batch_size"].default,
    )


def _list(con) -> int:
    from reset_core.evaluation.queries import list_evaluations

    df = list_evaluations(con)
    if df.empty:
        print("no evaluations yet (reset-studio evaluate --checkpoints ... makes one)")
        return exit_codes.OK
    for r in df.itertuples():
        print(
            f"{r.evaluation_id}  {r.status:<8}  {r.n_checkpoints} checkpoints x "
            f"{r.n_examples} examples  {r.created_at:%Y-%m-%d %H:%M}  {r.name}"
        )
    return exit_codes.OK


def _summary(con, evaluation_id: str) -> None:
    from reset_core.evaluation.launch import checkpoint_summary

    print(f"{'checkpoint':<48} {'answers':>9} {'verdicts':>11} {'failed':>7} {'missing':>8}")
    for s in checkpoint_summary(con, evaluation_id):
        print(
            f"{s['label'][:48]:<48} {s['answers']:>4}/{s['answers_total']:<4} "
            f"{s['verdicts']:>5}/{s['verdicts_total']:<5} {s['verdicts_failed']:>7} "
            f"{s['verdicts_missing']:>8}"
        )


def _dry_run(con, cfg) -> int:
    """What an evaluation would compare, nothing created: exit 2 when no example matches."""
    from reset_core.evaluation.launch import describe_test_set_size, test_set_size
    from reset_core.training.queries import model_labels

    labels = model_labels(con)
    size = test_set_size(con, cfg.tests)
    print("dry run: nothing is created")
    print("checkpoints: " + ", ".join(f"{labels.get(m, m)} ({m})" for m in cfg.checkpoints))
    print(f"test set: {describe_test_set_size(size)}")
    if len(size["source"]) > 4:  # the line above only counts them
        print("  sources: " + ", ".join(f"{s} {n:,}" for s, n in size["source"].items()))
    print(
        f"decoding: {cfg.decoding.label()}, max_tokens {cfg.decoding.max_tokens}; "
        f"panel {cfg.panel!r}; {len(cfg.checkpoints) * size['total']:,} answers to make at most"
    )
    if not size["total"]:
        print("error: tests: no examples match; import or split a test set first", file=sys.stderr)
        return exit_codes.REJECTED
    return exit_codes.OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from reset_core.evaluation.launch import (
        cancel_evaluation,
        create_evaluation,
        resume_evaluation,
        run_evaluation,
    )
    from reset_core.evaluation.queries import get_evaluation
    from reset_core.store import connect

    con = connect(args.db)
    if args.list:
        return _list(con)
    try:
        if args.resume:
            try:
                evaluation_id = get_evaluation(con, args.resume)["evaluation_id"]
            except ValueError as e:  # an unknown id: nothing to resume
                print(f"error: {e} (reset-studio evaluate --list)", file=sys.stderr)
                return exit_codes.NOT_FOUND
            resume_evaluation(con, evaluation_id)
            print(f"resuming {evaluation_id}: only missing answers and verdicts are made")
        else:
            cfg = _config(con, args)
            if args.dry_run:
                return _dry_run(con, cfg)
            evaluation_id = create_evaluation(con, args.db, cfg)
            ev = get_evaluation(con, evaluation_id)
            judges = sorted({j for ids in ev["frozen"]["judges"].values() for j in ids})
            print(
                f"evaluation {evaluation_id}: {len(cfg.checkpoints)} checkpoints x "
                f"{ev['n_examples']} examples, {cfg.decoding.label()}, max_tokens "
                f"{cfg.decoding.max_tokens}; panel {cfg.panel!r} frozen with "
                f"{len(judges)} judges"
            )
    except ValueError as e:  # a pydantic ValidationError is one too
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    last = None

    def show(p) -> None:
        nonlocal last
        line = p.describe()
        if line != last:
            print(line, flush=True)
            last = line

    try:
        p = run_evaluation(
            con,
            args.db,
            evaluation_id,
            on_progress=show,
            poll_s=args.poll_s,
            run=job_runner(args.quiet),
        )
    except KeyboardInterrupt:
        cancel_evaluation(con, evaluation_id)
        print(
            f"\ncancelled; what finished is kept: reset-studio evaluate --resume {evaluation_id}",
            file=sys.stderr,
        )
        return exit_codes.INTERRUPTED
    _summary(con, evaluation_id)
    if p.status != "done":
        print(f"{p.status}: {p.message}", file=sys.stderr)
        return exit_codes.FAILED
    if p.verdicts_done < p.verdicts_total:
        print(f"note: {p.message}", file=sys.stderr)
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``evaluate`` to the ``reset-studio`` subparsers."""
    from reset_core.evaluation.config import EvalConfig, TestSet
    from reset_core.options import add_options
    from reset_core.sampling.settings import DecodingSetting

    p = sub.add_parser(
        "evaluate",
        help="compare checkpoints on a frozen test set (sampling + judging, headless)",
    )
    add_options(p, EvalConfig, exclude=("tests", "decoding"))
    add_options(p, TestSet)
    add_options(p, DecodingSetting, only=DECODING_FLAGS)
    p.add_argument(
        "--resume", metavar="EVAL_ID", help="continue an evaluation: only what is missing"
    )
    p.add_argument("--list", action="store_true", help="list the evaluations and stop")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the checkpoints and how many test examples match (per split, kind, "
        "source), then stop without creating the evaluation",
    )
    p.add_argument("--poll-s", type=float, default=1.0, help=argparse.SUPPRESS)
    add_quiet(p)
    p.set_defaults(func=_cmd_evaluate)
