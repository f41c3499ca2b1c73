"""Judging through the OpenAI Batch API: request files, submit, poll, ingest.

The Batch API takes a JSONL file of requests and answers them within 24 hours at half
the online price (:data:`BATCH_DISCOUNT`). A batch judging run is a job (kind
``judge_batch``) like any other: the app plans its items, :func:`run_batch_job` runs
in the usual worker, and the job list, cancel and resume work on it. Its folder::

    jobs/<job_id>/
        input.parquet          the planned items (as for online judging)
        requests/r0-0000.jsonl the request files, split within the API's limits
        requests/index.parquet custom id -> input rows, cache key, shown order
        batches.json           per file: uploaded file id, batch id, status, counts
        outputs/               the downloaded output and error files
        shards/                the judgments (the same columns as online judging)

The requests are exactly those the online judge sends (:meth:`LLMJudge.requests` and
:meth:`LLMJudge.payload`: messages, model, response_format, max_tokens), one per line
with a ``custom_id`` derived from the judge, aspect and candidates
(:func:`custom_id`); answers are parsed by the same code as online answers, so a parse
failure is a NULL score with its error. Requests already answered in the judge cache
are not sent; answers that parse go into the cache.

Restarts: every id is written to ``batches.json`` as soon as the API returns it, and a
worker that was killed between an upload (or a create) and that write finds its file
(or batch) again by name (metadata) before making another. A rerun never uploads or
creates what exists; it polls what is running.

Each submitted batch also has a row of its own in ``jobs`` (kind ``batch``, id
``<job_id>.<file>``: :func:`record_batch_rows`, which the job's sync calls), so
``reset-studio jobs list`` shows every batch with its status and request counts. Cancel
and resume act on the job that owns the batch: it holds the requests, the cache and the
polling, and a resume submits what no batch answered.

Expired, cancelled and failed batches: what finished is ingested (an expired batch's
output file holds the requests it completed). The job then ends **stopped** (an
expired or cancelled batch) or **failed** (a failed batch) with a note saying how many
requests did not run; resuming the job submits exactly those in a new batch. Nothing
is resubmitted behind the user's back: a batch that expired once may well expire again,
and each new batch is another day of waiting the user should decide on.

>>> plan_parts([10, 10, 10], max_requests=2, max_bytes=1000)
[(0, 2), (2, 3)]
>>> plan_parts([600, 600, 100], max_requests=10, max_bytes=1000)
[(0, 1), (1, 3)]
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from reset_core.atomic import atomic_path, write_json_atomic
from reset_core.judging.base import judgment_id, judgments_table, stable_hash
from reset_core.judging.engine import CallResult, Ledger
from reset_core.judging.llm_judge import LLMJudge, Request

ENTRY = "reset_core.judging.batch:run_batch_job"
KIND = "judge_batch"

#: The Batch API's limits on one input file (OpenAI API reference, "Create batch":
#: "The file can contain up to 50,000 requests, and can be up to 200 MB in size").
#: 200 MB is taken as 200 * 10**6 bytes, the smaller reading of "MB".
MAX_REQUESTS_PER_FILE = 50_000
MAX_BYTES_PER_FILE = 200 * 1000 * 1000

#: The Batch API's price cut against the same requests sent online: 50% of both input
#: and output tokens (OpenAI pricing and Batch API guide, "50% cost discount compared
#: to synchronous APIs"; checked 2026-12-02). The ledger and the estimates of a batch
#: run charge ``1 - BATCH_DISCOUNT`` times the judge's prices.
BATCH_DISCOUNT = 0.5
#: The only completion window the Batch API offers: a batch is answered within it or
#: expires. All a launch can promise about a batch's duration.
COMPLETION_WINDOW = "24h"
COMPLETION_WINDOW_S = 24 * 3600
#: Statuses after which a batch changes no more.
TERMINAL = ("completed", "expired", "failed", "cancelled")
#: The ``jobs`` kind of one submitted batch's row (its job is a :data:`KIND` job).
ROW_KIND = "batch"
#: A batch's status on the provider -> its row's status. An expired or cancelled batch
#: stops resumable: its job submits the requests it did not run.
ROW_STATUS = {
    "validating": "running",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "done",
    "failed": "failed",
    "expired": "stopped",
    "cancelled": "stopped",
}
#: Input items rendered into requests at a time (whole examples): bounds the prompts
#: held in memory while request files are written.
RENDER_CHUNK = 2000
#: Per-request errors that mean "did not run" (the batch ended first), not a failure
#: of that request: these requests are sent again by a resume.
NOT_RUN = ("batch_expired", "batch_cancelled")


class BatchConfig(BaseModel):
    """How a batch judging run follows its batches (CLI flags and the Judge page)."""

    poll_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="seconds between two status checks of the submitted batches (the "
        "Batch API answers within 24 h; checking more often than a minute gains nothing)",
    )


def batch_prices(config) -> Ledger:
    """A ledger at Batch API prices (:data:`BATCH_DISCOUNT` off the judge's prices).

    >>> from reset_core.judging.llm_judge import LLMJudgeConfig
    >>> batch_prices(LLMJudgeConfig(price_input_per_mtok=0.15, price_output_per_mtok=0.6)).cost(
    ...     1_000_000, 1_000_000)
    0.375
    """
    f = 1.0 - BATCH_DISCOUNT
    return Ledger(
        config.price_input_per_mtok * f, config.price_output_per_mtok * f, config.budget_usd
    )


def custom_id(judge_id: str, req: Request) -> str:
    """A request's ``custom_id``: judge, aspect and candidates (in shown order), hashed.

    Deterministic, so the same request in a rerun or another file has the same id, and
    unique per request of a run (two candidates with equal text still differ by id).

    >>> from reset_core.judging.base import JudgeItem
    >>> from reset_core.judging.rubrics import default_rubric
    >>> it = JudgeItem("e", "c1", "task", "Q", None, None, "instruction", "A")
    >>> custom_id("llm:m:1", Request([it], default_rubric("task"), [], "k"))
    'task-76387c5117826fd861451c41'
    """
    return f"{req.items[0].aspect}-" + stable_hash(
        judge_id, req.items[0].aspect, [it.candidate_id for it in req.items], size=12
    )


def request_line(judge: LLMJudge, req: Request, mode: str) -> bytes:
    """One line of a request file: the online judge's payload in the Batch API's envelope."""
    line = {
        "custom_id": custom_id(judge.judge_id, req),
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": judge.payload(req, mode),
    }
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"


def _new_part(n: int, size: int, line: int, max_requests: int, max_bytes: int) -> bool:
    """Whether a line of ``line`` bytes starts a new file after ``n`` lines of ``size``."""
    if line > max_bytes:
        raise ValueError(
            f"one request is {line:,} bytes, over the Batch API's {max_bytes:,} bytes per file"
        )
    return n > 0 and (n + 1 > max_requests or size + line > max_bytes)


def plan_parts(
    sizes: Iterable[int],
    max_requests: int = MAX_REQUESTS_PER_FILE,
    max_bytes: int = MAX_BYTES_PER_FILE,
) -> list[tuple[int, int]]:
    """Split lines of these byte sizes into files within the limits: ``(start, end)`` each.

    Lines keep their order; a file is closed when the next line would pass either limit.
    """
    parts, start, n, size = [], 0, 0, 0
    for i, line in enumerate(sizes):
        if _new_part(n, size, line, max_requests, max_bytes):
            parts.append((start, i))
            start, n, size = i, 0, 0
        n, size = n + 1, size + line
    if n:
        parts.append((start, start + n))
    return parts


def write_request_files(
    lines: Iterable[bytes],
    folder: Path,
    prefix: str,
    max_requests: int = MAX_REQUESTS_PER_FILE,
    max_bytes: int = MAX_BYTES_PER_FILE,
) -> list[dict[str, Any]]:
    """Write JSONL lines into ``folder/<prefix>-0000.jsonl``, ... within the limits.

    Streams (one file open at a time, each written under a temporary name and renamed);
    returns ``{"name", "n_requests", "bytes"}`` per file, split as :func:`plan_parts`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    it = iter(lines)
    pending = next(it, None)
    while pending is not None:
        name, n, size = f"{prefix}-{len(files):04d}.jsonl", 0, 0
        # A line over the byte limit raises inside the block: its file is removed.
        with atomic_path(folder / name) as tmp, tmp.open("wb") as out:
            while pending is not None and not _new_part(
                n, size, len(pending), max_requests, max_bytes
            ):
                out.write(pending)
                n, size = n + 1, size + len(pending)
                pending = next(it, None)
        files.append({"name": name, "n_requests": n, "bytes": size})
    return files


# --------------------------------------------------------------------------- worker


class _State:
    """``batches.json``: the job's files and batches, saved after every change."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"parts": [], "rounds": 0}
        with contextlib.suppress(FileNotFoundError):
            self.data = json.loads(path.read_text())

    @property
    def parts(self) -> list[dict[str, Any]]:
        return self.data["parts"]

    def save(self) -> None:
        write_json_atomic(self.path, self.data, indent=1)


def _transient() -> tuple[type[Exception], ...]:
    import openai

    return (
        openai.APIConnectionError,  # includes timeouts
        openai.RateLimitError,
        openai.InternalServerError,
    )


def _client(judge: LLMJudge):
    import openai

    ep = judge.connection  # the deployment's checks on key variable and host, as online
    cfg = judge.config
    return openai.OpenAI(
        base_url=ep.base_url,
        api_key=ep.api_key or "none",
        max_retries=cfg.max_retries,
        timeout=max(cfg.timeout_s, 600.0),  # an upload of up to 200 MB takes a while
    )


def _batch_judge(spec: dict, cache_path: str | None) -> LLMJudge:
    from reset_core.judging.worker import _config, _rubrics

    config = _config(spec)
    return LLMJudge(config, _rubrics(spec), cache=cache_path, ledger=batch_prices(config))


def run_batch_job(ctx) -> None:
    """Worker entry: build the request files, upload, create, poll, ingest (resumable)."""
    from reset_core.jobs import JobStopped

    run = _BatchRun(ctx)
    run.prepare()
    run.submit()
    if not run.poll():
        return  # cancelled: the remote batches were asked to cancel too
    problem = run.outcome()
    if problem is not None:
        failed, note = problem
        if failed:
            raise RuntimeError(note)
        raise JobStopped(note)


class _BatchRun:
    """One attempt of a batch job: what :func:`run_batch_job` does, step by step."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.job_id = ctx.job_dir.name
        cfg = ctx.config
        self.poll_s = float((cfg.get("batch") or {}).get("poll_s", BatchConfig().poll_s))
        self.max_requests = int(cfg.get("max_requests_per_file", MAX_REQUESTS_PER_FILE))
        self.max_bytes = int(cfg.get("max_bytes_per_file", MAX_BYTES_PER_FILE))
        self.judge = _batch_judge(cfg["judges"][0], cfg.get("cache_path"))
        self.state = _State(ctx.job_dir / "batches.json")
        self.left_out = 0  # requests the budget cap kept out of this attempt's new round

    # ---------------------------------------------------------------- plan
    def prepare(self) -> None:
        """Index the job's requests by custom id; start a round for what no batch covers.

        The input is rendered chunk by chunk (an example's items always in one chunk, so
        the requests are those of the whole list): what stays in memory is a small
        index per request (its input rows, cache key, shown order), not its prompt.
        """
        ctx, judge = self.ctx, self.judge
        self.table = ctx.read_input()
        self.jids = [
            judgment_id(self.job_id, j, c, a)
            for j, c, a in zip(
                self.table["judge_id"].to_pylist(),
                self.table["candidate_id"].to_pylist(),
                self.table["aspect"].to_pylist(),
                strict=True,
            )
        ]
        self.done = ctx.done_keys("judgment_id")
        ctx.start(len(self.jids), sum(1 for j in self.jids if j in self.done))
        judge.ledger.cost_usd = _spent(ctx.shard_dir)  # a resume counts what was spent
        self._report()
        #: custom id -> (input rows in shown order, cache key, shown order)
        self.index: dict[str, tuple[tuple[int, ...], str, list[int] | None]] = {}
        # A new round: at the first attempt, and at a resume once every earlier batch is
        # over (expired, cancelled, failed, or a budget cap kept requests out).
        if not self.state.parts or all(p.get("ingested") for p in self.state.parts):
            self._new_round()
            self._save_index()
        elif not self._load_index():
            for _ in self._rendered():  # the index alone: every request is in a batch
                pass
            self._save_index()

    def _index_path(self) -> Path:
        return self.ctx.job_dir / "requests" / "index.parquet"

    def _save_index(self) -> None:
        """Keep the index beside the request files: a restart mid-poll reads it back in
        seconds instead of rendering every prompt again."""
        import pyarrow as pa

        path = self._index_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        t = pa.table(
            {
                "custom_id": list(self.index),
                "rows": [list(v[0]) for v in self.index.values()],
                "key": [v[1] for v in self.index.values()],
                "shown": [v[2] for v in self.index.values()],
            },
            schema=pa.schema(
                [
                    ("custom_id", pa.string()),
                    ("rows", pa.list_(pa.int64())),
                    ("key", pa.string()),
                    ("shown", pa.list_(pa.int32())),
                ]
            ),
        )
        with atomic_path(path) as tmp:
            pq.write_table(t, tmp)

    def _load_index(self) -> bool:
        path = self._index_path()
        if not path.exists():
            return False
        cols = pq.read_table(path).to_pydict()
        self.index = {
            cid: (tuple(rows), key, shown)
            for cid, rows, key, shown in zip(
                cols["custom_id"], cols["rows"], cols["key"], cols["shown"], strict=True
            )
        }
        return True

    def _rendered(self) -> Iterator[tuple[str, Request]]:
        """Every request of the input, chunk by chunk, indexed as it goes."""
        from reset_core.judging.worker import items_from_table

        examples = self.table["example_id"].to_pylist()
        start, n = 0, len(examples)
        while start < n:
            end = min(start + RENDER_CHUNK, n)
            while end < n and examples[end] == examples[end - 1]:
                end += 1  # the input is ordered by example: keep each one whole
            items = items_from_table(self.table.slice(start, end - start))
            row = {id(it): start + i for i, it in enumerate(items)}
            for r in self.judge.requests(items):
                cid = custom_id(self.judge.judge_id, r)
                self.index[cid] = (tuple(row[id(it)] for it in r.items), r.key, r.shown)
                yield cid, r
            start = end

    def _missing(self, rows: tuple[int, ...]) -> bool:
        return not all(self.jids[i] in self.done for i in rows)

    def missing(self) -> list[str]:
        """Custom ids of requests with an item that has no judgment in this job yet."""
        return [cid for cid, (rows, _, _) in self.index.items() if self._missing(rows)]

    def _new_round(self) -> None:
        ctx, judge = self.ctx, self.judge
        judge._load_mode()  # the output mode this endpoint took before (judge cache)
        mode = judge.output_mode
        self.left_out = 0

        def lines() -> Iterator[bytes]:
            chunk: list[tuple[str, Request]] = []
            for cid, r in self._rendered():
                if self._missing(self.index[cid][0]):
                    chunk.append((cid, r))
                if len(chunk) >= 1000:
                    yield from send(chunk)
                    chunk = []
            yield from send(chunk)

        def send(todo: list[tuple[str, Request]]) -> Iterator[bytes]:
            hits = judge.cache.get_many([r.key for _, r in todo]) if judge.cache else {}
            if hits:  # answered before (online or in another batch): not sent again
                js = []
                for _, r in todo:
                    if r.key in hits:
                        judge.ledger.cache_hits += 1
                        body = hits[r.key]
                        res = CallResult("ok", body=body, cached=True)
                        js += judge._from_body(r, res, body.get("_output_mode"))
                self._write(js)
            for _, r in todo:
                if r.key in hits:
                    continue
                # The budget cap, as online: a request whose worst case would pass it
                # stays out (the job then stops, resumable with a higher cap).
                if judge.ledger.reserve(judge._worst_case(r)):
                    yield request_line(judge, r, mode)
                else:
                    self.left_out += 1

        n_round = self.state.data["rounds"]
        files = write_request_files(
            lines(), ctx.job_dir / "requests", f"r{n_round}", self.max_requests, self.max_bytes
        )
        if not files:
            return
        for f in files:
            f.update(round=n_round, output_mode=mode, file_id=None, batch_id=None)
            f.update(status=None, ingested=False)
        self.state.parts.extend(files)
        self.state.data["rounds"] = n_round + 1
        self.state.save()

    # ---------------------------------------------------------------- submit
    def submit(self) -> None:
        """Upload each file and create its batch, unless that happened already."""
        client = self.client = _client(self.judge)
        for p in self.state.parts:
            if p.get("ingested") or p.get("batch_id"):
                continue
            if self.ctx.cancelled():
                return  # nothing more is sent; a resume submits the rest
            self.ctx.phase(f"submitting {p['name']}")
            if not p.get("file_id"):
                p["file_id"] = self._find_file(p)
                if p["file_id"] is None:
                    p["uploading_at"] = time.time()
                    self.state.save()  # before the upload: a rerun then looks for it first
                    path = self.ctx.job_dir / "requests" / p["name"]
                    with path.open("rb") as fh:
                        f = client.files.create(file=(self._remote_name(p), fh), purpose="batch")
                    p["file_id"] = f.id
                self.state.save()
            p["batch_id"] = self._find_batch(p)
            if p["batch_id"] is None:
                p["creating_at"] = time.time()
                self.state.save()
                b = client.batches.create(
                    input_file_id=p["file_id"],
                    endpoint="/v1/chat/completions",
                    completion_window=COMPLETION_WINDOW,
                    metadata={"reset_studio_job": self.job_id, "part": p["name"]},
                )
                p["batch_id"], p["status"] = b.id, b.status
            self.state.save()

    def _remote_name(self, p: dict) -> str:
        return f"{self.job_id}-{p['name']}"

    def _find_file(self, p: dict) -> str | None:
        """The file an earlier attempt uploaded but did not record (killed in between)."""
        since = p.get("uploading_at")
        if since is None:
            return None
        for f in self.client.files.list(purpose="batch", order="desc"):
            if f.created_at < since - 60:
                break  # newest first: older files cannot be ours
            if f.filename == self._remote_name(p):
                return f.id
        return None

    def _find_batch(self, p: dict) -> str | None:
        """The batch an earlier attempt created but did not record (killed in between)."""
        since = p.get("creating_at")
        if since is None:
            return None
        for b in self.client.batches.list():
            if b.created_at < since - 60:
                break
            meta = b.metadata or {}
            if meta.get("reset_studio_job") == self.job_id and meta.get("part") == p["name"]:
                return b.id
        return None

    # ---------------------------------------------------------------- poll
    def poll(self) -> bool:
        """Follow the batches until every one is over and ingested; False = cancelled."""
        ctx = self.ctx
        _TRANSIENT = _transient()  # noqa: N806 - a constant of this loop
        ctx.phase("waiting for the Batch API", clock=True)
        while True:
            live = [p for p in self.state.parts if not p.get("ingested")]
            if not live:
                return True
            if ctx.cancelled():
                self._cancel(live)
                return False
            for p in live:
                try:
                    b = self.client.batches.retrieve(p["batch_id"])
                except _TRANSIENT as e:
                    # A day of polling meets an outage or two: the batch runs on at the
                    # provider, so note it and ask again at the next poll.
                    p["last_error"] = f"{type(e).__name__}: {e}"
                    continue
                p.pop("last_error", None)
                counts = b.request_counts
                p.update(
                    status=b.status,
                    output_file_id=b.output_file_id,
                    error_file_id=b.error_file_id,
                    request_counts=counts.model_dump() if counts is not None else None,
                    errors=[e.model_dump() for e in (b.errors.data or [])] if b.errors else None,
                )
                if b.status in TERMINAL:
                    self._ingest(p)
                    p["ingested"] = True
                self.state.save()
            live = [p for p in self.state.parts if not p.get("ingested")]
            finished = sum((p.get("request_counts") or {}).get("completed", 0) for p in live)
            ctx.partial(
                finished,
                "; ".join(
                    f"{p['batch_id']} {p['status']} {(p.get('request_counts') or {}).get('completed', 0)}"
                    f"/{p['n_requests']}"
                    for p in live
                )
                or None,
            )
            self._report()
            if live:
                deadline = time.monotonic() + self.poll_s
                while time.monotonic() < deadline and not ctx.cancelled():
                    time.sleep(min(0.2, self.poll_s))

    def _cancel(self, live: list[dict]) -> None:
        for p in live:
            if p.get("batch_id") and p.get("status") not in TERMINAL:
                with contextlib.suppress(Exception):  # best effort: the job is stopping
                    b = self.client.batches.cancel(p["batch_id"])
                    p["status"] = b.status
        self.state.save()

    def _download(self, file_id: str | None, name: str) -> list[dict]:
        if not file_id:
            return []
        path = self.ctx.job_dir / "outputs" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            data = self.client.files.content(file_id).content
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
        return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

    def _ingest(self, p: dict) -> None:
        """Judgments from a finished batch's output and error files (each item once)."""
        from reset_core.judging.worker import items_from_table

        judge = self.judge
        mode = p.get("output_mode")
        records = self._download(p.get("output_file_id"), f"{p['batch_id']}.output.jsonl")
        records += self._download(p.get("error_file_id"), f"{p['batch_id']}.error.jsonl")
        # Not this job's, or ingested already (a rerun after a crash): skipped.
        records = [
            r
            for r in records
            if r.get("custom_id") in self.index and self._missing(self.index[r["custom_id"]][0])
        ]
        rows = sorted({i for r in records for i in self.index[r["custom_id"]][0]})
        if not rows:  # nothing of this job's in it (a failed batch has no files)
            return
        item_at = dict(zip(rows, items_from_table(self.table.take(rows)), strict=True))
        secrets = [judge.connection.api_key]
        js, cache = [], {}
        for rec in records:
            res = _result(rec, secrets)
            if res is None:
                continue  # did not run: the batch ended first; a resume sends it again
            req_rows, key, shown = self.index[rec["custom_id"]]
            items = [item_at[i] for i in req_rows]
            # The request as answered, without its prompt: parsing needs the items (in
            # shown order), the rubric and the cache key only.
            req = Request(items, judge.rubrics[items[0].aspect], [], key, shown)
            usage = (res.body or {}).get("usage") or {}
            judge.ledger.settle(
                0.0, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
            out = judge._from_body(req, res, mode)
            if out and all(j.status == "ok" for j in out) and res.body is not None:
                cache[key] = {**res.body, "_output_mode": mode}
            js += out
        self._write(js)
        if judge.cache is not None:
            judge.cache.put_many(cache)

    def _write(self, js: list) -> None:
        for i in range(0, len(js), 5000):
            chunk = js[i : i + 5000]
            self.ctx.write(judgments_table(chunk, self.job_id))
            self.done.update(
                judgment_id(self.job_id, j.judge_id, j.candidate_id, j.aspect) for j in chunk
            )
        self._report()

    def _report(self) -> None:
        from reset_core.judging.worker import endpoint_report

        judge = self.judge
        self.ctx.extra["ledger"] = {judge.judge_id: judge.ledger.summary()}
        self.ctx.extra["endpoints"] = {judge.judge_id: endpoint_report(judge)}
        self.ctx.extra["batches"] = [
            {
                k: p.get(k)
                for k in ("name", "batch_id", "status", "n_requests", "request_counts", "round")
            }
            for p in self.state.parts
        ]

    # ---------------------------------------------------------------- outcome
    def outcome(self) -> tuple[bool, str] | None:
        """None when every request is answered; else (failed?, the note for the job)."""
        self._report()
        self.ctx._report("running")
        missing = self.missing()
        if not missing and not self.left_out:
            return None
        last = self.state.data["rounds"] - 1
        ended = [p for p in self.state.parts if p.get("round") == last]
        failed = [p for p in ended if p.get("status") == "failed"]
        what = ", ".join(f"{p['batch_id']} {p.get('status')}" for p in ended) or "no batch"
        note = (
            f"{len(missing):,} of {len(self.index):,} requests have no answer ({what}); "
            "the finished ones are ingested. Resume the job to submit only those "
            f"{len(missing):,} in a new batch."
        )
        if self.left_out:
            note += (
                f" The budget cap of ${self.judge.ledger.budget_usd} kept {self.left_out:,} "
                "requests out: resume with a higher cap."
            )
        if failed:
            errors = "; ".join(
                f"{e.get('code')}: {e.get('message')}"
                for p in failed
                for e in p.get("errors") or []
            )
            return True, f"batch failed ({errors or 'no reason given'}): {note}"
        return False, note


def _result(rec: dict, secrets: list) -> CallResult | None:
    """One output/error line as the online engine's result; None = the request never ran."""
    from reset_core.deployment import redact

    resp, err = rec.get("response"), rec.get("error")
    if resp is None:
        if (err or {}).get("code") in NOT_RUN:
            return None
        message = f"{(err or {}).get('code')}: {(err or {}).get('message')}"
        return CallResult("http_error", error=redact(message, secrets), attempts=1)
    code, body = int(resp.get("status_code") or 0), resp.get("body")
    raw = redact(json.dumps(body), secrets)
    if code == 200:
        if not isinstance(body, dict):
            return CallResult("ok", body=None, raw=raw, error="non-JSON body", attempts=1)
        return CallResult("ok", body=body, raw=raw, attempts=1)
    message = ((body or {}).get("error") or {}).get("message") if isinstance(body, dict) else None
    status = "http_429" if code == 429 else "http_5xx" if code >= 500 else "http_error"
    return CallResult(
        status, error=redact(f"HTTP {code}: {message or raw}", secrets), raw=raw, attempts=1
    )


def _spent(shard_dir: Path) -> float:
    files = sorted(shard_dir.glob("*.parquet"))
    if not files:
        return 0.0
    return float(
        sum(v or 0.0 for v in pq.read_table(files, columns=["cost_usd"])["cost_usd"].to_pylist())
    )


def batch_summary(progress: dict[str, Any]) -> Iterator[str]:
    """One line per batch of a job's progress report (for the CLI and the Judge page).

    >>> list(batch_summary({"batches": [{"name": "r0-0000.jsonl", "batch_id": "b1",
    ...     "status": "expired", "n_requests": 40, "request_counts": {"completed": 20}}]}))
    ['b1 (r0-0000.jsonl): expired, 20/40 requests finished']
    """
    for b in progress.get("batches") or []:
        done = (b.get("request_counts") or {}).get("completed", 0)
        yield (
            f"{b.get('batch_id') or 'not created yet'} ({b['name']}): "
            f"{b.get('status') or 'not submitted'}, {done}/{b['n_requests']} requests finished"
        )


# --------------------------------------------------------------------------- job rows


def row_id(job_id: str, part: str) -> str:
    """The ``jobs`` row id of the batch of request file ``part`` of job ``job_id``.

    >>> row_id("judge_batch-20261202-120000-abc123", "r0-0000.jsonl")
    'judge_batch-20261202-120000-abc123.r0-0000'
    """
    return f"{job_id}.{part.removesuffix('.jsonl')}"


def batch_rows(job_id: str, progress: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per batch the job created, from the job's progress report.

    A batch still running when its job is no longer active (the worker failed or was
    cancelled before the batch ended) is shown stopped: nothing polls it until the job
    is resumed.

    >>> prog = {"status": "stopped", "batches": [
    ...     {"name": "r0-0000.jsonl", "batch_id": "b1", "status": "expired", "n_requests": 40,
    ...      "request_counts": {"completed": 18, "failed": 2}, "round": 0},
    ...     {"name": "r0-0001.jsonl", "batch_id": None, "status": None, "n_requests": 5}]}
    >>> [(r["job_id"], r["status"], r["n_done"], r["n_total"]) for r in batch_rows("j", prog)]
    [('j.r0-0000', 'stopped', 20, 40)]
    >>> batch_rows("j", prog)[0]["error"]
    'batch b1 expired with 20/40 requests answered; resume job j to submit the rest'
    """
    from reset_core.jobs import ACTIVE

    active = progress.get("status") in ACTIVE
    rows = []
    for b in progress.get("batches") or []:
        if not b.get("batch_id"):
            continue  # not created yet: there is no batch to show
        counts = b.get("request_counts") or {}
        n_done = int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
        n_total = b.get("n_requests")
        status, error = ROW_STATUS.get(b.get("status") or "", "running"), None
        if status == "running" and not active:
            status = "stopped"
            error = (
                f"job {job_id} ended ({progress.get('status')}) before batch {b['batch_id']} "
                f"did; resume the job to follow it again"
            )
        elif status == "stopped":
            error = (
                f"batch {b['batch_id']} {b['status']} with {n_done}/{n_total} requests "
                f"answered; resume job {job_id} to submit the rest"
            )
        elif status == "failed":
            error = f"the provider failed batch {b['batch_id']}: reset-studio jobs status {job_id}"
        rows.append(
            {
                "job_id": row_id(job_id, b["name"]),
                "status": status,
                "n_done": n_done,
                "n_total": n_total,
                "error": error,
                "config": {
                    "job": job_id,
                    "batch_id": b["batch_id"],
                    "file": b["name"],
                    "round": b.get("round"),
                    "batch_status": b.get("status"),
                },
            }
        )
    return rows


def record_batch_rows(con, job_id: str, progress: dict[str, Any]) -> int:
    """Write the ``jobs`` row of every batch job ``job_id`` created; how many changed.

    The rows share the job's folder. A row ends (``finished_at``) when its batch does.
    Only new or changed rows are written: pages sync a running job every second.
    """
    from reset_core.store import one

    rows = batch_rows(job_id, progress)
    if not rows:
        return 0
    fields = ("status", "error", "n_total", "n_done")
    stored = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT job_id, status, error, n_total, n_done, config FROM jobs "
            "WHERE job_id IN (SELECT unnest(?))",
            [[r["job_id"] for r in rows]],
        ).fetchall()
    }
    changed = [
        r
        for r in rows
        if stored.get(r["job_id"]) != (*(r[f] for f in fields), json.dumps(r["config"]))
    ]
    if not changed:
        return 0
    (work_dir,) = one(con, "SELECT work_dir FROM jobs WHERE job_id = ?", [job_id])
    for r in changed:
        if r["job_id"] not in stored:
            con.execute(
                "INSERT INTO jobs (job_id, kind, status, config, work_dir, started_at) "
                "VALUES (?, ?, ?, ?, ?, current_timestamp)",
                [r["job_id"], ROW_KIND, r["status"], json.dumps(r["config"]), work_dir],
            )
        con.execute(
            "UPDATE jobs SET status = ?, config = ?, error = ?, n_total = ?, n_done = ?, "
            "finished_at = CASE WHEN ? = 'running' THEN NULL "
            "ELSE coalesce(finished_at, current_timestamp) END WHERE job_id = ?",
            [
                r["status"],
                json.dumps(r["config"]),
                r["error"],
                r["n_total"],
                r["n_done"],
                r["status"],
                r["job_id"],
            ],
        )
    return len(changed)
