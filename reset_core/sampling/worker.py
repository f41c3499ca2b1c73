"""The sampling worker: what ``python -m reset_core.jobs <job dir>`` runs for a sample job.

It reads ``input.parquet`` (one row per example and decoding setting, with the sample
indices to make), skips candidates already in this job's shards, and writes one
Parquet shard of ``candidates`` rows per batch. It never opens the database. Between
batches it checks for a cancel request. Progress moves inside a batch too: the model
load reports its steps, and the engine reports every decoding step (transformers) or
answered request (OpenAI-compatible) to ``progress.json``. A model that fails to load, an out-of-memory
error or an engine crash ends the job as failed with that error; every shard
finished before it stays, and relaunching the job redoes only the missing keys.

:func:`reset_core.jobs.launch` starts it as ``python -m reset_core.jobs <job dir>``;
``reset_core.jobs.run_worker(job_dir)`` runs a job folder in any process that can load
the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa

from reset_core.jobs import JobContext
from reset_core.sampling import GENERATORS
from reset_core.sampling.base import GenerationRequest, GenerationResult
from reset_core.sampling.config import ModelSpec
from reset_core.sampling.openai_backend import PartialGeneration
from reset_core.sampling.settings import DecodingSetting, candidate_id

ENTRY = "reset_core.sampling.worker:run"

#: Columns of a candidate shard: the ``candidates`` table's, minus created_at.
CANDIDATE_SCHEMA = pa.schema(
    [
        ("candidate_id", pa.string()),
        ("example_id", pa.string()),
        ("model_id", pa.string()),
        ("setting_id", pa.string()),
        ("sample_index", pa.int32()),
        ("seed", pa.int64()),
        ("text", pa.string()),
        ("finish_reason", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("latency_ms", pa.float64()),
        ("engine", pa.string()),
        ("job_id", pa.string()),
    ]
)

#: Input rows: what the app writes for the worker.
INPUT_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("messages", pa.string()),  # JSON list of chat messages
        ("setting", pa.string()),  # JSON of a DecodingSetting
        ("setting_id", pa.string()),
        ("sample_indices", pa.list_(pa.int32())),
    ]
)


def default_chunk(spec: ModelSpec) -> int:
    """Candidates per shard: one generate call for transformers, bigger for the others."""
    return {"transformers": spec.batch_size, "vllm": 1024}.get(spec.engine, 8 * spec.concurrency)


def pending_requests(
    rows: Sequence[dict], model_id: str, done: set[str]
) -> tuple[list[GenerationRequest], int, int]:
    """The requests still to make, and (candidates in the job, candidates already done)."""
    requests, n_total, n_done = [], 0, 0
    for row in rows:
        setting = DecodingSetting.model_validate_json(row["setting"])
        indices = row["sample_indices"]
        if indices is None:
            indices = range(setting.n)
        missing = tuple(
            i
            for i in indices
            if candidate_id(row["example_id"], model_id, setting.setting_id, i) not in done
        )
        n_total += len(indices)
        n_done += len(indices) - len(missing)
        if missing:
            requests.append(
                GenerationRequest(row["example_id"], json.loads(row["messages"]), setting, missing)
            )
    return requests, n_total, n_done


def _chunks(requests: list[GenerationRequest], size: int) -> Iterator[list[GenerationRequest]]:
    """Shards of about ``size`` candidates, cut only between examples.

    An example's settings are contiguous in the request list, and the transformers
    backend reads each prompt once per generate call: cutting inside an example would
    make a second call read its prompt again. So a shard ends at the first example
    boundary once it holds ``size`` candidates (it can exceed ``size`` by at most one
    example's candidates; the backend still decodes in groups of its batch size).

    >>> from reset_core.sampling.settings import DecodingSetting
    >>> s = DecodingSetting()
    >>> reqs = [GenerationRequest(e, [], s, (0, 1)) for e in "aabbbc"]
    >>> [[r.example_id for r in c] for c in _chunks(reqs, 3)]
    [['a', 'a'], ['b', 'b', 'b'], ['c']]
    """
    batch, n = [], 0
    for req in requests:
        if n >= size and req.example_id != batch[-1].example_id:
            yield batch
            batch, n = [], 0
        batch.append(req)
        n += len(req.sample_indices)
    if batch:
        yield batch


def results_table(
    results: Sequence[GenerationResult], model_id: str, engine: str, job_id: str
) -> pa.Table:
    """Candidate rows for a shard, keyed by :func:`candidate_id`."""
    cols: dict[str, list] = {f.name: [] for f in CANDIDATE_SCHEMA}
    for r in results:
        cols["candidate_id"].append(
            candidate_id(r.example_id, model_id, r.setting_id, r.sample_index)
        )
        cols["example_id"].append(r.example_id)
        cols["model_id"].append(model_id)
        cols["setting_id"].append(r.setting_id)
        cols["sample_index"].append(r.sample_index)
        cols["seed"].append(r.seed)
        cols["text"].append(r.text)
        cols["finish_reason"].append(r.finish_reason)
        cols["prompt_tokens"].append(r.prompt_tokens)
        cols["completion_tokens"].append(r.completion_tokens)
        cols["latency_ms"].append(r.latency_ms)
        cols["engine"].append(engine)
        cols["job_id"].append(job_id)
    return pa.table(cols, schema=CANDIDATE_SCHEMA)


def run(ctx: JobContext) -> None:
    """Job entry: generate every missing candidate of this job, one shard per batch."""
    spec = ModelSpec(**ctx.config["model"])
    model_id = ctx.config.get("model_id") or spec.model_id
    # A shard folder's run (reset_core.shards) names itself: its folder name is the user's.
    job_id = ctx.config.get("job_id") or ctx.job_dir.name
    requests, n_total, n_done = pending_requests(
        ctx.read_input().to_pylist(), model_id, ctx.done_keys("candidate_id")
    )
    ctx.start(n_total, n_done)
    if not requests:
        return
    # Similar prompts and limits next to each other: less padding in every batch.
    requests.sort(key=lambda r: (r.setting.max_tokens, len(json.dumps(r.messages))))
    if spec.engine == "vllm" and spec.data_parallel_size > 1:
        from reset_core.sampling.data_parallel import run_data_parallel

        run_data_parallel(ctx, spec, model_id, requests)
        return
    sample_into_shards(ctx, spec, model_id, job_id, requests)


def sample_into_shards(
    ctx: JobContext,
    spec: ModelSpec,
    model_id: str,
    job_id: str,
    requests: list[GenerationRequest],
    write: Callable[[pa.Table], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> None:
    """Load the model, then generate ``requests`` batch by batch, one shard each.

    ``write`` saves a batch's table (default: ``ctx.write``, a shard of this job) and
    ``cancelled`` says when to stop between batches (default: this job's cancel file);
    a data-parallel rank passes its parent job's.
    """
    write = write or ctx.write
    cancelled = cancelled or ctx.cancelled
    load = f"loading {spec.display_name}"
    ctx.phase(load)
    generator = GENERATORS[spec.engine](spec, status=lambda step: ctx.phase(f"{load}: {step}"))
    size = int(ctx.config.get("chunk_size") or default_chunk(spec))
    batches = list(_chunks(requests, size))
    ctx.phase("generating", clock=True)  # the rate measures generation, not the load
    failures: list[str] = []
    try:
        for i, batch in enumerate(batches, 1):
            if cancelled():
                break

            def progress(done: float, detail: str | None, i: int = i) -> None:
                where = f"batch {i}/{len(batches)}"
                ctx.partial(done, f"{where} · {detail}" if detail else where)

            try:
                results = generator.generate(batch, progress)
            except PartialGeneration as e:  # keep what finished; the rest is redone on resume
                results, failures = e.results, failures + e.errors
            write(results_table(results, model_id, generator.engine, job_id))
    finally:
        generator.close()
    if failures:
        raise RuntimeError(
            f"{len(failures)} request(s) failed after retries (finished candidates are kept; "
            f"resume the job to retry them); first: {failures[0]}"
        )
