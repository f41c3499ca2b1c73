"""Pydantic option models drive both the CLI flags and the UI help texts.

A field's ``description`` is its help text everywhere; its type decides how a flag
parses, ``X | None`` the same as ``X``: ``int`` and ``float`` fields parse as numbers,
``Literal`` fields offer their choices, ``bool`` fields get ``--flag/--no-flag``,
``dict`` fields take ``key=value`` pairs (``--mapping instruction=question``) and
``list`` fields take values apart or as a comma list (``--kinds instruction context``
is ``--kinds instruction,context``). A flag left out keeps the model's default.

>>> import argparse
>>> from reset_core.ingest.config import ImportOptions
>>> p = argparse.ArgumentParser()
>>> add_options(p, ImportOptions)
>>> options_from_args(ImportOptions, p.parse_args(["--preset", "qa"])).preset
'qa'
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel


def help_text(model: type[BaseModel], name: str) -> str:
    """The help text of one field, for a widget's ``help=``."""
    return model.model_fields[name].description or ""


def comma_list(text: str) -> list[str]:
    """The items of a comma list, blanks dropped: the CLI's one reading of a list value.

    >>> comma_list("instruction, context,")
    ['instruction', 'context']
    >>> comma_list("")
    []
    """
    return [p.strip() for p in text.split(",") if p.strip()]


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


class _ListAction(argparse.Action):
    """``--flag a b,c`` -> ``["a", "b", "c"]``; a bare ``--flag`` -> ``[]``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [item for v in values for item in comma_list(v)])


def _without_none(ann: Any) -> Any:
    """``X | None`` and ``Optional[X]`` -> ``X``; any other type as it is."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return ann


def add_options(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> None:
    """Add one ``--flag`` per field of ``model`` with its description as help.

    ``exclude`` leaves fields out; ``only`` adds just these (in the model's order), for a
    command that places some of a model's flags among its own. The flags are recorded
    for :func:`reset_core.config_file.apply_to_parser`: a config file's value for a
    field becomes its flag's default.
    """
    from reset_core.config_file import record_fields

    exclude, only = set(exclude), None if only is None else set(only)
    added = {}
    for name, info in model.model_fields.items():
        if name in exclude or (only is not None and name not in only):
            continue
        flag = "--" + name.replace("_", "-")
        ann = _without_none(info.annotation)
        origin = typing.get_origin(ann)
        # argparse formats help with %-style: "20% slower" must reach it as "20%% slower".
        help_ = (info.description or "").replace("%", "%%") or None
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_}
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif ann is dict or origin is dict:
            kwargs["type"] = _pairs
            kwargs["metavar"] = "KEY=VALUE,..."
        elif ann is list or origin is list:
            kwargs["nargs"] = "*"
            kwargs["action"] = _ListAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(typing.get_args(ann))
        elif ann in (int, float):
            kwargs["type"] = ann
        parser.add_argument(flag, **kwargs)
        added[name] = name
    # A reset-studio.toml value for one of these fields becomes the flag's default.
    record_fields(parser, model, added)


def options_from_args(model: type[BaseModel], ns: argparse.Namespace) -> BaseModel:
    """Build ``model`` from parsed flags; flags not given keep the model's defaults."""
    given = {k: v for k, v in vars(ns).items() if k in model.model_fields and v is not None}
    return model(**given)
