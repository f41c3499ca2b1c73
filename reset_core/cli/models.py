"""``reset-studio model prepare|list``: the embedded default model, and the registered ones.

SmolLM2-135M-Instruct ships as a GGUF file; ``prepare`` converts it to safetensors
once. ``list`` shows every registered model (base models sampled from, trained
checkpoints) with the id and label that ``evaluate --checkpoints`` and ``sample``
accept::

    reset-studio model prepare
    reset-studio model prepare --out data/models/smollm2-135m-instruct
    reset-studio model list
"""

from __future__ import annotations

import argparse
import sys

from reset_core import paths


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from reset_core.models import ModelUnavailable, prepare_default_model

    try:
        out = prepare_default_model(args.out)
    except ModelUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"embedded model ready at {out}")
    return 0


def _cmd_model_list(args: argparse.Namespace) -> int:
    from reset_core.store import connect
    from reset_core.training.queries import model_labels, trained_models

    con = connect(args.db)
    models = trained_models(con)
    if models.empty:
        print("no models registered yet (sampling or training registers them)")
        return 0
    labels = model_labels(con)
    for r in models.itertuples():
        weights = r.path + (f" + adapter {r.adapter_path}" if r.adapter_path else "")
        print(f"{r.model_id}  {labels.get(r.model_id, r.name)}  [{r.stage}]  {weights}")
    return 0


def add_commands(sub) -> None:
    """Add ``model prepare`` and ``model list`` to the ``reset-studio`` subparsers."""
    model = sub.add_parser("model", help="models").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("prepare", help="convert the embedded SmolLM2 model to safetensors once")
    p.add_argument("--out", default=str(paths.DEFAULT_MODEL_DIR), help="output folder")
    p.set_defaults(func=_cmd_model_prepare)
    p = model.add_parser("list", help="registered models: id, label, stage, weights")
    p.set_defaults(func=_cmd_model_list)
