import pytest

from reset_core import models
from reset_core.models import ModelUnavailable, build_tiny_llama, default_model_path


def test_tiny_llama_builds_offline_and_generates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny_llama(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert tok.padding_side == "left"
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Name a planet."}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    batch = tok([prompt, "short"], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=5, do_sample=True)
    assert out.shape[0] == 2
    assert batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 5


def test_tiny_llama_is_deterministic_for_a_seed(tmp_path):
    m1, _ = build_tiny_llama(seed=3)
    m2, _ = build_tiny_llama(seed=3)
    assert all((a == b).all() for a, b in zip(m1.parameters(), m2.parameters(), strict=True))


def test_default_model_path_is_the_prepared_folder_or_says_how_to_prepare_it(tmp_path, monkeypatch):
    assert models.DEFAULT_MODEL_DIR.parts[-3:] == ("data", "models", "smollm2-135m-instruct")
    folder = tmp_path / "smollm2-135m-instruct"
    monkeypatch.setattr(models, "DEFAULT_MODEL_DIR", folder)
    with pytest.raises(ModelUnavailable, match="make model"):
        default_model_path()
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert default_model_path() == folder


@pytest.mark.slow
def test_embedded_default_model_answers_offline():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    batch = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
