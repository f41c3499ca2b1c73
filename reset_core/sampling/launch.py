"""Plan, validate, start and follow sampling jobs: what the Sample page and the CLI both call.

Here the job is written but not launched, so ``check=False`` skips loading the model.
By default :func:`start_sampling` launches the worker; :func:`sync_sampling`, polled,
then ingests its candidates as they come.

>>> import tempfile
>>> from pathlib import Path
>>> from reset_core.ingest.demo import load_demo
>>> from reset_core.paths import jobs_dir
>>> from reset_core.sampling.settings import default_grid
>>> from reset_core.store import connect
>>> tmp = tempfile.TemporaryDirectory()
>>> db = Path(tmp.name) / "studio.duckdb"
>>> con = connect(db)
>>> _ = load_demo(con)
>>> model = ModelSpec(model="data/models/smollm2-135m-instruct")
>>> plan = plan_sampling(con, SampleSelection(count=50), model, default_grid(), check=False)
>>> len(plan.example_ids), len(plan.grid), plan.n_candidates, plan.n_existing
(50, 6, 300, 0)
>>> job_id = start_sampling(con, plan, jobs_dir(db), launch=False)
>>> sync_sampling(con, job_id)["status"]
'queued'
>>> con.close(); tmp.cleanup()
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from reset_core import jobs
from reset_core.ingest.queries import example_filter
from reset_core.sampling.base import ModelLoadError, build_messages
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.settings import (
    DEFAULT_MAX_TOKENS,
    DecodingSetting,
    GridRejected,
    candidate_id,
    parse_grid,
)
from reset_core.sampling.worker import ENTRY, INPUT_SCHEMA
from reset_core.store import ingest_shards, insert_arrow, one

KIND = "sample"
#: Before a model's first run the estimate assumes these (candidates/s at max_tokens
#: ``DEFAULT_MAX_TOKENS``, seconds to start). transformers: the embedded SmolLM2-135M on
#: a 2-core CPU laptop made 300 candidates at max_tokens 128 in about 9 minutes, i.e.
#: ~1/s at 64 (on a busy shared machine it has been as slow as 0.2/s); bigger models
#: are slower. vLLM: a rough guess for a small model on one GPU, engine start-up
#: included. An endpoint: ``concurrency`` requests in flight at ~2 s each.
DEFAULT_RATES = {"transformers": (1.0, 10.0), "vllm": (20.0, 60.0)}
DEFAULT_ASSUMPTIONS = {
    "transformers": "on CPU (SmolLM2-135M on 2 cores; bigger models are slower)",
    "vllm": "(a rough guess for a small model on one GPU)",
}
ENDPOINT_REQUEST_S = 2.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class SamplingRejected(ValueError):
    """Sampling cannot start as asked; the message names the problem (and the bound)."""


@dataclass
class SamplingPlan:
    """A validated sampling run, ready to start: examples x settings x samples."""

    selection: SampleSelection
    model: ModelSpec
    grid: list[DecodingSetting]
    example_ids: list[str]
    n_candidates: int  # candidates the grid asks for on these examples
    n_existing: int  # of those, already in the database for this model: skipped
    _rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: The id the candidates are stored under: the model's own id, unless the caller
    #: names the ``models`` row they belong to (an evaluation's checkpoint, whose
    #: stored id was computed where its path read differently).
    model_id: str | None = None

    def __post_init__(self) -> None:
        self.model_id = self.model_id or self.model.model_id

    @property
    def n_new(self) -> int:
        return self.n_candidates - self.n_existing

    @property
    def mean_max_tokens(self) -> float:
        """max_tokens per new candidate, on average: what its time is taken to follow."""
        limit = {s.setting_id: s.max_tokens for s in self.grid}
        n = sum(len(r["sample_indices"]) for r in self._rows)
        budget = sum(len(r["sample_indices"]) * limit[r["setting_id"]] for r in self._rows)
        return budget / n if n else float(DEFAULT_MAX_TOKENS)


@dataclass(frozen=True)
class DefaultModel:
    """The model sampling uses when none is chosen, and why (a line for the page and CLI).

    ``spec`` holds :class:`ModelSpec` fields (``model``, ``adapter``, ``name``);
    ``checkpoint`` is the round's policy as a :func:`trained_checkpoints` row
    ``(model_id, name, path, adapter_path, stage)``, or None for the embedded model.
    """

    spec: dict[str, Any]
    checkpoint: tuple | None
    why: str


def default_model(con) -> DefaultModel:
    """One policy per round: the round's policy, else the embedded SmolLM2.

    RESET samples one model per round: the MTL checkpoint, then each round's result
    (:func:`reset_core.training.queries.round_policy`). Before any such checkpoint
    exists, the embedded model is the default (``ModelUnavailable`` when it is not
    prepared).

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO models (model_id, name, path, adapter_path, stage, training_run_id, "
    ...     "created_at) VALUES ('m:mtl', 'mtl', '/m/smol', '/runs/1/adapter', 'mtl', 'run-1', "
    ...     "'2026-01-01')")
    >>> d = default_model(con)
    >>> d.spec["model"], d.spec["adapter"], d.checkpoint[0]
    ('/m/smol', '/runs/1/adapter', 'm:mtl')
    >>> d.why
    "mtl · smol + LoRA (MTL): the round's policy, the newest MTL or RESET checkpoint (RESET samples one policy per round)"
    """
    from reset_core.models import DEFAULT_MODEL_NAME, default_model_path
    from reset_core.training.queries import model_label, round_policy

    policy = round_policy(con, split=None)
    row = policy and one(
        con,
        "SELECT model_id, name, path, adapter_path, stage FROM models WHERE model_id = ?",
        [policy],
    )
    if row and row[2]:
        label = model_label(con, policy)
        return DefaultModel(
            {"model": row[2], "adapter": row[3], "name": label},
            tuple(row),
            f"{label}: the round's policy, the newest MTL or RESET checkpoint "
            "(RESET samples one policy per round)",
        )
    return DefaultModel(
        {"model": str(default_model_path()), "adapter": None, "name": DEFAULT_MODEL_NAME},
        None,
        f"the embedded {DEFAULT_MODEL_NAME}: no MTL or RESET checkpoint yet (once one is "
        "trained, the round's policy is the default)",
    )


def check_endpoint(spec: ModelSpec) -> None:
    """An openai spec's key variable and endpoint must be ones the deployment allows.

    Raises :class:`SamplingRejected` naming the field (``api_key_env`` or ``base_url``);
    nothing is sent. No network: cheap enough to run on every launch.
    """
    if spec.engine != "openai":
        return
    from reset_core.deployment import SecretNotAllowed
    from reset_core.sampling.openai_backend import check_endpoint as check

    try:
        check(spec)
    except SecretNotAllowed as e:
        raise SamplingRejected(str(e)) from None


def check_model(spec: ModelSpec) -> None:
    """Reject a model that cannot run before a worker is launched for it.

    Local paths must be model folders; hub ids must be in the local cache or known to
    the Hub; an endpoint must answer and serve the model; vLLM must be installed.
    """
    if spec.adapter:
        if spec.engine != "transformers":
            raise SamplingRejected(
                f"adapter: only the transformers engine applies a LoRA adapter here, not {spec.engine}"
            )
        if not (Path(spec.adapter).expanduser() / "adapter_config.json").exists():
            raise SamplingRejected(
                f"adapter {spec.adapter!r} is not a LoRA adapter folder: no adapter_config.json"
            )
    if spec.engine == "openai":
        check_endpoint(spec)
        _check_served(spec)
        return
    if spec.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise SamplingRejected(
            "engine vllm needs vLLM installed (pip install 'reset-studio[vllm]' on a GPU machine); "
            "use engine transformers here"
        )
    ref = spec.model.strip()
    if not ref:
        raise SamplingRejected("model: give a local folder or a Hugging Face hub id")
    path = Path(ref).expanduser()
    # Hub ids are "name" or "org/name"; anything else is meant as a folder.
    looks_local = ref.startswith(("/", ".", "~")) or ref.count("/") > 1
    if path.exists() or looks_local or not _HUB_ID.match(ref):
        if not path.exists():
            raise SamplingRejected(f"model path {ref!r} does not exist (and is not a hub id)")
        if not (path / "config.json").exists():
            raise SamplingRejected(f"model path {ref!r} is not a model folder: no config.json")
        return
    _check_hub_id(ref, spec.revision)


def _check_served(spec: ModelSpec) -> None:
    """Each endpoint that answers must serve the model; at least one must answer.

    A fleet may start with a replica down (the worker routes around it); an endpoint
    that answers with other models is a wrong address and is refused.
    """
    from reset_core.sampling.openai_backend import list_served_models

    unreachable = []
    for url in spec.endpoints:
        try:
            served = list_served_models(spec, base_url=url)
        except ModelLoadError as e:
            if len(spec.endpoints) == 1:
                raise SamplingRejected(str(e)) from e
            unreachable.append(str(e))
            continue
        if served and spec.model not in served:
            raise SamplingRejected(
                f"endpoint {url} does not serve model {spec.model!r}; it serves: "
                + ", ".join(served[:20])
            )
    if len(unreachable) == len(spec.endpoints):
        raise SamplingRejected(
            f"none of the {len(unreachable)} endpoints answers: " + "; ".join(unreachable)
        )


def _check_hub_id(repo_id: str, revision: str | None) -> None:
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise SamplingRejected(
            f"hub id {repo_id!r} is not in the local Hugging Face cache and the Hub is offline "
            "(HF_HUB_OFFLINE); download it first or give a local folder"
        )
    try:
        HfApi().model_info(repo_id, revision=revision, timeout=10)
    except RepositoryNotFoundError as e:
        raise SamplingRejected(f"unknown hub id {repo_id!r}: no such model on the Hub") from e
    except RevisionNotFoundError as e:
        raise SamplingRejected(f"hub id {repo_id!r} has no revision {revision!r}") from e
    except Exception as e:  # noqa: BLE001 - network trouble: say so rather than launch blind
        raise SamplingRejected(
            f"cannot check hub id {repo_id!r}: the Hub is unreachable and the model is not in "
            f"the local cache ({type(e).__name__}: {e})"
        ) from e


def select_examples(
    con, selection: SampleSelection, example_ids: Sequence[str] | None = None
) -> list[tuple[str, str, str | None]]:
    """(example_id, instruction, context) of the selected examples, a stable shuffle.

    ``example_ids``: exactly these examples (a frozen test set), the filters ignored.
    """
    if example_ids is not None:
        return con.execute(
            "SELECT example_id, instruction, context FROM examples "
            "WHERE example_id IN (SELECT unnest(?)) ORDER BY example_id",
            [list(example_ids)],
        ).fetchall()
    where, params = example_filter(selection.kinds, selection.sources, selection.splits)
    return con.execute(
        f"SELECT example_id, instruction, context FROM examples{where} "
        "ORDER BY md5(example_id || ':' || ?::VARCHAR), example_id LIMIT ?",
        [*params, selection.seed, selection.count],
    ).fetchall()


def plan_sampling(
    con,
    selection: SampleSelection,
    model: ModelSpec,
    grid: Iterable[Mapping[str, Any] | DecodingSetting],
    check: bool = True,
    *,
    example_ids: Sequence[str] | None = None,
    model_id: str | None = None,
) -> SamplingPlan:
    """Validate everything and count the candidates; raises :class:`SamplingRejected`.

    Candidates already stored for the same example, model, setting and sample index
    are counted in ``n_existing`` and not asked for again. ``example_ids`` samples
    exactly those examples instead of the selection's (an evaluation's frozen test
    set); ``model_id`` stores the candidates under that ``models`` row instead of the
    id the spec computes (see :attr:`SamplingPlan.model_id`).
    """
    try:
        settings = parse_grid(grid)
    except GridRejected as e:
        raise SamplingRejected(str(e)) from e
    examples = select_examples(con, selection, example_ids)
    if not examples:
        raise SamplingRejected(
            "no examples match the selection "
            f"(kinds={selection.kinds or 'any'}, sources={selection.sources or 'any'}, "
            f"splits={selection.splits or 'any'}); nothing to sample"
        )
    if check:
        check_model(model)
    model_id = model_id or model.model_id
    keys, rows = [], []
    for example_id, instruction, context in examples:
        messages = json.dumps(build_messages(instruction, context))
        for s in settings:
            rows.append(
                {
                    "example_id": example_id,
                    "messages": messages,
                    "setting": s.model_dump_json(),
                    "setting_id": s.setting_id,
                    "sample_indices": list(range(s.n)),
                }
            )
            keys += [
                (candidate_id(example_id, model_id, s.setting_id, i), len(rows) - 1, i)
                for i in range(s.n)
            ]
    existing = _existing_candidates(con, [k[0] for k in keys])
    if existing:
        for cid, row, i in keys:
            if cid in existing:
                rows[row]["sample_indices"].remove(i)
        rows = [r for r in rows if r["sample_indices"]]
    return SamplingPlan(
        selection=selection,
        model=model,
        grid=settings,
        example_ids=[e[0] for e in examples],
        n_candidates=len(keys),
        n_existing=len(existing),
        _rows=rows,
        model_id=model_id,
    )


def _existing_candidates(con, ids: Sequence[str]) -> set[str]:
    con.register("_planned", pa.table({"candidate_id": list(ids)}))
    try:
        return {
            r[0]
            for r in con.execute(
                "SELECT p.candidate_id FROM _planned p JOIN candidates c USING (candidate_id)"
            ).fetchall()
        }
    finally:
        con.unregister("_planned")


def record_model_and_grid(
    con, model: ModelSpec, grid: Sequence[DecodingSetting], model_id: str | None = None
) -> None:
    """Rows in ``models`` and ``decoding_settings`` for what a run uses (kept if present)."""
    config = model.model_dump(mode="json")
    insert_arrow(
        con,
        "models",
        pa.table(
            {
                "model_id": [model_id or model.model_id],
                "name": [model.display_name],
                "path": [model.model_ref if model.engine != "openai" else model.base_url],
                "revision": [model.revision],
                "stage": ["base"],
                "config": [json.dumps(config)],
            }
        ),
    )
    insert_arrow(
        con,
        "decoding_settings",
        pa.table(
            {
                "setting_id": [s.setting_id for s in grid],
                **{
                    f: [getattr(s, f) for s in grid]
                    for f in ("temperature", "top_k", "top_p", "max_tokens", "seed", "n")
                },
            }
        ),
    )


def start_sampling(
    con,
    plan: SamplingPlan,
    jobs_root: str | Path,
    launch: bool = True,
    chunk_size: int | None = None,
) -> str:
    """Record the model and grid, write the job folder and (by default) launch its worker.

    ``jobs_root`` is where job folders live (``reset_core.paths.jobs_dir(db_path)``).
    """
    if plan.n_new == 0:
        raise SamplingRejected(
            f"all {plan.n_candidates} candidates of this plan are already in the database"
        )
    check_endpoint(plan.model)
    record_model_and_grid(con, plan.model, plan.grid, plan.model_id)
    config = {
        "model": plan.model.model_dump(mode="json"),
        "model_id": plan.model_id,
        "selection": plan.selection.model_dump(mode="json"),
        "grid": [s.model_dump(mode="json") for s in plan.grid],
        "chunk_size": chunk_size,
    }
    inputs = pa.Table.from_pylist(plan._rows, schema=INPUT_SCHEMA)
    job_id = jobs.create_job(con, jobs_root, KIND, ENTRY, config, inputs)
    # n_total in candidates, not input rows, so the progress bar is right from the start.
    con.execute("UPDATE jobs SET n_total=? WHERE job_id=?", [plan.n_new, job_id])
    if launch:
        jobs.launch(con, job_id)
    return job_id


def ingest_candidates(con, shard_dir: str | Path) -> int:
    """Load a sampling job's finished shards into ``candidates`` (idempotent by key)."""
    return ingest_shards(con, "candidates", shard_dir)


def sync_sampling(con, job_id: str) -> dict[str, Any]:
    """Ingest a job's new shards and refresh its status; returns its progress."""
    return jobs.sync_job(con, job_id, ingest=lambda d: ingest_candidates(con, d))


def resume_sampling(con, job_id: str) -> int:
    """Relaunch a failed, cancelled or killed job; it makes only the missing candidates."""
    status = one(con, "SELECT status FROM jobs WHERE job_id=?", [job_id])
    if status is None:
        raise SamplingRejected(f"no job {job_id!r}")
    progress = sync_sampling(con, job_id)
    if progress.get("status") == "running":
        raise SamplingRejected(f"job {job_id} is still running")
    return jobs.launch(con, job_id)


def _mean_max_tokens(grid: Sequence[Mapping[str, Any]]) -> float:
    """max_tokens per candidate of a job's grid (each setting weighted by its n)."""
    n = sum(s.get("n", 1) for s in grid)
    return sum(s.get("n", 1) * s["max_tokens"] for s in grid) / n if n else 0.0


def sampling_throughput(con, model: ModelSpec) -> jobs.Throughput:
    """Candidates/s of this model here: its last finished jobs, or the engine's default.

    Jobs count when they ran the same model (weights and adapter) on the same engine
    and device; their rates are normalised by max_tokens, the main driver of time.

    >>> from reset_core.store import connect
    >>> sampling_throughput(connect(":memory:"), ModelSpec(model="data/models/x")).describe()
    'no run of this model yet: assuming ~1 candidates/s at max_tokens 64 on CPU (SmolLM2-135M on 2 cores; bigger models are slower), plus ~10 s to start'
    """
    runs = [
        (config, progress)
        for config, progress in jobs.finished_runs(con, KIND)
        if config.get("model_id") == model.model_id
        and config.get("model", {}).get("engine") == model.engine
        and config.get("model", {}).get("device", "auto") == model.device
    ]
    per_max_tokens = {"cost_label": "max_tokens {:g}"}
    measured = jobs.measure(
        runs,
        unit="candidates",
        subject="this model",
        cost_of=lambda config: _mean_max_tokens(config["grid"]),
        **per_max_tokens,
    )
    if measured is not None:
        return measured
    if model.engine == "openai":
        per_s, startup = model.concurrency / ENDPOINT_REQUEST_S, 0.0
        basis = f"({model.concurrency} requests in flight, ~{ENDPOINT_REQUEST_S:g} s each)"
    else:
        (per_s, startup), basis = DEFAULT_RATES[model.engine], DEFAULT_ASSUMPTIONS[model.engine]
    return jobs.Throughput(
        "candidates",
        per_s,
        startup,
        "this model",
        cost=DEFAULT_MAX_TOKENS,
        assumption=basis,
        **per_max_tokens,
    )


def estimate_sampling(con, plan: SamplingPlan) -> jobs.LaunchEstimate:
    """The plan's new candidates and how long they should take here.

    >>> from reset_core.store import connect
    >>> from reset_core.ingest.demo import load_demo
    >>> con = connect(":memory:")
    >>> _ = load_demo(con)
    >>> model = ModelSpec(model="data/models/smollm2-135m-instruct")
    >>> plan = plan_sampling(con, SampleSelection(count=10), model,
    ...                      [{"max_tokens": 64, "temperature": t} for t in (0.1, 1.0)], check=False)
    >>> str(estimate_sampling(con, plan)).split(" (")[0]
    '20 candidates · under a minute'
    """
    return jobs.LaunchEstimate(
        plan.n_new, sampling_throughput(con, plan.model), cost=plan.mean_max_tokens
    )
