"""Judging engine throughput against the local OpenAI-compatible server, a cached rerun,
and judging under a provider's rate limit.

N judgments (default 2,000) go through :class:`LLMJudge` (the real engine: the openai
client on its aiohttp transport, per-endpoint semaphore and rate limiter, retries,
ledger, SQLite cache) to ``OpenAICompatServer(latency_s=0.05)``. With a fixed 50 ms answer time the ideal
rate at concurrency C is C / 0.05 requests/s (1,280/s at 64); we print the achieved
rate as a fraction of it. A second run with the warm cache should send nothing:
its request count is taken at the server.

The server runs in its own process (``python -m devtools.openai_standin``), as a real
endpoint would: in-process it would share the GIL with the client it measures.

Rate-limited case (``--rl-minutes``, default 2; 0 skips it): the stand-in enforces
``--rl-rpm`` requests per minute (default 1,200) over a rolling 60 s window, answers in
~1 s (800 ms +- 400 ms, uniform), and the judge prompts are those of the demo set's
examples (their reference answers as the candidates). Each run lasts ``--rl-minutes``
on a fresh stand-in; the figures are counted at the stand-in over that interval:
``fraction_of_limit`` = accepted requests per minute / the limit, ``share_429`` = 429
answers / all requests. Three runs, side by side:

- ours, ``rpm`` configured on the judge;
- ours, no limit configured (learned from the ``x-ratelimit-*`` headers): ``learned_*``;
- the plain openai client as a user would write it (``AsyncOpenAI`` with its default
  retries, under a semaphore of the same concurrency): ``plain_client_*``, with the
  calls it lost once its retries ran out.

    python bench/judging.py                 # 2,000 judgments, concurrency 64; 3 x 2 min
    python bench/judging.py --n 500 --concurrency 32 --rl-minutes 0.5
    python bench/judging.py --rl-only       # only the rate-limited case
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from reset_core.judging.base import JudgeItem
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig, count_tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests_at_server(base_url: str) -> int:
    with urllib.request.urlopen(base_url + "/stats", timeout=5) as r:
        return int(json.loads(r.read())["requests"])


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "/stats", timeout=5) as r:
        return json.loads(r.read())


def _standin(port: int, *flags: str) -> subprocess.Popen:
    """The stand-in in its own process (see the module docstring), listening on ``port``."""
    server = subprocess.Popen(
        [sys.executable, "-m", "devtools.openai_standin", "--port", str(port), *flags],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,  # devtools/ sits at the repo root
    )
    server.stdout.readline()  # "serving ..." once it listens
    return server


def demo_items(n: int) -> list[JudgeItem]:
    """``n`` judge items shaped as the demo's: every aspect an example's kind needs,
    its reference answer (or, without one, its context's first sentences) as the
    candidate; the set is cycled with fresh candidate ids to reach ``n``."""
    from reset_core.paths import DEMO_FILE

    rows = [json.loads(line) for line in Path(DEMO_FILE).read_text().splitlines() if line]
    base = []
    for r in rows:
        answer = r.get("reference") or ". ".join((r.get("context") or "").split(". ")[:2])
        aspects = (
            ["task", "instruction"] if r["kind"] == "instruction" else ["task", "faithfulness"]
        )
        for a in aspects:
            base.append((r, a, answer or "No answer."))
    out = []
    for i in range(n):
        r, aspect, answer = base[i % len(base)]
        out.append(
            JudgeItem(
                r["id"],
                f"{r['id']}-c{i // len(base)}",
                aspect,
                r["instruction"],
                r.get("context"),
                r.get("reference"),
                r["kind"],
                answer,
            )
        )
    return out


async def _for(minutes: float, base: str, work) -> tuple[dict, dict]:
    """Run ``work`` (a coroutine) for ``minutes``; stand-in stats at start and end."""
    task = asyncio.ensure_future(work)
    s0 = await asyncio.to_thread(_stats, base)
    await asyncio.sleep(minutes * 60)
    s1 = await asyncio.to_thread(_stats, base)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return s0, s1


def _figures(s0: dict, s1: dict, rpm: int, minutes: float) -> dict:
    accepted = s1["accepted"] - s0["accepted"]
    refused = s1["rate_limited"] - s0["rate_limited"]
    sent = accepted + refused
    return {
        "accepted": accepted,
        "http_429": refused,
        "fraction_of_limit": round(accepted / (rpm * minutes), 4),
        "share_429": round(refused / sent, 4) if sent else 0.0,
    }


def rate_limited(args) -> dict:
    """The three rate-limited runs; their figures, keyed as the JSON line names them."""
    from reset_core.judging.ratelimit import limiter_for, reset_limiters

    flags = ["--rpm", str(args.rl_rpm), "--latency-ms", "800", "--latency-jitter-ms", "400"]
    n = int(args.rl_rpm * args.rl_minutes * 1.5) + 100  # more than the run can send
    items = demo_items(n)
    out: dict = {}
    rows = [("run", "accepted", "429s", "fraction of limit", "share 429", "lost calls")]

    for name, rpm in (("ours", args.rl_rpm), ("learned", None)):
        reset_limiters()
        port = _free_port()
        server = _standin(port, *flags)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            cfg = LLMJudgeConfig(
                model="local-test", base_url=base, concurrency=args.rl_concurrency, rpm=rpm
            )
            judge = LLMJudge(cfg)
            with asyncio.Runner() as runner:
                s0, s1 = runner.run(_for(args.rl_minutes, base, judge.ajudge(items)))
            lim = limiter_for(base, None, "local-test", None, None).snapshot()
        finally:
            server.terminate()
            server.wait(timeout=10)
        f = _figures(s0, s1, args.rl_rpm, args.rl_minutes)
        out[name] = {**f, "learned_rpm": lim["learned_rpm"]}
        rows.append(
            (name, f["accepted"], f["http_429"], f["fraction_of_limit"], f["share_429"], "-")
        )

    # What a user would write: the openai client, its default retries, a semaphore.
    port = _free_port()
    server = _standin(port, *flags)
    try:
        import openai

        base = f"http://127.0.0.1:{port}/v1"
        judge = LLMJudge(LLMJudgeConfig(model="local-test", base_url=base))
        bodies = [judge.payload(r) for r in judge.requests(items)]
        lost = 0

        async def plain() -> None:
            nonlocal lost
            sem = asyncio.Semaphore(args.rl_concurrency)
            async with openai.AsyncOpenAI(base_url=base, api_key="none") as client:

                async def one(body: dict) -> None:
                    nonlocal lost
                    async with sem:
                        try:
                            await client.chat.completions.create(**body)
                        except openai.APIError:
                            lost += 1  # retries spent: this verdict is missing

                await asyncio.gather(*(one(b) for b in bodies))

        with asyncio.Runner() as runner:
            s0, s1 = runner.run(_for(args.rl_minutes, base, plain()))
    finally:
        server.terminate()
        server.wait(timeout=10)
    f = _figures(s0, s1, args.rl_rpm, args.rl_minutes)
    out["plain"] = {**f, "lost_calls": lost}
    rows.append(
        (
            "plain openai client",
            f["accepted"],
            f["http_429"],
            f["fraction_of_limit"],
            f["share_429"],
            lost,
        )
    )
    prompt_tokens = sorted(
        count_tokens("\n".join(m["content"] for m in r.messages), "approx")
        for r in judge.requests(items[: min(len(items), 2000)])
    )
    out["median_prompt_tokens"] = prompt_tokens[len(prompt_tokens) // 2]
    print(
        f"rate-limited: {args.rl_rpm} requests/min enforced over a rolling minute, "
        f"answers in 800 +- 400 ms, {args.rl_minutes:g} min per run, concurrency "
        f"{args.rl_concurrency}, demo judge prompts (median {out['median_prompt_tokens']} tokens)"
    )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="judgments per run (default 2000)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    ap.add_argument("--latency", type=float, default=0.05, help="server answer time, s (0.05)")
    ap.add_argument("--rl-rpm", type=int, default=1200, help="enforced requests/min (1200)")
    ap.add_argument(
        "--rl-minutes", type=float, default=2.0, help="minutes per rate-limited run (2; 0 skips)"
    )
    ap.add_argument(
        "--rl-concurrency", type=int, default=64, help="requests in flight, rate-limited runs (64)"
    )
    ap.add_argument("--rl-only", action="store_true", help="only the rate-limited case")
    args = ap.parse_args()
    figures: dict = {}
    if not args.rl_only:
        figures.update(throughput(args))
    if args.rl_minutes > 0:
        rl = rate_limited(args)
        figures.update(
            {
                "rl_rpm": args.rl_rpm,
                "rl_minutes": args.rl_minutes,
                "rl_median_prompt_tokens": rl["median_prompt_tokens"],
                "fraction_of_limit": rl["ours"]["fraction_of_limit"],
                "share_429": rl["ours"]["share_429"],
                "learned_fraction_of_limit": rl["learned"]["fraction_of_limit"],
                "learned_share_429": rl["learned"]["share_429"],
                "learned_rpm": rl["learned"]["learned_rpm"],
                "plain_client_fraction_of_limit": rl["plain"]["fraction_of_limit"],
                "plain_client_share_429": rl["plain"]["share_429"],
                "plain_client_lost_calls": rl["plain"]["lost_calls"],
            }
        )
        print(
            f"fraction of limit: {rl['ours']['fraction_of_limit']:.3f} (target >= 0.95); "
            f"share of 429s: {rl['ours']['share_429']:.4f} (target <= 0.01)"
        )
    print(json.dumps(figures))


def throughput(args) -> dict:
    """The throughput case and the cached rerun (module docstring); their figures."""

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.openai_standin",
            "--port",
            str(port),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,  # devtools/ sits at the repo root
    )
    try:
        server.stdout.readline()  # "serving ..." once it listens
        base = f"http://127.0.0.1:{port}/v1"
        items = [
            JudgeItem(
                f"e{i // 4}",
                f"c{i}",
                "task",
                f"Summarise item {i // 4} in one sentence.",
                None,
                "A short reference answer.",
                "instruction",
                f"Candidate answer number {i} with a few words of text.",
            )
            for i in range(args.n)
        ]
        cfg = LLMJudgeConfig(model="local-test", base_url=base, concurrency=args.concurrency)
        cache = Path(tempfile.mkdtemp()) / "judge_cache.sqlite"

        # The engine imports openai and aiohttp lazily; that one-off import is timed on its
        # own, not spread over the requests.
        t0 = time.perf_counter()
        import aiohttp  # noqa: F401
        import openai  # noqa: F401

        import_s = time.perf_counter() - t0

        before = _requests_at_server(base)
        judge = LLMJudge(cfg, cache=cache)
        t0, c0, s0 = time.perf_counter(), time.process_time(), _cpu_s(server.pid)
        out = judge.judge(items)
        s1 = _cpu_s(server.pid)
        cold_s = time.perf_counter() - t0
        client_cpu_ms = (time.process_time() - c0) / len(items) * 1000
        cold_requests = _requests_at_server(base) - before
        ok = sum(j.status == "ok" for j in out)

        before = _requests_at_server(base)
        judge2 = LLMJudge(cfg, cache=cache)
        t0 = time.perf_counter()
        out2 = judge2.judge(items)
        warm_s = time.perf_counter() - t0
        warm_requests = _requests_at_server(base) - before
    finally:
        server.terminate()
        server.wait(timeout=10)

    server_cpu_ms = None if s0 is None or s1 is None else (s1 - s0) / cold_requests * 1000
    ideal = args.concurrency / args.latency
    achieved = cold_requests / cold_s
    rows = [
        ("run", "judgments", "ok", "requests at server", "seconds", "requests/s"),
        ("cold", len(out), ok, cold_requests, f"{cold_s:.2f}", f"{achieved:.0f}"),
        (
            "warm cache",
            len(out2),
            sum(j.status == "ok" for j in out2),
            warm_requests,
            f"{warm_s:.2f}",
            "-",
        ),
        ("ideal", "", "", "", "", f"{ideal:.0f} (= {args.concurrency} / {args.latency}s)"),
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    print(f"one-off import of the HTTP transport before the cold run: {import_s:.2f} s")
    print(
        f"client CPU per request: {client_cpu_ms:.2f} ms -> at most {1000 / client_cpu_ms:.0f} "
        "requests/s on one free core (the engine is one asyncio loop)"
    )
    if server_cpu_ms is not None:
        need = ideal * (client_cpu_ms + server_cpu_ms) / 1000
        print(
            f"server CPU per request: {server_cpu_ms:.2f} ms; the ideal rate needs "
            f"{need:.2f} cores for client + server, this machine has {os.cpu_count()}"
        )
    print(
        f"fraction of ideal: {achieved / ideal:.2f} (target >= 0.8); rerun requests: {warm_requests} (target 0)"
    )
    return dict(
        {
            "n_judgments": len(out),
            "concurrency": args.concurrency,
            "latency_s": args.latency,
            "ideal_requests_per_s": round(ideal, 1),
            "achieved_requests_per_s": round(achieved, 1),
            "fraction_of_ideal": round(achieved / ideal, 3),
            "cold_run_s": round(cold_s, 3),
            "client_cpu_ms_per_request": round(client_cpu_ms, 3),
            "cpu_bound_ceiling_requests_per_s": round(1000 / client_cpu_ms, 1),
            "server_cpu_ms_per_request": (
                None if server_cpu_ms is None else round(server_cpu_ms, 3)
            ),
            "cores": os.cpu_count(),
            "ok_judgments": ok,
            "rerun_requests": warm_requests,
            "rerun_s": round(warm_s, 3),
            "transport_import_s": round(import_s, 3),
        }
    )


if __name__ == "__main__":
    main()
