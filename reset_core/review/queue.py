"""The queries behind the review page: the queue of examples and one example's full view.

Everything is filtered, sorted and windowed in SQL, so it stays fast at a million
candidates. The queue reads ``review_queue``, a per-example summary of one selection
(built once by :func:`refresh_queue`, a few seconds at 1M candidates, and rebuilt
only when candidates, judgments or the selection change; up to
:data:`QUEUE_SELECTIONS_KEPT` selections side by side); the reviewers' side
(reviewed, overridden, last reviewer) comes live from ``overrides``.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> queue_counts(con, "none", QueueFilter())["matching"]
0
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

import pandas as pd
from pydantic import BaseModel, Field

from reset_core.judging.queries import judge_label_sql
from reset_core.review import links as review_links
from reset_core.review.events import (
    ExampleState,
    _state_ctes,
    candidate_names,
    example_state,
    example_states,
)
from reset_core.sampling.settings import setting_label_sql, setting_order_sql
from reset_core.store import database_key, one, rebuild_lock
from reset_core.training.queries import model_labels

#: Sort options of the queue: label -> ORDER BY clause (ties broken by example id).
SORTS: dict[str, str] = {
    "example id": "q.example_id",
    "lowest pick score first": "q.pick_score ASC NULLS FIRST, q.example_id",
    "highest pick score first": "q.pick_score DESC NULLS LAST, q.example_id",
    "most judge disagreement first": "q.disagreement DESC, q.example_id",
    "most failed judgments first": "q.n_failed DESC, q.example_id",
    "recently reviewed first": "f.last_at DESC NULLS LAST, q.example_id",
}


class QueueFilter(BaseModel):
    """Which examples the review queue shows, and in what order."""

    kinds: list[str] = Field(default_factory=list, description="example kinds (empty: all)")
    sources: list[str] = Field(default_factory=list, description="source datasets (empty: all)")
    splits: list[str] = Field(default_factory=list, description="splits (empty: all)")
    settings: list[str] = Field(
        default_factory=list,
        description="decoding settings: examples with a candidate under any of them (empty: all)",
    )
    score_min: float | None = Field(
        None, ge=0, description="lowest RESET score of the judge pick (examples without one drop)"
    )
    score_max: float | None = Field(None, ge=0, description="highest RESET score of the judge pick")
    min_disagreement: float = Field(
        0.0,
        ge=0,
        le=1,
        description="only examples where two judges differ by at least this on some candidate "
        "and aspect (0: no filter)",
    )
    overridden: bool | None = Field(
        None, description="True: only examples with a live override; False: only without"
    )
    reviewed: bool | None = Field(
        None, description="True: only examples someone decided on; False: only the rest"
    )
    search: str = Field("", max_length=500, description="text in instruction, context or reference")
    link: dict | None = Field(
        None,
        description="an analytics link (reset_core.review.links.parse): only examples holding "
        "one of its candidates; needs fresh analytics summaries",
    )
    sort: Literal[tuple(SORTS)] = Field("example id", description="queue order")  # type: ignore[valid-type]


# ----------------------------------------------------------------------------- summary


def _stamp(con, selection_id: str) -> dict:
    """What the summary depends on; a different stamp means it must be rebuilt."""
    row = one(
        con,
        """
        SELECT (SELECT count(*) FROM candidates),
               (SELECT count(*) FROM judgments),
               (SELECT max(created_at)::VARCHAR FROM judgments),
               (SELECT count(*) FROM selection_scores WHERE selection_id = ?),
               (SELECT count(*) FROM examples),
               (SELECT count(*) FROM rekinds)
        """,
        [selection_id],
    )
    # rekinds: the queue caches each example's kind, and a re-kind changes no row count.
    return dict(
        zip(
            ("candidates", "judgments", "judged_at", "scores", "examples", "rekinds"),
            row,
            strict=True,
        )
    )


#: How many selections' queue summaries the database keeps at once. Each holds a row
#: per example of its selection, search text included (about the size of the examples
#: table), so keeping every selection ever opened would grow the file without end;
#: one summary for all (as before) made two reviewers on two selections rebuild it
#: in turn on every click. Four: two reviewing groups at once, and room to look around.
QUEUE_SELECTIONS_KEPT = 4

# (database, selection) -> time.monotonic() of the last freshness check, i.e. the last
# time a page in this process showed that selection's queue. Written without a lock
# (one dict item, atomic under the GIL): reads of the queue stay lock-free.
_last_read: dict[tuple[str, str], float] = {}


def queue_is_fresh(con, selection_id: str) -> bool:
    """Whether ``review_queue`` matches the current candidates, judgments and selection.

    Also notes that the selection's queue is in use (it decides which summary is
    evicted first, see :data:`QUEUE_SELECTIONS_KEPT`).
    """
    _last_read[(database_key(con), selection_id)] = time.monotonic()
    row = one(con, "SELECT stamp FROM review_queue_state WHERE selection_id = ?", [selection_id])
    return row is not None and json.loads(row[0]) == _stamp(con, selection_id)


def refresh_queue(con, selection_id: str, force: bool = False) -> bool:
    """(Re)build the queue summary of ``selection_id`` if stale; return whether it built.

    One ``INSERT … SELECT`` in a transaction, under the database's ``review_queue``
    rebuild lock (:func:`reset_core.store.rebuild_lock`): script runs that find the
    summary stale at once build it once, the others find it fresh when they get the
    lock. Other selections' summaries stay, up to :data:`QUEUE_SELECTIONS_KEPT`
    (see :func:`_evict` for which go).
    """
    if not force and queue_is_fresh(con, selection_id):
        return False
    with rebuild_lock(con, "review_queue"):
        # The run that held the lock before may have just built this very summary.
        if not force and queue_is_fresh(con, selection_id):
            return False
        con.execute("BEGIN TRANSACTION")
        try:
            # Stamped inside the transaction: the stamp describes exactly what was read.
            stamp = _stamp(con, selection_id)
            con.execute("DELETE FROM review_queue WHERE selection_id = ?", [selection_id])
            con.execute("DELETE FROM review_queue_state WHERE selection_id = ?", [selection_id])
            con.execute(
                """
                INSERT INTO review_queue
                WITH sel AS (SELECT candidate_id, example_id, score, rank, picked
                             FROM selection_scores WHERE selection_id = ?),
                per_aspect AS (
                    SELECT candidate_id, aspect, max(score) - min(score) AS spread,
                           count(*) - count(score) AS n_failed
                    FROM judgments WHERE candidate_id IN (SELECT candidate_id FROM sel)
                    GROUP BY candidate_id, aspect),
                per_cand AS (SELECT candidate_id, max(spread) AS spread, sum(n_failed) AS n_failed
                             FROM per_aspect GROUP BY candidate_id)
                SELECT ?, sel.example_id, e.kind, e.source, e.split,
                       count(*)::INT, count(sel.score)::INT,
                       arg_min(sel.candidate_id, coalesce(sel.rank, 2147483647))
                           FILTER (WHERE sel.picked),
                       arg_min(sel.score, coalesce(sel.rank, 2147483647))
                           FILTER (WHERE sel.picked),
                       max(sel.score),
                       coalesce(max(pc.spread), 0), coalesce(sum(pc.n_failed), 0)::INT,
                       coalesce(list(DISTINCT c.setting_id ORDER BY c.setting_id)
                                FILTER (WHERE c.setting_id IS NOT NULL), []),
                       lower(concat_ws(chr(10), e.instruction, e.context, e.reference))
                FROM sel JOIN examples e ON e.example_id = sel.example_id
                LEFT JOIN candidates c ON c.candidate_id = sel.candidate_id
                LEFT JOIN per_cand pc ON pc.candidate_id = sel.candidate_id
                GROUP BY sel.example_id, e.kind, e.source, e.split, e.instruction, e.context,
                         e.reference
                """,
                [selection_id, selection_id],
            )
            con.execute(
                "INSERT INTO review_queue_state (selection_id, stamp) VALUES (?, ?)",
                [selection_id, json.dumps(stamp)],
            )
            _evict(con, selection_id)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return True


def _evict(con, keep: str) -> list[str]:
    """Drop the summaries beyond :data:`QUEUE_SELECTIONS_KEPT` (``keep`` stays); return them.

    Which go first: those no page of this process has shown since it started (oldest
    built first: left from an earlier run, or by a command-line rebuild), then the
    least recently shown. The ones reviewers have open are the ones shown, and each
    eviction of one would cost its reviewers a rebuild on their next click.
    """
    others = con.execute(
        "SELECT selection_id, built_at FROM review_queue_state WHERE selection_id <> ?", [keep]
    ).fetchall()
    excess = len(others) - (QUEUE_SELECTIONS_KEPT - 1)
    if excess <= 0:
        return []
    db = database_key(con)
    others.sort(key=lambda r: (_last_read.get((db, r[0]), float("-inf")), r[1], r[0]))
    gone = [r[0] for r in others[:excess]]
    con.execute("DELETE FROM review_queue WHERE selection_id IN (SELECT unnest(?))", [gone])
    con.execute("DELETE FROM review_queue_state WHERE selection_id IN (SELECT unnest(?))", [gone])
    return gone


# ----------------------------------------------------------------------------- queue


def _where(selection_id: str, f: QueueFilter) -> tuple[str, list]:
    """WHERE clause over ``q`` (summary) and ``f`` (review flags, see :func:`refresh_flags`)."""
    clauses, params = ["q.selection_id = ?"], [selection_id]
    for col, values in (("kind", f.kinds), ("source", f.sources), ("split", f.splits)):
        if values:
            clauses.append(f"q.{col} IN (SELECT unnest(?))")
            params.append(list(values))
    if f.settings:
        # list_contains per setting is ~10x faster than list_has_any over 200k lists.
        clauses.append("(" + " OR ".join(["list_contains(q.settings, ?)"] * len(f.settings)) + ")")
        params += list(f.settings)
    if f.score_min is not None:
        clauses.append("q.pick_score >= ?")
        params.append(f.score_min)
    if f.score_max is not None:
        clauses.append("q.pick_score <= ?")
        params.append(f.score_max)
    if f.min_disagreement > 0:
        clauses.append("q.disagreement >= ?")
        params.append(f.min_disagreement)
    if f.reviewed is not None:
        clauses.append(("" if f.reviewed else "NOT ") + "coalesce(f.reviewed, false)")
    if f.overridden is not None:
        clauses.append(("" if f.overridden else "NOT ") + "coalesce(f.overridden, false)")
    if f.link:
        sql, link_params = review_links.linked_sql(f.link)
        clauses.append(f"q.example_id IN (SELECT example_id FROM ({sql}))")
        params += link_params
    search = f.search.strip().lower()
    if search:
        clauses.append("q.haystack LIKE ? ESCAPE '\\'")
        params.append(
            "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
    return " AND ".join(clauses), params


def _flags_fresh(con) -> bool:
    n = one(con, "SELECT count(*) FROM overrides")[0]
    row = one(con, "SELECT n_events FROM review_flags_state")
    return row is not None and row[0] == n


def refresh_flags(con) -> bool:
    """(Re)build ``review_flags`` when review events were added; return whether it built.

    Overrides are append-only (undo and lifts are new events), so their row count is a
    complete version, answered from table metadata. The rebuild derives every example's
    flags once (tens of milliseconds per 10,000 events); queue renders then join a table.
    Every reviewer's action makes it stale, so several script runs often find it stale
    at once: it is rebuilt under the database's ``review_flags`` lock, once.
    """
    if _flags_fresh(con):
        return False
    with rebuild_lock(con, "review_flags"):
        con.execute("BEGIN TRANSACTION")
        try:
            # Checked again inside the transaction: another run may have rebuilt it while
            # this one waited, and the count stored must be that of the events read.
            if _flags_fresh(con):
                con.execute("ROLLBACK")
                return False
            n = one(con, "SELECT count(*) FROM overrides")[0]
            con.execute("DELETE FROM review_flags")
            con.execute("DELETE FROM review_flags_state")
            con.execute(
                f"""
                INSERT INTO review_flags
                WITH {_state_ctes()}
                SELECT f.example_id, coalesce(f.reviewed, false), o.example_id IS NOT NULL,
                       f.last_at, f.last_reviewer
                FROM ex_flags f LEFT JOIN ex_overridden o USING (example_id)
                """
            )
            con.execute("INSERT INTO review_flags_state VALUES (?)", [n])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return True


def _from(con) -> str:
    refresh_flags(con)
    return """
    SELECT {cols}
    FROM review_queue q
    LEFT JOIN review_flags f ON f.example_id = q.example_id
    """


def queue_counts(con, selection_id: str, f: QueueFilter) -> dict[str, int]:
    """``matching`` examples, how many of them are ``left`` to review, and selection totals.

    ``total`` / ``reviewed_total`` ignore the filters: the whole selection's progress.
    """
    where, params = _where(selection_id, f)
    # One pass: the filter is evaluated once per row, then counted three ways.
    row = one(
        con,
        f"""
        SELECT count(*) FILTER (WHERE m), count(*) FILTER (WHERE m AND NOT reviewed),
               count(*), count(*) FILTER (WHERE reviewed)
        FROM ({_from(con).format(cols=f"({where}) AS m, coalesce(f.reviewed, false) AS reviewed")}
              WHERE q.selection_id = ?)
        """,
        [*params, selection_id],
    )
    return dict(zip(("matching", "left", "total", "reviewed_total"), row, strict=True))


def queue_page(
    con, selection_id: str, f: QueueFilter, page: int = 0, page_size: int = 50
) -> pd.DataFrame:
    """One page of the queue, filtered, sorted and windowed in SQL.

    Columns, the short ones a reviewer scans first: ``example_id``, ``setting`` (the
    decoding setting of the current pick, overrides applied, by its values), ``reviewed``,
    ``overridden``, ``pick_score``, ``kind, source, split, n_candidates, disagreement,
    n_failed, last_reviewer``, then ``instruction`` (first 160 characters) and with a
    ``link`` filter ``linked`` (its candidates in the example, by setting and sample).
    """
    if page < 0 or not 1 <= page_size <= 500:
        raise ValueError("page: must be >= 0; page_size: must be in [1, 500]")
    where, params = _where(selection_id, f)
    cols = """q.example_id, coalesce(f.reviewed, false) AS reviewed,
              coalesce(f.overridden, false) AS overridden, q.pick_score, q.kind, q.source, q.split,
              q.n_candidates, q.disagreement, q.n_failed, f.last_reviewer, q.judge_pick"""
    df = con.execute(
        _from(con).format(cols=cols) + f" WHERE {where} ORDER BY {SORTS[f.sort]} LIMIT ? OFFSET ?",
        [*params, page_size, page * page_size],
    ).df()
    ids = df["example_id"].tolist()
    # Only the page's rows fetch their (long) instruction text and their pick's setting.
    text = dict(
        con.execute(
            "SELECT example_id, left(instruction, 160) FROM examples "
            "WHERE example_id IN (SELECT unnest(?))",
            [ids],
        ).fetchall()
    )
    picks = dict(zip(ids, df.pop("judge_pick"), strict=True))
    overridden = df.loc[df["overridden"], "example_id"].tolist()
    if overridden:  # only these can differ from the judges: their states in two queries
        picks.update(
            {e: st.pick for e, st in example_states(con, overridden, selection_id).items()}
        )
    df.insert(1, "setting", df["example_id"].map(_setting_labels_of(con, picks)))
    df["instruction"] = df["example_id"].map(text)
    if f.link:
        linked = review_links.linked_in(con, f.link, ids)
        names = candidate_names(con, ids) if linked else {}
        df["linked"] = df["example_id"].map(
            lambda e: "; ".join(names.get(c, c) for c, _ in linked.get(e, []))
        )
    return df


def _setting_labels_of(con, picks: dict[str, str | None]) -> dict[str, str]:
    """Each example's pick (``example -> candidate``) by its setting's label."""
    cids = [c for c in picks.values() if c]
    if not cids:
        return {}
    labels = dict(
        con.execute(
            f"SELECT c.candidate_id, coalesce({setting_label_sql('d')}, c.setting_id) "
            "FROM candidates c LEFT JOIN decoding_settings d ON d.setting_id = c.setting_id "
            "WHERE c.candidate_id IN (SELECT unnest(?))",
            [cids],
        ).fetchall()
    )
    return {e: labels[c] for e, c in picks.items() if c in labels}


def queue_position(con, selection_id: str, f: QueueFilter, example_id: str) -> int | None:
    """Where ``example_id`` sits in the filtered, sorted queue (0-based), None if not in it.

    For Previous/Next after an example was opened by id or by "next unreviewed".
    """
    where, params = _where(selection_id, f)
    row = one(
        con,
        _from(con).format(
            cols=f"q.example_id, row_number() OVER (ORDER BY {SORTS[f.sort]}) - 1 AS pos"
        )
        + f" WHERE {where} QUALIFY q.example_id = ?",
        [*params, example_id],
    )
    return None if row is None else row[1]


def filter_options(con, selection_id: str) -> dict:
    """Values for the filter widgets: kinds, sources, splits, settings (ids, and their
    labels in ``setting_labels``), score bounds."""
    out = {}
    for col in ("kind", "source", "split"):
        out[col] = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT {col} FROM review_queue WHERE selection_id = ? ORDER BY 1",
                [selection_id],
            ).fetchall()
        ]
    rows = con.execute(
        f"SELECT setting_id, {setting_label_sql('d')} FROM decoding_settings d "
        f"ORDER BY {setting_order_sql('d')}, setting_id"
    ).fetchall()
    out["settings"] = [r[0] for r in rows]
    out["setting_labels"] = dict(rows)  # what the widget shows for each id
    lo, hi = one(
        con,
        "SELECT min(pick_score), max(pick_score) FROM review_queue WHERE selection_id = ?",
        [selection_id],
    )
    out["score_range"] = (lo, hi)
    return out


# ----------------------------------------------------------------------------- example view


@dataclass(frozen=True)
class ExampleView:
    """Everything the example view shows, from a handful of point queries."""

    example: dict
    candidates: list[dict]  # each with setting, selection score/rank/picked, judgments list
    state: ExampleState
    selection_id: str | None
    #: whether the selection scores this example: overrides act on a selection's picks,
    #: so without one (no selection yet, a test-split example) the view is read-only
    in_selection: bool = False


def example_view(con, example_id: str, selection_id: str | None) -> ExampleView | None:
    """One example with its candidates, every judge's verdicts and the review state.

    Candidates come best first (selection rank, then sample index); each carries
    ``setting`` (its label), ``name`` (setting and sample, see
    :func:`reset_core.review.events.candidate_names`), ``model`` (the model's label),
    ``judgments`` (judge, aspect, score, status, rationale), ``vetoed``, ``forced``,
    ``is_pick``, ``manual_rank`` and ``manual_scores``. None if the example is unknown.
    ``selection_id`` None (no selection yet) still shows the candidates and verdicts;
    ``in_selection`` says whether the selection scores the example at all.
    """
    ex = con.execute(
        "SELECT example_id, instruction, context, reference, kind, source, split "
        "FROM examples WHERE example_id = ?",
        [example_id],
    ).fetchall()
    if not ex:
        return None
    example = dict(
        zip(
            ("example_id", "instruction", "context", "reference", "kind", "source", "split"),
            ex[0],
            strict=False,
        )
    )
    rows = con.execute(
        f"""
        WITH s AS (SELECT candidate_id, score, rank, picked FROM selection_scores
                   WHERE example_id = ? AND selection_id = ?)
        SELECT c.candidate_id, c.text, c.model_id, c.setting_id, c.sample_index, c.seed,
               c.finish_reason, c.completion_tokens, c.engine,
               d.temperature, d.top_k, d.top_p, d.max_tokens,
               coalesce({setting_label_sql("d")}, c.setting_id) AS setting,
               s.score, s.rank, coalesce(s.picked, false) AS picked
        FROM candidates c
        LEFT JOIN decoding_settings d ON d.setting_id = c.setting_id
        LEFT JOIN s ON s.candidate_id = c.candidate_id
        WHERE c.example_id = ?
        ORDER BY s.rank NULLS LAST, c.sample_index, c.candidate_id
        """,
        [example_id, selection_id, example_id],
    ).fetchall()
    names = [
        "candidate_id",
        "text",
        "model_id",
        "setting_id",
        "sample_index",
        "seed",
        "finish_reason",
        "completion_tokens",
        "engine",
        "temperature",
        "top_k",
        "top_p",
        "max_tokens",
        "setting",
        "score",
        "rank",
        "picked",
    ]
    candidates = [dict(zip(names, r, strict=True)) for r in rows]
    readable = candidate_names(con, example_id)
    models = model_labels(con) if candidates else {}
    for c in candidates:
        c["name"] = readable.get(c["candidate_id"], c["candidate_id"])
        c["model"] = models.get(c["model_id"], c["model_id"])
    ids = [c["candidate_id"] for c in candidates]
    verdicts: dict[str, list[dict]] = {i: [] for i in ids}
    if ids:
        # ``judge`` is the on-screen name: a placeholder judge's verdicts say so.
        for r in con.execute(
            "SELECT v.candidate_id, v.judge_id, "
            f"{judge_label_sql('v.judge_id', 'g.placeholder')}, v.aspect, v.score, v.status, "
            "v.rationale, v.error "
            "FROM judgments v LEFT JOIN judges g USING (judge_id) "
            "WHERE v.candidate_id IN (SELECT unnest(?)) "
            "ORDER BY v.candidate_id, v.aspect, v.judge_id",
            [ids],
        ).fetchall():
            verdicts[r[0]].append(
                dict(
                    zip(
                        ("judge_id", "judge", "aspect", "score", "status", "rationale", "error"),
                        r[1:],
                        strict=True,
                    )
                )
            )
    state = example_state(con, example_id, selection_id)
    manual_rank = {c: i + 1 for i, c in enumerate(state.ranking)}
    for c in candidates:
        cid = c["candidate_id"]
        c["judgments"] = verdicts[cid]
        c["vetoed"] = cid in state.vetoed
        c["forced"] = cid == state.forced
        c["is_pick"] = cid == state.pick
        c["manual_rank"] = manual_rank.get(cid)
        c["manual_scores"] = state.scores.get(cid, {})
    in_selection = bool(
        selection_id
        and one(
            con,
            "SELECT count(*) FROM selection_scores WHERE example_id = ? AND selection_id = ?",
            [example_id, selection_id],
        )[0]
    )
    return ExampleView(example, candidates, state, selection_id, in_selection)


def selections(con, limit: int = 50) -> list[tuple[str, str, str]]:
    """Newest selections first: ``(selection_id, preset, created_at)``."""
    return [
        (r[0], r[1], str(r[2]))
        for r in con.execute(
            "SELECT selection_id, preset, created_at FROM selections "
            "ORDER BY created_at DESC, selection_id DESC LIMIT ?",
            [limit],
        ).fetchall()
    ]
