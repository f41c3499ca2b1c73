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


def test_unknown_local_model_is_rejected_at_launch(page, tmp_path):
    at = page.run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    # Inside the data root (a folder outside it is refused before launch).
    at.text_input(key="sample_model_ref").set_value(str(tmp_path / "no-such-model")).run()
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


def _wait_for_worker(db_path: Path, job_id: str, timeout_s: float = 120) -> dict:
    """Wait for the worker itself (its progress file), without running the page."""
    from reset_core.jobs import read_json

    progress = Path(db_path).parent / "jobs" / job_id / "progress.json"
    deadline = time.monotonic() + timeout_s
    while read_json(progress).get("status") not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, read_json(progress)
        time.sleep(0.2)
    return read_json(progress)


def _progress_texts(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_launch_watch_and_browse_a_job(page, con, db_path, tiny_model_dir):
    at = page.run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    at.text_input(key="sample_model_ref").set_value(str(tiny_model_dir))
    at.number_input(key="sample_count").set_value(3)
    at.number_input(key="grid_max_tokens").set_value(4).run()
    assert _metric(at, "Candidates") == "18"
    at.button(key="sample_start").click().run()
    assert any("Started job" in s.value for s in at.success)
    job_id = at.session_state["sample_job"]
    # While it runs: its live line (counts, what it does) and the browser on it.
    [line] = _progress_texts(at)
    assert line.startswith(f"{job_id}: ") and "/18 candidates" in line
    assert at.selectbox(key="sample_browse_job").value == job_id
    assert _wait_for_worker(db_path, job_id)["status"] == "done"
    # One run, no click: the page ingests the finished job and reruns itself, so the
    # counts above the jobs are fresh and the polling stops.
    at.run()
    assert not at.exception
    assert _progress_texts(at) == []
    assert _metric(at, "To generate") == "0"
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


def test_the_job_just_launched_is_the_one_browsed(page, db_path, tiny_model_dir):
    at = page.run()
    at.radio(key="sample_model_source").set_value("Local folder").run()
    at.text_input(key="sample_model_ref").set_value(str(tiny_model_dir))
    at.text_input(key="grid_temperatures").set_value("0.5")
    at.text_input(key="grid_top_ks").set_value("-1")
    at.number_input(key="sample_count").set_value(2)
    at.number_input(key="grid_max_tokens").set_value(3).run()
    at.button(key="sample_start").click().run()
    first = at.session_state["sample_job"]
    _wait_for_worker(db_path, first)
    at.run()
    at.number_input(key="sample_page").set_value(1).run()  # the user pages through it
    # A second job (another max_tokens: new candidates) takes over the browser.
    at.number_input(key="grid_max_tokens").set_value(5).run()
    at.button(key="sample_start").click().run()
    second = at.session_state["sample_job"]
    assert second != first
    assert at.selectbox(key="sample_browse_job").value == second
    assert at.number_input(key="sample_page").value == 0
    _wait_for_worker(db_path, second)
    at.run()
    assert at.selectbox(key="sample_browse_job").value == second
    assert len(at.dataframe[-1].value) == 2
    # ... and the user can still go back to the first one.
    at.selectbox(key="sample_browse_job").set_value(first).run()
    assert at.selectbox(key="sample_browse_job").value == first
    at.run()
    assert at.selectbox(key="sample_browse_job").value == first


def test_the_rounds_policy_is_the_default_model_and_the_page_says_why(page, con):
    from reset_core.sampling.settings import candidate_id, default_grid
    from reset_core.training.launch import model_id_for

    at = page.run()
    # Before any MTL or RESET checkpoint: the embedded model, and the reason.
    assert at.radio(key="sample_model_source").value == "Embedded SmolLM2"
    assert any("no MTL or RESET checkpoint yet" in c.value for c in at.caption)
    # Ids as training gives them (the id sampling computes for the same weights).
    ids = {r: model_id_for("/m/smol", f"/t/{r}/adapter") for r in ("mtl", "r1")}
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id, created_at) VALUES "
        "('m:base', 'SmolLM2-135M-Instruct', '/m/smol', NULL, 'base', NULL, NULL, NULL, "
        "'2026-01-01'), "
        "(?, 'cur-1', '/m/smol', '/t/mtl/adapter', 'mtl', 'm:base', 'cur-1', 'run-1', "
        "'2026-01-02'), "
        "(?, 'cur-2', '/m/smol', '/t/r1/adapter', 'reset', ?, 'cur-2', 'run-2', '2026-01-03')",
        [ids["mtl"], ids["r1"], ids["mtl"]],
    )
    # One candidate of the policy is stored already: the plan must not make it again.
    example = con.execute("SELECT min(example_id) FROM examples WHERE split = 'seen'").fetchone()[0]
    setting = default_grid()[0].setting_id
    con.execute(
        "INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, sample_index, "
        "seed, text, engine) VALUES (?, ?, ?, ?, 0, 0, 'stored', 'transformers')",
        [candidate_id(example, ids["r1"], setting, 0), example, ids["r1"], setting],
    )
    at = AppTest.from_file(str(ROOT / "pages" / "sample.py"), default_timeout=60)
    at.session_state["db_path"] = page.session_state["db_path"]
    at.run()
    assert not at.exception
    # The newest RESET-stage model is this round's policy: preselected, and said why.
    assert at.radio(key="sample_model_source").value == "Trained model"
    assert at.selectbox(key="sample_trained").value[0] == ids["r1"]
    why = next(c.value for c in at.caption if c.value.startswith("Default: "))
    assert why == (
        "Default: SmolLM2-135M-Instruct + LoRA (RESET round 1): the round's policy, the newest "
        "MTL or RESET checkpoint (RESET samples one policy per round)."
    )
    n = int(_metric(at, "Candidates").replace(",", ""))
    assert _metric(at, "To generate") == f"{n - 1:,}"  # the plan samples the policy
