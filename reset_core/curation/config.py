"""How a curated set is cut from a scoring run: the presets and one validated spec.

>>> CurationSpec(selection_id="sel-1", preset="RESET", target_size=1000).preset
'RESET'
>>> sorted(PRESETS)
['MTL', 'RESET', 'RESET-S']
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reset_core.scoring.reset_s import FRACTION_HELP, RESET_S_FRACTION

#: Presets. RESET keeps every pick (top-1 per seen example). RESET-S ("supercharged")
#: keeps only the best-scored fraction of them (a third by default), per example kind:
#: the paper's "less is more" result. It is the cut selection's ``reset_s`` preset
#: makes, the same code (:mod:`reset_core.scoring.reset_s`); a selection saved as
#: ``reset_s`` is RESET-S already and is not cut twice. MTL is not a preset of picks
#: but of references (see :func:`create_reference_set`).
PRESETS: dict[str, str] = {
    "RESET": "every pick (top-1 per seen example), best first, up to the target size",
    "RESET-S": "only the best-scored third of the picks per kind (as selection's reset_s), "
    "up to the target size",
    "MTL": "examples with their reference answers as completions (the multi-task baseline)",
}

__all__ = ["PRESETS", "RESET_S_FRACTION", "CurationSpec"]


class CurationSpec(BaseModel):
    """How to cut a curated set from a scoring run."""

    selection_id: str = Field(description="The scoring run (selection) whose picks to freeze.")
    preset: Literal["RESET", "RESET-S"] = Field(
        "RESET",
        description="RESET keeps every pick; RESET-S keeps only the best-scored fraction of "
        "them per kind, a third by default (a smaller, higher-quality set: the paper's 'less "
        "is more'; the same cut as selection's reset_s, which is not cut twice).",
    )
    reset_s_fraction: float = Field(RESET_S_FRACTION, gt=0, le=1, description=FRACTION_HELP)
    target_size: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="At most this many items, best scores first. Empty = no cap.",
    )
    kinds: list[str] = Field(
        default_factory=list, description="Only these example kinds (empty = all)."
    )
    sources: list[str] = Field(
        default_factory=list, description="Only these example sources (empty = all)."
    )
    min_score: float | None = Field(
        None, description="Drop picks whose RESET score is below this (empty = no threshold)."
    )
    balance_kinds: bool = Field(
        True,
        description="When the target size cuts the set, keep the instruction/context mix of "
        "the picks instead of letting the higher-scoring kind crowd the other out.",
    )
    name: str = Field("", description="A label for the set (default: preset + selection).")
