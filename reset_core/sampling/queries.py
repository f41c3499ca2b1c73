"""What the Sample page and the CLI read about sampling: jobs and the candidates they made.

Settings and models are shown by their values and names (``T 0.5 · top-k 20``,
``SmolLM2-135M-Instruct + LoRA (RESET round 1)``), never by their hash ids.

>>> from reset_core.store import connect
>>> len(sampling_jobs(connect(":memory:")))
0
"""

from __future__ import annotations

from reset_core.sampling.launch import KIND
from reset_core.sampling.settings import setting_label_sql, setting_order_sql
from reset_core.store import one
from reset_core.training.queries import model_labels


def count_candidates(con) -> int:
    """How many candidates are stored (from every model and job): what there is to judge.

    >>> from reset_core.store import connect
    >>> count_candidates(connect(":memory:"))
    0
    """
    return one(con, "SELECT count(*) FROM candidates")[0]


def setting_labels(con) -> dict[str, str]:
    """Every stored decoding setting's label by id (``T 0.5 · top-k 20``), in setting order.

    >>> from reset_core.store import connect
    >>> setting_labels(connect(":memory:"))
    {}
    """
    return dict(
        con.execute(
            f"SELECT setting_id, {setting_label_sql('d')} FROM decoding_settings d "
            f"ORDER BY {setting_order_sql('d')}, setting_id"
        ).fetchall()
    )


def sampling_jobs(con, limit: int = 20):
    """The latest sampling jobs (DataFrame), newest first, with candidates ingested.

    ``model`` is the display label of the model the job sampled (a trained model by
    its name and lineage, not the path of its base).
    """
    df = con.execute(
        "SELECT j.job_id, j.status, j.n_done, j.n_total, j.error, j.created_at, j.finished_at, "
        "j.config->>'$.model_id' AS model_id, j.config->>'$.model.model' AS model, "
        "j.config->>'$.model.engine' AS engine, "
        "(SELECT count(*) FROM candidates c WHERE c.job_id = j.job_id) AS n_ingested "
        "FROM jobs j WHERE j.kind = ? ORDER BY j.created_at DESC LIMIT ?",
        [KIND, limit],
    ).df()
    labels = model_labels(con)
    df["model"] = [labels.get(m, path) for m, path in zip(df["model_id"], df["model"], strict=True)]
    return df.drop(columns="model_id")


def job_candidates(con, job_id: str, limit: int = 50, offset: int = 0):
    """A window of a job's candidates (DataFrame), grouped by example.

    Ordered by example, then setting (temperature, top-k with unrestricted last, top-p),
    then sample index;
    the setting's label comes first, the long texts after the short columns, the
    candidate id last.
    """
    return con.execute(
        f"SELECT coalesce({setting_label_sql('d')}, c.setting_id) AS setting, c.example_id, "
        "c.sample_index AS sample, c.text, e.instruction, c.finish_reason, "
        "c.completion_tokens, c.seed, c.engine, c.candidate_id "
        "FROM candidates c JOIN examples e USING (example_id) "
        "LEFT JOIN decoding_settings d USING (setting_id) "
        f"WHERE c.job_id = ? ORDER BY c.example_id, {setting_order_sql('d')}, "
        "c.setting_id, c.sample_index LIMIT ? OFFSET ?",
        [job_id, limit, offset],
    ).df()


def split_models(con, split: str = "seen") -> dict[str, int]:
    """The models with candidates on ``split`` and how many each, most first.

    >>> from reset_core.store import connect
    >>> split_models(connect(":memory:"))
    {}
    """
    return dict(
        con.execute(
            "SELECT c.model_id, count(*) AS n FROM candidates c JOIN examples e USING (example_id) "
            "WHERE e.split = ? GROUP BY c.model_id ORDER BY n DESC, c.model_id",
            [split],
        ).fetchall()
    )
