"""``reset-studio model prepare|list|lineage``: the embedded model, the registered ones, lineage.

SmolLM2-135M-Instruct ships as a GGUF file; ``prepare`` converts it to safetensors
once. ``list`` shows every registered model (base models sampled from, trained
checkpoints) with the id and label that ``evaluate --checkpoints`` and ``sample``
accept. ``lineage`` walks a model back to its root: for each step, the training run and
curated set it came from and its parent. ``models`` is the same command::

    reset-studio model prepare
    reset-studio model prepare --out data/models/smollm2-135m-instruct
    reset-studio models list
    reset-studio models lineage m:0123abcd --json
"""

from __future__ import annotations

import argparse
import json
import sys

from reset_core import paths
from reset_core.cli import exit_codes


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from reset_core.models import ModelUnavailable, prepare_default_model

    try:
        out = prepare_default_model(args.out)
    except ModelUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return exit_codes.FAILED
    print(f"embedded model ready at {out}")
    return exit_codes.OK


def _cmd_model_list(args: argparse.Namespace) -> int:
    from reset_core.store import connect
    from reset_core.training.queries import model_labels, trained_models

    con = connect(args.db)
    models = trained_models(con)
    if models.empty:
        print("no models registered yet (sampling or training registers them)")
        return exit_codes.OK
    labels = model_labels(con)
    for r in models.itertuples():
        # A model registered from an endpoint or the hub may have no local path.
        weights = (r.path or "") + (f" + adapter {r.adapter_path}" if r.adapter_path else "")
        print(f"{r.model_id}  {labels.get(r.model_id, r.name)}  [{r.stage}]  {weights}")
    return exit_codes.OK


def _cmd_model_lineage(args: argparse.Namespace) -> int:
    from reset_core.store import connect
    from reset_core.training.queries import lineage, model_labels

    con = connect(args.db)
    chain = lineage(con, args.model_id)
    if chain[0].get("missing"):
        print(
            f"error: no model {args.model_id!r} (reset-studio models list shows them)",
            file=sys.stderr,
        )
        return exit_codes.NOT_FOUND
    if args.json:
        print(json.dumps(chain, default=str))
        return exit_codes.OK
    labels = model_labels(con)
    for depth, m in enumerate(chain):
        lead = "  " * depth + ("<- " if depth else "")
        if m.get("missing"):
            print(f"{lead}{m['model_id']} (parent not registered in this database)")
            continue
        print(f"{lead}{m['model_id']}  {labels.get(m['model_id'], m['name'])}  [{m['stage']}]")
        pad = "  " * depth + "   "
        if m["training_run_id"]:
            print(f"{pad}training run {m['training_run_id']}")
        if m["curated_set"]:
            cs = m["curated_set"]
            print(
                f"{pad}curated set {m['curated_set_id']} {cs['name']!r} ({cs['preset']}, "
                f"{cs['n_items']} items, content {cs['content_hash'][:12]})"
            )
        if isinstance(m["metrics"], dict) and m["metrics"]:
            figures = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in m["metrics"].items()
            )
            print(f"{pad}metrics: {figures}")
        weights = m["path"] or ""
        if m["adapter_path"]:
            weights += f" + adapter {m['adapter_path']}"
        if weights:
            print(f"{pad}weights: {weights}")
    return exit_codes.OK


def add_commands(sub) -> None:
    """Add ``model prepare|list|lineage`` (also as ``models``) to the ``reset-studio`` subparsers."""
    model = sub.add_parser("model", aliases=["models"], help="models").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("prepare", help="convert the embedded SmolLM2 model to safetensors once")
    p.add_argument("--out", default=str(paths.DEFAULT_MODEL_DIR), help="output folder")
    p.set_defaults(func=_cmd_model_prepare)
    p = model.add_parser("list", help="registered models: id, label, stage, weights")
    p.set_defaults(func=_cmd_model_list)
    p = model.add_parser("lineage", help="where a model came from: run, curated set, parent")
    p.add_argument("model_id", metavar="MODEL_ID")
    p.add_argument("--json", action="store_true", help="the chain as one JSON list")
    p.set_defaults(func=_cmd_model_lineage)
