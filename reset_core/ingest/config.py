"""How one file is read into examples: the import options (help text for the CLI and
the Data page), the result, and the one error every rejection raises.

>>> ImportOptions(preset="alpaca", source="demo").split
'seen'
>>> str(ImportRejected("a.jsonl", "line 3", "instruction", "missing required field"))
"a.jsonl, line 3, field 'instruction': missing required field"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from reset_core.ingest.presets import PRESET_KINDS, PRESETS

SPLITS = ("seen", "test_seen", "test_unseen")


FIELDS = ("instruction", "context", "reference")


#: What a column mapping may fill: the text fields plus per-row id, source, split, kind.
#: ``meta``: an object per row kept as the example's JSON metadata (e.g. IFEval's
#: verifiable instructions, which its judge reads).
MAPPING_TARGETS = (*FIELDS, "id", "source", "split", "kind", "meta")


class ImportRejected(ValueError):
    """A file that cannot be imported; the message names file, location and field."""

    def __init__(self, path: str | Path, where: str | None, field: str | None, problem: str):
        self.path, self.where, self.field, self.problem = str(path), where, field, problem
        parts = [str(path)]
        if where:
            parts.append(where)
        if field:
            parts.append(f"field '{field}'")
        super().__init__(", ".join(parts) + ": " + problem)


class ImportOptions(BaseModel):
    """How to read one file into examples. Help texts drive the CLI and the Data page."""

    preset: str | None = Field(
        None,
        description="File shape: alpaca, dolly, qa, nq, summarization, chat, self_instruct, "
        "ifeval (IFEval's key, prompt, instruction_id_list, kwargs; its checks judge them). "
        "Leave empty to detect it from the columns, or give a column mapping instead.",
    )
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Explicit column mapping, e.g. instruction=question, context=passage, "
        "reference=answers[0], id=qid. Dotted paths and [i] indexes reach nested fields. "
        "meta=<column> keeps an object per row as the example's metadata (JSON).",
    )
    kind: Literal["auto", "instruction", "context"] | None = Field(
        None,
        description="Example kind for every row. Empty: the preset's kind (alpaca, dolly, chat, "
        "self_instruct, ifeval: instruction; qa, nq, summarization: context), or auto for a column "
        "mapping. auto (column mappings only): 'context' when a row has a context, else "
        "'instruction'. A mapped kind column wins over all of these.",
    )
    source: str | None = Field(
        None, description="Source dataset name stored with each example (default: the file name)."
    )
    split: Literal["seen", "test_seen", "test_unseen"] = Field(
        "seen",
        description="Split for every row: seen (RESET sampling), test_seen or test_unseen "
        "(evaluation). Ignored when split ratios are given.",
    )
    split_ratios: dict[str, float] | None = Field(
        None,
        description="Assign splits by ratio instead, e.g. seen=0.9,test_seen=0.1. Stable per "
        "example: decided by a hash of its content and the seed, not by row order.",
    )
    seed: int = Field(0, description="Seed for the split-by-ratio assignment.")
    max_chars: int = Field(
        50_000, ge=1, description="Reject any instruction, context or reference longer than this."
    )

    @field_validator("mapping")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        bad = set(v) - set(MAPPING_TARGETS)
        if bad:
            raise ValueError(
                f"mapping targets {sorted(bad)} unknown; use {', '.join(MAPPING_TARGETS)}"
            )
        if v and "instruction" not in v:
            raise ValueError("a column mapping must say which column is the instruction")
        return v

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        bad = set(v) - set(SPLITS)
        if bad:
            raise ValueError(f"unknown split(s) {sorted(bad)}; expected {list(SPLITS)}")
        if any(r < 0 for r in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split ratios must be non-negative and sum to 1, got {v}")
        return v

    @model_validator(mode="after")
    def _preset_or_mapping(self) -> ImportOptions:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known presets: {', '.join(PRESETS)}")
        if self.kind == "auto" and not self.mapping:
            # A preset's rows play one role (the paper's I_instr / I_faith follow the
            # dataset); guessing it row by row from a context is for unknown shapes only.
            declared = (
                f"preset {self.preset} declares {PRESET_KINDS[self.preset]}; "
                if (self.preset)
                else "presets declare their kind; "
            )
            raise ValueError(
                f"kind=auto applies only to a column mapping: {declared}"
                "choose instruction or context to override it"
            )
        return self


@dataclass(frozen=True)
class ImportResult:
    import_id: str
    path: str
    preset: str
    n_rows: int
    n_added: int
    n_duplicates: int
    #: how the kinds were decided, e.g. "kind=auto: 3 rows with a context → context, ..."
    kind_note: str = ""
    #: the rows added, by (kind, split)
    added: dict[tuple[str, str], int] = field(default_factory=dict)
