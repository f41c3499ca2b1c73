"""Scoring at scale: live re-rank, saving a selection, and the Review queue with read-time overrides.

Uses the synthetic database of ``bench/bench_db.py`` (default 200,000 seen examples x 5
= 1,000,000 candidates) with three judges per aspect (a third, lenient judge on a
compressed scale is added when the database has two), built with SQL ``range()`` the
first time and then reused from ``bench/out/`` (``--rebuild`` to rebuild). Every
model's candidates are ranked (``all_models``), so the figures are over all 1,000,000.
Measures, side by side:

* ``build``: turning the judgments into kept per-candidate aspect scores
  (``reset_core.scoring.aspect_scores``), once per panel and data change;
* ``plain query``: the baseline: the same re-rank written as one plain DuckDB query
  from the raw judgments (latest valid verdict per judge, mean per aspect, RESET score
  with the weight, top-1 per example), what a re-rank costs without kept scores;
* ``re-rank``: ``preview_selection`` after a weight change, as the Judge page runs it,
  over a series of weights and both presets (target p95 <= 1 s; 26-29 s before #11);
* ``save``: ``save_selection`` (1,000,000 rows stored; target <= 10 s);
* ``queue``: the Review queue (counts + one page over a mix of filters: default
  order at a random page, kind + score sort, unreviewed + setting + score, search,
  not overridden + kind) with no
  override events, then with 10,000 (vetoes, forces, exclusions and lifts)
  applied at read time: ``queue_with_overrides_ratio`` = p95 with / p95 without
  (target <= 1.2);
* ``judge page``: ``bench/judge_page.py``'s ``measure_judge_page`` (Chromium, from a
  click on Judge to the Picks figure) when that file is present and ``--browser``
  is given; otherwise ``judge_page_s`` is null: not measured, never guessed. Before
  it, the kept scores of the page's default scope (default panel, the round's
  policy) are built as the app builds them when a judging job ends
  (``keep_default_scores``), and that build is printed on its own.

    python bench/scoring.py [--examples 200000] [--rounds 20] [--rebuild] [--browser]

``--examples 20000`` (100,000 candidates) makes a quick run. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_db import build_bench_db  # noqa: E402
from reset_core.review.queue import (  # noqa: E402
    QueueFilter,
    queue_counts,
    queue_page,
    refresh_flags,
    refresh_queue,
)
from reset_core.scoring.config import SelectionConfig  # noqa: E402
from reset_core.scoring.panels import Panel  # noqa: E402
from reset_core.scoring.selection import prepare, preview_selection, save_selection  # noqa: E402
from reset_core.store import connect, one  # noqa: E402

OUT = ROOT / "bench" / "out"
THIRD_JUDGE = "judge:llm-c"

#: The honest baseline: the re-rank as one plain DuckDB query over the raw judgments
#: (the best plain use of DuckDB: hash aggregates, no window over a million rows).
PLAIN_RERANK = """
WITH v AS (
    SELECT candidate_id, judge_id, aspect, arg_max(score, created_at) AS score
    FROM judgments WHERE score IS NOT NULL GROUP BY candidate_id, judge_id, aspect),
a AS (
    SELECT candidate_id,
           avg(score) FILTER (WHERE aspect = 'task') AS s_task,
           avg(score) FILTER (WHERE aspect = 'instruction') AS s_instr,
           avg(score) FILTER (WHERE aspect = 'faithfulness') AS s_faith
    FROM v GROUP BY candidate_id),
s AS (
    SELECT c.candidate_id, c.example_id,
           a.s_task + ? * CASE e.kind WHEN 'instruction' THEN a.s_instr ELSE a.s_faith END
               AS score
    FROM candidates c JOIN examples e USING (example_id) JOIN a USING (candidate_id)
    WHERE e.split = 'seen'),
picks AS (
    SELECT example_id, arg_min(candidate_id, (-score, candidate_id)) AS candidate_id
    FROM s WHERE score IS NOT NULL GROUP BY example_id)
SELECT count(*), count(DISTINCT example_id) FROM picks
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_db(n_examples: int, rebuild: bool) -> Path:
    """The cached database with three judges per aspect (built or extended when needed)."""
    path = OUT / f"scoring_{n_examples}x5.duckdb"
    if rebuild or not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build_bench_db(path, n_examples, 5)
        print(f"built {path} in {time.perf_counter() - t:.0f} s")
    con = connect(path)
    if not one(con, "SELECT count(*) FROM judges WHERE judge_id = ?", [THIRD_JUDGE])[0]:
        # A lenient third judge on a compressed scale (0.5 + likert/8), so the panel's
        # judges disagree on scale as real ones do; 1 in 50 verdicts failed.
        t = time.perf_counter()
        con.execute(
            "INSERT INTO judges (judge_id, name, kind) VALUES (?, 'llm-c', 'llm')", [THIRD_JUDGE]
        )
        con.execute(
            """
            INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score,
                                   raw_score, status)
            SELECT 'j:' || candidate_id || ':' || ? || ':' || aspect, candidate_id, ?, aspect,
                   CASE WHEN failed THEN NULL ELSE 0.5 + likert / 8.0 END,
                   CASE WHEN failed THEN NULL ELSE likert + 1 END,
                   CASE WHEN failed THEN 'parse_error' ELSE 'ok' END
            FROM (SELECT candidate_id, aspect,
                         least(4, greatest(0, round(score * 4)::INTEGER
                               + (hash(candidate_id || 'c') % 3)::INTEGER - 1)) AS likert,
                         hash(candidate_id || aspect || 'c') % 50 = 0 AS failed
                  FROM judgments WHERE judge_id = 'judge:llm-a' AND score IS NOT NULL)
            """,
            [THIRD_JUDGE, THIRD_JUDGE],
        )
        con.execute("CHECKPOINT")
        print(f"added {THIRD_JUDGE} in {time.perf_counter() - t:.0f} s")
    con.close()
    return path


FILTERS = [
    lambda rng, n: (QueueFilter(), rng.randrange(n // 25)),
    lambda rng, n: (QueueFilter(kinds=["context"], sort="lowest pick score first"), 0),
    lambda rng, n: (QueueFilter(reviewed=False, settings=["s:1"], score_min=0.3), 0),
    lambda rng, n: (QueueFilter(search=rng.choice(["topic 123", "number 4242"])), 0),
    # Not "overridden only": with no events that page is empty, so the comparison would
    # time drawing 25 rows against drawing none rather than the cost of the events.
    lambda rng, n: (QueueFilter(overridden=False, kinds=["instruction"]), rng.randrange(50)),
]


def queue_p95(con, sel: str, n_examples: int, rounds: int, seed: int) -> float:
    rng = random.Random(seed)
    refresh_queue(con, sel)
    # One untimed render on each side: the first after new events rebuilds the review
    # flags (timed on its own as flags_rebuild_ms); the p95 is of renders after that.
    queue_counts(con, sel, QueueFilter())
    ms = []
    for i in range(rounds):
        f, page = FILTERS[i % len(FILTERS)](rng, n_examples)
        t, _ = timed(
            lambda f=f, page=page: (queue_counts(con, sel, f), queue_page(con, sel, f, page, 25))
        )
        ms.append(t * 1000)
    return pct(ms, 0.95)


def add_override_events(con, sel: str, n: int, seed: int) -> None:
    """``n`` review events on the selection's examples, in bulk: a realistic mix."""
    con.execute(
        """
        INSERT INTO overrides (event_id, example_id, candidate_id, action, value, reviewer,
                               created_at)
        WITH ex AS (
            SELECT example_id, candidate_id, row_number() OVER (ORDER BY hash(example_id || ?))
                AS i
            FROM selection_scores WHERE selection_id = ? AND picked),
        picked AS (SELECT * FROM ex WHERE i <= ?)
        SELECT 'bench-ov-' || i, example_id,
               CASE WHEN i % 10 IN (7, 8) THEN NULL ELSE candidate_id END,
               CASE i % 10 WHEN 0 THEN 'force' WHEN 7 THEN 'exclude' WHEN 8 THEN 'include'
                           WHEN 9 THEN 'unveto' ELSE 'veto' END,
               NULL, 'bench', now() + to_microseconds(i)
        FROM picked
        """,
        [seed, sel, n],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=200_000, help="seen examples (200000)")
    ap.add_argument("--rounds", type=int, default=20, help="re-ranks and queue renders timed")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the bench database")
    ap.add_argument("--browser", action="store_true", help="also time the Judge page")
    args = ap.parse_args()
    db = bench_db(args.examples, args.rebuild)
    # Work on a copy: every run starts from the same data (no earlier runs' selections,
    # kept scores or override events).
    work = OUT / f"scoring_run_{args.examples}.duckdb"
    shutil.copy(db, work)
    Path(str(work) + ".wal").unlink(missing_ok=True)
    con = connect(work)
    con.execute("SET enable_progress_bar = false")
    counts = one(
        con,
        "SELECT (SELECT count(*) FROM candidates c JOIN examples e USING (example_id) "
        "WHERE e.split = 'seen'), (SELECT count(*) FROM judgments), "
        "(SELECT count(DISTINCT judge_id) FROM judgments)",
    )
    print(f"{counts[0]:,} seen candidates, {counts[1]:,} judgments, {counts[2]} judges")
    base = SelectionConfig(all_models=True)

    plain = [timed(lambda w=w: one(con, PLAIN_RERANK, [w]))[0] for w in (2.0, 1.5)]
    build_s, scope = timed(lambda: prepare(con, base))
    assert scope.built, "a fresh run copy builds its kept scores"
    std_build_s, _ = timed(
        lambda: prepare(con, base.model_copy(update={"panel": Panel(scale="standard")}))
    )
    rng = random.Random(0)
    rerank = []
    for i in range(args.rounds):
        cfg = base.model_copy(
            update={"weight": round(rng.uniform(0, 5), 1), "preset": ("reset", "reset_s")[i % 2]}
        )
        rerank.append(timed(lambda cfg=cfg: preview_selection(con, cfg))[0] * 1000)
    saves = []
    for w in (2.0, 1.0):
        t, res = timed(lambda w=w: save_selection(con, base.model_copy(update={"weight": w})))
        saves.append(t)
    sel = res.selection_id
    print(f"saved {sel}: {res.n_picked:,} picks over {res.n_candidates:,} candidates")

    # The queue without any override event, then with 10,000 applied at read time.
    con.execute("CREATE TEMP TABLE ov_keep AS SELECT * FROM overrides")
    con.execute("DELETE FROM overrides")
    q_rounds = max(40, args.rounds)  # renders are cheap: enough for a steadier p95
    q0 = queue_p95(con, sel, args.examples, q_rounds, seed=1)
    add_override_events(con, sel, 10_000, seed=2)
    n_ov = one(con, "SELECT count(*) FROM overrides")[0]
    flags_s, _ = timed(lambda: refresh_flags(con))
    q1 = queue_p95(con, sel, args.examples, q_rounds, seed=1)

    judge_page_s = None
    hook = ROOT / "bench" / "judge_page.py"
    if args.browser and hook.exists():
        # What the app does when a judging job ends (sync_judge_job): build the kept
        # scores the Judge page opens on (default panel, the round's policy), so the
        # page's first visit does not pay that build; its cost is printed on its own.
        from reset_core.judging.launch import keep_default_scores

        keep_s, _ = timed(lambda: keep_default_scores(con))
        print(f"kept scores for the page's default scope built when verdicts land: {keep_s:.2f} s")
        con.close()
        spec = importlib.util.spec_from_file_location("judge_page", hook)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        judge_page_s = round(mod.measure_judge_page(work), 2)
    else:
        con.close()
    print()
    print(f"{'what':<46}{'p50':>10}{'p95':>10}")
    print(
        f"{'plain query from judgments (re-rank), s':<46}{statistics.median(plain):>10.2f}{max(plain):>10.2f}"
    )
    print(f"{'build kept aspect scores (linear), s':<46}{build_s:>10.2f}")
    print(f"{'build kept aspect scores (standard), s':<46}{std_build_s:>10.2f}")
    print(
        f"{'re-rank after a weight change, ms':<46}{pct(rerank, 0.5):>10.0f}{pct(rerank, 0.95):>10.0f}"
    )
    print(f"{'save a selection, s':<46}{statistics.median(saves):>10.2f}{max(saves):>10.2f}")
    print(f"{'Review queue, no override events, ms':<46}{'':>10}{q0:>10.0f}")
    print(f"{f'Review queue, {n_ov:,} override events, ms':<46}{'':>10}{q1:>10.0f}")
    print(f"{'review flags rebuilt after new events, ms':<46}{flags_s * 1000:>10.0f}")
    print(
        f"{'Judge page (Chromium), s':<46}{'not measured' if judge_page_s is None else judge_page_s:>10}"
    )
    result = {
        "n_candidates": counts[0],
        "n_judgments": counts[1],
        "plain_rerank_p50_s": round(statistics.median(plain), 2),
        "build_scores_s": round(build_s, 2),
        "build_scores_standard_s": round(std_build_s, 2),
        "rerank_p50_ms": round(pct(rerank, 0.5)),
        "rerank_p95_ms": round(pct(rerank, 0.95)),
        "rerank_speedup_vs_plain": round(statistics.median(plain) * 1000 / pct(rerank, 0.5), 1),
        "save_s": round(max(saves), 2),
        "queue_p95_ms": round(q0),
        "queue_with_overrides_p95_ms": round(q1),
        "queue_with_overrides_ratio": round(q1 / q0, 2),
        "n_override_events": n_ov,
        "flags_rebuild_ms": round(flags_s * 1000),
        "judge_page_s": judge_page_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
