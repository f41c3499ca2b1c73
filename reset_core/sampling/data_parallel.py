"""vLLM data parallel: one engine process per DP rank, on its own GPUs, with its share of the work.

``ModelSpec(engine="vllm", data_parallel_size=DP, tensor_parallel_size=TP)`` uses
DP x TP GPUs: rank ``r`` gets GPUs ``r*TP .. r*TP+TP-1`` (of ``CUDA_VISIBLE_DEVICES``
when it is set) as its ``CUDA_VISIBLE_DEVICES``, and a contiguous share of the job's
examples, as vLLM's ``examples/offline_inference/data_parallel.py`` splits its prompts.
Nothing is scheduled beyond that split: each rank is an ordinary sampling worker
(``python -m reset_core.jobs <job>/dp/rank-<r>``) running one ``vllm.LLM`` with TP GPUs,
and writes its candidates as shards of the parent job, so the app ingests them as
it does any job's, and a resume redoes only the missing keys whichever rank failed.

The ranks are independent engines: the ``VLLM_DP_*`` variables of vLLM's example are
not set, because they join the ranks into one engine whose ranks must step together
(what expert-parallel MoE models need) and then a rank without prompts has to be fed
dummy ones. Dense models, the ones RESET fine-tunes, need no coordination.

The parent follows the ranks' ``progress.json`` files and reports their sum; a
cancel (the job's ``cancel`` file, or SIGTERM) reaches every rank between batches,
and a rank whose parent died stops there too.

>>> from reset_core.sampling.settings import DecodingSetting
>>> s = DecodingSetting(n=2)
>>> reqs = [GenerationRequest(e, [], s, (0, 1)) for e in "aabbcd"]
>>> [[r.example_id for r in part] for part in split_for_ranks(reqs, 2)]
[['a', 'a', 'b', 'b'], ['c', 'd']]
>>> rank_devices(1, 2, "4,5,6,7")
'6,7'
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from reset_core.jobs import JobContext, read_json, write_shard
from reset_core.sampling.base import GenerationRequest
from reset_core.sampling.config import ModelSpec

RANK_ENTRY = "reset_core.sampling.data_parallel:run_rank"
#: Seconds between two looks at the ranks' progress.
POLL_S = 0.5


def split_for_ranks(
    requests: Sequence[GenerationRequest], dp: int
) -> list[list[GenerationRequest]]:
    """``dp`` contiguous shares of about equal candidates, an example never split.

    An example's settings stay on one rank, where vLLM's prefix cache shares its
    prompt. With fewer examples than ranks, the last ranks get nothing.

    >>> from reset_core.sampling.settings import DecodingSetting
    >>> reqs = [GenerationRequest(e, [], DecodingSetting(), (0,)) for e in "ab"]
    >>> [len(part) for part in split_for_ranks(reqs, 3)]
    [1, 0, 1]
    """
    groups: dict[str, list[GenerationRequest]] = {}
    for req in requests:
        groups.setdefault(req.example_id, []).append(req)
    total = sum(len(r.sample_indices) for r in requests)
    parts: list[list[GenerationRequest]] = [[] for _ in range(dp)]
    before = 0
    for group in groups.values():
        n = sum(len(r.sample_indices) for r in group)
        # The rank whose equal share holds the middle of this example's candidates (a
        # middle on a boundary goes to the earlier rank).
        rank = math.ceil((before + n / 2) * dp / total) - 1
        parts[min(dp - 1, max(0, rank))].extend(group)
        before += n
    return parts


def rank_devices(rank: int, tp: int, visible: str | None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` of DP rank ``rank``: its TP GPUs of those visible.

    Raises ValueError when ``visible`` lists too few GPUs for this rank.

    >>> rank_devices(2, 1, None)
    '2'
    """
    ids = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    if ids is None:
        return ",".join(str(i) for i in range(rank * tp, (rank + 1) * tp))
    if len(ids) < (rank + 1) * tp:
        raise ValueError(
            f"data-parallel rank {rank} needs GPUs {rank * tp}..{(rank + 1) * tp - 1} of "
            f"CUDA_VISIBLE_DEVICES={visible}, which lists {len(ids)}"
        )
    return ",".join(ids[rank * tp : (rank + 1) * tp])


def _input_table(requests: Sequence[GenerationRequest]) -> pa.Table:
    from reset_core.sampling.worker import INPUT_SCHEMA

    return pa.Table.from_pylist(
        [
            {
                "example_id": r.example_id,
                "messages": json.dumps(r.messages),
                "setting": r.setting.model_dump_json(),
                "setting_id": r.setting.setting_id,
                "sample_indices": list(r.sample_indices),
            }
            for r in requests
        ],
        schema=INPUT_SCHEMA,
    )


def run_data_parallel(
    ctx: JobContext, spec: ModelSpec, model_id: str, requests: list[GenerationRequest]
) -> None:
    """Start one rank per non-empty share, follow them, and fail naming any rank that failed."""
    import pyarrow.parquet as pq

    dp, tp = spec.data_parallel_size, spec.tensor_parallel_size
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    # Each rank is one plain engine of TP GPUs.
    rank_model = spec.model_copy(update={"data_parallel_size": 1}).model_dump(mode="json")
    # Every rank's GPUs first: too few of them fails the job before any engine starts.
    shares = [
        (rank, share, rank_devices(rank, tp, visible))
        for rank, share in enumerate(split_for_ranks(requests, dp))
        if share
    ]
    ranks = []
    for rank, share, devices in shares:
        rank_dir = ctx.job_dir / "dp" / f"rank-{rank}"
        shutil.rmtree(rank_dir, ignore_errors=True)  # a previous attempt's ranks
        rank_dir.mkdir(parents=True)
        config = {
            "model": rank_model,
            "model_id": model_id,
            "chunk_size": ctx.config.get("chunk_size"),
            "parent_job_dir": str(ctx.job_dir),
            # Where the job's own shards go (a job folder's shards/ or a shard folder's
            # candidates/), and the job id its candidates carry.
            "parent_shard_dir": str(ctx.shard_dir),
            "shard_prefix": ctx.shard_prefix,
            "job_id": ctx.config.get("job_id") or ctx.job_dir.name,
            "parent_pid": os.getpid(),
            "rank": rank,
            "devices": devices,
        }
        (rank_dir / "job.json").write_text(
            json.dumps({"kind": "sample-dp-rank", "entry": RANK_ENTRY, "config": config})
        )
        pq.write_table(_input_table(share), rank_dir / "input.parquet")
        with open(rank_dir / "worker.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reset_core.jobs", str(rank_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "CUDA_VISIBLE_DEVICES": devices},
            )
        ranks.append((rank, devices, rank_dir, proc))
    ctx.phase(f"{len(ranks)} data-parallel ranks of {tp} GPU(s)", clock=True)
    done_before = ctx.n_done
    while True:
        running = [p for *_, p in ranks if p.poll() is None]
        states = [(rank, read_json(rank_dir / "progress.json")) for rank, _, rank_dir, _ in ranks]
        ctx.n_done = done_before + sum(int(p.get("n_done") or 0) for _, p in states)
        ctx.partial(
            sum(float(p.get("n_partial") or 0) for _, p in states),
            " · ".join(
                f"rank {rank}: {p.get('phase') or 'starting'}"
                + (f" {p['detail']}" if p.get("detail") else "")
                for rank, p in states
            ),
        )
        if not running:
            break
        time.sleep(POLL_S)
    failed = []
    for rank, devices, rank_dir, proc in ranks:
        progress = read_json(rank_dir / "progress.json")
        if proc.returncode != 0 or progress.get("status") not in ("done", "cancelled"):
            why = progress.get("error") or (
                f"exited with code {proc.returncode}; see {rank_dir / 'worker.log'}"
            )
            failed.append(f"rank {rank} (CUDA_VISIBLE_DEVICES={devices}): {why}")
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(ranks)} data-parallel ranks failed (their finished "
            "shards are kept; resume the job to redo the rest): " + "; ".join(failed)
        )


def run_rank(ctx: JobContext) -> None:
    """Entry of one DP rank: its share, shards into the parent job, the parent's cancel."""
    from reset_core.sampling.worker import pending_requests, sample_into_shards

    parent = Path(ctx.config["parent_job_dir"])
    spec = ModelSpec(**ctx.config["model"])
    model_id = ctx.config["model_id"]
    requests, n_total, _ = pending_requests(ctx.read_input().to_pylist(), model_id, set())
    ctx.start(n_total)

    def write(table: pa.Table) -> None:
        if table.num_rows:
            write_shard(Path(ctx.config["parent_shard_dir"]), table, ctx.config["shard_prefix"])
        ctx.advance(table.num_rows)

    def cancelled() -> bool:
        # The job was cancelled, or its worker died (this rank was reparented).
        return (parent / "cancel").exists() or os.getppid() != ctx.config["parent_pid"]

    sample_into_shards(ctx, spec, model_id, ctx.config["job_id"], requests, write, cancelled)
