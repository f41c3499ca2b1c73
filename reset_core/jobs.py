"""Worker jobs: launch, progress, shards, cancel and resume; shared by every long stage.

The one-writer rule shapes this module. The app (or a CLI command) owns the database;
a job is a folder the app writes and a separate worker process that never opens
the database::

    jobs/<job_id>/
        job.json        what to run: {"kind", "entry": "module:function", "config"}
        input.parquet   the work items (written by the app before launch)
        shards/         results, one Parquet file per batch (tmp name, then rename)
        progress.json   {"status", "phase", "detail", "n_done", "n_partial", "n_total",
                         "rate_per_s", "eta_s", "error", ...}
        cancel          present = please stop after the current batch
        worker.log      the worker's stdout/stderr

The worker calls ``entry(ctx)`` with a :class:`JobContext`. It skips keys it has
already written (:meth:`JobContext.done_keys`), so rerunning a killed job redoes
only what is missing. The app polls :func:`sync_job`, which ingests finished shards
by key and mirrors progress into the ``jobs`` table.

Progress moves while a batch is still in flight, not only when its shard lands:
``n_done`` counts saved work, ``n_partial`` the finished part of the batch in flight
(decoded tokens, answered requests), ``phase``/``detail`` say what the worker is doing
(loading a model, which batch). :func:`describe_progress` turns that into one line.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reset_core.atomic import atomic_path, write_json_atomic

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "stopped")


class JobStopped(Exception):
    """Raised by a worker that ends early on purpose (e.g. a budget cap): status 'stopped'.

    Its finished shards are kept; relaunching the job resumes from them.
    """


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def write_shard(shard_dir: Path, table: pa.Table, prefix: str = "shard") -> Path:
    """Write one Parquet shard atomically: a reader sees the whole file or nothing."""
    path = shard_dir / f"{prefix}-{time.time_ns()}-{uuid.uuid4().hex[:6]}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


@dataclass
class JobContext:
    """What a worker function gets: its folder, config, inputs and reporting hooks.

    Reporting, in the order a worker calls it::

        ctx.start(n_total, n_done)          # what there is to do (resume: what is done)
        ctx.phase("loading model")          # a step without countable work
        ctx.phase("generating", clock=True) # the work starts: rate is timed from here
        ctx.partial(12.5, "token 9/48")     # the batch in flight: finished part of it
        ctx.write(table)                    # the batch is saved: n_done += its rows

    :meth:`partial` may be called every decoding step or every answered request; it
    writes ``progress.json`` at most every ``report_every_s`` seconds.
    """

    job_dir: Path
    config: dict[str, Any]
    #: None until :meth:`start`: the app's planned size stands in (see :func:`sync_job`).
    n_total: int | None = None
    n_done: int = 0
    #: Finished work of the batch in flight (not saved yet), in the same unit as n_done.
    n_partial: float = 0.0
    #: Shortest interval between two in-flight (:meth:`partial`) progress writes.
    report_every_s: float = 0.5
    _started: float = field(default_factory=time.monotonic)
    _done_at_start: float = 0
    _last_write: float = 0.0
    _phase: str | None = None
    _detail: str | None = None
    #: Wall-clock times (epoch s) the worker began and its work began (after imports and
    #: model loading): with the final rate they are what launch estimates are measured on.
    worker_started_at: float = field(default_factory=time.time)
    work_started_at: float | None = None
    #: Extra stage-specific figures (e.g. a cost ledger) carried in every progress report.
    extra: dict[str, Any] = field(default_factory=dict)

    #: The name its shard files start with (a shard folder's are ``part-*``).
    shard_prefix = "shard"

    @property
    def shard_dir(self) -> Path:
        return self.job_dir / "shards"

    def read_input(self) -> pa.Table:
        return pq.read_table(self.job_dir / "input.parquet")

    def done_keys(self, key: str) -> set[str]:
        """Keys already in this job's finished shards: what a resumed run skips."""
        files = sorted(self.shard_dir.glob("*.parquet"))
        if not files:
            return set()
        return set(pq.read_table(files, columns=[key]).column(key).to_pylist())

    def cancelled(self) -> bool:
        return (self.job_dir / "cancel").exists()

    def write(self, table: pa.Table, n_items: int | None = None) -> None:
        """Save a finished batch of results and count it as progress."""
        if table.num_rows:
            write_shard(self.shard_dir, table, prefix=self.shard_prefix)
        self.advance(table.num_rows if n_items is None else n_items)

    def start(self, n_total: int, n_done: int = 0) -> None:
        """Say how much work the job has (and, on resume, how much is already done)."""
        self.n_total, self.n_done, self.n_partial = n_total, n_done, 0.0
        self._restart_clock()
        self._report("running")

    def phase(self, text: str | None, clock: bool = False) -> None:
        """Say what the worker is doing now (``"loading model"``); written at once.

        ``clock=True`` restarts the rate clock: the rate then measures the work alone,
        not the model load before it.
        """
        self._phase, self._detail = text, None
        if clock:
            self._restart_clock()
        self._report("running")

    def partial(self, n: float, detail: str | None = None) -> None:
        """Finished part of the batch in flight (e.g. 12.5 of 32 candidates), not saved yet.

        Cheap to call often: it writes ``progress.json`` at most every ``report_every_s``.
        """
        self.n_partial, self._detail = float(n), detail
        if time.monotonic() - self._last_write >= self.report_every_s:
            self._report("running")

    def advance(self, n: int) -> None:
        """Count ``n`` items as done and saved; the batch in flight is over."""
        self.n_done += n
        self.n_partial, self._detail = 0.0, None
        self._report("running")

    def progress(self, n_done: int, **extra: Any) -> None:
        """Report absolute progress (e.g. optimizer steps) plus stage-specific fields."""
        self.n_done, self.n_partial = n_done, 0.0
        self._report("running", **extra)

    def _restart_clock(self) -> None:
        # The work (as launch estimates measure it) begins when the rate clock starts:
        # after imports and model loading.
        self._started = time.monotonic()
        self._done_at_start = self.n_done + self.n_partial
        self.work_started_at = time.time()

    def _report(self, status: str, error: str | None = None, **extra: Any) -> None:
        now = time.monotonic()
        # Rate and ETA from work actually finished since the clock started (saved rows
        # plus the finished part of the batch in flight); no work yet, no rate.
        worked = self.n_done + self.n_partial - self._done_at_start
        rate = worked / max(now - self._started, 1e-9) if worked > 0 else None
        left = None if self.n_total is None else max(self.n_total - self.n_done - self.n_partial, 0)
        self._last_write = now
        write_json_atomic(
            self.job_dir / "progress.json",
            {
                "status": status,
                "phase": self._phase,
                "detail": self._detail,
                "n_done": self.n_done,
                "n_partial": round(self.n_partial, 3),
                "n_total": self.n_total,
                "rate_per_s": rate,
                "eta_s": (left / rate) if rate and left is not None else None,
                "error": error,
                "pid": os.getpid(),
                "updated_at": time.time(),
                "worker_started_at": self.worker_started_at,
                "work_started_at": self.work_started_at,
                **self.extra,
                **extra,
            },
        )


def run_worker(job_dir: str | Path) -> int:
    """Entry of the worker process: run the job's function, record how it ended."""
    job_dir = Path(job_dir)
    spec = read_json(job_dir / "job.json")
    ctx = JobContext(job_dir, spec.get("config", {}))
    # SIGTERM (cancel from the app, or a scheduler's stop) means "finish the current
    # batch and stop", the same as the cancel file, so nothing half-done is written.
    # Only a main thread may install it: a command the app serves for the CLI
    # (reset_core.handoff) runs its worker in a thread of the app, where a SIGTERM is
    # the app's own to handle; the cancel file still stops that worker.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: (job_dir / "cancel").touch())
    try:
        # Said before the stage's modules load (torch, a model: seconds), so the page's
        # progress line moves as soon as the worker process is up.
        ctx.phase("starting the worker")
        module, _, func = spec["entry"].partition(":")
        entry: Callable[[JobContext], None] = getattr(importlib.import_module(module), func)
        entry(ctx)
    except JobStopped as e:
        ctx._report("stopped", error=str(e))
        return 0
    except BaseException as e:  # noqa: BLE001 - every failure must be recorded, KeyboardInterrupt too
        from reset_core.deployment import redact

        # The error lands in progress.json and the jobs table: never with a key in it
        # (an HTTP client's message can quote a request's headers or a server's echo).
        ctx._report(
            "failed",
            error=redact(f"{type(e).__name__}: {e}"),
            traceback=redact(traceback.format_exc()),
        )
        return 1
    ctx._report("cancelled" if ctx.cancelled() else "done")
    return 0


# --------------------------------------------------------------------------- app side
# These functions take the app's connection. They import the store themselves: this
# module is also the worker process's entry, which must not even load duckdb.


def create_job(
    con,
    jobs_root: str | Path,
    kind: str,
    entry: str,
    config: dict[str, Any],
    inputs: pa.Table | pa.RecordBatchReader,
) -> str:
    """Write a job folder and its ``jobs`` row; return the job id. Does not launch.

    ``inputs`` may be a stream of record batches (a large plan read from the database):
    it is written batch by batch, never held whole.
    """
    job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    job_dir = Path(jobs_root) / job_id
    job_dir.mkdir(parents=True)
    if isinstance(inputs, pa.Table):
        pq.write_table(inputs, job_dir / "input.parquet")
        n_total = inputs.num_rows
    else:
        n_total = 0
        with pq.ParquetWriter(job_dir / "input.parquet", inputs.schema) as out:
            for batch in inputs:
                out.write_batch(batch)
                n_total += batch.num_rows
    write_json_atomic(job_dir / "job.json", {"kind": kind, "entry": entry, "config": config})
    con.execute(
        "INSERT INTO jobs (job_id, kind, status, config, work_dir, n_total) VALUES (?, ?, 'queued', ?, ?, ?)",
        [job_id, kind, json.dumps(config), str(job_dir.resolve()), n_total],
    )
    return job_id


def _reset_progress(job_dir: Path) -> None:
    """Forget the last attempt's end: a rerun must not be judged by its "failed" or
    "cancelled" progress before the new worker has written its own."""
    (job_dir / "cancel").unlink(missing_ok=True)
    previous = read_json(job_dir / "progress.json")
    if previous:
        write_json_atomic(
            job_dir / "progress.json",
            {
                **previous,
                "status": "queued",
                "error": None,
                "pid": None,
                "phase": None,
                "detail": None,
            },
        )


def requeue(con, job_id: str) -> None:
    """Put a failed, cancelled or abandoned job back to 'queued', to rerun it headless.

    For a job whose worker is gone (killed, or a headless run whose process died):
    :func:`run_here` then resumes it from its saved shards or checkpoints, as
    :func:`launch` would in a child process.
    """
    _reset_progress(work_dir(con, job_id))
    con.execute(
        "UPDATE jobs SET status='queued', pid=NULL, error=NULL, finished_at=NULL WHERE job_id=?",
        [job_id],
    )


def worker_env(job_dir: Path) -> dict[str, str]:
    """The environment of a job's worker: the app's, with exactly the keys the job names.

    Keys the job's config names (``api_key_env``, if the deployment allows it) come from
    the environment or the app's secrets; every other key and secret stays in the app.
    """
    from reset_core.deployment import Deployment, key_envs_in

    needed = key_envs_in(read_json(job_dir / "job.json").get("config", {}))
    return {**Deployment.current().worker_env(needed), "PYTHONUNBUFFERED": "1"}


def launch(con, job_id: str) -> int:
    """Start (or restart, to resume) the worker process for a job; return its pid."""
    job_dir = work_dir(con, job_id)
    _reset_progress(job_dir)
    log = open(job_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        [sys.executable, "-m", "reset_core.jobs", str(job_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # survives an app restart; cancel goes through the file
        # The deployment's settings and exactly the keys the job names (see worker_env).
        env=worker_env(job_dir),
    )
    log.close()
    con.execute(
        "UPDATE jobs SET status='running', pid=?, error=NULL, started_at=current_timestamp, "
        "finished_at=NULL WHERE job_id=?",
        [proc.pid, job_id],
    )
    return proc.pid


def cancel(con, job_id: str) -> None:
    """Ask a worker to stop after its current batch; finished shards are kept."""
    from reset_core.store import one

    work_dir, pid = one(con, "SELECT work_dir, pid FROM jobs WHERE job_id=?", [job_id])
    (Path(work_dir) / "cancel").touch()
    # A worker run in this very process (run_here: the app serving a CLI command)
    # stops on the cancel file; a SIGTERM would stop the whole process.
    if pid and pid != os.getpid() and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # A finished child of this process stays as a zombie until reaped.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def sync_job(con, job_id: str, ingest: Callable[[Path], int] | None = None) -> dict[str, Any]:
    """Ingest a job's finished shards and mirror its progress; return the progress.

    ``ingest(shard_dir)`` loads the shards into the right table (it is the stage's
    own ``store.ingest_shards`` call). A worker that died without saying so (killed,
    out of memory) is marked failed; its finished shards stay ingested.
    """
    from reset_core.store import one

    row = one(con, "SELECT work_dir, pid, status, n_total FROM jobs WHERE job_id=?", [job_id])
    if row is None:
        raise KeyError(f"no job {job_id!r}")
    work_dir, pid, status = Path(row[0]), row[1], row[2]
    # Progress first, shards second: a worker writes its last shard before it reports
    # "done", so every shard of a finished job is on disk by the time it is ingested.
    progress = read_json(work_dir / "progress.json")
    if ingest is not None:
        ingest(work_dir / "shards")
    new_status = progress.get("status", status)
    if new_status in ACTIVE and pid and not _alive(pid):
        new_status = "cancelled" if (work_dir / "cancel").exists() else "failed"
        progress["error"] = progress.get("error") or (
            f"worker process {pid} exited without finishing; see {work_dir / 'worker.log'}"
        )
    if new_status in ACTIVE and status not in ACTIVE:
        new_status = status  # a stale progress file from an earlier attempt
    progress["status"] = new_status
    # Before the worker has counted its work, the size the app planned stands in.
    progress["n_total"] = progress.get("n_total") or row[3]
    con.execute(
        "UPDATE jobs SET status=?, n_done=?, n_total=coalesce(?, n_total), error=?, "
        "finished_at = CASE WHEN ? IN ('done','failed','cancelled','stopped') "
        "THEN coalesce(finished_at, current_timestamp) ELSE NULL END WHERE job_id=?",
        [
            new_status,
            progress.get("n_done", 0),
            progress.get("n_total"),
            progress.get("error"),
            new_status,
            job_id,
        ],
    )
    return progress


# --------------------------------------------------------------------------- reading


def progress_fraction(progress: dict[str, Any]) -> float:
    """How far a job is, in [0, 1]: saved work plus the finished part of the batch in flight.

    >>> progress_fraction({"n_done": 32, "n_partial": 8.0, "n_total": 80})
    0.5
    >>> progress_fraction({"status": "queued"})
    0.0
    """
    total = progress.get("n_total") or 0
    if not total:
        return 0.0
    done = (progress.get("n_done") or 0) + (progress.get("n_partial") or 0)
    return min(max(done / total, 0.0), 1.0)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_progress(progress: dict[str, Any], unit: str = "items") -> str:
    """One line for a job's progress: counts, what it is doing, rate and ETA.

    The counts are saved work; what the batch in flight has finished shows in the
    rate, the ETA and :func:`progress_fraction`. No rate is shown before any work
    finished (a model still loading has no rate yet).

    >>> describe_progress({"status": "running", "phase": "generating",
    ...     "detail": "batch 1/2 · token 12/48", "n_done": 0, "n_partial": 8.0,
    ...     "n_total": 48, "rate_per_s": 2.0, "eta_s": 20.0, "updated_at": 1.0}, "candidates")
    'running · 0/48 candidates · generating: batch 1/2 · token 12/48 · 2.00 candidates/s · ETA 20 s'
    >>> describe_progress({"status": "running", "phase": "loading model", "n_done": 0,
    ...     "n_total": 48, "rate_per_s": None, "updated_at": 1.0}, "candidates")
    'running · 0/48 candidates · loading model'
    >>> describe_progress({"status": "done", "n_done": 48, "n_total": 48, "phase": "generating"},
    ...     "candidates")
    'done · 48/48 candidates'
    >>> describe_progress({"status": "running", "n_total": 10})  # no report from the worker yet
    'running · 0/10 items · starting the worker'
    """
    status = progress.get("status") or "queued"
    total = progress.get("n_total")
    parts = [
        status,
        f"{progress.get('n_done') or 0:,}/{'?' if total is None else f'{total:,}'} {unit}",
    ]
    if status not in ACTIVE:
        return " · ".join(parts)
    phase, detail = progress.get("phase"), progress.get("detail")
    if status == "queued" or not progress.get("updated_at"):  # the worker has not reported
        phase, detail = "starting the worker", None
    if phase or detail:
        parts.append(": ".join(x for x in (phase, detail) if x))
    rate, eta = progress.get("rate_per_s"), progress.get("eta_s")
    if rate:
        parts.append(f"{rate:.2f} {unit}/s")
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
    return " · ".join(parts)


def recent_jobs(con, kind: str, limit: int = 5) -> list[tuple[str, str]]:
    """The latest ``limit`` jobs of a kind as ``(job_id, status)``, newest first.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO jobs (job_id, kind, status, config, work_dir, created_at) VALUES "
    ...     "('judge-1', 'judge', 'done', '{}', '/tmp/judge-1', '2024-01-01'), "
    ...     "('judge-2', 'judge', 'running', '{}', '/tmp/judge-2', '2024-01-02'), "
    ...     "('sample-1', 'sample', 'done', '{}', '/tmp/sample-1', '2024-01-03')"
    ... )
    >>> recent_jobs(con, "judge")
    [('judge-2', 'running'), ('judge-1', 'done')]
    >>> recent_jobs(con, "judge", limit=1)
    [('judge-2', 'running')]
    """
    return con.execute(
        "SELECT job_id, status FROM jobs WHERE kind = ? ORDER BY created_at DESC LIMIT ?",
        [kind, limit],
    ).fetchall()


def active_job_ids(con, kind: str) -> list[str]:
    """Ids of a kind's jobs still queued or running (as last synced), in table order.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO jobs (job_id, kind, status, config, work_dir) VALUES "
    ...     "('sample-1', 'sample', 'done', '{}', '/tmp/s1'), "
    ...     "('sample-2', 'sample', 'queued', '{}', '/tmp/s2'), "
    ...     "('judge-1', 'judge', 'running', '{}', '/tmp/j1')"
    ... )
    >>> active_job_ids(con, "sample")
    ['sample-2']
    """
    return [
        r[0]
        for r in con.execute(
            "SELECT job_id FROM jobs WHERE kind = ? AND status IN (SELECT unnest(?))",
            [kind, list(ACTIVE)],
        ).fetchall()
    ]


def list_jobs(
    con, kind: str | None = None, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Jobs of every kind (or one kind/status), newest first, as the ``jobs`` table last
    mirrored them: ``job_id, kind, status, n_done, n_total, error, created_at, finished_at``.

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO jobs (job_id, kind, status, config, work_dir, created_at) VALUES "
    ...     "('judge-1', 'judge', 'stopped', '{}', '/tmp/j1', '2024-01-01'), "
    ...     "('sample-1', 'sample', 'done', '{}', '/tmp/s1', '2024-01-02')"
    ... )
    >>> [j["job_id"] for j in list_jobs(con)]
    ['sample-1', 'judge-1']
    >>> [j["job_id"] for j in list_jobs(con, status="stopped")]
    ['judge-1']
    """
    cur = con.execute(
        "SELECT job_id, kind, status, n_done, n_total, error, created_at, finished_at "
        "FROM jobs WHERE (? IS NULL OR kind = ?) AND (? IS NULL OR status = ?) "
        "ORDER BY created_at DESC, job_id DESC LIMIT ?",
        [kind, kind, status, status, limit],
    )
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def job_kind(con, job_id: str) -> str | None:
    """A job's kind (``sample``, ``judge``, ``train`` …), or None for an unknown id.

    >>> from reset_core.store import connect
    >>> job_kind(connect(":memory:"), "judge-0") is None
    True
    """
    from reset_core.store import one

    row = one(con, "SELECT kind FROM jobs WHERE job_id = ?", [job_id])
    return None if row is None else row[0]


def work_dir(con, job_id: str) -> Path:
    """A job's folder (its inputs, shards, progress file and log).

    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute(
    ...     "INSERT INTO jobs (job_id, kind, status, config, work_dir) "
    ...     "VALUES ('judge-1', 'judge', 'done', '{}', '/tmp/jobs/judge-1')"
    ... )
    >>> work_dir(con, "judge-1").name
    'judge-1'
    >>> work_dir(con, "judge-0")
    Traceback (most recent call last):
    ...
    KeyError: "no job 'judge-0'"
    """
    from reset_core.store import one

    row = one(con, "SELECT work_dir FROM jobs WHERE job_id = ?", [job_id])
    if row is None:
        raise KeyError(f"no job {job_id!r}")
    return Path(row[0])


# --------------------------------------------------------------------------- estimates
# Know before you launch: each stage shows a launch's size and how long it should take
# on this machine. The figures come from the stage's finished jobs on this database
# (the worker's last progress report: its work rate, and the seconds from the worker's
# start to its first item, i.e. imports and model loading), or, before the first run,
# from a default the stage states as an assumption.

#: A launch estimated to take longer than this (seconds) asks for confirmation first.
CONFIRM_ABOVE_S = 180.0
#: Estimates take the median over this many latest matching finished jobs.
MEASURE_LAST = 3


@dataclass(frozen=True)
class Throughput:
    """How fast a stage's worker goes: measured on this database's jobs, or assumed.

    ``per_s`` items a second once the work runs, each item costing ``cost`` (e.g.
    max_tokens 64 per candidate: time per item is taken as proportional to it);
    ``startup_s`` seconds before the first item. ``runs`` is how many finished jobs it
    was measured over; 0 means every figure is the stage's stated ``assumption``.

    >>> t = Throughput("candidates", 1.25, 8.0, "this model", runs=2, cost=64,
    ...                cost_label="max_tokens {:g}")
    >>> t.seconds(100), t.seconds(100, cost=128)
    (88.0, 168.0)
    >>> t.describe()
    'measured: 1.2 candidates/s at max_tokens 64 over your last 2 runs of this model, plus ~8 s to start'
    >>> Throughput("judgments", 40, 0, "these judges", assumption="(metric judges on CPU)").describe()
    'no run of these judges yet: assuming ~40 judgments/s (metric judges on CPU)'
    """

    unit: str
    per_s: float
    startup_s: float
    subject: str
    runs: int = 0
    cost: float = 1.0
    cost_label: str = ""
    assumption: str = ""

    @property
    def measured(self) -> bool:
        return self.runs > 0

    def seconds(self, n_items: int, cost: float | None = None) -> float:
        """Estimated seconds for ``n_items`` items of ``cost`` each (default: as measured)."""
        if n_items <= 0:
            return 0.0
        scale = cost / self.cost if cost and self.cost else 1.0
        return self.startup_s + n_items * scale / self.per_s

    def describe(self, cost: float | None = None) -> str:
        """Where the figures come from, in words."""
        at = f" at {self.cost_label.format(self.cost)}" if self.cost_label else ""
        rate = f"{_figure(self.per_s)} {self.unit}/s{at}"
        start = f", plus ~{self.startup_s:.0f} s to start" if self.startup_s >= 1 else ""
        if self.measured:
            runs = "your last run" if self.runs == 1 else f"your last {self.runs} runs"
            text = f"measured: {rate} over {runs} of {self.subject}{start}"
        else:
            basis = f" {self.assumption}" if self.assumption else ""
            text = f"no run of {self.subject} yet: assuming ~{rate}{basis}{start}"
        if cost and self.cost_label and cost != self.cost:
            text += f"; scaled to {self.cost_label.format(cost)}"
        return text


def _figure(x: float) -> str:
    """Two significant figures, no scientific notation: 1.3, 0.05, 120."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{float(f'{x:.2g}'):g}"


def about(seconds: float) -> str:
    """A duration as a person says it.

    >>> about(20), about(100), about(12.4 * 60), about(2.5 * 3600)
    ('under a minute', 'about 2 min', 'about 12 min', 'about 2.5 h')
    """
    if seconds < 60:
        return "under a minute"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


@dataclass(frozen=True)
class LaunchEstimate:
    """A launch's size and estimated duration; long ones ask for confirmation first.

    >>> t = Throughput("candidates", 0.5, 0, "this model", runs=1)
    >>> e = LaunchEstimate(360, t)
    >>> str(e)
    '360 candidates · about 12 min (measured: 0.5 candidates/s over your last run of this model)'
    >>> e.needs_confirmation, e.confirm_label
    (True, 'Yes, start a ~12 min job')
    >>> LaunchEstimate(60, t).needs_confirmation
    False

    Work answered elsewhere within a deadline (the Batch API's completion window), beside
    the local work, is known only by that bound: the duration says "up to", and the
    launch always asks.

    >>> e = LaunchEstimate(60, t, wait_up_to_s=24 * 3600, waits_for="30 requests via a batch")
    >>> e.duration, e.needs_confirmation, e.confirm_label
    ('up to 24.0 h', True, 'Yes, start a job of up to 24.0 h')
    >>> str(e)
    '60 candidates here · about 2 min (measured: 0.5 candidates/s over your last run of this model); 30 requests via a batch: up to 24.0 h in all'
    """

    n_items: int
    throughput: Throughput
    cost: float | None = None  # per item, when it differs from the measured one
    wait_up_to_s: float | None = None  # work done elsewhere, known only by its deadline
    waits_for: str = ""  # that work, in words ("1,200 LLM requests through the Batch API")

    @property
    def local_seconds(self) -> float:
        return self.throughput.seconds(self.n_items, self.cost)

    @property
    def seconds(self) -> float:
        """The local work's estimate; with a wait beside it, the longer of the two."""
        return max(self.local_seconds, self.wait_up_to_s or 0.0)

    @property
    def needs_confirmation(self) -> bool:
        return self.wait_up_to_s is not None or self.seconds > CONFIRM_ABOVE_S

    @property
    def duration(self) -> str:
        """How long, as a person says it: "about 12 min", or "up to 24.0 h" with a wait."""
        if self.wait_up_to_s is None:
            return about(self.seconds)
        return "up to " + about(self.seconds).removeprefix("about ").replace("under ", "")

    @property
    def confirm_label(self) -> str:
        if self.wait_up_to_s is not None:
            return f"Yes, start a job of {self.duration}"
        return f"Yes, start a ~{about(self.seconds).removeprefix('about ')} job"

    def __str__(self) -> str:
        unit = self.throughput.unit
        if self.n_items == 1 and unit.endswith("s"):
            unit = unit[:-1]  # "1 step", "1 candidate"
        here = f"{self.n_items:,} {unit}"
        local = f"{about(self.local_seconds)} ({self.throughput.describe(self.cost)})"
        if self.wait_up_to_s is None:
            return f"{here} · {local}"
        if not self.n_items:
            return f"{self.waits_for}: {self.duration}"
        return f"{here} here · {local}; {self.waits_for}: {self.duration} in all"


def finished_runs(con, kind: str, scan: int = 50) -> list[tuple[dict, dict]]:
    """``(config, last progress report)`` of a kind's jobs that finished done, newest first.

    At most the latest ``scan`` are read (one small JSON file each); a job whose folder
    is gone is skipped.
    """
    rows = con.execute(
        "SELECT config, work_dir FROM jobs WHERE kind = ? AND status = 'done' "
        "ORDER BY finished_at DESC NULLS LAST, created_at DESC LIMIT ?",
        [kind, scan],
    ).fetchall()
    out = []
    for config, folder in rows:
        config = json.loads(config) if isinstance(config, str) else config
        if config.get("shards"):
            # A run ingested from a shard folder (reset_core.shards) ran on another
            # machine: its rate says nothing about this one.
            continue
        progress = read_json(Path(folder) / "progress.json")
        if progress.get("status") == "done":
            out.append((config, progress))
    return out


def measure(
    runs: list[tuple[dict, dict]],
    *,
    unit: str,
    subject: str,
    cost_of: Callable[[dict], float] | None = None,
    cost_label: str = "",
    last: int = MEASURE_LAST,
) -> Throughput | None:
    """The median throughput of the latest ``last`` runs that did work; None without one.

    ``runs`` come from :func:`finished_runs`, already narrowed to the same model (or
    judges); ``cost_of(config)`` is one item's cost in that run. A run that resumed
    counts only its last attempt: the worker's rate is over the items that attempt made.

    >>> runs = [({"max_tokens": 64}, {"rate_per_s": 2.0, "worker_started_at": 0.0,
    ...                               "work_started_at": 6.0}),
    ...         ({"max_tokens": 128}, {"rate_per_s": 0.5, "worker_started_at": 0.0,
    ...                                "work_started_at": 10.0}),
    ...         ({"max_tokens": 64}, {"rate_per_s": 0.0})]  # had nothing left to do
    >>> t = measure(runs, unit="candidates", subject="this model",
    ...             cost_of=lambda c: c["max_tokens"], cost_label="max_tokens {:g}")
    >>> t.runs, t.cost, t.per_s, t.startup_s
    (2, 96.0, 1.0, 8.0)
    """
    from statistics import median

    samples = []
    for config, progress in runs:
        rate = progress.get("rate_per_s") or 0.0
        if rate <= 0:
            continue
        cost = float(cost_of(config)) if cost_of else 1.0
        began, working = progress.get("worker_started_at"), progress.get("work_started_at")
        startup = working - began if began is not None and working is not None else None
        samples.append((rate * cost, cost, startup))
        if len(samples) == last:
            break
    if not samples:
        return None
    cost = median(s[1] for s in samples)
    startups = [s[2] for s in samples if s[2] is not None]
    return Throughput(
        unit=unit,
        per_s=median(s[0] for s in samples) / cost,
        startup_s=median(startups) if startups else 0.0,
        subject=subject,
        runs=len(samples),
        cost=cost,
        cost_label=cost_label,
    )


# --------------------------------------------------------------------------- stage syncs

#: Each job kind's stage sync, as (module, function): it ingests the job's shards by key
#: and mirrors its status (imported lazily: this module stays below every stage). A kind
#: not listed is mirrored without ingest (:func:`sync_job`).
STAGE_SYNCS: dict[str, tuple[str, str]] = {
    "sample": ("reset_core.sampling.launch", "sync_sampling"),
    "judge": ("reset_core.judging.launch", "sync_judge_job"),
    # Judgment shards as for "judge", and a row per submitted batch (kind "batch").
    "judge_batch": ("reset_core.judging.launch", "sync_batch_job"),
    "batch": ("reset_core.judging.launch", "sync_batch_row"),
    "train": ("reset_core.training.launch", "sync_training"),
}


def stage_sync(kind: str) -> Callable[[Any, str], dict[str, Any]]:
    """The sync for jobs of ``kind`` (``sync(con, job_id) -> progress``).

    >>> stage_sync("judge_batch").__name__, stage_sync("new-kind").__name__
    ('sync_batch_job', 'sync_job')
    """
    if kind not in STAGE_SYNCS:
        return sync_job
    module, func = STAGE_SYNCS[kind]
    return getattr(importlib.import_module(module), func)


# --------------------------------------------------------------------------- headless


def run_here(con, job_id: str) -> int:
    """Mark a job running and run its worker in this process; return the worker's exit code.

    The headless path (the CLI): the same worker :func:`launch` starts, without a child
    process. Ingest its shards afterwards with the stage's sync, as for a launched job::

        job_id = create_judge_job(con, db_path, specs, items=items)
        run_here(con, job_id)
        sync_judge_job(con, job_id)
    """
    job_dir = work_dir(con, job_id)
    mark_running(con, job_id)
    return run_worker(job_dir)


def mark_running(con, job_id: str) -> None:
    """Record that this process runs the job's worker itself (:func:`run_here`)."""
    # This process's pid: if it dies mid-run (a killed CLI, or the app serving it),
    # the next sync sees the pid gone and marks the job failed, so it can be resumed
    # rather than stay "running" for ever.
    con.execute(
        "UPDATE jobs SET status='running', pid=?, started_at=current_timestamp WHERE job_id=?",
        [os.getpid(), job_id],
    )


if __name__ == "__main__":
    sys.exit(run_worker(sys.argv[1]))
