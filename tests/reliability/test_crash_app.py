"""Crash safety of the app process: ``kill -9`` mid-ingest and mid-override, then reopen.

The app process is the database's one writer. Here a real child process does what
the app does (ingest a finished worker's shards into DuckDB, as a job sync does;
append review events through :mod:`reset_core.review.events`, as the Review page
does, rebuilding the review queue summary now and then) and is SIGKILLed at a seeded
random point: before it opened the database (its start-up) or a seeded delay after
it said it was ready. The test then reopens the database, as the next app start
would, and checks that it is consistent:

* ingest: no half-ingested shard (a shard's rows are all there, with its
  ``ingested_shards`` row, or none are), every shard the child reported ingested is
  there, and ingesting the folder again completes it without duplicates;
* overrides: every event is complete (known action, reviewer, JSON value and
  previous state, an undo pointing at an event), every event the child reported
  recorded is there and at most the one in flight is extra, the derived state (the
  SQL of :func:`effective_picks`) equals a replay of the events in Python
  (:func:`example_states`), and the review queue summary is whole or absent.

Each trial is recorded with :func:`tests.reliability.record.record`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reset_core.store import connect, one
from tests.reliability.record import record

#: Kills per scenario: the issue's suite budget (~5 min for both crash files on the
#: 2-core CI machine) leaves ~1.5 s a trial here, most of it the child's start-up.
TRIALS = 15
SEED = 13
N_SHARDS = 64
ROOT = Path(__file__).resolve().parents[2]

# What the app does on a job sync: ingest the shards found, a few at a time (each
# call one transaction, as each sync of a running job picks up what has landed).
INGEST_CHILD = """
import sys, time
from pathlib import Path
from reset_core.store import connect, ingest_shards
db, folder, per_call = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
con = connect(db)
print("ready", flush=True)
files = sorted(folder.glob("*.parquet"))
for i in range(0, len(files), per_call):
    ingest_shards(con, "candidates", files[i : i + per_call])
    for f in files[i : i + per_call]:
        print("ingested", f.resolve(), flush=True)
print("finished", flush=True)
time.sleep(600)  # the kill still comes: a trial may land after the last shard
"""

# What reviewers do on the Review page: a seeded stream of overrides, vetoes, notes,
# scores and undos, with the queue summary rebuilt now and then (as the page does).
OVERRIDE_CHILD = """
import random, sys, time
from reset_core.review.events import ReviewError, record
from reset_core.review.queue import refresh_queue
from reset_core.store import connect
db, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
con = connect(db)
examples = [f"e{i:03d}" for i in range(12)]
print("ready", flush=True)
for i in range(400):
    ex = rng.choice(examples)
    cand = f"c{ex[1:]}-{rng.randrange(3)}"
    action = rng.choice(["veto", "unveto", "force", "unforce", "exclude", "include",
                         "score", "note", "rank", "accept", "undo"])
    kw = {}
    if action in ("veto", "unveto", "force", "unforce", "score"):
        kw["candidate_id"] = cand
    if action == "score":
        kw["value"] = {"aspect": rng.choice(["task", "faithfulness"]), "score": rng.random()}
    elif action == "note":
        kw["value"] = {"text": "note " + "x" * rng.randrange(2000)}
    elif action == "rank":
        kw["value"] = {"ranking": rng.sample([f"c{ex[1:]}-{j}" for j in range(3)], 3)}
    try:
        r = record(con, ex, action, rng.choice(["ann", "bob"]), **kw)
    except ReviewError:
        continue
    print("event", r.event.event_id, flush=True)
    if i % 25 == 24:
        refresh_queue(con, "sel-1", force=True)
        print("queue", flush=True)
print("finished", flush=True)
time.sleep(600)  # the kill still comes: a trial may land after the last event
"""


def _run_and_kill(args: list[str], rng: random.Random, start_max_s: float, work_max_s: float):
    """Start a child, SIGKILL it at a seeded point; return (aimed, delay, lines it printed)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    aimed = "start-up" if rng.random() < 0.25 else "work"
    delay = rng.uniform(0.0, start_max_s if aimed == "start-up" else work_max_s)
    child = subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    lines = []
    if aimed == "work":
        lines.append(child.stdout.readline().strip())
        assert lines[0] == "ready", f"the child failed to start: {lines}"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    # Read the rest through the same buffered reader readline() used: communicate()
    # with a timeout reads the pipe's descriptor directly and would drop what that
    # reader already holds (acknowledgements the child did print).
    rest = child.stdout.read()
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, f"the child failed: {rest}"
    lines += rest.splitlines()
    return aimed, round(delay, 3), lines


def _write_shards(folder: Path, trial: int, n_shards: int, rows: int) -> dict[str, set[str]]:
    """Candidate shards with disjoint keys, as a sampling worker leaves them; keys by path."""
    folder.mkdir(parents=True)
    keys = {}
    for s in range(n_shards):
        ids = [f"t{trial:02d}-s{s:02d}-{i:05d}" for i in range(rows)]
        table = pa.table(
            {
                "candidate_id": ids,
                "example_id": [f"ex{i % 50}" for i in range(rows)],
                "model_id": ["m"] * rows,
                "setting_id": ["s"] * rows,
                "sample_index": list(range(rows)),
                "seed": list(range(rows)),
                "text": ["A candidate answer of some length. " * 6] * rows,
                "engine": ["test"] * rows,
                "job_id": [f"job-{trial}"] * rows,
            }
        )
        path = folder / f"shard-{s:03d}.parquet"
        pq.write_table(table, path)
        keys[str(path.resolve())] = set(ids)
    return keys


def test_app_killed_mid_ingest_leaves_no_half_ingested_shard(tmp_path):
    from reset_core.store import ingest_shards

    rng = random.Random(SEED)
    db = tmp_path / "app.duckdb"
    connect(db).close()
    all_keys: set[str] = set()
    landed = []
    for trial in range(1, TRIALS + 1):
        folder = tmp_path / f"shards-{trial:02d}"
        shards = _write_shards(folder, trial, n_shards=N_SHARDS, rows=200)
        per_call = rng.choice([1, 2, 3])
        aimed, delay, lines = _run_and_kill(
            [INGEST_CHILD, str(db), str(folder), str(per_call)], rng, 1.0, 0.5
        )
        acked = {line.split(" ", 1)[1] for line in lines if line.startswith("ingested ")}

        con = connect(db)  # the next app start: DuckDB replays its write-ahead log
        try:
            recorded = dict(
                con.execute(
                    "SELECT path, n_rows FROM ingested_shards WHERE path LIKE ?",
                    [str(folder.resolve()) + "/%"],
                ).fetchall()
            )
            stored = {
                r[0]
                for r in con.execute(
                    "SELECT candidate_id FROM candidates WHERE job_id = ?", [f"job-{trial}"]
                ).fetchall()
            }
            # All rows of each recorded shard, and no row of any other shard.
            whole = set().union(*(shards[p] for p in recorded)) if recorded else set()
            half = sum(1 for p, k in shards.items() if p not in recorded and k & stored)
            missing = len(whole - stored)
            unacked_lost = len(acked - set(recorded))
            bad_counts = [p for p, n in recorded.items() if n != len(shards[p])]
            before_ok = all_keys <= {
                r[0]
                for r in con.execute(
                    "SELECT candidate_id FROM candidates WHERE job_id <> ?", [f"job-{trial}"]
                ).fetchall()
            }
            # Re-ingest (the next sync) completes the folder, with nothing twice.
            ingest_shards(con, "candidates", folder)
            n_after, n_distinct = one(
                con,
                "SELECT count(*), count(DISTINCT candidate_id) FROM candidates WHERE job_id = ?",
                [f"job-{trial}"],
            )
            n_shards_after = one(
                con,
                "SELECT count(*) FROM ingested_shards WHERE path LIKE ?",
                [str(folder.resolve()) + "/%"],
            )[0]
        finally:
            con.close()
        expected = sum(len(k) for k in shards.values())
        landed.append(len(recorded))
        where = (
            "after the last shard"
            if "finished" in lines
            else ("mid-ingest" if recorded else "before the first shard")
        )
        record(
            "crash",
            f"app killed mid-ingest, trial {trial}",
            f"killed {delay:.2f} s after {'launch' if aimed == 'start-up' else 'ready'}: "
            f"{len(recorded)}/{len(shards)} shards in, {half} half-ingested; re-ingest "
            f"{n_after}/{expected} rows",
            aimed=aimed,
            delay_s=delay,
            landed=where,
            shards_in=len(recorded),
            shards_acknowledged=len(acked),
            half_ingested=half,
            lost=missing + unacked_lost + (0 if before_ok else 1) + (expected - n_distinct),
            duplicated=n_after - n_distinct,
        )
        assert half == 0 and missing == 0 and not bad_counts, (
            f"trial {trial}: a half-ingested shard"
        )
        assert unacked_lost == 0, f"trial {trial}: a shard reported ingested is gone"
        assert before_ok, f"trial {trial}: rows of earlier trials are gone"
        assert n_after == n_distinct == expected and n_shards_after == len(shards)
        all_keys |= set().union(*shards.values())
    # The kills landed at different points: before any shard, mid-way, and never all done.
    assert 0 in landed and sum(0 < n < N_SHARDS for n in landed) >= TRIALS // 3, landed


def _seed_review(db: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from training_data import fill_picks

    con = connect(db)
    try:
        fill_picks(con, n=12)
    finally:
        con.close()


def test_app_killed_mid_override_leaves_every_event_whole_and_state_a_replay(tmp_path):
    from reset_core.review.events import (
        ACTIONS,
        effective_picks,
        example_states,
    )

    rng = random.Random(SEED + 1)
    db = tmp_path / "review.duckdb"
    _seed_review(db)
    examples = [f"e{i:03d}" for i in range(12)]
    known: set[str] = set()
    landed = []
    for trial in range(1, TRIALS + 1):
        aimed, delay, lines = _run_and_kill(
            [OVERRIDE_CHILD, str(db), str(SEED * 100 + trial)], rng, 1.0, 1.5
        )
        acked = {line.split(" ", 1)[1] for line in lines if line.startswith("event ")}

        con = connect(db)
        try:
            rows = con.execute(
                "SELECT event_id, example_id, candidate_id, action, value, previous, reviewer, "
                "created_at FROM overrides"
            ).fetchall()
            ids = {r[0] for r in rows}
            new = ids - known
            # Every event whole: a known action by a named reviewer, parseable JSON, and
            # an undo pointing at an event that is there.
            broken = []
            for eid, ex, cand, action, value, previous, reviewer, at in rows:
                ok = action in ACTIONS and reviewer and at is not None and ex in examples
                ok = ok and value is not None and previous is not None
                if ok and action in ("veto", "unveto", "force", "unforce", "score"):
                    ok = cand is not None
                if ok:
                    v, _ = json.loads(value), json.loads(previous)
                    ok = action != "undo" or v.get("event_id") in ids
                if not ok:
                    broken.append(eid)
            lost_acked = len(acked - ids)
            unacked = len(new - acked)  # at most the one in flight at the kill
            # Derived state = replay: the SQL effective picks against the Python fold.
            sql = {
                (r["example_id"], r["candidate_id"], r["excluded"])
                for r in effective_picks(con, "sel-1", include_none=True).to_pylist()
            }
            states = example_states(con, examples, "sel-1")
            replay = {(e, c, s.excluded) for e, s in states.items() for c in (s.picks or (None,))}
            # The version each state shows is the example's last stored event.
            last = dict(
                con.execute(
                    "SELECT example_id, event_id FROM overrides QUALIFY row_number() OVER "
                    "(PARTITION BY example_id ORDER BY created_at DESC, event_id DESC) = 1"
                ).fetchall()
            )
            versions_ok = all(s.version == last.get(e) for e, s in states.items())
            q_state = one(con, "SELECT count(*) FROM review_queue_state")[0]
            q_rows = one(con, "SELECT count(DISTINCT example_id) FROM review_queue")[0]
        finally:
            con.close()
        landed.append(len(new))
        where = (
            "after the last event"
            if "finished" in lines
            else ("mid-review" if new else "before the first event")
        )
        record(
            "crash",
            f"app killed mid-override, trial {trial}",
            f"killed {delay:.2f} s after {'launch' if aimed == 'start-up' else 'ready'}: "
            f"{len(new)} new events ({len(acked)} acknowledged), {len(broken)} broken, "
            f"state {'=' if sql == replay else '!='} replay",
            aimed=aimed,
            delay_s=delay,
            landed=where,
            events_new=len(new),
            events_acknowledged=len(acked),
            half_written=len(broken),
            unacknowledged=unacked,
            lost=lost_acked,
            duplicated=len(rows) - len(ids),
            state_matches_replay=sql == replay,
        )
        assert not broken, f"trial {trial}: half-written events {broken}"
        assert lost_acked == 0, f"trial {trial}: {lost_acked} recorded events are gone"
        assert unacked <= 1, f"trial {trial}: {unacked} events nobody was told of"
        assert sql == replay, f"trial {trial}: derived state differs from a replay: {sql ^ replay}"
        assert versions_ok
        assert (q_state, q_rows) in ((0, 0), (1, len(examples))), (
            f"trial {trial}: a half-built review queue: state {q_state}, {q_rows} examples"
        )
        known = ids
    assert 0 in landed and any(n > 0 for n in landed), landed
