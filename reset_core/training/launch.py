"""The app side of training: launch a run, follow it, register the model it made.

The database is touched only here (the worker never opens it). A run is one row in
``training_runs`` plus one job (:mod:`reset_core.jobs`); its metrics arrive as shards
ingested into ``training_metrics``; when it finishes, :func:`sync_training` registers
the new model in ``models`` with its lineage (parent model, curated set, run, config
and metrics), which is what makes it selectable for sampling and evaluation.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> ensure_model(con, "data/models/smollm2-135m-instruct") == ensure_model(con, "data/models/smollm2-135m-instruct")
True
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from reset_core import jobs
from reset_core.paths import jobs_dir
from reset_core.store import ingest_shards, one
from reset_core.training.config import TrainConfig

ENTRY = "reset_core.training.worker:train_job"
STAGE_OF_PRESET = {"MTL": "mtl", "RESET": "reset", "RESET-S": "reset"}


def model_id_for(path: str, adapter_path: str | None = None) -> str:
    """The id sampling gives the same weights, so candidates and lineage share one row."""
    from reset_core.sampling.config import ModelSpec

    return ModelSpec(engine="transformers", model=str(path), adapter=adapter_path).model_id


def ensure_model(
    con, path: str, adapter_path: str | None = None, name: str | None = None, stage: str = "base"
) -> str:
    """The ``models`` row for a path (+ adapter), created when missing; return its id."""
    path = str(path)
    row = one(
        con,
        "SELECT model_id FROM models WHERE path = ? AND adapter_path IS NOT DISTINCT FROM ?",
        [path, adapter_path],
    )
    if row:
        return row[0]
    model_id = model_id_for(path, adapter_path)
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [model_id, name or Path(adapter_path or path).name, path, adapter_path, stage],
    )
    return model_id


def trained_dir(db_path: str | Path) -> Path:
    """Default home of trained models: beside the database, like its jobs."""
    return Path(db_path).resolve().parent / "trained"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def start_training(
    con,
    db_path: str | Path,
    cfg: TrainConfig,
    *,
    set_id: str | None = None,
    data: pa.Table | None = None,
    base_model_id: str | None = None,
    name: str = "",
    launch: bool = True,
) -> tuple[str, str]:
    """Create (and launch) a training run on a curated set or on given data; return (run_id, job_id).

    ``data`` is a table in one of the export forms (for ``reset-studio train --data``).
    Refuses an empty set before anything is written.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from reset_core.store import connect
    >>> tmp = tempfile.TemporaryDirectory()
    >>> db = Path(tmp.name) / "studio.duckdb"
    >>> con = connect(db)
    >>> data = pa.table({"prompt": ["Say hi."], "completion": ["Hi!"]})
    >>> cfg = TrainConfig(base_model="data/models/smollm2-135m-instruct")
    >>> run_id, job_id = start_training(con, db, cfg, data=data, launch=False)
    >>> con.execute("SELECT kind, status FROM jobs WHERE job_id = ?", [job_id]).fetchall()
    [('train', 'queued')]
    >>> (Path(tmp.name) / "jobs" / job_id / "input.parquet").exists()
    True
    >>> con.close(); tmp.cleanup()
    """
    from reset_core.curation.export import items_table, to_form

    if (set_id is None) == (data is None):
        raise ValueError("give exactly one of set_id (a curated set) or data (a table)")
    if set_id is not None:
        data = to_form(items_table(con, set_id), "prompt_completion")
        if data.num_rows == 0:
            raise ValueError(f"curated set {set_id!r} is empty: there is nothing to train on")
    run_id = "run-" + uuid.uuid4().hex[:10]
    name = name or (f"{set_id}" if set_id else "run")
    output_dir = Path(cfg.output_dir or trained_dir(db_path) / f"{_slug(name)}-{run_id}")
    if output_dir.exists():
        raise ValueError(f"output_dir: {output_dir} already exists; outputs are never overwritten")
    output_dir = output_dir.resolve()
    if base_model_id is None:
        base_model_id = ensure_model(con, cfg.base_model, cfg.adapter_path)
    config = {
        "run_id": run_id,
        "name": name,
        "output_dir": str(output_dir),
        "set_id": set_id,
        "base_model_id": base_model_id,
        "train": cfg.model_dump(),
    }
    job_id = jobs.create_job(con, jobs_dir(db_path), "train", ENTRY, config, data)
    # The job counts optimizer steps, which the trainer knows once it starts, not examples.
    con.execute("UPDATE jobs SET n_total = NULL WHERE job_id = ?", [job_id])
    con.execute(
        "INSERT INTO training_runs (run_id, job_id, base_model_id, curated_set_id, config, "
        "output_dir) VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, job_id, base_model_id, set_id, json.dumps(config), str(output_dir)],
    )
    if launch:
        jobs.launch(con, job_id)
    return run_id, job_id


def sync_training(con, job_id: str) -> dict[str, Any]:
    """Ingest new metrics, mirror progress, and register the model once the run is done."""
    progress = jobs.sync_job(
        con, job_id, ingest=lambda d: ingest_shards(con, "training_metrics", d)
    )
    if progress.get("status") == "done":
        progress["model_id"] = register_model(con, job_id)
    return progress


def register_model(con, job_id: str) -> str | None:
    """Add the finished run's model to ``models`` (once) with its lineage; return its id."""
    run = one(
        con,
        "SELECT r.run_id, r.model_id, r.config, r.curated_set_id, r.base_model_id, j.work_dir "
        "FROM training_runs r JOIN jobs j USING (job_id) WHERE r.job_id = ?",
        [job_id],
    )
    if run is None:
        raise KeyError(f"no training run for job {job_id!r}")
    run_id, model_id, config, set_id, parent_id, work_dir = run
    if model_id:
        return model_id
    result = jobs.read_json(Path(work_dir) / "result.json")
    if not result:
        return None
    config = json.loads(config) if isinstance(config, str) else config
    cfg = config["train"]
    preset = (
        one(con, "SELECT preset FROM curated_sets WHERE set_id = ?", [set_id]) if set_id else None
    )
    stage = STAGE_OF_PRESET.get(preset[0], "other") if preset else "other"
    outputs = result["outputs"]
    path, adapter = (
        (outputs["merged"], None)
        if "merged" in outputs
        else (cfg["base_model"], outputs["adapter"])
    )
    model_id = model_id_for(path, adapter)
    metrics = {k: v for k, v in result.items() if k not in ("config", "outputs")}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
            "curated_set_id, training_run_id, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [
                model_id,
                config.get("name") or run_id,
                path,
                adapter,
                stage,
                parent_id,
                set_id,
                run_id,
                json.dumps({"train": cfg, "outputs": outputs, "metrics": metrics}),
            ],
        )
        con.execute(
            "UPDATE training_runs SET model_id = ?, metrics = ? WHERE run_id = ?",
            [model_id, json.dumps(metrics), run_id],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return model_id
