"""Analytics page latency at 1,000,000 candidates: ours (summaries) against raw-table queries.

Builds the benchmark database with ``bench/bench_db.py`` (200,000 seen examples × 5
candidates, 5,000,000 judgments by two judges, one selection, 8,000 review events),
refreshes the analytics summaries once (timed: it runs once per data change, not per
page view), then times, over ``--rounds`` rounds, everything each page computes with its
default controls: the staleness check, the SQL, and the statistics with their bootstrap
intervals. The two Review landings are what Review runs when the Agreement heatmap or
a Trade-off region opens it (banner counts, queue counts, the first queue page). Side by
side, the same per-setting and judge-pair aggregates computed straight from the raw
``judgments``/``candidates`` tables (the naive way) for a ratio.

    python bench/analytics.py [--examples 200000] [--rounds 20] [--db /tmp/analytics_bench.duckdb]
                              [--reuse]

Target: p95 of each page's work at most 300 ms. Last line: one JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_db import build_bench_db  # noqa: E402

from reset_core.analytics import agreement, judge_bias, tradeoff  # noqa: E402
from reset_core.analytics import decoding as decoding_analysis  # noqa: E402
from reset_core.analytics import summaries as analytics  # noqa: E402
from reset_core.review import links as review_links  # noqa: E402
from reset_core.review.queue import (  # noqa: E402
    QueueFilter,
    queue_counts,
    queue_page,
    refresh_queue,
)
from reset_core.store import connect, one  # noqa: E402


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


SELECTION_ID = "sel:bench"  # the one selection bench_db.py builds


def review_landing(con, params: dict) -> list:
    """What Review runs when an analytics link opens it: banner counts, queue counts, page."""
    link = review_links.parse(params)
    f = QueueFilter(link=link)
    return [
        lambda: review_links.counts(con, link),
        lambda: queue_counts(con, SELECTION_ID, f),
        lambda: queue_page(con, SELECTION_ID, f, 0, 25),
    ]


def page_work(con) -> dict:
    """What each page runs on a view, with its default controls, as named callables."""
    ja, jb = agreement.judges_for(con, "task")[:2]
    return {
        "agreement": [
            lambda: analytics.is_fresh(con),
            lambda: agreement.judge_agreement(con, "task"),
            lambda: agreement.judge_vs_human(con, "task"),
            lambda: agreement.judge_vs_human_picks(con),
            lambda: agreement.human_vs_human(con, "task"),
        ],
        "tradeoff": [
            lambda: analytics.is_fresh(con),
            lambda: analytics.missing_summary(con),
            lambda: tradeoff.tradeoff_points(con, level="setting"),
            lambda: tradeoff.model_view(con),
        ],
        "tradeoff_candidates": [
            lambda: analytics.is_fresh(con),
            lambda: analytics.missing_summary(con),
            lambda: tradeoff.tradeoff_points(con, level="candidate"),
            lambda: tradeoff.model_view(con),
        ],
        "decoding": [
            lambda: analytics.is_fresh(con),
            lambda: analytics.missing_summary(con),
            lambda: decoding_analysis.setting_report(con),
            lambda: judge_bias.length_bias(con),
        ],
        "review_disagreements": [
            lambda: analytics.is_fresh(con),
            *review_landing(con, review_links.disagreement_query(ja, jb, "task", 0.25)),
        ],
        "review_region": [
            lambda: analytics.is_fresh(con),
            *review_landing(con, review_links.region_query(setting=["s:1"], split="seen")),
        ],
    }


NAIVE = {
    # the trade-off/decoding aggregate straight from the raw tables
    "tradeoff": """
        SELECT c.setting_id, c.model_id, j.aspect, avg(j.score), count(*) FILTER (WHERE j.score IS NULL)
        FROM judgments j JOIN candidates c USING (candidate_id) GROUP BY ALL""",
    # the judge-pair pivot for one aspect over every candidate
    "agreement": """
        SELECT a.score, b.score FROM judgments a JOIN judgments b USING (candidate_id, aspect)
        WHERE a.aspect = 'task' AND a.judge_id = 'judge:llm-a' AND b.judge_id = 'judge:llm-b'
          AND a.score IS NOT NULL AND b.score IS NOT NULL""",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--examples", type=int, default=200_000, help="seen examples (200000 = 1M candidates)"
    )
    ap.add_argument("--rounds", type=int, default=20, help="timed rounds per page (20)")
    ap.add_argument("--naive-rounds", type=int, default=5, help="timed rounds per naive query (5)")
    ap.add_argument("--db", default="/tmp/analytics_bench.duckdb")
    ap.add_argument("--reuse", action="store_true", help="reuse --db if it exists")
    args = ap.parse_args()

    if not (args.reuse and Path(args.db).exists()):
        t = time.perf_counter()
        counts = build_bench_db(args.db, args.examples)
        print(f"built {args.db} in {time.perf_counter() - t:.0f}s: {counts}")
    con = connect(args.db)
    n_cand = one(con, "SELECT count(*) FROM candidates")[0]
    t = time.perf_counter()
    analytics.refresh(con)
    refresh_s = time.perf_counter() - t
    refresh_queue(con, SELECTION_ID)  # the Review queue summary the landing pages read

    work = page_work(con)
    for fns in work.values():  # warm the caches once, as a running app would be
        for f in fns:
            f()
    times: dict[str, list[float]] = {k: [] for k in work}
    calls: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for page, fns in work.items():
            total = 0.0
            for i, f in enumerate(fns):
                t = time.perf_counter()
                f()
                dt = time.perf_counter() - t
                calls.setdefault(f"{page}[{i}]", []).append(dt)
                total += dt
            times[page].append(total)
    naive = {}
    for name, sql in NAIVE.items():
        ts = []
        for _ in range(args.naive_rounds):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            ts.append(time.perf_counter() - t)
        naive[name] = ts

    print(
        f"\n{n_cand:,} candidates; summaries refreshed in {refresh_s:.1f}s (once per data change)"
    )
    print(f"{'page':<24}{'p50 ms':>10}{'p95 ms':>10}   target 300 ms")
    for page, ts in times.items():
        print(f"{page:<24}{statistics.median(ts) * 1000:>10.0f}{p95(ts) * 1000:>10.0f}")
    print(f"\n{'call':<28}{'p95 ms':>10}")
    for name, ts in calls.items():
        print(f"{name:<28}{p95(ts) * 1000:>10.0f}")
    print(f"\n{'naive raw-table query':<28}{'p95 ms':>10}{'ours p95 ms':>12}{'ratio':>8}")
    ours_tradeoff = p95(calls["tradeoff[2]"])
    ours_agree = p95(calls["agreement[1]"])
    for name, ours in (("tradeoff", ours_tradeoff), ("agreement", ours_agree)):
        print(
            f"{name:<28}{p95(naive[name]) * 1000:>10.0f}{ours * 1000:>12.0f}"
            f"{p95(naive[name]) / ours:>8.1f}"
        )
    figures = {"candidates": n_cand, "summary_refresh_s": round(refresh_s, 2)}
    for page, ts in times.items():
        figures[f"{page}_p95_ms"] = round(p95(ts) * 1000, 1)
    figures["naive_tradeoff_p95_ms"] = round(p95(naive["tradeoff"]) * 1000, 1)
    figures["naive_agreement_pivot_p95_ms"] = round(p95(naive["agreement"]) * 1000, 1)
    figures["tradeoff_query_ratio"] = round(p95(naive["tradeoff"]) / ours_tradeoff, 1)
    figures["agreement_pivot_plus_stats_ratio"] = round(p95(naive["agreement"]) / ours_agree, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
