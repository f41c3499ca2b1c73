"""The Judge page: offline judges from the page, picks appear; failures shown first."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_judging import _seed_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def page(db_path, con):
    _seed_db(con)
    con.execute("INSERT INTO decoding_settings VALUES ('s', 0.5, 20, 1.0, 64, 0, 1)")
    con.close()  # the page owns the database now (one writer)

    def make():
        at = AppTest.from_file(str(ROOT / "pages" / "judge.py"), default_timeout=60)
        at.session_state["db_path"] = str(db_path)
        return at

    return make


def _unrankable_warnings(at) -> list[str]:
    return [w.value for w in at.warning if "cannot be ranked" in w.value]


def test_offline_judging_from_the_page_gives_picks(page, db_path):
    at = page().run()
    assert not at.exception
    # task by ROUGE-L and token F1 (12 candidates), instruction by the proxy (6; IFEval only
    # takes examples carrying verifiable instructions), faithfulness by K-Precision and
    # embedding support (6)
    assert "42 items to judge" in " ".join(c.value for c in at.caption)
    # Nothing judged yet: no ranking counts, no "not rankable" warning, one pointer.
    assert not _unrankable_warnings(at)
    assert "Not rankable" not in [m.label for m in at.metric]
    assert any("once candidates are judged" in i.value for i in at.info)
    at.button(key="launch").click().run()
    assert not at.exception
    job_id = at.session_state["judge_job"]
    _wait_until_done(page_db(at), job_id)
    # One run of the page, no button: it picks up the finished job, then reruns itself
    # so what depends on the job is recounted.
    at.run()
    assert not at.exception
    assert not [b for b in at.button if b.key and b.key.startswith(("refresh_", "cancel_"))]
    assert any(c.value.startswith("0 items to judge") for c in at.caption)
    summary = at.dataframe[1].value  # [0] is the estimate, [1] the per-judge summary
    assert int(summary["scored"].sum()) == 42 and int(summary["failed"].sum()) == 0
    at.button(key="save_selection").click().run()
    assert not at.exception
    picks = at.dataframe[-1].value
    assert len(picks) == 6 and picks["picked"].all()
    assert all(picks["candidate"] == "Paris.")
    assert list(picks.columns[:2]) == ["example_id", "setting"]
    assert set(picks["setting"]) == {"T 0.5 · top-k 20"}  # the setting by its values
    # Every candidate judged: nothing to warn about.
    assert not _unrankable_warnings(at)
    assert {m.label: m.value for m in at.metric}["Not rankable"] == "0 / 12"
    # A new candidate nobody judged yet: the warning says exactly what it counts.
    from reset_core.store import connect

    con = connect(db_path)
    con.execute(
        "INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, sample_index, "
        "seed, text, engine) VALUES ('i0-9', 'i0', 'm', 's', 9, 0, 'Paris!', 'test')"
    )
    con.close()
    at.run()
    (warning,) = _unrankable_warnings(at)
    assert warning.startswith("1 of the 13 candidates in the seen split cannot be ranked")
    assert "not judged yet, or the judge failed" in warning
    assert {m.label: m.value for m in at.metric}["Not rankable"] == "1 / 13"
    # re-ranking with w = 0 reports how many picks changed against the saved selection
    at.slider(key="weight").set_value(0.0).run()
    assert not at.exception
    changed = [m for m in at.metric if m.label == "Picks changed"][0]
    assert changed.value.isdigit()


def page_db(at) -> Path:
    return Path(at.session_state["db_path"])


def _wait_until_done(db_path: Path, job_id: str, timeout_s: float = 120) -> None:
    """Wait for the worker itself (its progress file), without running the page."""
    from reset_core.jobs import read_json

    progress = db_path.parent / "jobs" / job_id / "progress.json"
    deadline = time.monotonic() + timeout_s
    while read_json(progress).get("status") not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, read_json(progress)
        time.sleep(0.2)


def test_running_job_shows_live_progress_and_the_launched_job_first(page):
    at = page().run()
    at.button(key="launch").click().run()
    job_id = at.session_state["judge_job"]
    bars = [p for p in at.get("progress")]
    # the job just launched is the first line, with its counts and what it does
    assert bars and bars[0].proto.text.startswith(f"{job_id}: ")
    assert "/42 items" in bars[0].proto.text
    assert not [b for b in at.button if b.key and b.key.startswith("refresh_")]
    _wait_until_done(page_db(at), job_id)
    at.run()
    bars = [p for p in at.get("progress")]
    assert bars[0].proto.text == f"{job_id}: done · 42/42 items"


def test_rubric_edit_creates_a_new_version(page):
    at = page().run()
    at.text_area(key="rubric_text_task-v1").set_value("Grade correctness only.").run()
    at.button(key="save_rubric").click().run()
    assert not at.exception
    assert any("task-v2" in s.value for s in at.success)


def test_a_standin_judge_is_labelled_a_placeholder_on_the_page(db_path, con, openai_server):
    from reset_core.judging.launch import llm_spec
    from reset_core.judging.llm_judge import LLMJudgeConfig
    from tests.test_judge_endpoints import _run_job

    _seed_db(con, 1)
    cfg = LLMJudgeConfig(model="gpt-4o-mini", base_url=openai_server.base_url)
    prog = _run_job(con, db_path, llm_spec(con, cfg))
    (judge_id,) = prog["endpoints"]
    con.close()
    at = AppTest.from_file(str(ROOT / "pages" / "judge.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    at.run()
    assert not at.exception
    (summary,) = [d.value for d in at.dataframe if "output_modes" in d.value.columns]
    assert set(summary["judge"]) == {f"{judge_id} (placeholder)"}
    assert set(summary["endpoint"]) == {openai_server.base_url}
    assert set(summary["output_modes"]) == {"json_schema"}
    assert any(judge_id in i.value and "placeholders" in i.value for i in at.info)


def test_the_splits_to_judge_are_chosen_on_the_page(page, db_path):
    from reset_core.store import connect

    con = connect(db_path)  # two of the six examples become test examples
    con.execute("UPDATE examples SET split = 'test_seen' WHERE example_id IN ('i0', 'x0')")
    con.close()
    at = page().run()
    assert at.multiselect(key="plan_splits").value == ["seen"]  # RESET's split by default
    assert "28 items to judge" in " ".join(c.value for c in at.caption)
    at.multiselect(key="plan_splits").set_value(["test_seen"]).run()
    assert "14 items to judge" in " ".join(c.value for c in at.caption)
    at.button(key="launch").click().run()
    assert not at.exception
    job_id = at.session_state["judge_job"]
    _wait_until_done(page_db(at), job_id)
    at.run()  # the page ingests the finished job's verdicts
    con = connect(db_path)
    judged = con.execute(
        "SELECT DISTINCT c.example_id FROM judgments j JOIN candidates c USING (candidate_id) "
        "ORDER BY 1"
    ).fetchall()
    con.close()
    assert judged == [("i0",), ("x0",)]
    at.multiselect(key="plan_splits").set_value([]).run()
    assert any("at least one split" in w.value for w in at.warning)


@pytest.fixture
def panel_page(db_path):
    """Two judges on every candidate of tests.test_agreement's four examples, and a
    placeholder judge (the stand-in's verdicts) on a few."""
    from reset_core.store import connect
    from tests.panel_data import fill_two_panels

    con = connect(db_path)
    fill_two_panels(con)
    con.execute(
        "INSERT INTO judges (judge_id, name, kind, description, placeholder) VALUES "
        "('J1', 'J1', 'llm', 'strict grader', false), ('J2', 'J2', 'llm', NULL, false), "
        "('J3', 'J3', 'llm', NULL, true)"
    )
    con.execute(
        "INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, status) "
        "SELECT 'ph' || candidate_id || a, candidate_id, 'J3', a, 1.0, 'ok' "
        "FROM candidates, (VALUES ('task'), ('instruction')) v(a) WHERE candidate_id LIKE '%b'"
    )
    con.close()
    at = AppTest.from_file(str(ROOT / "pages" / "judge.py"), default_timeout=60)
    at.session_state["db_path"] = str(db_path)
    return at


def _texts(at) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption") for e in getattr(at, kind))


def _panel_table(at) -> dict[str, str]:
    (table,) = [d.value for d in at.dataframe if "judges" in d.value.columns]
    return dict(zip(table["aspect"], table["judges"], strict=True))


def test_panel_flow_shows_the_default_builds_saves_and_selects_with_a_panel(panel_page):
    at = panel_page.run()
    assert not at.exception
    # Before anything is scored: the panel in use, its judges per aspect, scale and rule.
    assert at.selectbox(key="panel_choice").value == "default"
    assert "Panel default" in _texts(at) and "mean of linear [0,1] scores" in _texts(at)
    judges = _panel_table(at)
    assert judges["task"] == "J1 · strict grader; J2"  # the placeholder J3 left out
    assert judges["faithfulness"] == "none with valid verdicts"
    # One model, the round's policy, by its label.
    assert "**Model**: tiny (the round's policy" in _texts(at)
    # Each judge's scores before and after the scale method.
    assert len(at.get("plotly_chart")) == 2
    assert {m.label: m.value for m in at.metric}["Picks"] == "4"

    # Build a panel: J2 alone, on the rank scale; the stand-in's judge is offered, labelled.
    at.selectbox(key="panel_choice").select("new panel…").run()
    assert not at.exception
    task = at.multiselect(key="pj_task_default")
    assert "J3 (placeholder)" in task.options
    task.set_value(["J2"])
    at.multiselect(key="pj_instruction_default").set_value(["J2"])
    at.selectbox(key="pscale_default").select("rank")
    at.text_input(key="pname_default").input("j2-rank").run()
    assert not at.exception
    assert "rank: each judge's percentile rank within the run" in _texts(at)
    at.button(key="save_panel").click().run()
    assert not at.exception
    assert at.selectbox(key="panel_choice").value == "j2-rank"
    assert "Panel j2-rank" in _texts(at) and "mean of rank scores" in _texts(at)
    assert _panel_table(at)["task"] == "J2"
    # J2 never judged e4, and prefers b on e2: three picks, not four.
    assert {m.label: m.value for m in at.metric}["Picks"] == "3"

    at.button(key="save_selection").click().run()
    assert not at.exception
    assert any("with panel j2-rank" in s.value for s in at.success)
    (sels,) = [d.value for d in at.dataframe if "selection_id" in d.value.columns]
    assert list(sels["panel"]) == ["j2-rank"] and list(sels["scale"]) == ["rank"]
    picks = at.dataframe[-1].value
    assert sorted(picks["candidate"]) == ["answer a", "answer a", "answer b"]

    # Mixing models is an explicit choice, and RESET-S shows its parameter and help.
    at.toggle(key="mix_models").set_value(True).run()
    assert at.multiselect(key="mix_model_ids").value == ["m"]
    at.selectbox(key="preset").select("reset_s").run()
    assert not at.exception
    fraction = at.number_input(key="reset_s_fraction")
    assert fraction.value == pytest.approx(1 / 3) and "three times smaller" in fraction.help
