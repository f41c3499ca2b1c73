"""Training on several processes: `accelerate launch` with 2 real CPU ranks (gloo), the tiny model.

`accelerate launch --cpu` runs a single process (accelerate's simple launcher; several
CPU processes need mpirun and a hostfile), so these runs use the launch a GPU box uses,
``--config_file ddp.yaml --num_processes 2`` (torchrun underneath), and the trainer puts
the ranks on the CPU over gloo when no GPU is visible: real torch DDP, 2 processes.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from training_data import fill_picks, wait_job

from reset_core import jobs
from reset_core.curation.config import CurationSpec
from reset_core.curation.sets import create_curated_set
from reset_core.training import distributed as dist_mod
from reset_core.training import launch as runs
from reset_core.training import queries as training_queries
from reset_core.training.config import TrainConfig
from reset_core.training.trainer import TrainingError

FAST = {"learning_rate": 2e-2, "lora_dropout": 0.0}


def _work_dir(con, job_id) -> Path:
    return jobs.work_dir(con, job_id)


def _outputs(con, run_id) -> Path:
    return Path(
        con.execute("SELECT output_dir FROM training_runs WHERE run_id = ?", [run_id]).fetchall()[
            0
        ][0]
    )


def _steps(con, run_id) -> list[int]:
    return [
        r[0]
        for r in con.execute(
            "SELECT step FROM training_metrics WHERE run_id = ? ORDER BY step", [run_id]
        ).fetchall()
    ]


# --------------------------------------------------------------------------- 2 real ranks


def test_two_processes_log_the_same_steps_as_one(con, db_path, tiny_model_dir):
    """Same global batch (4 x 2 accumulation on 1 process, 4 x 2 processes): same steps,
    one metrics row per step, same columns, the same loss at the first step."""
    fill_picks(con, n=16)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    base = {"base_model": str(tiny_model_dir), "num_train_epochs": 2, **FAST}
    one = TrainConfig(**base, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    two = TrainConfig(**base, per_device_train_batch_size=4, num_processes=2, distributed="ddp")
    assert runs.planned_steps(one, 16) == runs.planned_steps(two, 16) == 4

    done = {}
    for label, cfg in (("one", one), ("two", two)):
        run_id, job_id = runs.start_training(con, db_path, cfg, set_id=set_id, name=label)
        progress = wait_job(con, job_id, timeout=400)
        assert progress["status"] == "done", (progress, _log_tail(con, job_id))
        done[label] = (run_id, job_id, progress)

    frames = {k: training_queries.metrics_frame(con, v[0]) for k, v in done.items()}
    assert list(frames["one"].columns) == list(frames["two"].columns)
    for label, (_, job_id, progress) in done.items():
        m = frames[label]
        assert list(m["step"]) == [1, 2, 3, 4], label  # one row per optimizer step
        assert all(math.isfinite(x) for x in m["loss"]), label
        assert progress["n_done"] == progress["n_total"] == 4, progress
        result = json.loads((_work_dir(con, job_id) / "result.json").read_text())
        assert result["global_step"] == 4
        assert result["num_processes"] == (2 if label == "two" else 1)
        assert progress["model_id"]  # registered, with its lineage, like any run
    # The loss logged is the mean over the ranks: before any update both runs see the
    # same 8 examples, so the first step's loss is the same.
    assert frames["two"]["loss"].iloc[0] == pytest.approx(frames["one"]["loss"].iloc[0], rel=1e-3)

    # The adapter is written once (by rank 0), whole, with nothing a 1-process run lacks.
    run_id, job_id, progress = done["two"]
    out = _outputs(con, run_id)
    assert sorted(p.name for p in (out / "adapter").iterdir()) == sorted(
        p.name for p in (_outputs(con, done["one"][0]) / "adapter").iterdir()
    )
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_size > 0
    assert not list(out.parent.glob(".*tmp-*"))  # no half-written copy left beside it
    assert not list(_work_dir(con, job_id).glob("rank-*.error.json"))
    # The final report keeps rank 0's figures (the worker that wrote it trained nothing).
    assert progress["rate_per_s"] and progress["rate_per_s"] > 0
    assert progress["work_started_at"] >= progress["worker_started_at"]


def test_cancel_stops_every_rank_with_a_checkpoint_and_resumes(con, db_path, tiny_model_dir):
    fill_picks(con, n=40)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(
        base_model=str(tiny_model_dir),
        per_device_train_batch_size=1,
        num_train_epochs=2,  # 20 examples a rank, 40 steps
        save_steps=1000,
        num_processes=2,
        distributed="ddp",
        learning_rate=1e-3,
        merge=True,  # merged by rank 0 from the adapter it saved
    )
    run_id, job_id = runs.start_training(con, db_path, cfg, set_id=set_id, name="cancel")
    work_dir = _work_dir(con, job_id)
    deadline = time.monotonic() + 300
    while jobs.read_json(work_dir / "progress.json").get("n_done", 0) < 3:
        assert time.monotonic() < deadline, _log_tail(con, job_id)
        time.sleep(0.1)
    rank0 = jobs.read_json(work_dir / "progress.json")["pid"]
    jobs.cancel(con, job_id)  # the cancel file and SIGTERM to the job's worker
    p = wait_job(con, job_id, timeout=300)
    assert p["status"] == "cancelled", (p, _log_tail(con, job_id))
    with pytest.raises(ProcessLookupError):  # the ranks are gone, not left training
        os.kill(rank0, 0)
    ckpts = list((work_dir / "checkpoints").glob("checkpoint-*"))
    assert len(ckpts) == 1 and (ckpts[0] / "trainer_state.json").exists()
    stopped_at = int(ckpts[0].name.rsplit("-", 1)[1])
    assert 3 <= stopped_at < 40
    assert not (work_dir / "result.json").exists() and not _outputs(con, run_id).exists()

    jobs.launch(con, job_id)
    done = wait_job(con, job_id, timeout=400)
    assert done["status"] == "done", (done, _log_tail(con, job_id))
    result = json.loads((work_dir / "result.json").read_text())
    assert result["resumed_from"] == str(ckpts[0]) and result["global_step"] == 40
    assert _steps(con, run_id) == list(range(1, 41))  # every step logged once
    out = _outputs(con, run_id)
    assert (out / "adapter" / "adapter_config.json").exists()
    # The merged model is registered as the model, as for a 1-process run with merge.
    path, adapter = con.execute(
        "SELECT path, adapter_path FROM models WHERE model_id = ?", [done["model_id"]]
    ).fetchall()[0]
    assert path == str(out / "merged") and adapter is None
    assert (out / "merged" / "config.json").exists()


def test_ranks_stop_and_save_when_their_worker_is_killed(con, db_path, tiny_model_dir):
    """kill -9 of the job's worker (no cancel file, no SIGTERM handler runs): its ranks
    notice at the next step, save a checkpoint and exit; a relaunch resumes from it."""
    fill_picks(con, n=40)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(
        base_model=str(tiny_model_dir),
        per_device_train_batch_size=1,
        num_train_epochs=2,
        save_steps=1000,
        num_processes=2,
        distributed="ddp",
    )
    run_id, job_id = runs.start_training(con, db_path, cfg, set_id=set_id, name="killed")
    work_dir = _work_dir(con, job_id)
    deadline = time.monotonic() + 300
    while jobs.read_json(work_dir / "progress.json").get("n_done", 0) < 3:
        assert time.monotonic() < deadline, _log_tail(con, job_id)
        time.sleep(0.1)
    worker = con.execute("SELECT pid FROM jobs WHERE job_id = ?", [job_id]).fetchall()[0][0]
    rank0 = jobs.read_json(work_dir / "progress.json")["pid"]
    assert rank0 != worker
    os.kill(worker, signal.SIGKILL)
    assert wait_job(con, job_id, timeout=60)["status"] == "failed"
    while True:  # the orphaned ranks finish their step, save and exit
        try:
            os.kill(rank0, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, _log_tail(con, job_id)
        time.sleep(0.2)
    ckpts = list((work_dir / "checkpoints").glob("checkpoint-*"))
    assert len(ckpts) == 1 and (ckpts[0] / "trainer_state.json").exists()
    assert not _outputs(con, run_id).exists()

    jobs.launch(con, job_id)
    done = wait_job(con, job_id, timeout=400)
    assert done["status"] == "done", (done, _log_tail(con, job_id))
    assert json.loads((work_dir / "result.json").read_text())["resumed_from"] == str(ckpts[0])
    assert _steps(con, run_id) == list(range(1, 41))


def test_a_failing_rank_fails_the_job_with_its_message(con, db_path, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    broken = tmp_path / "nan-model"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(broken)
    fill_picks(con, n=8)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(base_model=str(broken), num_processes=2, distributed="ddp")
    run_id, job_id = runs.start_training(con, db_path, cfg, set_id=set_id)
    p = wait_job(con, job_id, timeout=300)
    assert p["status"] == "failed", p
    assert "loss became nan" in p["error"], p["error"]
    assert not _outputs(con, run_id).exists()


def _log_tail(con, job_id) -> str:
    log = _work_dir(con, job_id) / "worker.log"
    return log.read_text()[-3000:] if log.exists() else "(no worker.log)"


# --------------------------------------------------------------------------- no ranks


def test_processes_need_a_strategy():
    with pytest.raises(ValidationError, match="num_processes: 2 processes need distributed"):
        TrainConfig(base_model="m", num_processes=2)
    with pytest.raises(ValidationError, match="accelerate_config: only used"):
        TrainConfig(base_model="m", accelerate_config="x.yaml")
    assert not dist_mod.uses_accelerate(TrainConfig(base_model="m", distributed="ddp"))
    assert dist_mod.uses_accelerate(TrainConfig(base_model="m", distributed="fsdp"))


def test_deepspeed_without_the_package_is_refused_before_anything_is_written(
    con, db_path, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "deepspeed" else real(name, *a, **k),
    )
    cfg = TrainConfig(base_model="m", num_processes=2, distributed="deepspeed")
    with pytest.raises(ValueError, match="deepspeed is not installed"):
        runs.start_training(con, db_path, cfg, data=_table())
    assert con.execute("SELECT count(*) FROM jobs").fetchall() == [(0,)]
    with pytest.raises(TrainingError, match="deepspeed is not installed"):
        dist_mod.check_available(cfg, gpus=8)


def test_gpu_checks():
    ddp4 = TrainConfig(base_model="m", num_processes=4, distributed="ddp")
    with pytest.raises(TrainingError, match="4 processes asked for, but 2 GPUs"):
        dist_mod.check_available(ddp4, gpus=2)
    dist_mod.check_available(ddp4, gpus=4)
    dist_mod.check_available(ddp4, gpus=0)  # CPU ranks over gloo
    fsdp = TrainConfig(base_model="m", num_processes=2, distributed="fsdp")
    with pytest.raises(TrainingError, match="fsdp needs GPUs"):
        dist_mod.check_available(fsdp, gpus=0)
    missing = fsdp.model_copy(update={"accelerate_config": "/nowhere/fsdp.yaml"})
    with pytest.raises(TrainingError, match="accelerate_config: no such file"):
        dist_mod.check_available(missing)


@pytest.mark.parametrize(
    ("strategy", "expect"),
    [
        ("ddp", {"multi_gpu": True, "use_deepspeed": False, "use_fsdp": False}),
        ("deepspeed", {"use_deepspeed": True, "zero_stage": 2, "multi_gpu": False}),
        (
            "fsdp",
            {
                "use_fsdp": True,
                "fsdp_use_orig_params": True,
                "fsdp_state_dict_type": "SHARDED_STATE_DICT",
                "fsdp_sharding_strategy": "FULL_SHARD",
            },
        ),
    ],
)
def test_bundled_configs_parse_as_accelerate_reads_them(strategy, expect, tmp_path):
    """The launch command through accelerate's own parser and checks (DeepSpeed itself is
    not installed here: this is as far as its config can be tested)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    cfg = TrainConfig(base_model="m", num_processes=2, distributed=strategy)
    cmd = dist_mod.launch_command(cfg, tmp_path, resume=str(tmp_path / "checkpoint-5"))
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(cmd[3:]))
    assert args.num_processes == 2 and args.num_machines == 1
    assert args.module and args.training_script == "reset_core.training.distributed"
    assert args.training_script_args == [str(tmp_path), str(tmp_path / "checkpoint-5")]
    for key, value in expect.items():
        got = getattr(args, key)
        assert got == value or str(got).lower() == str(value).lower(), (key, got)


def test_cli_flags_build_the_config():
    from reset_core.cli import build_parser
    from reset_core.options import options_from_args

    args = build_parser().parse_args(
        [
            "train",
            "--set",
            "cs-1",
            "--base-model",
            "m",
            "--num-processes",
            "2",
            "--distributed",
            "ddp",
        ]
    )
    cfg = options_from_args(TrainConfig, args)
    assert (cfg.num_processes, cfg.distributed, cfg.accelerate_config) == (2, "ddp", "")


def test_cli_rejects_deepspeed_without_the_package(db_path, monkeypatch, capsys, tiny_model_dir):
    import importlib.util

    from reset_core.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: None if name == "deepspeed" else real(name, *a, **k),
    )
    data = tmp_path_data(db_path.parent)
    rc = main(
        [
            "--db",
            str(db_path),
            "train",
            "--data",
            str(data),
            "--base-model",
            str(tiny_model_dir),
            "--num-processes",
            "2",
            "--distributed",
            "deepspeed",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "distributed: deepspeed is not installed" in err


def tmp_path_data(folder: Path) -> Path:
    path = folder / "data.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"prompt": f"Question {i}?", "completion": "Paris."}) for i in range(4)
        )
        + "\n"
    )
    return path


def _table():
    import pyarrow as pa

    return pa.table({"prompt": ["Say hi."], "completion": ["Hi!"]})
