"""Human review of judge picks: append-only override events, derived state, effective picks.

Every reviewer action is one row in ``overrides`` with who, when, the state the
example was in just before (``previous``) and an optional reason. Nothing is ever
updated or deleted: the current state of an example is *derived* from its events,
so the history view and the audit trail are the same data.

Actions (``value`` is JSON)::

    accept   the current pick is right                       {"candidate_id": pick}
    veto     candidate_id must not be picked                 {}   (unveto lifts it)
    force    candidate_id is the pick, replacing any other   {}   (unforce lifts it)
    exclude  the example leaves curation                     {}   (include brings it back)
    rank     the reviewer's order, best first                {"ranking": [candidate ids]}
    score    a manual aspect score of candidate_id           {"aspect": "task", "score": 0.8}
             (score null clears it)
    note     free text                                       {"text": "..."}
    undo     cancels an earlier event of the same example    {"event_id": "..."}

``undo`` with no target cancels the latest event of the example that is not an undo
and not undone yet. Undo events themselves are not undone (redo = act again).

Effective picks (what selection and exports use; see :func:`effective_picks`), in
order of precedence per example: excluded → no pick; forced → that candidate; a
manual ranking → its best non-vetoed candidate; else the judge picks of the
selection, where a vetoed pick is replaced by the next best rankable candidate
(by RESET score) that is not vetoed, or none.

Concurrency: the app process is the database's one writer and every event is
appended under one process-wide lock, so two reviewers on one example never lose
an event. A caller passes the last event it showed the reviewer (``seen``);
:func:`record` returns the events other people added since, so the UI can say who
changed the example under the reviewer's feet.

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> _ = con.execute("INSERT INTO examples (example_id, instruction, kind, source, split, "
...                 "content_hash) VALUES ('e1', 'Say hi', 'instruction', 'demo', 'seen', 'h')")
>>> _ = con.execute("INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, "
...     "sample_index, seed, text, engine) VALUES ('a', 'e1', 'm', 's', 0, 0, 'hi', 't'), "
...     "('b', 'e1', 'm', 's', 1, 1, 'hello', 't')")
>>> _ = con.execute("INSERT INTO selections VALUES ('sel', 'reset', '{}', now())")
>>> _ = con.execute("INSERT INTO selection_scores (selection_id, candidate_id, example_id, "
...     "score, rank, picked) VALUES ('sel', 'a', 'e1', 2.5, 1, true), ('sel', 'b', 'e1', 2, 2, false)")
>>> r = record(con, "e1", "veto", "alice", candidate_id="a", reason="rude")
>>> effective_picks(con, "sel").to_pylist()[0]["candidate_id"]
'b'
>>> _ = undo(con, "e1", "alice")
>>> effective_picks(con, "sel").to_pylist()[0]["candidate_id"]
'a'
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from reset_core.aspects import ASPECTS
from reset_core.scoring.queries import latest_selection
from reset_core.store import one

ACTIONS = (
    "accept",
    "veto",
    "unveto",
    "force",
    "unforce",
    "exclude",
    "include",
    "rank",
    "score",
    "note",
    "undo",
)
#: Each lifting action and the action it lifts (the SQL folds them into one flag).
LIFTS = {"unveto": "veto", "unforce": "force", "include": "exclude"}
_CANDIDATE_ACTIONS = ("veto", "unveto", "force", "unforce", "score")
MAX_NOTE_CHARS = 10_000

#: Pass as ``seen`` to skip the "changed since you looked" check.
UNCHECKED = object()

# One lock for every append in this process: the app is the database's one writer,
# so this serialises reviewers' actions and makes ``previous`` exactly the state
# the event was applied to.
_WRITE_LOCK = threading.Lock()


class ReviewError(ValueError):
    """An action that cannot be recorded (bad field, unknown id, nothing to undo)."""


@dataclass(frozen=True)
class Event:
    """One stored review event."""

    event_id: str
    example_id: str
    candidate_id: str | None
    action: str
    value: dict
    previous: dict | None
    reviewer: str
    reason: str | None
    created_at: datetime
    undone_by: str | None = None  # event_id of the undo that cancelled it, if any


#: What undoing an action takes back, as a noun: "undid the veto on …".
_NOUNS = {
    "accept": "acceptance",
    "veto": "veto",
    "unveto": "lifted veto",
    "force": "forced pick",
    "unforce": "lifted forced pick",
    "exclude": "exclusion",
    "include": "re-inclusion",
    "rank": "ranking",
    "note": "note",
}
_NOTE_CHARS = 80


def event_noun(event: Event) -> str:
    """What an event is, as a noun: ``veto``, ``task score``, ``note`` (for "Undo the …").

    >>> e = Event("ev-1", "e1", "c1", "score", {"aspect": "task", "score": 0.5}, None, "ann",
    ...           None, datetime(2026, 1, 1))
    >>> event_noun(e), event_noun(Event(**{**e.__dict__, "action": "force"}))
    ('task score', 'forced pick')
    """
    if event.action == "score":
        return f"{event.value.get('aspect')} score"
    return _NOUNS.get(event.action, event.action)


def describe_event(
    event: Event,
    events: Sequence[Event] = (),
    names: Mapping[str, str] | None = None,
) -> str:
    """What an event did, as a person would say it (without who or when).

    ``events``: the example's history, to name what an undo took back; ``names``:
    readable candidate names by id (:func:`candidate_names`), else ids are shown.
    The one place an event becomes text: Review's messages, buttons and history use it.
    Event ids never appear.

    >>> from datetime import datetime
    >>> def ev(action, cid=None, **value):
    ...     return Event(f"ev-{action}", "dolly:open-7", cid, action, value, None, "ann", None,
    ...                  datetime(2026, 1, 1))
    >>> names = {"c:1": "T 0.5 · top-k 20, sample 0"}
    >>> veto = ev("veto", "c:1")
    >>> describe_event(veto, names=names)
    'vetoed candidate (T 0.5 · top-k 20, sample 0) of dolly:open-7'
    >>> describe_event(ev("undo", event_id="ev-veto"), [veto])
    'undid the veto on dolly:open-7'
    >>> describe_event(ev("force", "c:2"))
    'forced candidate c:2 as the pick of dolly:open-7'
    >>> describe_event(ev("score", "c:1", aspect="task", score=0.8), names=names)
    'scored candidate (T 0.5 · top-k 20, sample 0) of dolly:open-7: task 0.8'
    >>> describe_event(ev("note", text="Rhyme is off."))
    'noted on dolly:open-7: “Rhyme is off.”'
    """
    ex = event.example_id
    c = event.candidate_id
    cand = f"({names[c]})" if names and c in names else (c or "")
    a, v = event.action, event.value
    if a == "accept":
        return f"accepted the pick {cand} of {ex}" if c else f"accepted that {ex} has no pick"
    if a == "veto":
        return f"vetoed candidate {cand} of {ex}"
    if a == "unveto":
        return f"lifted the veto on candidate {cand} of {ex}"
    if a == "force":
        return f"forced candidate {cand} as the pick of {ex}"
    if a == "unforce":
        return f"lifted the forced pick {cand} of {ex}"
    if a == "exclude":
        return f"excluded {ex} from curation"
    if a == "include":
        return f"included {ex} in curation again"
    if a == "rank":
        n = len(v.get("ranking") or [])
        return (
            f"ranked {n} candidate{'s' * (n != 1)} of {ex}" if n else f"cleared the ranking of {ex}"
        )
    if a == "score":
        aspect, score = v.get("aspect"), v.get("score")
        if score is None:
            return f"cleared the {aspect} score of candidate {cand} of {ex}"
        return f"scored candidate {cand} of {ex}: {aspect} {score:g}"
    if a == "note":
        text = " ".join(str(v.get("text", "")).split())
        if len(text) > _NOTE_CHARS:
            text = text[: _NOTE_CHARS - 1] + "…"
        return f"noted on {ex}: “{text}”"
    if a == "undo":
        target = next((e for e in events if e.event_id == v.get("event_id")), None)
        if target is None:
            return f"undid an earlier action on {ex}"
        return f"undid the {event_noun(target)} on {ex}"
    return f"{a} on {ex}"


def candidate_names(con, example_id: str | Sequence[str]) -> dict[str, str]:
    """Each candidate of an example (or examples) by what made it: ``T 0.5 · top-k 20, sample 0``.

    The model's label leads when an example has candidates from more than one model.

    >>> from reset_core.store import connect
    >>> candidate_names(connect(":memory:"), "e1")
    {}
    """
    from reset_core.sampling.settings import setting_label_sql
    from reset_core.training.queries import model_labels

    ids = [example_id] if isinstance(example_id, str) else list(example_id)
    rows = con.execute(
        f"SELECT c.candidate_id, c.example_id, c.model_id, "
        f"coalesce({setting_label_sql('d')}, c.setting_id), c.sample_index FROM candidates c "
        "LEFT JOIN decoding_settings d USING (setting_id) WHERE c.example_id IN (SELECT unnest(?))",
        [ids],
    ).fetchall()
    models_of: dict[str, set] = {}
    for _, ex, model, _, _ in rows:
        models_of.setdefault(ex, set()).add(model)
    labels = model_labels(con) if any(len(m) > 1 for m in models_of.values()) else {}
    return {
        cid: (f"{labels.get(m, m)} · " if len(models_of[ex]) > 1 else "") + f"{setting}, sample {i}"
        for cid, ex, m, setting, i in rows
    }


@dataclass(frozen=True)
class ExampleState:
    """The current review state of one example, derived from its live events."""

    example_id: str
    vetoed: frozenset[str] = frozenset()
    forced: str | None = None
    excluded: bool = False
    ranking: tuple[str, ...] = ()
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    reviewed: bool = False
    overridden: bool = False
    judge_pick: str | None = None
    picks: tuple[str, ...] = ()  # effective picks under the selection (usually one)
    pick: str | None = None  # the first of them (None: no pick)
    pick_source: str | None = None  # force | rank | judge | next_best | excluded | none
    version: str | None = None  # event_id of the latest event (live or not)
    last_event: Event | None = None
    undoable: Event | None = None  # what a plain undo would cancel

    def as_json(self) -> dict:
        """The state as stored in an event's ``previous`` field."""
        return {
            "pick": self.pick,
            "picks": list(self.picks),
            "pick_source": self.pick_source,
            "judge_pick": self.judge_pick,
            "forced": self.forced,
            "vetoed": sorted(self.vetoed),
            "excluded": self.excluded,
            "ranking": list(self.ranking),
            "scores": self.scores,
            "version": self.version,
        }


@dataclass(frozen=True)
class Recorded:
    """What :func:`record` did: the new event, the state before and after, and concurrent changes."""

    event: Event
    previous: ExampleState
    state: ExampleState
    #: Events other than this one added after the reviewer's ``seen`` event, oldest first.
    concurrent: list[Event]


# ----------------------------------------------------------------------------- derivation SQL


def _state_ctes(where: str = "") -> str:
    """CTEs deriving current state from ``overrides`` (optionally filtered by ``where``).

    ``live`` drops undo events and the events they cancel, and folds each lifting
    action into the action it lifts (``unveto`` -> ``veto`` with ``flag`` false).
    Ordering is ``created_at, event_id`` everywhere.
    """
    return f"""
    ev AS (SELECT event_id, example_id, candidate_id, action, value, reviewer, created_at
           FROM overrides {where}),
    undone AS (SELECT json_extract_string(value, '$.event_id') AS target FROM ev
               WHERE action = 'undo'),
    live AS (
        SELECT * REPLACE (CASE action WHEN 'unveto' THEN 'veto' WHEN 'unforce' THEN 'force'
                                      WHEN 'include' THEN 'exclude' ELSE action END AS action),
               action NOT IN ('unveto', 'unforce', 'include') AS flag
        FROM ev WHERE action <> 'undo'
          AND event_id NOT IN (SELECT target FROM undone WHERE target IS NOT NULL)),
    cand_veto AS (  -- latest veto/un-veto/force per candidate: force also lifts a veto
        SELECT example_id, candidate_id, action = 'veto' AND flag AS vetoed FROM live
        WHERE candidate_id IS NOT NULL AND (action = 'veto' OR (action = 'force' AND flag))
        QUALIFY row_number() OVER (PARTITION BY example_id, candidate_id
                                   ORDER BY created_at DESC, event_id DESC) = 1),
    last_force AS (
        SELECT example_id, candidate_id, created_at, event_id FROM live
        WHERE action = 'force' AND flag AND candidate_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY example_id
                                   ORDER BY created_at DESC, event_id DESC) = 1),
    forced AS (  -- the latest force holds unless its candidate was vetoed/un-forced later
        SELECT lf.example_id, lf.candidate_id FROM last_force lf
        WHERE NOT EXISTS (
            SELECT 1 FROM live l
            WHERE l.example_id = lf.example_id AND l.candidate_id = lf.candidate_id
              AND (l.created_at > lf.created_at
                   OR (l.created_at = lf.created_at AND l.event_id > lf.event_id))
              AND ((l.action = 'veto' AND l.flag) OR (l.action = 'force' AND NOT l.flag)))),
    excluded AS (
        SELECT example_id, flag AS excluded FROM live WHERE action = 'exclude'
        QUALIFY row_number() OVER (PARTITION BY example_id
                                   ORDER BY created_at DESC, event_id DESC) = 1),
    ranking AS (
        SELECT example_id,
               coalesce(json_extract_string(value, '$.ranking[*]'), []::VARCHAR[]) AS ranking
        FROM live WHERE action = 'rank'
        QUALIFY row_number() OVER (PARTITION BY example_id
                                   ORDER BY created_at DESC, event_id DESC) = 1),
    rank_pos AS (
        SELECT example_id, unnest(ranking) AS candidate_id,
               generate_subscripts(ranking, 1) AS pos
        FROM ranking),
    mscores AS (
        SELECT example_id, candidate_id, aspect, score
        FROM (SELECT *, json_extract_string(value, '$.aspect') AS aspect,
                     TRY_CAST(json_extract(value, '$.score') AS DOUBLE) AS score
              FROM live WHERE action = 'score' AND candidate_id IS NOT NULL)
        QUALIFY row_number() OVER (PARTITION BY example_id, candidate_id, aspect
                                   ORDER BY created_at DESC, event_id DESC) = 1),
    ex_flags AS (  -- per example: reviewed (any live decision), overridden (live effect)
        SELECT example_id,
               bool_or(action <> 'note') AS reviewed,
               max(created_at) AS last_at,
               arg_max(reviewer, created_at) AS last_reviewer
        FROM live GROUP BY example_id),
    ex_overridden AS (
        SELECT DISTINCT example_id FROM (
            SELECT example_id FROM cand_veto WHERE vetoed
            UNION ALL SELECT example_id FROM forced
            UNION ALL SELECT example_id FROM excluded WHERE excluded
            UNION ALL SELECT example_id FROM ranking WHERE len(ranking) > 0
            UNION ALL SELECT example_id FROM mscores WHERE score IS NOT NULL))
    """


def _picks_sql(sel_where: str, include_none: bool, ev_where: str = "") -> str:
    """SELECT of effective picks over ``selection_scores`` rows matching ``sel_where``.

    ``ev_where`` narrows the override events read (an undo always targets an event of
    its own example, so filtering by example keeps every rule intact).
    """
    keep = "" if include_none else "WHERE out.candidate_id IS NOT NULL"
    return f"""
    WITH {_state_ctes(ev_where)},
    sel AS (SELECT example_id, candidate_id, score, rank, picked FROM selection_scores
            {sel_where}),
    exs AS (SELECT example_id, count(*) FILTER (WHERE picked) AS n_judge,
                   arg_min(candidate_id, coalesce(rank, 2147483647)) FILTER (WHERE picked)
                       AS judge_pick
            FROM sel GROUP BY example_id),
    vetoed_ex AS (SELECT DISTINCT example_id FROM cand_veto WHERE vetoed),
    by_rank AS (
        SELECT rp.example_id, rp.candidate_id FROM rank_pos rp
        LEFT JOIN cand_veto v USING (example_id, candidate_id)
        WHERE NOT coalesce(v.vetoed, false)
        QUALIFY row_number() OVER (PARTITION BY rp.example_id ORDER BY rp.pos) = 1),
    by_judge AS (
        -- Untouched examples keep the judge picks as they are (the cheap path at 1M rows);
        -- where a candidate was vetoed, refill up to the judge's pick count by RESET score.
        SELECT example_id, candidate_id, true AS picked FROM sel
        WHERE picked AND example_id NOT IN (SELECT example_id FROM vetoed_ex)
        UNION ALL
        SELECT s.example_id, s.candidate_id, s.picked FROM sel s
        JOIN exs USING (example_id)
        LEFT JOIN cand_veto v USING (example_id, candidate_id)
        WHERE s.example_id IN (SELECT example_id FROM vetoed_ex) AND exs.n_judge > 0
          AND NOT coalesce(v.vetoed, false) AND (s.picked OR s.score IS NOT NULL)
        QUALIFY row_number() OVER (PARTITION BY s.example_id
            ORDER BY s.picked DESC, s.score DESC NULLS LAST, s.candidate_id) <= exs.n_judge),
    picks AS (
        SELECT f.example_id, f.candidate_id, 'force' AS how FROM forced f
        UNION ALL
        SELECT example_id, candidate_id, 'rank' FROM by_rank
        WHERE example_id NOT IN (SELECT example_id FROM forced)
        UNION ALL
        SELECT example_id, candidate_id, CASE WHEN picked THEN 'judge' ELSE 'next_best' END
        FROM by_judge
        WHERE example_id NOT IN (SELECT example_id FROM forced)
          AND example_id NOT IN (SELECT example_id FROM by_rank)),
    out AS (
        SELECT exs.example_id,
               CASE WHEN coalesce(x.excluded, false) THEN NULL ELSE p.candidate_id END
                   AS candidate_id,
               CASE WHEN coalesce(x.excluded, false) THEN 'excluded'
                    ELSE coalesce(p.how, 'none') END AS source,
               exs.judge_pick, coalesce(x.excluded, false) AS excluded
        FROM exs
        LEFT JOIN excluded x USING (example_id)
        LEFT JOIN picks p ON p.example_id = exs.example_id
                         AND NOT coalesce(x.excluded, false))
    SELECT DISTINCT ON (out.example_id, out.candidate_id)
           out.example_id, out.candidate_id, out.source, s.score, out.judge_pick, out.excluded
    FROM out LEFT JOIN sel s ON s.example_id = out.example_id
                            AND s.candidate_id = out.candidate_id
    {keep}
    ORDER BY out.example_id, out.candidate_id
    """


# ----------------------------------------------------------------------------- reading


def effective_picks(
    con,
    selection_id: str | None = None,
    example_ids: list[str] | None = None,
    include_none: bool = False,
) -> pa.Table:
    """Picks of ``selection_id`` (default: the latest) with human overrides applied on top.

    Columns: ``example_id``, ``candidate_id``, ``source`` (``judge`` | ``next_best`` |
    ``force`` | ``rank``; with ``include_none`` also ``excluded`` | ``none`` rows whose
    candidate is NULL), ``score`` (the selection's RESET score of the pick),
    ``judge_pick`` and ``excluded``. Scope: the examples the selection scored;
    ``example_ids`` narrows it. This is what exports and curated sets must use, so
    that reviewers win over judges everywhere.

    >>> from reset_core.store import connect
    >>> effective_picks(connect(":memory:"), "none").num_rows
    0
    """
    selection_id = selection_id or latest_selection(con)
    where, params = "WHERE selection_id = ?", [selection_id]
    ev_where, ev_params = "", []
    if example_ids is not None:
        where += " AND example_id IN (SELECT unnest(?))"
        params.append(list(example_ids))
        # A handful of examples (a queue page) reads only their own events.
        ev_where, ev_params = "WHERE example_id IN (SELECT unnest(?))", [list(example_ids)]
    return con.sql(
        _picks_sql(where, include_none, ev_where), params=[*ev_params, *params]
    ).to_arrow_table()


def live_pick_changes(con, selection_id: str | None = None) -> pa.Table:
    """Pick flags with overrides applied, for the examples that have an override in force.

    ``candidate_id, picked`` for every candidate the selection (default: the latest)
    scored on those examples; other examples keep the judges' picks. Summaries that
    store judge picks (analytics) join this at read time, so an override shows at once
    without rebuilding them.

    >>> from reset_core.store import connect
    >>> live_pick_changes(connect(":memory:")).num_rows
    0
    """
    empty = pa.table(
        {"candidate_id": pa.array([], pa.string()), "picked": pa.array([], pa.bool_())}
    )
    selection_id = selection_id or latest_selection(con)
    if not selection_id or not one(con, "SELECT count(*) FROM overrides")[0]:
        return empty
    ids = [
        r[0]
        for r in con.execute(
            f"WITH {_state_ctes()} SELECT example_id FROM ex_overridden"
        ).fetchall()
    ]
    if not ids:
        return empty
    con.register("_effective", effective_picks(con, selection_id, example_ids=ids))
    try:
        return con.sql(
            "SELECT s.candidate_id, coalesce(p.candidate_id IS NOT NULL, false) AS picked "
            "FROM selection_scores s LEFT JOIN _effective p ON p.candidate_id = s.candidate_id "
            "WHERE s.selection_id = ? AND s.example_id IN (SELECT unnest(?))",
            params=[selection_id, ids],
        ).to_arrow_table()
    finally:
        con.unregister("_effective")


def current_overrides(con) -> pa.Table:
    """Live overrides in force, one row each: ``example_id, candidate_id, action``.

    One ``veto`` row per vetoed candidate, one ``force`` row for an example's forced
    candidate, one ``exclude`` row (candidate NULL) per excluded example, all derived
    by the rules above (undo, unveto/unforce/include, a later force replacing an
    earlier one). Manual rankings are applied by :func:`effective_picks`.
    """
    return con.sql(
        f"""
        WITH {_state_ctes()}
        SELECT example_id, candidate_id, 'veto' AS action FROM cand_veto WHERE vetoed
        UNION ALL SELECT example_id, candidate_id, 'force' FROM forced
        UNION ALL SELECT example_id, NULL, 'exclude' FROM excluded WHERE excluded
        ORDER BY ALL
        """
    ).to_arrow_table()


#: Kinds of override in force, in the order pages list them: (one, several).
OVERRIDE_KINDS = {
    "veto": ("veto", "vetoes"),
    "force": ("forced pick", "forced picks"),
    "exclude": ("exclusion", "exclusions"),
    "rank": ("ranking", "rankings"),
}


def live_override_counts(con, selection_id: str) -> dict[str, int]:
    """Overrides in force on a selection's examples, by kind: what changes its picks.

    ``veto`` counts vetoed candidates, ``force`` forced picks, ``exclude`` excluded
    examples and ``rank`` reviewers' rankings. Notes, accepts and manual scores do not
    override a pick, and undone or lifted events are no longer in force: none counts.

    >>> from reset_core.store import connect
    >>> live_override_counts(connect(":memory:"), "sel")
    {'veto': 0, 'force': 0, 'exclude': 0, 'rank': 0}
    """
    scope = "example_id IN (SELECT example_id FROM selection_scores WHERE selection_id = ?)"
    rows = con.execute(
        f"""
        WITH {_state_ctes()}
        SELECT 'veto', count(*) FROM cand_veto WHERE vetoed AND {scope}
        UNION ALL SELECT 'force', count(*) FROM forced WHERE {scope}
        UNION ALL SELECT 'exclude', count(*) FROM excluded WHERE excluded AND {scope}
        UNION ALL SELECT 'rank', count(*) FROM ranking WHERE len(ranking) > 0 AND {scope}
        """,
        [selection_id] * 4,
    ).fetchall()
    counts = dict(rows)
    return {k: int(counts.get(k, 0)) for k in OVERRIDE_KINDS}


def manual_scores(con, example_ids: list[str] | None = None) -> pa.Table:
    """Current manual aspect scores: ``example_id, candidate_id, aspect, score``.

    A selection that takes human scores over judge scores joins this table.
    """
    where, params = "", []
    if example_ids is not None:
        where, params = "WHERE example_id IN (SELECT unnest(?))", [list(example_ids)]
    return con.sql(
        f"WITH {_state_ctes(where)} SELECT example_id, candidate_id, aspect, score FROM mscores "
        "WHERE score IS NOT NULL ORDER BY ALL",
        params=params,
    ).to_arrow_table()


def history(con, example_id: str) -> list[Event]:
    """Every event of one example, oldest first, each marked with the undo that cancelled it."""
    return _histories(con, [example_id]).get(example_id, [])


def _histories(con, example_ids: Sequence[str]) -> dict[str, list[Event]]:
    """:func:`history` of several examples in one query."""
    rows = con.execute(
        "SELECT event_id, example_id, candidate_id, action, value, previous, reviewer, reason, "
        "created_at FROM overrides WHERE example_id IN (SELECT unnest(?)) "
        "ORDER BY example_id, created_at, event_id",
        [list(example_ids)],
    ).fetchall()
    by_example: dict[str, list] = {}
    for r in rows:
        by_example.setdefault(r[1], []).append(r)
    return {e: _events(rs) for e, rs in by_example.items()}


def _events(rows: list[tuple]) -> list[Event]:
    events = [
        Event(
            event_id=r[0],
            example_id=r[1],
            candidate_id=r[2],
            action=r[3],
            value=json.loads(r[4]) if r[4] else {},
            previous=json.loads(r[5]) if r[5] else None,
            reviewer=r[6],
            reason=r[7],
            created_at=r[8],
        )
        for r in rows
    ]
    undone_by = {e.value.get("event_id"): e.event_id for e in events if e.action == "undo"}
    return [
        Event(**{**e.__dict__, "undone_by": undone_by.get(e.event_id)})
        if e.event_id in undone_by
        else e
        for e in events
    ]


def example_state(con, example_id: str, selection_id: str | None = None) -> ExampleState:
    """The current state of one example: overrides, manual scores, and its effective pick.

    ``selection_id`` (default: the latest) gives the judge pick the overrides apply to.
    """
    events = history(con, example_id)
    return _state(con, example_id, selection_id, events)


def example_states(
    con, example_ids: Sequence[str], selection_id: str | None = None
) -> dict[str, ExampleState]:
    """:func:`example_state` of a page of examples in two queries (not three per example).

    For a handful of examples (a queue page) this is much cheaper than
    :func:`effective_picks`, whose one SQL statement is planned for any number of them;
    the rules are the same (the Python twins, checked against the SQL by a test).
    """
    ids = list(dict.fromkeys(example_ids))
    selection_id = selection_id or latest_selection(con)
    events = _histories(con, ids)
    rows: dict[str, list[tuple]] = {}
    if selection_id:
        for r in con.execute(
            "SELECT example_id, candidate_id, score, rank, picked FROM selection_scores "
            "WHERE selection_id = ? AND example_id IN (SELECT unnest(?))",
            [selection_id, ids],
        ).fetchall():
            rows.setdefault(r[0], []).append(r[1:])
    return {e: _state_of(e, events.get(e, []), rows.get(e, [])) for e in ids}


def _fold(events: list[Event]) -> dict:
    """Replay one example's live events; the Python twin of :func:`_state_ctes`.

    The SQL derives the same state for many examples at once (queue, exports); this
    replays one example's handful of events for the example view. A test checks
    that both agree on random event sequences.
    """
    vetoed: dict[str, bool] = {}
    forced: str | None = None
    excluded = False
    ranking: tuple[str, ...] = ()
    scores: dict[str, dict[str, float]] = {}
    for e in events:
        if e.action == "undo" or e.undone_by is not None:
            continue
        c = e.candidate_id
        if e.action == "veto":
            vetoed[c] = True
            if forced == c:
                forced = None
        elif e.action == "unveto":
            vetoed[c] = False
        elif e.action == "force":
            forced, vetoed[c] = c, False
        elif e.action == "unforce" and forced == c:
            forced = None
        elif e.action in ("exclude", "include"):
            excluded = e.action == "exclude"
        elif e.action == "rank":
            ranking = tuple(e.value.get("ranking") or ())
        elif e.action == "score" and c is not None:
            aspect, score = e.value.get("aspect"), e.value.get("score")
            if score is None:
                scores.get(c, {}).pop(aspect, None)
            else:
                scores.setdefault(c, {})[aspect] = score
    return {
        "vetoed": frozenset(c for c, v in vetoed.items() if v),
        "forced": forced,
        "excluded": excluded,
        "ranking": ranking,
        "scores": {c: s for c, s in scores.items() if s},
    }


def _resolve_picks(fold: dict, sel_rows: list[tuple]) -> tuple[list[str], str | None, str | None]:
    """(picks, source, judge_pick) for one example; the Python twin of :func:`_picks_sql`.

    ``sel_rows``: the example's ``(candidate_id, score, rank, picked)`` in the selection.
    """
    if not sel_rows:
        return [], None, None
    picked = sorted((r for r in sel_rows if r[3]), key=lambda r: (r[2] is None, r[2] or 0, r[0]))
    judge_pick = picked[0][0] if picked else None
    if fold["excluded"]:
        return [], "excluded", judge_pick
    if fold["forced"]:
        return [fold["forced"]], "force", judge_pick
    vetoed = fold["vetoed"]
    by_rank = [c for c in fold["ranking"] if c not in vetoed]
    if by_rank:
        return [by_rank[0]], "rank", judge_pick
    if not picked:
        return [], "none", judge_pick
    if not vetoed:
        return [r[0] for r in picked], "judge", judge_pick
    pool = [r for r in sel_rows if r[0] not in vetoed and (r[3] or r[1] is not None)]
    pool.sort(key=lambda r: (not r[3], r[1] is None, -(r[1] or 0.0), r[0]))
    chosen = pool[: len(picked)]
    if not chosen:
        return [], "none", judge_pick
    source = "judge" if all(r[3] for r in chosen) else "next_best"
    return [r[0] for r in chosen], source, judge_pick


def _state(con, example_id: str, selection_id: str | None, events: list[Event]) -> ExampleState:
    selection_id = selection_id or latest_selection(con)
    sel_rows = (
        con.execute(
            "SELECT candidate_id, score, rank, picked FROM selection_scores "
            "WHERE example_id = ? AND selection_id = ?",
            [example_id, selection_id],
        ).fetchall()
        if selection_id
        else []
    )
    return _state_of(example_id, events, sel_rows)


def _state_of(example_id: str, events: list[Event], sel_rows: list[tuple]) -> ExampleState:
    fold = _fold(events)
    picks, source, judge_pick = _resolve_picks(fold, sel_rows)
    live = [e for e in events if e.action != "undo" and e.undone_by is None]
    overridden = bool(
        fold["vetoed"] or fold["forced"] or fold["excluded"] or fold["ranking"] or fold["scores"]
    )
    return ExampleState(
        example_id=example_id,
        **fold,
        reviewed=any(e.action != "note" for e in live),
        overridden=overridden,
        judge_pick=judge_pick,
        picks=tuple(picks),
        pick=picks[0] if picks else None,
        pick_source=source,
        version=events[-1].event_id if events else None,
        last_event=events[-1] if events else None,
        undoable=live[-1] if live else None,
    )


# ----------------------------------------------------------------------------- writing


def _check_value(con, example_id: str, action: str, candidate_id, value, candidates) -> dict:
    """Validate one action's fields; return the value to store."""
    value = dict(value or {})
    if action in _CANDIDATE_ACTIONS and not candidate_id:
        raise ReviewError(f"candidate_id: required for {action}")
    if action not in _CANDIDATE_ACTIONS and action != "accept" and candidate_id:
        raise ReviewError(f"candidate_id: {action} applies to the whole example, not a candidate")
    if candidate_id and candidate_id not in candidates:
        raise ReviewError(f"candidate_id: {candidate_id!r} is not a candidate of {example_id!r}")
    if action in ("veto", "unveto", "force", "unforce", "exclude", "include"):
        extra = set(value)
    elif action == "rank":
        ranking = value.get("ranking")
        if not isinstance(ranking, list) or not all(isinstance(c, str) for c in ranking):
            raise ReviewError("value.ranking: a list of candidate ids, best first")
        if len(set(ranking)) != len(ranking):
            raise ReviewError("value.ranking: a candidate appears twice")
        unknown = [c for c in ranking if c not in candidates]
        if unknown:
            raise ReviewError(f"value.ranking: not candidates of {example_id!r}: {unknown}")
        extra = set(value) - {"ranking"}
    elif action == "score":
        aspect, s = value.get("aspect"), value.get("score")
        if aspect not in ASPECTS:
            raise ReviewError(f"value.aspect: {aspect!r} is not one of {ASPECTS}")
        if "score" not in value:
            raise ReviewError("value.score: required (a number in [0, 1], or null to clear)")
        if s is not None and (
            isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s <= 1
        ):
            raise ReviewError(f"value.score: must be in [0, 1] (or null to clear), got {s!r}")
        value["score"] = None if s is None else float(s)
        extra = set(value) - {"aspect", "score"}
    elif action == "note":
        text = value.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ReviewError("value.text: a note needs some text")
        if len(text) > MAX_NOTE_CHARS:
            raise ReviewError(f"value.text: at most {MAX_NOTE_CHARS} characters, got {len(text)}")
        extra = set(value) - {"text"}
    else:  # accept, undo: filled in by record()
        extra = set(value) - {"candidate_id", "event_id"}
    if extra:
        raise ReviewError(f"value: unexpected field(s) {sorted(extra)} for {action}")
    return value


def record(
    con,
    example_id: str,
    action: str,
    reviewer: str,
    *,
    candidate_id: str | None = None,
    value: dict | None = None,
    reason: str | None = None,
    seen: Any = UNCHECKED,
    selection_id: str | None = None,
) -> Recorded:
    """Append one review event and return it with the state before and after.

    ``seen`` is the ``version`` of the :class:`ExampleState` the reviewer was shown
    (``None`` when it had no events); events added since by anyone come back in
    ``Recorded.concurrent`` so the caller can show who changed the example. The
    event is recorded either way: nothing a reviewer does is lost.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute("INSERT INTO examples (example_id, instruction, kind, source, split, "
    ...                 "content_hash) VALUES ('e1', 'Say hi', 'instruction', 'demo', 'seen', 'h')")
    >>> _ = con.execute("INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, "
    ...     "sample_index, seed, text, engine) VALUES ('a', 'e1', 'm', 's', 0, 0, 'hi', 't'), "
    ...     "('b', 'e1', 'm', 's', 1, 1, 'hello', 't')")
    >>> _ = con.execute("INSERT INTO selections VALUES ('sel', 'reset', '{}', now())")
    >>> _ = con.execute("INSERT INTO selection_scores (selection_id, candidate_id, example_id, "
    ...     "score, rank, picked) VALUES ('sel', 'a', 'e1', 2.5, 1, true), ('sel', 'b', 'e1', 2, 2, false)")
    >>> r = record(con, "e1", "force", "bob", candidate_id="b", reason="more complete")
    >>> (r.previous.pick, r.previous.pick_source), (r.state.pick, r.state.pick_source)
    (('a', 'judge'), ('b', 'force'))
    >>> shown = r.state.version
    >>> _ = record(con, "e1", "note", "ann", value={"text": "both are short"})
    >>> r = record(con, "e1", "score", "bob", candidate_id="b",
    ...            value={"aspect": "task", "score": 0.9}, seen=shown)
    >>> r.state.scores, [(e.reviewer, describe_event(e)) for e in r.concurrent]
    ({'b': {'task': 0.9}}, [('ann', 'noted on e1: “both are short”')])
    """
    if action not in ACTIONS:
        raise ReviewError(f"action: {action!r} is not one of {ACTIONS}")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ReviewError("reviewer: a name is required for the audit trail")
    if reason is not None:
        reason = reason.strip() or None
    with _WRITE_LOCK:
        if not one(con, "SELECT count(*) FROM examples WHERE example_id = ?", [example_id])[0]:
            raise ReviewError(f"example_id: no example {example_id!r}")
        candidates = {
            r[0]
            for r in con.execute(
                "SELECT candidate_id FROM candidates WHERE example_id = ?", [example_id]
            ).fetchall()
        }
        value = _check_value(con, example_id, action, candidate_id, value, candidates)
        events = history(con, example_id)
        before = _state(con, example_id, selection_id, events)
        if action == "undo":
            value = {"event_id": _undo_target(events, value.get("event_id"), example_id)}
        elif action == "accept":
            candidate_id = before.pick
            value = {"candidate_id": before.pick}
        now = datetime.now(UTC).replace(tzinfo=None)
        if events and now <= events[-1].created_at:
            # Keep each example's events strictly ordered even if the clock stepped back.
            now = events[-1].created_at + timedelta(microseconds=1)
        event_id = f"ev-{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        previous = before.as_json()
        con.execute(
            "INSERT INTO overrides (event_id, example_id, candidate_id, action, value, previous, "
            "reviewer, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                event_id,
                example_id,
                candidate_id,
                action,
                json.dumps(value),
                json.dumps(previous),
                reviewer,
                reason,
                now,
            ],
        )
        after_events = history(con, example_id)
        after = _state(con, example_id, selection_id, after_events)
    event = next(e for e in after_events if e.event_id == event_id)
    concurrent: list[Event] = []
    if seen is not UNCHECKED:
        ids = [e.event_id for e in events]
        start = ids.index(seen) + 1 if seen in ids else (0 if seen is None else len(ids))
        concurrent = events[start:]
    return Recorded(event=event, previous=before, state=after, concurrent=concurrent)


def _undo_target(events: list[Event], target: str | None, example_id: str) -> str:
    undone = {e.value.get("event_id") for e in events if e.action == "undo"}
    if target is None:
        live = [e for e in events if e.action != "undo" and e.event_id not in undone]
        if not live:
            raise ReviewError(f"undo: {example_id!r} has nothing left to undo")
        return live[-1].event_id
    match = next((e for e in events if e.event_id == target), None)
    if match is None:
        raise ReviewError(f"value.event_id: no event {target!r} on example {example_id!r}")
    if match.action == "undo":
        raise ReviewError("value.event_id: an undo cannot be undone; repeat the action instead")
    if target in undone:
        by = next(e for e in events if e.action == "undo" and e.value.get("event_id") == target)
        raise ReviewError(
            f"value.event_id: {target} was already undone by {by.reviewer} at {by.created_at:%H:%M:%S}"
        )
    return target


def undo(
    con,
    example_id: str,
    reviewer: str,
    event_id: str | None = None,
    *,
    reason: str | None = None,
    seen: Any = UNCHECKED,
    selection_id: str | None = None,
) -> Recorded:
    """Cancel ``event_id`` (default: the example's latest event not yet undone) with an undo event.

    Pass the ``event_id`` the reviewer was shown so that a concurrent action by
    someone else is never undone by mistake.
    """
    return record(
        con,
        example_id,
        "undo",
        reviewer,
        value={"event_id": event_id} if event_id else None,
        reason=reason,
        seen=seen,
        selection_id=selection_id,
    )


def event_count(con) -> int:
    """How many review events are stored: a complete change counter of the overrides in
    force, since events are only ever appended (undo is an event too). DuckDB answers it
    from table metadata, so a page can key a cache on it at no cost.

    >>> from reset_core.store import connect
    >>> event_count(connect(":memory:"))
    0
    """
    return one(con, "SELECT count(*) FROM overrides")[0]
