"""What the Evaluate page and the CLI read about evaluations (the SQL lives here).

An evaluation's answers are ordinary candidates: those of its checkpoints on its
examples with its frozen decoding setting, sample index 0 (:func:`answers_sql`).
Its verdicts are ordinary judgments of those answers by its frozen judge ids.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> len(list_evaluations(con))
0
>>> get_evaluation(con, "eval-x")
Traceback (most recent call last):
...
ValueError: no evaluation 'eval-x'
"""

from __future__ import annotations

import json
from typing import Any

from reset_core.store import one

#: The answers of one evaluation (parameters: evaluation id twice, setting id).
ANSWERS_SQL = (
    "SELECT c.candidate_id, c.model_id, c.example_id FROM candidates c "
    "JOIN evaluation_examples ee ON ee.example_id = c.example_id AND ee.evaluation_id = ? "
    "JOIN evaluation_checkpoints ck ON ck.model_id = c.model_id AND ck.evaluation_id = ? "
    "WHERE c.setting_id = ? AND c.sample_index = 0"
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def answers_sql(con, evaluation_id: str) -> tuple[str, list]:
    """(SELECT of ``candidate_id, model_id, example_id``, its parameters): the answers."""
    row = one(con, "SELECT frozen FROM evaluations WHERE evaluation_id = ?", [evaluation_id])
    if row is None:
        raise ValueError(f"no evaluation {evaluation_id!r}")
    return ANSWERS_SQL, [evaluation_id, evaluation_id, _json(row[0])["setting_id"]]


def answer_ids(con, evaluation_id: str) -> list[str]:
    """Candidate ids of the evaluation's answers stored so far."""
    sql, params = answers_sql(con, evaluation_id)
    return [r[0] for r in con.execute(f"SELECT candidate_id FROM ({sql})", params).fetchall()]


def answer_counts(con, evaluation_id: str) -> dict[str, int]:
    """Answers stored so far per checkpoint (every checkpoint listed, 0 included)."""
    sql, params = answers_sql(con, evaluation_id)
    rows = con.execute(
        f"SELECT ck.model_id, count(a.candidate_id) FROM evaluation_checkpoints ck "
        f"LEFT JOIN ({sql}) a USING (model_id) WHERE ck.evaluation_id = ? "
        "GROUP BY ck.model_id, ck.position ORDER BY ck.position",
        [*params, evaluation_id],
    ).fetchall()
    return dict(rows)


def example_ids(con, evaluation_id: str) -> list[str]:
    """The frozen test set's example ids."""
    return [
        r[0]
        for r in con.execute(
            "SELECT example_id FROM evaluation_examples WHERE evaluation_id = ? ORDER BY 1",
            [evaluation_id],
        ).fetchall()
    ]


def evaluation_jobs(con, evaluation_id: str) -> list[dict[str, Any]]:
    """The jobs an evaluation started, oldest first, with their status as last synced."""
    rows = con.execute(
        "SELECT ej.job_id, ej.stage, ej.model_id, j.status, j.error, j.created_at "
        "FROM evaluation_jobs ej JOIN jobs j USING (job_id) WHERE ej.evaluation_id = ? "
        "ORDER BY j.created_at, ej.job_id",
        [evaluation_id],
    ).fetchall()
    keys = ("job_id", "stage", "model_id", "status", "error", "created_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def verdict_counts(con, evaluation_id: str) -> dict[str, dict[str, int]]:
    """Per checkpoint: answers, valid verdicts by the frozen judges, failed ones (NULL).

    A valid verdict is a score or a judge's "cannot score this" (``not_applicable``),
    counted once per (answer, judge, aspect) however many attempts it took; a failed
    one is an item whose every verdict so far is a NULL score.
    """
    ev = get_evaluation(con, evaluation_id)
    pairs = [(j, a) for a, ids in ev["frozen"]["judges"].items() for j in ids]
    sql, params = answers_sql(con, evaluation_id)
    rows = con.execute(
        f"""
        WITH a AS ({sql}),
        v AS (
            SELECT a.model_id, j.candidate_id, j.judge_id, j.aspect,
                   bool_or(j.score IS NOT NULL OR j.status = 'not_applicable') AS valid
            FROM judgments j JOIN a USING (candidate_id)
            JOIN (SELECT unnest(?) AS judge_id, unnest(?) AS aspect) p
              ON p.judge_id = j.judge_id AND p.aspect = j.aspect
            GROUP BY ALL
        )
        SELECT ck.model_id,
               (SELECT count(*) FROM a WHERE a.model_id = ck.model_id),
               count(*) FILTER (WHERE v.valid), count(*) FILTER (WHERE NOT v.valid)
        FROM evaluation_checkpoints ck LEFT JOIN v USING (model_id)
        WHERE ck.evaluation_id = ? GROUP BY ck.model_id, ck.position ORDER BY ck.position
        """,
        [*params, [p[0] for p in pairs], [p[1] for p in pairs], evaluation_id],
    ).fetchall()
    return {r[0]: {"answers": r[1], "verdicts": r[2], "failed": r[3]} for r in rows}


def list_evaluations(con):
    """Every evaluation, newest first: id, name, status, sizes, when, which experiment.

    A DataFrame with ``evaluation_id, name, status, n_checkpoints, n_examples,
    created_at, finished_at, experiment_id, error``.
    """
    return con.execute(
        "SELECT e.evaluation_id, e.name, e.status, "
        "(SELECT count(*) FROM evaluation_checkpoints c WHERE c.evaluation_id = e.evaluation_id) "
        "AS n_checkpoints, "
        "(SELECT count(*) FROM evaluation_examples x WHERE x.evaluation_id = e.evaluation_id) "
        "AS n_examples, e.created_at, e.finished_at, e.experiment_id, e.error "
        "FROM evaluations e ORDER BY e.created_at DESC, e.evaluation_id DESC"
    ).df()


def get_evaluation(con, evaluation_id: str) -> dict[str, Any]:
    """One evaluation: its config and frozen inputs (as dicts), status, checkpoints, size.

    ``checkpoints`` is a list of ``{model_id, label, position}`` in position order.
    Raises ``ValueError`` for an unknown id.
    """
    row = one(
        con,
        "SELECT evaluation_id, name, config, frozen, status, error, experiment_id, created_at, "
        "finished_at, started_at, (SELECT count(*) FROM evaluation_examples x "
        "WHERE x.evaluation_id = e.evaluation_id) FROM evaluations e WHERE evaluation_id = ?",
        [evaluation_id],
    )
    if row is None:
        raise ValueError(f"no evaluation {evaluation_id!r}")
    checkpoints = con.execute(
        "SELECT model_id, label, position FROM evaluation_checkpoints WHERE evaluation_id = ? "
        "ORDER BY position",
        [evaluation_id],
    ).fetchall()
    return {
        "evaluation_id": row[0],
        "name": row[1],
        "config": _json(row[2]),
        "frozen": _json(row[3]),
        "status": row[4],
        "error": row[5],
        "experiment_id": row[6],
        "created_at": row[7],
        "finished_at": row[8],
        "started_at": row[9],
        "n_examples": row[10],
        "checkpoints": [{"model_id": m, "label": lab, "position": p} for m, lab, p in checkpoints],
    }


def matching_sources(con, kinds=(), sources=(), splits=()) -> list[str]:
    """The sources with examples matching the filters, by name (a stratified test set).

    >>> from reset_core.store import connect
    >>> matching_sources(connect(":memory:"), splits=["test_seen"])
    []
    """
    from reset_core.ingest.queries import example_filter

    where, params = example_filter(kinds, sources, splits)
    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT source FROM examples{where} ORDER BY source", params
        ).fetchall()
    ]
