"""Shard folders: sampling and judging on machines with no database, ingested later by key.

A GPU box runs ``reset-studio sample --out DIR`` (examples imported in memory from a
dataset file with the same importer as ``reset-studio import``, so their ids equal
the workstation's) and ``reset-studio judge --out DIR2 --from DIR ...``; the
workstation runs ``reset-studio ingest DIR DIR2 ...``. The format is documented in
``docs/shards.md``::

    DIR/
        manifest.json             format, version, kind, run id, host, config, counts
        examples.parquet          the examples the folder's candidates answer
        candidates/part-*.parquet candidates rows (sample folders; judge folders: the
                                  candidates they judged, copied so the folder stands alone)
        judgments/part-*.parquet  judgments rows (judge folders)
        input.parquet             the worker's work list (not read by ingest)
        progress.json             the worker's last progress report (not read by ingest)

Every row is keyed so that merging is by key: ``example_id`` (the importer's),
``candidate_id`` (a hash of example, model, setting and sample index) and, in shard
folders, ``judgment_id`` = a hash of (judge, candidate, aspect) without the run, so
two machines that judged the same candidate with the same judge agree on the key.
Parts are written to a temporary name and renamed: a killed run leaves only whole
parts, and rerunning the same command skips every key already in the folder.

>>> shard_of("alpaca:17", 4) == shard_of("alpaca:17", 4)
True
>>> sorted({shard_of(f"x:{i}", 3) for i in range(100)})
[0, 1, 2]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from reset_core.atomic import atomic_path, write_json_atomic
from reset_core.jobs import JobContext, JobStopped, read_json, write_shard

FORMAT = "reset-studio-shards"
VERSION = 1
KINDS = ("sample", "judge")
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"
#: Shard folders key verdicts on this scope instead of the run (see :func:`judgment_id`).
JUDGMENT_SCOPE = "shards"

#: Columns each file must have (the NOT NULL ones of its table); others are optional.
REQUIRED_COLUMNS = {
    "examples": ("example_id", "instruction", "kind", "source", "split", "content_hash"),
    "candidates": (
        "candidate_id",
        "example_id",
        "model_id",
        "setting_id",
        "sample_index",
        "seed",
        "text",
        "engine",
    ),
    "judgments": ("judgment_id", "candidate_id", "judge_id", "aspect", "status"),
}
#: The examples file: the ``examples`` table's columns, metadata as JSON text.
EXAMPLE_COLUMNS = (
    "example_id",
    "instruction",
    "context",
    "reference",
    "kind",
    "source",
    "split",
    "content_hash",
    "meta",
)
#: A verdict that stands: a score, or the judge saying it cannot score the item at all.
VALID_SQL = "(score IS NOT NULL OR status = 'not_applicable')"


class ShardRejected(ValueError):
    """A shard folder that cannot be written or ingested; the message names file and field."""


def shard_of(example_id: str, num_shards: int) -> int:
    """Which of ``num_shards`` shards an example belongs to: a stable hash of its id.

    The same on every machine and every run (md5, not Python's salted ``hash``).
    """
    digest = hashlib.md5(example_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _run_id(kind: str) -> str:
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname())[:40] or "host"
    return f"{kind}-{host}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def _digest(values: Sequence[str]) -> str:
    return hashlib.blake2b("\n".join(sorted(values)).encode(), digest_size=12).hexdigest()


# --------------------------------------------------------------------------- the worker side
@dataclass
class FolderContext(JobContext):
    """A :class:`~reset_core.jobs.JobContext` whose results land in a shard folder.

    The stage's own worker function runs unchanged: only where its batches go
    (``<folder>/<target>/part-*.parquet``) and where it reads its work list differ.
    ``echo`` hears every progress report (the CLI prints it on stderr).
    """

    target: str = "candidates"
    echo: Callable[[dict], None] | None = field(default=None, repr=False)
    shard_prefix = "part"

    @property
    def shard_dir(self) -> Path:
        return self.job_dir / self.target

    def write(self, table: pa.Table, n_items: int | None = None) -> None:
        if table.num_rows:
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            write_shard(self.shard_dir, table, prefix=self.shard_prefix)
        self.advance(table.num_rows if n_items is None else n_items)

    def _report(self, status: str, error: str | None = None, **extra: Any) -> None:
        super()._report(status, error, **extra)
        if self.echo is not None:
            self.echo(read_json(self.job_dir / "progress.json"))


def run_in_folder(
    folder: Path,
    entry: Callable[[JobContext], None],
    config: dict[str, Any],
    target: str,
    echo: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Run a stage's worker function on ``folder``; return its last progress report.

    As :func:`reset_core.jobs.run_worker` does for a job folder: SIGTERM asks for a stop
    after the current batch; Ctrl-C ends the run as ``cancelled`` (whole parts kept).
    """
    ctx = FolderContext(folder, config, target=target, echo=echo)
    (folder / "cancel").unlink(missing_ok=True)
    previous = signal.signal(signal.SIGTERM, lambda *_: (folder / "cancel").touch())
    try:
        ctx.phase("starting")
        entry(ctx)
        ctx._report("cancelled" if ctx.cancelled() else "done")
    except JobStopped as e:
        ctx._report("stopped", error=str(e))
    except KeyboardInterrupt:
        ctx._report("cancelled", error="interrupted; rerun the same command to finish")
    except Exception as e:  # noqa: BLE001 - recorded in the folder, as a job records it
        from reset_core.deployment import redact

        ctx._report("failed", error=redact(f"{type(e).__name__}: {e}"))
    finally:
        signal.signal(signal.SIGTERM, previous)
    return read_json(folder / "progress.json")


def _write_table(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _count_rows(files: Sequence[Path]) -> int:
    return sum(pq.read_metadata(f).num_rows for f in files)


def _parts(folder: Path, target: str) -> list[Path]:
    # Parts in flight have a temporary name (".part-….parquet.<pid>.tmp"): never matched.
    return sorted((folder / target).glob("part-*.parquet"))


def _open_folder(folder: Path, kind: str, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The folder's manifest when it holds the same run (a rerun resumes it), else None.

    A folder holding another run, or something that is not a shard folder, is refused:
    mixing two runs' keys in one folder would make neither resumable.
    """
    if folder.exists() and not folder.is_dir():
        raise ShardRejected(f"{folder}: is a file; give a new or empty folder to --out")
    if not (folder / MANIFEST).exists():
        if folder.exists() and any(folder.iterdir()):
            raise ShardRejected(
                f"{folder}: not empty and no {MANIFEST}; give an empty or new folder to --out"
            )
        return None
    manifest = read_manifest(folder)
    if manifest["kind"] != kind:
        raise ShardRejected(
            f"{folder / MANIFEST}: field 'kind' is {manifest['kind']!r}, this command writes "
            f"{kind!r}; use another --out folder"
        )
    for key, value in identity.items():
        if manifest.get("identity", {}).get(key) != value:
            raise ShardRejected(
                f"{folder / MANIFEST}: field 'identity.{key}' differs from this command's "
                f"({manifest.get('identity', {}).get(key)!r} vs {value!r}): the folder holds "
                "another run; use another --out folder"
            )
    return manifest


def _finish_manifest(folder: Path, manifest: dict, progress: dict, extra_counts: dict) -> dict:
    counts = dict(manifest.get("counts", {}))
    for target in ("candidates", "judgments"):
        parts = _parts(folder, target)
        if parts:
            counts[f"{target}_rows"] = _count_rows(parts)
    counts.update(extra_counts)
    manifest = {
        **manifest,
        "status": progress.get("status", "failed"),
        "error": progress.get("error"),
        "updated_at": _now(),
        "counts": counts,
    }
    if progress.get("endpoints"):
        manifest["endpoints"] = progress["endpoints"]
    if progress.get("ledger"):
        manifest["ledger"] = progress["ledger"]
    write_json_atomic(folder / MANIFEST, manifest)
    return manifest


def _example_rows(con, example_ids: Sequence[str]) -> pa.Table:
    return con.sql(
        "SELECT example_id, instruction, context, reference, kind, source, split, "
        "content_hash, CAST(meta AS VARCHAR) AS meta FROM examples "
        "WHERE example_id IN (SELECT unnest(?)) ORDER BY example_id",
        params=[list(example_ids)],
    ).to_arrow_table()


def sample_to_folder(
    out: str | Path,
    data: str | Path,
    import_options,
    selection,
    model,
    grid: Sequence[Any],
    *,
    num_shards: int = 1,
    shard_index: int = 0,
    chunk_size: int | None = None,
    echo: Callable[[dict], None] | None = None,
    check_model: bool = True,
) -> dict[str, Any]:
    """Sample into a shard folder with no database; return its manifest.

    ``data`` is imported in memory with ``import_options`` (the importer of
    ``reset-studio import``: the same ids), ``selection`` picks the examples as on the
    workstation, and of those this run takes the ones with
    ``shard_of(example_id, num_shards) == shard_index``. Rerunning the same call on the
    same folder generates only the candidates it lacks.

    Raises :class:`ShardRejected` (and the importer's or planner's own rejections).
    """
    from reset_core.ingest.importer import import_file
    from reset_core.sampling.launch import plan_sampling
    from reset_core.sampling.worker import INPUT_SCHEMA
    from reset_core.sampling.worker import run as sample_worker
    from reset_core.store import connect

    if num_shards < 1:
        raise ShardRejected(f"num_shards: must be at least 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise ShardRejected(
            f"shard_index: {shard_index} is not in 0..{num_shards - 1} (num_shards {num_shards})"
        )
    folder = Path(out)
    con = connect(":memory:")
    try:
        imported = import_file(con, data, import_options)
        plan = plan_sampling(con, selection, model, grid, check=check_model)
        mine = {e for e in plan.example_ids if shard_of(e, num_shards) == shard_index}
        rows = [r for r in plan._rows if r["example_id"] in mine]
        example_ids = sorted(mine)
        examples = _example_rows(con, example_ids)
    finally:
        con.close()
    # What makes two runs the same run (checked in this order when a folder is reused).
    identity = {
        "num_shards": num_shards,
        "shard_index": shard_index,
        "model_id": plan.model_id,
        "settings": sorted(s.setting_id for s in plan.grid),
        "examples_digest": _digest(example_ids),
    }
    manifest = _open_folder(folder, "sample", identity)
    folder.mkdir(parents=True, exist_ok=True)
    n_planned = sum(len(r["sample_indices"]) for r in rows)
    if manifest is None:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": "sample",
            "run_id": _run_id("sample"),
            "host": socket.gethostname(),
            "created_at": _now(),
            "identity": identity,
            "data": {
                "file": Path(data).name,
                "preset": imported.preset,
                "import_options": import_options.model_dump(mode="json"),
            },
            "selection": selection.model_dump(mode="json"),
            "model": model.model_dump(mode="json"),
            "model_id": plan.model_id,
            "grid": [s.model_dump(mode="json") for s in plan.grid],
            "num_shards": num_shards,
            "shard_index": shard_index,
        }
    manifest.update(
        status="running",
        error=None,
        updated_at=_now(),
        counts={"examples": len(example_ids), "candidates_planned": n_planned},
    )
    _write_table(folder / EXAMPLES, examples)
    _write_table(folder / "input.parquet", pa.Table.from_pylist(rows, schema=INPUT_SCHEMA))
    write_json_atomic(folder / MANIFEST, manifest)
    config = {
        "model": model.model_dump(mode="json"),
        "model_id": plan.model_id,
        "grid": manifest["grid"],
        "chunk_size": chunk_size,
        "job_id": manifest["run_id"],
    }
    progress = run_in_folder(folder, sample_worker, config, "candidates", echo)
    return _finish_manifest(folder, manifest, progress, {})


def judge_to_folder(
    out: str | Path,
    sources: Sequence[str | Path],
    specs_for: Callable[[Any], list[dict]],
    plan=None,
    *,
    batch_size: int = 256,
    echo: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Judge the candidates of shard folders into a shard folder, no database; return its manifest.

    ``specs_for(con)`` gives the judge specs (:func:`reset_core.judging.launch.llm_spec`
    freezes rubrics from a database: here the scratch one the sources are loaded into).
    ``plan`` is a :class:`~reset_core.judging.launch.JudgePlan`. The folder gets the
    examples and candidates it judged too, so it ingests on its own.
    """
    from reset_core.judging.launch import JudgePlan, check_endpoints, plan_items
    from reset_core.judging.worker import run_judge_job
    from reset_core.store import connect

    plan = plan or JudgePlan()
    folder = Path(out)
    source_dirs = [Path(s) for s in sources]
    if not source_dirs:
        raise ShardRejected("--from: give at least one shard folder to judge")
    if any(s.resolve() == folder.resolve() for s in source_dirs):
        raise ShardRejected(f"--out {folder}: must not be one of the --from folders")
    source_manifests = [read_manifest(s) for s in source_dirs]
    con = connect(":memory:")
    try:
        for s in source_dirs:
            ingest_folder(con, s)
        specs = specs_for(con)
        check_endpoints(specs)
        items = plan_items(con, specs, plan)
        cand_ids = sorted(set(items["candidate_id"].to_pylist()))
        candidates = con.sql(
            "SELECT candidate_id, example_id, model_id, setting_id, sample_index, seed, text, "
            "finish_reason, prompt_tokens, completion_tokens, latency_ms, engine, job_id "
            "FROM candidates WHERE candidate_id IN (SELECT unnest(?)) ORDER BY candidate_id",
            params=[cand_ids],
        ).to_arrow_table()
        examples = _example_rows(con, sorted(set(candidates["example_id"].to_pylist())))
    finally:
        con.close()
    from reset_core.judging.worker import build_judge

    identity = {
        "judges": sorted(build_judge(s).judge_id for s in specs),
        "sources": sorted(m["run_id"] for m in source_manifests),
        "plan": plan.model_dump(mode="json"),
    }
    manifest = _open_folder(folder, "judge", identity)
    folder.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": "judge",
            "run_id": _run_id("judge"),
            "host": socket.gethostname(),
            "created_at": _now(),
            "identity": identity,
            "judges": specs,
            "plan": plan.model_dump(mode="json"),
            # The runs whose candidates it judged, whole: ingest registers them (their
            # model, grid and run) from here, so this folder needs none of its sources.
            "sources": [_as_source(m) for m in source_manifests],
        }
    manifest.update(
        status="running",
        error=None,
        updated_at=_now(),
        counts={
            "examples": examples.num_rows,
            "candidates": candidates.num_rows,
            "judgments_planned": items.num_rows,
        },
    )
    _write_table(folder / EXAMPLES, examples)
    _write_table(folder / "candidates" / "part-judged.parquet", candidates)
    _write_table(folder / "input.parquet", items)
    write_json_atomic(folder / MANIFEST, manifest)
    config = {
        "judges": specs,
        # The LLM verdict cache beside the folder's parts: a rerun pays no request twice.
        "cache_path": str((folder / "judge_cache.sqlite").resolve()),
        "batch_size": batch_size,
        "job_id": manifest["run_id"],
        "judgment_id_scope": JUDGMENT_SCOPE,
    }
    progress = run_in_folder(folder, run_judge_job, config, "judgments", echo)
    return _finish_manifest(folder, manifest, progress, {})


def _as_source(manifest: dict) -> dict:
    """A source manifest as a judge folder keeps it: sample runs whole, judge runs' sources."""
    if manifest["kind"] == "judge":
        return {"kind": "judge", "run_id": manifest["run_id"], "sources": manifest["sources"]}
    return manifest


# --------------------------------------------------------------------------- validation
def read_manifest(folder: str | Path) -> dict[str, Any]:
    """A shard folder's manifest, validated; :class:`ShardRejected` names file and field.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.json").write_text('{"format": "something-else"}')
    >>> read_manifest(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    reset_core.shards.ShardRejected: .../manifest.json: field 'format' is 'something-else', not 'reset-studio-shards': not a RESET Studio shard folder
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ShardRejected(f"{folder}: no such folder")
    if not path.exists():
        raise ShardRejected(f"{path}: missing: not a RESET Studio shard folder")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ShardRejected(f"{path}: cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise ShardRejected(f"{path}: line {e.lineno}: not JSON ({e.msg})") from None
    if not isinstance(manifest, dict):
        raise ShardRejected(f"{path}: not a JSON object")
    _check_manifest(path, manifest)
    return manifest


def _field(path: Path, manifest: dict, name: str, kind: type | tuple[type, ...]) -> Any:
    value = manifest.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        got = "missing" if name not in manifest else f"{value!r}"
        raise ShardRejected(f"{path}: field '{name}' must be a {want}, got {got}")
    return value


def _check_manifest(path: Path, m: dict, where: str = "") -> None:
    fmt = m.get("format")
    if fmt != FORMAT:
        raise ShardRejected(
            f"{path}: field '{where}format' is {fmt!r}, not {FORMAT!r}: not a RESET Studio "
            "shard folder"
        )
    version = _field(path, m, "version", int)
    if not 1 <= version <= VERSION:
        raise ShardRejected(
            f"{path}: field '{where}version' is {version}; this RESET Studio reads versions "
            f"1 to {VERSION} (upgrade it to read newer folders)"
        )
    if m.get("kind") not in KINDS:
        raise ShardRejected(
            f"{path}: field '{where}kind' is {m.get('kind')!r}; expected one of {list(KINDS)}"
        )
    _field(path, m, "run_id", str)
    if m["kind"] == "sample":
        _check_sample(path, m, where)
    else:
        for i, spec in enumerate(_field(path, m, "judges", list)):
            if not isinstance(spec, dict) or "type" not in spec:
                raise ShardRejected(f"{path}: field '{where}judges[{i}]' is not a judge spec")
        for i, source in enumerate(_field(path, m, "sources", list)):
            if not isinstance(source, dict):
                raise ShardRejected(f"{path}: field '{where}sources[{i}]' is not an object")
            if source.get("kind") == "judge":
                _field(path, source, "sources", list)
            else:
                _check_manifest(path, source, f"{where}sources[{i}].")


def _check_sample(path: Path, m: dict, where: str) -> None:
    from pydantic import ValidationError

    from reset_core.errors import validation_message
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.settings import GridRejected, parse_grid

    _field(path, m, "model_id", str)
    try:
        ModelSpec(**_field(path, m, "model", dict))
    except ValidationError as e:
        raise ShardRejected(f"{path}: field '{where}model': {validation_message(e)}") from None
    try:
        parse_grid(_field(path, m, "grid", list))
    except GridRejected as e:
        raise ShardRejected(f"{path}: field '{where}grid': {e}") from None


def _check_files(files: Sequence[Path], target: str) -> None:
    for f in files:
        try:
            names = set(pq.read_schema(f).names)
        except Exception as e:  # noqa: BLE001 - any reader error: the file is not whole Parquet
            raise ShardRejected(f"{f}: not a readable Parquet file ({e})") from None
        missing = [c for c in REQUIRED_COLUMNS[target] if c not in names]
        if missing:
            raise ShardRejected(f"{f}: column(s) {missing} missing (a {target} file needs them)")


# --------------------------------------------------------------------------- ingest
@dataclass
class IngestReport:
    """What one folder added; ``*_present`` rows were in the database already (or twice)."""

    folder: str
    kind: str
    run_id: str
    status: str
    examples_new: int = 0
    examples_present: int = 0
    candidates_new: int = 0
    candidates_present: int = 0
    judgments_new: int = 0
    judgments_present: int = 0
    files_seen: int = 0

    def describe(self) -> str:
        parts = [
            f"{self.folder} ({self.kind} run {self.run_id}, {self.status})",
            f"examples {self.examples_new:,} new, {self.examples_present:,} already there",
            f"candidates {self.candidates_new:,} new, {self.candidates_present:,} already there",
        ]
        if self.kind == "judge":
            parts.append(
                f"judgments {self.judgments_new:,} new, {self.judgments_present:,} already there"
            )
        if self.files_seen:
            parts.append(f"{self.files_seen} part file(s) ingested before, skipped")
        return "; ".join(parts)


def check_folder(folder: str | Path) -> tuple[dict, dict[str, list[Path]]]:
    """Validate a folder without touching a database: (manifest, files per table)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    files = {
        "candidates": _parts(folder, "candidates"),
        "judgments": _parts(folder, "judgments"),
    }
    examples = folder / EXAMPLES
    if files["candidates"] and not examples.exists():
        raise ShardRejected(f"{examples}: missing (the folder's candidates need their examples)")
    files["examples"] = [examples] if examples.exists() else []
    for target, fs in files.items():
        _check_files(fs, target)
    return manifest, files


def ingest_folder(con, folder: str | Path) -> IngestReport:
    """Load one shard folder into the database, in one transaction; return what it added.

    Examples are added when their id is new (stored ones stay untouched; an id stored
    with other content rejects the folder). Candidates are loaded by ``candidate_id``.
    A verdict is loaded unless the database already holds a valid one (a score, or
    ``not_applicable``) from the same judge for the same candidate and aspect; a stored
    failure with the same key is replaced. The runs, models, decoding settings and
    judges the app lists are registered too. Part files already ingested (by path) are
    skipped. A bad folder raises :class:`ShardRejected` and changes nothing.

    >>> from reset_core.store import connect
    >>> ingest_folder(connect(":memory:"), "/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    reset_core.shards.ShardRejected: /nonexistent: no such folder
    """
    import duckdb

    folder = Path(folder).resolve()
    manifest, files = check_folder(folder)
    report = IngestReport(
        str(folder), manifest["kind"], manifest["run_id"], manifest.get("status", "?")
    )
    con.execute("BEGIN TRANSACTION")
    try:
        _ingest_examples(con, files["examples"], report)
        _register_runs(con, folder, manifest)
        new = {}
        for target in ("candidates", "judgments"):
            paths = [str(f) for f in files[target]]
            seen = _seen(con, paths)
            report.files_seen += len(seen)
            new[target] = [p for p in paths if p not in seen]
        _ingest_candidates(con, new["candidates"], report)
        _ingest_judgments(con, new["judgments"], report)
        _mark_ingested(con, new)
        con.execute("COMMIT")
    except ShardRejected:
        con.execute("ROLLBACK")
        raise
    except duckdb.Error as e:
        con.execute("ROLLBACK")
        first = str(e).strip().splitlines()[0]
        raise ShardRejected(f"{folder}: rows refused by the database ({first})") from None
    except Exception:
        con.execute("ROLLBACK")
        raise
    return report


def _mark_ingested(con, new: dict[str, list[str]]) -> None:
    """Record the parts just loaded (row counts from their footers: no second scan)."""
    rows = [(p, t, pq.read_metadata(p).num_rows) for t, ps in new.items() for p in ps]
    if rows:
        from reset_core.store import insert_arrow

        paths, targets, counts = zip(*rows, strict=True)
        table = pa.table({"path": list(paths), "target": list(targets), "n_rows": list(counts)})
        insert_arrow(con, "ingested_shards", table, on_conflict="update")


def _seen(con, paths: list[str]) -> set[str]:
    if not paths:
        return set()
    rows = con.execute(
        "SELECT path FROM ingested_shards WHERE path IN (SELECT unnest(?))", [paths]
    ).fetchall()
    return {r[0] for r in rows}


def _ingest_examples(con, files: list[Path], report: IngestReport) -> None:
    if not files:
        return
    path = str(files[0])
    cols = set(pq.read_schema(path).names)
    select = ", ".join(
        (f"CAST(p.{c} AS JSON)" if c == "meta" else f"p.{c}") if c in cols else f"NULL AS {c}"
        for c in EXAMPLE_COLUMNS
    )
    clash = con.execute(
        "SELECT p.example_id FROM read_parquet(?) p JOIN examples e USING (example_id) "
        "WHERE e.content_hash <> p.content_hash LIMIT 1",
        [path],
    ).fetchall()
    if clash:
        raise ShardRejected(
            f"{path}: example_id {clash[0][0]!r} is already stored with different content "
            "(the folder was made from another version of the dataset)"
        )
    n_rows = pq.read_metadata(path).num_rows
    before = con.execute("SELECT count(*) FROM examples").fetchone()[0]
    con.execute(
        f"INSERT INTO examples ({', '.join(EXAMPLE_COLUMNS)}) "
        f"SELECT {select} FROM read_parquet(?) p "
        "ANTI JOIN examples e ON e.example_id = p.example_id "
        "QUALIFY row_number() OVER (PARTITION BY p.example_id) = 1",
        [path],
    )
    report.examples_new = con.execute("SELECT count(*) FROM examples").fetchone()[0] - before
    report.examples_present = n_rows - report.examples_new


def _sample_runs(manifest: dict) -> list[dict]:
    """Every sample run a manifest carries: itself, or a judge folder's sources."""
    if manifest["kind"] == "sample":
        return [manifest]
    return [r for s in manifest.get("sources", []) for r in _sample_runs(s)]


def _register_runs(con, folder: Path, manifest: dict) -> None:
    """The rows a local job writes besides its results: model, grid, judges, the job."""
    from reset_core.sampling.config import ModelSpec
    from reset_core.sampling.launch import record_model_and_grid
    from reset_core.sampling.settings import parse_grid

    for run in _sample_runs(manifest):
        record_model_and_grid(
            con, ModelSpec(**run["model"]), parse_grid(run["grid"]), run["model_id"]
        )
        config = {
            "model": run["model"],
            "model_id": run["model_id"],
            "selection": run.get("selection"),
            "grid": run["grid"],
            "chunk_size": None,
            "shards": _origin(run, folder if run is manifest else None),
        }
        n = (run.get("counts") or {}).get("candidates_planned")
        _job_row(con, run, "sample", config, folder if run is manifest else None, n)
    if manifest["kind"] == "judge":
        from reset_core.judging.launch import record_endpoints, register_judges

        try:
            register_judges(con, manifest["judges"])
        except Exception as e:  # noqa: BLE001 - any spec this version cannot build
            raise ShardRejected(
                f"{folder / MANIFEST}: field 'judges': cannot build a judge from it ({e})"
            ) from None
        record_endpoints(con, manifest.get("endpoints") or {})
        config = {
            "judges": manifest["judges"],
            "plan": manifest.get("plan"),
            "shards": _origin(manifest, folder),
        }
        n = (manifest.get("counts") or {}).get("judgments_planned")
        _job_row(con, manifest, "judge", config, folder, n)


def _origin(run: dict, folder: Path | None) -> dict:
    return {
        "folder": str(folder) if folder else None,
        "host": run.get("host"),
        "format_version": run.get("version"),
        "num_shards": run.get("num_shards"),
        "shard_index": run.get("shard_index"),
    }


def _job_row(con, run: dict, kind: str, config: dict, folder: Path | None, n_total) -> None:
    """The run as a ``jobs`` row, so the app lists and browses it like a local job.

    Only a folder's own run updates its row (its status may have moved on since the
    last ingest); a judge folder's copy of a sample run adds the row when absent.
    A run that did not finish is 'stopped' (finished, nothing to resume here: the
    machine that made it reruns its command), never 'failed', whose Resume would
    launch a local worker on a folder that is not a job folder.
    """
    status = run.get("status")
    done = status == "done"
    error = None
    if not done:
        error = (
            f"shard folder from {run.get('host')} ended {status!r}"
            + (f" ({run['error']})" if run.get("error") else "")
            + ": its whole parts are ingested; rerun the same command there, then ingest again"
        )
    targets = "candidates" if kind == "sample" else "judgments"
    n_done = (run.get("counts") or {}).get(f"{targets}_rows", 0)
    verb = "INSERT OR REPLACE" if folder is not None else "INSERT OR IGNORE"
    con.execute(
        f"{verb} INTO jobs (job_id, kind, status, config, work_dir, error, n_total, n_done, "
        "created_at, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
        "coalesce(?::TIMESTAMPTZ, current_timestamp), ?::TIMESTAMPTZ, "
        "coalesce(?::TIMESTAMPTZ, current_timestamp))",
        [
            run["run_id"],
            kind,
            "done" if done else "stopped",
            json.dumps(config),
            str(folder) if folder else config["shards"]["folder"] or "",
            error,
            n_total,
            n_done,
            run.get("created_at"),
            run.get("created_at"),
            run.get("updated_at"),
        ],
    )


def _columns(paths: list[str], wanted: Sequence[str]) -> list[str]:
    have = set(pq.read_schema(paths[0]).names)
    for p in paths[1:]:
        have &= set(pq.read_schema(p).names)
    return [c for c in wanted if c in have]


def _ingest_candidates(con, paths: list[str], report: IngestReport) -> None:
    if not paths:
        return
    n_rows = _count_rows([Path(p) for p in paths])
    from reset_core.sampling.worker import CANDIDATE_SCHEMA  # the columns workers write

    cols = ", ".join(_columns(paths, CANDIDATE_SCHEMA.names))
    # One pass over the two key columns before the insert: candidates whose example is
    # nowhere (refused), and keys twice within the files (a part rewritten under another
    # name: rare, and the window that drops them sorts every text, so only when needed).
    orphan, dup = con.execute(
        "SELECT any_value(p.example_id) FILTER (WHERE e.example_id IS NULL), "
        "count(*) - count(DISTINCT p.candidate_id) "
        "FROM read_parquet(?) p LEFT JOIN examples e ON e.example_id = p.example_id",
        [paths],
    ).fetchone()
    if orphan is not None:
        _orphans(con, paths, "example_id", "examples", "candidates")
    once = "QUALIFY row_number() OVER (PARTITION BY p.candidate_id) = 1" if dup else ""
    before = con.execute("SELECT count(*) FROM candidates").fetchone()[0]
    # One statement over every file, behind a hash anti-join on the key: DuckDB's plain
    # bulk insert (INSERT OR IGNORE probes the index row by row and is far slower).
    con.execute(
        f"INSERT INTO candidates ({cols}) SELECT {cols} FROM read_parquet(?) p "
        f"ANTI JOIN candidates c ON c.candidate_id = p.candidate_id {once}",
        [paths],
    )
    report.candidates_new = con.execute("SELECT count(*) FROM candidates").fetchone()[0] - before
    report.candidates_present = n_rows - report.candidates_new


def _ingest_judgments(con, paths: list[str], report: IngestReport) -> None:
    """Verdicts by their natural key (judge, candidate, aspect), valid ones first.

    A shard folder's ``judgment_id`` already hashes only that key, so two folders agree
    on it; the rule below also holds against verdicts made locally (whose ids include
    their job): the database keeps one valid verdict per key, as a local run that
    skips judged items would.
    """
    if not paths:
        return
    n_rows = _count_rows([Path(p) for p in paths])
    _orphans(con, paths, "candidate_id", "candidates", "judgments")
    from reset_core.judging.base import JUDGMENT_SCHEMA  # the columns workers write

    cols = _columns(paths, JUDGMENT_SCHEMA.names)
    col_sql = ", ".join(cols)
    order = f"{VALID_SQL} DESC" + (", created_at DESC" if "created_at" in cols else "")
    before = con.execute("SELECT count(*) FROM judgments").fetchone()[0]
    replaced = con.execute(
        "SELECT count(*) FROM judgments j WHERE NOT "
        + VALID_SQL.replace("score", "j.score").replace("status", "j.status")
        + " AND j.judgment_id IN (SELECT judgment_id FROM read_parquet(?))",
        [paths],
    ).fetchone()[0]
    con.execute(
        f"INSERT OR REPLACE INTO judgments ({col_sql}) SELECT {col_sql} FROM ("
        f"  SELECT * FROM read_parquet(?) "
        f"  QUALIFY row_number() OVER (PARTITION BY judge_id, candidate_id, aspect "
        f"  ORDER BY {order}) = 1"
        f") p ANTI JOIN (SELECT judge_id, candidate_id, aspect FROM judgments "
        f"  WHERE {VALID_SQL}) v "
        "ON v.judge_id = p.judge_id AND v.candidate_id = p.candidate_id AND v.aspect = p.aspect",
        [paths],
    )
    added = con.execute("SELECT count(*) FROM judgments").fetchone()[0] - before
    report.judgments_new = added + replaced
    report.judgments_present = n_rows - report.judgments_new


def _orphans(con, paths: list[str], key: str, table: str, target: str) -> None:
    """Refuse rows that point at nothing: every candidate needs its example, and so on."""
    row = con.execute(
        f"SELECT p.{key}, p.filename FROM read_parquet(?, filename=true) p "
        f"ANTI JOIN {table} t ON t.{key} = p.{key} LIMIT 1",
        [paths],
    ).fetchall()
    if row:
        raise ShardRejected(
            f"{row[0][1]}: {key} {row[0][0]!r} is neither in the folder nor in the database "
            f"({target} need their {table})"
        )


def ingest_folders(con, folders: Sequence[str | Path]) -> list[IngestReport]:
    """Validate every folder first (nothing is loaded if one is bad), then load each.

    >>> from reset_core.store import connect
    >>> ingest_folders(connect(":memory:"), [])
    []
    """
    for f in folders:
        check_folder(f)
    if len(folders) < 2:
        return [ingest_folder(con, f) for f in folders]
    # Each folder commits on its own (a bad one changes nothing), but DuckDB also
    # checkpoints at a commit once its write-ahead log passes a threshold, rewriting the
    # growing table and its key index each time: 4 folders of 250k candidates took 42 s
    # that way and 31 s with one checkpoint after the last (one INSERT of all files: 17 s).
    # The log is still written at every commit, so nothing committed is lost if the
    # process dies before the final checkpoint: DuckDB replays the log when it reopens.
    (threshold,) = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
    con.execute("SET checkpoint_threshold = '1TB'")
    try:
        return [ingest_folder(con, f) for f in folders]
    finally:
        con.execute(f"SET checkpoint_threshold = '{threshold}'")
        with contextlib.suppress(duckdb.Error):  # another thread's open transaction: later
            con.execute("CHECKPOINT")


def print_progress(progress: dict, unit: str) -> None:
    """One progress line on stderr, rewritten in place (the CLI's ``echo``)."""
    from reset_core.jobs import describe_progress

    line = describe_progress(progress, unit)
    end = "\n" if progress.get("status") not in ("running", "queued") else ""
    print(f"\r{line:<110.110}", end=end, file=sys.stderr, flush=True)
