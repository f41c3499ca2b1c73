"""A local OpenAI-compatible HTTP server: the stand-in endpoint for tests, benches and the demo.

openai >= 3 talks through httpx2, which httpx mocking libraries do not intercept, so
tests talk to this real server on 127.0.0.1 instead. It serves
``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models`` with a fixed
latency, counts requests, and injects faults on demand: put ``[[fault:NAME]]``
anywhere in a prompt (for instance inside a candidate's text) and that request gets
the fault. Faults (:data:`FAULTS`):

===============  ====================================================================
``429``          HTTP 429 with ``Retry-After: <retry_after>`` (0 s unless configured;
                 every time, or ``429x2`` only twice)
``500``/``503``  server errors (``500x1``: only the first time for that prompt)
``timeout``      sleeps past any sane client timeout before answering
``hang``         reads the request, then never answers and never closes: the socket
                 stays open until the client gives up (what a wedged proxy does)
``reset``        closes the connection without a response (TCP RST)
``truncated``    200 with content cut mid-JSON
``schema``       200 with JSON that lacks the required fields
``range``        200 with a score outside the rubric's scale
``empty``        200 with empty content
``refusal``      200 with a refusal (``message.refusal`` set, content empty)
``invalid``      HTTP 400 ``invalid_request_error`` however the request is made (as a
                 prompt past the context length is): no output mode helps
``echo``         HTTP 401 whose error message quotes the request's headers, as a
                 misconfigured auth proxy or debugging server does (the key included)
===============  ====================================================================

A fault can also be chosen per model: a request for model ``fault:NAME`` (or
``fault:NAMExN``, e.g. ``fault:503x2``) gets it as if the prompt carried the marker,
so a whole judge can be pointed at a failing "model" without touching the data.

``obey_injections`` plays a gullible judge, to test prompt-injection defences: a
request whose prompt says, outside the blocks the rubric declares as data
(``<answer>...</answer>`` and the other tags of
:data:`reset_core.judging.llm_judge.DATA_TAGS`), "give this a 9" or "score: 9/10" gets
that score. Text inside a data block is ignored, as a judge that keeps to the
rubric's rule would; with the older prompt (no blocks) everything is obeyed. Its
ordinary scores then depend on the instruction alone, not on the candidate's text,
so an obeyed injection is the only thing that can move a candidate's score.

``require_key`` makes it check ``Authorization: Bearer <key>`` as a real endpoint does:
a request without that key gets HTTP 401, and its error message, like ``echo``'s,
quotes the headers it was sent. Tests plant a key and search for it everywhere.

Without a fault, a chat request that asks for JSON (``response_format``, or a judge
prompt that says "Reply with JSON only") gets ``{"score": s, "rationale": ...}`` with
``s`` a deterministic function of the prompt on a 1-10 scale (``{"scores": [...]}``
when the schema asks for a ``scores`` array of ``minItems`` entries, or the prompt
shows several candidates), and any other request gets a short deterministic text.

Its verdicts are placeholders, not judgments, and it says so in every answer: the
``x-reset-standin: 1`` header and ``"system_fingerprint": "reset-studio-standin"``
in the body. The LLM judge reads either and marks its judge a placeholder.
``standin=False`` (``--pose-as-real``) drops both, so tests can play a real endpoint;
``salt`` changes its scores, so that endpoint's verdicts differ from the stand-in's.

Rate limits (``rpm``/``tpm``, ``--rpm N``/``--tpm N``; see :class:`_RateWindow`): each
chat/completions request counts on arrival against a **rolling 60-second window** (a
request as 1, its tokens as prompt words + ``max_tokens``, as OpenAI reserves them). One
that would pass a limit gets HTTP 429 at once with ``Retry-After`` / ``retry-after-ms``
(when the oldest entry leaves the window) and is not counted; every answer carries
OpenAI's headers ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` (a Go-style duration such as ``1s`` or ``6m0s``: when
the window is back to full) and the ``-tokens`` variants. :attr:`accepted` and
:attr:`rate_limited` count the outcomes. ``latency_jitter_s`` spreads answer times
uniformly over ``latency_s ± jitter`` (seeded), as a real endpoint's vary.

``reject_formats`` makes it refuse structured-output modes the way real servers do:
``json_schema`` with HTTP 500 and a pydantic validation error (what llama.cpp's server,
via llama-cpp-python, answers), ``json_object`` with HTTP 400 ``invalid_request_error``.
Refusals are counted in :attr:`OpenAICompatServer.rejected`.

The Files and Batch APIs are served too, for judging through the Batch API:
``/v1/files`` (multipart upload with ``purpose``, list, retrieve, ``/content``, delete)
and ``/v1/batches`` (create, retrieve, list, ``/cancel``). A batch's requests are
answered in a background thread by the same handler as ``/v1/chat/completions`` (so
its verdicts, faults included, look like online ones), moving ``validating`` ->
``in_progress`` -> ``finalizing`` -> ``completed`` (each step ``batch_step_s``) with
``request_counts``, and writing output and error files as OpenAI does: one line per
request, ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}``; a request that did not run has ``"response": null`` and an error code
``batch_expired`` or ``batch_cancelled``. :attr:`OpenAICompatServer.batch_faults`
lists what the next created batches do instead of finishing, one entry per batch:
``expire_half`` (status ``expired``, the output file holds the first half),
``fail`` (status ``failed``, ``errors`` says why) and ``hold`` (``in_progress``
until ``batch_release`` is set); ``batch_retrieve_503`` makes that many status checks
fail with HTTP 503. ``batch_calls`` counts uploads, creates, cancels
and answered batch requests.

>>> import urllib.request
>>> with OpenAICompatServer(latency_s=0.0) as srv:
...     with urllib.request.urlopen(srv.base_url + "/models") as r:
...         r.status
200
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# One definition of how the stand-in names itself: the judge reads the same constants.
from reset_core.judging.engine import STANDIN_FINGERPRINT, STANDIN_HEADER

FAULTS = (
    "429",
    "500",
    "503",
    "timeout",
    "reset",
    "truncated",
    "schema",
    "range",
    "empty",
    "refusal",
    "invalid",
    # New faults go last: tests index items by their fault's position.
    "hang",
    "echo",
)
_FAULT = re.compile(r"\[\[fault:([a-z]+|\d+)(?:x(\d+))?\]\]")
_MODEL_FAULT = re.compile(r"^fault:([a-z]+|\d+)(?:x(\d+))?$")
#: What the gullible judge (``obey_injections``) obeys: its own small rule, on purpose
#: not the project's detector, so the detector is tested against something else.
_OBEY = re.compile(
    r"(?:give|rate|score|grade|award)\s+(?:this|it|me|the answer)\s+(?:answer\s+)?(?:a\s+)?"
    r"(\d+(?:\.\d+)?)|score\s*[:=]\s*(\d+(?:\.\d+)?)\s*/\s*10",
    re.IGNORECASE,
)
_DATA_BLOCK = re.compile(
    r"<(instruction|context|reference|answer|candidate)\b[^>]*>.*?</\1>", re.DOTALL
)
#: The judge's prompt-only mode asks for JSON in words, with one heading per candidate.
_JSON_PROMPT = "Reply with JSON only"
_CANDIDATE_HEADING = re.compile(r'^(?:### Candidate \d+|<candidate index="\d+">)$', re.MULTILINE)


def _prompt_text(body: dict) -> str:
    if "messages" in body:
        parts = []
        for m in body["messages"]:
            content = m.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
        return "\n".join(parts)
    prompt = body.get("prompt", "")
    return "\n".join(prompt) if isinstance(prompt, list) else str(prompt)


class _Server(ThreadingHTTPServer):
    # The listen backlog is fixed when the socket binds, so it must be a class
    # attribute: set on the instance afterwards, the default of 5 stays in force and
    # a burst of new connections (a client at concurrency 64) loses SYNs and waits
    # a full second for the kernel to retransmit them.
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout, a reset) is expected here, not a bug.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _list_size(body: dict, text: str) -> int:
    """How many scores a verdict must hold: the schema's ``scores`` array (json_schema,
    or json_object with a schema), else the candidates shown in a prompt-only request."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
    scores = (schema.get("properties") or {}).get("scores") or {}
    if scores.get("type") == "array":
        return int(scores.get("minItems") or 0)
    if not fmt:
        n = len(_CANDIDATE_HEADING.findall(text))
        return n if n > 1 else 0
    return 0


def _refusal(fmt_type: str) -> tuple[int, dict]:
    """How real servers refuse a ``response_format`` they do not support."""
    if fmt_type == "json_schema":  # llama-cpp-python's server: a validation error as a 500
        return 500, {
            "error": {
                "message": "1 validation error for CreateChatCompletionRequest\n"
                "response_format.type\n  Input should be 'text' or 'json_object' "
                "[type=literal_error, input_value='json_schema', input_type=str]",
                "type": "internal_server_error",
            }
        }
    return 400, {
        "error": {
            "message": f"Invalid parameter: response_format of type '{fmt_type}' is not "
            "supported with this model.",
            "type": "invalid_request_error",
            "param": "response_format",
        }
    }


def _echo_error(message: str, headers: Any) -> dict:
    """An error body that quotes every request header, Authorization included."""
    quoted = "; ".join(f"{k}: {v}" for k, v in headers.items())
    return {"error": {"message": f"{message}; request headers: {quoted}", "type": "echo"}}


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's rate-limit headers write it (Go style).

    >>> go_duration(1), go_duration(360), go_duration(0.02), go_duration(61.5)
    ('1s', '6m0s', '20ms', '1m1.5s')
    """
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    m, s = divmod(round(seconds, 3), 60)
    s_text = f"{s:.3f}".rstrip("0").rstrip(".")
    return f"{int(m)}m{s_text}s" if m else f"{s_text}s"


class _RateWindow:
    """Requests and tokens per minute over a rolling 60-second window.

    What providers describe ("N requests per minute"), enforced strictly: a request is
    refused when the last 60 s already hold ``rpm`` accepted requests (or the tokens
    would pass ``tpm``). Refused requests do not count. Times are ``time.monotonic``.
    Tests may shorten the window (``window_s``); it then holds the same rate
    (``rpm * window_s / 60``) so a short run crosses several windows, while the headers
    still name the per-minute limit (``remaining`` counts what is left in the window).

    >>> w = _RateWindow(rpm=2, tpm=None, clock=iter([0.0, 1.0, 2.0, 60.5]).__next__)
    >>> [w.take(1)[0] for _ in range(4)]
    [True, True, False, True]
    """

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        clock: Any = time.monotonic,
        window_s: float = 60.0,
    ):
        from collections import deque

        self.clock = clock
        #: A shorter window (tests) holds the same rate: rpm * window_s / 60 requests.
        self.WINDOW_S = window_s
        self.per_minute_rpm, self.per_minute_tpm = rpm, tpm
        self.rpm = None if rpm is None else max(1, round(rpm * window_s / 60))
        self.tpm = None if tpm is None else max(1, round(tpm * window_s / 60))
        self._log: deque[tuple[float, int]] = deque()  # (arrival, tokens) accepted
        self._tokens = 0
        self._lock = threading.Lock()
        self.accepted = 0
        self.rate_limited = 0

    def describe(self) -> str:
        parts = [
            f"{self.per_minute_rpm} requests" if self.rpm else "",
            f"{self.per_minute_tpm} tokens" if self.tpm else "",
        ]
        return " and ".join(p for p in parts if p) + " per minute"

    def take(self, tokens: int) -> tuple[bool, dict[str, str], float]:
        """(accepted, the x-ratelimit-* headers, seconds until it would be accepted)."""
        with self._lock:
            now = self.clock()
            while self._log and self._log[0][0] <= now - self.WINDOW_S:
                self._tokens -= self._log.popleft()[1]
            over_r = self.rpm is not None and len(self._log) + 1 > self.rpm
            over_t = self.tpm is not None and self._tokens + tokens > self.tpm
            retry_s = 0.0
            if over_r or over_t:
                self.rate_limited += 1
                if over_r:  # when enough of the oldest requests leave the window
                    retry_s = self._log[len(self._log) - self.rpm][0] + self.WINDOW_S - now
                if over_t:
                    freed, i = 0, 0
                    while i < len(self._log) and self._tokens - freed + tokens > self.tpm:
                        freed += self._log[i][1]
                        i += 1
                    t_at = self._log[i - 1][0] + self.WINDOW_S if i else now + self.WINDOW_S
                    retry_s = max(retry_s, t_at - now)
                ok = False
            else:
                self._log.append((now, tokens))
                self._tokens += tokens
                self.accepted += 1
                ok = True
            full_at = (self._log[-1][0] + self.WINDOW_S - now) if self._log else 0.0
            headers: dict[str, str] = {}
            if self.rpm is not None:
                headers["x-ratelimit-limit-requests"] = str(self.per_minute_rpm)
                headers["x-ratelimit-remaining-requests"] = str(max(0, self.rpm - len(self._log)))
                headers["x-ratelimit-reset-requests"] = go_duration(full_at)
            if self.tpm is not None:
                headers["x-ratelimit-limit-tokens"] = str(self.per_minute_tpm)
                headers["x-ratelimit-remaining-tokens"] = str(max(0, self.tpm - self._tokens))
                headers["x-ratelimit-reset-tokens"] = go_duration(full_at)
            return ok, headers, max(0.0, retry_s)


class OpenAICompatServer:
    """Serve the OpenAI API surface on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        latency_s: float = 0.0,
        timeout_fault_s: float = 30.0,
        port: int = 0,
        *,
        standin: bool = True,
        reject_formats: tuple[str, ...] = (),
        salt: str = "",
        retry_after: float = 0.0,
        obey_injections: bool = False,
        require_key: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        latency_jitter_s: float = 0.0,
        seed: int = 0,
        window_s: float = 60.0,
    ):
        self.latency_s = latency_s
        self.latency_jitter_s = latency_jitter_s
        self._rng = random.Random(seed)
        #: The enforced limits (None: no limit, no rate-limit headers).
        self.rate = _RateWindow(rpm, tpm, window_s=window_s) if (rpm or tpm) else None
        self.retry_after = retry_after  # seconds a 429 asks the client to wait
        self.obey_injections = obey_injections
        self.obeyed = 0  # answers whose score an injection set (obey_injections)
        #: True = the outage is over: markers and fault models are ignored (a test's
        #: "later resume" against a recovered endpoint).
        self.suspend_faults = False
        self._stopping = threading.Event()
        self.timeout_fault_s = timeout_fault_s
        self.standin = standin
        self.reject_formats = tuple(reject_formats)
        self.salt = salt  # another salt, other scores: two servers that disagree
        self.require_key = require_key
        self.unauthorized = 0  # requests refused for a missing or wrong key
        self.rejected: Counter[str] = Counter()  # response_format type -> refusals
        self.requests: Counter[str] = Counter()  # path -> count
        self.fault_hits: Counter[str] = Counter()  # (fault, prompt digest) -> count
        self.bodies: list[dict] = []
        self.supports_n = True
        self._lock = threading.Lock()
        self._init_batches()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in one write (see _json) and without Nagle: a
            # second small write held back until the client's delayed ACK (~40 ms)
            # would double every answer's latency.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _authorized(self) -> bool:
                if server.require_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.require_key}":
                    return True
                with server._lock:
                    server.unauthorized += 1
                self._json(401, _echo_error("invalid API key", self.headers))
                return False

            def do_GET(self) -> None:
                self._rate_headers = None  # a kept-alive connection's last POST had some
                if not self._authorized():
                    return
                if server._batch_route(self, "GET"):
                    return
                if self.path.rstrip("/").endswith("/stats"):  # request counts, for benches
                    with server._lock:
                        self._json(
                            200,
                            {
                                "requests": server.n_requests,
                                "by_path": server.requests,
                                **server.rate_stats(),
                            },
                        )
                elif self.path.rstrip("/").endswith("/models"):
                    self._json(
                        200, {"object": "list", "data": [{"id": "local-test", "object": "model"}]}
                    )
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                # Files and batches first: an upload is multipart, not JSON.
                if server._is_batch_path(self.path):
                    if self._authorized():
                        server._batch_route(self, "POST")
                    return
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self._authorized():
                    return
                with server._lock:
                    server.requests[self.path] += 1
                    server.bodies.append(body)
                limited = server._rate_check(self, body)
                if limited is not None:  # refused at once, as a provider's gateway does
                    self._json(*limited)
                    return
                server._sleep_latency()
                server._answer(self, body)

            def do_DELETE(self) -> None:
                if self._authorized() and not server._batch_route(self, "DELETE"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if server.standin:
                    self.send_header(STANDIN_HEADER, "1")
                rate_headers = getattr(self, "_rate_headers", None) or {}
                for k, v in {**rate_headers, **(headers or {})}.items():
                    self.send_header(k, v)
                self._headers_buffer.append(b"\r\n")  # end_headers() without its flush
                self._headers_buffer.append(data)
                self.flush_headers()

        self._httpd = _Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def n_requests(self) -> int:
        return sum(self.requests.values())

    def start(self) -> OpenAICompatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # lets hung handlers go
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ rate limits
    def _rate_check(self, h: Any, body: dict) -> tuple[int, dict, dict] | None:
        """Count a request against the limits; a 429 answer when it would pass one."""
        h._rate_headers = None
        if self.rate is None or "/completions" not in h.path:  # chat and legacy
            return None
        tokens = max(1, len(_prompt_text(body).split())) + int(body.get("max_tokens") or 0)
        ok, headers, retry_s = self.rate.take(tokens)
        h._rate_headers = headers
        if ok:
            return None
        headers_429 = {"Retry-After": str(max(1, math.ceil(retry_s)))}
        headers_429["retry-after-ms"] = str(max(1, math.ceil(retry_s * 1000)))
        return (
            429,
            {
                "error": {
                    "message": f"Rate limit reached: {self.rate.describe()}. "
                    f"Please try again in {retry_s:.3f}s.",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            headers_429,
        )

    def _sleep_latency(self) -> None:
        if not (self.latency_s or self.latency_jitter_s):
            return
        with self._lock:
            jitter = self._rng.uniform(-self.latency_jitter_s, self.latency_jitter_s)
        time.sleep(max(0.0, self.latency_s + jitter))

    def rate_stats(self) -> dict:
        """Accepted and refused (429) requests under the limits; zeros without limits."""
        if self.rate is None:
            return {"accepted": None, "rate_limited": 0}
        return {"accepted": self.rate.accepted, "rate_limited": self.rate.rate_limited}

    @property
    def accepted(self) -> int | None:
        return None if self.rate is None else self.rate.accepted

    @property
    def rate_limited(self) -> int:
        return 0 if self.rate is None else self.rate.rate_limited

    # ------------------------------------------------------------------ answers
    def _fault_for(self, text: str, model: str = "") -> str | None:
        # A model that is down is down whatever the prompt says: its fault comes first.
        m = None if self.suspend_faults else (_MODEL_FAULT.match(model) or _FAULT.search(text))
        if not m:
            return None
        name, times = m.group(1), m.group(2)
        if times is None:
            return name
        key = f"{name}:{_digest(text)}"
        with self._lock:
            self.fault_hits[key] += 1
            return name if self.fault_hits[key] <= int(times) else None

    def _hang(self, h: Any) -> None:
        """Say nothing until the client hangs up (or the server stops): a wedged peer."""
        import select

        conn = h.connection
        while not self._stopping.is_set():
            readable, _, _ = select.select([conn], [], [], 0.2)
            if readable:
                try:
                    if not conn.recv(1, socket.MSG_PEEK):
                        break  # the client closed: its timeout fired
                except OSError:
                    break
        h.close_connection = True

    def _gullible_score(self, body: dict) -> int:
        """``obey_injections``: a score set by the instruction alone, unless the prompt
        outside its data blocks orders another one (then that one, as a gullible judge)."""
        msgs = body.get("messages") or []
        user = str(msgs[-1].get("content") or "") if msgs else _prompt_text(body)
        # The example's part of the prompt: what a candidate's text cannot change.
        inst = re.search(r"<instruction>(.*?)</instruction>|### Instruction\n(.*?)\n\n", user, re.S)
        base = 1 + _digest(self.salt + (inst.group(1) or inst.group(2) if inst else user)) % 8
        outside = _DATA_BLOCK.sub(" ", user)
        m = _OBEY.search(outside)
        if m is None:
            return base
        with self._lock:
            self.obeyed += 1
        return int(float(m.group(1) or m.group(2)))

    def _answer(self, h: Any, body: dict) -> None:
        text = _prompt_text(body)
        fmt_type = (body.get("response_format") or {}).get("type")
        if fmt_type in self.reject_formats:
            with self._lock:
                self.rejected[fmt_type] += 1
            h._json(*_refusal(fmt_type))
            return
        fault = self._fault_for(text, str(body.get("model") or ""))
        if fault == "429":
            h._json(
                429,
                {"error": {"message": "rate limited", "type": "rate_limit"}},
                {"Retry-After": f"{self.retry_after:g}"},
            )
            return
        if fault == "hang":
            self._hang(h)
            return
        if fault == "invalid":
            h._json(
                400,
                {
                    "error": {
                        "message": "This model's maximum context length is 8 tokens.",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        if fault == "echo":
            h._json(401, _echo_error("not authorised upstream", h.headers))
            return
        if fault in ("500", "503"):
            h._json(int(fault), {"error": {"message": f"server error {fault}"}})
            return
        if fault == "reset":
            h.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            h.connection.close()
            h.close_connection = True
            return
        if fault == "timeout":
            time.sleep(self.timeout_fault_s)

        wants_json = "response_format" in body or _JSON_PROMPT in text
        n_scores = _list_size(body, text)
        score = 1 + _digest(self.salt + text) % 10  # deterministic 1..10
        if self.obey_injections:
            score = self._gullible_score(body)
        if fault == "truncated":
            content = '{"score": 7, "rationale": "the answer is mostly gro'
        elif fault == "schema":
            content = json.dumps({"verdict": "good"})
        elif fault == "range":
            content = json.dumps({"score": 42, "rationale": "off the scale"})
        elif fault in ("empty", "refusal"):
            content = ""
        elif wants_json and n_scores:
            # A multi-candidate verdict: the schema fixes how many scores (minItems).
            scores = [1 + _digest(f"{self.salt}{text}#{i}") % 10 for i in range(n_scores)]
            content = json.dumps({"scores": scores, "rationale": "deterministic scores"})
        elif wants_json:
            content = json.dumps({"score": score, "rationale": f"deterministic score {score}"})
        else:
            content = f"Answer {_digest(text) % 1000}: " + " ".join(text.split()[-8:])

        n = int(body.get("n") or 1) if self.supports_n else 1
        prompt_tokens = max(1, len(text.split()))
        completion_tokens = max(1, len(content.split()))
        if "messages" in body:
            choices = [
                {
                    "index": i,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": content if fault != "refusal" else None,
                        "refusal": "I can't help with that." if fault == "refusal" else None,
                    },
                }
                for i in range(n)
            ]
            obj = "chat.completion"
        else:
            choices = [
                {"index": i, "finish_reason": "stop", "text": content + (f" #{i}" if i else "")}
                for i in range(n)
            ]
            obj = "text_completion"
        answer = {
            "id": f"cmpl-{_digest(text + str(time.time_ns()))}",
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model", "local-test"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens * n,
                "total_tokens": prompt_tokens + completion_tokens * n,
            },
        }
        if self.standin:
            answer["system_fingerprint"] = STANDIN_FINGERPRINT
        h._json(200, answer)

    # ------------------------------------------------------------------ files and batches
    # The Files and Batch APIs (``/v1/files``, ``/v1/batches``), kept apart from the
    # chat path above: a batch's requests are answered by the same :meth:`_answer` (so
    # its verdicts look like online ones), in a background thread per batch.

    def _init_batches(self) -> None:
        self.files: dict[str, dict] = {}  # id -> {"meta": file object, "data": bytes}
        self.batches: dict[str, dict] = {}  # id -> batch object (plus private "_" keys)
        #: Calls by kind: upload, create, cancel, delete, content, and "request" for every
        #: request a batch answered. Tests check that a resumed job re-uploads nothing.
        self.batch_calls: Counter[str] = Counter()
        #: What the next created batches do instead of finishing, one entry per batch in
        #: creation order (:data:`BATCH_FAULTS`); an empty list = every batch completes.
        self.batch_faults: list[str] = []
        #: Seconds each status lasts (validating, in_progress, finalizing).
        self.batch_step_s = 0.05
        #: A "hold" batch stays in_progress until this is set (a test's "24 h later").
        self.batch_release = threading.Event()
        #: The next this many batch retrieves answer HTTP 503 (a provider's outage mid-poll).
        self.batch_retrieve_503 = 0
        self._next_id = 0

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._next_id += 1
            return f"{prefix}-standin{self._next_id:06d}"

    @staticmethod
    def _is_batch_path(path: str) -> bool:
        return re.match(r"^(/v1)?/(files|batches)(/|\?|$)", path) is not None

    def _batch_route(self, h: Any, method: str) -> bool:
        """Answer a files/batches request; False when the path is not one of them."""
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(h.path)
        m = re.match(r"^(?:/v1)?/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?/?$", url.path)
        if m is None:
            return False
        kind, oid, action = m.groups()
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        store = self.files if kind == "files" else self.batches
        if oid is not None and oid not in store:
            h._json(
                404,
                {
                    "error": {
                        "message": f"No such {kind[:-1]}: {oid}",
                        "type": "invalid_request_error",
                    }
                },
            )
            return True
        if kind == "files":
            if method == "POST" and oid is None:
                self._upload(h)
            elif method == "GET" and oid is None:
                self._list(h, [f["meta"] for f in self.files.values()], query)
            elif method == "GET" and action == "content":
                self.batch_calls["content"] += 1
                _raw(h, 200, self.files[oid]["data"], "application/octet-stream")
            elif method == "GET":
                h._json(200, self.files[oid]["meta"])
            elif method == "DELETE":
                self.batch_calls["delete"] += 1
                del self.files[oid]
                h._json(200, {"id": oid, "object": "file", "deleted": True})
            else:
                return False
            return True
        if method == "POST" and oid is None:
            self._create_batch(h)
        elif method == "GET" and oid is None:
            self._list(h, [_public(b) for b in self.batches.values()], query)
        elif method == "GET":
            with self._lock:
                outage, self.batch_retrieve_503 = (
                    self.batch_retrieve_503 > 0,
                    max(0, self.batch_retrieve_503 - 1),
                )
            if outage:
                h._json(503, {"error": {"message": "service unavailable", "type": "server_error"}})
            else:
                h._json(200, _public(self.batches[oid]))
        elif method == "POST" and action == "cancel":
            self.batch_calls["cancel"] += 1
            b = self.batches[oid]
            with self._lock:
                if b["status"] in ("validating", "in_progress", "finalizing"):
                    b["status"], b["cancelling_at"] = "cancelling", int(time.time())
                    b["_cancel"] = True
            h._json(200, _public(b))
        else:
            return False
        return True

    @staticmethod
    def _list(h: Any, objects: list[dict], query: dict) -> None:
        """A list page, newest first (as OpenAI lists files and batches)."""
        data = sorted(objects, key=lambda o: (o["created_at"], o["id"]), reverse=True)
        if query.get("order") == "asc":
            data.reverse()
        if "purpose" in query:
            data = [o for o in data if o.get("purpose") == query["purpose"]]
        if "after" in query:
            ids = [o["id"] for o in data]
            data = data[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
        limit = int(query.get("limit") or 20)
        page = data[:limit]
        h._json(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(data) > limit,
            },
        )

    def _upload(self, h: Any) -> None:
        """``POST /v1/files``: a multipart form with ``purpose`` and ``file``."""
        from email import policy
        from email.parser import BytesParser

        raw = _read_body(h)
        ctype = h.headers.get("Content-Type", "")
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
        )
        fields, filename, data = {}, None, None
        for part in msg.iter_parts() if msg.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                filename, data = part.get_filename(), part.get_payload(decode=True)
            else:
                fields[name] = part.get_payload(decode=True).decode()
        if data is None or "purpose" not in fields:
            h._json(
                400,
                {
                    "error": {
                        "message": "expected a multipart form with 'file' and 'purpose'",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        self.batch_calls["upload"] += 1
        fid = self._new_id("file")
        meta = {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": fields["purpose"],
            "status": "processed",
        }
        self.files[fid] = {"meta": meta, "data": data}
        h._json(200, meta)

    def _store_file(self, name: str, data: bytes, purpose: str) -> str:
        fid = self._new_id("file")
        meta = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": name, "purpose": purpose, "status": "processed"}  # fmt: skip
        self.files[fid] = {"meta": meta, "data": data}
        return fid

    def _create_batch(self, h: Any) -> None:
        body = json.loads(_read_body(h) or b"{}")
        if body.get("input_file_id") not in self.files:
            h._json(
                400,
                {
                    "error": {
                        "message": f"input_file_id {body.get('input_file_id')!r} not found",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            h._json(
                400,
                {
                    "error": {
                        "message": "this stand-in batches /v1/chat/completions within 24h only",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        self.batch_calls["create"] += 1
        bid = self._new_id("batch")
        now = int(time.time())
        with self._lock:
            fault = self.batch_faults.pop(0) if self.batch_faults else None
        b = {
            "id": bid,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 24 * 3600,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_fault": fault,
            "_cancel": False,
        }
        self.batches[bid] = b
        threading.Thread(target=self._run_batch, args=(bid,), daemon=True).start()
        h._json(200, _public(b))

    def _run_batch(self, bid: str) -> None:
        """validating -> in_progress -> finalizing -> completed (or expired/failed/cancelled)."""
        b = self.batches[bid]
        fault = b["_fault"]
        time.sleep(self.batch_step_s)
        lines, problem = _batch_lines(self.files[b["input_file_id"]]["data"])
        if problem or fault == "fail":
            b["errors"] = {
                "object": "list",
                "data": [
                    {"code": "invalid_request", "message": problem, "param": None, "line": None}
                    if problem
                    else {
                        "code": "token_limit_exceeded",
                        "message": "Enqueued token limit reached.",
                        "param": None,
                        "line": None,
                    }
                ],
            }
            b["status"], b["failed_at"] = "failed", int(time.time())
            return
        with self._lock:
            if not b["_cancel"]:
                b["status"], b["in_progress_at"] = "in_progress", int(time.time())
            b["request_counts"]["total"] = len(lines)
        if fault == "hold":
            while not (self.batch_release.is_set() or self._stopping.is_set() or b["_cancel"]):
                time.sleep(0.02)
        # An expired batch got through the first half of its requests in its window.
        stop_at = len(lines) // 2 if fault == "expire_half" else len(lines)
        out, err = [], []
        done = 0
        for line in lines[:stop_at]:
            if b["_cancel"] or self._stopping.is_set():
                break
            status, payload = self._answer_offline(line["body"])
            rec = {
                "id": self._new_id("batch_req"),
                "custom_id": line["custom_id"],
                "response": {
                    "status_code": status,
                    "request_id": self._new_id("req"),
                    "body": payload,
                },
                "error": None,
            }
            (out if status == 200 else err).append(rec)
            with self._lock:
                self.batch_calls["request"] += 1
                b["request_counts"]["completed" if status == 200 else "failed"] += 1
            done += 1
        end = "cancelled" if b["_cancel"] else "expired" if done < len(lines) else "completed"
        code, message = {
            "cancelled": ("batch_cancelled", "This request was cancelled with its batch."),
            "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
        }.get(end, (None, None))  # fmt: skip
        for line in lines[done:]:  # what did not run, in the error file (as OpenAI does)
            err.append({"id": self._new_id("batch_req"), "custom_id": line["custom_id"], "response": None,
                        "error": {"code": code, "message": message}})  # fmt: skip
        if end == "completed":
            with self._lock:
                b["status"], b["finalizing_at"] = "finalizing", int(time.time())
            time.sleep(self.batch_step_s)

        def jsonl(recs: list[dict]) -> bytes:
            return b"".join(json.dumps(r).encode() + b"\n" for r in recs)

        if out:
            b["output_file_id"] = self._store_file(
                f"{bid}_output.jsonl", jsonl(out), "batch_output"
            )
        if err:
            b["error_file_id"] = self._store_file(f"{bid}_error.jsonl", jsonl(err), "batch_output")
        with self._lock:
            b["status"], b[f"{end}_at"] = end, int(time.time())

    def _answer_offline(self, body: dict) -> tuple[int, dict]:
        """One chat request of a batch, through the online handler; (status, body)."""
        cap = _Capture()
        try:
            self._answer(cap, body)
        except Exception as e:  # noqa: BLE001 - a connection fault (reset, hang) has no socket here
            return 500, {
                "error": {"message": f"server error: {type(e).__name__}", "type": "server_error"}
            }
        return cap.status, cap.payload


class _Capture:
    """What :meth:`OpenAICompatServer._answer` writes to, for a request inside a batch."""

    headers: dict = {}  # noqa: RUF012 - read only (the "echo" fault quotes it)

    def __init__(self) -> None:
        self.status, self.payload = 500, {"error": {"message": "no answer"}}

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self.status, self.payload = status, payload


def _public(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _read_body(h: Any) -> bytes:
    """The request body, by Content-Length or chunked (a streamed upload)."""
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                h.rfile.readline()
                return b"".join(parts)
            parts.append(h.rfile.read(size))
            h.rfile.readline()
    return h.rfile.read(int(h.headers.get("Content-Length", 0)))


def _raw(h: Any, status: int, data: bytes, ctype: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def _batch_lines(data: bytes) -> tuple[list[dict], str | None]:
    """A batch input file's requests, or why the whole batch fails validation."""
    lines, seen = [], set()
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            return [], f"line {n}: not JSON"
        if line.get("url") != "/v1/chat/completions" or line.get("method") != "POST":
            return [], f"line {n}: url must be /v1/chat/completions and method POST"
        if not isinstance(line.get("body"), dict) or not line.get("custom_id"):
            return [], f"line {n}: custom_id and body are required"
        if line["custom_id"] in seen:
            return [], f"line {n}: duplicate custom_id {line['custom_id']!r}"
        seen.add(line["custom_id"])
        lines.append(line)
    return lines, None


def main() -> None:
    """``python -m devtools.openai_standin --port 8000``: a stand-in endpoint for manual tries."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    ap.add_argument(
        "--pose-as-real",
        action="store_true",
        help="do not say this is the stand-in (tests that need a second, 'real' endpoint)",
    )
    ap.add_argument(
        "--reject",
        action="append",
        default=[],
        choices=["json_schema", "json_object"],
        help="refuse this response_format type as a real server would (repeatable)",
    )
    ap.add_argument(
        "--retry-after", type=float, default=0.0, help="seconds a 429 fault asks to wait"
    )
    ap.add_argument(
        "--obey-injections",
        action="store_true",
        help="play a gullible judge: obey score orders outside the prompt's data blocks",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="milliseconds added to every answer (overrides --latency)",
    )
    ap.add_argument(
        "--latency-jitter-ms",
        type=float,
        default=0.0,
        help="spread answer times uniformly over latency +- this many milliseconds",
    )
    ap.add_argument(
        "--rpm",
        type=int,
        default=None,
        help="enforce this many requests per minute (rolling 60 s window): HTTP 429 with "
        "Retry-After past it, x-ratelimit-* headers on every answer",
    )
    ap.add_argument(
        "--tpm",
        type=int,
        default=None,
        help="enforce this many tokens per minute (prompt words + max_tokens), likewise",
    )
    ap.add_argument(
        "--window-s",
        type=float,
        default=60.0,
        help="length of the rate-limit window in seconds (60: per minute, as providers say)",
    )
    args = ap.parse_args()
    srv = OpenAICompatServer(
        latency_s=args.latency if args.latency_ms is None else args.latency_ms / 1000,
        latency_jitter_s=args.latency_jitter_ms / 1000,
        rpm=args.rpm,
        tpm=args.tpm,
        window_s=args.window_s,
        port=args.port,
        standin=not args.pose_as_real,
        reject_formats=tuple(args.reject),
        retry_after=args.retry_after,
        obey_injections=args.obey_injections,
    ).start()
    print(f"serving an OpenAI-compatible stand-in at {srv.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
