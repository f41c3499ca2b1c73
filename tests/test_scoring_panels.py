"""Judge panels, comparable scales, model scope, one RESET-S and read-time overrides.

Every expectation is computed by hand in the comments next to it, on small
hand-made databases.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from reset_core import migrations
from reset_core.analytics.decoding import setting_report
from reset_core.analytics.summaries import ensure_fresh
from reset_core.analytics.tradeoff import tradeoff_points
from reset_core.curation import sets as curation
from reset_core.curation.config import CurationSpec
from reset_core.curation.export import export_set, load_exported
from reset_core.review.events import effective_picks, example_state, record, undo
from reset_core.review.queue import QueueFilter, queue_page, refresh_queue
from reset_core.scoring import reset_s
from reset_core.scoring.aspect_scores import ensure_aspect_scores
from reset_core.scoring.panels import (
    Panel,
    get_panel,
    list_panels,
    resolve_panel,
    save_panel,
)
from reset_core.scoring.queries import judge_score_distribution, selection_rows, stored_picks
from reset_core.scoring.selection import (
    SelectionConfig,
    preview_selection,
    save_selection,
    score_candidates,
)
from reset_core.store import connect, insert_arrow


def _fill(con, examples, candidates, judgments, judges=()):
    """examples: {id: kind}; candidates: {id: (example, model)}; judgments: (cand, judge, aspect, score)."""
    ex = list(examples)
    insert_arrow(
        con,
        "examples",
        pa.table(
            {
                "example_id": ex,
                "instruction": [f"do {e}" for e in ex],
                "context": [("ctx" if examples[e] == "context" else None) for e in ex],
                "kind": [examples[e] for e in ex],
                "source": ["t"] * len(ex),
                "split": ["seen"] * len(ex),
                "content_hash": ex,
            }
        ),
    )
    cs = list(candidates)
    insert_arrow(
        con,
        "candidates",
        pa.table(
            {
                "candidate_id": cs,
                "example_id": [candidates[c][0] for c in cs],
                "model_id": [candidates[c][1] for c in cs],
                "setting_id": [f"s:{c}" for c in cs],  # the setting names the candidate
                "sample_index": list(range(len(cs))),
                "seed": [0] * len(cs),
                "text": [f"answer {c}" for c in cs],
                "engine": ["test"] * len(cs),
            }
        ),
    )
    insert_arrow(
        con,
        "judgments",
        pa.table(
            {
                "judgment_id": [f"j{i}" for i in range(len(judgments))],
                "candidate_id": [j[0] for j in judgments],
                "judge_id": [j[1] for j in judgments],
                "aspect": [j[2] for j in judgments],
                "score": pa.array([j[3] for j in judgments], pa.float64()),
                "status": ["ok" if j[3] is not None else "parse_error" for j in judgments],
            }
        ),
    )
    for judge_id, placeholder in judges:
        con.execute(
            "INSERT INTO judges (judge_id, name, kind, placeholder) VALUES (?, ?, 'llm', ?)",
            [judge_id, judge_id, placeholder],
        )


def _picks(con, cfg) -> set[str]:
    return {r["candidate_id"] for r in score_candidates(con, cfg).to_pylist() if r["picked"]}


# One open-ended example, three candidates. Task: a wide-spread judge W and a
# narrow-spread judge N that disagree on the order; instruction: judge I, the same
# 0.5 for all (so it never decides).
#          W     N
#   a     0.9   0.60
#   b     0.5   0.70
#   c     0.5   0.65
SCALES = [
    ("a", "W", "task", 0.9),
    ("b", "W", "task", 0.5),
    ("c", "W", "task", 0.5),
    ("a", "N", "task", 0.60),
    ("b", "N", "task", 0.70),
    ("c", "N", "task", 0.65),
    *[(x, "I", "instruction", 0.5) for x in "abc"],
]


@pytest.fixture
def scales(con):
    _fill(con, {"E": "instruction"}, {x: ("E", "m") for x in "abc"}, SCALES)
    return con


def test_linear_mean_lets_the_wide_judge_decide(scales):
    r = {x["candidate_id"]: x for x in score_candidates(scales, SelectionConfig()).to_pylist()}
    # s_task = (W + N) / 2: a 0.75, b 0.6, c 0.575; + w·0.5 = 1.0 each
    assert r["a"]["s_task"] == pytest.approx(0.75) and r["a"]["score"] == pytest.approx(1.75)
    assert r["b"]["s_task"] == pytest.approx(0.6) and r["c"]["s_task"] == pytest.approx(0.575)
    assert _picks(scales, SelectionConfig()) == {"a"}


def test_standardised_scale_weighs_both_judges_alike(scales):
    cfg = SelectionConfig(panel=Panel(scale="standard"))
    r = {x["candidate_id"]: x for x in score_candidates(scales, cfg).to_pylist()}
    # W: mean 0.6333, std_pop 0.18856 -> z a=+1.4142, b=c=-0.7071
    # N: mean 0.65,   std_pop 0.04082 -> z a=-1.2247, b=+1.2247, c=0
    # I: constant -> z = 0 for all (no spread, no information)
    assert r["a"]["s_task"] == pytest.approx((1.4142 - 1.2247) / 2, abs=1e-3)
    assert r["b"]["s_task"] == pytest.approx((-0.7071 + 1.2247) / 2, abs=1e-3)
    assert r["c"]["s_task"] == pytest.approx(-0.7071 / 2, abs=1e-3)
    assert r["a"]["s_instr"] == 0
    assert _picks(scales, cfg) == {"b"}  # linear picked a


def test_rank_scale_is_the_percentile_within_the_run(scales):
    cfg = SelectionConfig(panel=Panel(scale="rank"))
    r = {x["candidate_id"]: x for x in score_candidates(scales, cfg).to_pylist()}
    # percent_rank: W a=1, b=c=0 (tied lowest); N a=0, c=0.5, b=1
    assert [r[x]["s_task"] for x in "abc"] == pytest.approx([0.5, 0.5, 0.25])
    assert _picks(scales, cfg) == {"a"}  # a and b tie; the smaller id wins, as in every rank


def test_panel_judges_and_agree_rule_change_picks(scales):
    assert _picks(scales, SelectionConfig(panel=Panel(judges={"task": ["N"]}))) == {"b"}
    assert _picks(scales, SelectionConfig(panel=Panel(judges={"task": ["W"]}))) == {"a"}
    # agree within 0.2: spreads a 0.3 (not rankable), b 0.2, c 0.15 -> b (0.6) beats c (0.575)
    strict = Panel(name="strict", combine="agree", delta=0.2)
    r = score_candidates(scales, SelectionConfig(panel=strict)).to_pylist()
    r = {x["candidate_id"]: x for x in r}
    assert r["a"]["score"] is None and r["a"]["missing"] == "task (judges disagree)"
    save_panel(scales, strict)
    assert _picks(scales, SelectionConfig(panel="strict")) == {"b"}
    # The legacy flags are the same panels.
    assert _picks(scales, SelectionConfig(judges=["N", "I"])) == {"b"}
    by = {"task": "W", "instruction": "I", "faithfulness": "I"}
    assert _picks(scales, SelectionConfig(combine="judge", judge_by_aspect=by)) == {"a"}


def test_saved_panels_are_listed_resolved_and_recorded(scales):
    save_panel(scales, Panel(name="narrow", judges={"task": ["N"]}, scale="rank"))
    assert [p.name for p in list_panels(scales)] == ["default", "narrow"]
    assert resolve_panel(scales) == {"task": ["N", "W"], "instruction": ["I"], "faithfulness": []}
    assert resolve_panel(scales, "narrow")["task"] == ["N"]
    with pytest.raises(ValueError, match="no saved panel 'nope'"):
        get_panel(scales, "nope")
    res = save_selection(scales, SelectionConfig(panel="narrow"))
    config = json.loads(
        scales.execute(
            "SELECT config FROM selections WHERE selection_id = ?", [res.selection_id]
        ).fetchall()[0][0]
    )
    assert config["panel"]["scale"] == "rank" and config["panel"]["judges"] == {"task": ["N"]}
    assert config["judges_used"]["task"] == ["N"] and config["model_ids"] == ["m"]


def test_judge_score_distribution_follows_the_scale(scales):
    lin = judge_score_distribution(scales, "default", bins=10)
    w = lin[(lin.judge_id == "W") & (lin.aspect == "task")]
    assert w[["bin", "n"]].values.tolist() == [[5, 2], [9, 1]]  # 0.5, 0.5 and 0.9
    std = judge_score_distribution(scales, Panel(scale="standard"), bins=2)
    n = std[(std.judge_id == "N") & (std.aspect == "task")]
    assert n["lo"].min() == pytest.approx(-1.2247, abs=1e-3) and n["n"].sum() == 3


def test_placeholder_judges_are_left_out_unless_included(con):
    # P is the stand-in's placeholder judge: it loves b.
    _fill(
        con,
        {"E": "instruction"},
        {x: ("E", "m") for x in "ab"},
        [
            ("a", "R", "task", 0.8),
            ("b", "R", "task", 0.7),
            ("a", "P", "task", 0.0),
            ("b", "P", "task", 1.0),
            *[(x, "R", "instruction", 0.5) for x in "ab"],
        ],
        judges=[("R", False), ("P", True)],
    )
    assert resolve_panel(con)["task"] == ["R"]
    assert _picks(con, SelectionConfig()) == {"a"}
    with_p = Panel(include_placeholders=True)
    assert resolve_panel(con, with_p)["task"] == ["P", "R"]
    assert _picks(con, SelectionConfig(panel=with_p)) == {"b"}  # (0.7+1)/2 > (0.8+0)/2
    # Naming a placeholder judge does not bring it in on its own either.
    assert resolve_panel(con, Panel(judges={"task": ["P", "R"]}))["task"] == ["R"]


def test_a_selection_over_two_models_picks_from_the_chosen_one(con):
    con.execute(
        "INSERT INTO models (model_id, name, stage, created_at) VALUES "
        "('m:base', 'base', 'base', '2026-01-01'), ('m:mtl', 'mtl', 'mtl', '2026-01-02')"
    )
    # base's candidates score higher, but the round's policy is the MTL model.
    cands = {"b1": ("E", "m:base"), "b2": ("F", "m:base"), "t1": ("E", "m:mtl")}
    cands["t2"] = ("F", "m:mtl")
    scores = {"b1": 0.9, "b2": 0.9, "t1": 0.4, "t2": 0.3}
    _fill(
        con,
        {"E": "instruction", "F": "instruction"},
        cands,
        [(c, "J", a, s) for c, s in scores.items() for a in ("task", "instruction")],
    )
    res = save_selection(con, SelectionConfig())
    assert res.model_ids == ["m:mtl"] and stored_picks(con, res.selection_id) == {
        "E": frozenset({"t1"}),
        "F": frozenset({"t2"}),
    }
    stored = {
        r[0]
        for r in con.execute(
            "SELECT c.model_id FROM selection_scores s JOIN candidates c USING (candidate_id) "
            "WHERE s.selection_id = ?",
            [res.selection_id],
        ).fetchall()
    }
    assert stored == {"m:mtl"}  # the other model's candidates are not even ranked
    assert _picks(con, SelectionConfig(model_ids=["m:base"])) == {"b1", "b2"}
    assert _picks(con, SelectionConfig(all_models=True)) == {"b1", "b2"}
    # The curated set says which model wrote its completions.
    set_id = curation.create_curated_set(con, CurationSpec(selection_id=res.selection_id))
    man = json.loads(
        con.execute("SELECT manifest FROM curated_sets WHERE set_id = ?", [set_id]).fetchall()[0][0]
    )
    assert [m["model_id"] for m in man["generator_models"]] == ["m:mtl"]
    assert man["panel"]["scale"] == "linear" and man["weight"] == 2.0
    assert man["preset"] == "RESET" and man["overrides"]["n_applied"] == 0


# ----------------------------------------------------------------------------- RESET-S


@pytest.fixture
def many(con):
    """12 instruction and 9 context examples, 2 candidates each, one judge."""
    examples = {f"I{i:02d}": "instruction" for i in range(12)}
    examples |= {f"C{i:02d}": "context" for i in range(9)}
    cands, judgments = {}, []
    for e, kind in examples.items():
        i = int(e[1:])
        for j in range(2):
            c = f"{e}-{j}"
            cands[c] = (e, "m")
            s = round(0.9 - 0.05 * i - 0.3 * j, 3)
            judgments += [(c, "J", "task", s), (c, "J", kind.replace("context", "faithfulness"), s)]
    _fill(con, examples, cands, judgments)
    return con


def test_reset_s_is_a_third_of_reset_in_selection_and_curation_through_one_cut(many, monkeypatch):
    calls = []
    real = reset_s.keep_best_sql

    def spy(relation, fraction=reset_s.RESET_S_FRACTION):
        calls.append(fraction)
        return real(relation, fraction)

    import reset_core.curation.sets as sets_mod
    import reset_core.scoring.selection as selection_mod

    monkeypatch.setattr(selection_mod, "keep_best_sql", spy)
    monkeypatch.setattr(sets_mod, "keep_best_sql", spy)
    full = save_selection(many, SelectionConfig(preset="reset"))
    strict = preview_selection(many, SelectionConfig(preset="reset_s"))
    assert calls, "selection's reset_s goes through reset_s.keep_best_sql"
    # 12 instruction picks -> 4; 9 context picks -> 3: the best of each kind (lowest index)
    assert (full.n_picked, strict.n_picked) == (21, 7)
    sel_s = save_selection(many, SelectionConfig(preset="reset_s"))
    selected = {e for e, _ in stored_picks(many, sel_s.selection_id).items()}
    assert selected == {"I00", "I01", "I02", "I03", "C00", "C01", "C02"}
    n_calls = len(calls)
    # Curation's RESET-S of the RESET selection: the same seven, by the same cut.
    cur = curation.preview(many, CurationSpec(selection_id=full.selection_id, preset="RESET-S"))
    assert len(calls) > n_calls
    assert cur["n_items"] == 7 and cur["by_kind"] == {"instruction": 4, "context": 3}
    set_id = curation.create_curated_set(
        many, CurationSpec(selection_id=full.selection_id, preset="RESET-S")
    )
    items = {
        r[0]
        for r in many.execute(
            "SELECT example_id FROM curated_items WHERE set_id = ?", [set_id]
        ).fetchall()
    }
    assert items == selected
    # A reset_s selection is RESET-S already: curating it as RESET-S does not cut again.
    again = curation.preview(many, CurationSpec(selection_id=sel_s.selection_id, preset="RESET-S"))
    assert again["n_items"] == 7
    assert reset_s.keep_count(21) == 7 and reset_s.keep_count(12) + reset_s.keep_count(9) == 7


def test_reset_s_fraction_and_agreement_are_parameters(many):
    half = preview_selection(many, SelectionConfig(preset="reset_s", reset_s_fraction=0.5))
    assert half.n_picked == 6 + 5  # ceil(12/2) + ceil(9/2)
    with pytest.raises(ValueError):
        SelectionConfig(preset="reset_s", reset_s_fraction=0)


# ----------------------------------------------------------------------------- overrides


@pytest.fixture
def reviewed(con):
    """Two examples, three candidates each; the judges pick x1 and y1; one saved selection."""
    scores = {"x1": 0.9, "x2": 0.6, "x3": 0.3, "y1": 0.8, "y2": 0.5, "y3": 0.2}
    _fill(
        con,
        {"X": "instruction", "Y": "instruction"},
        {c: (c[0].upper(), "m") for c in scores},
        [(c, "J", a, s) for c, s in scores.items() for a in ("task", "instruction")],
    )
    sel = save_selection(con, SelectionConfig()).selection_id
    return con, sel


def _everywhere(con, sel, tmp_path) -> dict[str, str | None]:
    """X's pick as curation, a fresh export, analytics and the Review queue each read it."""
    cur = {
        r["example_id"]: r["candidate_id"] for r in curation.apply_overrides(con, sel).to_pylist()
    }
    spec = CurationSpec(selection_id=sel, preset="RESET")
    set_id = curation.create_curated_set(con, spec)
    out = tmp_path / f"{len(list(tmp_path.iterdir()))}.jsonl"
    out = export_set(con, set_id, out, form="prompt_completion")
    exported = {
        r["completion"][0]["content"].split()[-1]
        for r in load_exported(out)
        if r["prompt"][0]["content"].startswith("do X")
    }
    ensure_fresh(con)
    points = tradeoff_points(con, "task", "instruction", level="candidate")["points"]
    shown_picked = [p["candidate_id"] for p in points if p["example_id"] == "X" and p["picked"]]
    by_setting = {r["setting_id"]: r["n_picks"] for r in setting_report(con)}
    assert by_setting == {f"s:{p['candidate_id']}": int(p["picked"]) for p in points}
    refresh_queue(con, sel)
    page = queue_page(con, sel, QueueFilter(), 0, 10).set_index("example_id")
    shown = page.loc["X", "setting"]  # the pick's setting; NaN when there is no pick
    return {
        "curation": cur.get("X"),
        "export": next(iter(exported), None),
        "queue": shown.removeprefix("s:") if isinstance(shown, str) else None,
        "state": example_state(con, "X", sel).pick,
        "analytics": shown_picked[0] if shown_picked else None,
        "judge_pick": example_state(con, "X", sel).judge_pick,
    }


def _all(pick: str | None) -> dict:
    return {
        "curation": pick,
        "export": pick,
        "queue": pick,
        "state": pick,
        "analytics": pick,
        "judge_pick": "x1",
    }


def test_every_override_after_saving_takes_effect_at_once_and_lifting_restores(reviewed, tmp_path):
    con, sel = reviewed
    before = con.execute("SELECT * FROM selection_scores ORDER BY candidate_id").fetchall()
    assert _everywhere(con, sel, tmp_path) == _all("x1")
    record(con, "X", "veto", "ann", candidate_id="x1")
    assert _everywhere(con, sel, tmp_path) == _all("x2")  # next best
    record(con, "X", "unveto", "ann", candidate_id="x1")
    assert _everywhere(con, sel, tmp_path) == _all("x1")
    record(con, "X", "force", "ann", candidate_id="x3")
    assert _everywhere(con, sel, tmp_path) == _all("x3")
    record(con, "X", "unforce", "ann", candidate_id="x3")
    assert _everywhere(con, sel, tmp_path) == _all("x1")
    record(con, "X", "rank", "ann", value={"ranking": ["x2", "x1"]})
    assert _everywhere(con, sel, tmp_path) == _all("x2")
    record(con, "X", "rank", "ann", value={"ranking": []})
    assert _everywhere(con, sel, tmp_path) == _all("x1")
    record(con, "X", "exclude", "ann")
    out = _everywhere(con, sel, tmp_path)
    assert out == {**_all(None), "judge_pick": "x1"}
    record(con, "X", "include", "ann")
    assert _everywhere(con, sel, tmp_path) == _all("x1")
    record(con, "X", "veto", "ann", candidate_id="x1")
    assert _everywhere(con, sel, tmp_path) == _all("x2")
    undo(con, "X", "ann")
    assert _everywhere(con, sel, tmp_path) == _all("x1")
    # None of it touched the stored selection: it holds the judges' picks only.
    assert con.execute("SELECT * FROM selection_scores ORDER BY candidate_id").fetchall() == before


def test_overrides_made_before_saving_are_not_baked_in(reviewed):
    con, _ = reviewed
    record(con, "X", "veto", "ann", candidate_id="x1")
    record(con, "Y", "force", "ann", candidate_id="y3")
    sel = save_selection(con, SelectionConfig()).selection_id
    assert stored_picks(con, sel) == {"X": frozenset({"x1"}), "Y": frozenset({"y1"})}
    assert con.execute(
        "SELECT count(*) FROM selection_scores WHERE selection_id = ? AND override IS NOT NULL",
        [sel],
    ).fetchall()[0] == (0,)
    live = {r["example_id"]: r["candidate_id"] for r in effective_picks(con, sel).to_pylist()}
    assert live == {"X": "x2", "Y": "y3"}
    assert example_state(con, "Y", sel).judge_pick == "y1"  # the label shows the judges' pick
    # The Judge page's table of the saved selection: judge picks, overrides read live.
    rows = selection_rows(con, sel, picks_only=False).set_index("setting")
    assert rows.loc["s:x1", "picked"] and rows.loc["s:x1", "override"] == "veto"
    assert rows.loc["s:y3", "override"] == "force" and not rows.loc["s:y3", "picked"]


# ----------------------------------------------------------------------------- kept scores


def test_weight_change_rereads_kept_scores_and_new_judgments_rebuild_them(reviewed):
    con, _ = reviewed
    panel = get_panel(con, "default")
    first = ensure_aspect_scores(con, panel, "seen", ["m"])
    assert not first.built  # the saved selection built it
    assert not ensure_aspect_scores(con, panel, "seen", ["m"]).built
    preview_selection(con, SelectionConfig(weight=0.5))  # a weight change: no rebuild
    assert not ensure_aspect_scores(con, panel, "seen", ["m"]).built
    con.execute(
        "INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, status) "
        "VALUES ('late', 'x3', 'K', 'task', 1.0, 'ok')"
    )
    rebuilt = ensure_aspect_scores(con, panel, "seen", ["m"])
    assert rebuilt.built and rebuilt.judges["task"] == ["J", "K"]


# ----------------------------------------------------------------------------- migration


def test_migration_keeps_stored_selections_readable(tmp_path):
    # An old database, at every migration before this one, holding a selection saved
    # with the flat judge fields.
    path = tmp_path / "old.duckdb"
    raw = duckdb.connect(str(path))
    migrations.current_version(raw)
    for m in migrations.MIGRATIONS:
        if m.name != "009_aspect_scores":
            raw.execute(m.sql)
            raw.execute("INSERT INTO schema_migrations (name) VALUES (?)", [m.name])
    _fill(raw, {"X": "instruction"}, {c: ("X", "m") for c in ("x1", "x2")}, [])
    old_config = {
        "preset": "reset",
        "weight": 2.0,
        "combine": "agree",
        "judges": None,
        "judge_by_aspect": {},
        "delta": 0.1,
        "threshold": None,
        "require_agreement": False,
        "top_k": 1,
        "target_size": None,
        "split": "seen",
    }
    raw.execute(
        "INSERT INTO selections VALUES ('sel-old', 'reset', ?, now())", [json.dumps(old_config)]
    )
    raw.execute(
        "INSERT INTO selection_scores (selection_id, candidate_id, example_id, score, rank, "
        "picked, override) VALUES ('sel-old', 'x1', 'X', 2.5, 1, true, NULL), "
        "('sel-old', 'x2', 'X', 2.0, 2, false, 'veto')"
    )
    raw.close()
    con = connect(path)  # runs 009 on it
    assert "009_aspect_scores" in migrations.current_version(con)
    assert stored_picks(con, "sel-old") == {"X": frozenset({"x1"})}
    assert selection_rows(con, "sel-old").shape[0] == 1
    # Its flat fields read as the panel they meant.
    cfg = SelectionConfig.model_validate(old_config)
    assert cfg.panel.combine == "agree" and cfg.panel.delta == 0.1
    set_id = curation.create_curated_set(con, CurationSpec(selection_id="sel-old"))
    man = json.loads(
        con.execute("SELECT manifest FROM curated_sets WHERE set_id = ?", [set_id]).fetchall()[0][0]
    )
    assert man["panel"]["combine"] == "agree" and man["weight"] == 2.0


def test_cli_saves_lists_and_selects_with_a_panel(scales, db_path, capsys):
    from reset_core.cli import main

    scales.close()
    db = ["--db", str(db_path)]
    assert main([*db, "panel", "save", "narrow", "--task", "N", "--scale", "standard"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "saved panel narrow: mean of standardised scores",
        "  task: N",
        "  instruction: I (every judge with verdicts)",
        "  faithfulness: none (every judge with verdicts)",
    ]
    assert main([*db, "panel", "list"]) == 0
    listed = capsys.readouterr().out
    assert (
        "default: mean of linear [0,1] scores\n  task: N, W (every judge with verdicts)" in listed
    )
    assert "narrow: mean of standardised scores\n  task: N\n" in listed
    # The saved panel drives selection from the CLI: N alone ranks b first (linear: a).
    assert main([*db, "select", "--panel", "narrow"]) == 0
    out = capsys.readouterr().out
    assert "panel narrow: mean of standardised scores" in out and "1 picks" in out
    con = connect(db_path)
    assert con.execute("SELECT candidate_id FROM selection_scores WHERE picked").fetchall() == [
        ("b",)
    ]
    assert main([*db, "panel", "save", "default"]) == 2  # the default cannot be saved over
    assert "default" in capsys.readouterr().err
