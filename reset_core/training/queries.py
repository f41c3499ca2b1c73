"""What the Train page and the CLI read about training: runs, live metrics, models, lineage.

>>> from reset_core.store import connect
>>> len(runs(connect(":memory:")))
0
"""

from __future__ import annotations

import json
from typing import Any

from reset_core.store import one


def lineage(con, model_id: str) -> list[dict[str, Any]]:
    """The chain from a model back to its root: each with its run, curated set and metrics.

    >>> from reset_core.store import connect
    >>> lineage(connect(":memory:"), "m:unknown")
    [{'model_id': 'm:unknown', 'missing': True}]
    """
    chain, seen = [], set()
    current: str | None = model_id
    while current and current not in seen:
        seen.add(current)
        row = one(
            con,
            "SELECT m.model_id, m.name, m.stage, m.path, m.adapter_path, m.parent_id, "
            "m.curated_set_id, m.training_run_id, m.config, s.name, s.preset, s.n_items, "
            "s.content_hash FROM models m LEFT JOIN curated_sets s ON s.set_id = m.curated_set_id "
            "WHERE m.model_id = ?",
            [current],
        )
        if row is None:
            chain.append({"model_id": current, "missing": True})
            break
        config = json.loads(row[8]) if isinstance(row[8], str) else (row[8] or {})
        chain.append(
            {
                "model_id": row[0],
                "name": row[1],
                "stage": row[2],
                "path": row[3],
                "adapter_path": row[4],
                "parent_id": row[5],
                "curated_set_id": row[6],
                "training_run_id": row[7],
                "curated_set": {
                    "name": row[9],
                    "preset": row[10],
                    "n_items": row[11],
                    "content_hash": row[12],
                }
                if row[6]
                else None,
                "train_config": config.get("train"),
                "metrics": config.get("metrics"),
            }
        )
        current = row[5]
    return chain


def runs(con):
    """Training runs with their job status, newest first (a pandas DataFrame)."""
    return con.execute(
        "SELECT r.run_id, r.job_id, j.status, j.n_done AS steps_done, j.n_total AS steps_total, "
        "r.curated_set_id, r.base_model_id, r.model_id, r.output_dir, j.error, r.created_at "
        "FROM training_runs r LEFT JOIN jobs j USING (job_id) ORDER BY r.created_at DESC"
    ).df()


def metrics_frame(con, run_id: str):
    """A run's logged metrics by step (a pandas DataFrame) for the live charts."""
    return con.execute(
        "SELECT step, loss, learning_rate, tokens_per_s, epoch FROM training_metrics "
        "WHERE run_id = ? ORDER BY step",
        [run_id],
    ).df()


def trained_models(con):
    """Models a run can start from or sampling/evaluation can pick, newest first."""
    return con.execute(
        "SELECT model_id, name, stage, path, adapter_path, parent_id, curated_set_id, created_at "
        "FROM models ORDER BY created_at DESC, model_id"
    ).df()


def trained_checkpoints(con) -> list[tuple[str, str, str, str | None, str]]:
    """Models a training run made (not registered bases), newest first, for sampling.

    Each is ``(model_id, name, path, adapter_path, stage)``; ``adapter_path`` is None
    for a merged checkpoint.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO models (model_id, name, path, stage, training_run_id) VALUES "
    ...     "('m:base', 'tiny', '/models/tiny', 'base', NULL), "
    ...     "('m:mtl', 'tiny-mtl', '/runs/r1/merged', 'mtl', 'r1')"
    ... )
    >>> trained_checkpoints(con)
    [('m:mtl', 'tiny-mtl', '/runs/r1/merged', None, 'mtl')]
    """
    return con.execute(
        "SELECT model_id, name, path, adapter_path, stage FROM models "
        "WHERE training_run_id IS NOT NULL ORDER BY created_at DESC"
    ).fetchall()


def run_for_job(con, job_id: str) -> str | None:
    """The training run a job trains, or None when no training job has that id.

    >>> from reset_core.store import connect
    >>> run_for_job(connect(":memory:"), "train-20250101-120000-abc123") is None
    True
    """
    row = one(con, "SELECT run_id FROM training_runs WHERE job_id = ?", [job_id])
    return row[0] if row else None
