"""Review at scale: queue and example-view query latency, and time to a rendered example in Chromium.

Uses the synthetic database of ``bench/bench_db.py`` (shared with the analytics
bench; default 200,000 seen examples x 5 = 1,000,000 candidates, about 5,000,000
judgments, one selection, a few thousand review events), built with SQL ``range()``
the first time and then reused from ``bench/out/`` (``--rebuild`` to rebuild).
Measures, side by side:

* ``queue``: what one render of the queue runs (counts + one page), over a mix of
  filters and sorts (default order, deep pages, kind + score sort, judge
  disagreement, unreviewed + decoding setting + score range, full-text search);
* ``naive queue``: the same default page computed straight from candidates and
  judgments without the per-selection summary (the baseline the summary replaces);
* ``example view``: every query behind one example (example, candidates with
  settings and scores, all judgments, review state, effective pick);
* ``render``: in Chromium (Playwright), from navigation to the example view fully
  rendered (its last element, the history, on screen): a cold first load, fresh
  page loads of other examples, and in-app "Next" clicks.

    python bench/review_ui.py [--examples 200000] [--rounds 40] [--no-browser] [--rebuild]

Targets at 1M candidates: p95 query <= 150 ms, render <= 2.5 s. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.bench_db import build_bench_db  # noqa: E402
from reset_core.review.events import effective_picks  # noqa: E402
from reset_core.review.queue import (  # noqa: E402
    QueueFilter,
    example_view,
    queue_counts,
    queue_page,
    refresh_queue,
)
from reset_core.store import connect, one  # noqa: E402

OUT = ROOT / "bench" / "out"
SELECTION_ID = "sel:bench"  # the one selection bench_db.py builds


def bench_db(n_examples: int, per_example: int, rebuild: bool) -> tuple[Path, float]:
    """The cached bench database (built when missing or of another size); seconds spent."""
    path = OUT / f"bench_{n_examples}x{per_example}.duckdb"
    t = time.perf_counter()
    if path.exists() and not rebuild:
        try:
            con = connect(path)
            ok = (
                one(
                    con,
                    "SELECT count(*) FROM selection_scores WHERE selection_id = ?",
                    [SELECTION_ID],
                )[0]
                == n_examples * per_example
            )
            con.close()
            if ok:
                return path, time.perf_counter() - t
        except Exception as e:  # unreadable or another schema: rebuild
            print(f"rebuilding {path}: {e}")
    OUT.mkdir(parents=True, exist_ok=True)
    build_bench_db(path, n_examples, per_example)
    return path, time.perf_counter() - t


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


NAIVE_QUEUE = """
WITH per_aspect AS (
    SELECT candidate_id, aspect, max(score) - min(score) AS spread FROM judgments
    GROUP BY candidate_id, aspect),
per_ex AS (
    SELECT s.example_id, max(s.score) FILTER (WHERE s.picked) AS pick_score,
           max(pa.spread) AS disagreement, count(DISTINCT s.candidate_id) AS n_candidates
    FROM selection_scores s LEFT JOIN per_aspect pa USING (candidate_id)
    WHERE s.selection_id = ? GROUP BY s.example_id)
SELECT e.example_id, e.kind, left(e.instruction, 160), p.* EXCLUDE (example_id),
       count(*) OVER () AS matching
FROM per_ex p JOIN examples e USING (example_id)
ORDER BY e.example_id LIMIT 25 OFFSET ?
"""


def bench_queries(db: Path, n_examples: int, rounds: int, rng: random.Random) -> dict:
    con = connect(db)
    t = time.perf_counter()
    refresh_queue(con, SELECTION_ID, force=True)
    build_s = time.perf_counter() - t
    n_pages = n_examples // 25
    filters = [
        lambda: (QueueFilter(), rng.randrange(n_pages)),
        lambda: (QueueFilter(kinds=["context"], sort="lowest pick score first"), rng.randrange(50)),
        lambda: (
            QueueFilter(min_disagreement=0.9, sort="most judge disagreement first"),
            rng.randrange(20),
        ),
        lambda: (
            QueueFilter(reviewed=False, settings=["s:1"], score_min=0.3, score_max=0.9),
            rng.randrange(100),
        ),
        lambda: (QueueFilter(search=rng.choice(["topic 123", "number 4242", "passage 77"])), 0),
        lambda: (QueueFilter(overridden=True, sources=["bench"], splits=["seen"]), 0),
    ]
    queue_ms, view_ms = [], []
    for i in range(rounds):
        f, page = filters[i % len(filters)]()
        queue_ms.append(
            timed(
                lambda f=f, page=page: (
                    queue_counts(con, SELECTION_ID, f),
                    queue_page(con, SELECTION_ID, f, page, 25),
                )
            )
        )
        ex = f"e:{rng.randrange(n_examples)}"
        view_ms.append(timed(lambda ex=ex: example_view(con, ex, SELECTION_ID)))
    naive_ms = [
        timed(
            lambda: con.execute(NAIVE_QUEUE, [SELECTION_ID, rng.randrange(n_pages) * 25]).fetchall()
        )
        for _ in range(3)
    ]
    picks_ms = [timed(lambda: effective_picks(con, SELECTION_ID)) for _ in range(3)]
    con.close()
    return {
        "queue_build_s": round(build_s, 2),
        "queue_p50_ms": round(pct(queue_ms, 0.5), 1),
        "queue_p95_ms": round(pct(queue_ms, 0.95), 1),
        "naive_queue_p50_ms": round(pct(naive_ms, 0.5), 1),
        "example_view_p50_ms": round(pct(view_ms, 0.5), 1),
        "example_view_p95_ms": round(pct(view_ms, 0.95), 1),
        "effective_picks_all_ms": round(statistics.median(picks_ms), 1),
    }


def bench_render(db: Path, n_examples: int, rounds: int, rng: random.Random) -> dict:
    from browser import chromium_page, streamlit_server

    def rendered(page, ex: str) -> None:
        # The history expander is the last element the script writes.
        page.get_by_text(f"Example {ex}").wait_for(timeout=60_000)
        page.get_by_text("History (").first.wait_for(timeout=60_000)
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)

    cold, fresh, nxt = [], [], []
    with streamlit_server(db) as url, chromium_page() as page:
        ex = f"e:{rng.randrange(n_examples)}"
        t = time.perf_counter()
        page.goto(f"{url}/review?example={ex}")
        rendered(page, ex)
        cold.append(time.perf_counter() - t)
        for _ in range(rounds):
            ex = f"e:{rng.randrange(n_examples)}"
            t = time.perf_counter()
            page.goto(f"{url}/review?example={ex}")
            rendered(page, ex)
            fresh.append(time.perf_counter() - t)
        # In-app: open the queue's first example, then walk it with Next.
        page.goto(f"{url}/review")
        page.get_by_text("Matching examples").wait_for(timeout=60_000)
        page.get_by_role("button", name="Review next unreviewed").click()
        page.get_by_text("History (").first.wait_for(timeout=60_000)
        current = (
            page.get_by_role("heading", name=re.compile("^Example ")).first.inner_text().split()[-1]
        )
        for _ in range(min(rounds, 10)):
            t = time.perf_counter()
            page.locator(".st-key-rv_next button").first.click()
            page.get_by_text(f"Example {current}", exact=True).wait_for(
                state="detached", timeout=60_000
            )
            page.get_by_text("History (").first.wait_for(timeout=60_000)
            page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
            nxt.append(time.perf_counter() - t)
            current = (
                page.get_by_role("heading", name=re.compile("^Example "))
                .first.inner_text()
                .split()[-1]
            )
    return {
        "render_cold_s": round(cold[0], 2),
        "render_p50_s": round(pct(fresh, 0.5), 2),
        "render_p95_s": round(pct(fresh, 0.95), 2),
        "next_click_p50_s": round(pct(nxt, 0.5), 2),
        "next_click_p95_s": round(pct(nxt, 0.95), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=200_000, help="examples (default 200000)")
    ap.add_argument("--per-example", type=int, default=5, help="candidates each (default 5)")
    ap.add_argument("--rounds", type=int, default=40, help="timed queries per kind (default 40)")
    ap.add_argument("--render-rounds", type=int, default=8, help="page loads timed (default 8)")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium render timing")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    args = ap.parse_args()
    rng = random.Random(0)
    db, ready_s = bench_db(args.examples, args.per_example, args.rebuild)
    figures = {"candidates": args.examples * args.per_example, "db_ready_s": round(ready_s, 1)}
    figures.update(bench_queries(db, args.examples, args.rounds, rng))
    figures["naive_over_ours_queue_ratio"] = round(
        figures["naive_queue_p50_ms"] / figures["queue_p50_ms"], 1
    )
    if not args.no_browser:
        figures.update(bench_render(db, args.examples, args.render_rounds, rng))
    print(f"review at {figures['candidates']:,} candidates")
    rows = [
        (
            "queue (counts + page), p50 / p95",
            f"{figures['queue_p50_ms']} / {figures['queue_p95_ms']} ms",
            "p95 <= 150 ms",
        ),
        (
            "naive queue from judgments, p50",
            f"{figures['naive_queue_p50_ms']} ms",
            f"x{figures['naive_over_ours_queue_ratio']} ours",
        ),
        (
            "example view queries, p50 / p95",
            f"{figures['example_view_p50_ms']} / {figures['example_view_p95_ms']} ms",
            "p95 <= 150 ms",
        ),
        (
            "effective picks, whole selection",
            f"{figures['effective_picks_all_ms']} ms",
            "export path",
        ),
        ("queue summary build (once)", f"{figures['queue_build_s']} s", ""),
    ]
    if "render_p50_s" in figures:
        rows += [
            ("render, cold first load", f"{figures['render_cold_s']} s", ""),
            (
                "render, page load p50 / p95",
                f"{figures['render_p50_s']} / {figures['render_p95_s']} s",
                "<= 2.5 s",
            ),
            (
                "render, Next click p50 / p95",
                f"{figures['next_click_p50_s']} / {figures['next_click_p95_s']} s",
                "<= 2.5 s",
            ),
        ]
    for name, value, target in rows:
        print(f"  {name:<36}{value:>22}   {target}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
