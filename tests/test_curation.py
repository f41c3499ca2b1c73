"""Curated sets: review overrides (reset_core.review.events rules) on top of picks, presets and target size, frozen snapshots, manifest."""

from __future__ import annotations

import pytest
from training_data import add_event, fill_picks

from reset_core.curation import queries as curation_queries
from reset_core.curation import sets as curation
from reset_core.curation.config import CurationSpec
from reset_core.curation.sets import apply_overrides, create_curated_set, preview


def picks(con, selection_id="sel-1") -> dict[str, tuple[str, str]]:
    t = apply_overrides(con, selection_id).to_pylist()
    return {r["example_id"]: (r["candidate_id"], r["how"]) for r in t}


def test_no_overrides_keeps_the_judges_picks(con):
    fill_picks(con, n=6)
    p = picks(con)
    assert p == {f"e{i:03d}": (f"c{i:03d}-0", "judge") for i in range(6)}


def test_veto_moves_to_next_best_and_vetoes_accumulate(con):
    fill_picks(con, n=4)
    add_event(con, "v1", "e000", "veto", "c000-0", at="2025-01-01 10:00")
    assert picks(con)["e000"] == ("c000-1", "next_best")
    add_event(con, "v2", "e000", "veto", "c000-1", at="2025-01-01 10:01")
    assert picks(con)["e000"] == ("c000-2", "next_best")
    add_event(con, "v3", "e000", "veto", "c000-2", at="2025-01-01 10:02")
    assert "e000" not in picks(con)  # nothing left: no pick


def test_force_exclude_latest_wins_and_undo_cancels(con):
    fill_picks(con, n=4)
    add_event(con, "f1", "e001", "force", "c001-2", at="2025-01-01 10:00")
    assert picks(con)["e001"] == ("c001-2", "force")
    add_event(con, "x1", "e001", "exclude", at="2025-01-01 10:01")
    assert "e001" not in picks(con)
    add_event(con, "u1", "e001", "undo", value={"event_id": "x1"}, at="2025-01-01 10:02")
    assert picks(con)["e001"] == ("c001-2", "force")
    add_event(con, "u2", "e001", "undo", value={"event_id": "f1"}, at="2025-01-01 10:03")
    assert picks(con)["e001"] == ("c001-0", "judge")
    # Notes, ranks and manual scores do not move the pick on their own.
    add_event(con, "n1", "e002", "note", value={"text": "fine"})
    assert picks(con)["e002"] == ("c002-0", "judge")


def test_force_on_an_example_without_a_pick(con):
    fill_picks(con, n=3)
    con.execute("UPDATE selection_scores SET picked = false WHERE example_id = 'e002'")
    assert "e002" not in picks(con)
    add_event(con, "f1", "e002", "force", "c002-1")
    assert picks(con)["e002"] == ("c002-1", "force")


def test_presets_target_size_and_kind_balance(con):
    fill_picks(con, n=30)
    full = preview(con, CurationSpec(selection_id="sel-1"))
    assert full["n_items"] == 30 and full["by_kind"] == {"context": 15, "instruction": 15}
    small = preview(con, CurationSpec(selection_id="sel-1", preset="RESET-S"))
    assert small["n_items"] == 10
    # Best third by score: the lowest example indexes, kinds balanced 5/5.
    assert small["by_kind"] == {"context": 5, "instruction": 5}
    assert min(small["scores"]) > max(set(full["scores"]) - set(small["scores"]))
    capped = preview(con, CurationSpec(selection_id="sel-1", target_size=7, kinds=["context"]))
    assert capped["n_items"] == 7 and capped["by_kind"] == {"context": 7}
    assert (
        sum(preview(con, CurationSpec(selection_id="sel-1", min_score=0.9))["by_kind"].values())
        == 11
    )


def test_freeze_is_a_snapshot_with_a_manifest(con):
    fill_picks(con, n=8)
    add_event(con, "v1", "e000", "veto", "c000-0")
    add_event(con, "x1", "e003", "exclude")
    spec = CurationSpec(selection_id="sel-1", preset="RESET", name="first")
    set_id = create_curated_set(con, spec)
    assert create_curated_set(con, spec) == set_id  # same picks: same frozen set
    man = curation_queries.manifest(con, set_id)
    assert man["n_items"] == 7
    assert man["selection"]["config"]["weights"] == {"w": 2.0}
    # A config not written by save_selection is recorded as it is, never filled in.
    assert man["weight"] is None and man["panel"] is None
    assert man["generator_models"] == [{"model_id": "m-base", "label": "m-base", "n_items": 7}]
    assert sorted(man["overrides"]["events_applied"]) == ["v1", "x1"]
    assert man["overrides"]["n_applied"] == 2  # one veto and one exclusion in force
    assert man["overrides"]["by_outcome"] == {"judge": 6, "next_best": 1}
    assert man["filters"]["preset"] == "RESET"
    assert len(man["content_hash"]) == 64
    items = dict(
        con.execute(
            "SELECT example_id, candidate_id FROM curated_items WHERE set_id = ?", [set_id]
        ).fetchall()
    )
    assert items["e000"] == "c000-1" and "e003" not in items
    prompt = con.execute(
        "SELECT prompt FROM curated_items WHERE set_id = ? AND example_id = 'e000'", [set_id]
    ).fetchall()[0][0]
    assert "Context:\nParis is the capital of France." in prompt

    # Later review does not change the frozen set; freezing again makes a new one.
    add_event(con, "f1", "e000", "force", "c000-2")
    assert curation_queries.manifest(con, set_id)["n_items"] == 7
    assert (
        dict(
            con.execute(
                "SELECT example_id, candidate_id FROM curated_items WHERE set_id = ?", [set_id]
            ).fetchall()
        )["e000"]
        == "c000-1"
    )
    assert create_curated_set(con, spec) != set_id


def test_empty_set_is_refused_and_nothing_written(con):
    fill_picks(con, n=2)
    for i, e in enumerate(("e000", "e001")):
        add_event(con, f"x{i}", e, "exclude")
    with pytest.raises(ValueError, match="empty"):
        create_curated_set(con, CurationSpec(selection_id="sel-1"))
    assert con.execute("SELECT count(*) FROM curated_sets").fetchall()[0][0] == 0
    with pytest.raises(ValueError, match="selection_id"):
        create_curated_set(con, CurationSpec(selection_id="nope"))


def test_reference_set_for_mtl_mixes_kinds(con):
    fill_picks(con, n=10)
    set_id = curation.create_reference_set(con, target_size=6)
    man = curation_queries.manifest(con, set_id)
    assert man["kind"] == "references" and man["by_kind"] == {"context": 3, "instruction": 3}
    rows = con.execute(
        "SELECT candidate_id, completion FROM curated_items WHERE set_id = ?", [set_id]
    ).fetchall()
    assert all(c.startswith("reference:") and t == "Paris." for c, t in rows)
    assert con.execute("SELECT preset FROM curated_sets WHERE set_id = ?", [set_id]).fetchall() == [
        ("MTL",)
    ]


def test_cli_curate_defaults_to_the_latest_selection(db_path, capsys):
    from training_data import fill_picks

    from reset_core.cli import main
    from reset_core.store import connect

    db = str(db_path)
    con = connect(db)
    con.close()
    assert main(["--db", db, "curate"]) == 2
    assert "no selection yet" in capsys.readouterr().err
    con = connect(db)
    fill_picks(con, n=6)
    con.close()
    assert main(["--db", db, "curate", "--name", "cli-set"]) == 0
    out = capsys.readouterr().out
    assert "using the latest selection, sel-1" in out
    con = connect(db)
    assert con.execute("SELECT name, n_items FROM curated_sets").fetchall() == [("cli-set", 6)]
