"""What a sampling run is configured by: the model (and how to run it) and which examples.

Both are validated value objects whose field descriptions are the help text of the
Sample page's widgets and of ``reset-studio sample``'s flags.

>>> spec = ModelSpec(engine="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:8000/v1")
>>> spec.model_id == ModelSpec(engine="openai", model="gpt-4o-mini",
...                            base_url="http://127.0.0.1:8000/v1/").model_id
True
>>> SampleSelection().splits
['seen']
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Engine = Literal["transformers", "vllm", "openai"]


class ModelSpec(BaseModel):
    """Which model makes the candidates, and how to run it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Engine = Field(
        "transformers",
        description="transformers (CPU or CUDA, in the worker), vllm (in-process, GPU, the [vllm] "
        "extra) or openai (any OpenAI-compatible server: vllm serve, TGI, Ollama, OpenAI).",
    )
    model: str = Field(
        description="Local folder or Hugging Face hub id (transformers, vllm), or the served "
        "model name (openai). Default: the round's policy (the newest MTL or RESET "
        "checkpoint; RESET samples one policy per round), else the embedded SmolLM2."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    adapter: str | None = Field(
        None,
        description="transformers: a LoRA adapter folder (e.g. from a Train run) applied on top "
        "of the model.",
    )
    name: str | None = Field(
        None, description="Display name; defaults to the model's folder or id."
    )
    base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (openai)."
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="Environment variable (or app secret) holding the API key (openai): one "
        "the deployment allows (OPENAI_API_KEY and RESET_STUDIO_* names unless "
        "$RESET_STUDIO_ALLOWED_KEY_ENVS says otherwise); local servers accept any key.",
    )
    api: Literal["chat", "completions"] = Field(
        "chat",
        description="openai: chat completions (the server applies the chat template) or plain "
        "completions of the prompt text.",
    )
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once (openai).")
    request_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Seconds before one request is abandoned (openai)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="transformers: where the model runs; auto = CUDA when available."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto = bfloat16 on CUDA, float32 on CPU."
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=4096,
        description="transformers: candidates per generate call (settings and examples mixed).",
    )
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vllm: GPUs per model.")

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        return Path(self.model).name if self.engine != "openai" else self.model

    @property
    def model_ref(self) -> str:
        """What identifies the weights: a resolved local folder, or the hub id / served name."""
        if self.engine != "openai" and Path(self.model).expanduser().exists():
            return str(Path(self.model).expanduser().resolve())
        return self.model

    @property
    def model_id(self) -> str:
        """Stable id of the weights (not of the engine running them) for the ``models`` table."""
        ident = [self.model_ref, self.revision or ""]
        if self.adapter:
            ident.append(str(Path(self.adapter).expanduser().resolve()))
        if self.engine == "openai":
            ident = [(self.base_url or "").rstrip("/"), self.model]
        digest = hashlib.blake2b(json.dumps(ident).encode(), digest_size=16).hexdigest()
        return "m:" + digest[:16]


class SampleSelection(BaseModel):
    """Which examples to sample: filters, then at most ``count`` of the matches."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[Literal["instruction", "context"]] = Field(
        default_factory=list, description="Example kinds to include; empty = all."
    )
    sources: list[str] = Field(
        default_factory=list, description="Sources (datasets) to include; empty = all."
    )
    splits: list[Literal["seen", "test_seen", "test_unseen"]] = Field(
        default_factory=lambda: ["seen"],
        description="Splits to include; RESET samples the 'seen' split.",
    )
    count: int = Field(
        10,
        ge=1,
        le=10_000_000,
        description="At most this many examples, 1 to 10,000,000. The default is a first "
        "run of about a minute on a CPU; raise it for real data.",
    )
    seed: int = Field(
        0,
        ge=0,
        description="Which examples when more match than count: a fixed shuffle by this seed.",
    )
