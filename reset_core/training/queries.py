"""What the Train page and the CLI read about training: runs, live metrics, models, lineage.

>>> from reset_core.store import connect
>>> len(runs(connect(":memory:")))
0
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from reset_core.store import one

#: How a trained model's stage reads in its label (the preset of its curated set wins).
STAGE_TEXT = {"MTL": "MTL", "RESET": "RESET", "RESET-S": "RESET-S", "mtl": "MTL", "reset": "RESET"}


def base_model_name(name: str) -> str:
    """A base model's name as people read it: the last part of a path or hub id.

    >>> base_model_name("/data/models/smollm2-135m-instruct"), base_model_name("Qwen/Qwen2.5-0.5B")
    ('smollm2-135m-instruct', 'Qwen2.5-0.5B')
    """
    return PurePosixPath(name.rstrip("/")).name or name


def trained_model_label(base: str, *, merged: bool, stage: str | None, round_: int = 1) -> str:
    """The lineage part of a trained model's label: base, how it was tuned, which stage.

    ``stage`` is the curated set's preset (``MTL``, ``RESET``, ``RESET-S``) or the
    model's stage; RESET stages count their rounds along the lineage.

    >>> trained_model_label("SmolLM2-135M-Instruct", merged=False, stage="RESET")
    'SmolLM2-135M-Instruct + LoRA (RESET round 1)'
    >>> trained_model_label("SmolLM2-135M-Instruct", merged=True, stage="MTL")
    'SmolLM2-135M-Instruct + LoRA merged (MTL)'
    >>> trained_model_label("tiny", merged=False, stage=None)
    'tiny + LoRA (fine-tuned)'
    """
    text = STAGE_TEXT.get(stage or "", "fine-tuned")
    if text.startswith("RESET"):
        text += f" round {round_}"
    return f"{base} + LoRA{' merged' if merged else ''} ({text})"


def _models(con) -> dict[str, dict]:
    """Every model row keyed by id; ``stage`` is its curated set's preset when it has one."""
    rows = con.execute(
        "SELECT m.model_id, m.name, m.path, coalesce(s.preset, m.stage), m.parent_id, "
        "m.adapter_path, m.training_run_id, m.curated_set_id FROM models m "
        "LEFT JOIN curated_sets s ON s.set_id = m.curated_set_id"
    ).fetchall()
    keys = ("model_id", "name", "path", "stage", "parent_id", "adapter", "run_id", "set_id")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def _is_reset(m: dict) -> bool:
    return (m["stage"] or "").upper().startswith("RESET")


def _label(models: dict[str, dict], model_id: str) -> str:
    m = models[model_id]
    if not m["run_id"] and not m["parent_id"]:
        return base_model_name(m["name"])
    chain, seen, current = [], set(), model_id  # this model first, its root last
    while current in models and current not in seen:
        seen.add(current)
        chain.append(models[current])
        current = models[current]["parent_id"]
    root = chain[-1]
    if len(chain) > 1 and not root["run_id"]:
        base = base_model_name(root["name"])
    else:  # the base was never registered: an adapter's path still names it
        base = base_model_name(m["path"]) if m["adapter"] and m["path"] else "unregistered base"
    label = trained_model_label(
        base,
        merged=not m["adapter"],
        stage=m["stage"],
        round_=max(1, sum(map(_is_reset, chain))),
    )
    name = (m["name"] or "").strip()
    if name and name not in (label, m["set_id"], m["run_id"]):
        label = f"{name} · {label}"
    return label


def model_labels(con) -> dict[str, str]:
    """Every registered model's display label, by model id: its name and lineage.

    A base model reads as its name (the last part of a path); a trained one as its
    base, "+ LoRA" (merged or not) and its stage, e.g. ``SmolLM2-135M-Instruct + LoRA
    (RESET round 1)``, prefixed by the name its trainer gave it when that is neither
    the label itself nor a set or run id. The one rule for naming a model on any page.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO curated_sets (set_id, name, preset, selection_id, n_items, manifest, "
    ...     "content_hash) VALUES ('cur-1', 'mtl', 'MTL', NULL, 1, '{}', 'h'), "
    ...     "('cur-2', 'reset', 'RESET', 'sel', 1, '{}', 'h2')")
    >>> _ = con.execute(
    ...     "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
    ...     "curated_set_id, training_run_id) VALUES "
    ...     "('m:base', 'SmolLM2-135M-Instruct', '/models/smol', NULL, 'base', NULL, NULL, NULL), "
    ...     "('m:mtl', 'cur-1', '/models/smol', '/runs/1/adapter', 'mtl', 'm:base', 'cur-1', 'r1'), "
    ...     "('m:r1', 'my try', '/runs/2/merged', NULL, 'reset', 'm:mtl', 'cur-2', 'r2')")
    >>> for model_id, label in sorted(model_labels(con).items()):
    ...     print(model_id, "|", label)
    m:base | SmolLM2-135M-Instruct
    m:mtl | SmolLM2-135M-Instruct + LoRA (MTL)
    m:r1 | my try · SmolLM2-135M-Instruct + LoRA merged (RESET round 1)
    """
    models = _models(con)
    return {model_id: _label(models, model_id) for model_id in models}


def model_label(con, model_id: str | None) -> str:
    """One model's display label (see :func:`model_labels`); the id itself when unknown.

    >>> from reset_core.store import connect
    >>> model_label(connect(":memory:"), "m:unknown")
    'm:unknown'
    """
    return model_labels(con).get(model_id, model_id or "")


def next_model_label(
    con, parent_id: str | None, set_id: str | None, merged: bool, base_name: str | None = None
) -> str:
    """The label a model trained now from ``parent_id`` on ``set_id`` will get.

    The default name of a training run (and so of its model): what it is, not the
    id of the set it trained on. ``base_name`` names the base when ``parent_id`` is
    not registered yet (it will be when the run starts).

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute("INSERT INTO models (model_id, name, path) VALUES "
    ...                 "('m:base', 'SmolLM2-135M-Instruct', '/models/smol')")
    >>> next_model_label(con, "m:base", None, merged=False)
    'SmolLM2-135M-Instruct + LoRA (fine-tuned)'
    >>> next_model_label(con, None, None, merged=True, base_name="/models/qwen")
    'qwen + LoRA merged (fine-tuned)'
    """
    models = _models(con)
    preset = one(con, "SELECT preset FROM curated_sets WHERE set_id = ?", [set_id])
    if parent_id not in models:
        parent_id = "(base)"
        models[parent_id] = {
            "model_id": parent_id,
            "name": base_name or "unregistered base",
            "path": base_name,
            "stage": "base",
            "parent_id": None,
            "adapter": None,
            "run_id": None,
            "set_id": None,
        }
    new = "(new model)"
    models[new] = {
        "model_id": new,
        "name": "",
        "path": models.get(parent_id, {}).get("path"),
        "stage": preset[0] if preset else None,
        "parent_id": parent_id,
        "adapter": None if merged else "(adapter)",
        "run_id": new,
        "set_id": set_id,
    }
    return _label(models, new)


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
    """Training runs with their job status, newest first (a pandas DataFrame).

    ``model`` and ``started from`` are the models' display labels (:func:`model_labels`);
    their ids follow at the end.
    """
    df = con.execute(
        "SELECT r.run_id, r.job_id, j.status, j.n_done AS steps_done, j.n_total AS steps_total, "
        "r.curated_set_id, r.base_model_id, r.model_id, r.output_dir, j.error, r.created_at "
        "FROM training_runs r LEFT JOIN jobs j USING (job_id) ORDER BY r.created_at DESC"
    ).df()
    labels = model_labels(con)
    df.insert(3, "model", [labels.get(m) if m else None for m in df["model_id"]])
    df.insert(4, "started from", [labels.get(m, m) for m in df["base_model_id"]])
    return df


def measured_throughput(con) -> dict | None:
    """Tokens per second the latest run with logged throughput measured: min, max, run.

    What the Train page quotes instead of a guess; None before any run logged one.

    >>> from reset_core.store import connect
    >>> measured_throughput(connect(":memory:")) is None
    True
    """
    row = one(
        con,
        "SELECT m.run_id, min(m.tokens_per_s), max(m.tokens_per_s), count(*) "
        "FROM training_metrics m JOIN training_runs r USING (run_id) "
        "WHERE m.tokens_per_s > 0 GROUP BY m.run_id, r.created_at "
        "ORDER BY r.created_at DESC LIMIT 1",
    )
    if row is None:
        return None
    return {"run_id": row[0], "min": row[1], "max": row[2], "n_steps": row[3]}


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
        "SELECT model_id, name, stage, path, adapter_path, parent_id, curated_set_id, "
        "training_run_id, created_at FROM models ORDER BY created_at DESC, model_id"
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


def round_policy(con, split: str | None = "seen") -> str | None:
    """The model this RESET round samples and selects from: one policy per round.

    RESET samples one policy per round: the MTL checkpoint, then each round's result.
    With ``split``, only models that have candidates on that split count: the newest
    MTL- or RESET-stage model among them, else the one with the most candidates
    there (a base model sampled directly, as in the demo). With ``split=None`` (what
    sampling asks before anything is sampled) the newest MTL- or RESET-stage model,
    or None when there is none and the caller's default model applies.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO models (model_id, name, stage, created_at) VALUES "
    ...     "('m:base', 'tiny', 'base', '2026-01-01'), ('m:mtl', 'mtl', 'mtl', '2026-01-02'), "
    ...     "('m:r1', 'r1', 'reset', '2026-01-03')")
    >>> _ = con.execute("INSERT INTO examples (example_id, instruction, kind, source, split, "
    ...                 "content_hash) VALUES ('e1', 'Say hi', 'instruction', 'demo', 'seen', 'h')")
    >>> _ = con.execute("INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, "
    ...     "sample_index, seed, text, engine) VALUES ('a', 'e1', 'm:base', 's', 0, 0, 'hi', 't'), "
    ...     "('b', 'e1', 'm:base', 's', 1, 1, 'yo', 't'), ('c', 'e1', 'm:mtl', 's', 0, 0, 'hey', 't')")
    >>> round_policy(con), round_policy(con, split=None), round_policy(con, "test_seen")
    ('m:mtl', 'm:r1', None)
    """
    staged = "lower(m.stage) IN ('mtl', 'reset') OR upper(m.stage) LIKE 'RESET%'"
    if split is None:
        row = one(
            con,
            f"SELECT model_id FROM models m WHERE {staged} "
            "ORDER BY created_at DESC, model_id DESC LIMIT 1",
        )
        return row[0] if row else None
    row = one(
        con,
        f"""
        WITH sampled AS (
            SELECT c.model_id, count(*) AS n FROM candidates c
            JOIN examples e USING (example_id) WHERE e.split = ? GROUP BY c.model_id)
        SELECT s.model_id FROM sampled s LEFT JOIN models m USING (model_id)
        ORDER BY coalesce({staged}, false) DESC,
                 CASE WHEN coalesce({staged}, false) THEN m.created_at END DESC NULLS LAST,
                 s.n DESC, s.model_id
        LIMIT 1
        """,
        [split],
    )
    return row[0] if row else None
