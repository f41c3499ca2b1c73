"""File readers: each yields ``(location, record)`` with a human location ("line 12",
"row 3"), and raises :class:`ImportRejected` naming the file and the line when the
file itself is broken (malformed JSON or CSV, not UTF-8, unreadable Parquet).

>>> import tempfile
>>> f = Path(tempfile.mkdtemp()) / "two.jsonl"
>>> _ = f.write_text('{"instruction": "Hi"}\\n\\n{"instruction": "Bye"}\\n')
>>> list(reader_for(f)(f))
[('line 1', {'instruction': 'Hi'}), ('line 3', {'instruction': 'Bye'})]
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from reset_core.ingest.config import ImportRejected


def _decode_error(path: Path, data: bytes, err: UnicodeDecodeError) -> ImportRejected:
    line = data.count(b"\n", 0, err.start) + 1
    return ImportRejected(path, f"line {line}", None, f"not valid UTF-8 ({err.reason})")


def read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
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


def read_json(path: Path) -> Iterator[tuple[str, Any]]:
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


def read_csv(path: Path) -> Iterator[tuple[str, Any]]:
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


def read_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ImportRejected(path, None, None, f"not a readable Parquet file ({e})") from None
    for i, record in enumerate(table.to_pylist(), start=1):
        yield f"row {i}", record


def read_hf_folder(path: Path) -> Iterator[tuple[str, Any]]:
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


def reader_for(path: Path) -> Callable[[Path], Iterator[tuple[str, Any]]]:
    if path.is_dir():
        return read_hf_folder
    suffixes = "".join(path.suffixes[-2:]).lower()
    for ext, reader in (
        (".jsonl", read_jsonl),
        (".ndjson", read_jsonl),
        (".json", read_json),
        (".csv", read_csv),
        (".parquet", read_parquet),
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
