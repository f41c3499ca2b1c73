"""A trained LoRA adapter is sampleable: the transformers backend applies it, ids stay one."""

import pytest
import torch

from reset_core.sampling import GENERATORS
from reset_core.sampling.base import GenerationRequest, build_messages
from reset_core.sampling.config import ModelSpec
from reset_core.sampling.launch import SamplingRejected, check_model
from reset_core.sampling.settings import DecodingSetting
from reset_core.training.launch import model_id_for


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        ),
    )
    with torch.no_grad():  # a visibly different model, as training would make
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p) * 2.0)
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    return out


def _texts(spec):
    gen = GENERATORS["transformers"](spec)
    setting = DecodingSetting(temperature=0.0, max_tokens=8, n=1)
    reqs = [
        GenerationRequest(f"e{i}", build_messages(q, None), setting, (0,))
        for i, q in enumerate(["Name a planet.", "Explain the sky."])
    ]
    try:
        return sorted((r.example_id, r.text) for r in gen.generate(reqs))
    finally:
        gen.close()


def test_adapter_changes_generation_and_model_id(tiny_model_dir, adapter_dir):
    base = ModelSpec(engine="transformers", model=str(tiny_model_dir))
    tuned = ModelSpec(engine="transformers", model=str(tiny_model_dir), adapter=str(adapter_dir))
    check_model(tuned)
    assert _texts(base) != _texts(tuned)
    assert base.model_id != tuned.model_id
    # Training registers its outputs under the id sampling computes for the same weights.
    assert model_id_for(str(tiny_model_dir), str(adapter_dir)) == tuned.model_id
    assert model_id_for(str(tiny_model_dir)) == base.model_id


def test_bad_adapter_is_rejected_before_launch(tiny_model_dir, tmp_path):
    spec = ModelSpec(engine="transformers", model=str(tiny_model_dir), adapter=str(tmp_path))
    with pytest.raises(SamplingRejected, match="no adapter_config.json"):
        check_model(spec)
    spec = ModelSpec(
        engine="openai", model="x", base_url="http://127.0.0.1:1/v1", adapter=str(tmp_path)
    )
    with pytest.raises(SamplingRejected, match="only the transformers engine"):
        check_model(spec)
