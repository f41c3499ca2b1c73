"""AppTest for the Sample page: selection, count before launch, bad input, a job to the end."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from visible import visible_text

from reset_core.sampling.config import SampleSelection

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def page(con, db_path, monkeypatch):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    monkeypatch.syspath_prepend(str(ROOT))  # the page imports the app's `ui` module
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "pages" / "sample.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    return at


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_shows_candidate_count_before_launch(page, con):
    at = page.run()
    assert not at.exception
    n_seen = con.execute("SELECT count(*) FROM examples WHERE split='seen'").fetchall()[0][0]
    want = min(SampleSelection.model_fields["count"].default, n_seen)
    assert _metric(at, "Examples × settings") == f"{want} × 6"
    assert _metric(at, "Candidates") == f"{want * 6:,}"
    at.number_input(key="grid_n").set_value(3).run()
    at.number_input(key="sample_count").set_value(2).run()
    assert _metric(at, "Candidates") == "36"


def test_invalid_grid_value_names_the_bound(page):
    at = page.run()
    at.text_input(key="grid_temperatures").set_value("0.2, 3").run()
    assert any("temperature" in e.value and "less than or equal to 2" in e.value for e in at.error)
    assert at.button(key="sample_start").disabled


def test_empty_selection_is_refused(page, con):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    import_file(con, FIXTURES / "nq_oracle.jsonl", ImportOptions(split="test_unseen"))
    at = page.run()
    at.multiselect(key="sample_splits").set_value(["test_unseen"])
    at.multiselect(key="sample_kinds").set_value(["instruction"]).run()
    assert any("no examples match" in e.value for e in at.error)
    assert at.button(key="sample_start").disabled


def test_unknown_local_model_is_rejected_at_launch(page):
    at = page.run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    at.text_input(key="sample_model_ref").set_value("/no/such/model").run()
    at.button(key="sample_start").click().run()
    assert any("does not exist" in e.value for e in at.error)


def test_unreachable_endpoint_is_rejected_at_launch(page):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    at = page.run()
    at.radio(key="sample_model_source").set_value("OpenAI-compatible endpoint").run()
    at.text_input(key="sample_base_url").set_value(f"http://127.0.0.1:{port}/v1")
    at.text_input(key="sample_served_model").set_value("m").run()
    at.button(key="sample_start").click().run()
    assert any("unreachable" in e.value for e in at.error)


def test_launch_watch_and_browse_a_job(page, con, tiny_model_dir):
    at = page.run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    at.text_input(key="sample_model_ref").set_value(str(tiny_model_dir))
    at.number_input(key="sample_count").set_value(3)
    at.number_input(key="grid_max_tokens").set_value(4).run()
    assert _metric(at, "Candidates") == "18"
    at.button(key="sample_start").click().run()
    assert any("Started job" in s.value for s in at.success)
    job_id = at.session_state["sample_job"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        at.run()
        status = con.execute("SELECT status FROM jobs WHERE job_id=?", [job_id]).fetchall()[0][0]
        if status not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert status == "done"
    at.run()
    assert not at.exception
    browse = at.dataframe[-1].value
    assert len(browse) == 18 and set(browse["instruction"]) and browse["text"].notna().all()
    # Grouped by example, then setting, then sample; the setting by its values, first.
    assert list(browse.columns[:3]) == ["setting", "example_id", "sample"]
    assert list(browse["example_id"]) == sorted(browse["example_id"])
    assert list(browse["setting"][:6]) == [
        "T 0.1 · top-k 20",
        "T 0.1 · top-k all",
        "T 0.5 · top-k 20",
        "T 0.5 · top-k all",
        "T 1 · top-k 20",
        "T 1 · top-k all",
    ]
    jobs_table = at.dataframe[-2].value
    assert list(jobs_table["model"]) == [tiny_model_dir.name]  # its name, not its path
    assert not re.search(r"\bs:[0-9a-f]{16}\b", visible_text(at))
    # The same plan again: everything is stored, nothing to generate.
    assert _metric(at, "To generate") == "0"


def test_trained_models_are_picked_by_name_and_lineage(page, con):
    con.execute(
        "INSERT INTO curated_sets (set_id, name, preset, selection_id, n_items, manifest, "
        "content_hash) VALUES ('cur-9f2', 'picks', 'RESET', 'sel-1', 5, '{}', 'h')"
    )
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id) VALUES "
        "('m:base', 'SmolLM2-135M-Instruct', '/m/smol', NULL, 'base', NULL, NULL, NULL), "
        "('m:r1', 'cur-9f2', '/m/smol', '/t/r1/adapter', 'reset', 'm:base', 'cur-9f2', 'run-1')"
    )
    at = page.run()
    at.radio(key="sample_model_source").set_value("Trained model").run()
    assert not at.exception
    picker = at.selectbox(key="sample_trained")
    # Not the curated set id it was once named after, nor a path.
    assert picker.options == ["SmolLM2-135M-Instruct + LoRA (RESET round 1)"]
