"""Training jobs with the tiny model: export -> train -> load, continue, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest
from training_data import fill_picks, wait_job

from reset_core import jobs
from reset_core.curation.config import CurationSpec
from reset_core.curation.export import export_set, load_exported
from reset_core.curation.sets import create_curated_set, create_reference_set
from reset_core.training import launch as runs
from reset_core.training import queries as training_queries
from reset_core.training.config import TrainConfig
from reset_core.training.trainer import TrainingError, attach_adapter, load_base, load_trained
from reset_core.training.worker import preflight_output

# High learning rate and several epochs: the tiny random model must visibly learn.
FAST = {"learning_rate": 2e-2, "per_device_train_batch_size": 4, "lora_dropout": 0.0}


def _greedy(model, tok, text="Question 1: what is the capital of France?") -> list[int]:
    import torch

    ids = tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def learnable_tiny(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with wider embeddings.

    Its random embeddings (std 0.02, 32 dims) behind a final RMSNorm bound every logit
    below about 1, so no adapter can bring the loss under ~5.5; a real model's learned
    embeddings have no such cap. Scaling them lets LoRA show real learning in seconds.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-learnable")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(8)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, learnable_tiny):
    """One finished run on a frozen RESET set (module-scoped: several tests read it)."""
    from reset_core.store import connect

    root = tmp_path_factory.mktemp("trained")
    db = root / "studio.duckdb"
    con = connect(db)
    fill_picks(con, n=24)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(base_model=str(learnable_tiny), num_train_epochs=4, merge=True, **FAST)
    run_id, job_id = runs.start_training(con, db, cfg, set_id=set_id, name="reset-tiny")
    progress = wait_job(con, job_id)
    yield {
        "con": con,
        "db": db,
        "set_id": set_id,
        "run_id": run_id,
        "job_id": job_id,
        "progress": progress,
        "cfg": cfg,
    }
    con.close()


def test_export_then_train_then_adapter_changes_generation(trained, learnable_tiny, tmp_path):
    con, progress = trained["con"], trained["progress"]
    assert progress["status"] == "done", progress
    model_id = progress["model_id"]
    path, adapter, stage, set_id = con.execute(
        "SELECT path, adapter_path, stage, curated_set_id FROM models WHERE model_id = ?",
        [model_id],
    ).fetchall()[0]
    # Merged model registered as the path; the adapter stays in the outputs.
    assert stage == "reset" and set_id == trained["set_id"] and adapter is None
    run = json.loads(Path(path).parent.joinpath("run.json").read_text())
    adapter_dir = run["outputs"]["adapter"]

    # The export of the same set is what the job trained on.
    exported = load_exported(
        export_set(con, trained["set_id"], tmp_path, form="prompt_completion", fmt="jsonl")
    )
    assert exported.num_rows == run["n_examples"] == 24

    base_model, tok = load_trained(str(learnable_tiny))
    tuned, _ = load_trained(str(learnable_tiny), adapter_dir)
    merged, _ = load_trained(path)
    base_out, tuned_out = _greedy(base_model, tok), _greedy(tuned, tok)
    assert tuned_out != base_out
    assert _greedy(merged, tok) == tuned_out

    # Live metrics were ingested, step by step, and the loss went down.
    m = training_queries.metrics_frame(con, trained["run_id"])
    assert list(m["step"]) == list(range(1, run["global_step"] + 1))
    assert m["loss"].iloc[-3:].mean() < m["loss"].iloc[:3].mean() - 0.5
    assert (m["tokens_per_s"].dropna() > 0).all() and m["learning_rate"].max() <= 2e-2

    # Lineage: trained model -> its base, with the curated set and config recorded.
    chain = training_queries.lineage(con, model_id)
    assert [c["stage"] for c in chain] == ["reset", "base"]
    assert chain[0]["curated_set"]["n_items"] == 24
    assert chain[0]["train_config"]["learning_rate"] == 2e-2
    assert chain[0]["metrics"]["global_step"] == run["global_step"]
    assert chain[1]["path"] == str(learnable_tiny)


def test_continuing_an_adapter_starts_near_its_previous_loss(trained, learnable_tiny):
    con, db = trained["con"], trained["db"]
    first = json.loads((Path(_run_dir(con, trained["run_id"])) / "run.json").read_text())
    assert first["first_loss"] - first["last_loss"] > 0.5  # the first run learned something
    cont_cfg = TrainConfig(
        base_model=str(learnable_tiny),
        adapter_path=first["outputs"]["adapter"],
        num_train_epochs=1,
        learning_rate=1e-4,
        lora_dropout=0.0,
    )
    model_before = con.execute("SELECT count(*) FROM models").fetchall()[0][0]
    _, job_id = runs.start_training(con, db, cont_cfg, set_id=trained["set_id"], name="cont")
    cont = wait_job(con, job_id)
    assert cont["status"] == "done", cont
    second = json.loads(Path(_run_dir(con, job_id=job_id)).joinpath("run.json").read_text())
    # Starts where the adapter left off, far below where a fresh adapter starts.
    assert abs(second["first_loss"] - first["last_loss"]) < 0.25 * (
        first["first_loss"] - first["last_loss"]
    )
    # The continued model's parent is the adapter it continued (base + adapter).
    parent = con.execute(
        "SELECT p.adapter_path FROM models m JOIN models p ON p.model_id = m.parent_id "
        "WHERE m.model_id = ?",
        [cont["model_id"]],
    ).fetchall()[0][0]
    assert parent == first["outputs"]["adapter"]
    assert con.execute("SELECT count(*) FROM models").fetchall()[0][0] == model_before + 2


def _run_dir(con, run_id=None, job_id=None) -> str:
    col, val = ("run_id", run_id) if run_id else ("job_id", job_id)
    return con.execute(f"SELECT output_dir FROM training_runs WHERE {col} = ?", [val]).fetchall()[
        0
    ][0]


def test_attach_adapter_and_load_trained_apply_a_saved_adapter(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lora)
    peft_model.save_pretrained(adapter)
    base_path, ids = str(tiny_model_dir), torch.tensor([[1, 5, 9, 12]])

    # For continued training: the adapter's weights load trainable.
    model = attach_adapter(load_base(base_path), str(adapter))
    assert isinstance(model, PeftModel)
    lora_params = [p for n, p in model.named_parameters() if "lora_" in n]
    assert lora_params and all(p.requires_grad for p in lora_params)

    # For inference: base + adapter in eval mode, frozen, with the base's tokenizer.
    tuned, tok = load_trained(base_path, str(adapter))
    base, _ = load_trained(base_path)
    assert isinstance(tuned, PeftModel) and not isinstance(base, PeftModel)
    assert not tuned.training and not base.training
    assert not any(p.requires_grad for n, p in tuned.named_parameters() if "lora_" in n)
    assert tok.eos_token == "<|im_end|>"
    with torch.no_grad():
        assert not torch.allclose(tuned(ids).logits, base(ids).logits)

    with pytest.raises(TrainingError, match="not a LoRA adapter folder"):
        attach_adapter(load_base(base_path), str(tmp_path))
    with pytest.raises(TrainingError, match="base_model: cannot load"):
        load_base(str(tmp_path / "missing"))


def test_mtl_stage_trains_on_references(con, db_path, tiny_model_dir):
    fill_picks(con, n=12)
    set_id = create_reference_set(con)
    cfg = TrainConfig(base_model=str(tiny_model_dir), max_steps=3, **FAST)
    _, job_id = runs.start_training(con, db_path, cfg, set_id=set_id, name="mtl")
    progress = wait_job(con, job_id)
    assert progress["status"] == "done", progress
    stage, adapter = con.execute(
        "SELECT stage, adapter_path FROM models WHERE model_id = ?", [progress["model_id"]]
    ).fetchall()[0]
    assert stage == "mtl" and (Path(adapter) / "adapter_config.json").exists()


def test_resume_after_kill_9(con, db_path, tiny_model_dir):
    fill_picks(con, n=40)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(
        base_model=str(tiny_model_dir),
        num_train_epochs=2,
        per_device_train_batch_size=1,
        save_steps=5,
        learning_rate=1e-3,
    )
    run_id, job_id = runs.start_training(con, db_path, cfg, set_id=set_id, name="killed")
    work_dir = Path(
        con.execute("SELECT work_dir FROM jobs WHERE job_id=?", [job_id]).fetchall()[0][0]
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        p = jobs.read_json(work_dir / "progress.json")
        if p.get("status") == "running" and p.get("n_done", 0) >= 12:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"training never reached step 12: {jobs.read_json(work_dir / 'progress.json')}")
    os.kill(p["pid"], signal.SIGKILL)
    killed = wait_job(con, job_id)
    assert killed["status"] == "failed"
    assert any((work_dir / "checkpoints").glob("checkpoint-*"))
    assert not Path(_run_dir(con, run_id)).exists()  # no half-written output

    jobs.launch(con, job_id)
    done = wait_job(con, job_id)
    assert done["status"] == "done", done
    result = json.loads((work_dir / "result.json").read_text())
    resumed_step = int(result["resumed_from"].rsplit("-", 1)[1])
    assert resumed_step >= 10 and result["global_step"] == 80
    steps = [
        r[0]
        for r in con.execute(
            "SELECT step FROM training_metrics WHERE run_id = ? ORDER BY step", [run_id]
        ).fetchall()
    ]
    assert steps == list(range(1, 81))  # every step logged once, none lost or doubled
    assert (Path(_run_dir(con, run_id)) / "adapter" / "adapter_config.json").exists()


def test_cancel_stops_with_a_checkpoint_and_can_resume(con, db_path, tiny_model_dir):
    fill_picks(con, n=40)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(
        base_model=str(tiny_model_dir),
        num_train_epochs=3,
        per_device_train_batch_size=1,
        save_steps=1000,
    )
    _, job_id = runs.start_training(con, db_path, cfg, set_id=set_id, name="cancelled")
    work_dir = Path(
        con.execute("SELECT work_dir FROM jobs WHERE job_id=?", [job_id]).fetchall()[0][0]
    )
    deadline = time.monotonic() + 180
    while jobs.read_json(work_dir / "progress.json").get("n_done", 0) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    jobs.cancel(con, job_id)
    p = wait_job(con, job_id)
    assert p["status"] == "cancelled", p
    ckpts = list((work_dir / "checkpoints").glob("checkpoint-*"))
    assert len(ckpts) == 1 and (ckpts[0] / "trainer_state.json").exists()
    assert not (work_dir / "result.json").exists()
    jobs.launch(con, job_id)
    assert wait_job(con, job_id)["status"] == "done"


# --------------------------------------------------------------------------- bad input


def _failed(con, db_path, cfg, data=None, set_id=None) -> str:
    _, job_id = runs.start_training(con, db_path, cfg, data=data, set_id=set_id)
    p = wait_job(con, job_id)
    assert p["status"] == "failed", p
    row = con.execute("SELECT status, error FROM jobs WHERE job_id = ?", [job_id]).fetchall()[0]
    assert row[0] == "failed"
    return row[1]


def test_empty_curated_set_fails_the_job(con, db_path, tiny_model_dir):
    empty = pa.table({"prompt": pa.array([], pa.string()), "completion": pa.array([], pa.string())})
    err = _failed(con, db_path, TrainConfig(base_model=str(tiny_model_dir)), data=empty)
    assert "curated set is empty" in err


def test_adapter_that_does_not_fit_the_base_fails(trained, con, db_path, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tiny = trained["cfg"].base_model
    other = tmp_path / "wider"
    config = AutoConfig.from_pretrained(tiny)
    config.hidden_size, config.intermediate_size = 48, 96
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(other)
    run = json.loads((Path(_run_dir(trained["con"], trained["run_id"])) / "run.json").read_text())
    cfg = TrainConfig(base_model=str(other), adapter_path=run["outputs"]["adapter"])
    fill_picks(con, n=4)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    err = _failed(con, db_path, cfg, set_id=set_id)
    assert "does not fit the base model" in err and "adapter_path" in err


def test_unwritable_output_and_full_disk_fail_clearly(con, db_path, tiny_model_dir):
    fill_picks(con, n=4)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    cfg = TrainConfig(base_model=str(tiny_model_dir), output_dir="/sys/reset-studio-test/out")
    assert "cannot write" in _failed(con, db_path, cfg, set_id=set_id)
    huge = TrainConfig(base_model=str(tiny_model_dir), min_free_disk_mb=10**12)
    assert "MB free" in _failed(con, db_path, huge, set_id=set_id)
    with pytest.raises(TrainingError, match="MB free"):
        preflight_output(Path(db_path).parent / "x", huge)


def test_nan_loss_fails_the_job(con, db_path, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    broken = tmp_path / "nan-model"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(broken)
    fill_picks(con, n=4)
    set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    err = _failed(con, db_path, TrainConfig(base_model=str(broken)), set_id=set_id)
    assert "loss became nan" in err


def test_earlier_outputs_are_never_overwritten(trained):
    con, db = trained["con"], trained["db"]
    out = Path(_run_dir(con, trained["run_id"]))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    cfg = trained["cfg"].model_copy(update={"output_dir": str(out)})
    with pytest.raises(ValueError, match="already exists"):
        runs.start_training(con, db, cfg, set_id=trained["set_id"])
    with pytest.raises(TrainingError, match="never overwritten"):
        preflight_output(out, cfg)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
