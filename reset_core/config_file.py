"""``reset-studio.toml``: one config file for the CLI and the app, read through the option models.

Each section is named after a stage's options model and its keys are that model's field
names, so a key means exactly what the flag and the form widget of the same name mean
(the field's description is the help text of all three)::

    [sampling]            # ModelSpec: the engine and model to sample with
    engine = "transformers"
    device = "cpu"

    [judging.llm]         # LLMJudgeConfig: an LLM judge's endpoint, prices and limits
    model = "gpt-4o-mini"
    concurrency = 32
    budget_usd = 5.0

    [training]            # TrainConfig
    max_steps = 200

Values become defaults: of the CLI's flags (a flag given on the command line still
wins) and of the app's form widgets (:func:`default`). The file is ``--config FILE``,
else ``$RESET_STUDIO_CONFIG``, else ``./reset-studio.toml`` when there is one
(:func:`find`). An unknown section or key, or a value of the wrong type, is a
:class:`ConfigError` naming the file, the section and the key; nothing runs with a
half-read file. ``docs/reset-studio.example.toml`` is :func:`example_toml`'s output.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "reset-studio.toml"
>>> _ = p.write_text('[judging.llm]\\nconcurrency = 32\\n')
>>> load(p)["judging.llm"]
{'concurrency': 32}
>>> _ = p.write_text('[judging.llm]\\nconcurency = 32\\n')
>>> try:
...     load(p)
... except ConfigError as e:
...     print(e)  # doctest: +ELLIPSIS
/...reset-studio.toml: [judging.llm] concurency: unknown key; the keys are name, model, ...
"""

from __future__ import annotations

import importlib
import json
import os
import tomllib
import typing
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

#: The environment variable naming the config file.
CONFIG_ENV = "RESET_STUDIO_CONFIG"
#: The file read from the working folder when neither ``--config`` nor the variable is set.
DEFAULT_NAME = "reset-studio.toml"

#: Section -> the options model whose fields are its keys, in the order of the loop.
#: Imported lazily (``module:Class``): reading a config must not load every stage.
SECTIONS: dict[str, str] = {
    "import": "reset_core.ingest.config:ImportOptions",
    "sampling": "reset_core.sampling.config:ModelSpec",
    "sampling.selection": "reset_core.sampling.config:SampleSelection",
    "judging": "reset_core.judging.launch:JudgePlan",
    "judging.llm": "reset_core.judging.llm_judge:LLMJudgeConfig",
    "scoring": "reset_core.scoring.config:SelectionConfig",
    "scoring.panel": "reset_core.scoring.panels:Panel",
    "curation": "reset_core.curation.config:CurationSpec",
    "training": "reset_core.training.config:TrainConfig",
    "evaluation": "reset_core.evaluation.config:EvalConfig",
    "evaluation.tests": "reset_core.evaluation.config:TestSet",
    "evaluation.decoding": "reset_core.sampling.settings:DecodingSetting",
    "report": "reset_core.evaluation.report:ReportOptions",
}
#: Fields a file cannot set: another section holds them (a nested model), they name one
#: run's inputs rather than a preference, or no flag or form reads them (a key that
#: would change nothing is refused, not silently ignored; a test checks every other
#: key is some flag's default).
NOT_SETTABLE: dict[str, tuple[str, ...]] = {
    "scoring": ("panel", "model_ids"),
    "scoring.panel": ("name", "judges"),
    "evaluation": ("tests", "decoding", "checkpoints", "baseline", "name"),
    "evaluation.decoding": ("seed", "n"),
    "curation": ("selection_id", "name"),
    "training": ("output_dir",),
}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, section and key."""


def model_for(section: str) -> type[BaseModel]:
    """The options model of a section.

    >>> model_for("training").__name__
    'TrainConfig'
    """
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)


def section_of(model: type[BaseModel]) -> str | None:
    """The section whose keys are ``model``'s fields, or None.

    >>> from reset_core.training.config import TrainConfig
    >>> section_of(TrainConfig)
    'training'
    """
    for section, target in SECTIONS.items():
        module, _, name = target.partition(":")
        if model.__module__ == module and model.__name__ == name:
            return section
    return None


def settable_fields(section: str) -> list[str]:
    """The keys a section accepts: its model's fields, less :data:`NOT_SETTABLE`."""
    skip = NOT_SETTABLE.get(section, ())
    return [f for f in model_for(section).model_fields if f not in skip]


def find(explicit: str | Path | None = None) -> Path | None:
    """The config file to read: ``explicit``, else ``$RESET_STUDIO_CONFIG``, else
    ``./reset-studio.toml`` if present, else None. A named file that does not exist is
    a :class:`ConfigError` (a typo must not silently mean "no config").
    """
    for named, how in ((explicit, "--config"), (os.environ.get(CONFIG_ENV), f"${CONFIG_ENV}")):
        if named:
            path = Path(named).expanduser()
            if not path.is_file():
                raise ConfigError(f"{path}: no such config file (from {how})")
            return path
    local = Path(DEFAULT_NAME)
    return local if local.is_file() else None


def _validate(section: str, key: str, value: Any) -> Any:
    info = model_for(section).model_fields[key]
    # The field's type and constraints (ge, le, min_length …), checked alone: the
    # cross-field checks run when the command builds the whole model.
    return TypeAdapter(Annotated[info.annotation, info]).validate_python(value, strict=False)


def _sections(data: dict, path: Path, prefix: str = "") -> dict[str, dict]:
    """TOML tables -> {section: {key: value}}; ``[judging.llm]`` nests in ``judging``."""
    out: dict[str, dict] = {}
    for name, body in data.items():
        section = f"{prefix}{name}"
        if section not in SECTIONS:
            known = ", ".join(SECTIONS)
            raise ConfigError(f"{path}: [{section}]: unknown section; the sections are {known}")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {section}: expected a [{section}] table of keys")
        keys = {}
        for key, value in body.items():
            if isinstance(value, dict) and f"{section}.{key}" in SECTIONS:
                continue  # a nested section, read below
            keys[key] = value
        out[section] = keys
        nested = {k: v for k, v in body.items() if f"{section}.{k}" in SECTIONS}
        out.update(_sections(nested, path, prefix=f"{section}."))
    return out


def load(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and check a config file: ``{section: {field: value}}``, values validated.

    Raises :class:`ConfigError` naming the file, section and key of the first problem.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from None
    out = {}
    for section, keys in _sections(data, path).items():
        allowed = settable_fields(section)
        checked = {}
        for key, value in keys.items():
            if key not in allowed:
                raise ConfigError(
                    f"{path}: [{section}] {key}: unknown key; the keys are {', '.join(allowed)}"
                )
            try:
                checked[key] = _validate(section, key, value)
            except ValidationError as e:
                problem = "; ".join(err["msg"] for err in e.errors())
                raise ConfigError(f"{path}: [{section}] {key}: {problem} (got {value!r})") from None
        if checked:
            out[section] = checked
    return out


@cache
def _load_cached(path: str, mtime_ns: int) -> dict[str, dict[str, Any]]:
    return load(path)


def active() -> dict[str, dict[str, Any]]:
    """The config the app uses: :func:`find` with no ``--config``, re-read when it changes.

    Empty when there is no file. Raises :class:`ConfigError` for a bad one.
    """
    path = find()
    if path is None:
        return {}
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


_MODEL_DEFAULT = object()


def default(model: type[BaseModel], name: str, page_default: Any = _MODEL_DEFAULT) -> Any:
    """A form widget's default: the config file's value for this field, else
    ``page_default`` when the page shows its own (a typical price, not the model's 0),
    else the model's default.

    >>> from reset_core.judging.llm_judge import LLMJudgeConfig
    >>> default(LLMJudgeConfig, "concurrency")   # with no reset-studio.toml here
    16
    >>> default(LLMJudgeConfig, "price_input_per_mtok", 0.15)
    0.15
    """
    section = section_of(model)
    if section is not None:
        values = active().get(section, {})
        if name in values:
            return values[name]
    if page_default is not _MODEL_DEFAULT:
        return page_default
    info = model.model_fields[name]
    return info.get_default(call_default_factory=True)


# ---------------------------------------------------------------------------- the CLI


def record_fields(parser, model: type[BaseModel], dests: dict[str, str]) -> None:
    """Note on ``parser`` which flags (dests) stand for which fields of ``model``, so a
    config file's values become their defaults (:func:`apply_to_parser`).
    ``reset_core.options.add_options`` calls this for every flag it adds."""
    parser.__dict__.setdefault("_config_fields", []).extend(
        (model, field, dest) for field, dest in dests.items()
    )


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(getattr(action, "choices", None), dict):  # subparsers
            for sub in {id(p): p for p in action.choices.values()}.values():
                yield from _parsers(sub)


def apply_to_parser(parser, config: dict[str, dict[str, Any]]) -> int:
    """Make the config's values the defaults of the flags they stand for; return how many.

    Flags given on the command line still win: argparse only falls back to defaults.
    """
    n = 0
    for p in _parsers(parser):
        for model, field, dest in p.__dict__.get("_config_fields", ()):
            section = section_of(model)
            if section in config and field in config[section]:
                p.set_defaults(**{dest: config[section][field]})
                n += 1
    return n


# ---------------------------------------------------------------------------- the example


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string quotes like JSON for these
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def _wrap(text: str, width: int = 86) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def example_toml() -> str:
    """A commented ``reset-studio.toml`` with every key and its default, from the models.

    Every line but the section headers is a comment: copy it and uncomment what you
    change. ``docs/reset-studio.example.toml`` is this text (a test keeps it current).
    """
    lines = [
        "# reset-studio.toml: defaults shared by the reset-studio CLI and the app.",
        "# Generated from the option models (python -m reset_core.config_file > FILE);",
        "# each key is a field of the section's model and its comment is the field's help.",
        f"# The file read: --config FILE, else ${CONFIG_ENV}, else ./{DEFAULT_NAME}.",
        "# A flag given on the command line wins over the file. Uncomment what you change.",
        "",
    ]
    for section in SECTIONS:
        model = model_for(section)
        lines.append(f"[{section}]  # {model.__name__}")
        for name in settable_fields(section):
            info = model.model_fields[name]
            lines += [f"# {line}" for line in _wrap(info.description or name)]
            if info.is_required():
                lines.append(f"# {name} = (no default: the command or page asks for it)")
                continue
            value = info.get_default(call_default_factory=True)
            ann = typing.get_args(info.annotation) or ()
            if value is None:
                lines.append(f"# {name} = (no default{': optional' if type(None) in ann else ''})")
            else:
                lines.append(f"# {name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(example_toml(), end="")
