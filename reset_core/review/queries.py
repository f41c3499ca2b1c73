"""The review events as a table, for listing and export (the CLI's ``review list|export``).

The events are the stored history itself (``overrides``, append-only): one row per
event, newest first, filtered in SQL by reviewer, action and example. ``undone_by``
names the undo event that cancelled an event, so an export says what is still in force
without a reader folding the history. ``value`` and ``previous`` stay JSON text, the
same in every export format (a Parquet column of mixed objects has no single schema).

>>> from reset_core.store import connect
>>> con = connect(":memory:")
>>> override_events(con).column_names[:4]
['event_id', 'created_at', 'reviewer', 'action']
"""

from __future__ import annotations

import pyarrow as pa

from reset_core.review.events import ACTIONS, ReviewError

#: Columns of :func:`override_events`, in order.
EVENT_COLUMNS = (
    "event_id",
    "created_at",
    "reviewer",
    "action",
    "example_id",
    "candidate_id",
    "value",
    "previous",
    "reason",
    "undone_by",
)


def override_events(
    con,
    reviewer: str | None = None,
    action: str | None = None,
    example_id: str | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Review events, newest first, optionally of one reviewer, action or example.

    ``created_at`` is ISO-8601 text (UTC, as stored), so JSONL and CSV exports read the
    same as Parquet. Raises :class:`ReviewError` naming ``action`` for an unknown one.
    """
    if action is not None and action not in ACTIONS:
        raise ReviewError(f"kind: must be one of {', '.join(ACTIONS)}; got {action!r}")
    if limit is not None and limit < 1:
        raise ReviewError(f"limit: must be at least 1, got {limit}")
    return con.sql(
        """
        SELECT o.event_id, strftime(o.created_at, '%Y-%m-%dT%H:%M:%S.%f') AS created_at,
               o.reviewer, o.action, o.example_id, o.candidate_id,
               CAST(o.value AS TEXT) AS value, CAST(o.previous AS TEXT) AS previous,
               o.reason, u.event_id AS undone_by
        FROM overrides o
        LEFT JOIN overrides u
          ON u.action = 'undo' AND u.example_id = o.example_id
         AND json_extract_string(u.value, '$.event_id') = o.event_id
        WHERE (? IS NULL OR o.reviewer = ?) AND (? IS NULL OR o.action = ?)
          AND (? IS NULL OR o.example_id = ?)
        ORDER BY o.created_at DESC, o.event_id DESC
        LIMIT ?
        """,
        params=[reviewer, reviewer, action, action, example_id, example_id, limit],
    ).to_arrow_table()
