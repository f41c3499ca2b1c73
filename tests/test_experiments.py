"""Experiments: recipes (validation, built-ins) and the state machine with the tiny model.

The tiny Llama trains and samples in seconds, the offline judges need no API, so a
whole recipe (MTL, two arms sharing candidates, their evaluation) runs headless here.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from experiment_data import tiny_recipe

from reset_core import jobs
from reset_core.evaluation import experiments as ex
from reset_core.evaluation.experiments import RecipeError


@pytest.fixture
def demo_con(con):
    from reset_core.ingest.demo import load_demo

    load_demo(con)
    return con


# --------------------------------------------------------------------------- recipes


def test_builtin_recipes_load_and_say_what_they_are():
    recipes = ex.list_recipes(None)
    assert set(recipes) == {"mtl-tradeoff", "decoding-ablation", "weighting-ablation"}
    for name, r in recipes.items():
        assert r.name == name and "CPU" in r.description
        assert r.checkpoints()[0] in ("base", "mtl")
    assert recipes["mtl-tradeoff"].arms == []
    fixed, grid = recipes["decoding-ablation"].arms
    assert fixed.grid.temperatures == [0.5] and len(grid.grid.settings()) == 4
    # The fixed arm's settings are part of the grid's, so its candidates are reused.
    assert {s.setting_id for s in fixed.grid.settings()} <= {
        s.setting_id for s in grid.grid.settings()
    }
    w2, w0 = recipes["weighting-ablation"].arms
    assert (w2.weight, w0.weight) == (2.0, 0.0) and w2.grid == w0.grid


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('name = "x"\n', "description: Field required"),
        ('name = "x"\ndescription = "d"\nsurprise = 1\n', "surprise: Extra inputs"),
        (
            'name = "x"\ndescription = "d"\n[[arms]]\nname = "a"\nstart_from = "b"\n',
            "arms.0.start_from: 'b' is not 'base', 'mtl' or an earlier arm",
        ),
        (
            'name = "x"\ndescription = "d"\n[[arms]]\nname = "a"\n[arms.grid]\ntemperatures = [3.0]\n',
            "arms.0.grid",
        ),
        (
            'name = "x"\ndescription = "d"\n[[arms]]\nname = "a"\n[arms.train]\nlearning_rate = 9\n',
            "arms.0.train",
        ),
        (
            'name = "x"\ndescription = "d"\n[[arms]]\nname = "a"\n[arms.train]\nepochs = 2\n',
            "unknown training fields ['epochs']",
        ),
        (
            'name = "x"\ndescription = "d"\n[[arms]]\nname = "a"\njudges = ["gpt"]\n',
            "arms.0.judges: Value error, unknown offline judges ['gpt']",
        ),
        (
            'name = "x"\ndescription = "d"\n[evaluation]\nbaseline = "w9"\n',
            "evaluation.baseline: 'w9' is not one of the evaluated checkpoints",
        ),
        ('name = "x"\ndescription = "d"\n[examples\n', "not valid TOML"),
        ('name = "Bad Name"\ndescription = "d"\n', "name: Value error"),
    ],
)
def test_a_bad_recipe_file_names_the_file_and_the_field(tmp_path, toml, message):
    path = tmp_path / "mine.toml"
    path.write_text(toml)
    with pytest.raises(RecipeError) as e:
        ex.load_recipe(path, None)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)


def test_user_recipes_sit_beside_the_database_and_unknown_names_are_refused(tmp_path):
    db = tmp_path / "studio.duckdb"
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "mine.toml").write_text('name = "mine"\ndescription = "d"\n')
    assert "mine" in ex.list_recipes(db) and ex.load_recipe("mine", db).name == "mine"
    with pytest.raises(RecipeError, match="no recipe 'nope'; known: decoding-ablation"):
        ex.load_recipe("nope", db)


def test_scaling_changes_only_the_sizes():
    r = ex.load_recipe("decoding-ablation", None)
    big = ex.scaled(r, examples=400, tests=300, max_steps=50)
    assert (big.examples.count, big.evaluation.tests.count) == (400, 300)
    assert big.mtl.train["max_steps"] == 50 and all(a.train["max_steps"] == 50 for a in big.arms)
    assert big.arms[0].grid == r.arms[0].grid
    with pytest.raises(RecipeError, match="examples.count"):
        ex.scaled(r, examples=0)


# --------------------------------------------------------------------------- the state machine


def _steps(con, exp_id) -> dict:
    return {s["step"]: s for s in ex.get_experiment(con, exp_id)["steps"]}


def test_tiny_experiment_runs_headless_through_its_evaluation(demo_con, db_path, tiny_model_dir):
    con = demo_con
    exp_id = ex.start_experiment(con, db_path, tiny_recipe(tiny_model_dir))
    seen = []
    p = ex.run_experiment(con, db_path, exp_id, on_progress=seen.append, until="evaluate")
    assert p.status == "running" and p.step == "evaluate", p
    steps = _steps(con, exp_id)
    assert all(
        steps[s]["status"] == "done" for s in ex.step_names(tiny_recipe(tiny_model_dir))[:-1]
    )

    # Every step was an ordinary stage call: its rows are where the stages put them.
    mtl = steps["mtl.train"]["outputs"]
    mtl_run = con.execute(
        "SELECT run_id FROM training_runs WHERE model_id = ?", [mtl["model_id"]]
    ).fetchone()[0]
    stage, parent = con.execute(
        "SELECT stage, parent_id FROM models WHERE model_id = ?", [mtl["model_id"]]
    ).fetchone()
    assert (
        stage == "mtl"
        and parent
        == con.execute(
            "SELECT model_id FROM models WHERE path = ? AND adapter_path IS NULL",
            [str(tiny_model_dir)],
        ).fetchone()[0]
    )
    w2, w0 = steps["w2.sample"]["outputs"], steps["w0.sample"]["outputs"]
    assert w2["model_id"] == w0["model_id"] == mtl["model_id"]  # both sample the MTL model
    assert w2["n_candidates"] == 12 and w2["n_reused"] == 0
    # The second arm samples and judges nothing: the same keys, reused.
    assert w0["n_reused"] == 12 and steps["w0.sample"].get("job_id") is None
    assert steps["w0.judge"]["outputs"]["n_items"] == 0 and steps["w0.judge"].get("job_id") is None
    n_cands = con.execute(
        "SELECT count(*) FROM candidates WHERE model_id = ?", [w2["model_id"]]
    ).fetchone()[0]
    assert n_cands == 12
    sels = [steps[f"{a}.select"]["outputs"]["selection_id"] for a in ("w2", "w0")]
    weights = [
        json.loads(
            con.execute("SELECT config FROM selections WHERE selection_id = ?", [s]).fetchone()[0]
        )["weight"]
        for s in sels
    ]
    assert weights == [2.0, 0.0]
    for arm in ("w2", "w0"):
        model = steps[f"{arm}.train"]["outputs"]
        row = con.execute(
            "SELECT stage, parent_id, curated_set_id FROM models WHERE model_id = ?",
            [model["model_id"]],
        ).fetchone()
        assert row == ("reset", mtl["model_id"], steps[f"{arm}.curate"]["outputs"]["set_id"])
        # RESET continued the MTL adapter (one epoch from it), not a fresh one.
        cfg = json.loads(
            con.execute(
                "SELECT config FROM models WHERE model_id = ?", [model["model_id"]]
            ).fetchone()[0]
        )
        assert cfg["train"]["adapter_path"] == mtl["adapter"]
    # One progress report per job (instant and reused steps need none), then the stop.
    assert [e.step for e in seen] == [
        "mtl.train",
        "w2.sample",
        "w2.judge",
        "w2.train",
        "w0.train",
        "evaluate",
    ]

    # The same MTL again (same base, references and training fields) is reused, not trained.
    n_runs = con.execute("SELECT count(*) FROM training_runs").fetchone()[0]
    again = ex.start_experiment(
        con, db_path, tiny_recipe(tiny_model_dir, arms=[], evaluation={"baseline": "base"})
    )
    assert ex.run_experiment(con, db_path, again, until="evaluate").step == "evaluate"
    assert _steps(con, again)["mtl.train"]["outputs"]["reused_run"] == mtl_run
    assert _steps(con, again)["mtl.train"]["outputs"]["model_id"] == mtl["model_id"]
    assert con.execute("SELECT count(*) FROM training_runs").fetchone()[0] == n_runs
    no_reuse = tiny_recipe(tiny_model_dir, arms=[], evaluation={"baseline": "base"})
    no_reuse = no_reuse.model_copy(update={"reuse_mtl": False})
    third = ex.start_experiment(con, db_path, no_reuse)
    ex.run_experiment(con, db_path, third, until="evaluate")
    assert _steps(con, third)["mtl.train"]["outputs"]["model_id"] != mtl["model_id"]

    pytest.importorskip("reset_core.evaluation.launch")  # H-evalrun's part of issue #12
    p = ex.run_experiment(con, db_path, exp_id)
    assert p.status == "done", p
    ev = ex.get_experiment(con, exp_id)["evaluation_id"]
    from reset_core.evaluation.queries import get_evaluation

    got = get_evaluation(con, ev)
    labels = {c["model_id"]: c["label"] for c in got["checkpoints"]}
    assert sorted(labels.values()) == ["base", "mtl", "w0", "w2"]
    assert got["status"] == "done"
    assert (
        con.execute(
            "SELECT experiment_id FROM evaluations WHERE evaluation_id = ?", [ev]
        ).fetchone()[0]
        == exp_id
    )
    listed = ex.list_experiments(con).set_index("experiment_id")
    assert listed.loc[exp_id, "evaluation_id"] == ev and listed.loc[exp_id, "status"] == "done"
    assert listed.loc[exp_id, "steps_done"] == listed.loc[exp_id, "steps_total"] == 13


def test_a_killed_job_fails_the_step_and_resumes(demo_con, db_path, tiny_model_dir):
    con = demo_con
    recipe = tiny_recipe(
        tiny_model_dir, arms=[], evaluation={"checkpoints": ["base", "mtl"], "baseline": "base"}
    )
    exp_id = ex.start_experiment(con, db_path, recipe)
    p = ex.advance_experiment(con, db_path, exp_id)  # mtl.set at once, mtl.train launched
    assert p.step == "mtl.train" and p.job_status == "running" and p.steps_done == 1
    job_id = p.job_id
    pid = con.execute("SELECT pid FROM jobs WHERE job_id = ?", [job_id]).fetchone()[0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while jobs._alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    p = ex.advance_experiment(con, db_path, exp_id)
    assert p.status == "failed" and p.step == "mtl.train" and job_id in p.message, p
    assert _steps(con, exp_id)["mtl.train"]["status"] == "failed"
    # Still failed on the next refresh: nothing moves until asked to resume.
    assert ex.advance_experiment(con, db_path, exp_id).status == "failed"

    # Headless resume: the same job reruns (from its checkpoints), then the next steps.
    p = ex.run_experiment(con, db_path, exp_id, until="evaluate")
    assert p.step == "evaluate" and p.status == "running", p
    steps = _steps(con, exp_id)
    assert steps["mtl.train"]["job_id"] == job_id and steps["mtl.train"]["status"] == "done"
    assert con.execute("SELECT count(*) FROM training_runs").fetchone()[0] == 1

    # A cancelled (failed) evaluation fails the experiment; resuming resumes the evaluation.
    launch = pytest.importorskip("reset_core.evaluation.launch")
    p = ex.advance_experiment(con, db_path, exp_id, launch=False)
    assert p.step == "evaluate" and p.evaluation_id, p
    launch.cancel_evaluation(con, p.evaluation_id)
    p = ex.advance_experiment(con, db_path, exp_id, launch=False)
    assert p.status == "failed" and p.step == "evaluate", p
    p = ex.run_experiment(con, db_path, exp_id)
    assert p.status == "done" and ex.get_experiment(con, exp_id)["evaluation_id"] == p.evaluation_id
    assert con.execute("SELECT count(*) FROM evaluations").fetchone()[0] == 1


def test_an_abandoned_headless_job_is_run_again(demo_con, db_path, tiny_model_dir):
    """A headless run killed mid-job leaves its job 'running' with no worker."""
    con = demo_con
    arms = tiny_recipe(tiny_model_dir).model_dump()["arms"][:1]
    arms[0]["name"] = "t0.7"  # arm names may hold dots
    recipe = tiny_recipe(tiny_model_dir, arms=arms, evaluation={"checkpoints": ["mtl", "t0.7"]})
    exp_id = ex.start_experiment(con, db_path, recipe)
    p = ex.advance_experiment(con, db_path, exp_id, launch=False)
    assert p.job_status == "queued"
    con.execute("UPDATE jobs SET status = 'running' WHERE job_id = ?", [p.job_id])
    p = ex.run_experiment(con, db_path, exp_id, until="t0.7.judge")
    assert p.step == "t0.7.judge", p
    assert _steps(con, exp_id)["t0.7.sample"]["status"] == "done"


def test_an_arm_whose_ranking_would_mix_other_settings_is_refused(
    demo_con, db_path, tiny_model_dir
):
    con = demo_con
    arms = tiny_recipe(tiny_model_dir).model_dump()["arms"]
    arms[1]["grid"]["temperatures"] = [0.3]  # a setting the first arm never sampled
    recipe = tiny_recipe(tiny_model_dir, arms=arms)
    exp_id = ex.start_experiment(con, db_path, recipe)
    p = ex.run_experiment(con, db_path, exp_id, until="evaluate")
    assert p.status == "failed" and p.step == "w0.select", p
    assert "other seen candidates" in p.message
    assert ex.list_experiments(con).loc[0, "status"] == "failed"


def test_start_refuses_a_missing_model_and_no_examples(con, db_path, tmp_path):
    r = tiny_recipe(tmp_path / "no-such-model")
    with pytest.raises(ValueError, match="does not exist"):
        ex.start_experiment(con, db_path, r)
    with pytest.raises(KeyError, match="no experiment"):
        ex.get_experiment(con, "exp-nope")


def test_the_app_path_advances_without_blocking_to_the_end(demo_con, db_path, tiny_model_dir):
    """What the app does on each refresh: advance_experiment(launch=True) until done."""
    pytest.importorskip("reset_core.evaluation.launch")
    con = demo_con
    recipe = tiny_recipe(
        tiny_model_dir,
        arms=[],
        evaluation={
            "checkpoints": ["base", "mtl"],
            "baseline": "base",
            "tests": {"count": 3},
            "max_tokens": 8,
        },
    )
    exp_id = ex.start_experiment(con, db_path, recipe)
    seen, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        p = ex.advance_experiment(con, db_path, exp_id)
        seen.append(p.step)
        if p.status != "running":
            break
        time.sleep(0.5)
    assert p.status == "done", p
    # Launched workers, not in-process runs: every job has its own process id.
    pids = con.execute("SELECT pid FROM jobs ORDER BY created_at").fetchall()
    assert pids and all(pid for (pid,) in pids)
    assert {"mtl.train", "evaluate"} <= set(seen)
    assert ex.get_experiment(con, exp_id)["evaluation_id"] == p.evaluation_id


def test_cli_lists_recipes_and_rejects_a_bad_recipe_file(db_path, tmp_path, capsys):
    from reset_core.cli import main

    assert main(["--db", str(db_path), "experiment", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("mtl-tradeoff", "decoding-ablation", "weighting-ablation"):
        assert f"{name}: " in out
    assert "evaluates base, mtl (baseline base) on 24 test examples" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = "d"\n[examples]\ncount = 0\n')
    assert main(["--db", str(db_path), "experiment", "--recipe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: examples.count: Input should be greater than or equal to 1" in err
    assert main(["--db", str(db_path), "experiment"]) == 2
    assert "give one of NAME, --recipe FILE or --resume ID" in capsys.readouterr().err
    assert main(["--db", str(db_path), "experiment", "--resume", "exp-nope"]) == 5  # not found
    assert "no experiment 'exp-nope'" in capsys.readouterr().err
