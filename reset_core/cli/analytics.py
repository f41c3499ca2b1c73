"""``reset-studio analytics agreement|tradeoff|decoding|grid``: the analytics pages' figures.

The same library calls as the Agreement, Trade-off and Decoding pages, over the same
``analytics_*`` summaries (refreshed first when the data changed). Each prints a table
and the count of judgments left out as failed; ``--json`` prints one JSON object
instead, for scripts::

    reset-studio analytics agreement --aspect task            # judge-vs-judge, judge-vs-human
    reset-studio analytics tradeoff --level model --kind context
    reset-studio analytics decoding --split seen
    reset-studio analytics grid --out next-grid.jsonl          # feed to sample --grid
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from reset_core.aspects import ASPECTS
from reset_core.cli import exit_codes


def print_table(rows: Sequence[dict], cols: Sequence[str], out=None) -> None:
    """Print ``rows`` as aligned columns (numbers to 3 decimals, None as ``-``).

    >>> print_table([{"a": "x", "b": 0.12345}, {"a": "long", "b": None}], ["a", "b"])
    a     b
    x     0.123
    long  -
    """
    out = out or sys.stdout

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v)

    cells = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(cols)]
    for line in [list(cols), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip(), file=out)


def _json(obj) -> None:
    print(json.dumps(obj, default=str))


def _fresh(args):
    from reset_core.analytics.summaries import ensure_fresh
    from reset_core.store import connect

    con = connect(args.db)
    ensure_fresh(con)  # the pages do the same: summaries rebuilt only when the data changed
    return con


def _stat(s) -> dict:
    return {"value": s.value, "n": s.n, "ci": list(s.ci) if s.ci else None, "note": s.note}


def _cmd_agreement(args: argparse.Namespace) -> int:
    from reset_core.analytics import agreement as ag
    from reset_core.analytics.summaries import missing_note

    con = _fresh(args)
    aspects = ASPECTS if args.aspect == "all" else (args.aspect,)
    out = {}
    for aspect in aspects:
        report = ag.judge_agreement(con, aspect, n_boot=args.n_boot)
        human = ag.judge_vs_human(con, aspect, n_boot=args.n_boot)
        rows = [
            {"rater_a": a, "rater_b": b, **{k: s.value for k, s in stats.items()}, "n": _n(stats)}
            for (a, b), stats in report.pairs.items()
        ] + [
            {"rater_a": j, "rater_b": ag.HUMAN, **{k: s.value for k, s in stats.items()}}
            | {"n": _n(stats)}
            for j, stats in human.items()
        ]
        out[aspect] = {
            "judges": report.judges,
            "pairs": [
                {"a": a, "b": b, **{k: _stat(s) for k, s in stats.items()}}
                for (a, b), stats in report.pairs.items()
            ],
            "judge_vs_human": {j: {k: _stat(s) for k, s in st.items()} for j, st in human.items()},
            "alpha": {k: _stat(s) for k, s in report.alpha.items()},
            "n_units": report.n_units,
            "n_sampled_from": report.n_sampled_from,
            "missing": report.missing,
            "notes": report.notes,
        }
        if args.json:
            continue
        print(f"== {aspect}: {missing_note(report.missing)}")
        for note in report.notes:
            print(note)
        if rows:
            print_table(rows, ["rater_a", "rater_b", *ag.PAIR_STATS, "n"])
        for name, s in report.alpha.items():
            print(f"{ag.STAT_LABELS.get(name, name)}: {s.label()}")
        print()
    if args.json:
        _json(out)
    return exit_codes.OK


def _n(stats: dict) -> int:
    return max((s.n for s in stats.values()), default=0)


def _cmd_tradeoff(args: argparse.Namespace) -> int:
    from reset_core.analytics import tradeoff
    from reset_core.analytics.summaries import missing_note, missing_summary

    con = _fresh(args)
    try:
        res = tradeoff.tradeoff_points(
            con,
            args.x,
            args.y,
            args.level,
            kind=None if args.kind == "all" else args.kind,
            split=None if args.split == "all" else args.split,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.REJECTED
    models = tradeoff.model_view(con, args.x, args.y)
    if args.json:
        _json({**res, "models": models})
        return exit_codes.OK
    print(missing_note(missing_summary(con)))
    print(
        f"{res['n_candidates']:,} candidates: {res['n_with_x']:,} with {args.x}, "
        f"{res['n_with_y']:,} with {args.y}, {res['n_with_both']:,} with both; "
        f"{res['n_failed']:,} failed judgments excluded"
        + ("; a deterministic sample is shown" if res["sampled"] else "")
    )
    front = set(res["frontier"])
    pts = [{**p, "frontier": "*" if i in front else ""} for i, p in enumerate(res["points"])]
    label_cols = {
        "candidate": ["candidate_id", "setting"],
        "setting": ["setting"],
        "model": ["model"],
        "setting_model": ["model", "setting"],
        "kind": ["kind"],
    }[args.level]
    counts = ["picked"] if args.level == "candidate" else ["n", "n_picks", "n_failed"]
    print_table(pts, [*label_cols, "x", "y", *counts, "frontier"])
    print(f"x = {args.x}, y = {args.y}; * = on the Pareto frontier")
    if models:
        print("\nmodels (evaluations and judged test answers):")
        print_table(models, ["name", "stage", "source", "x", "y"])
    return exit_codes.OK


def _decoding_report(args):
    from reset_core.analytics.decoding import setting_report

    con = _fresh(args)
    return con, setting_report(con, args.split)


def _cmd_decoding(args: argparse.Namespace) -> int:
    from reset_core.analytics.summaries import missing_note, missing_summary

    con, report = _decoding_report(args)
    if args.json:
        _json({"split": args.split, "settings": report})
        return exit_codes.OK
    print(missing_note(missing_summary(con)))
    if not report:
        print(f"no candidates on split {args.split}")
        return exit_codes.OK
    cols = ["setting", "n", "n_picks", "pick_share", *ASPECTS, "n_failed", "dup_rate"]
    print_table(report, [*cols, "mean_words", "distinct_1", "distinct_2"])
    return exit_codes.OK


def _cmd_grid(args: argparse.Namespace) -> int:
    from reset_core.analytics.decoding import suggest_grid

    _, report = _decoding_report(args)
    grid = suggest_grid(report, rare_share=args.rare_share)
    by_id = {r["setting_id"]: r for r in report}
    # The kept settings as decoding settings a next round can sample with (sample --grid).
    fields = ("temperature", "top_k", "top_p", "max_tokens")
    settings = [
        {**{f: by_id[i][f] for f in fields}, "n": by_id[i]["n_per_example"]}
        for i in grid["keep"]
        if by_id[i].get("temperature") is not None
    ]
    if args.out and settings:
        from reset_core.atomic import write_text_atomic

        out = Path(args.out)
        if out.exists():
            print(f"error: {out} exists; choose another name", file=sys.stderr)
            return exit_codes.REJECTED
        write_text_atomic(out, "".join(json.dumps(s) + "\n" for s in settings))
    if args.json:
        _json({**grid, "settings": settings})
        return exit_codes.OK
    label = {i: r["setting"] for i, r in by_id.items()}
    print(grid["note"])
    for title, key in (("keep", "keep"), ("drop", "drop"), ("rarely win", "rare")):
        if grid[key]:
            print(f"{title}: " + ", ".join(f"{label.get(i, i)} ({i})" for i in grid[key]))
    if args.out:
        print(
            f"{len(settings)} settings written to {args.out} (reset-studio sample --grid {args.out})"
            if settings
            else "nothing written: no setting to keep yet"
        )
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``analytics agreement|tradeoff|decoding|grid`` to the ``reset-studio`` subparsers."""
    from reset_core.analytics.agreement import N_BOOT
    from reset_core.analytics.tradeoff import LEVELS

    an = sub.add_parser("analytics", help="judge agreement, trade-off, decoding report, next grid")
    cmds = an.add_subparsers(dest="analytics_command", required=True)
    splits = ["seen", "test_seen", "test_unseen"]

    p = cmds.add_parser("agreement", help="judge-vs-judge and judge-vs-human agreement")
    p.add_argument("--aspect", choices=[*ASPECTS, "all"], default="all")
    p.add_argument(
        "--n-boot", type=int, default=N_BOOT, help=f"bootstrap replicates (default {N_BOOT})"
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    p.set_defaults(func=_cmd_agreement)

    p = cmds.add_parser("tradeoff", help="the instruction/faithfulness trade-off figures")
    p.add_argument("--x", choices=ASPECTS, default="instruction", help="x axis aspect")
    p.add_argument("--y", choices=ASPECTS, default="faithfulness", help="y axis aspect")
    p.add_argument("--level", choices=LEVELS, default="setting", help="what one point is")
    p.add_argument("--kind", choices=["all", "instruction", "context"], default="all")
    p.add_argument("--split", choices=[*splits, "all"], default="seen")
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    p.set_defaults(func=_cmd_tradeoff)

    p = cmds.add_parser("decoding", help="per decoding setting: picks, scores, duplicates")
    p.add_argument("--split", choices=splits, default="seen")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.set_defaults(func=_cmd_decoding)

    p = cmds.add_parser("grid", help="the suggested grid for the next round")
    p.add_argument("--split", choices=splits, default="seen")
    p.add_argument(
        "--rare-share", type=float, default=0.02, help="below this share of picks: rare (0.02)"
    )
    p.add_argument("--out", help="write the kept settings as a JSONL grid (for sample --grid)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=_cmd_grid)
