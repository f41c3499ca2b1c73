"""``reset-studio model prepare``: the embedded default model, ready to load.

SmolLM2-135M-Instruct ships as a GGUF file; this converts it to safetensors once::

    reset-studio model prepare
    reset-studio model prepare --out data/models/smollm2-135m-instruct
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


def add_commands(sub) -> None:
    """Add ``model prepare`` to the ``reset-studio`` subparsers."""
    model = sub.add_parser("model", help="models").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("prepare", help="convert the embedded SmolLM2 model to safetensors once")
    p.add_argument("--out", default=str(paths.DEFAULT_MODEL_DIR), help="output folder")
    p.set_defaults(func=_cmd_model_prepare)
