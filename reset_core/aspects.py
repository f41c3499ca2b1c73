"""The three aspects a judge scores, and the example kinds that need them: defined once.

RESET's score is ``s_task + w * (I_instr * s_instr + I_faith * s_faith)``: every
example needs ``task``; instruction examples add ``instruction``, context examples
add ``faithfulness``.

>>> ASPECT_COLS["faithfulness"]
's_faith'
>>> needed_aspects("context")
('task', 'faithfulness')
"""

from __future__ import annotations

#: The aspects, in the order screens show them.
ASPECTS: tuple[str, ...] = ("task", "instruction", "faithfulness")

#: The per-candidate score column of each aspect (selection tables, analytics summaries).
ASPECT_COLS: dict[str, str] = {
    "task": "s_task",
    "instruction": "s_instr",
    "faithfulness": "s_faith",
}

#: Example kinds: open-ended instructions, or answers grounded in a given context.
KINDS: tuple[str, ...] = ("instruction", "context")

#: The aspect each kind adds to ``task`` in the RESET formula (its indicator is 1).
KIND_ASPECT: dict[str, str] = {"instruction": "instruction", "context": "faithfulness"}


def needed_aspects(kind: str) -> tuple[str, ...]:
    """The aspects the RESET formula uses for an example of ``kind``."""
    if kind not in KIND_ASPECT:
        raise ValueError(f"unknown example kind {kind!r}; expected one of {KINDS}")
    return ("task", KIND_ASPECT[kind])


def check_aspect(aspect: str, field: str = "aspect") -> None:
    """Raise a clear error, naming ``field``, for anything but one of :data:`ASPECTS`."""
    if aspect not in ASPECTS:
        raise ValueError(f"{field}: must be one of {list(ASPECTS)}, got {aspect!r}")
