"""Training throughput: our training job against a plain TRL script, same data, model and settings.

Builds an MTL curated set from the demo examples (references as completions, both
kinds mixed), exports it in TRL's conversational prompt-completion form, then runs,
interleaved over ``--rounds``:

* ``ours``:  ``reset_core.training.launch.start_training`` as the app does: a worker
  process, live metric shards every step, progress file, cancel checks, adapter
  written atomically, model registered;
* ``plain``: a plain TRL script written below (``SFTTrainer`` + ``LoraConfig``, the
  same hyperparameters written out by hand), in its own process on the exported file.

Both count tokens as TRL does (``num_tokens``: non-padding tokens seen) over TRL's own
``train_runtime``; the end-to-end process wall time is printed too.

With ``--processes N`` (N > 1) both sides run N ranks: ours as a job with
``num_processes=N, distributed="ddp"`` (the worker starts ``accelerate launch``), the
plain script under ``accelerate launch --multi_gpu --num_processes N`` as its user would
start it. Without GPUs the ranks are CPU processes over gloo on both sides.

    python bench/training.py [--model smollm2|tiny] [--steps 6] [--batch 2] [--max-length 128]
                             [--rounds 1] [--processes 1]

Default: the embedded SmolLM2-135M-Instruct, 6 optimizer steps of 2 examples cut at
128 tokens (about a minute per side on 2 busy cores; on a GPU raise all three);
``--model tiny`` is quicker.
Target: ours >= 0.9 of plain tokens/s. Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reset_core.curation.export import export_set
from reset_core.curation.sets import create_reference_set
from reset_core.ingest.demo import load_demo
from reset_core.store import connect
from reset_core.training.config import TrainConfig
from reset_core.training.launch import start_training, sync_training

PLAIN_SCRIPT = r"""
import json, sys, time
import torch
from datasets import load_dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

model, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
steps, batch, max_length = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
processes = int(sys.argv[7])
# Under accelerate launch on a machine without GPUs the ranks must be told to use the CPU.
ddp = {"use_cpu": not torch.cuda.is_available(), "ddp_find_unused_parameters": False} if processes > 1 else {}
t0 = time.perf_counter()
trainer = SFTTrainer(
    model=model,
    train_dataset=load_dataset("parquet", data_files=data, split="train"),
    args=SFTConfig(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch,
        learning_rate=5e-5, lr_scheduler_type="linear", warmup_steps=0.03, max_length=max_length,
        seed=42, data_seed=42, logging_steps=1, save_steps=50, report_to="none",
        bf16=False, fp16=False, activation_checkpointing=False, disable_tqdm=True, **ddp,
    ),
    peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                           task_type="CAUSAL_LM"),
)
result = trainer.train()
if trainer.is_world_process_zero():
    trainer.model.save_pretrained(out + "/adapter")
    tokens = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h][-1]
    print(json.dumps({"num_tokens": tokens, "train_runtime_s": result.metrics["train_runtime"],
                      "wall_s": time.perf_counter() - t0}))
"""


def run_plain(
    model: str, data: Path, out: Path, steps: int, batch: int, max_length: int, processes: int = 1
) -> dict:
    t = time.perf_counter()
    args = [model, str(data), str(out), str(steps), str(batch), str(max_length), str(processes)]
    if processes > 1:
        script = out.parent / "plain_trl.py"
        script.write_text(PLAIN_SCRIPT)
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(_free_port()),
            str(script),
            *args,
        ]
    else:
        cmd = [sys.executable, "-c", PLAIN_SCRIPT, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["process_wall_s"] = time.perf_counter() - t
    return r


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ours(
    con,
    db: Path,
    model: str,
    set_id: str,
    steps: int,
    batch: int,
    max_length: int,
    out: Path,
    processes: int = 1,
) -> dict:
    cfg = TrainConfig(
        base_model=model,
        max_steps=steps,
        per_device_train_batch_size=batch,
        max_length=max_length,
        precision="fp32",
        output_dir=str(out),
        num_processes=processes,
        distributed="ddp" if processes > 1 else "none",
    )
    t = time.perf_counter()
    _, job_id = start_training(con, db, cfg, set_id=set_id, name="bench")
    while (p := sync_training(con, job_id))["status"] not in ("done", "failed", "cancelled"):
        time.sleep(0.5)
    wall = time.perf_counter() - t
    if p["status"] != "done":
        raise RuntimeError(f"our job {job_id} {p['status']}: {p.get('error')}")
    work = con.execute("SELECT work_dir FROM jobs WHERE job_id = ?", [job_id]).fetchall()[0][0]
    r = json.loads((Path(work) / "result.json").read_text())
    n_metrics = con.execute(
        "SELECT count(*) FROM training_metrics m JOIN training_runs r USING (run_id) WHERE r.job_id = ?",
        [job_id],
    ).fetchall()[0][0]
    return {
        "num_tokens": r["num_tokens"],
        "train_runtime_s": r["train_runtime_s"],
        "process_wall_s": wall,
        "metric_rows": n_metrics,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        choices=["smollm2", "tiny"],
        default="smollm2",
        help="smollm2 = the embedded SmolLM2-135M-Instruct (default); tiny = a random tiny Llama",
    )
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per run (default 6)")
    ap.add_argument(
        "--max-length", type=int, default=128, help="tokens per example at most (default 128)"
    )
    ap.add_argument("--batch", type=int, default=2, help="examples per step (default 2)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    ap.add_argument(
        "--processes",
        type=int,
        default=1,
        help="ranks on each side (default 1); more = DDP under accelerate launch",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model == "tiny":
            from reset_core.models import build_tiny_llama

            model = str(tmp / "tiny")
            build_tiny_llama(model)
        else:
            from reset_core.models import default_model_path

            model = str(default_model_path())
        db = tmp / "bench.duckdb"
        con = connect(db)
        load_demo(con)
        set_id = create_reference_set(con, target_size=args.steps * args.batch * args.processes)
        data = export_set(con, set_id, tmp / "export", form="prompt_completion", fmt="parquet")

        ours, plain = [], []
        for i in range(args.rounds):
            # Alternate who goes first so a noisy neighbour hurts both alike.
            order = ("plain", "ours") if i % 2 == 0 else ("ours", "plain")
            for who in order:
                if who == "plain":
                    plain.append(
                        run_plain(
                            model,
                            data,
                            tmp / f"plain-{i}",
                            args.steps,
                            args.batch,
                            args.max_length,
                            args.processes,
                        )
                    )
                else:
                    ours.append(
                        run_ours(
                            con,
                            db,
                            model,
                            set_id,
                            args.steps,
                            args.batch,
                            args.max_length,
                            tmp / f"ours-{i}",
                            args.processes,
                        )
                    )

    def tps(runs: list[dict]) -> float:
        return statistics.median(r["num_tokens"] / r["train_runtime_s"] for r in runs)

    def wall(runs: list[dict]) -> float:
        return statistics.median(r["process_wall_s"] for r in runs)

    ours_tps, plain_tps = tps(ours), tps(plain)
    figures = {
        "model": args.model,
        "steps": args.steps,
        "batch": args.batch,
        "max_length": args.max_length,
        "rounds": args.rounds,
        "processes": args.processes,
        "ours_tokens_per_run": ours[0]["num_tokens"],
        "plain_tokens_per_run": plain[0]["num_tokens"],
        "ours_tokens_per_s": round(ours_tps, 1),
        "plain_trl_tokens_per_s": round(plain_tps, 1),
        "ratio": round(ours_tps / plain_tps, 3),
        "ours_process_wall_s": round(wall(ours), 1),
        "plain_process_wall_s": round(wall(plain), 1),
        "ours_metric_rows": ours[0]["metric_rows"],
        # Per round, in run order: shows how much the shared machine moved between runs.
        "ours_tokens_per_s_by_round": [
            round(r["num_tokens"] / r["train_runtime_s"], 1) for r in ours
        ],
        "plain_tokens_per_s_by_round": [
            round(r["num_tokens"] / r["train_runtime_s"], 1) for r in plain
        ],
        "target_min_ratio": 0.9,
    }
    print(f"{'method':<34}{'tokens/s':>10}{'train s':>10}{'process s':>11}")
    for label, rs in (("reset_core training job (worker)", ours), ("plain TRL script", plain)):
        print(
            f"{label:<34}{tps(rs):>10.1f}{statistics.median(r['train_runtime_s'] for r in rs):>10.1f}"
            f"{wall(rs):>11.1f}"
        )
    print(f"ours / plain tokens/s = {figures['ratio']} (target >= 0.9)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
