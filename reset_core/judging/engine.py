"""The judging engine: the transport under the LLM judge.

What it adds around one chat-completion call:

- the ``openai`` client on its aiohttp transport (so its Azure, proxy and organization
  handling apply), with its own retries off;
- a per-endpoint concurrency limit (one semaphore per base URL, shared by every judge
  on that endpoint) and a per-endpoint rate limiter on requests and tokens per minute
  (:mod:`reset_core.judging.ratelimit`: configured, or learned from the provider's
  ``x-ratelimit-*`` headers), so judging runs at the provider's limit without a storm
  of 429s;
- retries with exponential backoff and jitter that honour ``Retry-After`` /
  ``retry-after-ms``, for 429, 5xx, timeouts and connection resets; after the last
  attempt the failure is returned as data (a status), never raised. A request the
  server refuses as invalid (400/422, or a 500 whose body is a validation error, as
  llama.cpp's server answers an unsupported ``response_format``) is not retried: the
  same bytes would be refused again, and the judge falls back to another output mode;
- a content-hash cache (:class:`JudgeCache`, SQLite beside the database, safe across
  processes): a verdict that parsed is stored under judge + rubric version + the exact
  request, so a rerun costs zero requests;
- a token and cost :class:`Ledger` with configurable prices and a budget cap: a
  request whose worst-case cost would pass the cap is not sent, and the run stops
  cleanly with what it has.

>>> ledger = Ledger(price_input_per_mtok=1.0, price_output_per_mtok=2.0)
>>> ledger.cost(1_000_000, 500_000)
2.0
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import os
import random
import re
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RETRYABLE = ("http_429", "http_5xx", "timeout", "connection_error")
#: The longest Retry-After honoured as given; a longer one (a misconfigured server) is
#: cut to this so a run cannot stall for hours on one header.
RETRY_AFTER_MAX_S = 300.0
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # what the openai client uses without one
#: How the local stand-in (devtools.openai_standin) says its verdicts are placeholders.
STANDIN_HEADER = "x-reset-standin"
STANDIN_FINGERPRINT = "reset-studio-standin"
#: A 5xx body that blames the request, not the server: llama.cpp's server (via
#: llama-cpp-python) answers an unsupported ``response_format`` with HTTP 500 and a
#: pydantic validation error; others say "invalid"/"not supported"/"unknown variant".
_INVALID_5XX = re.compile(
    r"validation error|invalid|not supported|unsupported|unknown variant|"
    r"extra (inputs|fields) (are )?not permitted|response_format|json_schema",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_base_url(url: str | None) -> str:
    """The identity of an OpenAI-compatible endpoint: scheme, host, port and path.

    Lowercase scheme and host, default ports dropped, no trailing slash, no query,
    and never credentials (a key in the URL is not part of who answered). No URL
    means the OpenAI API, as the openai client does.

    >>> normalise_base_url("HTTP://LocalHost:80/v1/")
    'http://localhost/v1'
    >>> normalise_base_url("https://user:sk-secret@API.example.com:443/v1?x=1")
    'https://api.example.com/v1'
    >>> normalise_base_url("http://127.0.0.1:8080/v1"), normalise_base_url(None)
    ('http://127.0.0.1:8080/v1', 'https://api.openai.com/v1')
    """
    from urllib.parse import urlsplit

    raw = (url or DEFAULT_BASE_URL).strip()
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass
class CallResult:
    """The outcome of one request after retries. ``body`` is the parsed 200 JSON body."""

    status: str  # ok | http_429 | http_5xx | http_error | timeout | connection_error | budget
    body: dict | None = None
    #: The server refused this request as invalid (not a failure of the server):
    #: retrying it is pointless, another output mode may be accepted.
    invalid: bool = False
    #: The answer came from the local stand-in (its header said so).
    standin: bool = False
    error: str | None = None
    raw: str | None = None
    attempts: int = 0
    latency_ms: float = 0.0
    cached: bool = False


@dataclass
class Ledger:
    """Tokens, requests and money spent by a run, and the budget it may not pass."""

    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    budget_usd: float | None = None
    requests: int = 0  # HTTP requests sent, retries included
    calls: int = 0  # logical calls that got an answer or gave up
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    stopped: str | None = None  # 'budget' once the cap refused a request
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.price_input_per_mtok
            + completion_tokens * self.price_output_per_mtok
        ) / 1e6

    def reserve(self, worst_case_usd: float) -> bool:
        """Hold a request's worst-case cost against the budget; False = do not send it."""
        with self._lock:
            if self.budget_usd is not None and (
                self.cost_usd + self.reserved_usd + worst_case_usd > self.budget_usd + 1e-12
            ):
                self.stopped = "budget"
                return False
            self.reserved_usd += worst_case_usd
            return True

    def settle(self, reserved_usd: float, prompt_tokens: int, completion_tokens: int) -> float:
        """Replace a reservation by what the answer's ``usage`` says it cost; return that."""
        c = self.cost(prompt_tokens, completion_tokens)
        with self._lock:
            self.reserved_usd -= reserved_usd
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.cost_usd += c
            self.calls += 1
        return c

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "budget_usd": self.budget_usd,
            "stopped": self.stopped,
        }


class JudgeCache:
    """Verdicts that parsed, keyed by a content hash. SQLite: one file, many processes.

    Only answers that gave a valid score are stored: a failure is retried by the next
    run instead of being replayed from the cache.

    >>> import tempfile
    >>> c = JudgeCache(Path(tempfile.mkdtemp()) / "cache.sqlite")
    >>> c.put("k", {"content": "x"}); c.get("k")
    {'content': 'x'}
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._con() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, body TEXT NOT NULL, "
                "created_at REAL NOT NULL)"
            )
            # What each endpoint accepted (see OUTPUT_MODES), so the next run, in this
            # process or a later worker, starts with a mode that works.
            con.execute(
                "CREATE TABLE IF NOT EXISTS endpoint_modes (endpoint TEXT NOT NULL, "
                "model TEXT NOT NULL, mode TEXT NOT NULL, standin INTEGER NOT NULL, "
                "updated_at REAL NOT NULL, PRIMARY KEY (endpoint, model))"
            )

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.con = con
        return con

    def get(self, key: str) -> dict | None:
        row = self._con().execute("SELECT body FROM verdicts WHERE key = ?", [key]).fetchall()
        return json.loads(row[0][0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        con = self._con()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for k, body in con.execute(
                f"SELECT key, body FROM verdicts WHERE key IN ({marks})", chunk
            ).fetchall():
                out[k] = json.loads(body)
        return out

    def put(self, key: str, body: dict) -> None:
        self.put_many({key: body})

    def put_many(self, bodies: dict[str, dict]) -> None:
        if not bodies:
            return
        now = time.time()
        rows = [(k, json.dumps(b), now) for k, b in bodies.items()]
        con = self._con()
        for i in range(0, len(rows), 300):  # one multi-row statement per chunk
            chunk = rows[i : i + 300]
            con.execute(
                "INSERT OR REPLACE INTO verdicts (key, body, created_at) VALUES "
                + ",".join(["(?, ?, ?)"] * len(chunk)),
                [v for row in chunk for v in row],
            )

    def __len__(self) -> int:
        return self._con().execute("SELECT count(*) FROM verdicts").fetchall()[0][0]

    def endpoint_mode(self, endpoint: str, model: str) -> tuple[str, bool] | None:
        """(output mode, is the stand-in) an endpoint last answered with for a model.

        >>> import tempfile
        >>> c = JudgeCache(Path(tempfile.mkdtemp()) / "cache.sqlite")
        >>> c.remember_mode("http://h/v1", "m", "json_object", False)
        >>> c.endpoint_mode("http://h/v1", "m"), c.endpoint_mode("http://h/v1", "other")
        (('json_object', False), None)
        """
        rows = (
            self._con()
            .execute(
                "SELECT mode, standin FROM endpoint_modes WHERE endpoint = ? AND model = ?",
                [endpoint, model],
            )
            .fetchall()
        )
        return (rows[0][0], bool(rows[0][1])) if rows else None

    def remember_mode(self, endpoint: str, model: str, mode: str, standin: bool) -> None:
        self._con().execute(
            "INSERT OR REPLACE INTO endpoint_modes VALUES (?, ?, ?, ?, ?)",
            [endpoint, model, mode, int(standin), time.time()],
        )


def retry_after_s(headers: Any) -> float | None:
    """Seconds a server asked us to wait (``retry-after-ms``, ``retry-after`` seconds or date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    with contextlib.suppress(TypeError, ValueError):
        if ms is not None:
            return float(ms) / 1000
    ra = headers.get("retry-after")
    if ra is None:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(ra) if ra else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


@dataclass
class Endpoint:
    base_url: str | None
    api_key: str | None
    #: Sent as the openai client sends them (``OpenAI-Organization``, ``OpenAI-Project``);
    #: None = what the client reads from ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID``.
    organization: str | None = None
    project: str | None = None


class Engine:
    """Send chat-completion payloads with limits, retries, timeouts, cache and ledger.

    One engine per event loop run; :meth:`close` releases its HTTP clients. Requests go
    through the ``openai`` client on its aiohttp transport, with the client's own
    retries off (``max_retries=0``): the retry policy below (Retry-After, backoff,
    invalid-request detection, fault classes, key redaction) is ours, and so is the
    per-endpoint :class:`~reset_core.judging.ratelimit.RateLimiter` (``rpm``/``tpm``
    configured, else learned from the provider's rate-limit headers).
    """

    def __init__(
        self,
        *,
        concurrency: int = 16,
        max_retries: int = 3,
        timeout_s: float = 60.0,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        ledger: Ledger | None = None,
        cache: JudgeCache | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
    ):
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.ledger = ledger or Ledger()
        self.cache = cache
        self.rpm, self.tpm = rpm, tpm
        self._clients: dict[str, Any] = {}
        self._sems: dict[str, asyncio.Semaphore] = {}

    def _client(self, ep: Endpoint):
        """One ``AsyncOpenAI`` client (aiohttp pool of ``concurrency``) per endpoint and key.

        The key is passed explicitly ("none" without one, as before): left to itself
        the client would read ``OPENAI_API_KEY``, a key the deployment may not allow
        for this judge (see :func:`env_endpoint`).
        """
        key = f"{ep.base_url}|{ep.api_key}|{ep.organization}|{ep.project}"
        if key not in self._clients:
            import httpx2
            import openai

            http = openai.DefaultAioHttpClient(
                verify=_ssl_context(),
                timeout=httpx2.Timeout(self.timeout_s),
                limits=httpx2.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
            )
            self._clients[key] = openai.AsyncOpenAI(
                base_url=ep.base_url or DEFAULT_BASE_URL,
                api_key=ep.api_key or "none",
                organization=ep.organization,
                project=ep.project,
                max_retries=0,  # ours, below
                timeout=httpx2.Timeout(self.timeout_s),
                http_client=http,
            )
            self._sems[str(ep.base_url)] = self._sems.get(str(ep.base_url)) or asyncio.Semaphore(
                self.concurrency
            )
        return self._clients[key], self._sems[str(ep.base_url)]

    def limiter(self, ep: Endpoint, model: str):
        """The rate limiter shared by every judge on this endpoint, key and model."""
        from reset_core.judging.ratelimit import limiter_for

        return limiter_for(normalise_base_url(ep.base_url), ep.api_key, model, self.rpm, self.tpm)

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()

    async def complete(self, ep: Endpoint, payload: dict, worst_case_usd: float) -> CallResult:
        """One logical call: budget check, then up to ``1 + max_retries`` HTTP attempts."""
        import openai
        import orjson

        if not self.ledger.reserve(worst_case_usd):
            return CallResult("budget", error="budget cap reached; request not sent")
        client, sem = self._client(ep)
        limiter = self.limiter(ep, str(payload.get("model") or ""))
        tokens = estimate_tokens(payload)
        create = client.chat.completions.with_raw_response.create
        t0 = time.monotonic()
        result = CallResult("connection_error")
        history: list[str] = []
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            headers, code, used = None, None, None
            async with sem:
                await limiter.acquire(tokens)
                self.ledger.requests += 1
                try:
                    raw = await create(**payload)
                    headers, code = raw.headers, raw.status_code
                    content = raw.content
                    text = content.decode("utf-8", errors="replace")
                    try:
                        body = orjson.loads(content)
                    except ValueError:
                        result = CallResult("ok", body=None, raw=text, error="non-JSON body")
                    else:
                        result = CallResult("ok", body=body, raw=text)
                        # What the provider counts against a tokens-per-minute limit:
                        # the prompt as its tokenizer saw it (usage) plus the max_tokens
                        # reserved, not the completion's length.
                        with contextlib.suppress(KeyError, TypeError, ValueError):
                            used = int(body["usage"]["prompt_tokens"]) + int(
                                payload.get("max_tokens") or 0
                            )
                except openai.APIStatusError as e:
                    headers, code = e.response.headers, e.response.status_code
                    content = e.response.content
                    message = _error_message(content)
                    invalid = is_invalid_request(code, message)
                    status = (
                        "http_429"
                        if code == 429
                        else "http_error"
                        if invalid or code < 500
                        else "http_5xx"
                    )
                    result = CallResult(
                        status,
                        error=f"HTTP {code}: {message}",
                        raw=content.decode("utf-8", errors="replace"),
                        invalid=invalid,
                    )
                    wait = retry_after_s(headers)
                except openai.APIConnectionError as e:  # refused, reset, dropped, timed out
                    result = _transport_failure(e, self.timeout_s)
                finally:
                    limiter.observe(
                        headers,
                        status=code,
                        estimated_tokens=tokens,
                        used_tokens=used,
                        retry_after_s=wait,
                    )
                if headers is not None:
                    result.standin = headers.get(STANDIN_HEADER) == "1"
            result.attempts = attempt + 1
            if result.status not in RETRYABLE or attempt == self.max_retries:
                if history and result.status != "ok":
                    result.error = f"{result.error} (earlier attempts: {'; '.join(history)})"
                break
            history.append(f"{result.status}: {result.error}")
            if wait is None:
                wait = min(self.backoff_max_s, self.backoff_s * 2**attempt)
                wait *= 0.5 + random.random()  # jitter: retries from many tasks spread out
            else:
                # The server's Retry-After is honoured in full, up to RETRY_AFTER_MAX_S.
                # (It used to be cut to backoff_max_s, 30 s: asked for 60 s, the retry went
                # out early and met the same 429, an attempt spent for nothing.)
                wait = min(wait, max(RETRY_AFTER_MAX_S, self.backoff_max_s))
            await asyncio.sleep(wait)
        if ep.api_key:  # a server or proxy that echoes the request must not store the key
            from reset_core.deployment import redact

            result.error, result.raw = (
                redact(result.error, [ep.api_key]),
                redact(result.raw, [ep.api_key]),
            )
        result.latency_ms = (time.monotonic() - t0) * 1000
        usage = (result.body or {}).get("usage") or {}
        self.ledger.settle(
            worst_case_usd,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )
        return result


def estimate_tokens(payload: dict) -> int:
    """Tokens a provider counts against a per-minute limit before answering: the
    prompt (characters / 4) plus ``max_tokens``, as OpenAI reserves them.

    >>> estimate_tokens({"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50})
    150
    """
    chars = sum(len(str(m.get("content") or "")) for m in payload.get("messages") or [])
    return -(-chars // 4) + int(payload.get("max_tokens") or 0)


def _transport_failure(e: BaseException, timeout_s: float) -> CallResult:
    """A request that got no HTTP answer: ``timeout`` or ``connection_error``.

    The openai client's aiohttp transport reports a refused or reset connection as a
    (connect) timeout, so the class is read from the cause under the client's and
    httpx2's wrappers: a socket or read timeout there is a timeout, anything else
    (reset, refused, dropped mid-answer) a connection error.
    """
    cause: BaseException | None = e
    root = None
    while cause is not None:
        mod = type(cause).__module__
        if not (mod.startswith("openai") or mod.startswith("httpx")):
            root = cause
            break
        cause = cause.__cause__ or cause.__context__
    timed_out = isinstance(root, TimeoutError) if root else "Timeout" in type(e).__name__
    if timed_out:
        return CallResult("timeout", error=f"no answer within {timeout_s}s")
    root = root or e
    return CallResult("connection_error", error=f"{type(root).__name__}: {root}")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA bundle) costs ~25 ms,
    and the judge worker opens a fresh engine for every batch."""
    import httpx2

    return httpx2.create_ssl_context()


def event_loop_factory():
    """uvloop's event loop where it is installed (not on Windows), else asyncio's default.

    The engine is one loop on one core; uvloop takes about a fifth off its CPU per
    request, which at high concurrency is what bounds requests/s.

    >>> loop = event_loop_factory()(); loop.close()
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def is_invalid_request(code: int, message: str) -> bool:
    """Whether an HTTP error says the request itself is invalid (so: do not retry it).

    >>> is_invalid_request(422, ""), is_invalid_request(503, "overloaded")
    (True, False)
    >>> is_invalid_request(500, "1 validation error for CreateChatCompletionRequest")
    True
    """
    if code in (400, 422):
        return True
    return code == 500 and bool(_INVALID_5XX.search(message))


def _error_message(content: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body itself."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(content)["error"]["message"])
    return content.decode("utf-8", errors="replace")[:500]


def endpoint_url(
    base_url: str | None, base_url_env: str = "OPENAI_BASE_URL", env: dict | None = None
) -> str | None:
    """A judge's base URL: the explicit one, else the value of ``base_url_env``.

    The variable must be one meant for a URL (``OPENAI_BASE_URL``,
    ``RESET_STUDIO_*BASE_URL``): naming a key variable there would send the key to DNS
    and write it into the judge's identity. Raises
    :class:`~reset_core.deployment.SecretNotAllowed` naming the field.

    >>> endpoint_url("http://h/v1", "ANYTHING"), endpoint_url(None, env={})
    ('http://h/v1', None)
    >>> endpoint_url(None, "OPENAI_API_KEY", env={"OPENAI_API_KEY": "sk-x"})
    Traceback (most recent call last):
    ...
    reset_core.deployment.SecretNotAllowed: base_url_env: the environment variable 'OPENAI_API_KEY' is not one that holds an endpoint's base URL ...
    """
    from reset_core.deployment import Deployment

    if base_url:
        return base_url
    env = os.environ if env is None else env
    Deployment.current(env).check_base_url_env(base_url_env)
    return env.get(base_url_env) or None


def env_endpoint(
    base_url: str | None,
    base_url_env: str = "OPENAI_BASE_URL",
    api_key_env: str = "OPENAI_API_KEY",
    env: dict | None = None,
) -> Endpoint:
    """Where a judge sends its requests, and the key it sends, as the deployment allows.

    The key variable must be one the deployment allows
    (:meth:`~reset_core.deployment.Deployment.check_key_env`) and the URL one it may
    send to (:meth:`~reset_core.deployment.Deployment.check_base_url`), else
    :class:`~reset_core.deployment.SecretNotAllowed` names the field and no request is
    made. The key comes from the environment, else the app's secrets.
    """
    from reset_core.deployment import Deployment, key_value

    deployment = Deployment.current(env)
    url = endpoint_url(base_url, base_url_env, env)
    deployment.check_base_url(url, field="base_url" if base_url else base_url_env, env=env)
    deployment.check_key_env(api_key_env)
    return Endpoint(url, key_value(api_key_env, env))
