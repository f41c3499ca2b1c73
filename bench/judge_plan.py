"""The judging plan and cost estimate at scale: counted in DuckDB against per-item Python.

What the Judge page and ``reset-studio judge`` show before a launch: how many
(judge, candidate, aspect) items still need a verdict, the requests, prompt tokens and
cost of an LLM judge, and the duration. Ours: :func:`estimate_plan` (one counting query
per judge set, prompt tokens from text lengths) plus :func:`estimate_judging`. The
baseline is the per-item path the estimate used before: plan every item as an Arrow
row with its texts, render every LLM prompt and count its characters (what a user of
the library would write with ``plan_items`` and ``LLMJudge.estimate``). Both must give
the same figures; the bench checks it.

Uses ``bench/bench_db.py``'s database (200,000 examples x 5 = 1,000,000 candidates by
default, cached in ``bench/out/``). The per-item baseline with an LLM judge renders
two million prompts (about 11 minutes on a busy 2-core machine), so it runs only with
``--llm-baseline``; by default the baseline is timed on the offline panel, and the LLM
figures of ours are checked against the baseline on the test split's answers (1% of
the examples).

    python bench/judge_plan.py [--examples 200000] [--llm-baseline] [--rebuild]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.review_ui import bench_db  # noqa: E402
from reset_core.judging.launch import (  # noqa: E402
    JudgePlan,
    cache_path,
    estimate_judging,
    estimate_plan,
    llm_spec,
    offline_specs,
    plan_items,
)
from reset_core.judging.llm_judge import LLMJudge, LLMJudgeConfig  # noqa: E402
from reset_core.judging.worker import build_judge, items_from_table  # noqa: E402
from reset_core.store import connect  # noqa: E402


def ours(con, specs, plan, cache) -> tuple[float, dict, int]:
    t = time.perf_counter()
    est = estimate_plan(con, specs, plan, cache=cache)
    n = estimate_judging(con, specs, est).n_items
    return time.perf_counter() - t, est, n


def per_item(con, specs, plan, cache) -> tuple[float, dict, int]:
    """The former path: every item planned as a row, every prompt rendered and counted."""
    import pyarrow as pa

    t = time.perf_counter()
    items = plan_items(con, specs, plan)
    est = {}
    for spec in specs:
        judge = build_judge(spec, cache=cache)
        mine = items.filter(pa.compute.equal(items["judge_id"], judge.judge_id))
        if isinstance(judge, LLMJudge):
            est[judge.judge_id] = vars(judge.estimate(items_from_table(mine)))
        else:
            est[judge.judge_id] = {"n_items": mine.num_rows}
    n = estimate_judging(con, specs, items).n_items
    return time.perf_counter() - t, est, n


def same(a: dict, b: dict) -> bool:
    return all(
        abs(a[j][k] - v) <= 1e-9 * max(1.0, abs(v)) for j in b for k, v in b[j].items()
    ) and set(a) == set(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=200_000)
    ap.add_argument("--per-example", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of ours (median)")
    ap.add_argument("--llm-baseline", action="store_true", help="time the per-item LLM path")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    db, _ = bench_db(args.examples, args.per_example, args.rebuild)
    con = connect(db)
    cache = cache_path(db)
    llm = llm_spec(
        con,
        LLMJudgeConfig(model="gpt-4o-mini", price_input_per_mtok=0.15, price_output_per_mtok=0.6),
    )
    offline = offline_specs()
    plan = JudgePlan()
    figures: dict = {"candidates": args.examples * args.per_example}
    rows = []
    for name, specs in (("offline panel", offline), ("offline panel + LLM", [*offline, llm])):
        times = []
        for _ in range(args.rounds):
            s, est, n = ours(con, specs, plan, cache)
            times.append(s)
        key = "llm" if llm in specs else "offline"
        figures[f"ours_{key}_s"] = round(statistics.median(times), 2)
        figures[f"{key}_items"] = n
        rows.append((f"ours: {name}", f"{statistics.median(times):.2f} s", f"{n:,} items"))
        if key == "offline" or args.llm_baseline:
            s, base, n_base = per_item(con, specs, plan, cache)
            assert n_base == n and same(est, base), "ours and the per-item estimate differ"
            figures[f"per_item_{key}_s"] = round(s, 2)
            figures[f"{key}_ratio"] = round(s / statistics.median(times), 1)
            rows.append((f"per item: {name}", f"{s:.2f} s", "same figures"))
    # The LLM figures checked against the per-item path on a small plan: the test answers.
    small = JudgePlan(splits=["test_seen", "test_unseen"])
    _, a, _ = ours(con, [llm], small, cache)
    _, b, _ = per_item(con, [llm], small, cache)
    figures["llm_figures_equal"] = same(a, b)
    con.close()
    width = max(len(r[0]) for r in rows)
    print(f"estimate before a judging launch, {figures['candidates']:,} candidates")
    for label, t, note in rows:
        print(f"  {label:<{width}}  {t:>10}  {note}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
