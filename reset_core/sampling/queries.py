"""What the Sample page and the CLI read about sampling: jobs and the candidates they made.

>>> from reset_core.store import connect
>>> len(sampling_jobs(connect(":memory:")))
0
"""

from __future__ import annotations

from reset_core.sampling.launch import KIND
from reset_core.store import one


def count_candidates(con) -> int:
    """How many candidates are stored (from every model and job): what there is to judge.

    >>> from reset_core.store import connect
    >>> count_candidates(connect(":memory:"))
    0
    """
    return one(con, "SELECT count(*) FROM candidates")[0]


def sampling_jobs(con, limit: int = 20):
    """The latest sampling jobs (DataFrame), newest first, with candidates ingested."""
    return con.execute(
        "SELECT j.job_id, j.status, j.n_done, j.n_total, j.error, j.created_at, j.finished_at, "
        "j.config->>'$.model.model' AS model, j.config->>'$.model.engine' AS engine, "
        "(SELECT count(*) FROM candidates c WHERE c.job_id = j.job_id) AS n_ingested "
        "FROM jobs j WHERE j.kind = ? ORDER BY j.created_at DESC LIMIT ?",
        [KIND, limit],
    ).df()


def job_candidates(con, job_id: str, limit: int = 50, offset: int = 0):
    """A window of a job's candidates with their example and setting (DataFrame), newest first."""
    return con.execute(
        "SELECT c.candidate_id, e.instruction, c.text, d.temperature, d.top_k, d.top_p, "
        "c.sample_index, c.seed, c.finish_reason, c.completion_tokens, c.engine, c.example_id "
        "FROM candidates c JOIN examples e USING (example_id) "
        "LEFT JOIN decoding_settings d USING (setting_id) "
        "WHERE c.job_id = ? ORDER BY c.created_at DESC, c.candidate_id LIMIT ? OFFSET ?",
        [job_id, limit, offset],
    ).df()
