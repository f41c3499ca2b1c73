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
import math
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from reset_core import jobs
from reset_core.models import DEFAULT_MODEL_NAME
from reset_core.paths import DEFAULT_MODEL_DIR, jobs_dir
from reset_core.store import ingest_shards, one
from reset_core.training.config import TrainConfig
from reset_core.training.queries import next_model_label

ENTRY = "reset_core.training.worker:train_job"
STAGE_OF_PRESET = {"MTL": "mtl", "RESET": "reset", "RESET-S": "reset"}
#: Before a model's first run the estimate assumes (steps/s at 4 examples a step, i.e.
#: ``per_device_train_batch_size`` x ``gradient_accumulation_steps``, seconds to start):
#: the embedded SmolLM2-135M with LoRA on 2 CPU cores, about 25 s a step of demo-length
#: examples (~600 tokens each) and 20 s to import and load; on a busy shared machine it
#: has been five times slower. Bigger models are slower.
DEFAULT_STEP_RATE = (0.04, 20.0)


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
    if name is None:
        embedded = Path(path).resolve() == DEFAULT_MODEL_DIR.resolve() and not adapter_path
        name = DEFAULT_MODEL_NAME if embedded else Path(adapter_path or path).name
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [model_id, name, path, adapter_path, stage],
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
    check_launchable(cfg)
    run_id = "run-" + uuid.uuid4().hex[:10]
    if cfg.output_dir and Path(cfg.output_dir).exists():
        raise ValueError(
            f"output_dir: {cfg.output_dir} already exists; outputs are never overwritten"
        )
    if base_model_id is None:
        base_model_id = ensure_model(con, cfg.base_model, cfg.adapter_path)
    # By default the run, and the model it makes, are named for what they are.
    name = name or next_model_label(con, base_model_id, set_id, merged=cfg.merge)
    output_dir = Path(cfg.output_dir or trained_dir(db_path) / f"{_slug(name)}-{run_id}")
    if output_dir.exists():
        raise ValueError(f"output_dir: {output_dir} already exists; outputs are never overwritten")
    output_dir = output_dir.resolve()
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


def check_launchable(cfg: TrainConfig) -> None:
    """Refuse, before anything is written, a distributed run that cannot start anywhere:
    a missing accelerate config file, or DeepSpeed asked for where it is not installed.
    (The GPU count is checked by the worker, on the machine that trains.)

    >>> check_launchable(TrainConfig(base_model="m", num_processes=2, distributed="ddp"))
    >>> check_launchable(TrainConfig(base_model="m", distributed="fsdp",
    ...                              accelerate_config="/nowhere.yaml"))
    Traceback (most recent call last):
    ...
    ValueError: accelerate_config: no such file '/nowhere.yaml'
    """
    from reset_core.training.distributed import check_available
    from reset_core.training.trainer import TrainingError

    try:
        check_available(cfg)
    except TrainingError as e:
        raise ValueError(str(e)) from e


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


def planned_steps(cfg: TrainConfig, n_items: int) -> int:
    """Optimizer steps a run of ``cfg`` on ``n_items`` examples makes (on all its processes).

    >>> planned_steps(TrainConfig(base_model="m"), 10)  # 3 batches of 4, one epoch
    3
    >>> planned_steps(TrainConfig(base_model="m", num_processes=2, distributed="ddp"), 10)
    2
    >>> planned_steps(TrainConfig(base_model="m", num_train_epochs=2,
    ...                           gradient_accumulation_steps=2), 10)
    4
    >>> planned_steps(TrainConfig(base_model="m", max_steps=5), 1000)
    5
    """
    if cfg.max_steps > 0:
        return cfg.max_steps
    # Each process gets its share of the examples (the last ones padded by repetition).
    per_process = math.ceil(n_items / cfg.num_processes)
    batches = math.ceil(per_process / cfg.per_device_train_batch_size)
    per_epoch = max(1, math.ceil(batches / cfg.gradient_accumulation_steps))
    return math.ceil(cfg.num_train_epochs * per_epoch)


def _examples_per_step(train: dict) -> float:
    # Per process: with N processes a step does N times the examples in about the time
    # one process takes for its share (the steps are already N times fewer).
    return train.get("per_device_train_batch_size", 4) * train.get("gradient_accumulation_steps", 1)


def estimate_training(con, cfg: TrainConfig, n_items: int) -> jobs.LaunchEstimate:
    """A run's optimizer steps and how long they should take here.

    Measured on this database's last finished runs from the same starting model (its
    rate normalised by examples a step), or the stated default before the first one.

    >>> from reset_core.store import connect
    >>> print(estimate_training(connect(":memory:"), TrainConfig(base_model="m"), 1000))
    ... # doctest: +NORMALIZE_WHITESPACE
    250 steps · about 1.7 h (no run of this model yet: assuming ~0.04 steps/s at 4 examples a
    step on CPU (SmolLM2-135M with LoRA on 2 cores; bigger models are slower), plus ~20 s to
    start)
    """
    model_id = model_id_for(cfg.base_model)
    runs = [
        (config, progress)
        for config, progress in jobs.finished_runs(con, "train")
        if model_id_for(config["train"]["base_model"]) == model_id
    ]
    label = {"cost_label": "{:g} examples a step"}
    throughput = jobs.measure(
        runs,
        unit="steps",
        subject="this model",
        cost_of=lambda config: _examples_per_step(config["train"]),
        **label,
    ) or jobs.Throughput(
        "steps",
        *DEFAULT_STEP_RATE,
        "this model",
        cost=4,
        assumption="on CPU (SmolLM2-135M with LoRA on 2 cores; bigger models are slower)",
        **label,
    )
    return jobs.LaunchEstimate(
        planned_steps(cfg, n_items), throughput, cost=_examples_per_step(cfg.model_dump())
    )
