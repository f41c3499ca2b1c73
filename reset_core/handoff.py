"""The app serves ``reset-studio`` commands, so the CLI works while the app holds the database.

DuckDB lets one process open a file for writing, and no other process may open it at
all meanwhile, not even read-only. The app keeps its connection open, so a CLI command
on the same file would fail. Instead, the command runs *inside* the app process:

1. When the app opens a database (``ui.py``'s cached connection, i.e. on the first page
   visit: until then the app does not hold the file and the CLI opens it directly), it
   calls :func:`serve`. A background thread listens on a Unix domain socket (mode 0600,
   so only this user's processes may connect; nothing secret is ever written to disk)
   and ``<jobs folder>/<db file>.app.json`` says where: ``{"pid", "socket", "db",
   "started_at"}``.
2. ``reset_core.cli.main`` calls :func:`delegate` before it runs a command (and again
   if the command meets :class:`~reset_core.store.DatabaseBusy`, for an app that
   opened the file just then). If a live app serves that database, it sends its argv, its working directory and
   the environment variables the command may need (the API key names the deployment
   allows, base URL variables and ``RESET_STUDIO_*``; never the whole environment),
   prints ``(run by the app, pid N)`` once on stderr, streams the command's stdout and
   stderr back and exits with its status. No app, or a dead one: exit 3 as before.
3. In the app, each request runs ``reset_core.cli.main`` in its own thread. Its
   ``store.connect(path)`` shares the app's database instance (DuckDB keeps one
   instance per file per process), so the app stays the only writer. ``sys.stdout``,
   ``sys.stderr`` and ``os.environ`` become thread-local proxies: the command's thread
   sees its caller's streams and keys; every other thread of the app sees its own.
   Relative paths in the arguments are resolved against the caller's directory.

4. The CLI, for its part, holds the database only while it plans and ingests: ``sample``
   and ``judge`` close it while their worker runs (:func:`follow`, :func:`run_released`)
   and open it again to ingest shards (:func:`sync`). If the app has opened it
   meanwhile, a ``{"sync": job_id}`` request on the socket makes the app ingest them.
   The other way round, an app that finds the file held by a command shows which
   (:attr:`~reset_core.store.DatabaseBusy.holder`) and retries until it ends.

Killed either side:

* the CLI killed (or Ctrl-C): the app finishes the command; everything it printed is
  also in ``<jobs folder>/cli/<time>-<pid>.log``, whose last line is its exit status;
* the app killed mid-command: the CLI says so, names the jobs left unfinished and how
  to resume them, and exits 1. Workers write finished shards (a sampling worker
  is a child process that even outlives the app), and shards are ingested by key, so
  a resume redoes only what is missing and adds no duplicates.

Limits: a served command reads no stdin, and Ctrl-C in the CLI leaves the command to
the app rather than cancelling it (cancel its job on the app's page). Unix
sockets only: elsewhere :func:`serve` does nothing and the CLI says "busy" (exit 3).

>>> import tempfile
>>> db = Path(tempfile.mkdtemp()) / "h.duckdb"
>>> server = serve(db)
>>> find_app(db)["pid"] == os.getpid()
True
>>> server.close(); find_app(db) is None
True
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from reset_core import paths

#: A Unix socket path longer than this does not fit ``sun_path`` (108 bytes on Linux,
#: 104 on macOS); such a socket goes to a short per-user temporary folder instead.
_MAX_SOCKET_PATH = 100

#: Argument names that are output paths: made absolute even though they do not exist yet.
_OUTPUT_DESTS = frozenset({"db", "out", "output", "out_dir", "output_dir"})

_local = threading.local()


def _app_file(db_path: str | Path) -> Path:
    return paths.jobs_dir(db_path) / f"{Path(db_path).name}.app.json"


def _socket_path(db_path: str | Path) -> Path:
    path = paths.jobs_dir(db_path) / f"{Path(db_path).name}.app.sock"
    if len(os.fsencode(str(path))) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(str(Path(db_path).resolve()))).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"reset-studio-{os.getuid()}" / f"{digest}.sock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, but not ours to talk to
        return True
    return True


def find_app(db_path: str | Path) -> dict[str, Any] | None:
    """The app serving ``db_path``: its ``app.json`` if that process is alive, else None.

    A file left by a killed app (dead pid, or no socket) counts as no app.
    """
    try:
        info = json.loads(_app_file(db_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _alive(int(info.get("pid", 0))):
        return None
    if not Path(info.get("socket", "")).exists():
        return None
    return info


# ----------------------------------------------------------------- thread-local proxies


class _ThreadLocalStream:
    """``sys.stdout``/``sys.stderr`` for a process whose threads may each print elsewhere.

    A thread that set a stream (:func:`_routed`) writes there; every other thread writes
    to the stream that was in place before, so the app's own output is untouched.
    """

    def __init__(self, name: str, default):
        self._name = name
        self._default = default

    def _target(self):
        return getattr(_local, self._name, None) or self._default

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, attr: str):
        return getattr(self._target(), attr)


class _ThreadLocalEnviron(MutableMapping):
    """``os.environ`` with a per-thread view: a served command sees its caller's keys.

    Threads without a view read and write the real environment. A view holds the
    app's environment less every key-like variable, plus the caller's (see
    :func:`_request_env`), so a command never uses a key its caller did not hold.
    """

    def __init__(self, base):
        self._base = base

    def _env(self):
        view = getattr(_local, "environ", None)
        return self._base if view is None else view

    def __getitem__(self, key):
        return self._env()[key]

    def __setitem__(self, key, value):
        self._env()[key] = value

    def __delitem__(self, key):
        del self._env()[key]

    def __iter__(self):
        return iter(list(self._env()))

    def __len__(self):
        return len(self._env())

    def copy(self) -> dict[str, str]:
        return dict(self._env())


_install_lock = threading.Lock()


def _install_proxies() -> None:
    """Put the thread-local proxies in place once per process (idempotent)."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            if not isinstance(getattr(sys, name), _ThreadLocalStream):
                setattr(sys, name, _ThreadLocalStream(name, getattr(sys, name)))
        if not isinstance(os.environ, _ThreadLocalEnviron):
            # Replaced, not cleared: every thread without a view reads the real one.
            os.environ = _ThreadLocalEnviron(os.environ)  # noqa: B003


@contextlib.contextmanager
def _routed(stdout, stderr, environ: dict[str, str]) -> Iterator[None]:
    _install_proxies()
    _local.stdout, _local.stderr, _local.environ = stdout, stderr, environ
    try:
        yield
    finally:
        _local.stdout = _local.stderr = _local.environ = None


def _is_key_like(name: str) -> bool:
    """A variable a command may take from its caller (and never from the app)."""
    import fnmatch

    from reset_core.deployment import BASE_URL_ENVS, Deployment

    if name.startswith("RESET_STUDIO_"):
        return True
    if any(fnmatch.fnmatchcase(name, p) for p in BASE_URL_ENVS):
        return True
    try:
        return Deployment.current().key_env_allowed(name)
    except ValueError:  # malformed deployment settings: the command will say so
        return False


def request_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The variables the CLI sends with a command: key names the deployment allows,
    base URL variables and ``RESET_STUDIO_*``; nothing else of its environment.

    >>> sorted(request_env({"OPENAI_API_KEY": "sk-1", "HOME": "/root", "RESET_STUDIO_X": "1"}))
    ['OPENAI_API_KEY', 'RESET_STUDIO_X']
    """
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in env.items() if _is_key_like(k)}


def _request_env(sent: dict[str, str]) -> dict[str, str]:
    """The environment a served command sees: the app's, key-like names replaced by the caller's."""
    base = os.environ._base if isinstance(os.environ, _ThreadLocalEnviron) else os.environ
    own = {k: v for k, v in base.items() if not _is_key_like(k)}
    caller = {k: str(v) for k, v in sent.items() if _is_key_like(k) and k != "RESET_STUDIO_DB"}
    return {**own, **caller}


def absolutize(args, cwd: str | Path) -> None:
    """Resolve the parsed arguments' relative paths against the caller's directory.

    The app process has its own working directory and a thread cannot change it, so
    ``reset-studio import data.jsonl`` run in ``~/work`` must read ``~/work/data.jsonl``.
    Output arguments (``--out``, ``--db``) are resolved always; any other string that
    names an existing file or folder under ``cwd`` is resolved too (a local model
    folder, a grid file); everything else (names, ids, hub models) stays as typed.

    >>> import argparse, tempfile
    >>> d = tempfile.mkdtemp(); _ = open(os.path.join(d, "x.jsonl"), "w").close()
    >>> a = argparse.Namespace(file="x.jsonl", out="exports", name="x", model="org/m")
    >>> absolutize(a, d)
    >>> a.file == os.path.join(d, "x.jsonl"), a.out == os.path.join(d, "exports"), a.name, a.model
    (True, True, 'x', 'org/m')
    """
    cwd = Path(cwd)
    for dest, value in vars(args).items():
        if not isinstance(value, str) or not value or os.path.isabs(value):
            continue
        candidate = cwd / os.path.expanduser(value)
        if dest in _OUTPUT_DESTS or candidate.exists():
            setattr(args, dest, str(candidate))


# ----------------------------------------------------------------------------- server


class _Reply:
    """Where a served command's output goes: the caller's socket while it listens, and
    always a log file (so a killed caller loses nothing it would have read)."""

    def __init__(self, conn: socket.socket, log_path: Path, header: str):
        self._conn = conn
        self._lock = threading.Lock()
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._log.write(header)
        self._log.flush()
        self.caller_gone = False

    def send(self, message: dict) -> None:
        with self._lock:
            if self.caller_gone:
                return
            try:
                self._conn.sendall((json.dumps(message) + "\n").encode())
            except OSError:
                self.caller_gone = True  # the CLI was killed: the command goes on

    def stream(self, kind: str) -> _ReplyStream:
        return _ReplyStream(self, kind)

    def write(self, kind: str, text: str) -> None:
        with self._lock:
            self._log.write(text)
            self._log.flush()
        self.send({kind: text})

    def close(self, line: str) -> None:
        with self._lock:
            self._log.write(line)
            self._log.close()


class _ReplyStream:
    def __init__(self, reply: _Reply, kind: str):
        self._reply, self._kind = reply, kind
        self.encoding = "utf-8"

    def write(self, text: str) -> int:
        if text:
            self._reply.write(self._kind, text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class AppServer:
    """The socket an app process serves CLI commands on, for one database.

    Use :func:`serve`; :meth:`close` stops it and removes its files.
    """

    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path).resolve()
        self.app_file = _app_file(self.db_path)
        self.socket_path = _socket_path(self.db_path)
        self._sock: socket.socket | None = None
        self._closed = threading.Event()

    def start(self) -> AppServer:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a killed app's; this process holds the database now
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.socket_path))
        # Before listen(): until then a connect is refused, so no other user gets in
        # between bind() and chmod().
        os.chmod(self.socket_path, 0o600)
        sock.listen(16)
        self._sock = sock
        from reset_core.atomic import write_json_atomic

        write_json_atomic(
            self.app_file,
            {
                "pid": os.getpid(),
                "socket": str(self.socket_path),
                "db": str(self.db_path),
                "started_at": time.time(),
            },
        )
        threading.Thread(target=self._accept, name="reset-studio-handoff", daemon=True).start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.app_file.read_text()).get("pid") == os.getpid():
                self.app_file.unlink()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(
                target=self._handle, args=(conn,), name="reset-studio-cli", daemon=True
            ).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            # The socket is 0600, but root may connect to anything: refuse other users.
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            peer_pid, peer_uid, _ = (int.from_bytes(creds[i : i + 4], "little") for i in (0, 4, 8))
            if peer_uid != os.getuid():
                return
            try:
                request = json.loads(conn.makefile("rb").readline())
                if "sync" in request:
                    self._sync(conn, str(request["sync"]))
                    return
                argv = [str(a) for a in request["argv"]]
                cwd = str(request["cwd"])
                env = dict(request.get("env") or {})
            except (ValueError, KeyError, TypeError):
                return
            stamp = time.strftime("%Y%m%d-%H%M%S")
            log_path = paths.jobs_dir(self.db_path) / "cli" / f"{stamp}-{peer_pid}.log"
            header = f"$ reset-studio {' '.join(argv)}  (cwd {cwd}, caller pid {peer_pid})\n"
            reply = _Reply(conn, log_path, header)
            reply.send({"pid": os.getpid(), "log": str(log_path)})
            code = run_served(argv, cwd, env, reply.stream("out"), reply.stream("err"))
            reply.close(f"\nexit status {code}\n")
            reply.send({"exit": code})

    def _sync(self, conn: socket.socket, job_id: str) -> None:
        """A CLI's worker finished while the app held the database: ingest it here."""
        from reset_core.store import connect

        con = connect(self.db_path)  # this process's instance: the app's own database
        try:
            reply = {"progress": sync_with(con, job_id)}
        except Exception as e:  # noqa: BLE001 - the caller reports it
            reply = {"error": f"{type(e).__name__}: {e}"}
        finally:
            con.close()
        with contextlib.suppress(OSError):
            conn.sendall((json.dumps(reply, default=str) + "\n").encode())


def run_served(argv: list[str], cwd: str, env: dict[str, str], stdout, stderr) -> int:
    """Run one ``reset-studio`` command in this (the app's) process; return its status.

    ``argv`` as typed (``--db`` included), ``cwd`` the caller's directory, ``env`` the
    variables it sent (:func:`request_env`). Output goes to ``stdout``/``stderr`` of
    this thread only.
    """
    from reset_core import cli

    with _routed(stdout, stderr, _request_env(env)):
        _local.serving = True
        try:
            try:
                args = cli.build_parser().parse_args(argv)
            except SystemExit as e:  # --help, or a rejected option (argparse printed why)
                return e.code if isinstance(e.code, int) else 2
            absolutize(args, cwd)
            return cli.main(argv, args=args)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - the caller must see it, the app must live on
            from reset_core.deployment import redact

            print(redact(traceback.format_exc()), file=sys.stderr)
            return 1
        finally:
            _local.serving = False


def serving() -> bool:
    """Whether this thread runs a command the app serves (it must not hand it on again)."""
    return bool(getattr(_local, "serving", False))


_servers: dict[Path, AppServer] = {}
_servers_lock = threading.Lock()


def serve(db_path: str | Path) -> AppServer | None:
    """Serve CLI commands on ``db_path`` from this process (once per database).

    Call it right after opening the database for good (the app's connection). Returns
    None, and the CLI keeps saying "busy", where the platform has no Unix sockets.

    >>> import tempfile
    >>> db = Path(tempfile.mkdtemp()) / "s.duckdb"
    >>> serve(db) is serve(db)
    True
    >>> serve(db).close()
    """
    if not hasattr(socket, "AF_UNIX"):
        return None
    key = Path(db_path).resolve()
    with _servers_lock:
        if not _servers:
            # An app that exits (Ctrl-C, SIGTERM) removes its files; a killed one's are
            # recognised by their dead pid (find_app).
            atexit.register(_close_all)
        server = _servers.get(key)
        if server is None or server._closed.is_set():
            server = _servers[key] = AppServer(key).start()
        return server


def _close_all() -> None:
    for server in list(_servers.values()):
        server.close()


# ----------------------------------------------------------------------------- client


def delegate(argv: list[str], db_path: str | Path) -> int | None:
    """Hand a command to the app serving ``db_path``; return its exit status.

    None when no live app serves it (the caller then reports the database busy).
    The command's output is printed here as it comes. If the app dies before the
    command ends, the jobs it started are named with how to resume them: status 1.
    """
    if serving():
        return None
    info = find_app(db_path)
    # This very process (e.g. a test driving the app in-process) shares its own
    # database instance: no hand-over needed.
    if info is None or info["pid"] == os.getpid():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(info["socket"])
    except OSError:
        sock.close()
        return None
    request = {"argv": list(argv), "cwd": os.getcwd(), "env": request_env()}
    log = None
    try:
        with sock, sock.makefile("rb") as replies:
            sock.sendall((json.dumps(request) + "\n").encode())
            for line in replies:
                message = json.loads(line)
                if "pid" in message:
                    log = message.get("log")
                    print(f"(run by the app, pid {message['pid']})", file=sys.stderr, flush=True)
                elif "out" in message:
                    sys.stdout.write(message["out"])
                    sys.stdout.flush()
                elif "err" in message:
                    sys.stderr.write(message["err"])
                    sys.stderr.flush()
                elif "exit" in message:
                    return int(message["exit"])
    except KeyboardInterrupt:
        print(
            f"\nthe app (pid {info['pid']}) goes on with the command"
            + (f"; its output: {log}" if log else ""),
            file=sys.stderr,
        )
        return 130
    except (OSError, ValueError):
        pass  # the app died mid-reply
    print(
        f"\nerror: the app (pid {info['pid']}) stopped before the command finished.",
        file=sys.stderr,
    )
    _resume_hint(db_path)
    return 1


def _resume_hint(db_path: str | Path) -> None:
    """Say which jobs the app left unfinished and how to resume them.

    Every job still marked queued or running once the app is gone was cut off by it
    (this command's, or one the app itself had started).
    """
    from reset_core.store import DatabaseBusy, connect

    con = None
    for _ in range(20):  # the dead app's lock goes with it, within moments
        try:
            con = connect(db_path)
            break
        except DatabaseBusy:
            time.sleep(0.25)
    if con is None:
        print("Its saved work is kept; rerun the command to finish it.", file=sys.stderr)
        return
    try:
        rows = con.execute(
            "SELECT job_id, kind FROM jobs WHERE status IN ('queued', 'running') "
            "ORDER BY created_at"
        ).fetchall()
    finally:
        con.close()
    hints = {
        "sample": "reset-studio sample --resume {}",
        "train": "reset-studio train --resume {}",
        # An evaluation resumes by its evaluation id: `reset-studio evaluate --list`.
        "evaluate": "reset-studio evaluate --list, then --resume its evaluation",
    }
    print("Saved work is kept (shards are ingested by key on resume).", file=sys.stderr)
    for job_id, kind in rows:
        how = hints.get(kind, "reset-studio jobs resume {}").format(job_id)
        print(f"  job {job_id} ({kind}): {how}", file=sys.stderr)
    if not rows:
        print("No job was left unfinished; rerun the command.", file=sys.stderr)


# ------------------------------------------------- holding the database only while needed


def sync_with(con, job_id: str) -> dict[str, Any]:
    """Sync job ``job_id`` on the open connection ``con`` with its kind's sync."""
    from reset_core import jobs
    from reset_core.store import one

    row = one(con, "SELECT kind FROM jobs WHERE job_id = ?", [job_id])
    if row is None:
        raise KeyError(f"no job {job_id!r}")
    return jobs.stage_sync(row[0])(con, job_id)


def reopen(db_path: str | Path, wait_s: float = 60.0):
    """Open ``db_path`` again after a release; None when the app holds it now.

    Another command holding it briefly (no app) is waited for, up to ``wait_s``;
    after that :class:`~reset_core.store.DatabaseBusy` is raised as usual.
    """
    from reset_core.store import DatabaseBusy, connect

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return connect(db_path)
        except DatabaseBusy:
            if find_app(db_path) is not None and not serving():
                return None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sync(db_path: str | Path, job_id: str, wait_s: float = 60.0) -> dict[str, Any]:
    """Ingest a job's shards and return its progress, whoever holds the database now.

    Opens the database for the sync alone; if the app has opened it meanwhile, the
    app ingests the shards (the app stays the only writer) and this returns its answer.

    >>> import tempfile
    >>> from reset_core.store import connect
    >>> db = Path(tempfile.mkdtemp()) / "y.duckdb"
    >>> connect(db).close()
    >>> sync(db, "nope")
    Traceback (most recent call last):
    ...
    KeyError: "no job 'nope'"
    """
    con = reopen(db_path, wait_s)
    if con is not None:
        try:
            return sync_with(con, job_id)
        finally:
            con.close()
    info = find_app(db_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(info["socket"])
        sock.sendall((json.dumps({"sync": job_id}) + "\n").encode())
        with sock.makefile("rb") as replies:
            reply = json.loads(replies.readline() or b"{}")
    if "progress" not in reply:
        raise RuntimeError(
            f"the app (pid {info['pid']}) could not sync job {job_id}: "
            + reply.get("error", "it stopped")
        )
    return reply["progress"]


def run_released(db_path: str | Path, con, job_id: str) -> tuple[int, dict[str, Any]]:
    """Run a job's worker in this process with the database closed; return (exit code, progress).

    The headless path (:func:`reset_core.jobs.run_here`) without holding the database
    while the worker runs (minutes to hours): ``con`` is closed first, so the app (or
    another command) may open the file meanwhile. The shards are then ingested by
    :func:`sync`, by this process or by the app if it holds the database by then.
    Reopen with :func:`reopen` for anything more.
    """
    from reset_core import jobs

    job_dir = jobs.work_dir(con, job_id)
    jobs.mark_running(con, job_id)
    con.close()
    code = jobs.run_worker(job_dir)
    return code, sync(db_path, job_id)


def follow(
    db_path: str | Path,
    job_id: str,
    on_progress=None,
    poll_s: float = 1.0,
    sync_every_s: float = 10.0,
    on_interrupt=None,
) -> dict[str, Any]:
    """Follow a launched job's worker to its end without holding the database; return its progress.

    The progress line comes from the job's ``progress.json`` every ``poll_s``; the
    database is opened only to ingest shards (every ``sync_every_s``, and at the end),
    through :func:`sync`. ``on_progress(progress)`` is called on each poll. Ctrl-C
    asks the worker to stop after its current batch (``on_interrupt()`` is called
    first, to say so), waits for it and returns its progress.
    """
    from reset_core import jobs

    job_dir = paths.jobs_dir(db_path) / job_id
    last_sync = time.monotonic()
    progress = sync(db_path, job_id)
    try:
        while progress.get("status") in jobs.ACTIVE:
            if on_progress:
                on_progress(progress)
            time.sleep(poll_s)
            if time.monotonic() - last_sync >= sync_every_s:
                progress, last_sync = sync(db_path, job_id), time.monotonic()
            else:
                seen = jobs.read_json(job_dir / "progress.json")
                progress = {**progress, **seen} if seen else progress
                if progress.get("status") not in jobs.ACTIVE:
                    progress = sync(db_path, job_id)  # ended: ingest its last shards
    except KeyboardInterrupt:
        if on_interrupt:
            on_interrupt()
        # The worker stops on the cancel file after its current batch (no database needed).
        (job_dir / "cancel").touch()
        while (progress := sync(db_path, job_id)).get("status") in jobs.ACTIVE:
            time.sleep(0.5)
    return progress
