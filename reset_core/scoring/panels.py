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

import hashlib
import json
from collections.abc import Sequence
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

    def fingerprint(self) -> str:
        """What the panel computes, as a short hash: equal for panels that score alike.

        The name is left out, so a saved panel and the same panel given inline share
        their kept aspect scores.

        >>> Panel(name="a").fingerprint() == Panel(name="b").fingerprint()
        True
        >>> Panel().fingerprint() == Panel(scale="rank").fingerprint()
        False
        """
        body = self.model_dump(exclude={"name"})
        body["judges"] = {a: body["judges"][a] for a in sorted(body["judges"])}
        return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- stored panels


def save_panel(con, panel: Panel) -> Panel:
    """Store ``panel`` under its name (replacing a saved panel of that name); return it.

    The default panel is implicit (every non-placeholder judge with verdicts, mean,
    linear) and cannot be saved over. Saved selections record their panel in full,
    so replacing a panel never changes what an earlier selection meant.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = save_panel(con, Panel(name="strict", judges={"task": ["j1", "j2"]}, combine="agree"))
    >>> [p.name for p in list_panels(con)]
    ['default', 'strict']
    >>> get_panel(con, "strict").judges
    {'task': ['j1', 'j2']}
    >>> save_panel(con, Panel())
    Traceback (most recent call last):
    ...
    ValueError: name: 'default' is the implicit default panel; save yours under another name
    """
    from reset_core.scoring import queries

    if panel.name == DEFAULT_PANEL:
        raise ValueError(
            f"name: {DEFAULT_PANEL!r} is the implicit default panel; save yours under another name"
        )
    queries.upsert_panel(con, panel.name, panel.model_dump_json())
    return panel


def list_panels(con) -> list[Panel]:
    """The default panel first, then the saved panels by name."""
    from reset_core.scoring import queries

    return [Panel()] + [Panel.model_validate_json(c) for _, c in queries.saved_panels(con)]


def get_panel(con, name: str | Panel) -> Panel:
    """The panel called ``name`` (a :class:`Panel` passes through unchanged).

    Raises ``ValueError`` naming the saved panels when there is none of that name.

    >>> from reset_core.store import connect
    >>> get_panel(connect(":memory:"), "default") == Panel()
    True
    >>> get_panel(connect(":memory:"), "nope")
    Traceback (most recent call last):
    ...
    ValueError: panel: no saved panel 'nope' (saved: none; 'default' is always there)
    """
    from reset_core.scoring import queries

    if isinstance(name, Panel):
        return name
    name = name.strip()
    if name == DEFAULT_PANEL:
        return Panel()
    saved = dict(queries.saved_panels(con))
    if name not in saved:
        names = ", ".join(sorted(saved)) or "none"
        raise ValueError(
            f"panel: no saved panel {name!r} (saved: {names}; {DEFAULT_PANEL!r} is always there)"
        )
    return Panel.model_validate_json(saved[name])


def resolve_panel(
    con,
    panel: str | Panel = DEFAULT_PANEL,
    split: str = "seen",
    model_ids: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """The judges ``panel`` uses per aspect on ``split`` (and these models; None = all).

    An aspect the panel names keeps its judges; an aspect it leaves open takes
    every judge with at least one valid verdict on it over the candidates in scope.
    Placeholder judges (``judges.placeholder``, the stand-in server's) are dropped
    either way unless the panel has ``include_placeholders``. This is what the
    Judge page shows before scoring, so the default panel is never implied.

    >>> from reset_core.store import connect
    >>> resolve_panel(connect(":memory:"))
    {'task': [], 'instruction': [], 'faithfulness': []}
    """
    from reset_core.scoring import queries

    panel = get_panel(con, panel)
    placeholders = queries.placeholder_judges(con)
    open_aspects = [a for a in ASPECTS if a not in panel.judges]
    found = queries.judges_with_verdicts(con, split, model_ids) if open_aspects else {}
    out = {}
    for a in ASPECTS:
        ids = panel.judges.get(a) or found.get(a, [])
        out[a] = [j for j in ids if panel.include_placeholders or j not in placeholders]
    return out
