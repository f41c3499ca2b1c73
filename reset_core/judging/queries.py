"""What the Judge page and the CLI read about verdicts: summaries, failures, judge ids.

A failed verdict is a row with a NULL score (its error and raw answer kept), so every
summary here counts the failures beside the scores rather than hiding them.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> judgment_summary(con).empty, judgment_statuses(con), judge_ids(con)
(True, [], [])
>>> job_judgment_counts(con, "judge-x")
(0, 0)
"""

from __future__ import annotations

from reset_core.store import one

#: How a placeholder judge (the local stand-in server's) is marked wherever it is shown.
PLACEHOLDER_LABEL = "placeholder"


def judge_label(judge_id: str, placeholder: bool | None) -> str:
    """How a judge is named on screen: its id, marked when its verdicts are placeholders.

    >>> judge_label("llm:gpt-4o-mini:1a2b", True)
    'llm:gpt-4o-mini:1a2b (placeholder)'
    >>> judge_label("metric:rouge_l:v1", None)
    'metric:rouge_l:v1'
    """
    return f"{judge_id} ({PLACEHOLDER_LABEL})" if placeholder else judge_id


def judge_label_sql(judge_id: str = "judge_id", placeholder: str = "placeholder") -> str:
    """:func:`judge_label` as a SQL expression over two columns (one rule, two forms).

    >>> from reset_core.store import connect
    >>> connect(":memory:").sql(
    ...     f"SELECT {judge_label_sql('j', 'p')} FROM (VALUES ('a', true), ('b', NULL)) t(j, p)"
    ... ).fetchall()
    [('a (placeholder)',), ('b',)]
    """
    return (
        f"CASE WHEN coalesce({placeholder}, false) "
        f"THEN {judge_id} || ' ({PLACEHOLDER_LABEL})' ELSE {judge_id} END"
    )


def judge_labels(con) -> dict[str, str]:
    """Every registered judge's on-screen name (:func:`judge_label`), by judge id.

    Ids without a ``judges`` row (none in practice) are not in it: look them up with
    ``labels.get(judge_id, judge_id)``.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute("INSERT INTO judges (judge_id, name, kind, placeholder) VALUES "
    ...                 "('llm:m:1', 'llm', 'llm', true), ('metric:rouge_l:v1', 'r', 'metric', false)")
    >>> judge_labels(con)
    {'llm:m:1': 'llm:m:1 (placeholder)', 'metric:rouge_l:v1': 'metric:rouge_l:v1'}
    """
    return dict(
        con.execute(f"SELECT judge_id, {judge_label_sql()} FROM judges ORDER BY 1").fetchall()
    )


#: Columns of :func:`judgment_summary`, in order.
SUMMARY_COLUMNS = (
    "judge_id",
    "judge",
    "endpoint",
    "aspect",
    "n",
    "scored",
    "failed",
    "mean_score",
    "cost_usd",
    "cached",
    "output_modes",
)


def judgment_summary(con):
    """Per judge and aspect: verdicts, scored, failed, mean score, cost, cached (DataFrame).

    ``judge`` is the judge's on-screen name (placeholders marked, :func:`judge_label`),
    ``endpoint`` where its verdicts came from, ``output_modes`` how they were asked
    for (json_schema, json_object, prompt; empty for metric judges). Rows with
    failures come first (most failed first), then by judge and aspect.

    >>> from reset_core.store import connect
    >>> tuple(judgment_summary(connect(":memory:")).columns) == SUMMARY_COLUMNS
    True
    """
    return con.execute(
        f"SELECT v.judge_id, {judge_label_sql('v.judge_id', 'any_value(g.placeholder)')} AS judge, "
        "any_value(g.endpoint) AS endpoint, v.aspect, count(*) AS n, count(v.score) AS scored, "
        "count(*) - count(v.score) AS failed, round(avg(v.score), 3) AS mean_score, "
        "round(sum(v.cost_usd), 4) AS cost_usd, count(*) FILTER (WHERE v.cached) AS cached, "
        "coalesce(string_agg(DISTINCT v.output_mode, ', ' ORDER BY v.output_mode), '') "
        "AS output_modes "
        "FROM judgments v LEFT JOIN judges g USING (judge_id) "
        "GROUP BY v.judge_id, v.aspect ORDER BY failed DESC, v.judge_id, v.aspect"
    ).df()


def judgment_statuses(con) -> list[str]:
    """The verdict statuses present, failures first (the most frequent first), ``ok`` last.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, status) VALUES "
    ...     "('j1', 'c1', 'len', 'task', 'ok'), ('j2', 'c2', 'len', 'task', 'ok'), "
    ...     "('j3', 'c3', 'len', 'task', 'ok'), ('j4', 'c1', 'llm', 'task', 'timeout'), "
    ...     "('j5', 'c2', 'llm', 'task', 'parse_error'), ('j6', 'c3', 'llm', 'task', 'parse_error')"
    ... )
    >>> judgment_statuses(con)
    ['parse_error', 'timeout', 'ok']
    """
    return [
        r[0]
        for r in con.execute(
            "SELECT status FROM judgments GROUP BY status ORDER BY status = 'ok', count(*) DESC"
        ).fetchall()
    ]


def judgments_with_status(con, status: str, limit: int = 100):
    """The newest ``limit`` verdicts with a status, with their error, raw answer and candidate.

    A pandas DataFrame: judge_id, aspect, score, raw_score, status, error, raw_output,
    rationale, attempts, example_id, setting (the candidate's decoding setting by its
    values), candidate (the candidate's text).

    >>> from reset_core.store import connect
    >>> list(judgments_with_status(connect(":memory:"), "timeout").columns)[-3:]
    ['example_id', 'setting', 'candidate']
    """
    from reset_core.sampling.settings import setting_label_sql

    # The newest verdicts first, then their candidates: joining before the limit hashed a
    # million candidates for 100 rows (1-3 s at 7.5M verdicts, 0.05 s this way).
    return con.execute(
        "WITH j AS (SELECT * FROM judgments WHERE status = ? "
        "ORDER BY created_at DESC, judgment_id LIMIT ?) "
        "SELECT j.judge_id, j.aspect, j.score, j.raw_score, j.status, j.error, j.raw_output, "
        f"j.rationale, j.attempts, c.example_id, "
        f"coalesce({setting_label_sql('d')}, c.setting_id) AS setting, c.text AS candidate "
        "FROM j JOIN candidates c USING (candidate_id) "
        "LEFT JOIN decoding_settings d ON d.setting_id = c.setting_id "
        "ORDER BY j.created_at DESC, j.judgment_id",
        [status, limit],
    ).df()


def judge_ids(con) -> list[str]:
    """Every judge that has given a verdict (failed ones included), sorted.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, status) VALUES "
    ...     "('j1', 'c1', 'overlap', 'task', 'ok'), ('j2', 'c1', 'length', 'task', 'ok'), "
    ...     "('j3', 'c2', 'overlap', 'task', 'timeout')"
    ... )
    >>> judge_ids(con)
    ['length', 'overlap']
    """
    return [
        r[0] for r in con.execute("SELECT DISTINCT judge_id FROM judgments ORDER BY 1").fetchall()
    ]


def job_judgment_counts(con, job_id: str) -> tuple[int, int]:
    """How many judgments a judge job stored, and how many of them have a score.

    The difference is the failed verdicts (a NULL score with its error kept)::

        n, n_scored = job_judgment_counts(con, job_id)
        print(f"{n} judgments, {n_scored} scored, {n - n_scored} without a score")
    """
    n, n_scored = one(
        con, "SELECT count(*), count(score) FROM judgments WHERE job_id = ?", [job_id]
    )
    return n, n_scored


def judge_descriptions(con) -> dict[str, str]:
    """Every registered judge as the panel builder lists it, by judge id: its id, marked
    ``(placeholder)`` when its verdicts are the local stand-in's, and what it measures.

    (The marking is the judges work's ``judge_label`` rule; once both are merged this
    should call it.)

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO judges (judge_id, name, kind, description, placeholder) VALUES "
    ...     "('metric:rouge_l', 'rouge_l', 'metric', 'ROUGE-L F1 against the reference', false), "
    ...     "('llm:gpt-4o-mini', 'gpt-4o-mini', 'llm', NULL, true)")
    >>> for judge_id, label in judge_descriptions(con).items():
    ...     print(label)
    llm:gpt-4o-mini (placeholder)
    metric:rouge_l · ROUGE-L F1 against the reference
    """
    rows = con.execute(
        "SELECT judge_id, coalesce(placeholder, false), description FROM judges ORDER BY judge_id"
    ).fetchall()
    return {j: " · ".join([f"{j} (placeholder)" if ph else j] + [d] * bool(d)) for j, ph, d in rows}


# ------------------------------------------------------------------ injection flags
def unscanned_candidates(con, detector: str, batch_rows: int = 50_000):
    """Candidates (id, text) the injection detector ``detector`` has not scanned yet, as
    Arrow tables of at most ``batch_rows``, in id order (a million texts never sit
    whole in memory). Keyset pages, each its own query: the caller inserts the flags of
    one page through the same connection before the next is read."""
    last = ""
    while True:
        page = con.sql(
            "SELECT c.candidate_id, c.text FROM candidates c "
            "ANTI JOIN (SELECT candidate_id FROM injection_flags WHERE detector = ?) f "
            "USING (candidate_id) WHERE c.candidate_id > ? ORDER BY c.candidate_id LIMIT ?",
            params=[detector, last, int(batch_rows)],
        ).to_arrow_table()
        if page.num_rows == 0:
            return
        yield page
        last = page.column("candidate_id")[-1].as_py()


def mark_clean_candidates(con, detector: str, hint_pattern: str) -> int:
    """Store an empty flag for every unscanned candidate whose text matches none of the
    detector's hint words (``hint_pattern``); return how many. One SQL pass."""
    return one(
        con,
        "WITH clean AS (INSERT INTO injection_flags (candidate_id, detector, rules, sentences) "
        "SELECT c.candidate_id, ?, []::TEXT[], []::TEXT[] FROM candidates c "
        "ANTI JOIN (SELECT candidate_id FROM injection_flags WHERE detector = ?) f "
        "USING (candidate_id) WHERE NOT regexp_matches(coalesce(c.text, ''), ?) "
        "RETURNING 1) SELECT count(*) FROM clean",
        [detector, detector, hint_pattern],
    )[0]


def injection_counts(con, job_id: str | None = None) -> dict[str, int]:
    """Candidates scanned and flagged by the injection detector: all of them, or those a
    judging job judged (``job_id``).

    >>> from reset_core.store import connect
    >>> injection_counts(connect(":memory:"))
    {'scanned': 0, 'flagged': 0}
    """
    where, params = "", []
    if job_id is not None:
        where = "WHERE candidate_id IN (SELECT candidate_id FROM judgments WHERE job_id = ?)"
        params = [job_id]
    scanned, flagged = one(
        con,
        f"SELECT count(*), count(*) FILTER (WHERE len(rules) > 0) FROM injection_flags {where}",
        params,
    )
    return {"scanned": scanned, "flagged": flagged}


def injection_flags_for(con, candidate_ids: list[str]) -> dict[str, dict]:
    """The flags of these candidates that carry one: id -> {"rules", "sentences"}."""
    rows = con.execute(
        "SELECT candidate_id, rules, sentences FROM injection_flags "
        "WHERE candidate_id IN (SELECT unnest(?)) AND len(rules) > 0",
        [list(candidate_ids)],
    ).fetchall()
    return {c: {"rules": list(r), "sentences": list(s or [])} for c, r, s in rows}


def flagged_items(con, limit: int | None = None):
    """Judge items (task aspect) of the flagged candidates, for the twin measurement:
    the same columns a judging plan carries."""
    sql = (
        "SELECT c.candidate_id, c.example_id, 'task' AS aspect, e.instruction, e.context, "
        "e.reference, e.kind, c.text, c.finish_reason, CAST(e.meta AS VARCHAR) AS meta "
        "FROM injection_flags f JOIN candidates c USING (candidate_id) "
        "JOIN examples e USING (example_id) WHERE len(f.rules) > 0 ORDER BY c.candidate_id"
    )
    if limit:
        sql += f" LIMIT {int(limit)}"
    return con.sql(sql).to_arrow_table()
