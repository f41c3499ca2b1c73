"""Import examples from JSONL, JSON, CSV, Parquet and Hugging Face ``datasets`` folders.

A preset maps a common file shape onto the example fields (``instruction``,
``context``, ``reference``); an explicit column mapping handles anything else. An
import is all or nothing: the whole file is read and validated before the database
is touched, and the rows go in one transaction. Every rejection names the file, the
line (or record/row) and the field.

>>> import json, tempfile
>>> from pathlib import Path
>>> from reset_core.store import connect
>>> tmp = tempfile.TemporaryDirectory()
>>> path = Path(tmp.name) / "alpaca.json"
>>> _ = path.write_text(json.dumps([
...     {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
...     {"instruction": "Who wrote it?", "input": "Hamlet is by Shakespeare.", "output": "Shakespeare."},
...     {"instruction": "Name a primary colour.", "input": "", "output": "Blue."},
... ]))
>>> con = connect(":memory:")
>>> r = import_file(con, path, ImportOptions(preset="alpaca", source="demo"))
>>> r.n_rows, r.n_added, r.n_duplicates
(3, 2, 1)
>>> r.kind_note
"kind=instruction for 2 rows: the alpaca preset's role (1 with a context, kept as part of the request)"
>>> con.execute("SELECT kind, context FROM examples ORDER BY context").fetchall()
[('instruction', 'Hamlet is by Shakespeare.'), ('instruction', None)]
>>> tmp.cleanup()
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from reset_core.aspects import KINDS
from reset_core.ingest.config import FIELDS, SPLITS, ImportOptions, ImportRejected, ImportResult
from reset_core.ingest.presets import (
    FLAT_PRESETS,
    PRESET_COLUMNS,
    PRESET_KINDS,
    PRESETS,
    RowError,
    detect_preset,
    mapping_preset,
)
from reset_core.ingest.readers import (
    check_text_file,
    duplicate_columns,
    read_csv,
    read_json,
    read_jsonl,
    read_parquet,
    reader_for,
)
from reset_core.store import one

# Both readers below produce the same "mapped" table (one row per example, in file
# order: rownum, raw_id, instruction, context, reference, source_, split_, kind_);
# one SQL step (_FINALIZE) then hashes, dedupes and assigns kind, split and id, so the
# two paths cannot drift apart.

_MAPPED_COLUMNS = (
    "rownum",
    "raw_id",
    "instruction",
    "context",
    "reference",
    "source_",
    "split_",
    "kind_",
    "meta_",
)

_FINALIZE = """
WITH m AS (
    SELECT *, md5(instruction || chr(31) || coalesce(context, '')) AS content_hash
    FROM mapped
), u AS (
    SELECT *, (md5_number($seed || ':' || content_hash) % 1000000007) / 1000000007.0 AS u
    FROM m
)
SELECT
    CASE WHEN raw_id IS NULL THEN 'h:' || substr(content_hash, 1, 20)
         ELSE source_ || ':' || raw_id END AS example_id,
    instruction, context, reference,
    coalesce(kind_, $kind, CASE WHEN context IS NOT NULL THEN 'context' ELSE 'instruction' END)
        AS kind,
    CASE WHEN kind_ IS NOT NULL THEN 'column' WHEN $kind IS NOT NULL THEN 'fixed' ELSE 'auto' END
        AS kind_by,
    context IS NOT NULL AS has_context,
    source_ AS source,
    meta_ AS meta,
    coalesce(split_, CASE WHEN $by_ratio THEN
        CASE WHEN u < $r_seen THEN 'seen' WHEN u < $r_test_seen THEN 'test_seen'
             ELSE 'test_unseen' END
        ELSE $split END) AS split,
    content_hash
FROM u
QUALIFY row_number() OVER (PARTITION BY content_hash ORDER BY rownum) = 1
ORDER BY rownum
"""


def content_hash(instruction: str, context: str | None) -> str:
    """Duplicate key: two examples are the same when the model sees the same input.

    Computed in SQL by the import (``md5(instruction || chr(31) || context)``); this
    is the same function for Python callers.

    >>> content_hash("Say hi.", None) == content_hash("Say hi.", "")
    True
    """
    return hashlib.md5(f"{instruction}\x1f{context or ''}".encode()).hexdigest()


def fixed_kind(options: ImportOptions, preset: str) -> str | None:
    """The kind every row of ``preset`` gets (a mapped kind column still wins), or None
    for ``auto``: an explicit kind, else the preset's declared role, else (a column
    mapping) auto.

    >>> fixed_kind(ImportOptions(), "alpaca"), fixed_kind(ImportOptions(kind="context"), "alpaca")
    ('instruction', 'context')
    >>> fixed_kind(ImportOptions(mapping={"instruction": "q"}), "mapping") is None
    True
    """
    if options.kind in KINDS:
        return options.kind
    if options.kind is None and preset in PRESET_KINDS:
        return PRESET_KINDS[preset]
    return None


def _finalize(
    staging: duckdb.DuckDBPyConnection, options: ImportOptions, source: str, preset: str
) -> tuple[pa.Table, str]:
    """The examples to insert, and a sentence saying how their kinds were decided."""
    ratios = options.split_ratios or {}
    r_seen = ratios.get("seen", 0.0)
    kind = fixed_kind(options, preset)
    staging.execute("UPDATE mapped SET source_ = coalesce(source_, ?)", [source])
    table = staging.sql(
        _FINALIZE,
        params={
            "seed": str(options.seed),
            "kind": kind,
            "by_ratio": bool(ratios),
            "r_seen": r_seen,
            "r_test_seen": r_seen + ratios.get("test_seen", 0.0),
            "split": options.split,
        },
    ).to_arrow_table()
    # How each row's kind was decided, counted on the Arrow table (no second pass in SQL).
    tally = table.group_by(["kind_by", "kind", "has_context"]).aggregate([("kind", "count")])
    n = {
        (b, k, c): m
        for b, k, c, m in zip(*(tally[col].to_pylist() for col in tally.column_names), strict=True)
    }
    n_column = sum(m for (b, _, _), m in n.items() if b == "column")
    n_auto_ctx = sum(m for (b, k, _), m in n.items() if b == "auto" and k == "context")
    n_auto_instr = sum(m for (b, k, _), m in n.items() if b == "auto" and k == "instruction")
    n_fixed = sum(m for (b, _, _), m in n.items() if b == "fixed")
    n_fixed_ctx = sum(m for (b, _, c), m in n.items() if b == "fixed" and c)
    notes = []
    if n_column:
        notes.append(f"{n_column} rows take their kind from the mapped kind column")
    if n_fixed:
        why = (
            f"the {preset} preset's role"
            if options.kind is None
            else "as asked"
            + (
                f" (the {preset} preset's role is {PRESET_KINDS[preset]})"
                if PRESET_KINDS.get(preset, kind) != kind
                else ""
            )
        )
        note = f"kind={kind} for {n_fixed} rows: {why}"
        if kind == "instruction" and n_fixed_ctx:
            note += f" ({n_fixed_ctx} with a context, kept as part of the request)"
        notes.append(note)
    if n_auto_ctx or n_auto_instr:
        notes.append(
            f"kind=auto: {n_auto_ctx} rows with a context → context, "
            f"{n_auto_instr} without → instruction"
        )
    return table.drop_columns(["kind_by", "has_context"]), "; ".join(notes)


@dataclass
class ParsedFile:
    """A validated file, ready to insert: ``table`` has one row per unique example.

    ``kind_note`` says how the kinds were decided; :meth:`counts` gives the rows by
    kind and split, so a preview can show them before anything is committed.
    """

    path: str
    preset: str
    table: pa.Table
    n_rows: int
    n_duplicates: int
    kind_note: str = ""

    def counts(self) -> dict[tuple[str, str], int]:
        """Unique rows by ``(kind, split)``."""
        grouped = self.table.group_by(["kind", "split"]).aggregate([("kind", "count")])
        return {
            (k, sp): n
            for k, sp, n in zip(
                grouped["kind"].to_pylist(),
                grouped["split"].to_pylist(),
                grouped["kind_count"].to_pylist(),
                strict=True,
            )
        }


def describe_counts(counts: dict[tuple[str, str], int]) -> str:
    """``(kind, split) -> n`` as one line: totals by kind, then by split.

    >>> describe_counts({("instruction", "seen"): 5, ("context", "seen"): 2,
    ...                  ("context", "test_seen"): 1})
    'by kind: instruction 5, context 3 · by split: seen 7, test_seen 1'
    """
    by_kind = {k: sum(n for (kk, _), n in counts.items() if kk == k) for k in KINDS}
    by_split = {sp: sum(n for (_, ss), n in counts.items() if ss == sp) for sp in SPLITS}
    kinds = ", ".join(f"{k} {n:,}" for k, n in by_kind.items())
    splits = ", ".join(f"{sp} {n:,}" for sp, n in by_split.items() if n)
    return f"by kind: {kinds} · by split: {splits or 'none'}"


def read_examples(path: str | Path, options: ImportOptions | None = None) -> ParsedFile:
    """Read and validate a whole file without touching the database.

    Flat files (JSONL, CSV, Parquet with plain text columns) are mapped and checked
    in a scratch DuckDB, vectorised. Anything else, or any file that fails a check
    there, goes through the row-by-row reader, which finds the exact line and field
    and raises :class:`ImportRejected`.
    """
    options = options or ImportOptions()
    path = Path(path)
    if not path.exists():
        raise ImportRejected(path, None, None, "no such file or folder")
    if path.is_file():
        # An unreadable file (permissions, a file being replaced) is the user's to fix:
        # say so in one line instead of a traceback from deep inside a reader.
        try:
            open(path, "rb").close()
        except OSError as e:
            raise ImportRejected(path, None, None, f"cannot be read: {e.strerror or e}") from None
    reader = reader_for(path)
    source = options.source or (path.stem if path.is_file() else path.name)
    if reader in (read_jsonl, read_json, read_csv):
        # Before DuckDB sees it: its readers would take a UTF-16 or NUL-laden file
        # as one garbled column instead of naming what the file is.
        check_text_file(path)
    staging = duckdb.connect()
    try:
        preset = _map_fast(staging, path, reader, options)
        if preset is None:
            preset = _map_rows(staging, path, reader, options)
        n_rows = one(staging, "SELECT count(*) FROM mapped")[0]
        if n_rows == 0:
            raise ImportRejected(path, None, None, "no records")
        table, kind_note = _finalize(staging, options, source, preset)
    finally:
        staging.close()
    return ParsedFile(str(path), preset, table, n_rows, n_rows - table.num_rows, kind_note)


_SQL_READERS = {read_jsonl: "read_json", read_csv: "read_csv", read_parquet: "read_parquet"}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: More columns than any example file needs. DuckDB builds one column per key and its
#: JSON schema inference grows much faster than linearly (a record with 100,000 keys
#: took over a minute); the row reader ignores the keys it does not map.
MAX_FAST_COLUMNS = 1_000
#: DuckDB's CSV reader refuses a line longer than this (its max_line_size default),
#: and its dialect sniffer first spends seconds per megabyte on such a line.
MAX_FAST_CSV_LINE = 2_000_000
#: How many lines DuckDB samples to infer a schema (its sample_size default).
_SAMPLE_LINES = 20_480


def _unfit_for_sql(staging, path: Path, fn: str) -> bool:
    """Whether the SQL reader would stall or fail on the file's shape, judged from its
    head: more than MAX_FAST_COLUMNS columns (keys), or a CSV line too long."""
    if fn == "read_json":
        # The keys of the records DuckDB's schema inference would sample, counted
        # without building that schema (read_json_objects leaves each line as JSON).
        try:
            n_keys = one(
                staging,
                "SELECT count(DISTINCT k) FROM (SELECT unnest(json_keys(json)) AS k FROM "
                "(SELECT json FROM read_json_objects(?, format='newline_delimited') "
                f"LIMIT {_SAMPLE_LINES}))",
                [str(path)],
            )[0]
        except duckdb.Error:
            return False  # unreadable: the SQL reader fails next and the row reader names why
        return n_keys > MAX_FAST_COLUMNS
    if fn == "read_csv":
        import mmap

        with open(path, "rb") as f:
            if f.seek(0, 2) == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                end = m.find(b"\n")
                first = m[: end if end >= 0 else MAX_FAST_CSV_LINE].decode("utf-8-sig", "replace")
                header = next(csv.reader([first]), [])
                # DuckDB would rename a repeated column (x, x_1) and read on; the row
                # reader names it. A wide header is cheaper there than in the sniffer.
                if len(header) > MAX_FAST_COLUMNS or duplicate_columns(header):
                    return True
                start = 0
                for _ in range(_SAMPLE_LINES):
                    end = m.find(b"\n", start)
                    if (end if end >= 0 else len(m)) - start > MAX_FAST_CSV_LINE:
                        return True
                    if end < 0:
                        break
                    start = end + 1
    return False


def _sniffs_no_quoting(staging, path: Path) -> bool:
    """Whether DuckDB's CSV sniffer settles on no quote character for ``path``."""
    quote = one(staging, "SELECT Quote FROM sniff_csv(?)", [str(path)])[0]
    return quote in (None, "", "(empty)")


def _map_fast(staging, path: Path, reader, options: ImportOptions) -> str | None:
    """Map a flat file in SQL; return its preset, or None to use the row reader."""
    fn = _SQL_READERS.get(reader)
    if fn is None or _unfit_for_sql(staging, path, fn):
        return None
    args = {
        "read_json": ", format='newline_delimited', records=true",
        "read_csv": ", header=true, all_varchar=true, strict_mode=true",
        "read_parquet": "",
    }[fn]
    try:
        if fn == "read_csv" and _sniffs_no_quoting(staging, path):
            # DuckDB's sniffer falls back to "no quoting" on a file with one unbalanced
            # quote, and the literal quote characters then land in the stored text. A
            # file with no quotes at all reads the same either way; quote as RFC 4180
            # and the row reader do, so an unbalanced one fails here and the row reader
            # names the line where it opens.
            args += ", quote='\"', escape='\"'"
        staging.execute(f"CREATE TABLE raw AS SELECT * FROM {fn}(?{args})", [str(path)])
        types = dict((r[0], r[1]) for r in staging.execute("DESCRIBE raw").fetchall())
    except duckdb.Error:
        return None  # malformed, non-UTF-8, ...: the row reader names the line
    if options.mapping:
        if any(not re.fullmatch(r"[^.\[\]]+", c) for c in options.mapping.values()):
            return None
        if "meta" in options.mapping:
            return None  # objects per row: the row reader keeps each one exactly
        columns, preset = dict(options.mapping), "mapping"
    else:
        preset = options.preset or detect_preset(set(types))
        if preset not in FLAT_PRESETS:
            return None
        columns = FLAT_PRESETS[preset].columns
    text_targets = {t: c for t, c in columns.items() if t != "id"}
    if any(c in types and types[c] != "VARCHAR" for c in text_targets.values()):
        return None
    if "id" in columns and types.get(columns["id"], "VARCHAR") not in (
        "VARCHAR",
        "BIGINT",
        "INTEGER",
        "UBIGINT",
    ):
        return None
    if "instruction" in columns and columns["instruction"] not in types:
        return None

    def col(target: str) -> str:
        c = columns.get(target)
        return _q(c) if c in types else "NULL"

    fixed = FLAT_PRESETS[preset].instruction if preset in FLAT_PRESETS else None
    instruction = "?" if fixed is not None else col("instruction")
    params = [fixed] if fixed is not None else []
    raw_id = (
        col("id")
        if "id" in columns
        else (_q("id") if "id" in types and not options.mapping else "NULL")
    )
    staging.execute(
        f"""CREATE TABLE mapped AS SELECT
            row_number() OVER () AS rownum,
            CAST({raw_id} AS VARCHAR) AS raw_id,
            CAST({instruction} AS VARCHAR) AS instruction,
            CAST(nullif({col("context")}, '') AS VARCHAR) AS context,
            CAST(nullif({col("reference")}, '') AS VARCHAR) AS reference,
            CAST(nullif({col("source")}, '') AS VARCHAR) AS source_,
            CAST(nullif({col("split")}, '') AS VARCHAR) AS split_,
            CAST(nullif({col("kind")}, '') AS VARCHAR) AS kind_,
            CAST(NULL AS VARCHAR) AS meta_
        FROM raw""",
        params,
    )
    required = FLAT_PRESETS[preset].required if preset in FLAT_PRESETS else ("instruction",)
    missing = " OR ".join(f"{f} IS NULL" for f in required)
    bad = one(
        staging,
        f"""SELECT
            count(*) FILTER (WHERE {missing})
          + count(*) FILTER (WHERE instruction IS NULL OR trim(instruction, ' \t\n\r') = '')
          + count(*) FILTER (WHERE greatest(length(instruction), length(coalesce(context, '')),
                                            length(coalesce(reference, ''))) > ?)
          + count(*) FILTER (WHERE split_ NOT IN {SPLITS} OR kind_ NOT IN {KINDS})
          + (count(raw_id) - count(DISTINCT raw_id))
        FROM mapped""",
        [options.max_chars],
    )[0]
    if bad:
        staging.execute("DROP TABLE mapped")
        return None  # the row reader finds and names the first offending row
    return preset


def _map_rows(staging, path: Path, reader, options: ImportOptions) -> str:
    """Map and validate record by record; raise ImportRejected at the first bad one."""
    convert = mapping_preset(options.mapping) if options.mapping else None
    preset = options.preset or ("mapping" if convert else None)
    cols: dict[str, list] = {k: [] for k in _MAPPED_COLUMNS}
    ids: dict[str, str] = {}
    for where, record in reader(path):
        if not isinstance(record, dict):
            raise ImportRejected(
                path, where, None, f"expected an object, got {type(record).__name__}"
            )
        if convert is None:
            preset = preset or detect_preset(set(record))
            if preset is None:
                raise ImportRejected(
                    path,
                    where,
                    None,
                    f"cannot tell the file's shape from columns {sorted(record)}; "
                    f"choose a preset ({', '.join(PRESETS)}) or give a column mapping",
                )
            convert = PRESETS[preset]
        try:
            examples = convert(record)
        except RowError as e:
            raise ImportRejected(path, where, e.field, e.problem) from None
        columns = options.mapping or PRESET_COLUMNS.get(preset, {})
        for ex in examples:
            instruction = ex["instruction"]
            if not instruction or not instruction.strip():
                raise ImportRejected(
                    path, where, columns.get("instruction", "instruction"), "empty instruction"
                )
            for f in FIELDS:
                value = ex.get(f)
                if value is not None and len(value) > options.max_chars:
                    raise ImportRejected(
                        path,
                        where,
                        columns.get(f, f),
                        f"text of {len(value):,} characters is over the limit of "
                        f"{options.max_chars:,}",
                    )
            for target, allowed in (("kind", KINDS), ("split", SPLITS)):
                if ex.get(target) and ex[target] not in allowed:
                    raise ImportRejected(
                        path,
                        where,
                        columns.get(target, target),
                        f"unknown {target} {ex[target]!r}; expected one of {', '.join(allowed)}",
                    )
            raw_id = ex.get("id")
            if raw_id is None and "id" in record and not options.mapping:
                raw_id = record["id"]
            if raw_id is not None:
                if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
                    raise ImportRejected(
                        path, where, "id", f"expected text or integer, got {type(raw_id).__name__}"
                    )
                key = f"{ex.get('source') or ''}:{raw_id}"
                if key in ids:
                    raise ImportRejected(
                        path,
                        where,
                        columns.get("id", "id"),
                        f"duplicate id {raw_id!r} (first seen at {ids[key]})",
                    )
                ids[key] = where
                raw_id = str(raw_id)
            cols["rownum"].append(len(cols["rownum"]) + 1)
            cols["raw_id"].append(raw_id)
            cols["instruction"].append(instruction)
            cols["context"].append(ex.get("context") or None)
            cols["reference"].append(ex.get("reference") or None)
            cols["source_"].append(ex.get("source") or None)
            cols["split_"].append(ex.get("split") or None)
            cols["kind_"].append(ex.get("kind") or None)
            cols["meta_"].append(json.dumps(ex["meta"]) if ex.get("meta") is not None else None)
    mapped = pa.table(
        {k: pa.array(v, type=pa.int64() if k == "rownum" else pa.string()) for k, v in cols.items()}
    )
    staging.register("_rows", mapped)
    staging.execute("CREATE TABLE mapped AS SELECT * FROM _rows")
    staging.unregister("_rows")
    return preset or "mapping"


def import_file(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    options: ImportOptions | None = None,
    parsed: ParsedFile | None = None,
) -> ImportResult:
    """Validate ``path`` and add its examples in one transaction; all or nothing.

    Rows whose content is already stored count as duplicates and are skipped. An
    explicit id that is already stored with different content is rejected. ``parsed``
    is the file's :func:`read_examples` with the same options, when a preview already
    read it.
    """
    options = options or ImportOptions()
    parsed = parsed or read_examples(path, options)
    table = parsed.table
    con.register("_parsed", table)
    try:
        clash = one(
            con,
            "SELECT p.example_id FROM _parsed p JOIN examples e USING (example_id) "
            "WHERE e.content_hash <> p.content_hash LIMIT 1",
        )
    finally:
        con.unregister("_parsed")
    if clash:
        raise ImportRejected(
            path, None, "id", f"id {clash[0]!r} is already stored with different content"
        )
    import_id = uuid.uuid4().hex[:12]
    con.execute("BEGIN TRANSACTION")
    try:
        # Plain insert behind a hash anti-join: much faster than INSERT OR IGNORE,
        # which probes every index row by row. Ids of stored content were checked above.
        con.register("_parsed", table)
        before = one(con, "SELECT count(*) FROM examples")[0]
        con.execute(
            "INSERT INTO examples (example_id, instruction, context, reference, kind, source, "
            "split, content_hash, import_id, meta) "
            "SELECT p.example_id, p.instruction, p.context, p.reference, p.kind, p.source, "
            "p.split, p.content_hash, ?, CAST(p.meta AS JSON) FROM _parsed p "
            "ANTI JOIN examples e ON e.content_hash = p.content_hash",
            [import_id],
        )
        added = one(con, "SELECT count(*) FROM examples")[0] - before
        con.execute(
            "INSERT INTO imports (import_id, path, preset, options, n_rows, n_added, n_duplicates) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                import_id,
                str(Path(path).resolve()),
                parsed.preset,
                options.model_dump_json(),
                parsed.n_rows,
                added,
                parsed.n_rows - added,
            ],
        )
        by = con.execute(
            "SELECT kind, split, count(*) FROM examples WHERE import_id = ? GROUP BY ALL",
            [import_id],
        ).fetchall()
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_parsed")
    return ImportResult(
        import_id,
        parsed.path,
        parsed.preset,
        parsed.n_rows,
        added,
        parsed.n_rows - added,
        parsed.kind_note,
        {(k, sp): n for k, sp, n in by},
    )
