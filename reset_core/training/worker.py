"""The training worker: runs in its own process, never opens the database.

Entry ``reset_core.training.worker:train_job`` (see :mod:`reset_core.jobs`). The job
folder holds ``input.parquet`` (the curated set in TRL's conversational
prompt-completion form, written by the app) and ``job.json`` with
``{"run_id", "output_dir", "train": TrainConfig}``. The worker

* writes live metrics (loss, learning rate, tokens/s, epoch) as Parquet shards for
  ``training_metrics`` and optimizer steps as progress;
* stops cleanly when the job is cancelled (cancel file or SIGTERM) after the current
  step, saving a checkpoint first;
* keeps checkpoints under ``checkpoints/`` and resumes from the last complete one
  when relaunched (after a crash or ``kill -9``);
* writes the adapter (and the merged model when asked) to a temporary folder and
  renames it to ``output_dir`` only when complete; an existing ``output_dir`` is never
  touched;
* fails with a clear message on an empty set, an adapter that does not fit the base
  model, an unwritable or full disk, and a NaN loss.

With ``num_processes`` > 1 (or ``distributed`` = deepspeed / fsdp) this process
supervises: it runs the same checks, then starts the ranks under ``accelerate launch``
(:mod:`reset_core.training.distributed`); each rank trains through :func:`run_training`
and only rank 0 writes progress, metric shards and outputs, so the job folder looks the
same either way.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import time
from pathlib import Path

import pyarrow as pa

from reset_core.atomic import write_json_atomic
from reset_core.jobs import JobContext
from reset_core.training.config import TrainConfig
from reset_core.training.trainer import TrainingError, build_trainer

METRIC_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int32()),
        ("loss", pa.float64()),
        ("learning_rate", pa.float64()),
        ("tokens_per_s", pa.float64()),
        ("epoch", pa.float64()),
    ]
)
MB = 1024 * 1024
#: Set for the ranks of a distributed run: the pid of the job's worker that launched them.
SUPERVISOR_ENV = "RESET_TRAIN_SUPERVISOR_PID"


def _stop_requested(ctx: JobContext) -> bool:
    """Cancel file (or SIGTERM, which the job's process turns into one), or, for a rank
    of a distributed run, its supervising worker gone (killed): stop and save."""
    if ctx.cancelled():
        return True
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor:
        try:
            os.kill(int(supervisor), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return False


def _on_every_rank(flag: bool, device) -> bool:
    """True on every rank when it is true on any: all ranks must stop at the same step
    (a rank that stops alone leaves the others waiting in the next gradient all-reduce)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _make_callback(ctx: JobContext, run_id: str, flush_every_s: float = 2.0, main: bool = True):
    """A ``TrainerCallback`` that reports metrics and progress and honours cancel.

    ``main`` is False on the ranks of a distributed run other than rank 0: they decide
    with the others when to stop (and fail on a NaN loss, which every rank sees, as the
    logged loss is the mean over ranks) but write nothing.
    """
    from transformers import TrainerCallback

    class ReportCallback(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict] = []
            self.cancelled = False
            self.last_flush = time.monotonic()
            self.last_t = time.monotonic()
            self.last_tokens = 0.0
            self.last_loss: float | None = None
            self.first_loss: float | None = None
            self.substeps = 0

        def flush(self) -> None:
            if self.rows and main:
                ctx.write(pa.Table.from_pylist(self.rows, METRIC_SCHEMA), n_items=0)
                self.rows = []
            self.last_flush = time.monotonic()

        def on_train_begin(self, args, state, control, **kwargs):
            if main:
                ctx.start(n_total=state.max_steps, n_done=state.global_step)
                ctx.phase("training")
            self.last_t = time.monotonic()
            self.substeps = 0

        def on_substep_end(self, args, state, control, **kwargs):
            # A forward/backward pass of an accumulated step: progress inside the step.
            self.substeps += 1
            accum = args.gradient_accumulation_steps
            if main:
                ctx.partial(self.substeps / accum, f"micro-batch {self.substeps}/{accum}")

        def on_step_end(self, args, state, control, **kwargs):
            self.substeps = 0
            if main:
                ctx.progress(state.global_step, epoch=state.epoch, loss=self.last_loss)
            if _on_every_rank(_stop_requested(ctx), args.device):
                # Save first, so a cancelled run can still be resumed later.
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return  # the end-of-training summary, not a step log
            loss = float(logs["loss"])
            now = time.monotonic()
            tokens = logs.get("num_tokens")
            tps = None
            if tokens is not None:
                delta = float(tokens) - self.last_tokens
                if delta < 0:  # the counter restarts at 0 on resume
                    delta = float(tokens)
                tps = delta / max(now - self.last_t, 1e-9)
                self.last_tokens = float(tokens)
            self.last_t = now
            self.rows.append(
                {
                    "run_id": run_id,
                    "step": state.global_step,
                    "loss": loss,
                    "learning_rate": logs.get("learning_rate"),
                    "tokens_per_s": tps,
                    "epoch": logs.get("epoch"),
                }
            )
            if not math.isfinite(loss):
                self.flush()
                raise TrainingError(
                    f"the loss became {loss} at step {state.global_step}; the run is stopped. "
                    "Lower learning_rate, check the starting model's weights, or use fp32."
                )
            self.first_loss = loss if self.first_loss is None else self.first_loss
            self.last_loss = loss
            # A checkpoint is saved right after this log: its metrics go to disk first,
            # so a run resumed from that checkpoint never lacks the steps before it.
            if control.should_save or now - self.last_flush >= flush_every_s:
                self.flush()

        def on_save(self, args, state, control, **kwargs):
            self.flush()

        def on_train_end(self, args, state, control, **kwargs):
            self.flush()

    return ReportCallback()


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _estimate_output_mb(cfg: TrainConfig) -> float:
    """Disk the outputs need: the adapter is small; a merged model is as big as the base."""
    base = Path(cfg.base_model)
    weights = (
        sum(f.stat().st_size for f in base.glob("*.safetensors"))
        + sum(f.stat().st_size for f in base.glob("*.bin"))
        if base.is_dir()
        else 0
    )
    return (weights / MB if cfg.merge else 0.0) + 50.0


def preflight_output(output_dir: Path, cfg: TrainConfig) -> None:
    """Check the output folder before any training: new, writable, and with disk to spare.

    >>> preflight_output(Path("/sys/no-write-here"), TrainConfig(base_model="m"))
    Traceback (most recent call last):
    ...
    reset_core.training.trainer.TrainingError: output_dir: cannot write to /sys ...
    """
    if output_dir.exists():
        raise TrainingError(
            f"output_dir: {output_dir} already exists; earlier outputs are never overwritten, "
            "choose a new folder"
        )
    parent = output_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(
            f"output_dir: cannot write to {_existing_ancestor(parent)} ({e.strerror or e}); "
            "pick a folder you can write to"
        ) from e
    need_mb = cfg.min_free_disk_mb + _estimate_output_mb(cfg)
    free_mb = shutil.disk_usage(parent).free / MB
    if free_mb < need_mb:
        raise TrainingError(
            f"output_dir: only {free_mb:,.0f} MB free on the disk of {parent}; this run needs "
            f"about {need_mb:,.0f} MB (min_free_disk_mb + outputs). Free space or pick another disk"
        )


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest checkpoint that finished saving; half-written ones are set aside.

    transformers writes ``trainer_state.json`` last, so a checkpoint without it was
    interrupted mid-save (e.g. ``kill -9``) and must not be resumed from.
    """
    if not checkpoint_dir.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for d in checkpoint_dir.glob("checkpoint-*"):
        try:
            step = int(d.name.split("-")[-1])
        except ValueError:
            continue
        if not (d / "trainer_state.json").exists():
            d.rename(d.with_name(f"incomplete-{d.name}-{time.time_ns()}"))
            continue
        if best is None or step > best[0]:
            best = (step, d)
    return str(best[1]) if best else None


def dataset_from_table(table: pa.Table):
    """The TRL dataset: the conversational columns of an exported form."""
    from datasets import Dataset

    cols = ["messages"] if "messages" in table.column_names else ["prompt", "completion"]
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise TrainingError(
            f"the training data lacks column(s) {missing}; expected 'messages' or "
            "'prompt' + 'completion' (see reset_core.curation.export)"
        )
    return Dataset(table.select(cols))


def _save_outputs(
    trainer, cfg: TrainConfig, output_dir: Path, summary: dict, distributed: bool = False
) -> dict:
    """Write adapter (+ merged model) into a temp folder, then rename it into place.

    Distributed, every rank calls this: saving the adapter gathers the sharded weights
    under FSDP / ZeRO-3 (a collective), and only rank 0 writes; the other ranks return.
    """
    # Named for the run, not the process: every rank of a distributed run must agree on it.
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-{summary['run_id']}")
    main = trainer.is_world_process_zero()
    if distributed and not main:
        _save_adapter(trainer, tmp / "adapter", distributed)
        return summary
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        _save_adapter(trainer, tmp / "adapter", distributed)
        trainer.processing_class.save_pretrained(tmp / "adapter")
        outputs = {"adapter": str(output_dir / "adapter")}
        if cfg.merge:
            _save_merged(trainer, cfg, tmp, distributed)
            outputs["merged"] = str(output_dir / "merged")
        summary = {**summary, "outputs": outputs}
        (tmp / "run.json").write_text(json.dumps(summary, indent=2, default=str))
        if output_dir.exists():
            raise TrainingError(f"output_dir: {output_dir} appeared during training; not replaced")
        os.rename(tmp, output_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise TrainingError(
                f"output_dir: the disk of {output_dir.parent} is full; nothing was written "
                "(checkpoints are kept, resume after freeing space)"
            ) from e
        raise TrainingError(f"output_dir: cannot write {output_dir}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _save_adapter(trainer, folder: Path, distributed: bool) -> None:
    if not distributed:
        trainer.model.save_pretrained(folder)
        return
    if getattr(trainer, "is_fsdp_enabled", False):
        # Checkpoints are sharded (fast); the adapter a user loads must be whole.
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    # The trainer's own save knows each strategy's gathering; rank 0 writes.
    trainer.save_model(str(folder))
    if trainer.is_world_process_zero():
        # The adapter folder holds what a single-process run writes, nothing more.
        (folder / "training_args.bin").unlink(missing_ok=True)


def _save_merged(trainer, cfg: TrainConfig, tmp: Path, distributed: bool) -> None:
    if distributed:
        # The trained weights may be sharded across ranks (FSDP, ZeRO-3): merge from the
        # adapter just saved, on rank 0, instead of from the wrapped model in memory.
        from reset_core.training.trainer import load_trained

        model, _ = load_trained(cfg.base_model, str(tmp / "adapter"))
        merged = model.merge_and_unload()
    else:
        merged = trainer.model.merge_and_unload()
    merged.save_pretrained(tmp / "merged")
    trainer.processing_class.save_pretrained(tmp / "merged")


def train_job(ctx: JobContext) -> None:
    """Worker entry: train one LoRA run as configured in the job folder."""
    cfg = TrainConfig(**ctx.config["train"])
    output_dir = Path(ctx.config["output_dir"])
    data = ctx.read_input()
    if data.num_rows == 0:
        raise TrainingError(
            "the curated set is empty: there is nothing to train on. Freeze a set with at "
            "least one item (check its filters and overrides)"
        )
    preflight_output(output_dir, cfg)
    # Decided once, here: the ranks of a distributed run must all resume from the same one.
    resume = last_complete_checkpoint(ctx.job_dir / "checkpoints")
    from reset_core.training.distributed import uses_accelerate

    if uses_accelerate(cfg):
        from reset_core.training.distributed import run_ranks

        run_ranks(ctx, cfg, resume)
        return
    run_training(ctx, cfg, data, resume)


def run_training(
    ctx: JobContext,
    cfg: TrainConfig,
    data: pa.Table,
    resume: str | None,
    *,
    main: bool = True,
    distributed: bool = False,
) -> None:
    """Train (or resume) one run in this process: the whole job, or one rank of it.

    ``main`` is rank 0 (the only writer of progress, metric shards and outputs);
    ``distributed`` says this process is one rank of an ``accelerate launch``.
    """
    run_id = ctx.config["run_id"]
    output_dir = Path(ctx.config["output_dir"])
    checkpoint_dir = ctx.job_dir / "checkpoints"
    if main:
        ctx.phase(f"loading {Path(cfg.base_model).name} and preparing {data.num_rows} examples")
    callback = _make_callback(ctx, run_id, main=main)
    trainer = build_trainer(cfg, dataset_from_table(data), checkpoint_dir, [callback])
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise TrainingError(
                f"no disk space left while saving a checkpoint under {checkpoint_dir}: {e}"
            ) from e
        raise
    if callback.cancelled:
        return
    metrics = dict(result.metrics)
    tokens = next(
        (h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h), None
    )
    summary = {
        "run_id": run_id,
        "config": cfg.model_dump(),
        "resumed_from": resume,
        "global_step": trainer.state.global_step,
        "n_examples": data.num_rows,
        "num_processes": trainer.args.world_size,
        "train_loss": metrics.get("train_loss"),
        "first_loss": callback.first_loss,
        "last_loss": callback.last_loss,
        "train_runtime_s": metrics.get("train_runtime"),
        "num_tokens": tokens,
        # Tokens seen (by all ranks) over this attempt's training time (a resumed run
        # counts its own part).
        "tokens_per_s": (tokens / metrics["train_runtime"])
        if tokens and metrics.get("train_runtime")
        else None,
    }
    if main:
        ctx.phase("saving the adapter" + (" and the merged model" if cfg.merge else ""))
    summary = _save_outputs(trainer, cfg, output_dir, summary, distributed=distributed)
    if main:
        write_json_atomic(ctx.job_dir / "result.json", summary)
