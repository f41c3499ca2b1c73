"""Pydantic option models drive both the CLI flags and the UI help texts.

A field's ``description`` is its help text everywhere; its type decides how a flag
parses. ``dict`` fields take ``key=value`` pairs (``--mapping instruction=question``).

>>> import argparse
>>> from reset_core.ingest.config import ImportOptions
>>> p = argparse.ArgumentParser()
>>> add_options(p, ImportOptions)
>>> options_from_args(ImportOptions, p.parse_args(["--preset", "qa"])).preset
'qa'
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from pydantic import BaseModel


def help_text(model: type[BaseModel], name: str) -> str:
    """The help text of one field, for a widget's ``help=``."""
    return model.model_fields[name].description or ""


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def add_options(parser: argparse.ArgumentParser, model: type[BaseModel], exclude=()) -> None:
    """Add one ``--flag`` per field of ``model`` with its description as help."""
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        ann = info.annotation
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": info.description}
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is dict or (args and any(typing.get_origin(a) is dict for a in args)):
            kwargs["type"] = _pairs
            kwargs["metavar"] = "KEY=VALUE,..."
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
        elif ann in (int, float):
            kwargs["type"] = ann
        parser.add_argument(flag, **kwargs)


def options_from_args(model: type[BaseModel], ns: argparse.Namespace) -> BaseModel:
    """Build ``model`` from parsed flags; flags not given keep the model's defaults."""
    given = {k: v for k, v in vars(ns).items() if k in model.model_fields and v is not None}
    return model(**given)
