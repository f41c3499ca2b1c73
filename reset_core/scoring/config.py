"""How candidates are scored and picked: one validated value object, its fields' help
text shared by the Judge page and ``reset-studio select``.

The judges and how they combine are a :class:`~reset_core.scoring.panels.Panel`,
named (saved with :func:`~reset_core.scoring.panels.save_panel`) or inline. The
older flat fields still read, so stored selections and old scripts keep working:
``judges=[…]`` is an inline panel of those judges on every aspect, ``combine="judge"``
with ``judge_by_aspect`` a panel of one judge per aspect, ``combine``/``delta`` the
panel's rule.

>>> SelectionConfig(judges=["j1"]).panel.judges["task"]
['j1']
>>> SelectionConfig(combine="judge", judge_by_aspect={"task": "a", "instruction": "b",
...     "faithfulness": "c"}).panel.judges
{'task': ['a'], 'instruction': ['b'], 'faithfulness': ['c']}
>>> from pydantic import ValidationError
>>> from reset_core.errors import validation_message
>>> try:
...     SelectionConfig(combine="judge")
... except ValidationError as e:
...     print(validation_message(e))
options: Value error, judge_by_aspect: combine=judge needs a judge for ['task', 'instruction', 'faithfulness']
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from reset_core.aspects import ASPECTS
from reset_core.scoring.panels import DEFAULT_PANEL, Panel
from reset_core.scoring.reset_s import FRACTION_HELP, RESET_S_FRACTION

#: The name an inline panel (built from flags, not saved) carries.
INLINE_PANEL = "inline"

#: The flat fields of the first SelectionConfig, read into an inline panel.
_LEGACY = ("combine", "judges", "judge_by_aspect", "delta", "scale", "include_placeholders")


class SelectionConfig(BaseModel):
    """How candidates are scored and picked."""

    preset: Literal["reset", "reset_s", "custom"] = Field(
        "reset",
        description="reset: the best candidate of each example (top-1); reset_s: RESET-S, "
        "only the best-scored fraction of those picks (reset_s_fraction, per kind); "
        "custom: top-k, threshold and target size",
    )
    weight: float = Field(
        2.0, ge=0, le=100, description="w in score = s_task + w·(I_instr·s_instr + I_faith·s_faith)"
    )
    panel: str | Panel = Field(
        DEFAULT_PANEL,
        description="the judge panel: a saved panel's name, or a panel given inline "
        f"('{DEFAULT_PANEL}': every non-placeholder judge with verdicts, mean of linear [0,1])",
    )
    split: Literal["seen", "test_seen", "test_unseen"] = Field(
        "seen", description="which examples to select for (RESET samples the seen split)"
    )
    model_ids: list[str] = Field(
        default_factory=list,
        description="pick only among these models' candidates (empty: the round's policy, "
        "the one model RESET samples this round)",
    )
    all_models: bool = Field(
        False, description="pick among every model's candidates (mixes models; off by default)"
    )
    reset_s_fraction: float = Field(RESET_S_FRACTION, gt=0, le=1, description=FRACTION_HELP)
    require_agreement: bool = Field(
        False,
        description="rank only candidates whose judges agree within the panel's delta on every "
        "aspect their kind needs (a stricter panel, as combine=agree; with one judge per "
        "aspect this filters nothing)",
    )
    threshold: float | None = Field(
        None, description="minimum RESET score of a pick (empty: none); on the panel's scale"
    )
    top_k: int = Field(1, ge=1, le=1000, description="custom: picks per example")
    target_size: int | None = Field(
        None, ge=1, description="keep at most this many picks, best scores first"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, data: Any) -> Any:
        """Read the old flat fields (combine/judges/judge_by_aspect/delta) as an inline panel."""
        if not isinstance(data, dict) or not any(data.get(k) is not None for k in _LEGACY):
            return data
        data = dict(data)
        old = {k: data.pop(k, None) for k in _LEGACY}
        if isinstance(data.get("panel"), Panel | dict) or data.get("panel") not in (
            None,
            DEFAULT_PANEL,
        ):
            given = [k for k, v in old.items() if v is not None]
            raise ValueError(f"{', '.join(given)}: give either a panel or these fields, not both")
        combine = old["combine"] or "mean"
        by_aspect = old["judge_by_aspect"] or {}
        unknown = set(by_aspect) - set(ASPECTS)
        if unknown:
            raise ValueError(f"judge_by_aspect: unknown aspects {sorted(unknown)}")
        if combine == "judge":
            missing = [a for a in ASPECTS if a not in by_aspect]
            if missing:
                raise ValueError(f"judge_by_aspect: combine=judge needs a judge for {missing}")
            judges = {a: [by_aspect[a]] for a in ASPECTS}
            combine = "mean"
        elif old["judges"]:
            judges = {a: list(old["judges"]) for a in ASPECTS}
        else:
            judges = {}
        panel = {"name": INLINE_PANEL, "judges": judges, "combine": combine}
        for k in ("delta", "scale", "include_placeholders"):
            if old[k] is not None:
                panel[k] = old[k]
        data["panel"] = panel
        return data

    @model_validator(mode="after")
    def _check(self) -> SelectionConfig:
        if self.all_models and self.model_ids:
            raise ValueError("all_models: give either model_ids or all_models, not both")
        if isinstance(self.panel, str):
            self.panel = self.panel.strip() or DEFAULT_PANEL
        return self

    def k(self) -> int:
        """Picks per example: top_k for custom, else 1."""
        return self.top_k if self.preset == "custom" else 1

    def model_scope(self, con) -> list[str] | None:
        """The models whose candidates are ranked: None = every model.

        Default: the round's policy (:func:`reset_core.training.queries.round_policy`),
        so one round never mixes models unless asked; [] when the split has none.
        """
        if self.all_models:
            return None
        if self.model_ids:
            return list(self.model_ids)
        from reset_core.training.queries import round_policy

        policy = round_policy(con, self.split)
        return [policy] if policy else []
