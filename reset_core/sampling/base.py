"""The ``Generator`` protocol every sampling backend implements, and what it consumes and returns.

Batch-first, like vLLM's ``LLM.generate``: a generator takes a list of requests (one
per example and decoding setting, each asking for some sample indices) and returns
one result per candidate. How it batches is its own business; the contract test in
``tests/test_sampling_generators.py`` holds every implementation to the same rules.

>>> spec = ModelSpec(engine="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:8000/v1")
>>> spec.model_id == ModelSpec(engine="openai", model="gpt-4o-mini",
...                            base_url="http://127.0.0.1:8000/v1/").model_id
True
>>> build_messages("Who wrote Hamlet?", None)
[{'role': 'user', 'content': 'Who wrote Hamlet?'}]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from reset_core.sampling.settings import DecodingSetting

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
        "model name (openai)."
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
        description="Environment variable holding the API key (openai); local servers accept any.",
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


def build_messages(instruction: str, context: str | None) -> list[dict[str, str]]:
    """The chat prompt for one example: the instruction, then the context when it has one.

    >>> build_messages("Summarize.", "The sky is blue.")[0]["content"]
    'Summarize.\\n\\nContext:\\nThe sky is blue.'
    """
    content = instruction if not context else f"{instruction}\n\nContext:\n{context}"
    return [{"role": "user", "content": content}]


@dataclass(frozen=True)
class GenerationRequest:
    """One example under one setting; ``sample_indices`` are the samples still wanted."""

    example_id: str
    messages: list[dict[str, str]]
    setting: DecodingSetting
    sample_indices: tuple[int, ...]


@dataclass(frozen=True)
class GenerationResult:
    """One candidate. ``seed`` is the seed the engine was given for it (see each backend)."""

    example_id: str
    setting_id: str
    sample_index: int
    seed: int
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float


class ModelLoadError(RuntimeError):
    """The model could not be loaded or reached; the message names what and why."""


class Generator(Protocol):
    """A sampling backend. Construct with a :class:`ModelSpec`; ``close()`` frees it."""

    engine: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per requested sample index of every request, in any order."""
        ...

    def close(self) -> None: ...
