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
>>> con.execute("SELECT kind, context FROM examples ORDER BY kind").fetchall()
[('context', 'Hamlet is by Shakespeare.'), ('instruction', None)]
>>> tmp.cleanup()
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import orjson
import pyarrow as pa
from pydantic import BaseModel, Field, field_validator, model_validator

from reset_core.store import one

SPLITS = ("seen", "test_seen", "test_unseen")
KINDS = ("instruction", "context")
FIELDS = ("instruction", "context", "reference")
#: What a column mapping may fill: the text fields plus per-row id, source, split, kind.
MAPPING_TARGETS = (*FIELDS, "id", "source", "split", "kind")
SUMMARIZE_INSTRUCTION = "Summarize the following article in a few sentences."


class ImportRejected(ValueError):
    """A file that cannot be imported; the message names file, location and field."""

    def __init__(self, path: str | Path, where: str | None, field: str | None, problem: str):
        self.path, self.where, self.field, self.problem = str(path), where, field, problem
        parts = [str(path)]
        if where:
            parts.append(where)
        if field:
            parts.append(f"field '{field}'")
        super().__init__(", ".join(parts) + ": " + problem)


class _RowError(Exception):
    """Raised by presets inside one row; the reader adds file and location."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


class ImportOptions(BaseModel):
    """How to read one file into examples. Help texts drive the CLI and the Data page."""

    preset: str | None = Field(
        None,
        description="File shape: alpaca, dolly, qa, nq, summarization, chat, self_instruct. "
        "Leave empty to detect it from the columns, or give a column mapping instead.",
    )
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Explicit column mapping, e.g. instruction=question, context=passage, "
        "reference=answers[0], id=qid. Dotted paths and [i] indexes reach nested fields.",
    )
    kind: Literal["auto", "instruction", "context"] = Field(
        "auto",
        description="Example kind. auto: 'context' when a context is present, else 'instruction'.",
    )
    source: str | None = Field(
        None, description="Source dataset name stored with each example (default: the file name)."
    )
    split: Literal["seen", "test_seen", "test_unseen"] = Field(
        "seen",
        description="Split for every row: seen (RESET sampling), test_seen or test_unseen "
        "(evaluation). Ignored when split ratios are given.",
    )
    split_ratios: dict[str, float] | None = Field(
        None,
        description="Assign splits by ratio instead, e.g. seen=0.9,test_seen=0.1. Stable per "
        "example: decided by a hash of its content and the seed, not by row order.",
    )
    seed: int = Field(0, description="Seed for the split-by-ratio assignment.")
    max_chars: int = Field(
        50_000, ge=1, description="Reject any instruction, context or reference longer than this."
    )

    @field_validator("mapping")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        bad = set(v) - set(MAPPING_TARGETS)
        if bad:
            raise ValueError(
                f"mapping targets {sorted(bad)} unknown; use {', '.join(MAPPING_TARGETS)}"
            )
        if v and "instruction" not in v:
            raise ValueError("a column mapping must say which column is the instruction")
        return v

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        bad = set(v) - set(SPLITS)
        if bad:
            raise ValueError(f"unknown split(s) {sorted(bad)}; expected {list(SPLITS)}")
        if any(r < 0 for r in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split ratios must be non-negative and sum to 1, got {v}")
        return v

    @model_validator(mode="after")
    def _preset_or_mapping(self) -> ImportOptions:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known presets: {', '.join(PRESETS)}")
        return self


@dataclass(frozen=True)
class ImportResult:
    import_id: str
    path: str
    preset: str
    n_rows: int
    n_added: int
    n_duplicates: int


# --------------------------------------------------------------------------- presets
# A preset turns one raw record into zero or more examples (dicts with instruction,
# context, reference and optionally id). They raise _RowError naming the field.


def _text(row: dict, key: str, required: bool = False) -> str | None:
    if key not in row or row[key] is None:
        if required:
            raise _RowError(key, "missing required field")
        return None
    value = row[key]
    if not isinstance(value, str):
        raise _RowError(key, f"expected text, got {type(value).__name__}")
    return value


def _first_answer(row: dict, key: str) -> str | None:
    """QA answers come as a string, a list of strings, or SQuAD's {"text": [...]}."""
    value = row.get(key)
    if isinstance(value, dict):
        value = value.get("text")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(a, str) for a in value):
            return value[0]
    raise _RowError(key, f"expected text or a list of texts, got {type(value).__name__}")


@dataclass(frozen=True)
class _Flat:
    """A preset whose fields are plain top-level text columns (SQL can map these too)."""

    columns: dict[str, str]  # example field -> file column
    required: tuple[str, ...]
    instruction: str | None = None  # fixed request when the file has none

    def __call__(self, row: dict) -> list[dict]:
        ex = {f: _text(row, c, required=f in self.required) for f, c in self.columns.items()}
        if self.instruction is not None:
            ex["instruction"] = self.instruction
        return [ex]


_ALPACA = {"instruction": "instruction", "context": "input", "reference": "output"}
_FLAT = {
    "alpaca": _Flat(_ALPACA, ("instruction",)),
    "dolly": _Flat({**_ALPACA, "context": "context", "reference": "response"}, ("instruction",)),
    "summarization": _Flat(
        {"context": "article", "reference": "highlights"}, ("context",), SUMMARIZE_INSTRUCTION
    ),
}


def _preset_qa(row: dict) -> list[dict]:
    return [
        {
            "instruction": _text(row, "question", required=True),
            "context": _text(row, "context", required=True),
            "reference": _first_answer(row, "answers"),
        }
    ]


def _preset_nq(row: dict) -> list[dict]:
    ctxs = row.get("ctxs")
    if not isinstance(ctxs, list) or not ctxs:
        raise _RowError("ctxs", "expected a non-empty list of passages")
    if not all(isinstance(c, dict) for c in ctxs):
        raise _RowError("ctxs", "expected passages as objects with title and text")
    gold = next((c for c in ctxs if c.get("isgold")), ctxs[0])
    text = _text(gold, "text", required=True)
    title = gold.get("title")
    context = f"{title}\n{text}" if isinstance(title, str) and title else text
    return [
        {
            "instruction": _text(row, "question", required=True),
            "context": context,
            "reference": _first_answer(row, "answers"),
        }
    ]


def _preset_chat(row: dict) -> list[dict]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RowError("messages", "expected a non-empty list of {role, content} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise _RowError(f"messages[{i}]", "expected an object with a text 'content'")
    # The last assistant turn is the reference; the user turn before it is the request.
    reference = None
    if messages[-1].get("role") == "assistant":
        reference = messages[-1]["content"]
        messages = messages[:-1]
    users = [m["content"] for m in messages if m.get("role") == "user"]
    if not users:
        raise _RowError("messages", "no user message")
    system = [m["content"] for m in messages if m.get("role") == "system"]
    return [
        {
            "instruction": users[-1],
            "context": "\n\n".join(system) if system else None,
            "reference": reference,
        }
    ]


def _preset_self_instruct(row: dict) -> list[dict]:
    instruction = _text(row, "instruction", required=True)
    instances = row.get("instances")
    if not isinstance(instances, list) or not instances:
        raise _RowError("instances", "expected a non-empty list of {input, output}")
    base_id = row.get("id")
    out = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise _RowError(f"instances[{i}]", "expected an object with input and output")
        try:
            ex = {
                "instruction": instruction,
                "context": _text(inst, "input"),
                "reference": _text(inst, "output"),
            }
        except _RowError as e:
            raise _RowError(f"instances[{i}].{e.field}", e.problem) from None
        if base_id is not None:
            ex["id"] = f"{base_id}#{i}" if len(instances) > 1 else base_id
        out.append(ex)
    return out


PRESETS: dict[str, Callable[[dict], list[dict]]] = {
    **_FLAT,
    "qa": _preset_qa,
    "nq": _preset_nq,
    "chat": _preset_chat,
    "self_instruct": _preset_self_instruct,
}

#: Which file column each preset reads for each example field, so errors name the
#: column the user sees in their file rather than our field name.
PRESET_COLUMNS: dict[str, dict[str, str]] = {
    **{name: flat.columns for name, flat in _FLAT.items()},
    "qa": {"instruction": "question", "context": "context", "reference": "answers"},
    "nq": {"instruction": "question", "context": "ctxs", "reference": "answers"},
    "chat": {"instruction": "messages", "context": "messages", "reference": "messages"},
    "self_instruct": {
        "instruction": "instruction",
        "context": "instances",
        "reference": "instances",
    },
}

#: Columns that identify a preset, checked in order, for auto-detection.
_DETECT: list[tuple[str, set[str]]] = [
    ("chat", {"messages"}),
    ("self_instruct", {"instruction", "instances"}),
    ("nq", {"question", "ctxs"}),
    ("qa", {"question", "context"}),
    ("summarization", {"article"}),
    ("dolly", {"instruction", "response"}),
    ("alpaca", {"instruction"}),
]


def detect_preset(columns: set[str]) -> str | None:
    """The preset whose identifying columns the first record has, or None."""
    for name, needed in _DETECT:
        if needed <= columns:
            return name
    return None


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _get_path(row: Any, path: str) -> Any:
    """Follow ``a.b[0].c`` into nested records; a missing step raises KeyError."""
    value = row
    for name, index in _PATH_TOKEN.findall(path):
        if name:
            if not isinstance(value, dict) or name not in value:
                raise KeyError(path)
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                raise KeyError(path)
            value = value[int(index)]
    return value


def _mapped(mapping: dict[str, str]) -> Callable[[dict], list[dict]]:
    def convert(row: dict) -> list[dict]:
        ex: dict[str, Any] = {}
        for target, path in mapping.items():
            try:
                value = _get_path(row, path)
            except KeyError:
                if target == "instruction":
                    raise _RowError(path, "missing required field") from None
                value = None
            if value is not None and not isinstance(value, str):
                if target == "id" and isinstance(value, int):
                    value = str(value)
                else:
                    raise _RowError(path, f"expected text, got {type(value).__name__}")
            ex[target] = value
        return [ex]

    return convert


# --------------------------------------------------------------------------- readers
# Each reader yields (location, record) with a human location ("line 12", "row 3").


def _decode_error(path: Path, data: bytes, err: UnicodeDecodeError) -> ImportRejected:
    line = data.count(b"\n", 0, err.start) + 1
    return ImportRejected(path, f"line {line}", None, f"not valid UTF-8 ({err.reason})")


def _read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    data = path.read_bytes()
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as ue:
                raise ImportRejected(
                    path, f"line {lineno}", None, f"not valid UTF-8 ({ue.reason})"
                ) from None
            raise ImportRejected(path, f"line {lineno}", None, f"malformed JSON ({e})") from None
        yield f"line {lineno}", record


def _read_json(path: Path) -> Iterator[tuple[str, Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _decode_error(path, data, e) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportRejected(path, f"line {e.lineno}", None, f"malformed JSON ({e.msg})") from None
    if isinstance(doc, dict):
        # {"data": [...]} and similar single-key wrappers.
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ImportRejected(path, None, None, "expected a JSON array of records")
        doc = lists[0]
    if not isinstance(doc, list):
        raise ImportRejected(path, None, None, "expected a JSON array of records")
    for i, record in enumerate(doc, start=1):
        yield f"record {i}", record


def _read_csv(path: Path) -> Iterator[tuple[str, Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _decode_error(path, data, e) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise ImportRejected(path, "line 1", None, f"malformed CSV ({e})") from None
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ImportRejected(
                path, f"line {reader.line_num}", None, f"malformed CSV ({e})"
            ) from None
        if not values:
            start = reader.line_num
            continue
        if len(values) != len(header):
            raise ImportRejected(
                path,
                f"line {start + 1}",
                None,
                f"malformed CSV (expected {len(header)} columns, got {len(values)})",
            )
        # Empty CSV cells mean "absent", as they would be in JSON.
        yield (
            f"line {start + 1}",
            {k: (v if v != "" else None) for k, v in zip(header, values, strict=True)},
        )
        start = reader.line_num


def _read_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ImportRejected(path, None, None, f"not a readable Parquet file ({e})") from None
    for i, record in enumerate(table.to_pylist(), start=1):
        yield f"row {i}", record


def _read_hf_folder(path: Path) -> Iterator[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise ImportRejected(
            path, None, None, f"not a Hugging Face datasets folder ({e})"
        ) from None
    parts = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    for name, part in parts:
        for i, record in enumerate(part, start=1):
            yield (f"split {name}, row {i}" if name else f"row {i}"), record


def _reader(path: Path) -> Callable[[Path], Iterator[tuple[str, Any]]]:
    if path.is_dir():
        return _read_hf_folder
    suffixes = "".join(path.suffixes[-2:]).lower()
    for ext, reader in (
        (".jsonl", _read_jsonl),
        (".ndjson", _read_jsonl),
        (".json", _read_json),
        (".csv", _read_csv),
        (".parquet", _read_parquet),
    ):
        if suffixes.endswith(ext):
            return reader
    raise ImportRejected(
        path,
        None,
        None,
        "unsupported file type; expected .jsonl, .json, .csv, .parquet "
        "or a Hugging Face datasets folder",
    )


# --------------------------------------------------------------------------- import


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
)

_FINALIZE = """
WITH m AS (
    SELECT *, md5(instruction || chr(31) || coalesce(context, '')) AS content_hash
    FROM mapped
), u AS (
    SELECT *, (md5_number(? || ':' || content_hash) % 1000000007) / 1000000007.0 AS u
    FROM m
)
SELECT
    CASE WHEN raw_id IS NULL THEN 'h:' || substr(content_hash, 1, 20)
         ELSE source_ || ':' || raw_id END AS example_id,
    instruction, context, reference,
    coalesce(kind_, ?, CASE WHEN context IS NOT NULL THEN 'context' ELSE 'instruction' END) AS kind,
    source_ AS source,
    coalesce(split_, CASE WHEN ? THEN
        CASE WHEN u < ? THEN 'seen' WHEN u < ? THEN 'test_seen' ELSE 'test_unseen' END
        ELSE ? END) AS split,
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


def _finalize(staging: duckdb.DuckDBPyConnection, options: ImportOptions, source: str) -> pa.Table:
    ratios = options.split_ratios or {}
    r_seen = ratios.get("seen", 0.0)
    staging.execute("UPDATE mapped SET source_ = coalesce(source_, ?)", [source])
    return staging.sql(
        _FINALIZE,
        params=[
            str(options.seed),
            None if options.kind == "auto" else options.kind,
            bool(ratios),
            r_seen,
            r_seen + ratios.get("test_seen", 0.0),
            options.split,
        ],
    ).to_arrow_table()


@dataclass
class ParsedFile:
    """A validated file, ready to insert: ``table`` has one row per unique example."""

    path: str
    preset: str
    table: pa.Table
    n_rows: int
    n_duplicates: int


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
    reader = _reader(path)
    source = options.source or (path.stem if path.is_file() else path.name)
    staging = duckdb.connect()
    try:
        preset = _map_fast(staging, path, reader, options)
        if preset is None:
            preset = _map_rows(staging, path, reader, options)
        n_rows = one(staging, "SELECT count(*) FROM mapped")[0]
        if n_rows == 0:
            raise ImportRejected(path, None, None, "no records")
        table = _finalize(staging, options, source)
    finally:
        staging.close()
    return ParsedFile(str(path), preset, table, n_rows, n_rows - table.num_rows)


_SQL_READERS = {_read_jsonl: "read_json", _read_csv: "read_csv", _read_parquet: "read_parquet"}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _map_fast(staging, path: Path, reader, options: ImportOptions) -> str | None:
    """Map a flat file in SQL; return its preset, or None to use the row reader."""
    fn = _SQL_READERS.get(reader)
    if fn is None:
        return None
    args = {
        "read_json": ", format='newline_delimited', records=true",
        "read_csv": ", header=true, all_varchar=true, strict_mode=true",
        "read_parquet": "",
    }[fn]
    try:
        staging.execute(f"CREATE TABLE raw AS SELECT * FROM {fn}(?{args})", [str(path)])
        types = dict((r[0], r[1]) for r in staging.execute("DESCRIBE raw").fetchall())
    except duckdb.Error:
        return None  # malformed, non-UTF-8, ...: the row reader names the line
    if options.mapping:
        if any(not re.fullmatch(r"[^.\[\]]+", c) for c in options.mapping.values()):
            return None
        columns, preset = dict(options.mapping), "mapping"
    else:
        preset = options.preset or detect_preset(set(types))
        if preset not in _FLAT:
            return None
        columns = _FLAT[preset].columns
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

    fixed = _FLAT[preset].instruction if preset in _FLAT else None
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
            CAST(nullif({col("kind")}, '') AS VARCHAR) AS kind_
        FROM raw""",
        params,
    )
    required = _FLAT[preset].required if preset in _FLAT else ("instruction",)
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
    convert = _mapped(options.mapping) if options.mapping else None
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
        except _RowError as e:
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
    mapped = pa.table(
        {k: pa.array(v, type=pa.int64() if k == "rownum" else pa.string()) for k, v in cols.items()}
    )
    staging.register("_rows", mapped)
    staging.execute("CREATE TABLE mapped AS SELECT * FROM _rows")
    staging.unregister("_rows")
    return preset or "mapping"


def import_file(
    con: duckdb.DuckDBPyConnection, path: str | Path, options: ImportOptions | None = None
) -> ImportResult:
    """Validate ``path`` and add its examples in one transaction; all or nothing.

    Rows whose content is already stored count as duplicates and are skipped. An
    explicit id that is already stored with different content is rejected.
    """
    options = options or ImportOptions()
    parsed = read_examples(path, options)
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
            "split, content_hash, import_id) "
            "SELECT p.example_id, p.instruction, p.context, p.reference, p.kind, p.source, "
            "p.split, p.content_hash, ? FROM _parsed p "
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
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_parsed")
    return ImportResult(
        import_id, parsed.path, parsed.preset, parsed.n_rows, added, parsed.n_rows - added
    )
