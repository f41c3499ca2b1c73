"""Progress bars for the CLI's long work: one helper for every stage that runs a job.

A job's worker writes ``progress.json`` in its folder (see :mod:`reset_core.jobs`);
this module reads that file, never the database, so it can follow a worker that runs
in this process (:func:`run_job`: the worker in the main thread, the bar in a
thread) or in another one (:func:`follow`: a launched worker, ``jobs status
--follow``). It draws on stderr, so stdout stays the command's result:

- on a terminal, one line redrawn in place with ``\\r``: a bar, the percentage and
  :func:`reset_core.jobs.describe_progress`'s line;
- otherwise (a log file, CI), one plain line every ``interval_s`` (10 s) and at
  every change of status, so logs stay readable;
- ``--quiet``: nothing.

Ctrl-C during :func:`run_job` asks the worker to stop after its current batch (the
same as ``jobs cancel``): saved shards are kept, and the command exits 130. A second
Ctrl-C stops at once::

    bar = ProgressBar("judgments", quiet=args.quiet)
    code = run_job(con, job_id, bar)           # the worker, here, with a bar
    progress = sync_judge_job(con, job_id)     # then ingest its shards
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from reset_core import jobs

BAR_WIDTH = 24
#: How often a non-terminal stream gets a line while nothing but the counts moved.
PLAIN_INTERVAL_S = 10.0


def bar_line(
    progress: dict[str, Any],
    unit: str,
    width: int = BAR_WIDTH,
    extra: Callable[[dict[str, Any]], str | None] | None = None,
) -> str:
    """A bar, the percentage and the progress line, for one redraw.

    >>> bar_line({"status": "running", "n_done": 5, "n_total": 10, "updated_at": 1.0,
    ...           "phase": "judging"}, "judgments", width=10)
    '[#####.....]  50% running · 5/10 judgments · judging'
    """
    frac = jobs.progress_fraction(progress)
    filled = int(round(frac * width))
    bar = "#" * filled + "." * (width - filled)
    line = f"[{bar}] {frac:4.0%} {jobs.describe_progress(progress, unit)}"
    more = extra(progress) if extra else None
    return f"{line} · {more}" if more else line


class ProgressBar:
    """Draws a job's progress on ``stream`` (stderr): in place on a TTY, plain lines otherwise.

    ``extra(progress)`` adds a stage's own figure to the line (training: the loss).

    >>> import io
    >>> out = io.StringIO()
    >>> bar = ProgressBar("items", stream=out)   # not a TTY: plain lines
    >>> bar.update({"status": "running", "n_done": 1, "n_total": 4, "updated_at": 1.0})
    >>> bar.close({"status": "done", "n_done": 4, "n_total": 4})
    >>> print(out.getvalue(), end="")
    [######..................]  25% running · 1/4 items
    [########################] 100% done · 4/4 items
    """

    def __init__(
        self,
        unit: str = "items",
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        tty: bool | None = None,
        interval_s: float = PLAIN_INTERVAL_S,
        extra: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.unit, self.extra = unit, extra
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        isatty = getattr(self.stream, "isatty", None)
        self.tty = tty if tty is not None else bool(isatty and isatty())
        self.interval_s = interval_s
        self._last_line: str | None = None
        self._last_status: str | None = None
        self._last_plain = float("-inf")
        self._drawn = False

    def _width(self) -> int:
        return max(shutil.get_terminal_size((100, 20)).columns - 1, 40)

    def update(self, progress: dict[str, Any]) -> None:
        """Draw ``progress`` if it changed (TTY) or if a plain line is due."""
        if self.quiet or not progress:
            return
        line = bar_line(progress, self.unit, extra=self.extra)
        status = progress.get("status")
        if self.tty:
            if line != self._last_line:
                # Pad to the width so a shorter line wipes the end of the longer one.
                width = self._width()
                self.stream.write(f"\r{line[:width]:<{width}}")
                self.stream.flush()
                self._drawn = True
        else:
            now = time.monotonic()
            due = now - self._last_plain >= self.interval_s
            if line != self._last_line and (due or status != self._last_status):
                self.stream.write(line + "\n")
                self.stream.flush()
                self._last_plain = now
        self._last_line, self._last_status = line, status

    def close(self, progress: dict[str, Any] | None = None) -> None:
        """Draw the final state (always, so a log ends on it) and end the line."""
        if self.quiet:
            return
        if progress:
            self._last_plain = float("-inf")  # the final line is always written
            self.update(progress)
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


class _Follower(threading.Thread):
    """Reads a job's progress file every ``poll_s`` and hands it to the bar."""

    def __init__(self, job_dir: Path, bar: ProgressBar, poll_s: float) -> None:
        super().__init__(daemon=True, name="reset-studio-progress")
        self.job_dir, self.bar, self.poll_s = job_dir, bar, poll_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.poll_s):
            # A half-written file cannot be read (writes are atomic renames), but the
            # worker may not have written one yet: then there is nothing to draw.
            with contextlib.suppress(ValueError, OSError):
                self.bar.update(jobs.read_json(self.job_dir / "progress.json"))


@contextlib.contextmanager
def _cancel_on_sigint(job_dir: Path, bar: ProgressBar):
    """First Ctrl-C: ask the worker to stop after its batch (saved work kept); second: stop."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    interrupted = []

    def handler(signum, frame):
        if interrupted:  # a second Ctrl-C: the user does not want to wait for the batch
            raise KeyboardInterrupt
        interrupted.append(True)
        (job_dir / "cancel").touch()
        if not bar.quiet:
            bar.stream.write("\ncancelling: the worker stops after its current batch\n")
            bar.stream.flush()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(interrupted)
    finally:
        signal.signal(signal.SIGINT, previous)


def run_job(
    con, job_id: str, bar: ProgressBar, poll_s: float = 0.5, release_db: str | None = None
) -> tuple[int, bool]:
    """Run a job's worker in this process (:func:`jobs.run_here`) with ``bar`` following it.

    Returns ``(worker exit code, interrupted)``: ``interrupted`` is True when Ctrl-C
    stopped it; the job's finished shards are on disk either way (ingest them with the
    stage's sync). The bar's last line is drawn from the final progress file.

    ``release_db`` (the database's path): close ``con`` while the worker runs and
    so the app
    may open the database meanwhile; ingest the shards with :func:`reset_core.handoff.sync`
    (which works whoever holds the database by then).
    """
    job_dir = jobs.work_dir(con, job_id)
    follower = _Follower(job_dir, bar, poll_s)
    follower.start()
    code, interrupted = 1, False
    try:
        with _cancel_on_sigint(job_dir, bar) as was_interrupted:
            try:
                if release_db is None:
                    code = jobs.run_here(con, job_id)
                else:  # the caller ingests with reset_core.handoff.sync
                    jobs.mark_running(con, job_id)
                    con.close()
                    code = jobs.run_worker(job_dir)
            except KeyboardInterrupt:
                interrupted = True
            interrupted = interrupted or was_interrupted()
    finally:
        follower.stopping.set()
        follower.join()
        bar.close(jobs.read_json(job_dir / "progress.json"))
    return code, interrupted


def follow(
    con,
    job_id: str,
    sync: Callable[[Any, str], dict[str, Any]],
    bar: ProgressBar,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Follow a job that runs elsewhere (a launched worker) until it ends; return its progress.

    ``sync`` is the stage's sync (it ingests finished shards as they land). Ctrl-C
    stops following and cancels the job (saved work kept), then raises
    ``KeyboardInterrupt`` once the worker has stopped, for the caller to exit 130.
    """
    progress: dict[str, Any] = {}
    try:
        while True:
            progress = sync(con, job_id)
            bar.update(progress)
            if progress.get("status") not in jobs.ACTIVE:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        jobs.cancel(con, job_id)
        if not bar.quiet:
            bar.stream.write("\ncancelling: the worker stops after its current batch\n")
        while (progress := sync(con, job_id)).get("status") in jobs.ACTIVE:
            time.sleep(0.5)
        bar.close(progress)
        raise
    bar.close(progress)
    return progress


def add_quiet(parser) -> None:
    """Add ``--quiet`` (no progress bar) to a command that runs a job."""
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar on stderr (results still print)"
    )


#: What each job kind counts, for the progress line.
UNITS = {"sample": "candidates", "judge": "judgments", "train": "steps", "batch": "requests"}


def job_runner(quiet: bool = False) -> Callable[[Any, str], int]:
    """A ``run(con, job_id)`` for the library's headless loops (evaluation, experiment):
    each job with its own bar; Ctrl-C stops the worker after its batch and then raises
    ``KeyboardInterrupt``, so the loop stops instead of starting the next step.

    >>> run = job_runner(quiet=True)   # run(con, job_id) -> the worker's exit code
    """

    def run(con, job_id: str) -> int:
        kind = jobs.job_kind(con, job_id) or ""
        code, interrupted = run_job(con, job_id, ProgressBar(UNITS.get(kind, "items"), quiet=quiet))
        if interrupted:
            raise KeyboardInterrupt
        return code

    return run
