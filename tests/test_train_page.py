"""AppTest for the Train page: curate, export, train, watch the run, see the lineage."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
from streamlit.testing.v1 import AppTest
from training_data import add_event, fill_picks

from reset_core.store import connect
from reset_core.training.config import TrainConfig
from reset_core.training.launch import ensure_model, start_training

ROOT = Path(__file__).resolve().parent.parent


def _app(db_path: Path) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _by_key(elements, key):
    return next(e for e in elements if e.key == key)


def test_train_page_curate_export_train_and_lineage(db_path, tiny_model_dir, tmp_path):
    con = connect(db_path)
    fill_picks(con, n=12)
    add_event(con, "x1", "e000", "exclude")
    # A note, and a veto that was undone: review events, but no override in force.
    add_event(con, "n1", "e001", "note", value={"text": "fine"})
    add_event(con, "v1", "e002", "veto", "c002-0")
    add_event(con, "u1", "e002", "undo", value={"event_id": "v1"})
    base_id = ensure_model(con, str(tiny_model_dir), name="tiny")
    # An older run (never launched), so the Runs tab already shows a run before ours.
    older, _ = start_training(
        con,
        db_path,
        TrainConfig(base_model=str(tiny_model_dir)),
        data=pa.table({"prompt": ["Say hi."], "completion": ["Hi!"]}),
        launch=False,
    )
    con.close()

    at = _app(db_path)
    assert at.title[0].value == "Train"
    # Preview: 12 judge picks, one excluded by a reviewer.
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Judge picks"] == "12" and metrics["In the set"] == "11"
    assert metrics["Live overrides"] == "1"  # the exclusion; not the note, veto or undo
    assert any("In force: 1 exclusion (4 review events" in c.value for c in at.caption)
    _by_key(at.radio, "cur_preset").set_value("RESET-S").run()
    assert {m.label: m.value for m in at.metric}["In the set"] == "4"
    _by_key(at.button, "cur_freeze").click().run()
    assert not at.exception, at.exception
    assert any("Froze curated set" in s.value for s in at.success)

    # Export the set as prompt/completion Parquet.
    _by_key(at.selectbox, "exp_form").set_value("prompt_completion")
    _by_key(at.selectbox, "exp_fmt").set_value("parquet")
    _by_key(at.text_input, "exp_out").set_value(str(tmp_path / "exports"))
    _by_key(at.button, "exp_go").click().run()
    assert list((tmp_path / "exports").glob("*-prompt_completion.parquet"))

    # Train: the tiny model, two steps; every hyperparameter has its help text.
    assert all(w.help for w in at.number_input if w.key and w.key.startswith("tr_"))
    # No guessed speed before a run has measured one.
    assert not any("a few hundred tokens/s" in c.value for c in at.caption)
    assert any("Throughput is measured" in c.value for c in at.caption)
    _by_key(at.selectbox, "tr_model").set_value(
        next(o for o in _by_key(at.selectbox, "tr_model").options if "tiny" in o)
    )
    _by_key(at.number_input, "tr_max_steps").set_value(2)
    _by_key(at.button, "tr_go").click().run()
    assert not at.exception, at.exception
    assert any("Started run" in s.value for s in at.success), [e.value for e in at.error]
    # The run just started is the one the Runs tab follows, live.
    run_id = at.session_state["tr_watch"]
    assert run_id != older and _by_key(at.selectbox, "runs_pick").value == run_id
    assert "steps" in at.get("progress")[0].proto.text

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        at.run()
        if any("registered" in s.value for s in at.success):
            break
        assert not [e.value for e in at.error if "step" in e.value.lower()]
        time.sleep(1)
    else:
        raise AssertionError("the run did not finish on the page")
    assert not at.exception, at.exception
    # Curate tab: 3 bar charts + score histogram; Runs tab: loss, learning rate, tokens/s.
    assert len(at.get("plotly_chart")) >= 7

    # The speed quoted now is the one the run measured.
    assert any(
        "The latest run here measured" in c.value and "tokens/s" in c.value for c in at.caption
    )
    # The model is named for what it is, not after its curated set's id.
    con = connect(db_path)
    name, model_id = con.execute(
        "SELECT name, model_id FROM models WHERE training_run_id IS NOT NULL"
    ).fetchone()
    con.close()
    assert name == "tiny + LoRA (RESET-S round 1)"
    # Models tab: "Lineage of" opens on the model just trained, by its label; its lineage
    # shows its curated set and its parent.
    lin = _by_key(at.selectbox, "lin_model")
    assert lin.value == model_id and lin.value != base_id
    assert "tiny + LoRA (RESET-S round 1)" in lin.options
    text = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "tiny + LoRA (RESET-S round 1)** · reset" in text and "**tiny** · base" in text
    assert any("curated set" in c.value and "global_step" in c.value for c in at.code)


def test_train_page_guides_the_mtl_then_reset_path(db_path, tiny_model_dir):
    """No picks yet: curating starts from references (MTL); an MTL set trains a base model;
    a RESET set continues the round's policy, the MTL checkpoint."""
    from reset_core.curation.config import CurationSpec
    from reset_core.curation.sets import create_curated_set
    from reset_core.ingest.demo import load_demo
    from reset_core.models import ModelUnavailable, default_model_path

    con = connect(db_path)
    load_demo(con)
    base_id = ensure_model(con, str(tiny_model_dir), name="tiny")
    con.close()
    at = _app(db_path)
    assert any("The MTL → RESET path" in i.value for i in at.info)
    assert _by_key(at.radio, "cur_mode").value == "References (MTL baseline)"
    _by_key(at.button, "ref_freeze").click().run()
    assert not at.exception, at.exception
    assert any("Froze MTL set" in s.value for s in at.success)
    try:
        default_model_path()
        base_choice = "SmolLM2-135M-Instruct (embedded)"
    except ModelUnavailable:
        base_choice = "tiny"
    assert _by_key(at.selectbox, "tr_model").value == base_choice

    # An MTL checkpoint trained on that set, and a scoring run's picks frozen as RESET.
    con = connect(db_path)
    (mtl_set,) = con.execute("SELECT set_id FROM curated_sets").fetchone()
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id) VALUES ('m:mtl', '', ?, '/runs/1/adapter', 'mtl', ?, "
        "?, 'run-1')",
        [str(tiny_model_dir), base_id, mtl_set],
    )
    fill_picks(con, n=6)
    reset_set = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    con.close()
    at.run()
    _by_key(at.selectbox, "tr_set").set_value(reset_set).run()
    assert not at.exception, at.exception
    assert _by_key(at.selectbox, "tr_model").value == "tiny + LoRA (MTL)"
    # Back to the MTL set: the base again (the user never chose, so the default follows).
    _by_key(at.selectbox, "tr_set").set_value(mtl_set).run()
    assert _by_key(at.selectbox, "tr_model").value == base_choice
