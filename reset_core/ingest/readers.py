"""File readers: each yields ``(location, record)`` with a human location ("line 12",
"row 3"), and raises :class:`ImportRejected` naming the file and the line when the
file itself is broken (malformed JSON or CSV, not UTF-8, compressed or UTF-16, a NUL
byte, unreadable Parquet).

>>> import tempfile
>>> f = Path(tempfile.mkdtemp()) / "two.jsonl"
>>> _ = f.write_text('{"instruction": "Hi"}\\n\\n{"instruction": "Bye"}\\n')
>>> list(reader_for(f)(f))
[('line 1', {'instruction': 'Hi'}), ('line 3', {'instruction': 'Bye'})]
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from reset_core.ingest.config import ImportRejected

_UTF8_BOM = b"\xef\xbb\xbf"
_NOT_TEXT = (
    # (leading bytes, what the file is): a wrong file under a text suffix gets one
    # sentence saying so, not a "malformed JSON" or "not UTF-8" on line 1.
    (b"\x1f\x8b", "is gzip-compressed; decompress it first"),
    (b"PK\x03\x04", "is a zip archive; extract it first"),
    (b"PAR1", "is a Parquet file; give it a .parquet name"),
    (b"\xff\xfe", "is UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8"),
    (b"\xfe\xff", "is UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8"),
)


def check_text(path: Path, data: bytes) -> None:
    """Raise :class:`ImportRejected` if ``data`` cannot be a UTF-8 text file: compressed,
    an archive, UTF-16, or holding a NUL byte (UTF-16 without a byte order mark, or a
    binary file). A NUL byte inside JSON text is written ``\\u0000``; a raw one never
    belongs in a text file, and the readers would otherwise report it as a puzzling
    "malformed" line or import it into the text.

    >>> check_text(Path("x.jsonl"), b'{"instruction": "Hi"}\\n\\x00')
    Traceback (most recent call last):
    ...
    reset_core.ingest.config.ImportRejected: x.jsonl, line 2: contains a NUL byte...
    """
    head = data[:4]
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            raise ImportRejected(path, None, None, what)
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ImportRejected(
            path,
            f"line {line}",
            None,
            "contains a NUL byte, which a UTF-8 text file never holds "
            "(UTF-16 text or a binary file?); save it as UTF-8 text",
        )


def check_text_file(path: Path) -> None:
    """:func:`check_text` on a file without reading it into memory (memory-mapped)."""
    import mmap

    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            nul = m.find(b"\x00")
            check_text(path, m[:4] if nul < 0 else m[: nul + 1])


def _read_text(path: Path) -> bytes:
    data = path.read_bytes()
    check_text(path, data)
    return data


def _decode_error(path: Path, data: bytes, err: UnicodeDecodeError) -> ImportRejected:
    line = data.count(b"\n", 0, err.start) + 1
    return ImportRejected(path, f"line {line}", None, f"not valid UTF-8 ({err.reason})")


_KEY_BEFORE = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*$')
_NAN = re.compile(r"-?(NaN|Infinity)\b")


def _json_rejection(
    path: Path, e: orjson.JSONDecodeError, lineno: int, line: bytes
) -> ImportRejected:
    """A parse error on line ``lineno``, naming the field when the bad value follows a key.

    orjson also refuses NaN/Infinity (not JSON), lone surrogates and nesting deeper
    than 1024 levels; its message says which, and at what column.
    """
    text = line.decode("utf-8", "replace")
    at = max(e.colno - 1, 0)
    key = _KEY_BEFORE.search(text[max(at - 1000, 0) : at])
    hint = "; NaN and Infinity are not JSON, write null" if _NAN.match(text, at) else ""
    # orjson says "depth limit exceeded": say which limit.
    problem = "nested more than 1,024 levels deep" if "depth limit" in e.msg else e.msg
    return ImportRejected(
        path,
        f"line {lineno}",
        key.group(1) if key else None,
        f"malformed JSON ({problem} at column {e.colno}{hint})",
    )


def read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    data = _read_text(path)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
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
            raise _json_rejection(path, e, lineno, raw) from None
        yield f"line {lineno}", record


def read_json(path: Path) -> Iterator[tuple[str, Any]]:
    data = _read_text(path)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _decode_error(path, data, e) from None
    # orjson, not the json module: json recurses once per nesting level (a deeply
    # nested document raised RecursionError) and lets NaN and lone surrogates
    # through, which then fail far from the file.
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise _json_rejection(path, e, e.lineno, data.split(b"\n")[e.lineno - 1]) from None
    if isinstance(doc, dict):
        # {"data": [...]} and similar single-key wrappers.
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ImportRejected(path, None, None, "expected a JSON array of records")
        doc = lists[0]
    if not isinstance(doc, list):
        raise ImportRejected(
            path, None, None, f"expected a JSON array of records, got {type(doc).__name__}"
        )
    for i, record in enumerate(doc, start=1):
        yield f"record {i}", record


# Python's csv module stops at 131,072 characters per field by default and calls that
# malformed; the length rule that applies is the import's own max_chars, checked per
# field with its row and name. The limit is process-wide; raising it changes nothing
# for other readers of well-formed files.
csv.field_size_limit(2**31 - 1)


def read_csv(path: Path) -> Iterator[tuple[str, Any]]:
    data = _read_text(path)
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
        raise ImportRejected(path, "line 1", None, _csv_error(e, 1, reader.line_num)) from None
    twice = duplicate_columns(header)
    if twice:
        # A record keeps one value per name: which of the two columns is the data?
        raise ImportRejected(path, "line 1", twice[0], "column name appears twice in the header")
    start = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ImportRejected(
                path, f"line {start + 1}", None, _csv_error(e, start + 1, reader.line_num)
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


def duplicate_columns(header: list[str]) -> list[str]:
    """Names that appear more than once in a CSV header, in order. Empty names (unnamed
    columns, such as a spreadsheet's index) can never be mapped, so they may repeat.

    >>> duplicate_columns(["", "instruction", "output", "", "instruction"])
    ['instruction']
    """
    seen: set[str] = set()
    return [n for n in header if n and (n in seen or seen.add(n))]


def _csv_error(e: csv.Error, record_line: int, error_line: int) -> str:
    """The csv module's error in words; ``record_line`` is where the bad record starts."""
    if "unexpected end of data" in str(e):
        # A quote opened on this record and never closed: the reader swallowed every
        # line after it. Name the line the quote opened on, not the end of the file.
        return (
            'malformed CSV (a quoted field opens here and its closing " never comes; '
            'a literal quote inside a field is written twice: "")'
        )
    where = f" on line {error_line}" if error_line != record_line else ""
    return f"malformed CSV ({e}{where})"


def read_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ImportRejected(path, None, None, f"not a readable Parquet file ({e})") from None
    # Parquet does not promise valid UTF-8 in a string column, and pyarrow reads it
    # unchecked: the first to_pylist would raise UnicodeDecodeError far from the file.
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            for i, raw in enumerate(column.cast(pa.large_binary()).to_pylist(), start=1):
                try:
                    if raw is not None:
                        raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ImportRejected(
                        path, f"row {i}", name, f"not valid UTF-8 ({e.reason})"
                    ) from None
    try:
        records = table.to_pylist()
    except UnicodeDecodeError as e:  # inside a nested column
        raise ImportRejected(path, None, None, f"not valid UTF-8 ({e.reason})") from None
    for i, record in enumerate(records, start=1):
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
