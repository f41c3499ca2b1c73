"""A stand-in for the ``vllm`` package: exactly the API surface RESET Studio uses, nothing more.

vLLM needs a supported GPU, so tests put this folder first on ``sys.path``. It runs
the real model through transformers (one seeded ``generate`` per request), checks
its arguments the way vLLM does, and counts ``LLM.generate`` calls so tests can hold
the backend to "one call per batch". Anything outside the surface below raises
``AttributeError``/``TypeError``, as a renamed or unused vLLM API would.

Surface: ``LLM(model=, revision=, tensor_parallel_size=, dtype=, seed=)``,
``LLM.get_tokenizer()``, ``LLM.generate(prompts, sampling_params, use_tqdm=)``,
``SamplingParams(n=, temperature=, top_k=, top_p=, max_tokens=, seed=)``,
``RequestOutput.prompt_token_ids/.outputs``, ``CompletionOutput.index/.text/.token_ids/.finish_reason``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

GENERATE_CALLS: list[int] = []  # number of prompts of each LLM.generate call

#: Tests set this to make the N-th generate call (1-based) die like a crashed engine.
CRASH_ENV = "VLLM_STANDIN_CRASH_AT_CALL"
#: Tests set this to a file: every generate call appends one JSON line (pid, the
#: process's CUDA_VISIBLE_DEVICES, tensor_parallel_size, its prompts), so a test can see
#: which engine process (a data-parallel rank) got what.
LOG_ENV = "VLLM_STANDIN_LOG"


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.top_k < -1 or self.top_k == 0:
            raise ValueError(f"top_k must be -1 (disable), or at least 1, got {self.top_k}.")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.seed is not None and not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed)}")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


class LLM:
    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int = 0,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if tensor_parallel_size != 1:
            raise ValueError("the stand-in runs on one device")
        self._tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        self._model = AutoModelForCausalLM.from_pretrained(model, revision=revision).eval()
        self._eos = self._model.generation_config.eos_token_id
        self._tp = tensor_parallel_size

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling_params, *, use_tqdm: bool = True):
        import torch

        if isinstance(prompts, str):
            prompts = [prompts]
        if isinstance(sampling_params, SamplingParams):
            sampling_params = [sampling_params] * len(prompts)
        if len(sampling_params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        GENERATE_CALLS.append(len(prompts))
        if log := os.environ.get(LOG_ENV):
            import json

            with open(log, "a") as f:
                entry = {
                    "pid": os.getpid(),
                    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "tensor_parallel_size": self._tp,
                    "prompts": list(prompts),
                }
                f.write(json.dumps(entry) + "\n")
        if os.environ.get(CRASH_ENV) == str(len(GENERATE_CALLS)):
            raise RuntimeError("EngineDeadError: the engine core process died unexpectedly")
        outs = []
        for r, (prompt, sp) in enumerate(zip(prompts, sampling_params, strict=True)):
            if not isinstance(prompt, str) or not isinstance(sp, SamplingParams):
                raise TypeError("prompts must be str and sampling_params SamplingParams")
            ids = self._tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
            g = torch.Generator().manual_seed(sp.seed if sp.seed is not None else r)
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
            with torch.inference_mode():
                seqs = self._model.generate(
                    **ids,
                    do_sample=sp.temperature > 0,
                    temperature=sp.temperature if sp.temperature > 0 else None,
                    top_k=sp.top_k if sp.top_k > 0 else None,
                    top_p=sp.top_p,
                    max_new_tokens=sp.max_tokens,
                    num_return_sequences=sp.n,
                    pad_token_id=self._tokenizer.pad_token_id,
                )
            plen = ids["input_ids"].shape[1]
            completions = []
            for i, row in enumerate(seqs[:, plen:].tolist()):
                stop = next((j for j, t in enumerate(row) if t == self._eos), None)
                toks = row if stop is None else row[: stop + 1]
                completions.append(
                    CompletionOutput(
                        index=i,
                        text=self._tokenizer.decode(toks, skip_special_tokens=True),
                        token_ids=toks,
                        finish_reason="length" if stop is None else "stop",
                    )
                )
            outs.append(RequestOutput(str(r), prompt, ids["input_ids"][0].tolist(), completions))
        return outs
