"""Exports: every form and format loads unchanged in TRL's SFTTrainer and trains a step."""

from __future__ import annotations

import json

import pytest
from training_data import fill_picks

from reset_core.curation import export
from reset_core.curation.config import CurationSpec
from reset_core.curation.sets import create_curated_set


@pytest.fixture
def set_id(con):
    fill_picks(con, n=6)
    return create_curated_set(con, CurationSpec(selection_id="sel-1"))


@pytest.mark.parametrize("fmt", export.TRAINING_FORMATS)
@pytest.mark.parametrize("form", export.FORMS)
def test_each_export_trains_in_trl_unchanged(con, set_id, tmp_path, tiny_model_dir, form, fmt):
    from datasets import load_dataset, load_from_disk
    from trl import SFTConfig, SFTTrainer

    out = export.export_set(con, set_id, tmp_path / "exports", form=form, fmt=fmt)
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["set_id"] == set_id and manifest["form"] == form and manifest["n_items"] == 6

    # Loaded the way a TRL user would, with no change to the columns.
    if fmt == "hf":
        ds = load_from_disk(str(out))
    else:
        ds = load_dataset(
            "json" if fmt == "jsonl" else "parquet", data_files=str(out), split="train"
        )
    assert ds.num_rows == 6
    first = ds[0]
    if form == "messages":
        assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    else:
        assert first["prompt"][0]["role"] == "user"
        assert first["completion"][0]["role"] == "assistant"

    trainer = SFTTrainer(
        model=str(tiny_model_dir),
        train_dataset=ds,
        args=SFTConfig(
            output_dir=str(tmp_path / "ckpt"),
            max_steps=2,
            per_device_train_batch_size=2,
            report_to="none",
            bf16=False,
            activation_checkpointing=False,
            disable_tqdm=True,
        ),
    )
    result = trainer.train()
    assert result.global_step == 2
    assert result.training_loss > 0
    if form == "prompt_completion":
        # TRL masks the prompt: only completion tokens carry the loss.
        batch = trainer.data_collator([trainer.train_dataset[0]])
        assert 0 < int((batch["labels"] != -100).sum()) < int(batch["attention_mask"].sum())


def test_export_never_overwrites(con, set_id, tmp_path):
    out = export.export_set(con, set_id, tmp_path / "a.jsonl", form="messages", fmt="jsonl")
    before = out.read_bytes()
    with pytest.raises(FileExistsError):
        export.export_set(con, set_id, out, form="prompt_completion", fmt="jsonl")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_form_and_format_are_named(con, set_id, tmp_path):
    with pytest.raises(ValueError, match="form"):
        export.export_set(con, set_id, tmp_path, form="text")
    with pytest.raises(ValueError, match="fmt"):
        export.export_set(con, set_id, tmp_path, fmt="xlsx")
    with pytest.raises(KeyError):
        export.export_set(con, "cs-none", tmp_path)
