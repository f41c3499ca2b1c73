"""Shard folders across machines: sample/judge --out with no database, then ingest by key.

Each "machine" is a separate worker run writing its own folder (the tiny Llama for
sampling, the offline metric judges for judging), through the same CLI a GPU box runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import ROOT, table_snapshot

from reset_core.cli import main
from reset_core.shards import (
    ShardRejected,
    check_folder,
    ingest_folder,
    ingest_folders,
    read_manifest,
    shard_of,
)
from reset_core.store import connect

DATA = ROOT / "data" / "demo" / "demo_examples.jsonl"
GRID = [{"temperature": 0.7, "max_tokens": 4}, {"temperature": 1.0, "top_k": 20, "max_tokens": 4}]


def _sample_args(out: Path, model: Path, grid: Path, *extra: str) -> list[str]:
    return [
        "sample",
        "--out",
        str(out),
        "--data",
        str(DATA),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--grid",
        str(grid),
        "--count",
        "8",
        *extra,
    ]


@pytest.fixture(scope="module")
def machines(tmp_path_factory, tiny_model_dir):
    """Folders made by separate runs, as on different machines: two shards of one
    selection (a, b), a run over the whole selection that overlaps both (c), and judge
    runs over a+b (j) and over c (jc)."""
    root = tmp_path_factory.mktemp("machines")
    grid = root / "grid.json"
    grid.write_text(json.dumps(GRID))
    out = {}
    for name, extra in (
        ("a", ("--num-shards", "2", "--shard-index", "0")),
        ("b", ("--num-shards", "2", "--shard-index", "1")),
        ("c", ()),
    ):
        out[name] = root / name
        assert main(_sample_args(out[name], tiny_model_dir, grid, *extra)) == 0
    out["j"], out["jc"] = root / "j", root / "jc"
    assert (
        main(["judge", "--offline", "--out", str(out["j"]), "--from", str(out["a"]), str(out["b"])])
        == 0
    )
    assert main(["judge", "--offline", "--out", str(out["jc"]), "--from", str(out["c"])]) == 0
    out["grid"] = grid
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _ids(folder: Path, target: str, key: str) -> list[str]:
    files = sorted((folder / target).glob("part-*.parquet"))
    return pq.read_table(files, columns=[key]).column(key).to_pylist() if files else []


def _natural_keys(con) -> list[tuple]:
    return con.execute("SELECT judge_id, candidate_id, aspect FROM judgments").fetchall()


def test_two_machines_shards_partition_the_selection_and_ingest_without_duplicates(
    machines, con, capsys
):
    a, b, c = (read_manifest(machines[k]) for k in "abc")
    ids_a = set(pq.read_table(machines["a"] / "examples.parquet")["example_id"].to_pylist())
    ids_b = set(pq.read_table(machines["b"] / "examples.parquet")["example_id"].to_pylist())
    ids_c = set(pq.read_table(machines["c"] / "examples.parquet")["example_id"].to_pylist())
    # The two shards split the same 8 examples between them, by the stable hash.
    assert ids_a | ids_b == ids_c and not ids_a & ids_b and len(ids_c) == 8
    assert all(shard_of(e, 2) == 0 for e in ids_a) and all(shard_of(e, 2) == 1 for e in ids_b)
    assert a["run_id"] != b["run_id"] and a["status"] == b["status"] == "done"
    assert a["counts"]["candidates_rows"] == 2 * len(ids_a)

    db = Path(con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0])
    con.close()
    capsys.readouterr()
    assert (
        main(
            ["--db", str(db), "ingest", str(machines["a"]), str(machines["b"]), str(machines["j"])]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "candidates 0 new, 16 already there" in said  # the judge folder's copies
    con = connect(db)
    cands = [r[0] for r in con.execute("SELECT candidate_id FROM candidates").fetchall()]
    assert len(cands) == len(set(cands)) == 16
    assert set(cands) == set(_ids(machines["a"], "candidates", "candidate_id")) | set(
        _ids(machines["b"], "candidates", "candidate_id")
    )
    keys = _natural_keys(con)
    assert len(keys) == len(set(keys)) == len(_ids(machines["j"], "judgments", "judgment_id")) > 0
    # What the app lists: both sampling runs and the judge run, with their counts, the
    # model, the grid and the judges.
    from reset_core.judging.queries import job_judgment_counts
    from reset_core.sampling.queries import job_candidates, sampling_jobs

    jobs = sampling_jobs(con).set_index("job_id")
    assert jobs.loc[a["run_id"], "n_ingested"] == 2 * len(ids_a)
    assert set(jobs["status"]) == {"done"}
    assert len(job_candidates(con, b["run_id"])) == 2 * len(ids_b)
    assert job_judgment_counts(con, read_manifest(machines["j"])["run_id"])[0] == len(keys)
    assert con.execute("SELECT count(*) FROM decoding_settings").fetchone()[0] == 2
    assert (
        con.execute("SELECT count(*) FROM models WHERE model_id = ?", [a["model_id"]]).fetchone()[0]
        == 1
    )
    assert con.execute("SELECT count(*) FROM judges").fetchone()[0] >= 4

    # Their rates were measured on other machines: launch estimates here leave them out.
    from reset_core.jobs import finished_runs

    assert finished_runs(con, "sample") == [] and finished_runs(con, "judge") == []

    # The same folders again: nothing changes at all.
    before = table_snapshot(con)
    reports = ingest_folders(con, [machines["a"], machines["b"], machines["j"]])
    assert sum(r.candidates_new + r.judgments_new + r.examples_new for r in reports) == 0
    assert table_snapshot(con) == before
    assert c["run_id"] not in set(jobs.index)
    con.close()


def test_overlapping_runs_from_two_machines_add_each_key_once(machines, con):
    n_a = len(_ids(machines["a"], "candidates", "candidate_id"))
    n_j = len(_ids(machines["j"], "judgments", "judgment_id"))
    assert ingest_folder(con, machines["a"]).candidates_new == n_a
    # c sampled the whole selection: a's half is there already, b's half is new.
    rep_c = ingest_folder(con, machines["c"])
    assert (rep_c.candidates_present, rep_c.candidates_new) == (n_a, 16 - n_a)
    assert rep_c.examples_present == n_a // 2
    # jc and j judged the same 16 candidates with the same judges on two machines: their
    # verdicts share keys, so the second adds nothing.
    assert ingest_folder(con, machines["jc"]).judgments_new == n_j
    rep_j = ingest_folder(con, machines["j"])
    assert (rep_j.judgments_new, rep_j.judgments_present) == (0, n_j)
    assert set(_ids(machines["j"], "judgments", "judgment_id")) == set(
        _ids(machines["jc"], "judgments", "judgment_id")
    )
    cands = [r[0] for r in con.execute("SELECT candidate_id FROM candidates").fetchall()]
    assert len(cands) == len(set(cands)) == 16
    keys = _natural_keys(con)
    assert len(keys) == len(set(keys)) == n_j


def _db_path(con) -> Path:
    return Path(con.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0])


def _corrupt_part(folder: Path) -> Path:
    part = sorted((folder / "candidates").glob("part-*.parquet"))[-1]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    return part


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda f: (f / "manifest.json").write_text(json.dumps({"format": "other-tool"})),
            r"manifest\.json: field 'format' is 'other-tool'",
        ),
        (
            lambda f: (f / "manifest.json").write_text(
                json.dumps({**read_manifest(f), "version": 99})
            ),
            r"manifest\.json: field 'version' is 99",
        ),
        (
            lambda f: (f / "manifest.json").write_text('{"format": "reset-studio-shards",\n oops'),
            r"manifest\.json: line 2: not JSON",
        ),
        (
            lambda f: (f / "manifest.json").write_text(
                json.dumps({**read_manifest(f), "grid": [{"temperature": -1}]})
            ),
            r"manifest\.json: field 'grid'",
        ),
        (lambda f: (f / "manifest.json").unlink(), r"manifest\.json: missing"),
        (_corrupt_part, r"part-.*\.parquet: not a readable Parquet file"),
        (lambda f: (f / "examples.parquet").unlink(), r"examples\.parquet: missing"),
    ],
    ids=[
        "foreign",
        "newer-version",
        "not-json",
        "bad-grid",
        "no-manifest",
        "torn-part",
        "no-examples",
    ],
)
def test_a_corrupt_or_foreign_folder_is_rejected_and_nothing_is_stored(
    machines, con, tmp_path, capsys, damage, message
):
    good, bad = machines["b"], _copy(machines["a"], tmp_path / "bad")
    damage(bad)
    before = table_snapshot(con)
    db = _db_path(con)
    con.close()
    # The good folder first: every folder is checked before anything is loaded.
    assert main(["--db", str(db), "ingest", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 2 and "Traceback" not in err  # one line, and what it did
    assert "database is unchanged" in err
    con = connect(db)
    assert table_snapshot(con) == before
    con.close()


def test_rows_refused_inside_the_transaction_roll_the_whole_folder_back(machines, con, tmp_path):
    # A candidate whose example is nowhere: found only once the examples are loaded,
    # inside the folder's transaction, which then leaves nothing behind (examples included).
    bad = _copy(machines["a"], tmp_path / "orphan")
    t = pq.read_table(bad / "examples.parquet")
    pq.write_table(t.slice(1), bad / "examples.parquet")
    before = table_snapshot(con)
    with pytest.raises(ShardRejected, match=r"part-.*\.parquet: example_id '.*' is neither in"):
        ingest_folder(con, bad)
    assert table_snapshot(con) == before
    # A value the schema refuses (a kind no example may have), same thing.
    bad2 = _copy(machines["a"], tmp_path / "badkind")
    t = pq.read_table(bad2 / "examples.parquet")
    t = t.set_column(t.schema.get_field_index("kind"), "kind", pa.array(["poem"] * t.num_rows))
    pq.write_table(t, bad2 / "examples.parquet")
    with pytest.raises(ShardRejected, match="rows refused by the database"):
        ingest_folder(con, bad2)
    assert table_snapshot(con) == before


def test_a_valid_verdict_from_any_machine_wins_over_a_failed_one(machines, con, tmp_path):
    """Machine 2 timed out where machine 1 scored: in either ingest order the score stays."""
    failed = _copy(machines["j"], tmp_path / "failed")
    manifest = read_manifest(failed)
    (failed / "manifest.json").write_text(json.dumps({**manifest, "run_id": "judge-other"}))
    for part in sorted((failed / "judgments").glob("part-*.parquet")):
        t = pq.read_table(part)
        n = t.num_rows
        t = t.set_column(t.schema.get_field_index("score"), "score", pa.nulls(n, pa.float64()))
        t = t.set_column(t.schema.get_field_index("status"), "status", pa.array(["timeout"] * n))
        part.unlink()
        pq.write_table(t, part.with_name(part.name.replace("part-", "part-x")))
    n_j = len(_ids(machines["j"], "judgments", "judgment_id"))
    # Valid: a score, or the judge saying it cannot score the item (not_applicable).
    j = pq.read_table(sorted((machines["j"] / "judgments").glob("part-*.parquet")))
    n_valid = j.filter(
        pc.or_(pc.is_valid(j["score"]), pc.equal(j["status"], "not_applicable"))
    ).num_rows
    n_scored = pc.sum(pc.is_valid(j["score"])).as_py()
    assert 0 < n_scored <= n_valid == n_j
    valid_sql = (
        "SELECT count(*) FROM judgments WHERE score IS NOT NULL OR status = 'not_applicable'"
    )
    ingest_folder(con, failed)
    assert con.execute("SELECT count(*) FROM judgments WHERE score IS NULL").fetchone()[0] == n_j
    assert con.execute(valid_sql).fetchone()[0] == 0
    rep = ingest_folder(con, machines["j"])  # the failures are replaced, key by key
    assert rep.judgments_new == n_valid
    assert con.execute(valid_sql).fetchone()[0] == n_valid and len(_natural_keys(con)) == n_j
    assert (
        con.execute("SELECT count(*) FROM judgments WHERE score IS NOT NULL").fetchone()[0]
        == n_scored
    )
    # A late failure (from a third machine: other files) does not undo a verdict.
    rep = ingest_folder(con, _copy(failed, tmp_path / "failed-too"))
    assert rep.judgments_new == 0 and rep.judgments_present == n_j
    assert con.execute(valid_sql).fetchone()[0] == n_valid and len(_natural_keys(con)) == n_j


def test_a_killed_run_ingests_what_is_whole_and_the_same_command_finishes_it(
    machines, tiny_model_dir, tmp_path, con
):
    out = tmp_path / "killed"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps([{**g, "max_tokens": 24} for g in GRID]))
    args = [*_sample_args(out, tiny_model_dir, grid, "--chunk-size", "2"), "--count", "12"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reset_core.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list((out / "candidates").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # What a kill during a write leaves: a part under its temporary name.
    (out / "candidates" / ".part-999-torn.parquet.4242.tmp").write_bytes(b"PAR1 half a part")
    manifest = read_manifest(out)
    whole = _ids(out, "candidates", "candidate_id")
    planned = manifest["counts"]["candidates_planned"]
    assert manifest["status"] == "running" and 0 < len(whole) < planned
    rep = ingest_folder(con, out)
    assert rep.candidates_new == len(whole) and rep.status == "running"
    status, error = con.execute(
        "SELECT status, error FROM jobs WHERE job_id = ?", [manifest["run_id"]]
    ).fetchone()
    assert status == "stopped" and "rerun the same command there" in error
    # The same command on the same folder makes only what is missing, then ingest again.
    assert main(args) == 0
    done = _ids(out, "candidates", "candidate_id")
    assert len(done) == len(set(done)) == planned and set(whole) < set(done)
    rep = ingest_folder(con, out)
    assert (rep.candidates_new, rep.status) == (planned - len(whole), "done")
    assert con.execute(
        "SELECT status, n_done FROM jobs WHERE job_id = ?", [manifest["run_id"]]
    ).fetchone() == ("done", planned)
    assert con.execute(
        "SELECT count(DISTINCT candidate_id), count(*) FROM candidates"
    ).fetchone() == (planned, planned)


def test_a_folder_holding_another_run_is_refused(machines, tiny_model_dir, tmp_path, capsys):
    other = _copy(machines["a"], tmp_path / "other")
    args = _sample_args(
        other, tiny_model_dir, machines["grid"], "--num-shards", "2", "--shard-index", "1"
    )
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "field 'identity.shard_index' differs" in err and "another --out folder" in err
    assert main(["sample", "--out", str(tmp_path / "x"), "--model", str(tiny_model_dir)]) == 2
    assert "--data" in capsys.readouterr().err
    assert (
        main(["judge", "--offline", "--out", str(tmp_path / "y"), "--from", str(tmp_path / "nope")])
        == 2
    )
    assert "no such folder" in capsys.readouterr().err


def _doc_snippet(title: str) -> str:
    text = (ROOT / "docs" / "shards.md").read_text()
    block = re.search(rf"### {title}\n+```python\n(.*?)```", text, re.S)
    assert block, f"docs/shards.md has no python block under '### {title}'"
    return block.group(1)


@pytest.mark.parametrize("title", ["pandas", "DuckDB"])
def test_the_documented_readers_read_a_folder(machines, title, monkeypatch):
    check_folder(machines["j"])
    monkeypatch.chdir(machines["j"].parent)
    code = _doc_snippet(title).replace('"shard-0"', repr(machines["j"].name))
    scope: dict = {}
    exec(compile(code, f"docs/shards.md ({title})", "exec"), scope)  # noqa: S102
    judged = len(_ids(machines["j"], "judgments", "judgment_id"))
    assert scope["n_judgments"] == judged
    assert scope["n_candidates"] == len(_ids(machines["j"], "candidates", "candidate_id")) == 16


def test_the_llm_judge_judges_a_folder_and_ingest_keeps_who_answered(
    machines, openai_server, tmp_path, con
):
    out = tmp_path / "llm"
    args = ["judge", "--llm", "--model", "gpt-4o-mini", "--base-url", openai_server.base_url]
    assert main([*args, "--out", str(out), "--from", str(machines["a"])]) == 0
    manifest = read_manifest(out)
    n = len(_ids(out, "judgments", "judgment_id"))
    n_a = len(_ids(machines["a"], "candidates", "candidate_id"))
    assert manifest["status"] == "done" and n == 2 * n_a  # task + one more aspect each
    (judge_id,) = manifest["endpoints"]
    assert manifest["endpoints"][judge_id]["placeholder"]  # the stand-in answered
    assert ingest_folder(con, out).judgments_new == n
    assert con.execute(
        "SELECT placeholder FROM judges WHERE judge_id = ?", [judge_id]
    ).fetchone() == (True,)
    # Rerunning the same command sends nothing again: every verdict is in the folder.
    sent = openai_server.requests["/v1/chat/completions"]
    assert main([*args, "--out", str(out), "--from", str(machines["a"])]) == 0
    assert len(_ids(out, "judgments", "judgment_id")) == n
    assert openai_server.requests["/v1/chat/completions"] == sent


def test_several_folders_checkpoint_once_and_leave_the_setting_as_it_was(machines, con, tmp_path):
    """ingest_folders defers DuckDB's checkpoint to after the last folder (bench/ingest.py)
    and restores the threshold; everything committed is in the file when it reopens."""
    setting = "SELECT current_setting('checkpoint_threshold')"
    before = con.execute(setting).fetchone()
    reports = ingest_folders(con, [machines["a"], machines["b"], machines["j"]])
    assert con.execute(setting).fetchone() == before
    n = sum(r.candidates_new for r in reports)
    assert n == 16
    path = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()[0]
    con.close()
    again = connect(path)
    assert again.execute("SELECT count(*) FROM candidates").fetchone()[0] == n
    assert again.execute("SELECT count(*) FROM judgments").fetchone()[0] == sum(
        r.judgments_new for r in reports
    )
