"""Judge panels: which judges score each aspect, and how their scores are combined.

A panel is what turns many verdicts into one ``s_task``, ``s_instr`` and ``s_faith``
per candidate. It names, per aspect, the judges it trusts (none named = every judge
with verdicts on that aspect, placeholders excepted), how several judges' scores are
put on one scale before they are combined, and the combination rule. Every saved
selection records the panel it used, so a pick's provenance is exact.

Scale methods (applied per judge and aspect, over the candidates being ranked):

- ``linear``: the judge's own [0, 1] score, as the rubric maps it (1–10 → [0, 1]);
- ``rank``: the score's percentile rank among that judge's scores in the run;
- ``standard``: (score − mean) / std of that judge's scores in the run, so a
  lenient and a strict judge weigh alike.

>>> Panel().describe_rule()
'mean of linear [0,1] scores'
>>> Panel(judges={"task": ["metric:rouge_l:v1"]}, combine="agree", delta=0.1).describe_rule()
'mean of linear [0,1] scores where the judges agree within 0.1 (else not rankable)'
>>> from pydantic import ValidationError
>>> from reset_core.errors import validation_message
>>> try:
...     Panel(judges={"style": ["j"]})
... except ValidationError as e:
...     print(validation_message(e))
judges: Value error, unknown aspect 'style'; expected one of task, instruction, faithfulness
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from reset_core.aspects import ASPECTS

ScaleMethod = Literal["linear", "rank", "standard"]

#: What each scale method does, as the UI and ``--help`` say it.
SCALE_HELP: dict[str, str] = {
    "linear": "linear [0,1]: each judge's score as its rubric maps it",
    "rank": "rank: each judge's percentile rank within the run",
    "standard": "standardised: (score − the judge's mean) / its std within the run",
}

#: The name of the panel used when none is chosen.
DEFAULT_PANEL = "default"


class Panel(BaseModel):
    """Which judges score each aspect, on which scale, combined how."""

    name: str = Field(DEFAULT_PANEL, min_length=1, max_length=80, description="panel name")
    judges: dict[str, list[str]] = Field(
        default_factory=dict,
        description="aspect → judge ids; an aspect not named uses every judge with verdicts "
        "on it, placeholder verdicts excepted",
    )
    scale: ScaleMethod = Field(
        "linear",
        description="how judges' scores go onto one scale before combining: "
        + "; ".join(SCALE_HELP.values()),
    )
    combine: Literal["mean", "agree"] = Field(
        "mean",
        description="several judges on one aspect: mean; agree = mean only where their "
        "linear [0,1] scores differ by at most delta (else not rankable)",
    )
    delta: float = Field(
        0.2, ge=0, le=1, description="agree: the largest spread of [0,1] scores that agrees"
    )
    include_placeholders: bool = Field(
        False,
        description="also use placeholder verdicts (the local stand-in server's); off by "
        "default because they are not judgments",
    )

    @field_validator("judges")
    @classmethod
    def _known_aspects(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for aspect, ids in v.items():
            if aspect not in ASPECTS:
                raise ValueError(f"unknown aspect {aspect!r}; expected one of {', '.join(ASPECTS)}")
            if len(set(ids)) != len(ids):
                raise ValueError(f"{aspect} names a judge twice")
        return {a: list(ids) for a, ids in v.items() if ids}

    @model_validator(mode="after")
    def _strip(self) -> Panel:
        self.name = self.name.strip()
        return self

    def describe_rule(self) -> str:
        """The combination rule in words, for the page and the manifest."""
        text = f"mean of {SCALE_HELP[self.scale].split(':')[0]} scores"
        if self.combine == "agree":
            text += f" where the judges agree within {self.delta:g} (else not rankable)"
        return text
