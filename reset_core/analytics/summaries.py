"""Analytics summaries shared by the agreement, trade-off and decoding analyses.

Joining 4–5 million judgments to a million candidates on every page view costs
seconds; the pages have 300 ms. So :func:`refresh` derives small, narrow tables once
per change of the underlying data (migrations ``006_analytics`` and
``007_analytics_derived``):

* ``analytics_judgments``: one row per (candidate, judge, aspect) with the latest valid
  score (a retry that succeeded supersedes the failure) and the failed rows excluded;
* ``analytics_candidates``: one row per candidate with kind, split, model, setting,
  length, duplicate flag, the judges' pick in the latest selection (reviewers'
  overrides are applied on read: :func:`live_picks`) and the mean score per aspect;
* ``analytics_missing``: judgment rows per judge and aspect (valid / failed / n.a.);
* ``analytics_texts``: an equal-size text sample per (setting, model) for distinct-n,
  and ``analytics_diversity``: distinct-1/2 per setting over it;
* ``analytics_gaps``: every judge pair's score gap per candidate and aspect (Review's
  disagreement filter);
* ``analytics_manual`` and ``analytics_reviewed``: the reviewers' latest manual scores
  and the judgment rows of the examples they acted on (judge-vs-human agreement).

They are caches: nothing in them is not recomputable. :func:`ensure_fresh` (one
metadata query per page view) rebuilds them all when examples, candidates, judgments or
selections gained or lost rows, and only the two review-event tables when review events
were added. Rows are stored in ``bucket`` order (``hash(candidate_id) % 4096``), so the
deterministic sample ``bucket < k`` that the agreement and bias analyses use reads only
the first row groups.

Failed judgments (``score IS NULL``, status other than ``not_applicable``) are never
scores: every aggregate reports how many were missing and excluded.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> ensure_fresh(con)["n_candidates"]
0
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from reset_core.scoring.queries import LATEST_SELECTION_SQL
from reset_core.store import one, rebuild_lock

N_BUCKETS = 4096
#: texts kept per (setting, model) for distinct-n: equal sizes keep settings comparable
TEXTS_PER_SETTING = 200
#: n of the distinct-n diversity figures stored at refresh
DISTINCT_NS = (1, 2)
#: the rater name that stands for the reviewers' mean manual score
HUMAN = "human"


@contextmanager
def live_picks(con) -> Iterator[str]:
    """Reviewers' overrides on ``analytics_candidates.picked``, applied at read time.

    The summary stores the latest selection's judge picks (it is rebuilt when the data
    changes, not on every review action). Inside the block, ``_live_picks`` holds the
    pick flags of the examples with an override in force (see
    :func:`reset_core.review.events.live_pick_changes`); join it as
    ``LEFT JOIN _live_picks _lp USING (candidate_id)`` and read the yielded
    expression instead of ``picked``.
    """
    from reset_core.review.events import live_pick_changes

    con.register("_live_picks", live_pick_changes(con))
    try:
        yield "coalesce(_lp.picked, a.picked)"
    finally:
        con.unregister("_live_picks")


#: review events undone by a later ``undo`` event (their ids)
UNDONE_SQL = """
    SELECT json_extract_string(value, '$.event_id') FROM overrides
    WHERE action = 'undo' AND json_extract_string(value, '$.event_id') IS NOT NULL
"""
#: the mean manual score per candidate over reviewers for one aspect (parameter: aspect)
HUMAN_SCORES_SQL = (
    "SELECT candidate_id, avg(score) AS score FROM analytics_manual WHERE aspect = ? "
    "GROUP BY candidate_id"
)


def _versions(con: duckdb.DuckDBPyConnection) -> tuple[str, str, str | None, str | None]:
    """(summary version, reviewed version, and the versions the stored summaries have).

    The app only appends to what the summaries derive from (judgments and candidates are
    keyed and ingest never replaces a row; a scoring run adds a selection; review
    actions, undo included, are new override events), so row counts are a complete
    change counter, and DuckDB answers ``count(*)`` from table metadata: one query of
    about a millisecond at any size, cheap enough for every page view. Writing to those
    tables in place (an ``UPDATE``) is not something the app does, save one: a re-kind
    (``reset_core.ingest.rekind``) rewrites examples' kinds, and logs a row in
    ``rekinds``, counted here. Call :func:`refresh` after any other write by hand.
    """
    # Three small queries: scalar subqueries mixing counts and lookups in one
    # statement cost ~20 ms here, these ~3 ms together.
    counts = one(
        con,
        "SELECT * FROM (SELECT count(*) FROM examples), (SELECT count(*) FROM candidates), "
        "(SELECT count(*) FROM judgments), (SELECT count(*) FROM selections), "
        "(SELECT count(*) FROM selection_scores), (SELECT count(*) FROM overrides), "
        "(SELECT count(*) FROM rekinds)",
    )
    latest = one(con, LATEST_SELECTION_SQL)
    stored = dict(con.execute("SELECT name, fingerprint FROM analytics_state").fetchall())
    # DuckDB's version is in it because hash() (the sample buckets) may change with it.
    key = (duckdb.__version__, *counts[:5], counts[6], latest and latest[0])
    summary = hashlib.sha1(repr(key).encode()).hexdigest()[:20]
    return summary, f"overrides:{counts[5]}", stored.get("summary"), stored.get("reviewed")


def fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """The version of everything the summaries derive from, except the review events."""
    return _versions(con)[0]


def refresh(con: duckdb.DuckDBPyConnection) -> dict:
    """Rebuild every analytics summary in one transaction; return its state row.

    Seconds at 1,000,000 candidates and 5,000,000 judgments on 2 cores (see
    ``bench/analytics.py``); milliseconds on the demo. Readers see either the old or the
    new summaries, never a mix. Runs under the database's ``analytics`` rebuild lock
    (:func:`reset_core.store.rebuild_lock`): two at once would conflict in DuckDB.
    """
    with rebuild_lock(con, "analytics"):
        return _refresh(con)


def _refresh(con: duckdb.DuckDBPyConnection) -> dict:
    """The rebuild of :func:`refresh`, run under its lock."""
    t0 = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        # Inside the transaction: the fingerprint stored is that of the rows read.
        fp = fingerprint(con)
        for table in (
            "analytics_judgments",
            "analytics_candidates",
            "analytics_missing",
            "analytics_texts",
            "analytics_gaps",
            "analytics_diversity",
        ):
            con.execute(f"DELETE FROM {table}")
        con.execute(
            f"""
            INSERT INTO analytics_judgments
            SELECT (hash(j.candidate_id) % {N_BUCKETS})::SMALLINT AS bucket, j.candidate_id,
                   any_value(c.example_id), j.judge_id, j.aspect,
                   arg_max(j.score, j.created_at) FILTER (WHERE j.score IS NOT NULL),
                   count(*) FILTER (WHERE j.score IS NULL AND j.status <> 'not_applicable')
            FROM judgments j JOIN candidates c USING (candidate_id)
            GROUP BY j.candidate_id, j.judge_id, j.aspect
            HAVING count(j.score) > 0
                OR count(*) FILTER (WHERE j.status <> 'not_applicable') > 0
            ORDER BY bucket, j.aspect, j.judge_id
            """
        )
        con.execute(
            f"""
            INSERT INTO analytics_candidates
            WITH per_aspect AS (
                SELECT candidate_id, aspect, avg(score) AS s, sum(n_failed) AS f
                FROM analytics_judgments GROUP BY candidate_id, aspect
            ), wide AS (
                SELECT candidate_id,
                       max(s) FILTER (WHERE aspect = 'task') AS s_task,
                       max(s) FILTER (WHERE aspect = 'instruction') AS s_instr,
                       max(s) FILTER (WHERE aspect = 'faithfulness') AS s_faith,
                       sum(f)::INTEGER AS n_failed
                FROM per_aspect GROUP BY candidate_id
            ), picks AS (
                SELECT candidate_id FROM selection_scores
                WHERE picked AND selection_id = ({LATEST_SELECTION_SQL})
            )
            SELECT (hash(c.candidate_id) % {N_BUCKETS})::SMALLINT AS bucket, c.candidate_id,
                   c.example_id, c.model_id, c.setting_id, e.kind, e.split,
                   length(c.text),
                   CASE WHEN trim(c.text) = '' THEN 0
                        ELSE len(regexp_split_to_array(trim(c.text), '\\s+')) END,
                   -- duplicate: another candidate of the same example said the same thing
                   count(*) OVER (PARTITION BY c.example_id, md5(lower(trim(c.text)))) > 1,
                   p.candidate_id IS NOT NULL,
                   w.s_task, w.s_instr, w.s_faith, coalesce(w.n_failed, 0)
            FROM candidates c JOIN examples e USING (example_id)
            LEFT JOIN wide w USING (candidate_id)
            LEFT JOIN picks p USING (candidate_id)
            ORDER BY bucket
            """
        )
        con.execute(
            """
            INSERT INTO analytics_missing
            SELECT judge_id, aspect, count(score),
                   count(*) FILTER (WHERE score IS NULL AND status <> 'not_applicable'),
                   count(*) FILTER (WHERE score IS NULL AND status = 'not_applicable')
            FROM judgments GROUP BY judge_id, aspect
            """
        )
        con.execute(
            f"""
            INSERT INTO analytics_texts
            SELECT a.setting_id, a.model_id, a.candidate_id, c.text
            FROM (SELECT setting_id, model_id, candidate_id FROM analytics_candidates
                  WHERE split = 'seen'
                  QUALIFY row_number() OVER (PARTITION BY setting_id, model_id
                                             ORDER BY bucket, candidate_id) <= {TEXTS_PER_SETTING}
                 ) a JOIN candidates c USING (candidate_id)
            """
        )
        # Every judge pair's score gap per candidate and aspect, largest first, for
        # Review's "where judge A and judge B disagree by at least x" filter.
        con.execute(
            """
            INSERT INTO analytics_gaps
            SELECT x.aspect, x.judge_id, y.judge_id, x.candidate_id, x.example_id,
                   abs(x.score - y.score) AS gap
            FROM analytics_judgments x
            JOIN analytics_judgments y ON y.candidate_id = x.candidate_id
                                      AND y.aspect = x.aspect AND x.judge_id < y.judge_id
            WHERE x.score IS NOT NULL AND y.score IS NOT NULL
            ORDER BY x.aspect, x.judge_id, y.judge_id, gap DESC
            """
        )
        for n in DISTINCT_NS:
            con.execute(
                f"INSERT INTO analytics_diversity SELECT g, {n}, v FROM ({distinct_n_sql(n)})"
            )
        _refresh_reviewed(con)
        n = one(con, "SELECT count(*) FROM analytics_candidates")[0]
        seconds = time.perf_counter() - t0
        con.execute("DELETE FROM analytics_state WHERE name = 'summary'")
        con.execute(
            "INSERT INTO analytics_state (name, fingerprint, seconds, n_candidates) "
            "VALUES ('summary', ?, ?, ?)",
            [fp, seconds, n],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return state(con)


def state(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The summaries' state row (fingerprint, refreshed_at, seconds, n_candidates) or None."""
    row = one(
        con,
        "SELECT fingerprint, refreshed_at, seconds, n_candidates FROM analytics_state "
        "WHERE name = 'summary'",
    )
    if row is None:
        return None
    return dict(zip(("fingerprint", "refreshed_at", "seconds", "n_candidates"), row, strict=True))


def distinct_n_sql(n: int) -> str:
    """SQL of distinct n-grams / all n-grams per setting (columns ``g, v``) over the
    ``analytics_texts`` sample: texts lower-cased and split on whitespace; texts shorter
    than n add nothing.
    """
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    return f"""
        WITH toks AS (
            SELECT setting_id AS g, regexp_split_to_array(lower(trim(text)), '\\s+') AS w
            FROM analytics_texts
        ), grams AS (
            SELECT g, unnest(list_transform(range(1, len(w) - {n} + 2),
                                            lambda i: array_to_string(w[i:i + {n} - 1], ' '))) AS gram
            FROM toks WHERE len(w) >= {n}
        )
        SELECT g, count(DISTINCT gram) / count(*) AS v FROM grams GROUP BY g
    """


def _refresh_reviewed(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the review-event summaries (inside the caller's transaction).

    ``analytics_manual``: each reviewer's latest manual score per candidate and aspect;
    ``analytics_reviewed``: the judgment summary rows of every example or candidate a
    review event names, all that judge-vs-human agreement needs.
    """
    con.execute("DELETE FROM analytics_manual")
    con.execute("DELETE FROM analytics_reviewed")
    con.execute(
        f"""
        INSERT INTO analytics_manual
        SELECT candidate_id, example_id, reviewer, aspect, score FROM (
            SELECT candidate_id, example_id, reviewer,
                   json_extract_string(value, '$.aspect') AS aspect,
                   TRY_CAST(json_extract(value, '$.score') AS DOUBLE) AS score
            FROM overrides
            WHERE action = 'score' AND candidate_id IS NOT NULL
              AND event_id NOT IN ({UNDONE_SQL})
            QUALIFY row_number() OVER (PARTITION BY candidate_id, reviewer, aspect
                                       ORDER BY created_at DESC, event_id DESC) = 1
        ) WHERE aspect IS NOT NULL AND score BETWEEN 0 AND 1
        """
    )
    con.execute(
        """
        INSERT INTO analytics_reviewed
        SELECT candidate_id, example_id, judge_id, aspect, score, n_failed
        FROM analytics_judgments
        WHERE example_id IN (SELECT example_id FROM overrides)
           OR candidate_id IN (SELECT candidate_id FROM overrides WHERE candidate_id IS NOT NULL)
        """
    )
    con.execute("DELETE FROM analytics_state WHERE name = 'reviewed'")
    con.execute(
        "INSERT INTO analytics_state (name, fingerprint) VALUES ('reviewed', ?)",
        [_versions(con)[1]],
    )


def refresh_reviewed(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild only the review-event summaries (after new review events), in a transaction."""
    with rebuild_lock(con, "analytics"):
        con.execute("BEGIN TRANSACTION")
        try:
            _refresh_reviewed(con)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise


def is_fresh(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the summaries reflect the current data (one metadata query)."""
    summary, reviewed, stored_summary, stored_reviewed = _versions(con)
    return summary == stored_summary and reviewed == stored_reviewed


def ensure_fresh(con: duckdb.DuckDBPyConnection) -> dict:
    """Refresh what changed since the last refresh; return the summary state.

    New judgments, candidates, examples or selections rebuild everything; new review
    events rebuild only the small review-event summaries. The check takes no lock; a
    stale one is checked again under the database's ``analytics`` rebuild lock, so
    pages that find the summaries stale at once rebuild them once.
    """
    if is_fresh(con):
        return state(con)
    with rebuild_lock(con, "analytics"):
        # The run that held the lock before may have just done this refresh.
        summary, reviewed, stored_summary, stored_reviewed = _versions(con)
        if summary != stored_summary:
            return refresh(con)
        if reviewed != stored_reviewed:
            refresh_reviewed(con)
    return state(con)


def sample_buckets(n_total: int, cap: int) -> int:
    """How many of the 4096 hash buckets hold about ``cap`` of ``n_total`` rows (all if fewer).

    >>> sample_buckets(1_000_000, 2000), sample_buckets(500, 2000)
    (9, 4096)
    """
    if n_total <= cap:
        return N_BUCKETS
    return max(1, min(N_BUCKETS, math.ceil(N_BUCKETS * cap / n_total)))


def missing_summary(con: duckdb.DuckDBPyConnection, aspect: str | None = None) -> dict:
    """Judgment rows per judge (for one aspect or all): valid, failed = missing and excluded.

    >>> from reset_core.store import connect
    >>> missing_summary(connect(":memory:"))
    {'n_valid': 0, 'n_failed': 0, 'n_not_applicable': 0, 'by_judge': {}}
    """
    where, params = ("WHERE aspect = ?", [aspect]) if aspect else ("", [])
    rows = con.execute(
        f"SELECT judge_id, sum(n_valid), sum(n_failed), sum(n_not_applicable) "
        f"FROM analytics_missing {where} GROUP BY judge_id ORDER BY judge_id",
        params,
    ).fetchall()
    by_judge = {r[0]: {"n_valid": int(r[1]), "n_failed": int(r[2])} for r in rows}
    return {
        "n_valid": sum(int(r[1]) for r in rows),
        "n_failed": sum(int(r[2]) for r in rows),
        "n_not_applicable": sum(int(r[3]) for r in rows),
        "by_judge": by_judge,
    }


def missing_note(missing: dict) -> str:
    """One line for the UI: how many judgments were missing and excluded."""
    total = missing["n_valid"] + missing["n_failed"]
    if total == 0:
        return "No judgments yet."
    pct = 100 * missing["n_failed"] / total
    return (
        f"{missing['n_failed']:,} of {total:,} judgments missing (judge failed, NULL score) "
        f"and excluded ({pct:.1f}%)."
    )
