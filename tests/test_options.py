"""Config models -> CLI flags: each field type parses to what the model expects."""

from __future__ import annotations

import argparse
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field

from reset_core.options import add_options, comma_list, help_text, options_from_args


class Opts(BaseModel):
    count: int | None = Field(None, description="at most this many")
    ratio: float | None = Field(None, description="a fraction")
    legacy: Optional[int] = None  # noqa: UP045 - the old spelling must parse the same
    mode: Literal["fast", "slow"] | None = None
    engine: Literal["a", "b"] = "a"
    flag: bool = True
    mapping: dict[str, str] = Field(default_factory=dict)
    weights: dict[str, float] | None = None
    tags: list[str] = Field(default_factory=lambda: ["seen"])
    labels: list[Literal["x", "y"]] | None = None
    level: int = 3
    scale: float = 0.5
    name: str = "x"
    slow: bool = Field(False, description="about 20% slower")


def _parser(**kwargs) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_options(p, Opts, **kwargs)
    return p


def _parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


def test_untouched_flags_keep_the_model_defaults():
    ns = _parse()
    assert all(v is None for v in vars(ns).values())
    assert options_from_args(Opts, ns) == Opts()


def test_optional_numbers_parse_as_numbers():
    ns = _parse("--count", "5", "--ratio", "0.25", "--legacy", "7")
    assert (ns.count, ns.ratio, ns.legacy) == (5, 0.25, 7)
    assert type(ns.count) is int and type(ns.ratio) is float and type(ns.legacy) is int
    opts = options_from_args(Opts, _parse("--level", "4", "--scale", "2"))
    assert (opts.level, opts.scale) == (4, 2.0)


@pytest.mark.parametrize("flag", ["--count", "--legacy", "--level"])
def test_a_non_integer_is_rejected_by_the_parser(flag, capsys):
    p = argparse.ArgumentParser(prog="t")
    add_options(p, Opts)
    with pytest.raises(SystemExit) as e:
        p.parse_args([flag, "many"])
    assert e.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_optional_literal_offers_its_choices(capsys):
    assert _parse("--mode", "slow").mode == "slow"
    p = argparse.ArgumentParser(prog="t")
    add_options(p, Opts)
    assert "{fast,slow}" in p.format_help() and "{a,b}" in p.format_help()
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "medium"])
    assert "invalid choice: 'medium'" in capsys.readouterr().err


def test_bool_flags_go_both_ways():
    assert _parse("--no-flag").flag is False
    assert _parse("--flag").flag is True
    assert options_from_args(Opts, _parse()).flag is True
    assert options_from_args(Opts, _parse("--no-flag")).flag is False


def test_dict_flags_take_key_value_pairs():
    opts = options_from_args(Opts, _parse("--mapping", "a=b, c=d", "--weights", "seen=0.8"))
    assert opts.mapping == {"a": "b", "c": "d"}
    assert opts.weights == {"seen": 0.8}
    with pytest.raises(argparse.ArgumentError):
        _parse("--mapping", "oops")


def test_list_flags_take_values_apart_or_as_a_comma_list():
    assert _parse("--tags", "a", "b").tags == ["a", "b"]
    assert _parse("--tags", "a,b").tags == ["a", "b"]
    assert _parse("--tags", "a", "b,c").tags == ["a", "b", "c"]
    assert options_from_args(Opts, _parse("--tags")).tags == []
    assert options_from_args(Opts, _parse()).tags == ["seen"]
    assert options_from_args(Opts, _parse("--labels", "x,y")).labels == ["x", "y"]


def test_exclude_and_only_choose_the_fields():
    names = {a.dest for a in _parser(exclude=("count", "mode"))._actions}
    assert "count" not in names and "mode" not in names and "ratio" in names
    only = [a.dest for a in _parser(only=("tags", "count"))._actions if a.dest != "help"]
    assert only == ["count", "tags"]  # the model's order


def test_help_is_the_field_description():
    p = _parser()
    (count,) = [a for a in p._actions if a.dest == "count"]
    assert count.help == help_text(Opts, "count") == "at most this many"


def test_a_percent_sign_in_a_description_reads_as_written():
    assert "about 20% slower" in " ".join(_parser().format_help().split())


def test_comma_list():
    assert comma_list(" a, ,b ") == ["a", "b"]
    assert comma_list("") == []


@pytest.mark.parametrize(
    ("model", "required"),
    [
        ("reset_core.ingest.importer:ImportOptions", {}),
        ("reset_core.judging.llm_judge:LLMJudgeConfig", {}),
        ("reset_core.judging.batch:BatchConfig", {}),
        ("reset_core.scoring.config:SelectionConfig", {}),
        ("reset_core.sampling.config:ModelSpec", {"model": "m"}),
        ("reset_core.curation.config:CurationSpec", {"selection_id": "sel-1"}),
        ("reset_core.training.config:TrainConfig", {"base_model": "m"}),
    ],
)
def test_every_cli_model_round_trips_its_defaults(model, required):
    """Each config the CLI builds: no flags = the model's defaults, for every field type."""
    import importlib

    module, _, name = model.partition(":")
    cls = getattr(importlib.import_module(module), name)
    p = argparse.ArgumentParser()
    add_options(p, cls)
    ns = p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in required.items()])
    assert options_from_args(cls, ns) == cls(**required)


def test_curation_target_size_is_an_int_before_validation():
    """``curate --references`` passes ``target_size`` on without the model: it must be a number."""
    from reset_core.curation.config import CurationSpec

    p = argparse.ArgumentParser()
    add_options(p, CurationSpec)
    assert p.parse_args(["--target-size", "3000"]).target_size == 3000
