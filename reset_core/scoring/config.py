"""How candidates are scored and picked: one validated value object, its fields' help
text shared by the Judge page and ``reset-studio select``.

>>> SelectionConfig(preset="reset_s", weight=2.0).effective_threshold()
2.25
>>> from pydantic import ValidationError
>>> from reset_core.errors import validation_message
>>> try:
...     SelectionConfig(combine="judge")
... except ValidationError as e:
...     print(validation_message(e))
options: Value error, judge_by_aspect: combine=judge needs a judge for ['task', 'instruction', 'faithfulness']
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from reset_core.aspects import ASPECT_COLS


class SelectionConfig(BaseModel):
    """How candidates are scored and picked."""

    preset: Literal["reset", "reset_s", "custom"] = Field(
        "reset",
        description="reset: top-1 per example; reset_s: top-1 only above the threshold and "
        "where judges agree; custom: top-k, threshold and target size",
    )
    weight: float = Field(
        2.0, ge=0, le=100, description="w in score = s_task + w·(I_instr·s_instr + I_faith·s_faith)"
    )
    combine: Literal["mean", "judge", "agree"] = Field(
        "mean",
        description="several judges per aspect: mean; judge = one named judge per aspect; "
        "agree = mean only where they agree within delta (else not rankable)",
    )
    judges: list[str] | None = Field(None, description="judge ids to use (default: all)")
    judge_by_aspect: dict[str, str] = Field(
        default_factory=dict, description="combine=judge: aspect=judge_id for each aspect"
    )
    delta: float = Field(
        0.2, ge=0, le=1, description="judges agree when their [0,1] scores differ by at most this"
    )
    threshold: float | None = Field(
        None,
        ge=0,
        description="minimum RESET score of a pick (reset_s default: 0.75·(1+w))",
    )
    require_agreement: bool = Field(
        False, description="custom: pick only where the judges agree (reset_s always does)"
    )
    top_k: int = Field(1, ge=1, le=1000, description="custom: picks per example")
    target_size: int | None = Field(
        None, ge=1, description="custom: keep at most this many picks, best scores first"
    )
    split: Literal["seen", "test_seen", "test_unseen"] = Field(
        "seen", description="which examples to select for (RESET samples the seen split)"
    )

    @model_validator(mode="after")
    def _check(self) -> SelectionConfig:
        if self.combine == "judge":
            missing = [a for a in ASPECT_COLS if a not in self.judge_by_aspect]
            if missing:
                raise ValueError(f"judge_by_aspect: combine=judge needs a judge for {missing}")
        unknown = set(self.judge_by_aspect) - set(ASPECT_COLS)
        if unknown:
            raise ValueError(f"judge_by_aspect: unknown aspects {sorted(unknown)}")
        return self

    def effective_threshold(self) -> float | None:
        if self.threshold is not None:
            return self.threshold
        return 0.75 * (1 + self.weight) if self.preset == "reset_s" else None

    def k(self) -> int:
        return self.top_k if self.preset == "custom" else 1

    def needs_agreement(self) -> bool:
        return self.preset == "reset_s" or (self.preset == "custom" and self.require_agreement)
