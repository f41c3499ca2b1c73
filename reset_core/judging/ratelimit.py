"""Client-side rate limits per endpoint: requests and tokens per minute, paced smoothly.

Real endpoints cap requests per minute (RPM) and tokens per minute (TPM). Sending as
fast as the concurrency allows and retrying the 429s wastes requests and, once the
retries run out, loses verdicts. A :class:`RateLimiter` paces requests instead:

- two token buckets, requests and tokens, refilled continuously at ``limit / 60`` per
  second (times :data:`HEADROOM`) with a burst of :data:`BURST_S` seconds' worth, so a
  provider that enforces the limit over short windows, or over a rolling minute, sees
  an even stream and not a storm at the top of each minute; a new bucket starts empty
  (the first request waits one interval), so the first minute holds no extra burst;
- a request's tokens are estimated before it is sent (prompt estimate + ``max_tokens``,
  as providers count them) and corrected by the prompt tokens its answer's ``usage``
  reports (the provider keeps counting ``max_tokens``, not the completion's length);
- limits come from the judge's config (``rpm``, ``tpm``) and/or are **learned** from the
  provider's rate-limit headers (OpenAI's ``x-ratelimit-limit-requests``,
  ``-remaining-requests``, ``-reset-requests`` and the ``-tokens`` variants): the lower
  of the configured and the learned limit wins, and ``remaining`` caps what the bucket
  may spend at once;
- until the first answer says whether the endpoint sends such headers, a limiter
  with no configured limit lets one request out at a time (one probe, then pacing);
- a 429 pauses every request to the endpoint for its ``Retry-After``, slows the rate
  by :data:`SLOWDOWN` and recovers over about :data:`RECOVER_S` seconds.

One limiter is shared by every judge that sends to the same endpoint with the same key
and model (:func:`limiter_for`): providers set limits per organisation and model. The
state is guarded by a thread lock and waits are plain ``asyncio.sleep`` calls, so judges
in several threads or event loops of one process share it.

>>> clock = FakeClock()
>>> lim = RateLimiter(rpm=60, clock=clock)      # one request a second, bursting one
>>> lim.reserve(1)                              # a new bucket is empty: wait ~1 s
1.0204
>>> clock.advance(1.05); lim.reserve(1), lim.reserve(1)
(0.0, 1.0204)
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Pace at this fraction of a limit. A token bucket lets at most its burst plus the
#: refill through in any window: with a burst of BURST_S seconds a rolling 60 s window
#: holds at most HEADROOM * (1 + BURST_S / 60) of the limit (0.988), which leaves room
#: for the jitter between our clock and the provider's count (a loaded server stamps
#: arrivals late and in clumps). Measured: 0.98 of the limit sustained, no 429s.
HEADROOM = 0.98
#: The bucket holds this many seconds of refill: small, so a pause is not followed by
#: a burst a short-window provider would refuse.
BURST_S = 0.5
#: On a 429 the rate is multiplied by this (not below MIN_FACTOR) ...
SLOWDOWN = 0.9
MIN_FACTOR = 0.5
#: ... and climbs back to the full rate linearly over this many seconds without one.
#: Under a known limit a 429 is mostly jitter: a long slowdown would cost more than it
#: saves (each 429 costs its Retry-After pause plus SLOWDOWN's share of RECOVER_S / 2).
RECOVER_S = 10.0
#: While the first answer is awaited (no limit known yet), poll this often.
PROBE_POLL_S = 0.02

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a rate-limit reset header: Go-style durations as OpenAI sends them.

    >>> parse_duration("1s"), parse_duration("6m0s"), parse_duration("20ms")
    (1.0, 360.0, 0.02)
    >>> parse_duration("1h2m3.5s"), parse_duration("0.5"), parse_duration("soon")
    (3723.5, 0.5, None)
    """
    if text is None:
        return None
    text = str(text).strip()
    try:
        return max(0.0, float(text))  # a bare number: seconds
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


@dataclass
class RateHeaders:
    """What an answer's ``x-ratelimit-*`` headers say (None = not sent).

    >>> h = RateHeaders.parse({"x-ratelimit-limit-requests": "1200",
    ...     "x-ratelimit-remaining-requests": "1190", "x-ratelimit-reset-requests": "500ms"})
    >>> h.limit_requests, h.remaining_requests, h.reset_requests_s, h.limit_tokens
    (1200, 1190, 0.5, None)
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None

    @classmethod
    def parse(cls, headers: Any) -> RateHeaders:
        def num(name: str) -> int | None:
            v = headers.get(name) if headers is not None else None
            try:
                return int(float(v)) if v is not None else None
            except ValueError:
                return None

        get = headers.get if headers is not None else (lambda _k: None)
        return cls(
            num("x-ratelimit-limit-requests"),
            num("x-ratelimit-remaining-requests"),
            parse_duration(get("x-ratelimit-reset-requests")),
            num("x-ratelimit-limit-tokens"),
            num("x-ratelimit-remaining-tokens"),
            parse_duration(get("x-ratelimit-reset-tokens")),
        )

    @property
    def any(self) -> bool:
        return self.limit_requests is not None or self.limit_tokens is not None


class FakeClock:
    """A clock tests move by hand: ``clock()`` is now, ``clock.advance(s)`` moves it."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class _Bucket:
    """A token bucket refilled continuously; the level may go below zero (a debt)."""

    def __init__(self, per_minute: float, now: float):
        self.per_minute = per_minute
        # Empty, not full: a full bucket's burst would add to the first window's
        # count on top of the paced rate.
        self.level = 0.0
        self.t = now

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute / 60 * BURST_S)

    def refill(self, now: float, factor: float) -> None:
        rate = self.per_minute / 60 * HEADROOM * factor
        self.level = min(self.capacity, self.level + (now - self.t) * rate)
        self.t = now

    def wait_for(self, amount: float, factor: float) -> float:
        """Seconds until ``amount`` can be taken (0 = now); a request bigger than the
        bucket goes once the bucket is full, leaving a debt the refill pays off."""
        need = min(amount, self.capacity) - self.level
        return 0.0 if need <= 1e-9 else need / (self.per_minute / 60 * HEADROOM * factor)


class RateLimiter:
    """Pace requests to one endpoint under a requests- and a tokens-per-minute limit.

    ``rpm``/``tpm`` are configured limits (None = none configured: learn them from the
    provider's headers, else do not limit). Use :meth:`acquire` before each request and
    :meth:`observe` with its answer; :meth:`reserve` is the non-waiting core that tests
    drive with a :class:`FakeClock`.

    >>> clock = FakeClock()
    >>> lim = RateLimiter(tpm=1200, clock=clock)         # 20 tokens/s, bucket of 10
    >>> clock.advance(1); lim.reserve(1, tokens=10), lim.reserve(1, tokens=10) > 0
    (0.0, True)
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.clock = clock
        self._lock = threading.Lock()
        self.configured_rpm, self.configured_tpm = rpm, tpm
        self.learned_rpm: int | None = None
        self.learned_tpm: int | None = None
        now = clock()
        self._req = _Bucket(rpm, now) if rpm else None
        self._tok = _Bucket(tpm, now) if tpm else None
        #: Without a configured limit the first answer tells whether the endpoint
        #: sends rate-limit headers; until then one request at a time.
        self._probing = rpm is None and tpm is None
        self._probe_out = False
        self.blocked_until = 0.0  # a Retry-After pauses every request to the endpoint
        self._factor_at_429 = 1.0
        self._last_429: float | None = None
        self.in_flight = 0
        # Counters for reports and tests.
        self.sent = 0
        self.rate_limited = 0
        self.waited_s = 0.0

    # ------------------------------------------------------------------ limits
    @property
    def rpm(self) -> float | None:
        """The requests-per-minute limit in force (configured and learned, the lower)."""
        vals = [v for v in (self.configured_rpm, self.learned_rpm) if v]
        return min(vals) if vals else None

    @property
    def tpm(self) -> float | None:
        """The tokens-per-minute limit in force (configured and learned, the lower)."""
        vals = [v for v in (self.configured_tpm, self.learned_tpm) if v]
        return min(vals) if vals else None

    def factor(self, now: float) -> float:
        """The share of the limit paced at now: below 1 for a while after a 429."""
        if self._last_429 is None:
            return 1.0
        back = (now - self._last_429) / RECOVER_S * (1.0 - self._factor_at_429)
        return min(1.0, self._factor_at_429 + back)

    def _set_limits(self, now: float) -> None:
        rpm, tpm = self.rpm, self.tpm
        for attr, limit in (("_req", rpm), ("_tok", tpm)):
            bucket = getattr(self, attr)
            if limit is None:
                setattr(self, attr, None)
            elif bucket is None:
                setattr(self, attr, _Bucket(limit, now))
            elif bucket.per_minute != limit:
                bucket.refill(now, self.factor(now))
                bucket.per_minute = limit
                bucket.level = min(bucket.level, bucket.capacity)

    # ------------------------------------------------------------------ pacing
    def reserve(self, requests: int = 1, tokens: int = 0) -> float:
        """Take a request (and its estimated tokens) if the limits allow it now.

        Returns 0.0 when taken, else the seconds to wait before asking again
        (rounded to 0.1 ms, nothing taken).
        """
        with self._lock:
            now = self.clock()
            if now < self.blocked_until:
                return max(1e-4, round(self.blocked_until - now, 4))
            if self._probing:
                if self._probe_out:
                    return PROBE_POLL_S
                self._probe_out = True
            f = self.factor(now)
            waits = []
            for bucket, amount in ((self._req, requests), (self._tok, tokens)):
                if bucket is not None:
                    bucket.refill(now, f)
                    waits.append(bucket.wait_for(amount, f))
            wait = max(waits, default=0.0)
            if wait > 0:
                if self._probing:
                    self._probe_out = False
                return max(1e-4, round(wait, 4))  # never 0: 0 means "taken"
            if self._req is not None:
                self._req.level -= requests
            if self._tok is not None:
                self._tok.level -= tokens
            self.in_flight += 1
            self.sent += 1
            return 0.0

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request with ``tokens`` estimated tokens may be sent."""
        while True:
            wait = self.reserve(1, tokens)
            if wait <= 0:
                return
            self.waited_s += wait
            await asyncio.sleep(wait)

    def observe(
        self,
        headers: Any,
        *,
        status: int | None,
        estimated_tokens: int = 0,
        used_tokens: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """Learn from one attempt's answer (``status=None``: no HTTP answer came).

        ``used_tokens`` (``usage.prompt_tokens`` + ``max_tokens``) replaces the estimate
        taken at :meth:`reserve`; a 429 pauses the endpoint for ``retry_after_s`` (else
        one request's interval) and slows the pace for a while.
        """
        rh = RateHeaders.parse(headers)
        with self._lock:
            now = self.clock()
            self.in_flight = max(0, self.in_flight - 1)
            if rh.limit_requests:
                self.learned_rpm = rh.limit_requests
            if rh.limit_tokens:
                self.learned_tpm = rh.limit_tokens
            # The probe is over, whatever came back: headers teach the limits, none
            # means the endpoint does not say; a failure must not serialise a run
            # against a down endpoint behind one request at a time.
            self._probing = False
            self._probe_out = False
            self._set_limits(now)
            f = self.factor(now)
            if self._tok is not None and used_tokens is not None and status == 200:
                self._tok.refill(now, f)
                self._tok.level += estimated_tokens - used_tokens
            elif self._tok is not None and status == 429:
                self._tok.refill(now, f)
                self._tok.level += estimated_tokens  # a refused request used nothing
            # The provider's count of what is left: never spend more than that at once.
            for bucket, remaining in (
                (self._req, rh.remaining_requests),
                (self._tok, rh.remaining_tokens),
            ):
                if bucket is not None and remaining is not None:
                    bucket.refill(now, f)
                    bucket.level = min(bucket.level, float(remaining))
            if status == 429:
                self.rate_limited += 1
                self._factor_at_429 = max(MIN_FACTOR, f * SLOWDOWN)
                self._last_429 = now
                rate = (self.rpm or 60.0) / 60
                pause = retry_after_s if retry_after_s is not None else 1.0 / rate
                self.blocked_until = max(self.blocked_until, now + pause)
                if self._req is not None:
                    self._req.level = min(self._req.level, 0.0)

    def snapshot(self) -> dict[str, Any]:
        """The limits in force and what pacing did, for reports.

        >>> RateLimiter(rpm=120).snapshot()["rpm"]
        120
        """
        with self._lock:
            return {
                "rpm": self.rpm,
                "tpm": self.tpm,
                "configured_rpm": self.configured_rpm,
                "configured_tpm": self.configured_tpm,
                "learned_rpm": self.learned_rpm,
                "learned_tpm": self.learned_tpm,
                "sent": self.sent,
                "rate_limited": self.rate_limited,
                "waited_s": round(self.waited_s, 3),
            }


_LIMITERS: dict[tuple[str, str, str], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(
    endpoint: str, api_key: str | None, model: str, rpm: float | None, tpm: float | None
) -> RateLimiter:
    """The one limiter of an endpoint, key and model in this process.

    Every judge on the same endpoint, key and model gets the same limiter, so they
    share the provider's limit instead of each spending all of it. A configured limit
    only ever lowers the one in force (the smallest configured value wins). The key
    is kept as a hash, never as text.

    >>> a = limiter_for("http://h/v1", "sk-1", "m", 600, None)
    >>> b = limiter_for("http://h/v1", "sk-1", "m", 300, None)
    >>> a is b, a.rpm, limiter_for("http://h/v1", "sk-2", "m", None, None) is a
    (True, 300, False)
    """
    key_id = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    k = (endpoint, key_id, model)
    with _LIMITERS_LOCK:
        lim = _LIMITERS.get(k)
        if lim is None:
            lim = _LIMITERS[k] = RateLimiter(rpm, tpm)
            return lim
    with lim._lock:
        changed = False
        if rpm and (lim.configured_rpm is None or rpm < lim.configured_rpm):
            lim.configured_rpm, changed = rpm, True
        if tpm and (lim.configured_tpm is None or tpm < lim.configured_tpm):
            lim.configured_tpm, changed = tpm, True
        if changed:
            lim._probing = False
            lim._set_limits(lim.clock())
    return lim


def reset_limiters() -> None:
    """Forget every endpoint's limiter (tests; a process that changed accounts)."""
    with _LIMITERS_LOCK:
        _LIMITERS.clear()
