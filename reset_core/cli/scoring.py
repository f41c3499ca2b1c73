"""``reset-studio select | panel``: RESET scores and picks, and the judge panels behind them.

The flags are :class:`~reset_core.scoring.config.SelectionConfig` and
:class:`~reset_core.scoring.panels.Panel`, as on the Judge page. ``--panel`` names a
saved panel (default: every non-placeholder judge with verdicts, mean, linear);
the panel flags (``--judges``, ``--task``…, ``--scale``, ``--combine``, ``--delta``)
adjust it inline for this run. ``--dry-run`` previews without storing; a stored
selection reports how many picks changed against the previous one::

    reset-studio select --preset reset --weight 2.0
    reset-studio select --preset reset_s --reset-s-fraction 0.33 --dry-run
    reset-studio select --panel strict --model m:mtl
    reset-studio select --judges metric:rouge_l:v1,llm:gpt-4o-mini --scale standard
    reset-studio panel save strict --task j1,j2 --instruction j3 --scale rank --combine agree
    reset-studio panel list
"""

from __future__ import annotations

import argparse
import sys

from reset_core.aspects import ASPECTS
from reset_core.cli import exit_codes
from reset_core.errors import rejection_message


def _panel_from_args(con, args: argparse.Namespace, name: str | None = None):
    """The panel the flags describe: ``--panel`` (or the default) with the given flags on top."""
    from reset_core.scoring.config import INLINE_PANEL
    from reset_core.scoring.panels import DEFAULT_PANEL, Panel, get_panel

    base = get_panel(con, getattr(args, "panel", None) or DEFAULT_PANEL)
    body = base.model_dump()
    judges = dict(body["judges"])
    if args.judges:
        judges = {a: list(args.judges) for a in ASPECTS}
    for a in ASPECTS:
        if getattr(args, f"judges_{a}") is not None:
            judges[a] = list(getattr(args, f"judges_{a}"))
    combine = args.combine
    if args.judge_by_aspect or combine == "judge":
        by = args.judge_by_aspect or {}
        missing = [a for a in ASPECTS if a not in by and a not in judges]
        if combine == "judge" and missing:
            raise ValueError(f"judge_by_aspect: combine=judge needs a judge for {missing}")
        unknown = set(by) - set(ASPECTS)
        if unknown:
            raise ValueError(f"judge_by_aspect: unknown aspects {sorted(unknown)}")
        judges.update({a: [j] for a, j in by.items()})
        combine = None if combine == "judge" else combine
    changes = {
        "judges": judges,
        **{k: getattr(args, k) for k in ("scale", "delta", "include_placeholders")},
        "combine": combine,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    body.update(changes)
    changed = body != base.model_dump()
    body["name"] = name or (INLINE_PANEL if changed else base.name)
    return Panel(**body)


def _add_panel_flags(p: argparse.ArgumentParser) -> None:
    from reset_core.config_file import record_fields
    from reset_core.options import _ListAction, _pairs, add_options, help_text
    from reset_core.scoring.panels import Panel

    p.add_argument(
        "--judges",
        nargs="*",
        action=_ListAction,
        default=None,
        help="judge ids for every aspect (an inline panel); see also --task etc.",
    )
    for a in ASPECTS:
        p.add_argument(
            f"--{a}",
            dest=f"judges_{a}",
            nargs="*",
            action=_ListAction,
            default=None,
            help=f"judge ids for {a} (comma list; none named = every judge with verdicts)",
        )
    p.add_argument(
        "--combine",
        choices=["mean", "agree", "judge"],
        default=None,
        help=help_text(Panel, "combine")
        + "; judge = one named judge per aspect (--judge-by-aspect)",
    )
    p.add_argument(
        "--judge-by-aspect",
        dest="judge_by_aspect",
        type=_pairs,
        default=None,
        metavar="ASPECT=JUDGE,...",
        help="one judge per aspect (same as --task J --instruction J --faithfulness J)",
    )
    add_options(p, Panel, only=("scale", "delta", "include_placeholders"))
    # --combine is written out (it adds "judge"); [scoring.panel] combine is its default.
    record_fields(p, Panel, {"combine": "combine"})


def _cmd_select(args: argparse.Namespace) -> int:
    from reset_core.options import options_from_args
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import preview_selection, save_selection
    from reset_core.store import connect

    con = connect(args.db)
    try:
        panel = _panel_from_args(con, args)
        args.panel = panel
        cfg = options_from_args(SelectionConfig, args)
    except ValueError as e:  # a pydantic ValidationError is one too
        print(f"error: {rejection_message(e)}", file=sys.stderr)
        return exit_codes.REJECTED
    res = (preview_selection if args.dry_run else save_selection)(con, cfg)
    models = "all models" if res.model_ids is None else ", ".join(res.model_ids) or "no model"
    print(
        f"{'preview' if args.dry_run else 'selection ' + str(res.selection_id)} ({cfg.preset}, "
        f"w={cfg.weight:g}, panel {panel.name}: {panel.describe_rule()}; {models}): "
        f"{res.n_picked} picks over {res.n_examples_with_pick} of {res.n_examples} examples; "
        f"{res.n_unrankable} of {res.n_candidates} candidates not rankable (a needed aspect "
        "has no valid verdict)"
    )
    print("judges: " + "; ".join(f"{a} = {', '.join(j) or 'none'}" for a, j in res.judges.items()))
    if res.n_changed is not None:
        print(f"{res.n_changed} examples changed their pick vs {res.compared_to}")
    return exit_codes.OK


def _cmd_panel(args: argparse.Namespace) -> int:
    from reset_core.scoring.panels import list_panels, resolve_panel, save_panel
    from reset_core.store import connect

    con = connect(args.db)
    if args.action == "save":
        try:
            panel = save_panel(con, _panel_from_args(con, args, name=args.name))
        except ValueError as e:  # a pydantic ValidationError is one too
            print(f"error: {rejection_message(e)}", file=sys.stderr)
            return exit_codes.REJECTED
        _print_panel(panel, resolve_panel(con, panel, args.split), "saved panel ")
        return exit_codes.OK
    for panel in list_panels(con):
        _print_panel(panel, resolve_panel(con, panel, args.split))
    return exit_codes.OK


def _print_panel(panel, judges: dict[str, list[str]], prefix: str = "") -> None:
    """A panel's rule, then per aspect the judges it resolves to on this database."""
    print(f"{prefix}{panel.name}: {panel.describe_rule()}")
    for a, ids in judges.items():
        named = "" if a in panel.judges else " (every judge with verdicts)"
        print(f"  {a}: {', '.join(ids) or 'none'}{named}")


def add_commands(sub) -> None:
    """Add ``select`` and ``panel`` to the ``reset-studio`` subparsers."""
    from reset_core.options import add_options, help_text
    from reset_core.scoring.config import SelectionConfig

    p = sub.add_parser("select", help="RESET scores and picks from the judgments")
    p.add_argument("--dry-run", action="store_true", help="preview without storing")
    p.add_argument("--panel", default=None, help=help_text(SelectionConfig, "panel"))
    p.add_argument(
        "--model",
        dest="model_ids",
        action="append",
        default=None,
        help=help_text(SelectionConfig, "model_ids") + " (repeat for several)",
    )
    add_options(p, SelectionConfig, exclude=("panel", "model_ids"))
    _add_panel_flags(p)
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("panel", help="save and list judge panels (which judges, which scale)")
    p.add_argument("action", choices=["save", "list"], help="save NAME with the flags, or list")
    p.add_argument("name", nargs="?", help="save: the panel's name")
    p.add_argument("--split", default="seen", help="list: resolve open aspects on this split")
    _add_panel_flags(p)
    p.set_defaults(func=_cmd_panel_checked)


def _cmd_panel_checked(args: argparse.Namespace) -> int:
    if args.action == "save" and not args.name:
        print("error: name: `panel save` needs a name", file=sys.stderr)
        return exit_codes.REJECTED
    return _cmd_panel(args)
