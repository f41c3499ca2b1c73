"""Build the model and TRL's ``SFTTrainer`` for one run, and load what a run produced.

Kept separate from the worker so that the benchmark and tests can see exactly which
TRL settings a :class:`~reset_core.training.config.TrainConfig` turns into.

torch, transformers, peft and trl are imported inside the functions.

>>> from reset_core.training.config import TrainConfig
>>> sft_kwargs(TrainConfig(base_model="m"), "/tmp/ckpt")["num_train_epochs"]
1.0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reset_core.training.config import TrainConfig


class TrainingError(RuntimeError):
    """A run cannot go on; the message says what is wrong and what to change."""


def sft_kwargs(cfg: TrainConfig, checkpoint_dir: str | Path) -> dict[str, Any]:
    """The ``SFTConfig`` arguments a config stands for (plain values, no torch needed)."""
    return {
        "output_dir": str(checkpoint_dir),
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "max_length": cfg.max_length,
        "completion_only_loss": cfg.completion_only_loss,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "activation_checkpointing": cfg.activation_checkpointing,
        # A NaN loss must show in the logs (and fail the run), not be averaged away.
        "logging_nan_inf_filter": False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def _precision(cfg: TrainConfig) -> dict[str, bool]:
    import torch

    mode = cfg.precision
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": mode == "bf16", "fp16": mode == "fp16"}


def _distributed(cfg: TrainConfig) -> dict[str, bool]:
    """Settings of one rank of an ``accelerate launch`` run (see ``training.distributed``)."""
    from reset_core.training.distributed import uses_accelerate

    if not uses_accelerate(cfg):
        return {}
    import torch

    return {
        # Without GPUs the ranks are CPU processes over gloo: the trainer must be told,
        # or each rank would train alone on the whole set.
        "use_cpu": not torch.cuda.is_available(),
        # Every LoRA weight gets a gradient each step: no search for unused parameters.
        "ddp_find_unused_parameters": False,
    }


def sft_config(cfg: TrainConfig, checkpoint_dir: str | Path):
    """TRL's ``SFTConfig`` for a run."""
    from trl import SFTConfig

    return SFTConfig(**sft_kwargs(cfg, checkpoint_dir), **_precision(cfg), **_distributed(cfg))


def lora_config(cfg: TrainConfig):
    """The peft ``LoraConfig`` for a fresh adapter."""
    from peft import LoraConfig

    targets: str | list[str] = cfg.target_modules.strip()
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(path: str):
    """The starting model, with an error that names the path when it cannot load."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise TrainingError(f"base_model: cannot load {path!r}: {e}") from e


def attach_adapter(model, adapter_path: str, trainable: bool = True):
    """Load an existing LoRA adapter onto ``model``; a clear error when it does not fit."""
    from peft import PeftModel

    if not (Path(adapter_path) / "adapter_config.json").exists():
        raise TrainingError(
            f"adapter_path: {adapter_path!r} is not a LoRA adapter folder (no adapter_config.json)"
        )
    try:
        return PeftModel.from_pretrained(model, adapter_path, is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as e:
        declared = json.loads((Path(adapter_path) / "adapter_config.json").read_text()).get(
            "base_model_name_or_path"
        )
        first = str(e).strip().splitlines()[0][:400]
        raise TrainingError(
            f"adapter_path: the adapter at {adapter_path!r} does not fit the base model "
            f"{model.config.name_or_path!r} (it was trained on {declared!r}): {first}"
        ) from e


def build_trainer(cfg: TrainConfig, dataset, checkpoint_dir: str | Path, callbacks=()):
    """Model (fresh LoRA or continued adapter) + tokenizer + ``SFTTrainer``, ready to train."""
    from trl import SFTTrainer

    tokenizer = load_tokenizer(cfg.base_model)
    model = load_base(cfg.base_model)
    peft_config = None
    if cfg.adapter_path:
        model = attach_adapter(model, cfg.adapter_path, trainable=True)
    else:
        peft_config = lora_config(cfg)
    return SFTTrainer(
        model=model,
        args=sft_config(cfg, checkpoint_dir),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )


def load_trained(path: str, adapter_path: str | None = None):
    """A trained model for inference: ``path`` alone (merged), or base ``path`` + adapter.

    This is what sampling and evaluation call for a row of the ``models`` table
    (``path``, ``adapter_path``).
    """
    model = load_base(path)
    if adapter_path:
        model = attach_adapter(model, adapter_path, trainable=False)
    model.eval()
    return model, load_tokenizer(path)
