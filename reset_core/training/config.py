"""Training configuration: one pydantic model, help text on every field.

Defaults follow the RESET method: continue an already tuned checkpoint for one epoch
at a small learning rate, with a LoRA adapter and the loss on the completion only.
The MTL baseline uses the same config (typically with more epochs and from a base
model). The Train page builds its widgets from these fields and the CLI its flags
(``reset_core.options``), so a field's description is its help everywhere.

>>> cfg = TrainConfig(base_model="data/models/smollm2-135m-instruct")
>>> cfg.num_train_epochs, cfg.lora_r, cfg.completion_only_loss
(1.0, 16, True)
>>> TrainConfig(base_model="m", num_processes=8, distributed="ddp").num_processes
8
>>> TrainConfig(base_model="m", learning_rate=5.0)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for TrainConfig
learning_rate
  Input should be less than or equal to 0.1 ...
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class TrainConfig(BaseModel):
    """Hyperparameters and inputs of one LoRA training run."""

    base_model: str = Field(
        description="The model to start from: a local folder or a Hugging Face hub id. For RESET, "
        "the MTL checkpoint (a merged model), or the base model that the adapter below belongs to."
    )
    adapter_path: str | None = Field(
        None,
        description="Continue training this existing LoRA adapter (loaded on the base model with "
        "is_trainable=True) instead of starting a fresh one. Empty = new adapter.",
    )
    output_dir: str | None = Field(
        None,
        description="Where the adapter (and merged model) are written. Must not exist yet: "
        "earlier outputs are never overwritten. Empty = a new folder in trained/ beside the "
        "database.",
    )
    num_train_epochs: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Passes over the curated set. RESET continues for one epoch; the MTL "
        "baseline usually trains longer (e.g. 3).",
    )
    max_steps: int = Field(
        -1,
        ge=-1,
        description="Stop after this many optimizer steps (overrides epochs); -1 = train the "
        "full epochs. Use a few steps for a quick demo on CPU.",
    )
    learning_rate: float = Field(
        5e-5,
        gt=0,
        le=0.1,
        description="Peak learning rate (AdamW). Small by default: RESET continues a tuned "
        "checkpoint and should not move far from it.",
    )
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="How the learning rate changes after warm-up."
    )
    warmup_steps: float = Field(
        0.03,
        ge=0,
        description="Warm-up length: a value below 1 is a fraction of the total steps, 1 or "
        "more a number of steps.",
    )
    per_device_train_batch_size: int = Field(
        4, ge=1, le=1024, description="Examples per forward pass on each device."
    )
    gradient_accumulation_steps: int = Field(
        1,
        ge=1,
        le=1024,
        description="Forward passes per optimizer step; the effective batch is this times the "
        "batch size times num_processes.",
    )
    max_length: int = Field(
        1024,
        ge=16,
        le=131072,
        description="Longest tokenized example (prompt + completion); longer ones are truncated.",
    )
    completion_only_loss: bool = Field(
        True,
        description="Compute the loss on the answer only, not on the prompt (the method's "
        "default: the model learns to answer, not to repeat instructions).",
    )
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank: the adapter's capacity.")
    lora_alpha: int = Field(
        32, ge=1, le=4096, description="LoRA scaling; the update is scaled by alpha / r."
    )
    lora_dropout: float = Field(
        0.05, ge=0, lt=1, description="Dropout on the LoRA branch during training."
    )
    target_modules: str = Field(
        "all-linear",
        description="Layers that get an adapter: 'all-linear' or a comma-separated list of "
        "module names (e.g. q_proj,v_proj). Ignored when continuing an adapter.",
    )
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(
        1.0, gt=0, le=1000, description="Gradients are clipped to this norm."
    )
    seed: int = Field(42, ge=0, description="Seed for data order, dropout and adapter init.")
    logging_steps: int = Field(
        1, ge=1, description="Log loss, learning rate and tokens/s every this many steps."
    )
    save_steps: int = Field(
        50,
        ge=1,
        description="Save a checkpoint every this many steps; an interrupted run resumes from "
        "the last one.",
    )
    save_total_limit: int | None = Field(
        None,
        ge=1,
        description="Keep only this many most recent checkpoints. Empty = keep them all.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Training precision. auto = bf16 on a GPU that supports it, else fp32.",
    )
    activation_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass: less memory, about 20% slower.",
    )
    merge: bool = Field(
        False,
        description="Also write a merged full model (base + adapter) that any engine, vLLM "
        "included, loads without peft.",
    )
    min_free_disk_mb: int = Field(
        200,
        ge=0,
        description="Refuse to start when the output disk has less free space than this plus "
        "the estimated output size.",
    )
    num_processes: int = Field(
        1,
        ge=1,
        le=1024,
        description="Training processes on this machine, one per GPU. 1 = a single process. "
        "More runs the job under `accelerate launch` with the strategy in `distributed`; the "
        "global batch is per_device_train_batch_size x gradient_accumulation_steps x this, so "
        "divide one of those by it to keep the same steps and metrics as a 1-process run.",
    )
    distributed: Literal["none", "ddp", "deepspeed", "fsdp"] = Field(
        "none",
        description="How several processes share the training. none = one process. ddp = a "
        "full copy of the model on every GPU (LoRA on a model that fits one GPU; without GPUs, "
        "CPU processes over gloo). deepspeed = ZeRO-2: optimizer state and gradients sharded, "
        "the usual choice for LoRA on 7B-70B models whose bf16 weights fit one GPU (needs "
        "`pip install deepspeed`). fsdp = weights sharded too, for a model too big for one GPU. Each uses its accelerate config in "
        "reset_core/training/configs/.",
    )
    accelerate_config: str = Field(
        "",
        description="Your own accelerate config file (YAML) instead of the bundled one for "
        "`distributed`: copy one from reset_core/training/configs/ and edit it (offload, "
        "sharding). num_processes above always wins over the file's. Empty = the bundled one.",
    )

    @model_validator(mode="after")
    def _processes_need_a_strategy(self) -> TrainConfig:
        if self.num_processes > 1 and self.distributed == "none":
            raise ValueError(
                f"num_processes: {self.num_processes} processes need distributed = ddp, "
                "deepspeed or fsdp (none means one process)"
            )
        if self.accelerate_config and self.distributed == "none":
            raise ValueError(
                "accelerate_config: only used with distributed = ddp, deepspeed or fsdp"
            )
        return self
