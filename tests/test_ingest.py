"""Import: every preset from real data, and every bad-input case leaves the database unchanged."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FIXTURES, table_snapshot

from reset_core.ingest.config import ImportOptions, ImportRejected
from reset_core.ingest.importer import import_file, read_examples
from reset_core.store import counts

# Real rows from ../shared/data (tests/fixtures/make_fixtures.py), one file per preset
# at least. The kind is the dataset's role, whether or not a row carries a context:
# the last column counts the rows that do, so each role is seen holding both shapes
# where the data has them (Alpaca's input, Dolly's context, Self-Instruct's input).
PRESET_CASES = [
    ("alpaca.json", "alpaca", 8, "instruction", 5),
    ("dolly_unused.jsonl", "alpaca", 8, "instruction", 0),
    ("dolly_context.csv", "dolly", None, "instruction", None),
    ("qa_squad_shape.jsonl", "qa", 6, "context", 6),
    ("nq_oracle.jsonl", "nq", 6, "context", 6),
    ("cnn_summarization.jsonl", "summarization", 4, "context", 4),
    ("dolly_chat.jsonl", "chat", 5, "instruction", 0),
    ("self_instruct_seed.jsonl", "self_instruct", 6, "instruction", 5),
    ("ifeval_input.jsonl", "ifeval", 6, "instruction", 0),
]


def test_every_preset_declares_a_kind_and_is_checked_on_real_data():
    from reset_core.ingest.presets import PRESET_KINDS, PRESETS

    assert set(PRESET_KINDS) == set(PRESETS)
    assert {p for _, p, *_ in PRESET_CASES} == set(PRESETS)
    assert {p for p, k in PRESET_KINDS.items() if k == "instruction"} == {
        "alpaca",
        "dolly",
        "self_instruct",
        "chat",
        "ifeval",
    }


@pytest.mark.parametrize("fixture, preset, n, kind, n_context", PRESET_CASES)
def test_each_preset_imports_real_data_as_its_datasets_role(
    con, fixture, preset, n, kind, n_context
):
    result = import_file(con, FIXTURES / fixture, ImportOptions(preset=preset))
    assert result.preset == preset
    stored = con.execute(
        "SELECT instruction, context, reference, kind, source FROM examples"
    ).fetchall()
    assert len(stored) == result.n_added > 0
    if n is not None:
        assert result.n_rows == n
    assert all(r[0].strip() for r in stored)
    assert {r[4] for r in stored} == {(FIXTURES / fixture).stem}
    assert {r[3] for r in stored} == {kind}
    with_context = sum(1 for r in stored if r[1])
    if n_context is not None:
        assert with_context == n_context
    else:
        assert 0 < with_context == len(stored)  # every Dolly row of this file has one
    assert result.kind_note.startswith(f"kind={kind} for {len(stored)} rows: the {preset} preset")
    assert result.added == {(kind, "seen"): len(stored)}


@pytest.mark.parametrize(
    "fixture, preset",
    # dolly_unused.jsonl is Alpaca-shaped; every other fixture's preset is detectable.
    [(f, p) for f, p, *_ in PRESET_CASES if f != "dolly_unused.jsonl"],
)
def test_presets_are_detected_from_columns(fixture, preset):
    assert read_examples(FIXTURES / fixture).preset == preset


def test_preset_fields_land_where_expected(con):
    import_file(con, FIXTURES / "nq_oracle.jsonl", ImportOptions(preset="nq"))
    first = json.loads((FIXTURES / "nq_oracle.jsonl").read_text().splitlines()[0])
    row = con.execute(
        "SELECT context, reference FROM examples WHERE instruction = ?", [first["question"]]
    ).fetchall()[0]
    gold = next(c for c in first["ctxs"] if c["isgold"])
    assert row[0] == f"{gold['title']}\n{gold['text']}"
    assert row[1] == first["answers"][0]
    import_file(con, FIXTURES / "qa_squad_shape.jsonl", ImportOptions(preset="qa"))
    qa = json.loads((FIXTURES / "qa_squad_shape.jsonl").read_text().splitlines()[0])
    assert con.execute(
        "SELECT reference FROM examples WHERE instruction = ?", [qa["question"]]
    ).fetchall() == [(qa["answers"]["text"][0],)]


def test_parquet_and_hf_datasets_folder(con, tmp_path):
    rows = [json.loads(x) for x in (FIXTURES / "dolly_unused.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dolly.parquet")
    assert import_file(con, tmp_path / "dolly.parquet").n_added == len(rows)

    import datasets

    qa = [json.loads(x) for x in (FIXTURES / "qa_squad_shape.jsonl").read_text().splitlines()]
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(qa[:4]),
            "validation": datasets.Dataset.from_list(qa[4:]),
        }
    ).save_to_disk(tmp_path / "adv_qa")
    result = import_file(con, tmp_path / "adv_qa", ImportOptions(preset="qa"))
    assert (result.n_rows, result.n_added) == (len(qa), len(qa))
    assert counts(con)["examples"] == len(rows) + len(qa)


def test_explicit_mapping_with_nested_paths(con, tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text(
        json.dumps({"qid": 7, "q": "Who?", "doc": {"body": "Ada wrote it."}, "ans": ["Ada"]}) + "\n"
    )
    opts = ImportOptions(
        mapping={"instruction": "q", "context": "doc.body", "reference": "ans[0]", "id": "qid"},
        source="custom",
    )
    result = import_file(con, path, opts)
    assert con.execute("SELECT example_id, context, reference, kind FROM examples").fetchall() == [
        ("custom:7", "Ada wrote it.", "Ada", "context")
    ]
    assert result.kind_note == "kind=auto: 1 rows with a context → context, 0 without → instruction"


def test_kind_auto_is_for_column_mappings_only_and_reports_what_it_decided(con, tmp_path):
    with pytest.raises(
        ValueError,
        match="kind=auto applies only to a column mapping: preset alpaca declares instruction",
    ):
        ImportOptions(preset="alpaca", kind="auto")
    with pytest.raises(ValueError, match="kind=auto applies only to a column mapping"):
        ImportOptions(kind="auto")
    rows = [json.loads(x) for x in (FIXTURES / "qa_squad_shape.jsonl").read_text().splitlines()]
    rows[4]["context"] = None  # two rows without a passage: auto calls them instruction
    rows[5].pop("context")
    rows[0]["kind"] = "instruction"  # a mapped kind column wins over auto
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = {"instruction": "question", "context": "context", "kind": "kind"}
    parsed = read_examples(path, ImportOptions(mapping=mapping, kind="auto"))
    assert parsed.kind_note == (
        "1 rows take their kind from the mapped kind column; "
        "kind=auto: 3 rows with a context → context, 2 without → instruction"
    )
    assert parsed.counts() == {("instruction", "seen"): 3, ("context", "seen"): 3}
    # The same file through the qa preset: every row is a context example by role
    # (the two without a passage are rejected, as QA needs one).
    with pytest.raises(ImportRejected, match="line 5, field 'context'"):
        read_examples(path, ImportOptions(preset="qa"))
    # An explicit kind overrides the preset's role, and says so.
    override = read_examples(FIXTURES / "nq_oracle.jsonl", ImportOptions(kind="instruction"))
    assert override.kind_note == (
        "kind=instruction for 6 rows: as asked (the nq preset's role is context) "
        "(6 with a context, kept as part of the request)"
    )


def test_kind_override_splits_by_ratio_and_dedupe(con, tmp_path):
    rows = [json.loads(x) for x in (FIXTURES / "dolly_unused.jsonl").read_text().splitlines()]
    path = tmp_path / "twice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:3]))
    opts = ImportOptions(kind="context", split_ratios={"seen": 0.5, "test_seen": 0.5}, seed=3)
    first = import_file(con, path, opts)
    assert (first.n_rows, first.n_added, first.n_duplicates) == (len(rows) + 3, len(rows), 3)
    assert {r[0] for r in con.execute("SELECT DISTINCT kind FROM examples").fetchall()} == {
        "context"
    }
    splits = dict(con.execute("SELECT example_id, split FROM examples").fetchall())
    assert set(splits.values()) <= {"seen", "test_seen"}
    # Re-importing adds nothing, and a fresh database with the same seed gets the same splits.
    assert import_file(con, path, opts).n_added == 0
    from reset_core.store import connect

    other = connect(tmp_path / "other.duckdb")
    import_file(other, path, opts)
    assert dict(other.execute("SELECT example_id, split FROM examples").fetchall()) == splits


# ----------------------------------------------------------------------------- bad input

GOOD = {"instruction": "Name a color.", "input": "", "output": "Blue."}


def _jsonl(tmp_path, rows, name="bad.jsonl"):
    path = tmp_path / name
    path.write_bytes(
        b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)
    )
    return path


BAD_CASES = {
    "malformed_json": (
        lambda t: _jsonl(t, [GOOD, b'{"instruction": "x", "output": \n']),
        ImportOptions(preset="alpaca"),
        ["bad.jsonl", "line 2", "malformed JSON"],
    ),
    "malformed_csv": (
        lambda t: (
            (t / "bad.csv").write_text('instruction,input,output\n"ok",,"fine"\n"a,b\n')
            and t / "bad.csv"
        ),
        ImportOptions(preset="alpaca"),
        ["bad.csv", "line 3", "malformed CSV"],
    ),
    "csv_wrong_column_count": (
        lambda t: (
            (t / "bad.csv").write_text("instruction,input,output\nok,,fine\nx,y\n")
            and t / "bad.csv"
        ),
        ImportOptions(preset="alpaca"),
        ["bad.csv", "line 3", "expected 3 columns, got 2"],
    ),
    "missing_required_field": (
        lambda t: _jsonl(t, [GOOD, {"input": "", "output": "no instruction"}]),
        ImportOptions(preset="alpaca"),
        ["bad.jsonl", "line 2", "field 'instruction'", "missing required field"],
    ),
    "wrong_type": (
        lambda t: _jsonl(t, [GOOD, GOOD | {"instruction": "y", "output": 42}]),
        ImportOptions(preset="alpaca"),
        ["bad.jsonl", "line 2", "field 'output'", "expected text, got int"],
    ),
    "empty_instruction": (
        lambda t: _jsonl(t, [GOOD, GOOD | {"instruction": "   "}]),
        ImportOptions(preset="alpaca"),
        ["bad.jsonl", "line 2", "field 'instruction'", "empty instruction"],
    ),
    "non_utf8": (
        lambda t: _jsonl(t, [GOOD, b'{"instruction": "caf\xe9", "output": "x"}\n']),
        ImportOptions(preset="alpaca"),
        ["bad.jsonl", "line 2", "not valid UTF-8"],
    ),
    "non_utf8_csv": (
        lambda t: (
            (t / "bad.csv").write_bytes(b"instruction,output\nok,fine\ncaf\xe9,x\n")
            and t / "bad.csv"
        ),
        ImportOptions(preset="alpaca"),
        ["bad.csv", "line 3", "not valid UTF-8"],
    ),
    "duplicate_ids": (
        lambda t: _jsonl(
            t,
            [
                GOOD | {"id": "a"},
                GOOD | {"id": "b", "instruction": "z"},
                GOOD | {"id": "a", "instruction": "w"},
            ],
        ),
        ImportOptions(preset="alpaca"),
        ["bad.jsonl", "line 3", "field 'id'", "duplicate id 'a'", "line 1"],
    ),
    "over_size_limit": (
        lambda t: _jsonl(t, [GOOD, GOOD | {"instruction": "long", "output": "x" * 101}]),
        ImportOptions(preset="alpaca", max_chars=100),
        ["bad.jsonl", "line 2", "field 'output'", "101 characters", "limit of 100"],
    ),
    "nested_wrong_type": (
        lambda t: _jsonl(
            t, [{"question": "q", "ctxs": "not a list", "answers": ["a"]}], "nq.jsonl"
        ),
        ImportOptions(preset="nq"),
        ["nq.jsonl", "line 1", "field 'ctxs'"],
    ),
    "missing_required_article": (
        lambda t: _jsonl(
            t, [{"article": "Text.", "highlights": "T."}, {"highlights": "no article"}]
        ),
        ImportOptions(preset="summarization"),
        ["bad.jsonl", "line 2", "field 'article'", "missing required field"],
    ),
    "undetectable_shape": (
        lambda t: _jsonl(t, [{"foo": "bar"}]),
        ImportOptions(),
        ["bad.jsonl", "line 1", "cannot tell the file's shape", "foo"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_line_field_and_changes_nothing(con, tmp_path, case):
    make, opts, expected = BAD_CASES[case]
    import_file(con, FIXTURES / "dolly_unused.jsonl")  # something already stored
    before = table_snapshot(con)
    path = make(tmp_path)
    with pytest.raises(ImportRejected) as err:
        import_file(con, path, opts)
    for text in expected:
        assert text in str(err.value)
    assert table_snapshot(con) == before


def test_unknown_preset_is_rejected_by_name():
    with pytest.raises(ValueError, match="unknown preset 'squad2'.*alpaca"):
        ImportOptions(preset="squad2")


def test_id_clash_with_stored_example_changes_nothing(con, tmp_path):
    import_file(
        con, _jsonl(tmp_path, [GOOD | {"id": "k1"}], "one.jsonl"), ImportOptions(source="s")
    )
    before = table_snapshot(con)
    clash = _jsonl(
        tmp_path,
        [GOOD | {"id": "k0", "instruction": "new"}, GOOD | {"id": "k1", "instruction": "other"}],
        "two.jsonl",
    )
    with pytest.raises(ImportRejected, match="id 's:k1' is already stored with different content"):
        import_file(con, clash, ImportOptions(source="s"))
    assert table_snapshot(con) == before


def test_failure_midway_through_insert_rolls_back(con, monkeypatch):
    """A crash after the examples insert (writing the imports row) leaves no half import."""
    before = table_snapshot(con)

    def fail(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ImportOptions, "model_dump_json", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        import_file(con, FIXTURES / "dolly_unused.jsonl")
    assert table_snapshot(con) == before


def test_cli_import_and_db_info(tmp_path, capsys):
    from reset_core.cli import main

    db = str(tmp_path / "cli.duckdb")
    shutil.copy(FIXTURES / "alpaca.json", tmp_path / "alpaca.json")
    assert (
        main(
            [
                "--db",
                db,
                "import",
                str(tmp_path / "alpaca.json"),
                "--preset",
                "alpaca",
                "--split",
                "test_seen",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "imported 8 new examples" in out
    assert "added by kind: instruction 8, context 0 · by split: test_seen 8" in out
    assert main(["--db", db, "import", str(tmp_path / "alpaca.json"), "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    bad = _jsonl(tmp_path, [b"{oops\n"])
    assert main(["--db", db, "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 1" in err and "database is unchanged" in err
    assert main(["--db", db, "db", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"]["examples"] == 8
    assert info["examples_by_split"] == {"test_seen": 8}


def test_demo_set_loads_once(con):
    from reset_core.ingest.demo import load_demo

    n = load_demo(con)
    assert 300 <= n <= 600
    kinds = dict(con.execute("SELECT kind, count(*) FROM examples GROUP BY 1").fetchall())
    assert kinds["instruction"] > 100 and kinds["context"] > 100
    splits = {r[0] for r in con.execute("SELECT DISTINCT split FROM examples").fetchall()}
    assert splits == {"seen", "test_seen", "test_unseen"}
    assert load_demo(con) == 0


def test_vectorised_and_row_paths_agree(tmp_path, monkeypatch):
    """Flat files are mapped in SQL; the result must equal the row-by-row reader's."""
    from reset_core.ingest import importer as ingest

    rows = json.loads((FIXTURES / "alpaca.json").read_text())
    rows += [dict(r) for r in rows[:2]]  # duplicates
    rows[1]["id"] = 5
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    opts = ImportOptions(preset="alpaca", split_ratios={"seen": 0.6, "test_seen": 0.4}, seed=1)

    def no_row_reader(*a, **k):
        raise AssertionError("a flat valid file must take the vectorised path")

    with monkeypatch.context() as m:
        m.setattr(ingest, "_map_rows", no_row_reader)
        fast = read_examples(jsonl, opts)
    with monkeypatch.context() as m:
        m.setattr(ingest, "_map_fast", lambda *a, **k: None)
        slow = read_examples(jsonl, opts)
    assert fast.table.equals(slow.table)
    assert (fast.n_rows, fast.n_duplicates) == (slow.n_rows, slow.n_duplicates) == (len(rows), 2)
    assert set(fast.table.column("split").to_pylist()) == {"seen", "test_seen"}


def test_cli_dry_run_shows_kinds_and_splits_before_anything_is_committed(tmp_path, capsys):
    from reset_core.cli import main

    db = str(tmp_path / "cli.duckdb")
    args = ["--db", db, "import", str(FIXTURES / "nq_oracle.jsonl"), "--dry-run"]
    assert main([*args, "--split-ratios", "seen=0.5,test_seen=0.5"]) == 0
    out = capsys.readouterr().out
    assert "preset nq, 6 rows, 6 unique" in out
    assert "kind=context for 6 rows: the nq preset's role" in out
    assert "by kind: instruction 0, context 6 · by split: seen " in out
    assert "dry run: nothing was imported" in out
    assert main(["--db", db, "db", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["examples"] == 0


def _seed_alpaca(con, tmp_path, kind=None):
    # An import under the old rule (auto: a row with an input became a context example).
    return import_file(
        con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca", source="alpaca", kind=kind)
    )


def test_rekind_runs_on_request_in_one_transaction_and_says_what_changed(
    con, tmp_path, capsys, monkeypatch
):
    from reset_core.cli import main
    from reset_core.ingest.rekind import RekindRejected, rekind_source

    _seed_alpaca(con, tmp_path, kind="context")
    import_file(con, FIXTURES / "nq_oracle.jsonl", ImportOptions(source="nq"))
    before = table_snapshot(con)
    # A dry run changes nothing; the preset target reads each row's import.
    dry = rekind_source(con, "alpaca", "preset", dry_run=True)
    assert (dry.n_changed, dry.changes) == (8, {("context", "instruction"): 8})
    assert table_snapshot(con) == before
    with pytest.raises(RekindRejected, match="no examples from 'nope'; sources: alpaca, nq"):
        rekind_source(con, "nope", "context")
    result = rekind_source(con, "alpaca", "preset")
    assert result.describe() == "source alpaca: 8 of 8 examples changed (context → instruction: 8)"
    kinds = con.execute("SELECT source, kind, count(*) FROM examples GROUP BY ALL ORDER BY 1")
    assert kinds.fetchall() == [("alpaca", "instruction", 8), ("nq", "context", 6)]
    assert con.execute("SELECT source, target, n_changed FROM rekinds").fetchall() == [
        ("alpaca", "preset", 8)
    ]
    assert rekind_source(con, "alpaca", "preset").n_changed == 0  # nothing left to change
    # A failure inside the transaction (here: writing its log row) leaves every row as it was.
    snapshot = table_snapshot(con)
    import reset_core.ingest.rekind as rk

    def boom(*a, **k):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(rk.json, "dumps", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            rekind_source(con, "nq", "instruction")
    assert table_snapshot(con) == snapshot
    con.close()
    # The CLI says the same, and refuses a source whose import declares no kind.
    db = str(tmp_path / "studio.duckdb")
    rekind_nq = ["--db", db, "rekind", "--source", "nq", "--kind", "instruction"]
    assert main([*rekind_nq, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "source nq: 6 of 6 examples would change (context → instruction: 6)",
        "dry run: nothing was changed",
    ]
    assert main(rekind_nq) == 0
    assert capsys.readouterr().out.strip() == (
        "source nq: 6 of 6 examples changed (context → instruction: 6)"
    )
    mapped = tmp_path / "mapped.jsonl"
    mapped.write_text(json.dumps({"q": "Who?", "p": "Ada."}) + "\n")
    assert main(["--db", db, "import", str(mapped), "--mapping", "instruction=q,context=p"]) == 0
    assert main(["--db", db, "rekind", "--source", "mapped", "--kind", "preset"]) == 2
    err = capsys.readouterr().err
    assert "'mapped' has examples whose import declares no kind (1 via mapping)" in err


def test_a_rekind_refreshes_the_summaries_that_cache_kinds(con):
    import review_data

    from reset_core.analytics.summaries import ensure_fresh
    from reset_core.ingest.rekind import rekind_source
    from reset_core.review.queue import queue_is_fresh, refresh_queue
    from reset_core.scoring.aspect_scores import ensure_aspect_scores
    from reset_core.scoring.panels import Panel

    review_data.seed(con)  # ex-0 and ex-3 are source "squad": ex-0 instruction, ex-3 context
    refresh_queue(con, review_data.SELECTION)
    ensure_fresh(con)
    ensure_aspect_scores(con, Panel())
    result = rekind_source(con, "squad", "context")
    assert result.changes == {("instruction", "context"): 1}
    assert result.n_selections == 1  # sel-1 scored ex-0 as an instruction example
    assert "1 stored selection(s) scored them under their old kinds" in result.describe()
    assert not queue_is_fresh(con, review_data.SELECTION)
    assert refresh_queue(con, review_data.SELECTION)
    q = "SELECT kind FROM {} WHERE example_id = 'ex-0'"
    assert {r[0] for r in con.execute(q.format("review_queue")).fetchall()} == {"context"}
    ensure_fresh(con)
    assert {r[0] for r in con.execute(q.format("analytics_candidates")).fetchall()} == {"context"}
    ensure_aspect_scores(con, Panel())  # the kept aspect scores cache kinds too
    assert {r[0] for r in con.execute(q.format("aspect_scores")).fetchall()} == {"context"}


def test_meta_objects_are_kept_per_example_and_checked(con, tmp_path):
    """``meta=<column>`` keeps each row's object as the example's JSON metadata (IFEval's
    verifiable instructions travel this way); anything but an object is refused."""
    ifeval = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    path = tmp_path / "ifeval.jsonl"
    path.write_text(
        json.dumps({"key": 1, "prompt": "Write without commas.", "info": {"ifeval": ifeval}})
        + "\n"
        + json.dumps({"key": 2, "prompt": "Say hi."})
        + "\n"
    )
    opts = ImportOptions(mapping={"id": "key", "instruction": "prompt", "meta": "info"}, source="t")
    assert import_file(con, path, opts).n_added == 2
    rows = con.execute("SELECT example_id, meta FROM examples ORDER BY 1").fetchall()
    assert [(r[0], json.loads(r[1]) if r[1] else None) for r in rows] == [
        ("t:1", {"ifeval": ifeval}),
        ("t:2", None),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": 3, "prompt": "Hi.", "info": "not an object"}) + "\n")
    with pytest.raises(
        ImportRejected, match=r"bad.jsonl, line 1, field 'info': expected an object"
    ):
        import_file(con, bad, opts)


def test_demo_ifeval_prompts_carry_their_verifiable_instructions(con):
    from reset_core.ingest.demo import load_demo

    load_demo(con)
    n, n_meta = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE json_array_length(meta, "
        "'$.ifeval.instruction_id_list') > 0) FROM examples WHERE source = 'ifeval'"
    ).fetchall()[0]
    assert n == n_meta == 47
