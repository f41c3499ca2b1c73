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

A fleet (``base_urls`` beside ``base_url``: replicas of one model, e.g. several
``vllm serve``): each request goes to the endpoint with the fewest requests in flight
(ties: the one sent the fewest so far, so an idle fleet is used round robin). There
the client does not retry: a refused connection, a timeout or a 5xx sends the request
to another endpoint at once, and an endpoint that fails :data:`FAILS_BEFORE_REST`
times in a row rests for ``endpoint_cooloff_s`` (then gets one request to prove
itself). A 429 rests that endpoint for its ``Retry-After`` without counting against
it. When every endpoint rests after failures, the request fails with
:class:`EndpointsDown`, which names each endpoint and what it answered last.
:attr:`OpenAIGenerator.endpoint_counts` tells how the requests were spread.

Built like every backend:
``OpenAIGenerator(ModelSpec(engine="openai", model=..., base_url="http://127.0.0.1:8000/v1"))``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


#: Failures in a row (refused, timed out, 5xx) after which a fleet's endpoint rests.
#: Two, not one: a single 5xx is often one bad request, not a dead server.
FAILS_BEFORE_REST = 2
#: Longest a 429's Retry-After rests an endpoint; a missing header counts as 1 s.
MAX_RETRY_AFTER_S = 60.0
#: A request rate-limited this many times by a fleet gives up (its error says so).
MAX_RATE_LIMITED = 8


class EndpointsDown(RuntimeError):
    """Every endpoint of a fleet is resting after failures; the message names each."""


@dataclass
class _Endpoint:
    """One endpoint's health and counts; lives as long as the generator (every batch)."""

    url: str
    client: Any = None  # an AsyncOpenAI for the running generate call
    in_flight: int = 0
    sent: int = 0
    answered: int = 0
    failed: int = 0
    streak: int = 0  # failures in a row; an answer resets it
    resting_until: float = 0.0  # monotonic time before which it gets no request
    down: bool = False  # resting because of failures (not a 429)
    last_error: str | None = None

    def short(self) -> str:
        return self.url.split("://", 1)[-1].removesuffix("/v1")


def _describe(e: BaseException, timeout_s: float) -> str:
    """What an endpoint answered, in a few words, for errors and the progress line."""
    import openai

    if isinstance(e, openai.APITimeoutError):
        return f"timed out after {timeout_s:g} s"
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e.__context__
        return f"connection failed ({type(cause).__name__ if cause else 'no answer'})"
    if isinstance(e, openai.APIStatusError):
        return f"HTTP {e.status_code}: {e.message}"[:200]
    return f"{type(e).__name__}: {e}"[:200]


def _retry_after(e: BaseException) -> float:
    try:
        value = float(e.response.headers.get("retry-after", 1.0))  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        value = 1.0
    return min(max(value, 0.0), MAX_RETRY_AFTER_S)


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
    for i, url in enumerate(spec.base_urls):  # every replica gets the same key
        deployment.check_base_url(url, field=f"base_urls[{i}]")


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


def list_served_models(
    spec: ModelSpec, timeout_s: float = 5.0, base_url: str | None = None
) -> list[str]:
    """The model ids an endpoint serves (``base_url``, default the spec's); raises
    ModelLoadError when it cannot be reached."""
    import openai

    url = base_url or spec.base_url
    if not url:
        raise ModelLoadError("the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)")
    client = openai.OpenAI(base_url=url, api_key=_api_key(spec), timeout=timeout_s, max_retries=0)
    try:
        return [m.id for m in client.models.list()]
    except openai.APIConnectionError as e:
        raise ModelLoadError(
            _redacted(spec, f"endpoint {url} is unreachable: {e}")
        ) from None  # the cause would carry the request, headers and all
    except openai.APIStatusError as e:
        raise ModelLoadError(
            _redacted(
                spec,
                f"endpoint {url} answered HTTP {e.status_code} to GET /models: {e.message}",
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
        self._endpoints = [_Endpoint(url) for url in spec.endpoints]

    @property
    def endpoint_counts(self) -> dict[str, dict[str, int]]:
        """Per endpoint: requests ``answered`` and ``failed`` so far (every batch).

        >>> gen = OpenAIGenerator(ModelSpec(engine="openai", model="m",
        ...     base_url="http://127.0.0.1:8000/v1", base_urls=["http://127.0.0.1:8001/v1"]))
        >>> gen.endpoint_counts["http://127.0.0.1:8001/v1"]
        {'answered': 0, 'failed': 0}
        """
        return {e.url: {"answered": e.answered, "failed": e.failed} for e in self._endpoints}

    def _fleet_note(self) -> str | None:
        """A short line on the spread, for the progress detail (fleets only)."""
        if len(self._endpoints) < 2:
            return None
        now = time.monotonic()
        return " · ".join(
            f"{e.short()} {e.answered}" + (" (resting)" if e.resting_until > now else "")
            for e in self._endpoints
        )

    def _pick(self, avoid: _Endpoint | None) -> _Endpoint | float:
        """The endpoint for the next try, or the seconds to wait until one is back.

        Raises :class:`EndpointsDown` when every endpoint rests after failures.
        """
        now = time.monotonic()
        # Back from a rest, an endpoint that failed gets one request to prove itself,
        # not a burst (against a hung server each would wait request_timeout_s).
        ready = [
            e for e in self._endpoints if e.resting_until <= now and not (e.down and e.in_flight)
        ]
        if not ready:
            if all(e.down and e.resting_until > now for e in self._endpoints):
                raise EndpointsDown(
                    f"all {len(self._endpoints)} endpoints failed: "
                    + "; ".join(f"{e.url}: {e.last_error}" for e in self._endpoints)
                )
            # Rate-limited, or a probe in flight: wait for the first to be ready.
            return max(min(e.resting_until for e in self._endpoints) - now, 0.05)
        # Not straight back to the endpoint that just failed, when another is ready.
        others = [e for e in ready if e is not avoid] or ready
        return min(others, key=lambda e: (e.in_flight, e.sent))

    def _failed(self, ep: _Endpoint, what: str) -> None:
        ep.failed += 1
        ep.streak += 1
        ep.last_error = what
        if ep.streak >= FAILS_BEFORE_REST:
            ep.down = True
            ep.resting_until = time.monotonic() + self.spec.endpoint_cooloff_s

    async def _send(self, create) -> Any:
        """``await create(client)`` on one endpoint, failing over across a fleet."""
        import openai

        if len(self._endpoints) == 1:  # nowhere to fail over to: the client's retries
            ep = self._endpoints[0]
            ep.sent += 1
            try:
                resp = await create(ep.client)
            except Exception:
                ep.failed += 1
                raise
            ep.answered += 1
            return resp
        failures, limited, last = 0, 0, None
        while True:
            ep = self._pick(last)
            if isinstance(ep, float):  # every endpoint rate-limited: wait for the first
                await asyncio.sleep(max(ep, 0.01))
                continue
            ep.in_flight += 1
            ep.sent += 1
            try:
                resp = await create(ep.client)
            except openai.RateLimitError as e:
                ep.last_error = _describe(e, self.spec.request_timeout_s)
                ep.resting_until = time.monotonic() + _retry_after(e)
                limited += 1
                if limited >= MAX_RATE_LIMITED:
                    raise RuntimeError(
                        f"rate-limited {limited} times across the fleet; last: "
                        f"{ep.url}: {ep.last_error}"
                    ) from None
                continue
            except (openai.APIConnectionError, openai.InternalServerError) as e:
                # Refused, reset, timed out or 5xx: the endpoint's trouble, not the
                # request's; another endpoint gets it. 4xx errors are the request's own
                # and fail it wherever it is sent, so they are not caught here.
                self._failed(ep, _describe(e, self.spec.request_timeout_s))
                failures += 1
                last = ep
                # Enough tries for every endpoint to rest if all are down (then _pick
                # names them all); more means this request fails where others succeed.
                if failures > FAILS_BEFORE_REST * len(self._endpoints):
                    raise RuntimeError(
                        f"failed on {failures} tries across the fleet while other requests "
                        "were answered; last errors: "
                        + "; ".join(f"{e.url}: {e.last_error}" for e in self._endpoints)
                    ) from None
                continue
            finally:
                ep.in_flight -= 1
            ep.answered += 1
            ep.streak, ep.down = 0, False
            return resp

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

        async def counted(req: GenerationRequest) -> list[GenerationResult]:
            nonlocal answered
            try:
                return await self._one(sem, req)
            finally:  # a failed request is over too: progress counts requests settled
                answered += len(req.sample_indices)
                if progress is not None:
                    progress(answered, self._fleet_note())

        key = _api_key(self.spec)
        # One endpoint keeps the client's own retries (backoff, Retry-After); a fleet's
        # clients do not retry, so a dead endpoint's requests move on at once.
        retries = 4 if len(self._endpoints) == 1 else 0
        for ep in self._endpoints:
            ep.client = openai.AsyncOpenAI(
                base_url=ep.url,
                api_key=key,
                timeout=self.spec.request_timeout_s,
                max_retries=retries,
            )
        try:
            outcomes = await asyncio.gather(*(counted(r) for r in requests), return_exceptions=True)
        finally:
            for ep in self._endpoints:
                if ep.client is not None:
                    await ep.client.close()
                ep.client = None
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

    async def _call(self, sem, req: GenerationRequest, n: int, seed: int):
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
                resp = await self._send(
                    lambda client: client.chat.completions.create(messages=req.messages, **kwargs)
                )
                texts = [(c.index, c.message.content or "", c.finish_reason) for c in resp.choices]
            else:
                prompt = "\n\n".join(m["content"] for m in req.messages)
                resp = await self._send(
                    lambda client: client.completions.create(prompt=prompt, **kwargs)
                )
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

    async def _one(self, sem, req: GenerationRequest) -> list[GenerationResult]:
        wanted = sorted(req.sample_indices)
        out: dict[int, GenerationResult] = {}
        n = wanted[-1] + 1
        if n > 1 and self.n_supported is not False:
            seed = req.setting.request_seed(req.example_id)
            texts, usage, ms = await self._call(sem, req, n, seed)
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
            texts, usage, ms = await self._call(sem, req, 1, seed)
            _, text, finish = texts[0]
            out[i] = self._result(req, i, seed, text, finish, usage, ms, 1)
        return [out[i] for i in wanted]

    def close(self) -> None:
        pass
