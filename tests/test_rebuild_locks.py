"""Derived tables rebuilt on read, under real threads sharing one connection's cursors.

The app's script runs are threads of one process working through cursors of one DuckDB
connection (ui.py). These tests run 8 such threads at once: the review queue (two
selections side by side), the review flags and the analytics summaries must rebuild
once per change, raise nothing, and read exactly what a serial run reads.
"""

from __future__ import annotations

import threading

import pytest
import review_data

from reset_core.analytics import summaries
from reset_core.review import events as rv
from reset_core.review import queue as rq
from reset_core.store import connect

N_THREADS = 8
SEL2 = "sel-2"


def seed_two_selections(con) -> None:
    """review_data's sel-1, and sel-2: the same candidates with the second-ranked picked."""
    review_data.seed(con)
    copy_selection(con, SEL2, picked="coalesce(rank = 2, false)")


def copy_selection(con, new: str, old: str = review_data.SELECTION, picked: str = "picked") -> None:
    con.execute(
        "INSERT INTO selections (selection_id, preset, config) VALUES (?, 'reset', '{}')", [new]
    )
    con.execute(
        "INSERT INTO selection_scores (selection_id, candidate_id, example_id, score, rank, picked) "
        f"SELECT ?, candidate_id, example_id, score, rank, {picked} FROM selection_scores "
        "WHERE selection_id = ?",
        [new, old],
    )


def bump(con, r: int) -> None:
    """A change every queue summary depends on and no row count of its own shows: a re-kind."""
    con.execute(
        "INSERT INTO rekinds (rekind_id, source, target, n_changed, changes) "
        "VALUES (?, 'none', 'context', 0, '[]')",
        [f"rk-{r}"],
    )


def in_threads(fn, n: int = N_THREADS) -> list:
    """Run ``fn(i, barrier)`` in ``n`` threads at once; their results, or the first error."""
    barrier = threading.Barrier(n, timeout=60)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i):
        try:
            results[i] = fn(i, barrier)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def queue_view(cur, selection_id: str) -> tuple:
    """What the queue page reads: counts and the first page, as plain values."""
    f = rq.QueueFilter()
    page = rq.queue_page(cur, selection_id, f, 0, 50)
    return (
        rq.queue_counts(cur, selection_id, f),
        page.to_dict("records"),
        rq.queue_counts(cur, selection_id, f.model_copy(update={"reviewed": True})),
    )


@pytest.fixture
def twins(tmp_path):
    """The same data in two database files: one for the threads, one for the serial run."""
    cons = []
    for name in ("threads", "serial"):
        con = connect(tmp_path / f"{name}.duckdb")
        seed_two_selections(con)
        cons.append(con)
    yield cons
    for con in cons:
        con.close()


def count_calls(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` to record each call's return value (the rebuilds that ran)."""
    calls: list = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(out)
        return out

    monkeypatch.setattr(module, name, counted)
    return calls


def act(cur, i: int, r: int) -> None:
    """Reviewer ``i``'s action of round ``r``: accepts (the example counts as reviewed), notes."""
    example = f"ex-{(i + r) % 6}"
    if i % 2:
        rv.record(cur, example, "note", f"rev-{i}", value={"text": f"round {r}"})
    else:
        rv.record(cur, example, "accept", f"rev-{i}")


def test_queue_and_flags_rebuild_once_per_change_and_read_as_serial(twins, monkeypatch):
    con, serial = twins
    sels = [review_data.SELECTION, SEL2]
    flag_builds = count_calls(monkeypatch, rq, "refresh_flags")
    rounds = 4

    def reviewer(i, barrier):
        cur = con.cursor()
        sel = sels[i % 2]
        built, views = [], []
        for r in range(rounds):
            barrier.wait()
            # All at once: half find sel-1's queue stale, half sel-2's.
            built.append(rq.refresh_queue(cur, sel))
            barrier.wait()
            # Each records one action (a change for the flags), then all read the queue.
            act(cur, i, r)
            barrier.wait()
            views.append(queue_view(cur, sel))
            barrier.wait()
            if i == 0:  # one change the queue summaries depend on, between rounds
                bump(cur, r)
        return built, views

    results = in_threads(reviewer)

    # The queue: each round invalidated both selections once, so each was built once a round.
    for r in range(rounds):
        for s in range(2):
            assert sum(results[i][0][r] for i in range(s, N_THREADS, 2)) == 1, (r, s)
    # Both selections' summaries stayed side by side (no selection evicted the other).
    assert {
        r[0] for r in con.execute("SELECT selection_id FROM review_queue_state").fetchall()
    } == set(sels)
    # The flags: 8 actions per round, then reads: rebuilt once per round (plus never more).
    assert sum(flag_builds) == rounds

    # The same actions in one thread, on the twin database, read the same.
    for r in range(rounds):
        for i in range(N_THREADS):
            act(serial, i, r)
        for s in sels:
            rq.refresh_queue(serial, s)
            expected = queue_view(serial, s)
            for i in range(sels.index(s), N_THREADS, 2):
                got = results[i][1][r]
                # Timestamps of the notes differ between the twins; all else must not.
                strip = lambda v: (v[0], [{**row, "last_reviewer": None} for row in v[1]], v[2])  # noqa: E731
                assert strip(got) == strip(expected), (r, s, i)
        bump(serial, r)


def test_analytics_summaries_refresh_once_per_change_and_read_as_serial(twins, monkeypatch):
    con, serial = twins
    full = count_calls(monkeypatch, summaries, "refresh")
    reviewed = count_calls(monkeypatch, summaries, "refresh_reviewed")

    def page(i, barrier):
        cur = con.cursor()
        states = []
        barrier.wait()
        states.append(summaries.ensure_fresh(cur)["fingerprint"])  # first view: full build
        barrier.wait()
        rv.record(
            cur,
            f"ex-{i % 6}",
            "score",
            f"rev-{i}",
            candidate_id=f"ex-{i % 6}/c0",
            value={"aspect": "task", "score": round(0.1 * (i + 1), 2)},
        )
        barrier.wait()
        states.append(summaries.ensure_fresh(cur)["fingerprint"])  # review events only
        barrier.wait()
        return states, cur.execute(summaries.HUMAN_SCORES_SQL, ["task"]).fetchall()

    results = in_threads(page)
    assert len(full) == 1 and reviewed == [None]
    assert len({fp for states, _ in results for fp in states}) == 1

    summaries.ensure_fresh(serial)
    for i in range(N_THREADS):
        rv.record(
            serial,
            f"ex-{i % 6}",
            "score",
            f"rev-{i}",
            candidate_id=f"ex-{i % 6}/c0",
            value={"aspect": "task", "score": round(0.1 * (i + 1), 2)},
        )
    summaries.ensure_fresh(serial)
    expected = sorted(serial.execute(summaries.HUMAN_SCORES_SQL, ["task"]).fetchall())
    for _, human in results:
        assert sorted(human) == expected
    for table in (
        "analytics_candidates",
        "analytics_judgments",
        "analytics_manual",
        "analytics_gaps",
    ):
        q = f"SELECT * FROM {table} ORDER BY ALL"
        assert con.execute(q).fetchall() == serial.execute(q).fetchall(), table


def test_the_queue_keeps_four_selections_and_evicts_the_least_recently_shown(con, monkeypatch):
    review_data.seed(con)
    sels = [f"s{i}" for i in range(1, 6)]
    for s in sels:
        copy_selection(con, s)
    monkeypatch.setattr(rq, "_last_read", {})  # a fresh process: nothing shown yet
    assert rq.QUEUE_SELECTIONS_KEPT == 4
    for s in sels[:4]:
        assert rq.refresh_queue(con, s)
    first = queue_view(con, "s1")
    assert rq.queue_is_fresh(con, "s1")  # s1 shown again: s2 is now the least recently shown
    assert rq.refresh_queue(con, "s5")
    kept = {r[0] for r in con.execute("SELECT DISTINCT selection_id FROM review_queue").fetchall()}
    assert kept == {"s1", "s3", "s4", "s5"}
    assert {
        r[0] for r in con.execute("SELECT selection_id FROM review_queue_state").fetchall()
    } == kept
    assert queue_view(con, "s1") == first  # the others' summaries are untouched
    assert not rq.queue_is_fresh(con, "s2") and rq.refresh_queue(con, "s2")  # back on demand
    # Summaries no page of this process has shown (say, from before a restart) go first.
    rq._last_read.clear()
    for s in ("s3", "s4", "s5", "s2"):
        rq._last_read[(rq.database_key(con), s)] = 0.0
    copy_selection(con, "s6")
    assert rq.refresh_queue(con, "s6")
    assert "s1" not in {
        r[0] for r in con.execute("SELECT selection_id FROM review_queue_state").fetchall()
    }


def test_a_rebuild_lock_is_one_per_database_and_cache(tmp_path):
    from reset_core.store import rebuild_lock

    a, b = connect(tmp_path / "a.duckdb"), connect(tmp_path / "b.duckdb")
    try:
        assert rebuild_lock(a, "review_queue") is rebuild_lock(a.cursor(), "review_queue")
        assert rebuild_lock(a, "review_queue") is not rebuild_lock(b, "review_queue")
        assert rebuild_lock(a, "review_queue") is not rebuild_lock(a, "analytics")
    finally:
        a.close()
        b.close()
