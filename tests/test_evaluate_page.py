"""AppTest for the Evaluate page: a fixed evaluation's results, the before/after browser,
and a new evaluation started and run to the end from the page (tiny model, offline judges).

The fixed evaluation is ``tests/evaluation_data.py``'s: three checkpoints, twelve test
examples, a frozen panel whose scores are known, so the figures the page shows can be
checked by hand.
"""

from __future__ import annotations

import time

import evaluation_data as ed
import pytest

from reset_core.store import connect


def _evaluate(app, tab: str | None = None):
    con = connect(app.db)
    ed.fill_evaluation(con)
    con.close()
    app.switch_page("pages/evaluate.py")
    if tab:
        app.query_params["ev_tab"] = tab  # the tab is bound to the URL
    app.run()
    assert not app.exception, app.exception
    return app


def _frames(at, *columns):
    """The dataframes on the page that have all these columns, in page order."""
    return [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]


def _frame(at, *columns):
    return _frames(at, *columns)[0]


def test_results_show_the_frozen_panel_and_paired_deltas_against_the_baseline(app):
    at = _evaluate(app, "Results")
    assert at.selectbox(key="ev_pick").value == ed.EVAL_ID
    panel = _frame(at, "aspect", "judge", "rubric version")
    frozen = {(r.aspect, r.judge) for r in panel.itertuples()}
    assert frozen == {(a, j) for a, ids in ed.JUDGES.items() for j in ids}
    versions = {(r.aspect, r.judge): r[3] for r in panel.itertuples(index=False)}
    assert versions[("task", ed.LLM_A)] == "2" and versions[("faithfulness", ed.LLM_A)] == "1"

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test examples"] == "12" and metrics["Checkpoints"] == "3"
    assert metrics["context · test_seen"] == "3" and metrics["instruction · test_unseen"] == "3"

    # Task on context/test_seen, MTL against base: an answer's task score is the mean of
    # ROUGE-L and judge A: base c1..c3 = .55 .40 .45, MTL = .60 .55 .50, so the paired
    # deltas are .05 .15 .05, their mean 1/12.
    task, instruction, faith = _frames(at, "kind", "split", "label", "delta", "p_value")
    row = task[(task.kind == "context") & (task.split == "test_seen") & (task.label == "MTL")]
    assert row.delta.iloc[0] == pytest.approx(0.25 / 3)
    assert row.n_pairs.iloc[0] == 3 and row.ci_low.iloc[0] <= row.delta.iloc[0]
    base = task[task.label == "base"]
    assert base.is_baseline.all() and base.delta.isna().all()
    # RESET has no faithfulness score on c3 (both judges failed): missing, never a 0.
    r = faith[(faith.split == "test_seen") & (faith.label == "RESET round 1")]
    assert r.n.iloc[0] == 2 and r.n_missing.iloc[0] == 1

    ifeval = _frame(at, "measure_text", "value")
    assert len(ifeval) == 12  # 3 checkpoints x 4 measures, in IFEval's order
    assert list(ifeval.measure_text[:4]) == ["prompt-level strict"] * 3 + ["prompt-level loose"]
    assert any("prompts unscored: needs NLTK punkt data" in c.value for c in at.caption)
    kprecision = [f for f in _frames(at, "split", "label", "mean") if "kind" not in f.columns]
    assert len(kprecision[0]) == 6  # per checkpoint and split
    assert len(at.get("plotly_chart")) == 4  # the plane and one delta chart per aspect
    assert {b.proto.label for b in at.get("download_button")} == {
        "Download report (HTML, opens offline)",
        "Download tables (Markdown)",
    }

    # Another baseline: the deltas are now taken against MTL.
    at.selectbox(key="ev_res_baseline").select("m:mtl").run()
    assert not at.exception, at.exception
    task = _frame(at, "kind", "split", "label", "delta", "p_value")
    row = task[(task.kind == "context") & (task.split == "test_seen") & (task.label == "base")]
    assert row.delta.iloc[0] == pytest.approx(-0.25 / 3)
    assert task[task.label == "MTL"].is_baseline.all()


def test_before_after_lists_examples_by_delta_and_opens_one_side_by_side(app):
    at = _evaluate(app, "Before/after")
    assert at.selectbox(key="ba_a").value == "m:base"  # the baseline
    assert at.selectbox(key="ba_b").value == "m:reset"  # the last other checkpoint
    pairs = _frame(at, "example_id", "score_a", "score_b", "delta")
    assert len(pairs) == 12
    scored = pairs.delta.dropna()
    assert list(scored) == sorted(scored)  # B's regressions first
    assert any("Examples 1–12 of 12" in c.value for c in at.caption)

    at.selectbox(key="ba_kind").select("context").run()
    pairs = _frame(at, "example_id", "score_a", "score_b", "delta")
    assert set(pairs.example_id) == set(ed.CONTEXT)
    at.selectbox(key="ba_example").select("c1").run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "Answer to c1 by m:base" in text and "Answer to c1 by m:reset" in text
    # c1's faithfulness (its kind's aspect): base (0.5 + 0.7) / 2, RESET (0.9 + 0.9) / 2.
    assert "faithfulness **0.600**" in text and "faithfulness **0.900**" in text
    verdicts = _frames(at, "judge", "aspect", "score")
    assert len(verdicts) == 2 and ed.KP in set(verdicts[0].judge)
    link = at.get("page_link")[-1].proto
    assert link.label == "Open this example in Review"
    assert "example=c1" in link.query_string
    assert ed.cand("c1", "m:base").replace(":", "%3A") in link.query_string
    assert ed.cand("c1", "m:reset").replace(":", "%3A") in link.query_string


def test_a_new_evaluation_runs_from_the_page_to_its_results(app, tiny_model_dir, tmp_path):
    """Install IFEval, evaluate two checkpoints on four of its prompts, read the results."""
    import shutil

    from reset_core.training.launch import ensure_model

    twin = shutil.copytree(tiny_model_dir, tmp_path / "tiny-twin")  # a second checkpoint
    con = connect(app.db)
    model_id = ensure_model(con, str(tiny_model_dir), name="tiny")
    twin_id = ensure_model(con, str(twin), name="tiny-twin")
    con.close()
    at = app
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, at.exception
    # Greedy by default, every field with its help text.
    assert at.number_input(key="ev_dec_temperature").value == 0.0
    assert all(w.help for w in at.number_input if w.key.startswith("ev_"))
    # IFEval is one click away.
    install = at.button(key="ev_install_ifeval")
    assert install.label == "Install IFEval (541 prompts)"
    install.click().run()
    assert "IFEval: 541 prompts added, 0 already present; 541 in the test splits." in [
        s.value for s in at.success
    ]
    assert not [b for b in at.button if b.key == "ev_install_ifeval"]  # nothing left to add
    assert at.multiselect(key="ev_sources").options == ["ifeval"]

    at.multiselect(key="ev_checkpoints").set_value([model_id, twin_id])
    at.multiselect(key="ev_sources").set_value(["ifeval"])
    at.number_input(key="ev_count").set_value(4)
    at.number_input(key="ev_dec_max_tokens").set_value(8)
    at.button(key="ev_start").click().run()
    assert not at.exception, at.exception
    assert any("Started evaluation" in s.value for s in at.success), [e.value for e in at.error]
    evaluation_id = at.session_state["ev_launched"]
    # Cancelled while it runs: failed, saying why; resumed, it makes only what is missing.
    at.button(key=f"ev_cancel_{evaluation_id}").click().run()
    assert not at.exception, at.exception
    at.query_params["ev_tab"] = "Results"
    at.run()
    assert "This evaluation failed: cancelled" in [e.value for e in at.error]
    at.button(key="ev_resume").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        at.run()  # each run advances it (the polled fragment)
        con = connect(app.db)
        (status,) = con.execute("SELECT status FROM evaluations").fetchone()
        con.close()
        if status in ("done", "failed"):
            break
        time.sleep(1)
    assert status == "done"
    at.run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Test examples"] == "4"
    ifeval = _frame(at, "measure_text", "value")
    assert len(ifeval) == 8 and set(ifeval.n_prompts + ifeval.n_unscored) == {4}
    # Greedy decoding and equal weights: the twin answers exactly as the tiny model does.
    deltas = ifeval[~ifeval.is_baseline.astype(bool)].delta.dropna()
    assert len(deltas) > 0 and set(deltas) == {0.0}


def test_trade_off_places_the_evaluated_checkpoints_and_links_to_their_results(app):
    con = connect(app.db)
    ed.fill_evaluation(con)
    con.close()
    app.switch_page("pages/tradeoff.py").run()
    assert not app.exception, app.exception
    points = app.get("plotly_chart")[-1].proto.spec
    for model_id in ed.MODELS:  # each checkpoint, placed from that evaluation
        assert f'"{model_id}","{ed.EVAL_ID}"' in points
    link = next(p.proto for p in app.get("page_link") if p.proto.label.startswith("Evaluation "))
    assert link.label == "Evaluation base vs MTL vs RESET: results →"
    assert link.page == "evaluate" and f"evaluation={ed.EVAL_ID}" in link.query_string
    # The link opens that evaluation's results.
    app.switch_page("pages/evaluate.py")
    app.query_params.update({"ev_tab": "Results", "evaluation": ed.EVAL_ID})
    app.run()
    assert not app.exception, app.exception
    assert app.selectbox(key="ev_pick").value == ed.EVAL_ID


def test_a_user_recipe_runs_in_one_click_and_links_to_its_evaluation(app, tiny_model_dir):
    """A recipe file beside the database (the tiny model, MTL against base) is listed with
    the built-ins, runs from its button through every step, and ends in an evaluation."""
    from reset_core.ingest.demo import load_demo

    con = connect(app.db)
    load_demo(con)
    con.close()
    recipes = app.db.parent / "experiments"
    recipes.mkdir()
    (recipes / "tiny-tradeoff.toml").write_text(
        f"""
name = "tiny-tradeoff"
description = "The tiny model against its MTL fine-tune, on four test examples."
base_model = "{tiny_model_dir}"
[examples]
count = 8
[mtl.train]
max_steps = 2
[evaluation]
checkpoints = ["base", "mtl"]
baseline = "base"
max_tokens = 8
[evaluation.tests]
count = 4
"""
    )
    at = app
    at.switch_page("pages/evaluate.py")
    at.query_params["ev_tab"] = "Experiments"
    at.run()
    assert not at.exception, at.exception
    listed = {b.key for b in at.button if b.key and b.key.startswith("ex_start_")}
    assert {
        "ex_start_mtl-tradeoff",
        "ex_start_decoding-ablation",
        "ex_start_weighting-ablation",
        "ex_start_tiny-tradeoff",
    } <= listed
    at.button(key="ex_start_tiny-tradeoff").click().run()
    assert not at.exception, at.exception
    assert any("Started experiment" in s.value for s in at.success), [e.value for e in at.error]
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        at.run()  # each run advances it (the polled fragment)
        con = connect(app.db)
        (status,) = con.execute("SELECT status FROM experiments").fetchone()
        con.close()
        if status in ("done", "failed"):
            break
        time.sleep(1)
    at.run()
    assert status == "done", [e.value for e in at.error]
    steps = _frame(at, "step", "status")
    assert list(steps.step) == ["mtl.set", "mtl.train", "evaluate"]
    assert set(steps.status) == {"done"}
    link = next(p.proto for p in at.get("page_link") if p.proto.label.startswith("Its evaluation"))
    assert "ev_tab=Results" in link.query_string and "evaluation=eval-" in link.query_string


@pytest.mark.parametrize("tab", ["New evaluation", "Results", "Before/after", "Experiments"])
def test_every_tab_opens_on_an_empty_database(app, tab):
    app.switch_page("pages/evaluate.py")
    app.query_params["ev_tab"] = tab
    app.run()
    assert not app.exception, app.exception
    if tab in ("Results", "Before/after"):
        assert [i.value for i in app.info] == [
            "No evaluations yet: start one in the New evaluation tab."
        ]


def test_the_test_set_size_shows_before_start_and_an_empty_one_keeps_start_off(app):
    """The count under the test-set widgets follows them live; 0 matches disables Start."""
    from reset_core.evaluation import launch

    at = _evaluate(app, "New evaluation")
    con = connect(app.db)
    expected = launch.test_set_size(con, launch.TestSet())
    con.close()
    # The fixed evaluation's test examples, plus x1 (a test_seen example it left out).
    assert expected["total"] == 13 and expected["split"] == {"test_seen": 7, "test_unseen": 6}
    shown = at.get("markdown")
    # Markdown escapes; the text a person reads is without the backslashes.
    line = [m.value.replace("\\", "") for m in shown if "examples" in m.value]
    assert line == [
        "**13 examples: test_seen 7, test_unseen 6 · context 6, instruction 7 · demo 10, ifeval 3**"
    ], line
    assert not at.button(key="ev_start").disabled

    at.multiselect(key="ev_kinds").set_value(["context"]).run()
    at.multiselect(key="ev_splits").set_value(["test_unseen"]).run()
    text = " ".join(m.value.replace("\\", "") for m in at.markdown)
    assert "**3 examples: test_unseen 3 · context 3 · 1 source**" in text
    # IFEval's prompts are instructions: no context example comes from it.
    at.multiselect(key="ev_sources").set_value(["ifeval"]).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any(e.startswith("0 examples match these filters") for e in errors), errors
    assert at.button(key="ev_start").disabled


def _review_link(app, example_id: str, a: str, b: str):
    """Review opened as the before/after browser's link opens it (same query parameters)."""
    from reset_core.evaluation import compare

    con = connect(app.db)
    query = compare.answer_pair(con, ed.EVAL_ID, example_id, a, b)["review_query"]
    con.close()
    app.session_state["reviewer"] = "alice"
    app.switch_page("pages/review.py")
    for k, v in {"example": example_id, **query, "via": "the before/after browser"}.items():
        app.query_params[k] = v
    app.run()
    assert not app.exception, app.exception
    return app


def _review_text(at) -> str:
    """The Review page's Markdown as read: escapes and the unsupported-word highlight off."""
    import re

    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    return re.sub(r":orange-background\[([^\]]*)\]", r"\1", text)


def test_review_shows_linked_answers_read_only_without_any_selection(app):
    """Base vs RESET evaluated before any RESET selection: Review still shows both answers."""
    con = connect(app.db)
    ed.fill_evaluation(con)
    assert con.execute("SELECT count(*) FROM selections").fetchone()[0] == 0
    con.close()
    at = _review_link(app, "c1", "m:base", "m:reset")
    assert not [i.value for i in at.info if i.value.startswith("No selection yet. Judge")]
    text = _review_text(at)
    assert "2 candidates (in 1 example) linked from the before/after browser" in text
    assert any(s.value == "Example c1" for s in at.subheader)
    # Both answers, each with every frozen judge's verdict (c1: K-Precision 0.5 / 0.9).
    assert "Answer to c1 by m:base" in text and "Answer to c1 by m:reset" in text
    assert "Answer to c1 by m:mtl" not in text and "SmolLM2 MTL" not in text  # not linked
    assert f"faithfulness **0.500** · {ed.KP}" in text
    assert f"faithfulness **0.900** · {ed.KP}" in text
    # Read-only, saying why; no override can be attempted.
    assert any("No selection yet, so nothing here can be overridden" in i.value for i in at.info)
    keys = {b.key for b in at.button}
    assert not keys & {"rv_accept", "rv_veto_pick", "rv_exclude", "rv_force_0", "rv_veto_0"}
    assert "RESET score" not in text
    # Clearing the link leaves nothing to show without a selection: the usual message.
    at.button(key="rv_clear_link").click().run()
    assert any(i.value.startswith("No selection yet") for i in at.info)


def test_review_shows_linked_test_answers_read_only_beside_a_selection(app):
    """A selection exists but never holds a test_unseen example: read-only, and says so."""
    from reset_core.scoring.config import SelectionConfig
    from reset_core.scoring.selection import save_selection

    con = connect(app.db)
    ed.fill_evaluation(con)
    save_selection(con, SelectionConfig(split="test_seen", all_models=True))
    con.close()
    at = _review_link(app, "c4", "m:base", "m:mtl")
    text = _review_text(at)
    assert "Answer to c4 by m:base" in text and "Answer to c4 by m:mtl" in text
    assert any(
        "does not score this example (test-split answers are never in one)" in i.value
        for i in at.info
    ), [i.value for i in at.info]
    assert "rv_accept" not in {b.key for b in at.button}
    # c1 is in that selection: the usual view with its actions.
    at.query_params["example"] = "c1"
    at.query_params["candidates"] = ",".join(ed.cand("c1", m) for m in ("m:base", "m:reset"))
    at.run()
    assert not at.exception, at.exception
    assert "rv_accept" in {b.key for b in at.button}
    assert not any("read-only" in i.value for i in at.info)
