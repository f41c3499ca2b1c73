"""Sampling from any OpenAI-compatible server (``vllm serve``, TGI, Ollama, OpenAI) via ``openai``.

Requests run concurrently on ``AsyncOpenAI`` under a semaphore (``ModelSpec.concurrency``);
the client's own retries (with backoff, honouring ``Retry-After``) handle 429/5xx.
One request per (example, setting) asks for ``n`` samples; a server that ignores
``n`` (returns fewer choices) is detected and the missing samples are asked for one
by one, each with its own seed.

``top_k`` is not an OpenAI parameter; it is sent in the body as vLLM and TGI accept
it, and only when restricted (``top_k != -1``).

Seeds: the ``n`` samples of one request share ``setting.request_seed(example_id)``;
a sample asked for alone gets ``setting.candidate_seed(example_id, index)``. Each
candidate records the one it was made with. Servers treat seeds as best effort.

A request that still fails after retries does not lose the others:
:class:`PartialGeneration` carries the finished results and the errors.

Built like every backend:
``OpenAIGenerator(ModelSpec(engine="openai", model=..., base_url="http://127.0.0.1:8000/v1"))``.
"""

from __future__ import annotations

import asyncio
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


class PartialGeneration(RuntimeError):
    """Some requests failed: ``results`` holds those that finished, ``errors`` the failures."""

    def __init__(self, results: list[GenerationResult], errors: list[str]):
        self.results, self.errors = results, errors
        super().__init__(f"{len(errors)} request(s) failed; first: {errors[0]}")


def check_endpoint(spec: ModelSpec) -> None:
    """Refuse a key variable or endpoint the deployment does not allow, naming the field.

    Called at launch and again here, before any request: a spec may come from the
    database, a job folder or the CLI. Raises
    :class:`~reset_core.deployment.SecretNotAllowed`.
    """
    from reset_core.deployment import Deployment

    deployment = Deployment.current()
    deployment.check_key_env(spec.api_key_env, field="api_key_env")
    deployment.check_base_url(spec.base_url, field="base_url")


def _api_key(spec: ModelSpec) -> str:
    """The key to send (environment, else the app's secrets), once the spec is allowed."""
    from reset_core.deployment import key_value

    check_endpoint(spec)
    # Local servers accept any key; the client insists on a non-empty one.
    return key_value(spec.api_key_env) or "not-needed"


def _redacted(spec: ModelSpec, text: str) -> str:
    """An error's text without the key: a server or proxy may echo the request's headers."""
    from reset_core.deployment import key_value, redact

    return redact(text, [key_value(spec.api_key_env)])


def list_served_models(spec: ModelSpec, timeout_s: float = 5.0) -> list[str]:
    """The model ids the endpoint serves; raises ModelLoadError when it cannot be reached."""
    import openai

    if not spec.base_url:
        raise ModelLoadError("the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)")
    client = openai.OpenAI(
        base_url=spec.base_url, api_key=_api_key(spec), timeout=timeout_s, max_retries=0
    )
    try:
        return [m.id for m in client.models.list()]
    except openai.APIConnectionError as e:
        raise ModelLoadError(
            _redacted(spec, f"endpoint {spec.base_url} is unreachable: {e}")
        ) from None  # the cause would carry the request, headers and all
    except openai.APIStatusError as e:
        raise ModelLoadError(
            _redacted(
                spec,
                f"endpoint {spec.base_url} answered HTTP {e.status_code} to GET /models: "
                f"{e.message}",
            )
        ) from None
    finally:
        client.close()


class OpenAIGenerator:
    """The OpenAI-compatible backend: async, a concurrency limit, chat or completions, ``n``."""

    engine = "openai"

    def __init__(self, spec: ModelSpec, status: Status | None = None):
        if not spec.base_url:
            raise ModelLoadError("the openai engine needs base_url")
        check_endpoint(spec)  # before the first request, in the worker too
        self.spec = spec
        self.n_supported: bool | None = None  # learnt from the first answers

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Progress | None = None
    ) -> list[GenerationResult]:
        if not requests:
            return []
        return asyncio.run(self._generate(requests, progress))

    async def _generate(
        self, requests: Sequence[GenerationRequest], progress: Progress | None = None
    ) -> list[GenerationResult]:
        import openai

        sem = asyncio.Semaphore(self.spec.concurrency)
        answered = 0

        async def counted(client, req: GenerationRequest) -> list[GenerationResult]:
            nonlocal answered
            try:
                return await self._one(client, sem, req)
            finally:  # a failed request is over too: progress counts requests settled
                answered += len(req.sample_indices)
                if progress is not None:
                    progress(answered, None)

        async with openai.AsyncOpenAI(
            base_url=self.spec.base_url,
            api_key=_api_key(self.spec),
            timeout=self.spec.request_timeout_s,
            max_retries=4,
        ) as client:
            outcomes = await asyncio.gather(
                *(counted(client, r) for r in requests), return_exceptions=True
            )
        results: list[GenerationResult] = []
        errors: list[str] = []
        for req, got in zip(requests, outcomes, strict=True):
            if isinstance(got, BaseException):
                errors.append(
                    _redacted(
                        self.spec,
                        f"{req.example_id}/{req.setting.setting_id}: {type(got).__name__}: {got}",
                    )
                )
            else:
                results += got
        if errors:
            raise PartialGeneration(results, errors)
        return results

    async def _call(self, client, sem, req: GenerationRequest, n: int, seed: int):
        s = req.setting
        kwargs = dict(
            model=self.spec.model,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=seed,
            n=n,
        )
        if s.top_k != -1:
            kwargs["extra_body"] = {"top_k": s.top_k}
        async with sem:
            t0 = time.perf_counter()
            if self.spec.api == "chat":
                resp = await client.chat.completions.create(messages=req.messages, **kwargs)
                texts = [(c.index, c.message.content or "", c.finish_reason) for c in resp.choices]
            else:
                prompt = "\n\n".join(m["content"] for m in req.messages)
                resp = await client.completions.create(prompt=prompt, **kwargs)
                texts = [(c.index, c.text, c.finish_reason) for c in resp.choices]
            latency_ms = (time.perf_counter() - t0) * 1000
        usage = resp.usage
        return texts, usage, latency_ms

    def _result(self, req, index, seed, text, finish, usage, latency_ms, n) -> GenerationResult:
        return GenerationResult(
            example_id=req.example_id,
            setting_id=req.setting.setting_id,
            sample_index=index,
            seed=seed,
            text=text,
            finish_reason=finish,
            prompt_tokens=usage.prompt_tokens if usage else None,
            # usage sums all n choices; per candidate it is only known when n == 1.
            completion_tokens=usage.completion_tokens if usage and n == 1 else None,
            latency_ms=latency_ms,
        )

    async def _one(self, client, sem, req: GenerationRequest) -> list[GenerationResult]:
        wanted = sorted(req.sample_indices)
        out: dict[int, GenerationResult] = {}
        n = wanted[-1] + 1
        if n > 1 and self.n_supported is not False:
            seed = req.setting.request_seed(req.example_id)
            texts, usage, ms = await self._call(client, sem, req, n, seed)
            if len(texts) < n:
                self.n_supported = False  # the server ignores n: ask one by one from now on
            else:
                self.n_supported = True
            for index, text, finish in texts:
                if index in wanted:
                    out[index] = self._result(req, index, seed, text, finish, usage, ms, n)
        for i in wanted:
            if i in out:
                continue
            seed = req.setting.candidate_seed(req.example_id, i)
            texts, usage, ms = await self._call(client, sem, req, 1, seed)
            _, text, finish = texts[0]
            out[i] = self._result(req, i, seed, text, finish, usage, ms, 1)
        return [out[i] for i in wanted]

    def close(self) -> None:
        pass
