"""Every stage from the CLI: review, analytics, rubrics, models, jobs, select/judge flags,
exit statuses, and the reset-studio.toml shared with the app.

Each command runs through ``reset_core.cli.main`` on a real database file built with the
repo's test data helpers, and its output is checked against the library call it wraps.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import analytics_data
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import review_data

from reset_core.cli import build_parser, exit_codes, main
from reset_core.store import connect

ROOT = Path(__file__).resolve().parent.parent
TESTS = str(Path(__file__).parent)


@pytest.fixture
def analytics_db(db_path):
    con = connect(db_path)
    analytics_data.fill(con)
    con.close()
    return db_path


def _run(db_path, *argv) -> int:
    return main(["--db", str(db_path), *argv])


# ----------------------------------------------------------------------------- review


def test_review_list_filters_by_reviewer_kind_and_example(analytics_db, capsys):
    assert _run(analytics_db, "review", "list", "--format", "jsonl") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    con = connect(analytics_db)
    assert len(rows) == con.execute("SELECT count(*) FROM overrides").fetchone()[0]
    con.close()
    # newest first, and the undone event names its undo
    assert rows[0]["event_id"] == "o:force"
    assert {r["event_id"]: r["undone_by"] for r in rows}["o:bad"] == "o:undo"

    assert _run(analytics_db, "review", "list", "--reviewer", "alice", "--kind", "veto",
                "--format", "jsonl") == 0  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event_id"], r["example_id"], r["candidate_id"]) for r in rows] == [
        ("o:veto", "e1", analytics_data.cid("e1", "s:hot"))
    ]
    assert _run(analytics_db, "review", "list", "--example", "e5") == 0
    out = capsys.readouterr().out
    assert "undone by o:undo" in out and "e4" not in out
    assert _run(analytics_db, "review", "list", "--reviewer", "nobody", "--format", "csv") == 0
    assert list(csv.reader(capsys.readouterr().out.splitlines()))[1:] == []


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_review_export_writes_every_event_in_the_suffix_format(analytics_db, tmp_path, suffix):
    out = tmp_path / f"events{suffix}"
    assert _run(analytics_db, "review", "export", str(out), "--reviewer", "carol") == 0
    if suffix == ".parquet":
        rows = pq.read_table(out).to_pylist()
    elif suffix == ".csv":
        rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    con = connect(analytics_db)
    want = {
        r[0]
        for r in con.execute("SELECT event_id FROM overrides WHERE reviewer='carol'").fetchall()
    }
    con.close()
    assert {r["event_id"] for r in rows} == want and len(rows) == len(want)
    # exports never overwrite, and the suffix must name a format
    assert _run(analytics_db, "review", "export", str(out)) == exit_codes.REJECTED
    assert _run(analytics_db, "review", "export", str(tmp_path / "x.xlsx")) == exit_codes.REJECTED
    assert not (tmp_path / "x.xlsx").exists()


# ----------------------------------------------------------------------------- analytics


def test_analytics_agreement_json_is_the_librarys_figures(analytics_db, capsys):
    from reset_core.analytics import agreement as ag
    from reset_core.analytics.summaries import ensure_fresh

    args = ("analytics", "agreement", "--aspect", "task", "--n-boot", "20", "--json")
    assert _run(analytics_db, *args) == 0
    got = json.loads(capsys.readouterr().out)["task"]
    con = connect(analytics_db)
    ensure_fresh(con)
    want = ag.judge_agreement(con, "task", n_boot=20)
    human = ag.judge_vs_human(con, "task", n_boot=20)
    con.close()
    assert got["judges"] == want.judges == ["judge:a", "judge:b"]
    pair = got["pairs"][0]
    assert (pair["a"], pair["b"]) == ("judge:a", "judge:b")
    for stat in ag.PAIR_STATS:
        assert pair[stat]["value"] == pytest.approx(want.pairs[("judge:a", "judge:b")][stat].value)
    assert got["judge_vs_human"]["judge:a"]["spearman"]["n"] == human["judge:a"]["spearman"].n
    # the table form names both raters and the human row
    assert _run(analytics_db, "analytics", "agreement", "--aspect", "task", "--n-boot", "20") == 0
    out = capsys.readouterr().out
    assert "judge:a  judge:b" in out and "human" in out and "Krippendorff" in out


def test_analytics_tradeoff_decoding_and_grid(analytics_db, tmp_path, capsys):
    from reset_core.sampling.settings import load_grid_file

    assert _run(analytics_db, "analytics", "tradeoff", "--json") == 0
    res = json.loads(capsys.readouterr().out)
    picks = {p["setting_id"]: p["n_picks"] for p in res["points"]}
    assert picks["s:never"] == 0 and picks["s:cold"] + picks["s:hot"] == 6
    assert res["n_failed"] == 1  # judge B's failed verdict is excluded and counted

    assert _run(analytics_db, "analytics", "decoding", "--json") == 0
    report = json.loads(capsys.readouterr().out)["settings"]
    assert {r["setting_id"]: r["n"] for r in report} == {"s:cold": 6, "s:hot": 6, "s:never": 6}

    out = tmp_path / "next.jsonl"
    assert _run(analytics_db, "analytics", "grid", "--out", str(out), "--json") == 0
    grid = json.loads(capsys.readouterr().out)
    assert grid["drop"] == ["s:never"] and set(grid["keep"]) == {"s:cold", "s:hot"}
    # the written grid is one sample --grid reads: the two winning temperatures
    assert sorted(s.temperature for s in load_grid_file(str(out))) == [0.2, 1.2]
    assert _run(analytics_db, "analytics", "grid", "--out", str(out)) == exit_codes.REJECTED


# ----------------------------------------------------------------------------- rubrics


def test_rubrics_list_show_save(db_path, tmp_path, capsys):
    assert _run(db_path, "rubrics", "list") == 0
    out = capsys.readouterr().out
    assert all(f"{a}-v1" in out for a in ("task", "instruction", "faithfulness"))
    text = tmp_path / "task.txt"
    text.write_text("Grade harshly: only a complete, correct answer scores high.\n")
    assert _run(db_path, "rubrics", "save", "task", "--file", str(text), "--scale-max", "5") == 0
    assert "task-v2: saved" in capsys.readouterr().out
    assert _run(db_path, "rubrics", "show", "task-v2", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["text"].startswith("Grade harshly") and shown["scale_max"] == 5
    assert _run(db_path, "rubrics", "show", "task") == 0  # an aspect: its latest
    assert capsys.readouterr().out.startswith("task-v2")
    assert _run(db_path, "rubrics", "show", "task-v9") == exit_codes.NOT_FOUND
    assert _run(db_path, "rubrics", "show", "tone-v1") == exit_codes.NOT_FOUND
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert _run(db_path, "rubrics", "save", "task", "--file", str(empty)) == exit_codes.REJECTED
    assert "rubric text: must not be empty" in capsys.readouterr().err
    assert _run(db_path, "rubrics", "save", "task", "--file", str(tmp_path / "no.txt")) == 2


# ----------------------------------------------------------------------------- models


def test_models_lineage_walks_back_through_run_set_and_parent(db_path, capsys):
    con = connect(db_path)
    con.execute(
        "INSERT INTO curated_sets (set_id, name, preset, manifest, content_hash, n_items) "
        "VALUES ('cs-1', 'round 1 picks', 'reset', '{}', 'abcdef0123456789', 24)"
    )
    con.execute(
        "INSERT INTO models (model_id, name, path, stage) VALUES ('m:base', 'base', '/m', 'base')"
    )
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id, config) VALUES ('m:r1', 'r1', '/m', '/a', 'reset', "
        "'m:base', 'cs-1', 'run-1', '{\"metrics\": {\"train_loss\": 1.25}}')"
    )
    con.close()
    assert _run(db_path, "models", "lineage", "m:r1", "--json") == 0
    chain = json.loads(capsys.readouterr().out)
    assert [m["model_id"] for m in chain] == ["m:r1", "m:base"]
    assert chain[0]["curated_set"]["name"] == "round 1 picks"
    assert _run(db_path, "models", "lineage", "m:r1") == 0
    out = capsys.readouterr().out
    assert "training run run-1" in out and "curated set cs-1 'round 1 picks'" in out
    assert "<- m:base" in out and "train_loss 1.25" in out
    assert _run(db_path, "models", "list") == 0
    assert "m:r1" in capsys.readouterr().out
    assert _run(db_path, "models", "lineage", "m:nope") == exit_codes.NOT_FOUND


# ----------------------------------------------------------------------------- jobs


@pytest.fixture
def entries_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _items_job(con, db_path, n=6, sleep=0.0):
    from reset_core import jobs, paths

    items = pa.table({"item": [f"k{i:03d}" for i in range(n)]})
    return jobs.create_job(
        con, paths.jobs_dir(db_path), "sample", "job_entries:write_items", {"sleep": sleep}, items
    )


def test_jobs_list_status_resume_cancel(db_path, entries_importable, capsys):
    import time

    from reset_core import jobs
    from reset_core.sampling.launch import sync_sampling

    con = connect(db_path)
    job = _items_job(con, db_path, sleep=0.3)
    jobs.launch(con, job)
    while sync_sampling(con, job).get("n_done", 0) < 2:
        time.sleep(0.1)
    con.close()
    assert _run(db_path, "jobs", "cancel", job) == 0  # stops after the item in flight
    assert "asked to stop" in capsys.readouterr().out
    con = connect(db_path)
    while sync_sampling(con, job)["status"] in jobs.ACTIVE:
        time.sleep(0.1)
    n_saved = con.execute("SELECT count(*) FROM candidates").fetchone()[0]
    con.close()
    assert 2 <= n_saved < 6
    assert _run(db_path, "jobs", "list", "--json") == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["job_id"], row["kind"], row["status"]) == (job, "sample", "cancelled")
    assert _run(db_path, "jobs", "status", job) == exit_codes.STOPPED  # cancelled: resumable

    assert _run(db_path, "jobs", "resume", job, "--quiet") == 0
    out = capsys.readouterr().out
    assert f"resuming {job}" in out and "done · 6/6 candidates" in out
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM candidates").fetchone() == (6,)
    con.close()
    assert _run(db_path, "jobs", "status", job, "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "done"
    assert _run(db_path, "jobs", "resume", job) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert _run(db_path, "jobs", "cancel", job) == 0
    assert "nothing to cancel" in capsys.readouterr().out
    assert _run(db_path, "jobs", "list", "--status", "failed") == 0
    assert "no jobs of that kind/status" in capsys.readouterr().out
    for cmd in ("status", "cancel", "resume"):
        assert _run(db_path, "jobs", cmd, "judge-nope") == exit_codes.NOT_FOUND
    assert "no job 'judge-nope'" in capsys.readouterr().err
    # a budget applies to judging jobs only
    assert _run(db_path, "jobs", "resume", job, "--budget-usd", "5") == exit_codes.REJECTED


def test_judge_stopped_at_the_cap_exits_4_and_resumes_with_a_higher_cap(
    db_path, openai_server, monkeypatch, capsys
):
    from reset_core import jobs

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    con = connect(db_path)
    review_data.seed(con, n_examples=4, per_example=2)
    con.close()
    llm = ["--llm", "--model", "local-test", "--base-url", openai_server.base_url,
           "--price-input-per-mtok", "1000", "--price-output-per-mtok", "1000",
           "--concurrency", "1", "--max-retries", "0", "--quiet"]  # fmt: skip
    # 8 candidates x 2 needed aspects = 16 requests; a cap worth a few of them
    assert _run(db_path, "judge", *llm, "--budget-usd", "1.0") == exit_codes.STOPPED
    captured = capsys.readouterr()
    assert "stopped" in captured.out and "--budget-usd" in captured.err
    con = connect(db_path)
    [job] = [j["job_id"] for j in jobs.list_jobs(con, kind="judge")]
    n_first = con.execute("SELECT count(*) FROM judgments WHERE judge_id LIKE 'llm:%'").fetchone()[
        0
    ]
    con.close()
    assert 0 < n_first < 16
    sent = openai_server.n_requests

    assert _run(db_path, "jobs", "resume", job, "--budget-usd", "1000", "--quiet") == 0
    assert "budget cap now $1000" in capsys.readouterr().out
    con = connect(db_path)
    assert con.execute(
        "SELECT count(*), count(DISTINCT judgment_id) FROM judgments WHERE judge_id LIKE 'llm:%'"
    ).fetchone() == (16, 16)
    con.close()
    assert openai_server.n_requests - sent == 16 - n_first  # only the missing keys were sent


# ----------------------------------------------------------------------------- select, judge


def test_select_judges_picks_with_the_named_judges_without_saving_a_panel(db_path, capsys):
    con = connect(db_path)
    review_data.seed(con)
    con.close()
    con = connect(db_path)
    n_panels = con.execute("SELECT count(*) FROM panels").fetchone()[0]
    con.close()
    assert _run(db_path, "select", "--judges", "metric@v1") == 0
    out = capsys.readouterr().out
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM panels").fetchone()[0] == n_panels
    sel, cfg = con.execute(
        "SELECT selection_id, config FROM selections ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    con.close()
    panel = json.loads(cfg)["panel"]
    assert sel in out and all(ids == ["metric@v1"] for ids in panel["judges"].values())


# judge --splits: tests/test_judge_plan.py::test_cli_judges_the_splits_it_is_given


# ----------------------------------------------------------------------------- config file


def test_config_file_values_are_flag_defaults_and_flags_win(tmp_path, monkeypatch):
    cfg = tmp_path / "studio.toml"
    cfg.write_text(
        "[judging]\nsplits = ['test_seen']\n\n[judging.llm]\nconcurrency = 7\n"
        "[training]\nmax_steps = 5\n\n[sampling.selection]\ncount = 3\nseed = 9\n"
    )
    p = build_parser()
    a = p.parse_args(["--config", str(cfg), "judge", "--llm"])
    assert (a.concurrency, a.splits) == (7, ["test_seen"])
    a = build_parser().parse_args(["--config", str(cfg), "judge", "--concurrency", "3"])
    assert a.concurrency == 3  # the flag wins
    a = build_parser().parse_args(["--config", str(cfg), "sample"])
    assert (a.count, a.selection_seed) == (3, 9)
    # the same file from the environment, and from the working folder
    monkeypatch.setenv("RESET_STUDIO_CONFIG", str(cfg))
    assert build_parser().parse_args(["train", "--set", "x"]).max_steps == 5
    monkeypatch.delenv("RESET_STUDIO_CONFIG")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reset-studio.toml").write_text("[training]\nmax_steps = 11\n")
    assert build_parser().parse_args(["train", "--set", "x"]).max_steps == 11
    from reset_core import config_file
    from reset_core.training.config import TrainConfig

    assert config_file.default(TrainConfig, "max_steps") == 11  # what the Train page shows
    # --config wins over the variable and the working folder's file, key by key too
    monkeypatch.setenv("RESET_STUDIO_CONFIG", str(tmp_path / "reset-studio.toml"))
    a = build_parser().parse_args(["--config", str(cfg), "train", "--set", "x"])
    assert a.max_steps == 5


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[trainin]\nmax_steps = 5\n", "[trainin]: unknown section"),
        ("[training]\nmax_step = 5\n", "[training] max_step: unknown key"),
        ("[training]\nmax_steps = 'many'\n", "[training] max_steps: Input should be a valid"),
        ("[judging.llm]\nconcurrency = 0\n", "[judging.llm] concurrency: Input should be greater"),
        ("[judging]\nsplits = ['train']\n", "[judging] splits:"),
        ("[training\n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_rejected_naming_file_section_and_key(
    db_path, tmp_path, capsys, text, named
):
    con = connect(db_path)
    review_data.seed(con)
    n = con.execute("SELECT count(*) FROM judgments").fetchone()[0]
    con.close()
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as e:
        main(["--db", str(db_path), "--config", str(cfg), "judge", "--offline"])
    assert e.value.code == exit_codes.REJECTED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cfg) in err and named in err
    con = connect(db_path)
    assert con.execute("SELECT count(*) FROM judgments").fetchone()[0] == n  # nothing ran
    con.close()


def test_a_missing_named_config_file_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--config", str(tmp_path / "nope.toml"), "jobs", "list"])
    assert e.value.code == 2 and "no such config file (from --config)" in capsys.readouterr().err


def test_the_example_config_is_current_and_loads(tmp_path):
    from reset_core import config_file

    example = ROOT / "docs" / "reset-studio.example.toml"
    assert example.read_text() == config_file.example_toml(), (
        "regenerate it: python -m reset_core.config_file > docs/reset-studio.example.toml"
    )
    # Uncommented, every key that has a default makes a valid file as it stands.
    key_line = re.compile(r"^# ([a-z_][a-z0-9_]*) = (?!\(no default)")
    lines = [
        line[2:] if key_line.match(line) else line for line in example.read_text().splitlines()
    ]
    path = tmp_path / "uncommented.toml"
    path.write_text("\n".join(lines))
    loaded = config_file.load(path)
    assert loaded["judging.llm"]["concurrency"] == 16 and loaded["training"]
    assert set(loaded) <= set(config_file.SECTIONS)


# ----------------------------------------------------------------------------- help, exit codes


def test_flag_help_is_the_models_description_everywhere():
    from reset_core import config_file

    checked = 0
    for parser in config_file._parsers(build_parser()):
        by_dest = {a.dest: a for a in parser._actions}
        for model, field, dest in parser.__dict__.get("_config_fields", ()):
            want = (model.model_fields[field].description or "").replace("%", "%%")
            assert by_dest[dest].help.startswith(want), (parser.prog, dest)
            checked += 1
    assert checked > 100


def test_every_key_a_config_file_accepts_is_some_flags_default():
    from reset_core import config_file

    read = {
        (config_file.section_of(model), field)
        for parser in config_file._parsers(build_parser())
        for model, field, _ in parser.__dict__.get("_config_fields", ())
    }
    unread = [
        (section, field)
        for section in config_file.SECTIONS
        for field in config_file.settable_fields(section)
        if (section, field) not in read
    ]
    assert unread == []


def test_top_level_help_lists_the_exit_statuses_and_every_stage(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert " ".join(exit_codes.EPILOG.split()) in " ".join(out.split())
    for cmd in ("review", "analytics", "jobs", "rubrics", "models", "--config"):
        assert cmd in out


def test_the_judge_page_opens_on_the_config_files_values(db_path, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    cfg = tmp_path / "studio.toml"
    cfg.write_text("[judging.llm]\nmodel = 'my-judge'\nconcurrency = 7\nbudget_usd = 2.5\n")
    monkeypatch.setenv("RESET_STUDIO_CONFIG", str(cfg))
    connect(db_path).close()
    at = AppTest.from_file(str(ROOT / "pages" / "judge.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.run()
    at.radio(key="llm_mode").set_value(at.radio(key="llm_mode").options[1]).run()
    assert not at.exception
    assert at.text_input(key="llm_model").value == "my-judge"
    values = {w.label: w.value for w in at.number_input}
    assert values["Concurrency"] == 7 and values["Budget cap $ (0 = none)"] == 2.5
    # a page the file leaves alone keeps its own defaults
    assert values["Retries"] == 3 and values["$ / M prompt tokens"] == 0.15
