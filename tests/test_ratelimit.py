"""The client-side rate limiter: the buckets on a fake clock, header parsing, and judges
against a stand-in that enforces requests and tokens per minute with 429s.

The stand-in tests count requests and 429s at the server; none asserts a duration. They
run the stand-in with a 15 s window holding the same rate as the per-minute limit (120
RPM = 30 per 15 s), so a ~20 s run crosses a window boundary: a client that is not
paced gets 429s there (the control test shows the stand-in does refuse such a burst).
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import urllib.error
import urllib.request

import pytest

from devtools.openai_standin import OpenAICompatServer, _RateWindow, go_duration
from reset_core.judging.base import JudgeItem
from reset_core.judging.engine import estimate_tokens, normalise_base_url
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig
from reset_core.judging.ratelimit import (
    BURST_S,
    HEADROOM,
    PROBE_POLL_S,
    RECOVER_S,
    FakeClock,
    RateHeaders,
    RateLimiter,
    limiter_for,
    parse_duration,
    reset_limiters,
)

RPM = 120
WINDOW_S = 15.0


@pytest.fixture(autouse=True)
def _fresh_limiters():
    reset_limiters()
    yield
    reset_limiters()


def _drive(lim: RateLimiter, clock: FakeClock, seconds: float, tokens: int = 0) -> list[float]:
    """Send as fast as the limiter allows for ``seconds`` of fake time; the send times."""
    sent, end = [], clock() + seconds
    while clock() < end:
        wait = lim.reserve(1, tokens)
        if wait > 0:
            clock.advance(wait)
            continue
        sent.append(clock())
        lim.observe(None, status=200, estimated_tokens=tokens, used_tokens=tokens)
    return sent


def _max_in_window(times: list[float], window: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


# ---------------------------------------------------------------- buckets, fake clock
def test_requests_are_paced_evenly_just_under_the_limit():
    clock = FakeClock()
    lim = RateLimiter(rpm=600, clock=clock)
    sent = _drive(lim, clock, 120.0)
    per_minute = len(sent) / 2
    assert 0.95 * 600 <= per_minute <= 600
    # Never more than the limit in any rolling minute, and no storm in any second:
    # at most the burst (one second's worth) plus that second's refill.
    assert _max_in_window(sent, 60.0) <= 600
    assert _max_in_window(sent, 1.0) <= 2 * 600 / 60 * BURST_S + 1


def test_tokens_per_minute_bind_when_requests_are_large():
    clock = FakeClock()
    lim = RateLimiter(rpm=600, tpm=6_000, clock=clock)  # 100 tokens/s vs 10 requests/s
    sent = _drive(lim, clock, 60.0, tokens=200)
    tokens_per_minute = len(sent) * 200
    assert 0.95 * 6_000 <= tokens_per_minute <= 6_000 + 200  # one request's debt at most


def test_usage_corrects_the_token_estimate():
    clock = FakeClock()
    lim = RateLimiter(tpm=12_000, clock=clock)  # 200 tokens/s, a bucket of 100
    assert lim.reserve(1, tokens=100) > 0  # a new bucket starts empty
    clock.advance(1.0)
    assert lim.reserve(1, tokens=100) == 0.0
    assert lim.reserve(1, tokens=100) > 0  # the estimate emptied the bucket
    # The answer says the prompt was shorter than estimated: 80 tokens come back.
    lim.observe(None, status=200, estimated_tokens=100, used_tokens=20)
    assert lim.reserve(1, tokens=50) == 0.0
    # A refused request used nothing: its whole estimate comes back.
    lim2 = RateLimiter(tpm=12_000, clock=clock)
    clock.advance(1.0)
    assert lim2.reserve(1, tokens=100) == 0.0
    lim2.observe(None, status=429, estimated_tokens=100, retry_after_s=0.0)
    assert lim2.reserve(1, tokens=100) == 0.0


def test_a_request_larger_than_the_bucket_still_goes_and_leaves_a_debt():
    clock = FakeClock()
    lim = RateLimiter(tpm=1200, clock=clock)  # 20 tokens/s, a bucket of 10
    clock.advance(1.0)
    assert lim.reserve(1, tokens=50) == 0.0
    wait = lim.reserve(1, tokens=50)
    assert wait == pytest.approx((10 + 40) / (20 * HEADROOM), rel=1e-3)  # debt + a bucket


def test_headers_teach_the_limit_after_one_probe():
    clock = FakeClock()
    lim = RateLimiter(clock=clock)
    assert lim.reserve() == 0.0
    assert lim.reserve() == PROBE_POLL_S  # one request out until the first answer
    lim.observe(
        {
            "x-ratelimit-limit-requests": "120",
            "x-ratelimit-remaining-requests": "119",
            "x-ratelimit-reset-requests": "500ms",
            "x-ratelimit-limit-tokens": "40000",
            "x-ratelimit-remaining-tokens": "39000",
            "x-ratelimit-reset-tokens": "1.5s",
        },
        status=200,
    )
    assert (lim.rpm, lim.tpm, lim.learned_rpm) == (120, 40_000, 120)
    sent = _drive(lim, clock, 60.0)
    assert 0.95 * 120 <= len(sent) <= 120


def test_no_headers_means_no_limit_after_the_probe():
    clock = FakeClock()
    lim = RateLimiter(clock=clock)
    assert lim.reserve() == 0.0
    lim.observe({"content-type": "application/json"}, status=200)
    assert [lim.reserve() for _ in range(100)] == [0.0] * 100
    assert lim.rpm is None


def test_a_failed_probe_does_not_serialise_the_run():
    lim = RateLimiter(clock=FakeClock())
    assert lim.reserve() == 0.0
    lim.observe(None, status=None)  # the endpoint did not answer at all
    assert lim.reserve() == 0.0 and lim.reserve() == 0.0


def test_configured_and_learned_the_lower_wins_and_remaining_caps_the_bucket():
    clock = FakeClock()
    lim = RateLimiter(rpm=600, clock=clock)
    clock.advance(1.0)
    assert lim.reserve() == 0.0
    lim.observe({"x-ratelimit-limit-requests": "300"}, status=200)
    assert lim.rpm == 300
    lim.observe({"x-ratelimit-limit-requests": "5000"}, status=200)
    assert lim.rpm == 600  # a higher provider limit does not lift the configured one
    clock.advance(10)  # the bucket refills to its burst ...
    lim.observe({"x-ratelimit-remaining-requests": "0"}, status=200)
    assert lim.reserve() > 0  # ... but the provider says nothing is left


def test_a_429_pauses_for_retry_after_slows_then_recovers():
    clock = FakeClock()
    lim = RateLimiter(rpm=600, clock=clock)
    clock.advance(1.0)
    assert lim.reserve() == 0.0
    lim.observe(None, status=429, retry_after_s=2.0)
    assert lim.reserve() == pytest.approx(2.0)
    clock.advance(2.0)
    assert lim.factor(clock()) < 1.0
    slow = _drive(lim, clock, 5.0)
    clock.advance(RECOVER_S)
    assert lim.factor(clock()) == 1.0
    fast = _drive(lim, clock, 5.0)
    assert len(slow) < len(fast)
    assert lim.snapshot()["rate_limited"] == 1


def test_header_parsing():
    assert parse_duration("1s") == 1.0
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h0m0.5s") == 3600.5
    assert parse_duration("2.5") == 2.5
    assert parse_duration("") is None and parse_duration("1x") is None
    h = RateHeaders.parse(
        {"x-ratelimit-limit-tokens": "150000", "x-ratelimit-reset-tokens": "6m0s"}
    )
    assert (h.limit_tokens, h.reset_tokens_s, h.limit_requests) == (150_000, 360.0, None)
    assert RateHeaders.parse(None).any is False
    # The stand-in writes what the limiter reads.
    for s in (0.02, 1.0, 59.5, 61.25, 360.0):
        assert parse_duration(go_duration(s)) == pytest.approx(s, abs=1e-3)


def test_the_standin_window_counts_and_says_when_to_retry():
    clock = FakeClock(0.0)
    w = _RateWindow(rpm=60, tpm=None, clock=clock, window_s=10.0)  # 10 per 10 s
    for _ in range(10):
        ok, headers, _ = w.take(5)
        clock.advance(0.5)
        assert ok
    ok, headers, retry_s = w.take(5)
    assert not ok and retry_s == pytest.approx(5.0)  # the first leaves at t = 10
    assert headers["x-ratelimit-limit-requests"] == "60"  # named per minute
    assert headers["x-ratelimit-remaining-requests"] == "0"
    clock.advance(retry_s + 1e-6)
    assert w.take(5)[0] and (w.accepted, w.rate_limited) == (11, 1)


def test_one_limiter_per_endpoint_key_and_model():
    a = limiter_for("http://h/v1", "sk-a", "m", 600, None)
    assert limiter_for("http://h/v1", "sk-a", "m", None, None) is a
    assert limiter_for("http://h/v1", "sk-a", "other-model", None, None) is not a
    assert limiter_for("http://h/v1", "sk-b", "m", None, None) is not a
    assert limiter_for("http://h/v1", "sk-a", "m", 300, 9000) is a
    assert (a.rpm, a.tpm) == (300, 9000)  # the smallest configured value wins


# ---------------------------------------------------------------- against the stand-in
def _items(n: int, tag: str = "") -> list[JudgeItem]:
    """Judge items shaped like the demo's: an instruction, a reference, an answer."""
    return [
        JudgeItem(
            f"e{tag}{i}",
            f"c{tag}{i}",
            "task",
            f"Explain in two sentences why item {i} of the list matters to a new reader.",
            None,
            "It matters because it sets the terms the rest of the list builds on.",
            "instruction",
            f"Item {i} matters because the later items refer back to it, so a reader who "
            "skips it misses the definitions that the rest of the discussion relies on.",
        )
        for i in range(n)
    ]


def _server(**kw) -> OpenAICompatServer:
    return OpenAICompatServer(latency_s=0.2, latency_jitter_s=0.1, window_s=WINDOW_S, **kw)


def _all_scored(out, n: int) -> None:
    assert len(out) == n
    assert all(j.status == "ok" and j.score is not None for j in out), [
        (j.status, j.error) for j in out if j.status != "ok"
    ][:3]


def test_the_standin_refuses_an_unpaced_burst():
    """Control: the cap is real, so the tests below could fail."""
    with _server(rpm=RPM) as srv:
        body = json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        ).encode()

        def post(_):
            req = urllib.request.Request(
                srv.base_url + "/chat/completions",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.headers.get("x-ratelimit-limit-requests")
            except urllib.error.HTTPError as e:
                return e.code, e.headers.get("Retry-After")

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(post, range(40)))
    assert sum(c == 200 for c, _ in codes) == RPM * WINDOW_S / 60  # 30 in the window
    assert sum(c == 429 for c, _ in codes) == 10
    assert all(h == str(RPM) for c, h in codes if c == 200)
    assert all(int(h) >= 1 for c, h in codes if c == 429)


@pytest.mark.parametrize("configured", [True, False], ids=["configured", "learned"])
def test_judging_under_a_requests_cap_scores_everything_with_at_most_a_couple_of_429s(
    configured,
):
    n = 40  # past the 30 the first 15 s window holds
    with _server(rpm=RPM) as srv:
        cfg = LLMJudgeConfig(
            model="local-test",
            base_url=srv.base_url,
            concurrency=16,
            max_retries=5,
            rpm=RPM if configured else None,
        )
        judge = LLMJudge(cfg)
        out = judge.judge(_items(n))
        accepted, refused = srv.accepted, srv.rate_limited
    _all_scored(out, n)
    assert accepted == n
    assert refused <= 2
    lim = limiter_for(normalise_base_url(srv.base_url), None, "local-test", None, None)
    assert lim.rpm == RPM
    assert lim.learned_rpm == RPM  # the headers came either way
    assert lim.sent == accepted + refused


def test_judging_under_a_tokens_cap():
    n = 40
    probe = LLMJudge(LLMJudgeConfig(model="local-test", base_url="http://127.0.0.1:9/v1"))
    reqs = probe.requests(_items(n))
    # What the stand-in counts per request: prompt words + max_tokens. A cap of 2
    # requests' worth per second binds long before the (absent) requests cap.
    words = max(len("\n".join(m["content"] for m in r.messages).split()) for r in reqs)
    per_request = words + probe.config.max_tokens
    tpm = 120 * per_request
    # Our estimate (characters / 4) is larger than the stand-in's count: the usage
    # each answer reports gives the difference back.
    assert estimate_tokens(probe.payload(reqs[0])) > per_request
    with _server(tpm=tpm) as srv:
        cfg = LLMJudgeConfig(
            model="local-test", base_url=srv.base_url, concurrency=16, max_retries=5, tpm=tpm
        )
        out = LLMJudge(cfg).judge(_items(n))
        accepted, refused = srv.accepted, srv.rate_limited
    _all_scored(out, n)
    assert accepted == n and refused <= 2


def test_two_judges_on_one_endpoint_share_one_limiter():
    n = 20  # each: 40 together, past the 30 the window holds; each alone would fit
    with _server(rpm=RPM) as srv:
        cfgs = [
            LLMJudgeConfig(
                name=f"judge{t}",
                model="local-test",
                base_url=srv.base_url,
                temperature=t,
                concurrency=16,
                max_retries=5,
                rpm=RPM,
            )
            for t in (0.0, 0.5)
        ]
        judges = [LLMJudge(c) for c in cfgs]
        assert judges[0].judge_id != judges[1].judge_id
        outs: dict[int, list] = {}
        start = threading.Barrier(2)

        def run(k: int) -> None:
            start.wait()
            outs[k] = judges[k].judge(_items(n, tag=str(k)))

        threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted, refused = srv.accepted, srv.rate_limited
    for k in (0, 1):
        _all_scored(outs[k], n)
    assert accepted == 2 * n
    assert refused <= 2
    lim = limiter_for(normalise_base_url(srv.base_url), None, "local-test", None, None)
    assert lim.sent == accepted + refused  # every request of both went through it
