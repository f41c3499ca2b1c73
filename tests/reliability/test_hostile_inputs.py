"""Hostile datasets: every file of the corpus through the real importer.

Each file is either rejected with an error naming the file, the line (or row) and the
field where one applies, with the database byte-for-byte unchanged, or imported with
exactly the rows it holds. A few go through ``reset-studio import`` in a subprocess:
exit status not 0, one ``error:`` line, no traceback. Uploaded file names go through
``safe_upload_name``; formula strings through the JSONL and Parquet exports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from reset_core.deployment import safe_upload_name, session_upload_dir
from reset_core.ingest.config import ImportOptions, ImportRejected
from reset_core.ingest.importer import import_file
from reset_core.store import connect
from tests.conftest import ROOT, table_snapshot
from tests.reliability.hostile_corpus import CASES, FORMULAS, UPLOAD_NAMES, build_corpus
from tests.reliability.record import record

SEED = 13


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    cases = build_corpus(tmp_path_factory.mktemp("hostile"), seed=SEED)
    return {c.name: c for c in cases}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One database for the whole corpus, holding a first, good import: an unchanged
    snapshot then means no table gained, lost or changed a row."""
    folder = tmp_path_factory.mktemp("hostile-db")
    con = connect(folder / "studio.duckdb")
    good = folder / "good.jsonl"
    good.write_text(
        "".join(
            json.dumps({"instruction": f"Good question {i}?", "input": "", "output": "Yes."}) + "\n"
            for i in range(5)
        )
    )
    import_file(con, good)
    yield con
    con.close()


def test_corpus_has_every_class(corpus):
    assert len(corpus) >= 30
    expects = {c.expect for c in corpus.values()}
    assert expects == {"reject", "import"}
    assert all(c.doc for c in corpus.values()), "every case says what it is and its answer"


@pytest.mark.parametrize("name", [fn.__name__ for fn in CASES])
def test_hostile_file(name, corpus, store):
    c = corpus[name]
    before = table_snapshot(store)
    options = ImportOptions(**c.options)
    if c.expect == "reject":
        with pytest.raises(ImportRejected) as info:
            import_file(store, c.path, options)
        e = info.value
        message = str(e)
        assert (e.path, e.where, e.field) == (str(c.path), c.where, c.field), message
        assert c.phrase in message
        assert message.startswith(str(c.path)) and "\n" not in message
        assert table_snapshot(store) == before, "a rejected import changed the database"
        record("hostile", c.name, "rejected: " + message.removeprefix(str(c.path.parent) + "/"))
        return
    result = import_file(store, c.path, options)
    stored = store.execute(
        "SELECT instruction, context, reference, kind, split FROM examples WHERE import_id = ?",
        [result.import_id],
    ).fetchall()
    assert sorted(stored) == sorted((*r, "instruction", "seen") for r in c.rows)
    assert (result.n_rows, result.n_added, result.n_duplicates) == (
        len(c.rows) + c.n_duplicates,
        len(c.rows),
        c.n_duplicates,
    )
    after = table_snapshot(store)
    # Only the new rows and their import record: nothing stored before was touched.
    assert set(before["examples"]) <= set(after["examples"])
    assert len(after["examples"]) == len(before["examples"]) + len(c.rows)
    assert len(after["imports"]) == len(before["imports"]) + 1
    assert {t: v for t, v in after.items() if t not in ("examples", "imports")} == {
        t: v for t, v in before.items() if t not in ("examples", "imports")
    }
    record("hostile", c.name, f"imported safely: {len(c.rows)} rows exact", rows=len(c.rows))


#: Cases also run through the command line: the crash the issue names, and others
#: whose message used to be a puzzle.
CLI_CASES = ["json_deep_nesting", "csv_unbalanced_quote", "jsonl_gzip"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_rejects_in_one_line(name, corpus, tmp_path):
    c = corpus[name]
    db = tmp_path / "cli.duckdb"
    con = connect(db)
    before = table_snapshot(con)
    con.close()  # one writer: the CLI process opens the file itself
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "reset_core.cli", "--db", str(db), "import", str(c.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"error: {c.path}") and (c.where or "") in lines[0], proc.stderr
    assert c.phrase in lines[0]
    assert lines[1:] == ["nothing was imported; the database is unchanged"]
    con = connect(db)
    try:
        assert table_snapshot(con) == before
    finally:
        con.close()
    record(
        "hostile",
        f"{name} (CLI)",
        f"exit {proc.returncode}: {lines[0]}".replace(str(c.path.parent) + "/", ""),
    )


def test_upload_names_stay_in_the_session_folder(tmp_path):
    folder = session_upload_dir(tmp_path, "session-1")
    for raw, expected in UPLOAD_NAMES.items():
        name = safe_upload_name(raw)
        assert name == expected, raw
        assert name not in ("", ".", "..") and not name.startswith("."), raw
        assert not any(ch in name for ch in "/\\\x00") and name.isprintable(), raw
        assert len(name.encode()) <= 255, raw
        target = folder / name
        target.write_bytes(raw.encode("utf-8", "surrogatepass"))  # the file system takes it
        assert target.resolve().parent == folder.resolve(), raw
    assert sorted(p.name for p in folder.iterdir()) == sorted(set(UPLOAD_NAMES.values()))
    record(
        "hostile",
        f"{len(UPLOAD_NAMES)} uploaded file names (../, absolute, backslashes, NUL, 5,000 chars)",
        "each stored as a bare name inside the session's upload folder, suffix kept",
        names=len(UPLOAD_NAMES),
    )


def test_formula_strings_leave_data_exports_unchanged(corpus, tmp_path):
    """JSONL and Parquet exports are data formats: the text goes out as it came in."""
    from reset_core.curation.export import export_set
    from reset_core.curation.sets import create_reference_set

    con = connect(tmp_path / "export.duckdb")
    c = corpus["jsonl_formula_strings"]
    import_file(con, c.path, ImportOptions(source="formulas"))
    set_id = create_reference_set(con, sources=["formulas"])
    wanted = {ref for _, _, ref in c.rows}
    for fmt in ("jsonl", "parquet"):
        out = export_set(con, set_id, tmp_path / fmt, form="prompt_completion", fmt=fmt)
        rows = (
            [json.loads(line) for line in out.read_text().splitlines()]
            if fmt == "jsonl"
            else pq.read_table(out).to_pylist()
        )
        completions = {r["completion"][0]["content"] for r in rows}
        prompts = " ".join(r["prompt"][0]["content"] for r in rows)
        assert completions == wanted == set(FORMULAS)
        assert all(f in prompts for f in FORMULAS)
    con.close()
    record("hostile", "formula strings, JSONL/Parquet export", "text unchanged (data formats)")


#: Ways Python code here could write CSV. Each must neutralise formula cells (OWASP:
#: prefix ' to a cell starting with = + - @ tab or CR); the allowed ones are listed.
CSV_WRITERS = re.compile(
    r"to_csv\(|csv\.writer|csv\.DictWriter|write_csv\(|FORMAT\s*'?csv|text/csv", re.IGNORECASE
)
NEUTRALISED_WRITERS = {"reset_core/curation/export.py"}


def test_csv_exports_neutralise_formulas(corpus, tmp_path):
    """The curated set's CSV sheet comes out with every formula cell neutralised, readable
    back to the original text; Streamlit's own raw "Download as CSV" on tables is off; and
    no other CSV writer exists in reset_core or the pages."""
    import csv
    import tomllib

    from reset_core.curation.export import export_set
    from reset_core.curation.sets import create_reference_set

    con = connect(tmp_path / "export.duckdb")
    c = corpus["jsonl_formula_strings"]
    import_file(con, c.path, ImportOptions(source="formulas"))
    set_id = create_reference_set(con, sources=["formulas"])
    out = export_set(con, set_id, tmp_path / "sheet", fmt="csv")
    with open(out, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    con.close()
    cells = [v for r in rows for v in r.values()]
    assert {r["completion"] for r in rows} == {"'" + f for f in FORMULAS}
    assert not [v for v in cells if v[:1] in ("=", "+", "-", "@", "\t", "\r")]

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["disableDataExport"] is True

    sources = [*ROOT.joinpath("reset_core").rglob("*.py"), *ROOT.joinpath("pages").glob("*.py")]
    writers = {
        str(p.relative_to(ROOT))
        for p in [*sources, ROOT / "app.py"]
        for line in p.read_text().splitlines()
        if CSV_WRITERS.search(line)
    }
    assert writers == NEUTRALISED_WRITERS, f"CSV writers without formula neutralising: {writers}"
    record(
        "hostile",
        "formula strings, CSV exports",
        f"{len(rows)} formula cells neutralised in the curated set's CSV; Streamlit's raw "
        "table CSV download disabled",
        neutralised=len(rows),
    )


def test_an_unreadable_file_is_one_clear_error(tmp_path, monkeypatch):
    """A file the app may not read (root reads everything, so the refusal is staged)
    gets one line naming the file, not a traceback, and the database is unchanged."""
    import builtins

    from reset_core.ingest import importer

    path = tmp_path / "locked.jsonl"
    path.write_text('{"instruction": "Say hi.", "output": "Hi."}\n')
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(importer, "open", refusing_open, raising=False)
    con = connect(tmp_path / "locked.duckdb")
    before = table_snapshot(con)
    with pytest.raises(ImportRejected, match=r"locked\.jsonl: cannot be read: Permission denied"):
        import_file(con, path, ImportOptions(preset="alpaca"))
    assert table_snapshot(con) == before
    con.close()
    record("hostile", "unreadable file", "rejected: cannot be read: Permission denied")
