"""What an evaluation is configured by: checkpoints, test set, decoding and judges.

One validated value object; its field descriptions are the help text of the Evaluate
page's widgets and of ``reset-studio evaluate``'s flags (``reset_core.options``).
Checkpoints are compared on equal terms: one test set (resolved to example ids when
the evaluation is created), one decoding setting (greedy by default), one judge panel
frozen with its judges' specs and rubric versions.

>>> cfg = EvalConfig(checkpoints=["m:base", "m:mtl"])
>>> cfg.decoding.temperature, cfg.decoding.n, cfg.tests.splits
(0.0, 1, ['test_seen', 'test_unseen'])
>>> cfg.baseline_id
'm:base'
>>> EvalConfig(checkpoints=["m:a"], baseline="m:b")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for EvalConfig
  Value error, baseline: 'm:b' is not one of the checkpoints (m:a) ...
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reset_core.sampling.settings import DecodingSetting

#: Greedy decoding: the answer a checkpoint gives, not a sample of it. 256 new tokens
#: cover the demo's test answers (IFEval asks for up to a few hundred words).
GREEDY = DecodingSetting(temperature=0.0, top_k=-1, top_p=1.0, max_tokens=256, seed=0, n=1)


class TestSet(BaseModel):
    """Which examples the checkpoints answer: filters, then a seeded subset."""

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest class

    splits: list[Literal["test_seen", "test_unseen", "seen"]] = Field(
        default_factory=lambda: ["test_seen", "test_unseen"],
        min_length=1,
        description="Test splits to answer: test_seen (held-out examples of the tasks RESET "
        "trained on), test_unseen (tasks it never saw). 'seen' is training data: only for a "
        "sanity check.",
    )
    kinds: list[Literal["instruction", "context"]] = Field(
        default_factory=list, description="Example kinds to include; empty = both."
    )
    sources: list[str] = Field(
        default_factory=list,
        description="Sources (datasets) to include, e.g. ifeval; empty = every source.",
    )
    count: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="At most this many examples (a seeded subset when more match).",
    )
    seed: int = Field(0, ge=0, description="Which subset when more match than count.")
    per_source: bool = Field(
        False,
        description="Apply count to each source on its own (a stratified subset): at most "
        "count examples of every matching source, so a large one (IFEval's 541 prompts) "
        "does not crowd out the others.",
    )


class EvalConfig(BaseModel):
    """One evaluation: which checkpoints answer which test set, scored by which panel."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        None, max_length=120, description="A name to find it by; empty = made from the checkpoints."
    )
    checkpoints: list[str] = Field(
        min_length=1,
        description="Model ids to compare (base, MTL, any round, any registered model or "
        "adapter), in the order the tables show them.",
    )
    baseline: str | None = Field(
        None,
        description="The checkpoint paired deltas are taken against; empty = the first.",
    )
    tests: TestSet = Field(default_factory=TestSet, description="The test set.")
    decoding: DecodingSetting = Field(
        default=GREEDY,
        description="One decoding setting for every checkpoint; greedy (temperature 0, one "
        "answer per example) by default.",
    )
    panel: str = Field(
        "default",
        description="The judge panel scoring the answers, frozen when the evaluation is "
        "created (its judges and rubric versions are recorded, so later edits never change "
        "it). 'default' = the offline judges plus every LLM judge with verdicts on seen data.",
    )
    engine: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="How checkpoints are run: transformers (CPU or CUDA) or vllm (GPU, the "
        "[vllm] extra).",
    )
    batch_size: int = Field(
        64,
        ge=1,
        le=4096,
        description="Answers per generate call. Greedy answers of one checkpoint batch well: on "
        "a CPU a decode step reads every weight once whatever the batch (24 answers took 183 s "
        "in batches of 24 against 272 s in batches of 8 with SmolLM2 here), so larger is "
        "sooner, up to memory.",
    )

    @field_validator("checkpoints")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("checkpoints: a checkpoint is named twice")
        return v

    @model_validator(mode="after")
    def _baseline_is_a_checkpoint(self) -> EvalConfig:
        if self.baseline is not None and self.baseline not in self.checkpoints:
            raise ValueError(
                f"baseline: {self.baseline!r} is not one of the checkpoints "
                f"({', '.join(self.checkpoints)})"
            )
        if self.decoding.n != 1:
            raise ValueError("decoding: n must be 1 (one answer per example and checkpoint)")
        return self

    @property
    def baseline_id(self) -> str:
        return self.baseline or self.checkpoints[0]
