"""A large synthetic RESET database for benches: examples, candidates, judgments, a selection.

Built entirely in SQL with ``range()`` and ``hash()``, so a million candidates take
seconds rather than minutes, and the same arguments always build the same rows.
The file is cached under ``bench/out/`` and reused when present (benches of other
stages, e.g. analytics, reuse it too)::

    from bench.bench_db import build_bench_db
    path = build_bench_db("bench/out/reset_1m.duckdb")          # 200,000 x 5 = 1,000,000
    small = build_bench_db("/tmp/s.duckdb", n_examples=1000)    # 5,000 candidates

Shape (per example ``i``): kind alternates ``instruction``/``context``; 4 sources;
split 90% ``seen`` / 5% ``test_seen`` / 5% ``test_unseen``. ``per_example`` candidates
under 5 decoding settings (cycled). Two judges (an LLM judge and a metric judge)
each score ``task`` and the kind's aspect (``instruction`` or ``faithfulness``), so
four judgments per candidate; about 1% fail (NULL score, status ``parse_error``).
One selection (``bench-reset``) with the RESET score ``task + 2*aspect`` (judge
means), rank and top-1 pick. A few review events on 1% of the examples.
"""

from __future__ import annotations

import time
from pathlib import Path

from reset_core.store import connect, one

OUT = Path(__file__).resolve().parent / "out"
DEFAULT_PATH = OUT / "reset_bench_200000x5.duckdb"
SELECTION_ID = "bench-reset"

_WORDS = (
    "['river', 'history', 'protein', 'market', 'galaxy', 'treaty', 'glacier', 'enzyme', "
    "'harbor', 'poetry', 'volcano', 'senate', 'algorithm', 'orchard', 'bridge', 'vaccine', "
    "'desert', 'currency', 'satellite', 'monastery', 'reef', 'turbine', 'novel', 'climate', "
    "'railway', 'fossil', 'opera', 'compiler', 'island', 'castle', 'bacteria', 'festival']"
)


def _w(expr: str) -> str:
    """SQL for a pseudo-random word picked by hashing ``expr``."""
    return f"({_WORDS})[1 + (hash({expr}) % 32)::INT]"


def build_bench_db(
    path: str | Path = DEFAULT_PATH,
    n_examples: int = 200_000,
    per_example: int = 5,
    *,
    rebuild: bool = False,
) -> Path:
    """Build (or reuse) a database with ``n_examples * per_example`` candidates; return its path.

    Reuses the file when it already holds exactly that many examples and candidates
    and a selection, unless ``rebuild``. Every table is filled with one
    ``INSERT … SELECT`` over ``range()``; nothing goes through Python rows.

    >>> p = build_bench_db("/tmp/doctest_bench.duckdb", n_examples=10, rebuild=True)
    >>> con = connect(p); one(con, "SELECT count(*) FROM candidates")[0]
    50
    """
    path = Path(path)
    if path.exists() and not rebuild:
        try:
            con = connect(path)
            ok = (
                one(con, "SELECT count(*) FROM examples")[0] == n_examples
                and one(con, "SELECT count(*) FROM candidates")[0] == n_examples * per_example
                and one(
                    con, "SELECT count(*) FROM selections WHERE selection_id = ?", [SELECTION_ID]
                )[0]
                == 1
            )
            con.close()
            if ok:
                return path
        except Exception:  # unreadable or from another schema: build afresh
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".building")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    con = connect(tmp)
    con.execute("SET preserve_insertion_order = false")
    n, k = int(n_examples), int(per_example)
    # No explicit transaction: the file is built under a temporary name and renamed
    # when complete, and big autocommitted inserts skip the WAL (much faster).
    con.execute(
        f"""
        INSERT INTO examples (example_id, instruction, context, reference, kind, source, split,
                              content_hash)
        SELECT printf('ex%07d', i),
               CASE WHEN i % 2 = 0
                    THEN 'Write a short paragraph about the ' || {_w("i")} || ' and the '
                         || {_w("i + 1")} || ' (item ' || i || ').'
                    ELSE 'According to the passage, what links the ' || {_w("i")}
                         || ' to the ' || {_w("i + 2")} || '? (item ' || i || ')' END,
               CASE WHEN i % 2 = 1
                    THEN 'The ' || {_w("i")} || ' near the ' || {_w("i + 2")}
                         || ' was first described in ' || (1800 + i % 200)
                         || '. Records mention the ' || {_w("i + 3")} || ' and the '
                         || {_w("i + 4")} || ' as part of the same survey, and later work tied '
                         || 'the ' || {_w("i")} || ' to the ' || {_w("i + 2")} || '.' END,
               'The ' || {_w("i")} || ' relates to the ' || {_w("i + 2")} || '.',
               CASE WHEN i % 2 = 0 THEN 'instruction' ELSE 'context' END,
               (['dolly', 'alpaca', 'squad', 'cnn_dailymail'])[1 + (i % 4)::INT],
               CASE WHEN i % 20 = 18 THEN 'test_seen' WHEN i % 20 = 19 THEN 'test_unseen'
                    ELSE 'seen' END,
               'h' || i
        FROM range({n}) t(i)
        """
    )
    con.execute(
        """
        INSERT INTO decoding_settings (setting_id, temperature, top_k, top_p, max_tokens, seed, n)
        SELECT 'ds-' || s, [0.0, 0.3, 0.7, 1.0, 1.3][s + 1], -1, [1.0, 0.95, 0.9, 0.9, 0.8][s + 1],
               256, 0, 1
        FROM range(5) t(s)
        """
    )
    con.execute(
        f"""
        INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, sample_index, seed,
                                text, prompt_tokens, completion_tokens, latency_ms, engine)
        SELECT printf('c%07d-%d', i, j), printf('ex%07d', i), 'bench-model', 'ds-' || (j % 5),
               j, j, 'The ' || {_w("i")} || ' is linked to the ' || {_w("i + j + 2")}
                   || ' through the ' || {_w("i * 7 + j")} || '. Sample ' || j
                   || ' adds that the ' || {_w("i + 3 * j")} || ' matters most.',
               40, 30, 25.0, 'bench'
        FROM range({n}) a(i), range({k}) b(j)
        """
    )
    con.execute(
        """
        INSERT INTO judges (judge_id, name, kind, model) VALUES
            ('llm-judge@v1', 'LLM judge', 'llm', 'bench-llm'),
            ('metric@v1', 'metric judge', 'metric', NULL)
        """
    )
    # Four judgments per candidate: two judges x (task, the kind's aspect); ~1% fail.
    con.execute(
        """
        INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, raw_score,
                               status, rationale)
        WITH cj AS (
            SELECT c.candidate_id, e.kind, jg.judge_id, jg.short, asp.aspect_slot,
                   CASE WHEN asp.aspect_slot = 0 THEN 'task'
                        WHEN e.kind = 'instruction' THEN 'instruction'
                        ELSE 'faithfulness' END AS aspect,
                   hash(c.candidate_id, jg.judge_id, asp.aspect_slot) AS h
            FROM candidates c JOIN examples e USING (example_id),
                 (VALUES ('llm-judge@v1', 'L'), ('metric@v1', 'M')) jg(judge_id, short),
                 range(2) asp(aspect_slot)
        )
        SELECT candidate_id || short || aspect_slot, candidate_id, judge_id, aspect,
               CASE WHEN h % 100 = 0 THEN NULL ELSE (h % 1000) / 999.0 END,
               CASE WHEN h % 100 = 0 THEN NULL ELSE 1 + (h % 1000) / 999.0 * 9 END,
               CASE WHEN h % 100 = 0 THEN 'parse_error' ELSE 'ok' END,
               CASE WHEN h % 100 = 0 THEN NULL
                    ELSE 'The answer ' || CASE WHEN h % 1000 > 500 THEN 'covers' ELSE 'misses' END
                         || ' the ' || aspect || ' criteria.' END
        FROM cj
        """
    )
    con.execute(
        "INSERT INTO selections (selection_id, preset, config) VALUES (?, 'reset', ?)",
        [SELECTION_ID, '{"preset": "reset", "weight": 2.0, "split": "all"}'],
    )
    con.execute(
        """
        INSERT INTO selection_scores (selection_id, candidate_id, example_id, score, rank, picked)
        WITH per AS (
            SELECT candidate_id,
                   avg(score) FILTER (WHERE aspect = 'task') AS s_task,
                   avg(score) FILTER (WHERE aspect <> 'task') AS s_aspect
            FROM judgments GROUP BY candidate_id
        ),
        scored AS (
            SELECT c.candidate_id, c.example_id, p.s_task + 2 * p.s_aspect AS score
            FROM candidates c JOIN per p USING (candidate_id)
        ),
        ranked AS (
            SELECT *, CASE WHEN score IS NOT NULL THEN row_number() OVER (
                PARTITION BY example_id, score IS NULL ORDER BY score DESC, candidate_id) END AS rank
            FROM scored
        )
        SELECT ?, candidate_id, example_id, score, rank, coalesce(rank = 1, false) FROM ranked
        """,
        [SELECTION_ID],
    )
    # A little review history: 1% of the examples already had their pick accepted.
    con.execute(
        f"""
        INSERT INTO overrides (event_id, example_id, candidate_id, action, value, previous,
                               reviewer, reason, created_at)
        SELECT printf('ev-bench-%07d', i), printf('ex%07d', i), NULL, 'accept', '{{}}', '{{}}',
               'bench', 'looks right', TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND
        FROM range(0, {n}, 100) t(i)
        """
    )
    con.execute("CHECKPOINT")
    con.close()
    tmp.rename(path)
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return path


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Build (or reuse) the bench database.")
    ap.add_argument("--examples", type=int, default=200_000, help="examples (default 200000)")
    ap.add_argument("--per-example", type=int, default=5, help="candidates each (default 5)")
    ap.add_argument("--out", type=Path, default=None, help="database file (default bench/out/)")
    ap.add_argument("--rebuild", action="store_true", help="build even if the file exists")
    a = ap.parse_args()
    out = a.out or OUT / f"reset_bench_{a.examples}x{a.per_example}.duckdb"
    t = time.perf_counter()
    p = build_bench_db(out, a.examples, a.per_example, rebuild=a.rebuild)
    print(f"{p} ready in {time.perf_counter() - t:.1f} s")
