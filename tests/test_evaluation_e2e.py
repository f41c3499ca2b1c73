"""The whole loop end to end: import, MTL, sample, judge, select, curate, train, evaluate.

The tiny Llama and the local OpenAI-compatible judge server (an LLM judge beside the
metric judges in one panel), run headless as the paper's experiments are. The
comparison must hold every checkpoint, and its means and paired deltas must equal the
ones computed here by hand from the stored verdicts.
"""

from __future__ import annotations

import pandas as pd
import pytest
from experiment_data import tiny_recipe

from reset_core.evaluation import experiments as ex
from reset_core.evaluation.compare import compare
from reset_core.evaluation.queries import get_evaluation
from reset_core.judging.launch import llm_spec, register_judges
from reset_core.judging.llm_judge import LLMJudgeConfig
from reset_core.judging.worker import build_judge
from reset_core.scoring.panels import Panel, save_panel


def _hand_scores(con, evaluation_id: str) -> pd.DataFrame:
    """Per answer and aspect: the mean of the frozen judges' latest valid scores."""
    ev = get_evaluation(con, evaluation_id)
    pairs = [(j, a) for a, ids in ev["frozen"]["judges"].items() for j in ids]
    verdicts = con.execute(
        """
        SELECT c.model_id, c.example_id, e.kind, e.split, j.judge_id, j.aspect, j.score,
               j.created_at
        FROM candidates c
        JOIN evaluation_examples v ON v.example_id = c.example_id AND v.evaluation_id = ?
        JOIN evaluation_checkpoints k ON k.model_id = c.model_id AND k.evaluation_id = ?
        JOIN examples e ON e.example_id = c.example_id
        JOIN judgments j ON j.candidate_id = c.candidate_id
        WHERE c.setting_id = ? AND c.sample_index = 0 AND j.score IS NOT NULL
        """,
        [evaluation_id, evaluation_id, ev["frozen"]["setting_id"]],
    ).df()
    verdicts = verdicts[
        [(j, a) in pairs for j, a in zip(verdicts.judge_id, verdicts.aspect, strict=True)]
    ]
    latest = (
        verdicts.sort_values("created_at")
        .groupby(["model_id", "example_id", "judge_id", "aspect"], as_index=False)
        .last()
    )
    return latest.groupby(["model_id", "example_id", "kind", "split", "aspect"], as_index=False)[
        "score"
    ].mean()


@pytest.fixture
def demo_con(con):
    from reset_core.ingest.demo import load_demo

    load_demo(con)
    return con


def test_import_mtl_sample_judge_select_curate_train_evaluate(
    demo_con, db_path, tiny_model_dir, openai_server
):
    con = demo_con
    # One panel for selection and evaluation: the local server's LLM judge on every
    # aspect, a metric judge beside it (its placeholder verdicts included on purpose).
    llm = llm_spec(con, LLMJudgeConfig(model="e2e-judge", base_url=openai_server.base_url))
    [llm_judge] = register_judges(con, [llm])
    metric = {"task": "rouge_l", "instruction": "instruction_proxy"}
    metric["faithfulness"] = "knowledge_precision"
    judges = {
        a: [llm_judge.judge_id, build_judge({"type": "metric", "name": n}).judge_id]
        for a, n in metric.items()
    }
    save_panel(con, Panel(name="e2e", judges=judges, include_placeholders=True))
    recipe = tiny_recipe(tiny_model_dir)
    data = recipe.model_dump(mode="json")
    data["arms"] = [{**data["arms"][0], "panel": "e2e", "judges": []}]
    data["evaluation"].update(checkpoints=["base", "mtl", "w2"], panel="e2e")
    recipe = ex.Recipe.model_validate(data)

    exp_id = ex.start_experiment(con, db_path, recipe)
    p = ex.run_experiment(con, db_path, exp_id)
    assert p.status == "done" and p.evaluation_id, p.message
    steps = ex.get_experiment(con, exp_id)["state"]["steps"]
    assert all(s["status"] == "done" for s in steps.values()), steps
    assert openai_server.n_requests > 0  # the LLM judge really judged, over HTTP

    ev = get_evaluation(con, p.evaluation_id)
    models = [c["model_id"] for c in ev["checkpoints"]]
    labels = [c["label"] for c in ev["checkpoints"]]
    assert labels == ["base", "mtl", "w2"] and len(set(models)) == 3
    c = compare(con, p.evaluation_id, n_boot=200)
    assert set(c.table.model_id) == set(models) and set(c.plane.model_id) == set(models)

    # Means and paired deltas, by hand from the stored verdicts.
    hand = _hand_scores(con, p.evaluation_id)
    baseline = models[labels.index("mtl")]
    checked = 0
    for (aspect, kind, split), group in hand.groupby(["aspect", "kind", "split"]):
        per = group.pivot(index="example_id", columns="model_id", values="score")
        for model in models:
            row = c.table[
                (c.table.aspect == aspect)
                & (c.table.kind == kind)
                & (c.table.split == split)
                & (c.table.model_id == model)
            ]
            assert len(row) == 1, (aspect, kind, split, model)
            row = row.iloc[0]
            assert row["mean"] == pytest.approx(per[model].mean(), abs=1e-9)
            if model == baseline:
                assert pd.isna(row["delta"])
                continue
            both = per[[model, baseline]].dropna()
            assert row["n_pairs"] == len(both)
            assert row["delta"] == pytest.approx((both[model] - both[baseline]).mean(), abs=1e-9)
            checked += 1
    assert checked >= 4  # several aspect/kind/split groups, two checkpoints each
