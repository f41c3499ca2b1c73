"""The guided MTL → RESET path (loop_status) and the lineage graph (lineage_dot).

The models, candidates, verdicts, selections and sets come from a real (tiny)
experiment run through the ordinary stages, stopped before its evaluation.
"""

from __future__ import annotations

import re

import pytest
from experiment_data import tiny_recipe

from reset_core.evaluation import experiments as ex
from reset_core.evaluation.loop import PAGES, lineage_dot, loop_status


@pytest.fixture
def demo_con(con):
    from reset_core.ingest.demo import load_demo

    load_demo(con)
    return con


def _run(con, db_path, recipe) -> dict:
    exp_id = ex.start_experiment(con, db_path, recipe)
    p = ex.run_experiment(con, db_path, exp_id, until="evaluate")
    assert p.step == "evaluate", p
    return {s["step"]: s.get("outputs") or {} for s in ex.get_experiment(con, exp_id)["steps"]}


def _mark_evaluated(con, model_ids: list[str], labels: list[str]) -> None:
    """A finished evaluation of these checkpoints, as the evaluation stage records it."""
    con.execute(
        "INSERT INTO evaluations (evaluation_id, name, config, frozen, status) "
        "VALUES ('eval-1', 'e', '{}', '{}', 'done')"
    )
    for i, (m, label) in enumerate(zip(model_ids, labels, strict=True)):
        con.execute("INSERT INTO evaluation_checkpoints VALUES ('eval-1', ?, ?, ?)", [m, i, label])


def _by_key(status) -> dict:
    return {s.key: s for s in status.steps}


def test_an_empty_database_starts_with_mtl(con):
    status = loop_status(con)
    assert status.round == 1 and status.policy_id is None
    assert [s.key for s in status.steps] == [
        "mtl",
        "sample",
        "judge",
        "select",
        "curate",
        "train",
        "evaluate",
    ]
    assert not any(s.done for s in status.steps)
    assert status.next_step.key == "mtl" and status.next_step.page == "pages/train.py"
    assert "reference answers" in status.next_step.detail
    assert lineage_dot(con) == (
        "digraph lineage {\n  rankdir=LR;\n"
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];\n}'
    )


def test_after_mtl_the_next_step_is_sampling_with_it(demo_con, db_path, tiny_model_dir):
    con = demo_con
    recipe = tiny_recipe(
        tiny_model_dir, arms=[], evaluation={"checkpoints": ["base", "mtl"], "baseline": "base"}
    )
    out = _run(con, db_path, recipe)
    mtl_id = out["mtl.train"]["model_id"]
    status = loop_status(con)
    steps = _by_key(status)
    assert status.round == 1 and status.policy_id == mtl_id
    assert steps["mtl"].done and "round 1's policy" in steps["mtl"].detail
    assert status.next_step.key == "sample" and status.next_step.page == "pages/sample.py"
    assert status.policy_label in status.next_step.detail
    assert not any(steps[k].done for k in ("judge", "select", "curate", "train", "evaluate"))


def test_after_a_reset_round_evaluate_then_round_two(demo_con, db_path, tiny_model_dir):
    con = demo_con
    recipe = tiny_recipe(tiny_model_dir)
    recipe = recipe.model_copy(update={"arms": recipe.arms[:1]})
    recipe = ex.Recipe.model_validate(
        {**recipe.model_dump(), "evaluation": {"checkpoints": ["base", "mtl", "w2"]}}
    )
    out = _run(con, db_path, recipe)
    mtl_id, reset_id = out["mtl.train"]["model_id"], out["w2.train"]["model_id"]

    status = loop_status(con)
    steps = _by_key(status)
    # Round 1 stays open until its result is evaluated: every step but the last is done.
    assert status.round == 1 and status.policy_id == mtl_id
    assert [s.key for s in status.steps if s.done] == [
        "mtl",
        "sample",
        "judge",
        "select",
        "curate",
        "train",
    ]
    assert steps["sample"].detail.startswith("12 seen candidates")
    assert steps["judge"].detail == "12 of 12 candidates have verdicts"
    assert out["w2.select"]["selection_id"] in steps["select"].detail
    assert "RESET round 1" in steps["train"].detail
    assert status.next_step.key == "evaluate" and status.next_step.page == PAGES["evaluate"]

    _mark_evaluated(
        con,
        [
            con.execute("SELECT parent_id FROM models WHERE model_id = ?", [mtl_id]).fetchone()[0],
            mtl_id,
            reset_id,
        ],
        ["base", "MTL", "RESET"],
    )
    status = loop_status(con)
    # Round 2 samples the round-1 result.
    assert status.round == 2 and status.policy_id == reset_id
    assert status.next_step.key == "sample"
    assert _by_key(status)["train"].title == "Train RESET round 2"

    dot = lineage_dot(con)
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)"', dot, flags=re.M)
    base_id = con.execute("SELECT parent_id FROM models WHERE model_id = ?", [mtl_id]).fetchone()[0]
    mtl_set, reset_set = out["mtl.set"]["set_id"], out["w2.curate"]["set_id"]
    assert edges == [
        (base_id, mtl_set),
        (mtl_set, mtl_id),
        (mtl_id, reset_set),
        (reset_set, reset_id),
    ]
    assert "RESET round 1" in dot and "fillcolor=palegreen" in dot and "shape=note" in dot


def test_lineage_dot_escapes_quotes_and_backslashes(con):
    con.execute(
        "INSERT INTO models (model_id, name, path, stage) VALUES "
        "('m:base', 'base', '/m/tiny', 'base'), "
        "('m:x', 'my \"best\" \\ model', '/m/tiny', 'mtl')"
    )
    con.execute(
        "UPDATE models SET parent_id = 'm:base', training_run_id = 'r1' WHERE model_id = 'm:x'"
    )
    dot = lineage_dot(con)
    label = re.search(r'"m:x" \[label="((?:[^"\\]|\\.)*)"', dot).group(1)
    assert label.startswith('my \\"best\\" \\\\ model')
    assert '"m:base" -> "m:x";' in dot
    # Every quote in the output is either a delimiter or escaped: the quotes balance.
    for line in dot.splitlines():
        assert len(re.findall(r'(?<!\\)"', line.replace("\\\\", ""))) % 2 == 0, line
