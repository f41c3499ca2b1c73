"""Versioned rubric prompts, one per aspect (task, instruction, faithfulness).

A rubric is the judging instruction plus its score scale. An edit never updates a
row: it adds the next version, so every judgment can be traced to the exact text
that produced it (the rubric id is part of the judge id).

>>> import duckdb
>>> from reset_core.migrations import migrate
>>> con = duckdb.connect(); _ = migrate(con)
>>> latest_rubric(con, "task").rubric_id
'task-v1'
>>> save_rubric(con, "task", "Rate correctness only.", 1, 5).rubric_id
'task-v2'
"""

from __future__ import annotations

from dataclasses import dataclass

from reset_core.aspects import ASPECTS, check_aspect

DEFAULT_RUBRICS: dict[str, str] = {
    "task": (
        "You are grading how well an answer accomplishes the task it was asked to do. "
        "Judge correctness, completeness and usefulness of the answer for the instruction "
        "(and the context, when one is given). A reference answer, when given, shows one "
        "good answer; other correct answers are equally good. Ignore style and length "
        "unless they hurt the answer."
    ),
    "instruction": (
        "You are grading instruction following: does the answer do exactly what the "
        "instruction asks, in the requested form (format, length, language, number of "
        "items, constraints)? Do not grade factual accuracy here; grade whether the "
        "request was understood and followed."
    ),
    "faithfulness": (
        "You are grading faithfulness to the context: is every claim in the answer "
        "supported by the given context? Penalise any information that is not in the "
        "context or contradicts it, even if it is true in the world. An answer that says "
        "the context does not contain the information, when that is so, is faithful."
    ),
}
DEFAULT_SCALE = (1.0, 10.0)


@dataclass(frozen=True)
class Rubric:
    """One version of one aspect's rubric. The scale is stated to the judge in the prompt."""

    aspect: str
    version: int
    text: str
    scale_min: float = DEFAULT_SCALE[0]
    scale_max: float = DEFAULT_SCALE[1]

    @property
    def rubric_id(self) -> str:
        return f"{self.aspect}-v{self.version}"

    def normalise(self, raw: float) -> float:
        """Map a raw score on the rubric's scale to [0, 1]."""
        return (raw - self.scale_min) / (self.scale_max - self.scale_min)

    def in_range(self, raw: float) -> bool:
        return self.scale_min <= raw <= self.scale_max

    def to_dict(self) -> dict:
        return {
            "aspect": self.aspect,
            "version": self.version,
            "text": self.text,
            "scale_min": self.scale_min,
            "scale_max": self.scale_max,
        }


def default_rubric(aspect: str) -> Rubric:
    """Version 1 of an aspect's rubric (what a fresh database starts with)."""
    check_aspect(aspect)
    return Rubric(aspect, 1, DEFAULT_RUBRICS[aspect], *DEFAULT_SCALE)


def ensure_default_rubrics(con) -> None:
    """Store version 1 of every aspect's rubric if the database has none for it."""
    for aspect in ASPECTS:
        r = default_rubric(aspect)
        con.execute(
            "INSERT OR IGNORE INTO rubrics (rubric_id, aspect, version, text, scale_min, scale_max) "
            "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM rubrics WHERE aspect = ?)",
            [r.rubric_id, aspect, r.version, r.text, r.scale_min, r.scale_max, aspect],
        )


def rubric_versions(con, aspect: str) -> list[Rubric]:
    """Every stored version of an aspect's rubric, newest first."""
    check_aspect(aspect)
    ensure_default_rubrics(con)
    rows = con.execute(
        "SELECT aspect, version, text, scale_min, scale_max FROM rubrics WHERE aspect = ? "
        "ORDER BY version DESC",
        [aspect],
    ).fetchall()
    return [Rubric(*r) for r in rows]


def latest_rubric(con, aspect: str) -> Rubric:
    return rubric_versions(con, aspect)[0]


def save_rubric(con, aspect: str, text: str, scale_min: float, scale_max: float) -> Rubric:
    """Store an edited rubric as the next version; an unchanged text returns the latest.

    Raises ValueError naming the field when the text is empty or the scale is empty.
    """
    check_aspect(aspect)
    if not text.strip():
        raise ValueError("rubric text: must not be empty")
    if not scale_max > scale_min:
        raise ValueError(f"scale_max ({scale_max}) must be greater than scale_min ({scale_min})")
    latest = latest_rubric(con, aspect)
    if (latest.text, latest.scale_min, latest.scale_max) == (text, scale_min, scale_max):
        return latest
    r = Rubric(aspect, latest.version + 1, text, float(scale_min), float(scale_max))
    con.execute(
        "INSERT INTO rubrics (rubric_id, aspect, version, text, scale_min, scale_max) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [r.rubric_id, aspect, r.version, r.text, r.scale_min, r.scale_max],
    )
    return r
