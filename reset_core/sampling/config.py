"""What a sampling run is configured by: the model (and how to run it) and which examples.

Both are validated value objects whose field descriptions are the help text of the
Sample page's widgets and of ``reset-studio sample``'s flags.

>>> spec = ModelSpec(engine="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:8000/v1")
>>> spec.model_id == ModelSpec(engine="openai", model="gpt-4o-mini",
...                            base_url="http://127.0.0.1:8000/v1/").model_id
True
>>> fleet = spec.model_copy(update={"base_urls": ["http://127.0.0.1:8001/v1"]})
>>> fleet.model_id == spec.model_id
True
>>> SampleSelection().splits
['seen']
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    base_urls: list[str] = Field(
        default_factory=list,
        description="openai: more endpoints serving the same model beside base_url (a vllm "
        "serve fleet), as a comma list. Requests go to the endpoint with the fewest in "
        "flight; one that refuses connections, times out or answers 5xx twice in a row "
        "rests for endpoint_cooloff_s while the others take its requests. base_url names "
        "the model: adding, removing or reordering these replicas keeps its candidates.",
    )
    endpoint_cooloff_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="openai with base_urls: seconds a failing endpoint rests before it is "
        "tried again.",
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
    concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description="Requests in flight at once (openai), in all: a fleet shares them, so "
        "raise it with the number of base_urls.",
    )
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
    data_parallel_size: int = Field(
        1,
        ge=1,
        le=64,
        description="vllm: GPUs are split into DP replicas of TP GPUs each "
        "(data_parallel_size x tensor_parallel_size GPUs in all): one engine process per "
        "replica, on its own CUDA_VISIBLE_DEVICES slice, samples its share of the examples.",
    )

    @field_validator("base_urls", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        # The page's text field and a TOML string give "a, b"; the CLI gives a list.
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @model_validator(mode="after")
    def _replicas_need_base_url(self) -> ModelSpec:
        if self.base_urls and not self.base_url:
            raise ValueError(
                "base_urls: give base_url too: it names the model, the replicas only serve it"
            )
        return self

    @property
    def endpoints(self) -> list[str]:
        """Every endpoint requests may go to: base_url first, then the replicas, once each.

        >>> ModelSpec(engine="openai", model="m", base_url="http://a/v1",
        ...           base_urls=["http://b/v1/", "http://a/v1"]).endpoints
        ['http://a/v1', 'http://b/v1']
        """
        out: list[str] = []
        for url in [self.base_url, *self.base_urls]:
            if url and url.rstrip("/") not in out:
                out.append(url.rstrip("/"))
        return out

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
            # base_url names the weights; base_urls are replicas of them, so a fleet's
            # size and order leave the id (and the candidates stored under it) alone.
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
