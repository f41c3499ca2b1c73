"""Judging engine throughput against the local OpenAI-compatible server, and a cached rerun.

N judgments (default 2,000) go through :class:`LLMJudge` (the real engine: the OpenAI
wire format over aiohttp, per-endpoint semaphore, retries, ledger, SQLite cache) to
``OpenAICompatServer(latency_s=0.05)``. With a fixed 50 ms answer time the ideal
rate at concurrency C is C / 0.05 requests/s (1,280/s at 64); we print the achieved
rate as a fraction of it. A second run with the warm cache should send nothing:
its request count is taken at the server.

The server runs in its own process (``python -m devtools.openai_standin``), as a real
endpoint would: in-process it would share the GIL with the client it measures.

    python bench/judging.py                 # 2,000 judgments, concurrency 64
    python bench/judging.py --n 500 --concurrency 32
"""

from __future__ import annotations

import argparse
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
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="judgments per run (default 2000)")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    ap.add_argument("--latency", type=float, default=0.05, help="server answer time, s (0.05)")
    args = ap.parse_args()

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

        # The engine imports aiohttp lazily; that one-off import is timed on its
        # own, not spread over the requests.
        t0 = time.perf_counter()
        import aiohttp  # noqa: F401

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
    print(
        json.dumps(
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
    )


if __name__ == "__main__":
    main()
