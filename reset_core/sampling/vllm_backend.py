"""Sampling with vLLM in-process (the ``[vllm]`` extra, GPU only), imported lazily.

All requests of a batch go into ONE ``LLM.generate`` call with a matching list of
``SamplingParams``, one per (example, setting), each asking for ``n`` samples: vLLM
schedules them together and shares the prompt's KV cache across the ``n`` samples.

Seeds: a request's ``n`` samples come from one seeded stream
(``setting.request_seed(example_id)``); every candidate records that seed, and its
``sample_index`` (vLLM's output index) tells the samples apart.

API surface used (a stand-in in ``tests/vllm_standin`` implements exactly this):
``vllm.LLM(model=, revision=, tensor_parallel_size=, dtype=, seed=)``,
``LLM.get_tokenizer().apply_chat_template(messages, add_generation_prompt=True, tokenize=False)``,
``vllm.SamplingParams(n=, temperature=, top_k=, top_p=, max_tokens=, seed=)``,
``LLM.generate(prompts, sampling_params_list, use_tqdm=False)`` returning
``RequestOutput(prompt_token_ids, outputs=[CompletionOutput(index, text, token_ids, finish_reason)])``.

Built like every backend: ``VLLMGenerator(ModelSpec(engine="vllm", model=...))`` (GPU only).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from reset_core.sampling.base import (
    GenerationRequest,
    GenerationResult,
    ModelLoadError,
    Progress,
    Status,
)
from reset_core.sampling.config import ModelSpec


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ModelLoadError(
            "the vllm engine needs vLLM installed (pip install 'reset-studio[vllm]', on a "
            f"machine with a supported GPU): {e}"
        ) from e
    return vllm


class VLLMGenerator:
    """The vLLM backend: one ``LLM.generate`` call per batch with per-request ``SamplingParams``."""

    engine = "vllm"

    def __init__(self, spec: ModelSpec, status: Status | None = None):
        if status is not None:
            status("starting the vLLM engine")
        vllm = _import_vllm()
        self.spec = spec
        self._SamplingParams = vllm.SamplingParams
        try:
            self.llm = vllm.LLM(
                model=spec.model,
                revision=spec.revision,
                tensor_parallel_size=spec.tensor_parallel_size,
                dtype=spec.dtype,
                seed=0,
            )
        except Exception as e:  # noqa: BLE001 - engine start-up failures are load errors
            raise ModelLoadError(
                f"vLLM could not load model {spec.model!r}: {type(e).__name__}: {e}"
            ) from e
        self.tokenizer = self.llm.get_tokenizer()

    def _prompt(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        return "\n\n".join(m["content"] for m in messages)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress | None = None
    ) -> list[GenerationResult]:
        # ``progress`` hears only the end of the call: LLM.generate runs the whole batch
        # in one go (on a GPU, seconds for thousands of candidates).
        if not requests:
            return []
        prompts, params = [], []
        for req in requests:
            s = req.setting
            prompts.append(self._prompt(req.messages))
            # Ask for samples 0..max wanted so a sample index always means the same output
            # of the same seeded request, also when a resumed job wants only some of them.
            params.append(
                self._SamplingParams(
                    n=max(req.sample_indices) + 1,
                    temperature=s.temperature,
                    top_k=s.top_k,
                    top_p=s.top_p,
                    max_tokens=s.max_tokens,
                    seed=s.request_seed(req.example_id),
                )
            )
        t0 = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        latency_ms = (time.perf_counter() - t0) * 1000
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
        results = []
        for req, out in zip(requests, outputs, strict=True):
            by_index = {c.index: c for c in out.outputs}
            seed = req.setting.request_seed(req.example_id)
            for i in req.sample_indices:
                c = by_index[i]
                results.append(
                    GenerationResult(
                        example_id=req.example_id,
                        setting_id=req.setting.setting_id,
                        sample_index=i,
                        seed=seed,
                        text=c.text,
                        finish_reason=c.finish_reason,
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(c.token_ids),
                        latency_ms=latency_ms,
                    )
                )
        if progress is not None:
            progress(len(results), None)
        return results

    def close(self) -> None:
        self.llm = None
