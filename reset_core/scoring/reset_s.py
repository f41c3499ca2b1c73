"""RESET-S, defined once: the stricter cut that selection and curation both apply.

RESET picks the best candidate of every example (top-1 by RESET score). RESET-S
("supercharged") keeps only the best-scored fraction of those picks, one third by
default: the paper's "less is more" result, a set about three times smaller and of
higher quality. The cut is made per example kind, because instruction and context
examples are scored on different aspects (``s_instr`` vs ``s_faith``), so one
overall cut would let the kind with the more lenient aspect crowd the other out.
A stricter panel (judges must agree, as ``combine=agree``) can come on top; that
is a choice of the selection (``require_agreement``), since only selection ranks.

``reset_core.scoring.selection`` applies :func:`keep_best_sql` to the judge picks
it stores (preset ``reset_s``); ``reset_core.curation.sets`` applies the same SQL to
a selection's picks after reviewers' overrides (preset ``RESET-S``).

>>> keep_count(300), keep_count(10), keep_count(3, 0.5)
(100, 4, 2)
>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("CREATE TABLE p AS SELECT 'e' || i AS example_id, 'c' || i AS candidate_id, "
...     "CASE WHEN i % 2 = 0 THEN 'instruction' ELSE 'context' END AS kind, i / 10 AS score "
...     "FROM range(12) t(i)")
>>> con.sql(keep_best_sql("p") + " ORDER BY candidate_id").fetchall()  # doctest: +NORMALIZE_WHITESPACE
[('e10', 'c10', 'instruction', 1.0), ('e11', 'c11', 'context', 1.1),
 ('e8', 'c8', 'instruction', 0.8), ('e9', 'c9', 'context', 0.9)]
"""

from __future__ import annotations

import math

#: The share of RESET's picks that RESET-S keeps by default.
RESET_S_FRACTION = 1 / 3

#: Help text of the fraction, for the selection and curation configs alike.
FRACTION_HELP = (
    "RESET-S keeps only the best-scored fraction of the top-1 picks, per example kind "
    "(default 1/3: a set about three times smaller, the paper's 'less is more')"
)

# Products like 3 * (1/3) may land a hair above an integer; do not round those up.
_EPS = 1e-9


def keep_count(n: int, fraction: float = RESET_S_FRACTION) -> int:
    """How many of ``n`` picks of one kind RESET-S keeps: ``ceil(n · fraction)``."""
    return math.ceil(n * fraction - _EPS) if n else 0


def keep_best_sql(relation: str, fraction: float = RESET_S_FRACTION) -> str:
    """A SELECT of ``relation``'s rows that RESET-S keeps; the one definition of the cut.

    ``relation`` (a table, view or CTE name) has at least ``example_id,
    candidate_id, kind, score``; per ``kind`` the best ``keep_count(n, fraction)``
    rows by ``score`` (then example and candidate id, so ties cut the same way
    every time) are kept, with all of ``relation``'s columns. A pick without a
    score (a reviewer's forced choice of an unrankable candidate) sorts last.
    """
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise ValueError(f"reset_s_fraction: must be in (0, 1], got {fraction}")
    return (
        "SELECT * EXCLUDE (_rs_pos, _rs_n) FROM (SELECT *, row_number() OVER ("
        "PARTITION BY kind ORDER BY score DESC NULLS LAST, example_id, candidate_id) AS _rs_pos, "
        f"count(*) OVER (PARTITION BY kind) AS _rs_n FROM {relation}) "
        f"WHERE _rs_pos <= ceil(_rs_n * {fraction!r} - {_EPS!r})"
    )
