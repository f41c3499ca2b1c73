"""Build the large benchmark database in SQL: N examples × K candidates, judged 2 or 3 times.

Everything is generated with DuckDB's ``range()`` inside the database (no Python rows),
so a 1,000,000-candidate database takes well under a minute on 2 cores.

Default shape (``build_bench_db(path)``): 200,000 seen examples (half ``instruction``,
half ``context``), 5 candidates each (one per decoding setting, from two models) =
1,000,000 candidates; two judges (three with ``--judges 3``) score ``task`` and ``instruction``, plus ``faithfulness`` on context examples
(5,000,000 judgments, about 2% failed = NULL score); one selection over every candidate
with one pick per example; a few thousand review events by three reviewers; three
models (base, MTL, RESET) with judged test-split answers, compared by one finished
evaluation (``eval-bench``).

Scores are deterministic functions of the ids (``hash``), with the second judge a
noisy, coarser copy of the first, so agreement is high but not perfect.

    python bench/bench_db.py /tmp/bench.duckdb [--examples 200000] [--per-example 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from reset_core.store import connect, one

SETTINGS = [  # (temperature, top_k, top_p)
    (0.1, -1, 1.0),
    (0.5, 50, 0.95),
    (0.7, 50, 0.9),
    (1.0, -1, 1.0),
    (1.3, 100, 0.98),
]
JUDGES = ("judge:llm-a", "judge:llm-b", "judge:llm-c")
MODELS = (("m:base", "base"), ("m:mtl", "mtl"), ("m:reset", "reset"))


def build_bench_db(
    path: str | Path, n_examples: int = 200_000, per_example: int = 5, n_judges: int = 2
) -> dict:
    """Create (or replace) the benchmark database at ``path``; return its row counts.

    ``n_judges`` (2 or 3) judges score every aspect; the third (``judge:llm-c``) is a
    lenient judge on a compressed scale (``0.5 + likert/8``), so judges' scales differ
    the way real panels' do (``bench/scoring.py`` and ``bench/judge_page.py`` use 3).

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> build_bench_db(os.path.join(d, "b.duckdb"), n_examples=10, per_example=5)["candidates"]
    56
    >>> build_bench_db(os.path.join(d, "b.duckdb"), n_examples=10, n_judges=3)["judgments"]
    420

    (50 seen candidates and 3 models' answers to 2 test examples; 3 judges × (task +
    instruction on 56 candidates + faithfulness on the 28 with a context).)
    """
    path = Path(path)
    for suffix in ("", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if n_judges not in (2, 3):
        raise ValueError(f"n_judges: 2 or 3, got {n_judges}")
    judges = JUDGES[:n_judges]
    con = connect(path)
    n_settings = min(per_example, len(SETTINGS))
    settings = ", ".join(
        f"('s:{i}', {t}, {k}, {p}, 256, 0, 1)" for i, (t, k, p) in enumerate(SETTINGS[:n_settings])
    )
    con.execute(f"INSERT INTO decoding_settings VALUES {settings}")
    con.execute(
        "INSERT INTO models (model_id, name, stage) VALUES "
        + ", ".join(f"('{m}', '{m[2:]}', '{s}')" for m, s in MODELS)
    )
    con.execute(
        "INSERT INTO judges (judge_id, name, kind) VALUES "
        + ", ".join(f"('{j}', '{j[6:]}', 'llm')" for j in judges)
    )
    n_test = max(n_examples // 100, 2)
    con.execute(
        """
        INSERT INTO examples (example_id, instruction, context, kind, source, split, content_hash)
        SELECT 'e:' || i,
               'Question number ' || i || ': explain topic ' || (i % 997) || '.',
               CASE WHEN i % 2 = 1 THEN 'Context passage ' || i || ' about topic ' || (i % 997) END,
               CASE WHEN i % 2 = 1 THEN 'context' ELSE 'instruction' END,
               'bench',
               CASE WHEN i < ? THEN 'seen' WHEN i % 2 = 0 THEN 'test_seen' ELSE 'test_unseen' END,
               md5('e' || i)
        FROM range(? + ?) t(i)
        """,
        [n_examples, n_examples, n_test],
    )
    # Candidates: sample j of example i uses setting j % n_settings; the seen split comes
    # from base (1 in 4 examples) or MTL; test answers come from all three models.
    con.execute(
        """
        INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, sample_index,
                                seed, text, completion_tokens, engine)
        WITH c AS (
            SELECT i, j, 'e:' || i AS example_id,
                   CASE WHEN i % 4 = 0 THEN 'm:base' ELSE 'm:mtl' END AS model_id,
                   hash(i * 31 + j) AS h
            FROM range(?) a(i), range(?) b(j)
        )
        SELECT 'c:' || i || ':' || j, example_id, model_id, 's:' || (j % ?), j, h % 1000000,
               -- low temperature repeats itself (duplicates); longer answers at high T
               CASE WHEN j = 0 AND i % 3 = 0 THEN 'The answer is topic ' || (i % 997) || '.'
                    ELSE 'Answer ' || i || ' sample ' || j || ' covers topic ' || (i % 997)
                         || ' ' || repeat('and more detail ', (h % (5 + 6 * j))::INTEGER)
               END,
               (5 + h % (5 + 6 * j))::INTEGER * 3,
               'bench'
        FROM c
        """,
        [n_examples, per_example, n_settings],
    )
    con.execute(
        """
        INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, sample_index,
                                seed, text, completion_tokens, engine)
        SELECT 't:' || i || ':' || m, 'e:' || i, m, 's:0', 0, 0,
               'Test answer ' || i || ' by ' || m || repeat(' detail', (i % 7)::INTEGER), 10,
               'bench'
        FROM range(?, ?) a(i), (VALUES ('m:base'), ('m:mtl'), ('m:reset')) v(m)
        """,
        [n_examples, n_examples + n_test],
    )
    # Judgments: task and instruction for every candidate, faithfulness where there is a context.
    # Judge A: a 1–5 Likert score from the hash; judge B: A ± noise, same scale.
    # Model quality shifts the score so the model-level view has something to show.
    con.execute(
        """
        INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, raw_score,
                               status)
        WITH pairs AS (
            SELECT c.candidate_id, e.kind, c.model_id, c.setting_id, a.aspect
            FROM candidates c JOIN examples e USING (example_id),
                 (VALUES ('task'), ('instruction'), ('faithfulness')) a(aspect)
            WHERE a.aspect = 'task'
               OR a.aspect = 'instruction'
               OR (a.aspect = 'faithfulness' AND e.kind = 'context')
        ), base AS (
            SELECT *, least(4, greatest(0, (hash(candidate_id || aspect) % 5)::INTEGER
                      + CASE model_id WHEN 'm:reset' THEN 1 WHEN 'm:base' THEN -1 ELSE 0 END
                      - CASE WHEN setting_id = 's:4' AND aspect = 'faithfulness' THEN 1 ELSE 0 END
                   )) AS la
            FROM pairs
        ), judged AS (
            SELECT *, j.judge_id,
                   CASE WHEN j.judge_id = 'judge:llm-a' THEN la
                        ELSE least(4, greatest(0, la + ((hash(candidate_id
                             -- judge B's noise as it always was, judge C's its own
                             || CASE j.judge_id WHEN 'judge:llm-b' THEN 'n' ELSE j.judge_id END)
                             % 5)::INTEGER - 2) // 2)) END AS likert,
                   hash(candidate_id || aspect || j.judge_id) % 50 = 0 AS failed
            FROM base, (SELECT unnest(?) AS judge_id) j
        )
        SELECT 'j:' || candidate_id || ':' || judge_id || ':' || aspect, candidate_id, judge_id,
               aspect,
               CASE WHEN failed THEN NULL WHEN judge_id = 'judge:llm-c' THEN 0.5 + likert / 8.0
                    ELSE likert / 4.0 END,
               CASE WHEN failed THEN NULL ELSE likert + 1 END,
               CASE WHEN failed THEN 'parse_error' ELSE 'ok' END
        FROM judged
        """,
        [list(judges)],
    )
    # One selection: rank by mean score per candidate, pick rank 1 per seen example.
    con.execute("INSERT INTO selections VALUES ('sel:bench', 'reset', '{}', now())")
    con.execute(
        """
        INSERT INTO selection_scores (selection_id, candidate_id, example_id, score, rank, picked)
        WITH s AS (
            SELECT c.candidate_id, c.example_id, avg(j.score) AS score
            FROM candidates c JOIN examples e USING (example_id)
            LEFT JOIN judgments j USING (candidate_id)
            WHERE e.split = 'seen'
            GROUP BY c.candidate_id, c.example_id
        )
        SELECT 'sel:bench', candidate_id, example_id, score,
               row_number() OVER (PARTITION BY example_id ORDER BY score DESC NULLS LAST,
                                  candidate_id),
               row_number() OVER (PARTITION BY example_id ORDER BY score DESC NULLS LAST,
                                  candidate_id) = 1
        FROM s
        """
    )
    # Review events: vetoes of some picks, forced alternatives, manual aspect scores
    # (two reviewers scoring the same candidates for human-vs-human agreement).
    n_rev = max(n_examples // 100, 4)
    con.execute(
        """
        INSERT INTO overrides (event_id, example_id, candidate_id, action, value, reviewer)
        SELECT 'o:v' || i, 'e:' || (i * 37 % ?), 'c:' || (i * 37 % ?) || ':' || ((i * 37 % ?) % ?),
               'veto', NULL, 'alice'
        FROM range(?) t(i)
        UNION ALL
        SELECT 'o:f' || i, 'e:' || (i * 53 % ?), 'c:' || (i * 53 % ?) || ':' || (i % ?),
               'force', NULL, 'bob'
        FROM range(?) t(i)
        UNION ALL
        SELECT 'o:s' || i || r, 'e:' || (i * 11 % ?), 'c:' || (i * 11 % ?) || ':' || (i % ?),
               'score',
               json_object('aspect', 'task', 'score',
                           ((hash('c:' || (i * 11 % ?) || ':' || (i % ?) || 'task') % 5)
                            + CASE WHEN r = 'carol' AND i % 4 = 0 THEN 1 ELSE 0 END) % 5 / 4.0),
               r
        FROM range(?) t(i), (VALUES ('alice'), ('carol')) v(r)
        """,
        [n_examples, n_examples, n_examples, per_example, n_rev]
        + [n_examples, n_examples, per_example, n_rev]
        + [n_examples, n_examples, per_example, n_examples, per_example, n_rev],
    )
    # One finished evaluation comparing the three models on the test examples (the
    # Trade-off page's model view and the Evaluate page read it through compare):
    # their answers under s:0, scored by the same judges, frozen per aspect.
    frozen = {
        "panel": {"name": "default"},
        "judges": {a: list(judges) for a in ("task", "instruction", "faithfulness")},
        "specs": {j: {"type": "llm", "config": {"model": j[6:]}} for j in judges},
        "decoding": {
            "temperature": SETTINGS[0][0],
            "top_k": SETTINGS[0][1],
            "top_p": SETTINGS[0][2],
            "max_tokens": 256,
            "seed": 0,
            "n": 1,
        },
        "setting_id": "s:0",
    }
    config = {"checkpoints": [m for m, _ in MODELS], "baseline": "m:base"}
    con.execute(
        "INSERT INTO evaluations (evaluation_id, name, config, frozen, status, finished_at) "
        "VALUES ('eval-bench', 'base vs MTL vs RESET', ?, ?, 'done', now())",
        [json.dumps(config), json.dumps(frozen)],
    )
    con.execute(
        "INSERT INTO evaluation_examples SELECT 'eval-bench', 'e:' || i FROM range(?, ?) t(i)",
        [n_examples, n_examples + n_test],
    )
    con.execute(
        "INSERT INTO evaluation_checkpoints VALUES "
        + ", ".join(f"('eval-bench', '{m}', {i}, '{m[2:]}')" for i, (m, _) in enumerate(MODELS))
    )
    con.execute("CHECKPOINT")
    counts = {
        t: one(con, f"SELECT count(*) FROM {t}")[0]
        for t in ("examples", "candidates", "judgments", "selection_scores", "overrides")
    }
    con.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--examples", type=int, default=200_000, help="seen examples (200000)")
    ap.add_argument("--per-example", type=int, default=5, help="candidates per example (5)")
    ap.add_argument("--judges", type=int, default=2, help="judges per aspect, 2 or 3 (2)")
    args = ap.parse_args()
    t = time.perf_counter()
    counts = build_bench_db(args.path, args.examples, args.per_example, args.judges)
    print(f"built {args.path} in {time.perf_counter() - t:.1f}s: {counts}")


if __name__ == "__main__":
    main()
