"""Training on several processes: the job's worker starts the ranks with ``accelerate launch``.

A distributed run is still one job (:mod:`reset_core.jobs`): the app launches its
worker as for any run, and that worker (:func:`run_ranks`, called by
:func:`~reset_core.training.worker.train_job`) checks the inputs, then starts::

    python -m accelerate.commands.launch --config_file configs/<strategy>.yaml \\
        --num_processes N --num_machines 1 --main_process_port <free port> \\
        -m reset_core.training.distributed <job_dir> [<checkpoint to resume>]

and waits for it. Every rank runs TRL's ``SFTTrainer`` through
:func:`~reset_core.training.worker.run_training`; only rank 0 writes ``progress.json``,
the metric shards, ``result.json`` and the outputs, so the job folder, the metrics
(one row per optimizer step, the loss averaged over ranks) and the model registered
at the end are the same as a one-process run's. The worker stays the job's process:
cancel (the ``cancel`` file, or SIGTERM to it) reaches every rank, which agree to stop
at the same step and save a checkpoint; a relaunch resumes from the last complete one.
When a rank fails, its error (written to ``rank-<n>.error.json``) is the job's error.

The strategies and their accelerate config files (documented, in ``configs/``):

>>> sorted(CONFIG_FILES)
['ddp', 'deepspeed', 'fsdp']
>>> from reset_core.training.config import TrainConfig
>>> uses_accelerate(TrainConfig(base_model="m", num_processes=2, distributed="ddp"))
True
>>> uses_accelerate(TrainConfig(base_model="m"))
False
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from reset_core.jobs import JobContext, read_json
from reset_core.training.config import TrainConfig
from reset_core.training.trainer import TrainingError

CONFIG_DIR = Path(__file__).parent / "configs"
CONFIG_FILES = {
    "ddp": CONFIG_DIR / "ddp.yaml",
    "deepspeed": CONFIG_DIR / "deepspeed_zero2.yaml",
    "fsdp": CONFIG_DIR / "fsdp.yaml",
}
RANK_ERROR = "rank-{rank}.error.json"


def uses_accelerate(cfg: TrainConfig) -> bool:
    """Whether a run goes through ``accelerate launch`` (else: the one-process path).

    DDP with one process is the one-process path; DeepSpeed and FSDP make sense on one
    GPU too (offload), so they always launch.
    """
    return cfg.num_processes > 1 or cfg.distributed in ("deepspeed", "fsdp")


def config_file(cfg: TrainConfig) -> Path:
    """The accelerate config a run uses: the user's, or the bundled one for its strategy."""
    path = Path(cfg.accelerate_config) if cfg.accelerate_config else CONFIG_FILES[cfg.distributed]
    if not path.is_file():
        raise TrainingError(f"accelerate_config: no such file {str(path)!r}")
    return path.resolve()


def check_available(cfg: TrainConfig, gpus: int | None = None) -> None:
    """Refuse a distributed run this machine cannot start, with the reason and the fix.

    ``gpus`` is the number of visible GPUs; None skips the GPU checks (the app checks
    the config before it writes the job; the worker, on the GPU machine, counts them).

    >>> check_available(TrainConfig(base_model="m", num_processes=2, distributed="ddp"), gpus=0)
    >>> check_available(TrainConfig(base_model="m", num_processes=4, distributed="ddp"), gpus=2)
    Traceback (most recent call last):
    ...
    reset_core.training.trainer.TrainingError: num_processes: 4 processes asked for, but 2 GPUs are visible ...
    """
    if not uses_accelerate(cfg):
        return
    config_file(cfg)
    if cfg.distributed == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise TrainingError(
            "distributed: deepspeed is not installed here. Install it on the GPU machine "
            "(pip install 'reset-studio[deepspeed]', or pip install deepspeed), or choose "
            "ddp or fsdp"
        )
    if gpus is None:
        return
    if gpus == 0 and cfg.distributed in ("deepspeed", "fsdp"):
        raise TrainingError(
            f"distributed: {cfg.distributed} needs GPUs and none is visible; without GPUs "
            "use ddp (CPU processes over gloo) or one process"
        )
    if 0 < gpus < cfg.num_processes:
        raise TrainingError(
            f"num_processes: {cfg.num_processes} processes asked for, but {gpus} GPUs are "
            "visible (one process a GPU); lower num_processes or check CUDA_VISIBLE_DEVICES"
        )


def _free_port() -> int:
    # Each run gets its own rendezvous port: two runs on one machine must not meet.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(cfg: TrainConfig, job_dir: Path, resume: str | None = None) -> list[str]:
    """The ``accelerate launch`` command line that runs a job's ranks.

    >>> cfg = TrainConfig(base_model="m", num_processes=2, distributed="ddp")
    >>> cmd = launch_command(cfg, Path("/jobs/train-1"))
    >>> cmd[1:3], cmd[cmd.index("--num_processes") + 1], cmd[-3:]
    (['-m', 'accelerate.commands.launch'], '2', ['-m', 'reset_core.training.distributed', '/jobs/train-1'])
    >>> Path(cmd[cmd.index("--config_file") + 1]).name
    'ddp.yaml'
    """
    cmd = [
        # The launcher of this interpreter's accelerate, not whatever `accelerate` is on PATH.
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_file(cfg)),
        "--num_processes",
        str(cfg.num_processes),
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "-m",
        __name__,
        str(job_dir),
    ]
    return cmd + ([resume] if resume else [])


def run_ranks(ctx: JobContext, cfg: TrainConfig, resume: str | None) -> None:
    """Start the ranks under ``accelerate launch``, wait for them, and report as one job.

    Called in the job's worker process (which keeps its SIGTERM-to-cancel handler), after
    the checks every run makes. Raises :class:`TrainingError` with the failing rank's
    message when the launch fails.
    """
    import torch

    check_available(cfg, gpus=torch.cuda.device_count())
    for old in ctx.job_dir.glob(RANK_ERROR.format(rank="*")):
        old.unlink()
    cmd = launch_command(cfg, ctx.job_dir, resume)
    ctx.phase(f"starting {cfg.num_processes} processes ({cfg.distributed}, accelerate launch)")
    from reset_core.training.worker import SUPERVISOR_ENV

    env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
    # The ranks' output goes where this worker's goes (the job's worker.log).
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    rc = proc.wait()
    if rc != 0:
        raise TrainingError(_rank_failure(ctx.job_dir, rc))
    _adopt_progress(ctx, read_json(ctx.job_dir / "progress.json"))


def _rank_failure(job_dir: Path, rc: int) -> str:
    errors = []
    for path in job_dir.glob(RANK_ERROR.format(rank="*")):
        err = read_json(path)
        if err:
            errors.append(err)
    if not errors:
        return (
            f"accelerate launch exited with status {rc} before any rank reported an error; "
            f"see {job_dir / 'worker.log'}"
        )
    # The earliest first: when one rank fails, the others often fail after it, waiting on it.
    err = min(errors, key=lambda e: (e.get("at", 0), e.get("rank", 0)))
    if err.get("type") == "TrainingError":
        return err["message"]
    return f"rank {err.get('rank')} failed: {err.get('type')}: {err.get('message')}"


def _adopt_progress(ctx: JobContext, progress: dict) -> None:
    """Take over rank 0's last report, so the job's final one ("done") keeps its figures.

    The job's last progress report is written by this process (``run_worker``), which
    did no training itself: without this it would say 0 steps and no rate.
    """
    ctx.n_total = progress.get("n_total")
    ctx.n_done = progress.get("n_done") or 0
    ctx.n_partial = 0.0
    ctx._phase, ctx._detail = progress.get("phase"), None
    ctx.extra.update({k: progress[k] for k in ("loss", "epoch") if k in progress})
    began = progress.get("work_started_at")
    if began is not None:
        # Rebuild the rate clock so the final report gives rank 0's rate over its work.
        elapsed = max(time.time() - began, 1e-9)
        ctx.work_started_at = began
        ctx._started = time.monotonic() - elapsed
        ctx._done_at_start = ctx.n_done - (progress.get("rate_per_s") or 0.0) * elapsed


def rank_main(job_dir: str | Path, resume: str | None = None) -> int:
    """One rank of a distributed run (what ``accelerate launch`` starts on each process)."""
    from reset_core.training.worker import run_training

    job_dir = Path(job_dir)
    rank = int(os.environ.get("RANK", "0"))
    spec = read_json(job_dir / "job.json")
    ctx = JobContext(job_dir, spec.get("config", {}))
    # A SIGTERM to a rank (a scheduler stopping the job) means cancel, as for the worker.
    signal.signal(signal.SIGTERM, lambda *_: (job_dir / "cancel").touch())
    try:
        cfg = TrainConfig(**ctx.config["train"])
        run_training(ctx, cfg, ctx.read_input(), resume, main=rank == 0, distributed=True)
    except BaseException as e:  # noqa: BLE001 - the worker reports the first rank's error
        from reset_core.atomic import write_json_atomic

        write_json_atomic(
            job_dir / RANK_ERROR.format(rank=rank),
            {
                "rank": rank,
                "type": type(e).__name__,
                "message": str(e),
                "traceback": traceback.format_exc(),
                "at": time.time(),
            },
        )
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(rank_main(*sys.argv[1:3]))
