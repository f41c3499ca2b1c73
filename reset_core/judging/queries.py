"""What the Judge page and the CLI read about judgments.

>>> from reset_core.store import connect
>>> job_judgment_counts(connect(":memory:"), "judge-x")
(0, 0)
"""

from __future__ import annotations

from reset_core.store import one


def job_judgment_counts(con, job_id: str) -> tuple[int, int]:
    """How many judgments a judge job stored, and how many of them have a score.

    The difference is the failed verdicts (a NULL score with its error kept)::

        n, n_scored = job_judgment_counts(con, job_id)
        print(f"{n} judgments, {n_scored} scored, {n - n_scored} without a score")
    """
    n, n_scored = one(
        con, "SELECT count(*), count(score) FROM judgments WHERE job_id = ?", [job_id]
    )
    return n, n_scored
