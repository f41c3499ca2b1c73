"""Page logic with Streamlit's AppTest: Home and Data against a real DuckDB file."""

import shutil

from conftest import FIXTURES

from reset_core.ingest.demo import load_demo
from reset_core.store import connect

#: How Home marks the steps of the path: done, the next one, still to do.
DONE, NEXT, TODO = (
    ":green[:material/check_circle:]",
    ":blue[:material/arrow_circle_right:]",
    ":gray[:material/radio_button_unchecked:]",
)


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def test_home_shows_loop_counts_and_next_step(app):
    app.run()
    assert not app.exception
    assert _metrics(app)["Examples"] == "0"
    assert "Import examples" in str(app.get("page_link")[0].proto.label)


def test_home_with_demo_points_past_import(app):
    con = connect(app.db)
    load_demo(con)
    con.close()
    app.run()
    assert not app.exception
    assert _metrics(app)["Examples"] == "559"
    # The guided path starts with the MTL baseline, on the Train page.
    link = app.get("page_link")[0].proto
    assert link.label == "Train MTL on references →" and link.page == "train"
    steps = [m.value for m in app.markdown if ":material/" in m.value]
    assert steps[0].startswith(f"{NEXT} **1. Train MTL on references**")
    assert len(steps) == 7 and all(s.startswith(TODO) for s in steps[1:])
    assert not app.get("graphviz_chart")  # no models yet


def test_home_shows_the_round_after_mtl_and_the_lineage_graph(app):
    con = connect(app.db)
    load_demo(con)
    con.execute(
        "INSERT INTO curated_sets (set_id, name, preset, selection_id, n_items, manifest, "
        "content_hash) VALUES ('cur-mtl', 'references', 'MTL', NULL, 355, '{}', 'h')"
    )
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id, created_at) VALUES "
        "('m:base', 'smol', '/models/smol', NULL, 'base', NULL, NULL, NULL, '2026-01-01'), "
        "('m:mtl', '', '/models/smol', '/runs/1/adapter', 'mtl', 'm:base', 'cur-mtl', 'run-1', "
        "'2026-01-02')"
    )
    con.close()
    app.run()
    assert not app.exception, app.exception
    link = app.get("page_link")[0].proto
    assert link.label == "Sample with the policy →" and link.page == "sample"
    steps = [m.value for m in app.markdown if ":material/" in m.value]
    assert steps[0].startswith(f"{DONE} **1. Train MTL on references**")
    assert steps[1].startswith(f"{NEXT} **2. Sample with the policy**")
    captions = [c.value.replace("\\", "") for c in app.caption]
    assert any("Sample the seen examples with smol + LoRA (MTL)" in c for c in captions)
    assert any("This round's policy: smol + LoRA (MTL)." in c.value for c in app.caption)
    dot = app.get("graphviz_chart")[0].proto.spec
    assert '"m:base" -> "cur-mtl"' in dot and '"cur-mtl" -> "m:mtl"' in dot
    assert "smol + LoRA (MTL)" in dot


def test_data_page_imports_by_path_and_counts_change(app, tmp_path):
    shutil.copy(FIXTURES / "dolly_unused.jsonl", tmp_path / "dolly_unused.jsonl")
    app.switch_page("pages/data.py").run()
    assert not app.exception
    assert any("No examples yet" in i.value for i in app.info)
    app.text_input(key="import_path").input(str(tmp_path / "dolly_unused.jsonl")).run()
    assert any("preset **alpaca**" in m.value for m in app.markdown)
    app.button(key="import_button").click().run()
    assert not app.exception
    assert any("Imported 8 new examples" in s.value for s in app.success)
    assert _metrics(app)["Examples"] == "8"


def test_data_page_previews_kinds_and_splits_before_importing(app, tmp_path):
    shutil.copy(FIXTURES / "alpaca.json", tmp_path / "alpaca.json")
    app.switch_page("pages/data.py").run()
    app.text_input(key="import_path").input(str(tmp_path / "alpaca.json")).run()
    assert not app.exception
    captions = [c.value for c in app.caption]
    assert any(
        "kind=instruction for 8 rows: the alpaca preset's role (5 with a context" in c
        and "Rows by kind: instruction 8, context 0 · by split: seen 8." in c
        for c in captions
    )
    counts = app.dataframe[0].value  # the counts table comes before the sample rows
    assert counts.to_dict("records") == [{"kind": "instruction", "seen": 8}]
    con = connect(app.db)
    assert con.execute("SELECT count(*) FROM examples").fetchall() == [(0,)]  # nothing yet
    con.close()
    # Overriding the preset's role is a choice the preview shows at once.
    app.selectbox(key="import_kind").select("context").run()
    assert any("kind=context for 8 rows: as asked" in c.value for c in app.caption)
    app.selectbox(key="import_preset").select("column mapping").run()
    assert app.selectbox(key="import_kind_mapping").options == ["auto", "instruction", "context"]


def test_data_page_rekinds_a_source_on_request(app, tmp_path):
    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file

    con = connect(app.db)
    import_file(con, FIXTURES / "alpaca.json", ImportOptions(kind="context", source="alpaca"))
    con.close()
    app.switch_page("pages/data.py").run()
    app.selectbox(key="rekind_target").select("preset").run()
    assert not app.exception
    assert any(
        "source alpaca: 8 of 8 examples would change (context → instruction: 8)" in m.value
        for m in app.markdown
    )
    app.button(key="rekind_button").click().run()
    assert any(
        s.value == "source alpaca: 8 of 8 examples changed (context → instruction: 8)"
        for s in app.success
    )
    assert app.button(key="rekind_button").disabled  # nothing left to change
    con = connect(app.db)
    assert con.execute("SELECT DISTINCT kind FROM examples").fetchall() == [("instruction",)]


def test_data_page_reports_bad_file_and_imports_nothing(app, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"instruction": "ok", "output": "fine"}\n{"instruction": \n')
    app.switch_page("pages/data.py").run()
    app.text_input(key="import_path").input(str(bad)).run()
    errors = [e.value for e in app.error]
    assert any("broken.jsonl, line 2" in e and "malformed JSON" in e for e in errors)
    assert not app.button  # no Import button for a rejected file
    con = connect(app.db)
    assert con.execute("SELECT count(*) FROM examples").fetchall() == [(0,)]


def test_data_page_filters_and_pages_in_sql(app):
    con = connect(app.db)
    load_demo(con)
    con.close()
    app.switch_page("pages/data.py").run()
    assert not app.exception
    assert "559 matching examples" in [c.value for c in app.caption]
    app.multiselect(key="f_kind").select("context").run()
    n_context = 210  # natural_questions 150 + adversarial_qa 60; Dolly is instruction data
    assert f"{n_context} matching examples" in [c.value for c in app.caption]
    assert len(app.dataframe[-1].value) == 25
    app.text_input(key="f_search").input("Nobel").run()
    caption = next(c.value for c in app.caption if "matching examples" in c.value)
    assert int(caption.split()[0]) < n_context


def test_data_page_rejects_unknown_mapping_fields(app, tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text('{"q": "Who?", "p": "Ada wrote it."}\n')
    app.switch_page("pages/data.py").run()
    app.text_input(key="import_path").input(str(path)).run()
    app.selectbox(key="import_preset").select("column mapping").run()
    app.text_input(key="map_instruction").input("q").run()
    app.text_input(key="map_context").input("p").run()
    assert any("preset **mapping**" in m.value for m in app.markdown)
    app.button(key="import_button").click().run()
    assert _metrics(app)["Examples"] == "1"


def test_home_counts_the_latest_runs_picks_and_says_what_each_count_is(app):
    import review_data

    con = connect(app.db)
    review_data.seed(con)  # one scoring run: one pick per example, 6 examples
    con.execute(
        "INSERT INTO selections (selection_id, preset, config, created_at) "
        "VALUES ('sel-2', 'reset', '{}', now() + INTERVAL 1 MINUTE)"
    )
    con.execute(
        "INSERT INTO selection_scores (selection_id, candidate_id, example_id, score, rank, "
        "picked) SELECT 'sel-2', candidate_id, example_id, score, rank, picked "
        "FROM selection_scores WHERE selection_id = ?",
        [review_data.SELECTION],
    )
    con.close()
    app.run()
    assert not app.exception
    assert _metrics(app)["Picks"] == "6"  # a second scoring run does not double them
    assert all(m.help for m in app.metric)


def test_home_ingests_a_job_that_finished_while_its_page_was_closed(app, tiny_model_dir):
    """Sampling launched, then the user opens Home: the candidates count and the path moves
    on, though the Sample page (which ingests its job while open) was never reopened."""
    from reset_core import jobs
    from reset_core.paths import jobs_dir
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.launch import plan_sampling, start_sampling
    from reset_core.sampling.settings import default_grid

    con = connect(app.db)
    load_demo(con)
    plan = plan_sampling(
        con,
        SampleSelection(count=2),
        ModelSpec(model=str(tiny_model_dir), device="cpu"),
        default_grid(max_tokens=4, temperatures=(1.0,), top_ks=(-1,)),
    )
    job_id = start_sampling(con, plan, jobs_dir(app.db), launch=False)
    # The worker as its process would run it: shards and progress files, no database.
    assert jobs.run_worker(jobs.work_dir(con, job_id)) == 0
    con.close()
    app.run()
    assert not app.exception
    assert _metrics(app)["Candidates"] == "2"
    assert not [p for p in app.get("page_link") if "is running" in p.proto.label]
