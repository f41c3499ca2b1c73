"""Know before you launch: each launch shows its size and estimated duration, measured on
this database's finished jobs (or a stated default), and a long one asks first.

The finished jobs are written by the stages' own job writers (``start_sampling``,
``create_judge_job``, ``start_training`` without launching) and left as their worker
leaves them: status done and a last progress report whose rate and start-up the test
chooses, so the estimate's figures can be checked exactly.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from reset_core import jobs
from reset_core.atomic import write_json_atomic
from reset_core.paths import jobs_dir
from reset_core.store import connect

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def finish(con, job_id: str, rate_per_s: float, startup_s: float, n_done: int = 10) -> None:
    """Leave a job as a worker that did ``n_done`` items at ``rate_per_s`` would."""
    now = time.time()
    work_s = n_done / rate_per_s
    write_json_atomic(
        jobs.work_dir(con, job_id) / "progress.json",
        {
            "status": "done",
            "n_done": n_done,
            "n_total": n_done,
            "rate_per_s": rate_per_s,
            "eta_s": 0.0,
            "error": None,
            "pid": None,
            "updated_at": now,
            "worker_started_at": now - work_s - startup_s,
            "work_started_at": now - work_s,
        },
    )
    assert jobs.sync_job(con, job_id)["status"] == "done"


def wait_until_finished(db_path, job_id: str, sync, timeout: float = 180) -> str:
    con = connect(db_path)
    deadline = time.monotonic() + timeout
    while (status := sync(con, job_id)["status"]) in jobs.ACTIVE:
        assert time.monotonic() < deadline, f"{job_id} still {status}"
        time.sleep(0.5)
    return status


def estimate_text(at) -> str:
    shown = [i.value for i in at.info if " · " in i.value]
    assert len(shown) == 1, [i.value for i in at.info]
    return shown[0]


def button(at, key: str):
    """The button with this key, or None when the page does not show one."""
    return next((b for b in at.button if b.key == key), None)


def n_jobs(db_path, kind: str) -> int:
    return (
        connect(db_path).execute("SELECT count(*) FROM jobs WHERE kind = ?", [kind]).fetchone()[0]
    )


# ----------------------------------------------------------------------------- sample


@pytest.fixture
def sample_page(con, db_path, monkeypatch, tiny_model_dir):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "pages" / "sample.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    at.text_input(key="sample_model_ref").set_value(str(tiny_model_dir)).run()
    return at


def finished_sampling_job(con, db_path, model_dir, max_tokens: int, rate: float, startup: float):
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.launch import plan_sampling, start_sampling
    from reset_core.sampling.settings import default_grid

    plan = plan_sampling(
        con,
        SampleSelection(count=2, seed=7),
        ModelSpec(model=str(model_dir)),
        default_grid(max_tokens=max_tokens),
        check=False,
    )
    finish(con, start_sampling(con, plan, jobs_dir(db_path), launch=False), rate, startup)


def test_sample_estimate_says_assumed_then_follows_the_measured_rate(
    sample_page, con, db_path, tiny_model_dir
):
    at = sample_page
    assert not at.exception
    n = int(at.metric[1].value.replace(",", ""))  # Candidates: the default plan
    text = estimate_text(at)
    assert text.startswith(f"{n} candidates · ")
    assert "no run of this model yet: assuming ~1 candidates/s at max_tokens 64 on CPU" in text
    assert "measured" not in text

    # A finished run of this model at 0.5 candidates/s (max_tokens 64), 6 s to start.
    finished_sampling_job(con, db_path, tiny_model_dir, 64, rate=0.5, startup=6)
    at.run()
    text = estimate_text(at)
    assert (
        "measured: 0.5 candidates/s at max_tokens 64 over your last run of this model, "
        "plus ~6 s to start" in text
    )
    minutes = round((6 + n / 0.5) / 60)
    assert f"{n} candidates · about {minutes} min" in text
    # Twice the tokens, twice the time per candidate.
    at.number_input(key="grid_max_tokens").set_value(128).run()
    text = estimate_text(at)
    assert f"about {round((6 + 2 * n / 0.5) / 60)} min" in text
    assert text.endswith("; scaled to max_tokens 128)")

    # A second, faster run: the estimate is the median of the two.
    finished_sampling_job(con, db_path, tiny_model_dir, 64, rate=1.5, startup=2)
    at.number_input(key="grid_max_tokens").set_value(64).run()
    text = estimate_text(at)
    assert "measured: 1 candidates/s at max_tokens 64 over your last 2 runs of this model" in text
    assert "plus ~4 s to start" in text


def test_long_sampling_launch_asks_first(sample_page, con, db_path, tiny_model_dir):
    from reset_core.sampling.launch import sync_sampling

    at = sample_page
    at.number_input(key="sample_count").set_value(2)
    at.number_input(key="grid_max_tokens").set_value(4).run()

    # This model measured very slow here: 12 candidates now take about 40 min.
    finished_sampling_job(con, db_path, tiny_model_dir, 4, rate=0.005, startup=0)
    at.run()
    assert "12 candidates · about 40 min (measured: 0.005 candidates/s" in estimate_text(at)
    assert button(at, "sample_start_confirm") is None
    at.button(key="sample_start").click().run()  # asks, starts nothing
    assert not at.exception
    assert n_jobs(db_path, "sample") == 1 and "sample_job" not in at.session_state
    assert "This job should take about 40 min. Start it?" in [w.value for w in at.warning]
    at.run()  # the question stays while the plan does
    assert button(at, "sample_start_confirm").label == "Yes, start a ~40 min job"
    assert n_jobs(db_path, "sample") == 1

    # A plan that changes the estimate withdraws the question; asking again brings it back.
    at.number_input(key="grid_max_tokens").set_value(8).run()
    assert button(at, "sample_start_confirm") is None
    at.number_input(key="grid_max_tokens").set_value(4).run()
    assert button(at, "sample_start_confirm") is None
    at.button(key="sample_start").click().run()
    at.button(key="sample_start_confirm").click().run()
    assert not at.exception
    assert n_jobs(db_path, "sample") == 2
    assert button(at, "sample_start_confirm") is None
    job_id = at.session_state["sample_job"]
    assert wait_until_finished(db_path, job_id, sync_sampling) == "done"


# ----------------------------------------------------------------------------- judge


@pytest.fixture
def judge_page(db_path, con):
    from tests.test_judging import _seed_db

    _seed_db(con)

    def make():
        at = AppTest.from_file(str(ROOT / "pages" / "judge.py"), default_timeout=60)
        at.session_state["db_path"] = str(db_path)
        return at.run()

    return make


def test_judge_estimate_and_confirmation(judge_page, con, db_path):
    from reset_core.judging.launch import create_judge_job, offline_specs, sync_judge_job

    at = judge_page()
    assert not at.exception
    text = estimate_text(at)
    assert text.startswith("42 judgments · under a minute (no run of these judges yet: ")
    # the embedding judge is slower than the rest and loads a model: its own rate counts
    assert "assuming ~27 judgments/s (metric judges on CPU), plus ~30 s to start" in text

    # The same offline judges measured at 0.01 judgments/s: 42 take 70 min.
    seeded = create_judge_job(con, db_path, offline_specs(), limit=3)
    finish(con, seeded, rate_per_s=0.01, startup_s=0)
    at.run()
    text = estimate_text(at)
    assert text == (
        "42 judgments · about 70 min (measured: 0.01 judgments/s over your last run of "
        "these judges)"
    )
    at.button(key="launch").click().run()
    assert not at.exception and n_jobs(db_path, "judge") == 1
    at.button(key="launch_confirm").click().run()
    assert not at.exception and n_jobs(db_path, "judge") == 2
    job_id = at.session_state["judge_job"]
    assert wait_until_finished(db_path, job_id, sync_judge_job) == "done"

    # Another judge set (an API judge added) has no run yet: assumed again, per judge.
    at.run()
    at.radio(key="llm_mode").set_value("OpenAI-compatible endpoint").run()
    text = estimate_text(at)
    assert "no run of these judges yet: assuming" in text
    assert "(metric judges on CPU; 16 requests in flight at ~3 s each)" in text


# ----------------------------------------------------------------------------- train


def train_app(db_path, tiny_model_dir) -> AppTest:
    from training_data import fill_picks

    from reset_core.curation.config import CurationSpec
    from reset_core.curation.sets import create_curated_set
    from reset_core.training.launch import ensure_model

    con = connect(db_path)
    fill_picks(con, n=12)
    create_curated_set(con, CurationSpec(selection_id="sel-1"))
    ensure_model(con, str(tiny_model_dir), name="tiny")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    model = next(s for s in at.selectbox if s.key == "tr_model")
    model.set_value(next(o for o in model.options if o.startswith("tiny"))).run()
    return at


def test_train_estimate_and_confirmation(db_path, tiny_model_dir):
    from reset_core.training.config import TrainConfig
    from reset_core.training.launch import start_training, sync_training

    at = train_app(db_path, tiny_model_dir)
    assert not at.exception, at.exception
    # 12 picks in the set, 4 a step, one epoch: 3 steps.
    text = estimate_text(at)
    assert text.startswith("3 steps · about 2 min (no run of this model yet: assuming ")
    assert "~0.04 steps/s at 4 examples a step on CPU" in text
    next(n for n in at.number_input if n.key == "tr_max_steps").set_value(2).run()
    assert estimate_text(at).startswith("2 steps · ")

    # A finished run from the same model: 0.001 steps/s at 2 examples a step.
    con = connect(db_path)
    data = pa.table({"prompt": ["Say hi."], "completion": ["Hi!"]})
    cfg = TrainConfig(base_model=str(tiny_model_dir), per_device_train_batch_size=2)
    _, seeded = start_training(con, db_path, cfg, data=data, launch=False)
    finish(con, seeded, rate_per_s=0.001, startup_s=30, n_done=1)
    at.run()
    text = estimate_text(at)
    # 4 examples a step take twice as long as the 2 it was measured at: 30 s + 2 x 2000 s.
    assert text == (
        "2 steps · about 67 min (measured: 0.001 steps/s at 2 examples a step over your last "
        "run of this model, plus ~30 s to start; scaled to 4 examples a step)"
    )
    button(at, "tr_go").click().run()
    assert not at.exception and n_jobs(db_path, "train") == 1
    assert not at.success
    button(at, "tr_go_confirm").click().run()
    assert not at.exception, at.exception
    assert any("Started run" in s.value for s in at.success), [e.value for e in at.error]
    assert n_jobs(db_path, "train") == 2
    job_id = next(
        j
        for (j,) in con.execute("SELECT job_id FROM jobs WHERE kind = 'train'").fetchall()
        if j != seeded
    )
    assert wait_until_finished(db_path, job_id, sync_training) == "done"


# ----------------------------------------------------------------------------- CLI


def test_cli_prints_the_estimate_default_then_measured(db_path, tiny_model_dir, capsys):
    from reset_core.cli import main

    con = connect(db_path)
    from tests.test_judging import _seed_db

    _seed_db(con)
    con.close()
    db = str(db_path)
    assert main(["--db", db, "judge", "--offline", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "42 judgments · under a minute (no run of these judges yet: assuming" in out
    assert main(["--db", db, "judge", "--offline", "--limit", "12"]) == 0
    capsys.readouterr()
    assert main(["--db", db, "judge", "--offline", "--dry-run"]) == 0
    out = capsys.readouterr().out
    # The real run just made is what the next estimate is measured on.
    assert re.search(
        r"30 judgments · .* \(measured: [0-9.,]+ judgments/s over your last run of these judges",
        out,
    ), out

    args = ["--db", db, "sample", "--model", str(tiny_model_dir), "--max-tokens", "4"]
    assert main([*args, "--count", "1", "--poll-s", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "6 candidates · under a minute (no run of this model yet: assuming" in out
    assert main([*args, "--count", "2", "--poll-s", "0.2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"6 candidates · .* \(measured: .* over your last run of this model", out)
