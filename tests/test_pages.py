"""Page logic with Streamlit's AppTest: Home and Data against a real DuckDB file."""

import shutil

from conftest import FIXTURES

from reset_core.ingest.demo import load_demo
from reset_core.store import connect


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
    links = app.get("page_link")
    assert not links or "Import" not in links[0].proto.label


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
    n_context = 257
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
