"""The one rule per label: decoding settings, review events and models read as what they are."""

from __future__ import annotations

import itertools
from datetime import datetime

import pyarrow as pa
import pytest

from reset_core.review.events import Event, describe_event, event_noun
from reset_core.sampling.settings import (
    DecodingSetting,
    setting_label,
    setting_label_sql,
    setting_labels_of,
)
from reset_core.store import connect
from reset_core.training.config import TrainConfig
from reset_core.training.launch import start_training
from reset_core.training.queries import model_label, model_labels, next_model_label, runs

# ----------------------------------------------------------------------------- settings


def test_setting_label_shows_values_and_only_non_default_extras():
    assert setting_label(0.5, 20) == "T 0.5 · top-k 20"
    assert setting_label(0.0, -1) == "T 0 · top-k all"
    assert setting_label(1.0, 50, top_p=0.9) == "T 1 · top-k 50 · top-p 0.9"
    assert setting_label(0.7, -1, n=4) == "T 0.7 · top-k all · n 4"
    s = DecodingSetting(temperature=0.3, top_k=40, max_tokens=64, seed=7)
    assert s.label() == "T 0.3 · top-k 40"  # max_tokens and seed are not part of the label
    assert "s:" not in s.label()


def test_the_sql_label_is_the_python_label():
    grid = [
        DecodingSetting(temperature=t, top_k=k, top_p=p, n=n)
        for t, k, p, n in itertools.product(
            (0.0, 0.1, 0.5, 0.7, 1.0, 1.25, 2.0), (-1, 1, 20), (0.05, 0.9, 0.95, 1.0), (1, 3)
        )
    ]
    con = connect(":memory:")
    con.register(
        "grid",
        pa.table(
            {
                "setting_id": [s.setting_id for s in grid],
                **{f: [getattr(s, f) for s in grid] for f in ("temperature", "top_k", "top_p")},
                "n": [s.n for s in grid],
            }
        ),
    )
    con.execute(
        "INSERT INTO decoding_settings SELECT setting_id, temperature, top_k, top_p, "
        "128, 0, n FROM grid"
    )
    got = dict(
        con.execute(
            f"SELECT setting_id, {setting_label_sql('d')} FROM decoding_settings d"
        ).fetchall()
    )
    assert got == {s.setting_id: s.label() for s in grid}


def test_settings_that_differ_only_in_max_tokens_or_seed_read_apart():
    grid = [
        DecodingSetting(temperature=0.5, top_k=20, max_tokens=64),
        DecodingSetting(temperature=0.5, top_k=20, max_tokens=256),
        DecodingSetting(temperature=1.0, top_k=-1, seed=0),
        DecodingSetting(temperature=1.0, top_k=-1, seed=7),
        DecodingSetting(temperature=1.0, top_k=-1, seed=7, max_tokens=64),
        DecodingSetting(temperature=0.1, top_k=20, max_tokens=64),  # alone: plain label
    ]
    labels = setting_labels_of(grid)
    assert labels == [
        "T 0.5 · top-k 20 · max_tokens 64",
        "T 0.5 · top-k 20 · max_tokens 256",
        "T 1 · top-k all · max_tokens 256 · seed 0",
        "T 1 · top-k all · max_tokens 256 · seed 7",
        "T 1 · top-k all · max_tokens 64 · seed 7",
        "T 0.1 · top-k 20",
    ]
    con = connect(":memory:")
    for s in grid:
        con.execute(
            "INSERT INTO decoding_settings VALUES (?, ?, ?, ?, ?, ?, ?)",
            [s.setting_id, s.temperature, s.top_k, s.top_p, s.max_tokens, s.seed, s.n],
        )
    got = dict(
        con.execute(
            f"SELECT setting_id, {setting_label_sql('d')} FROM decoding_settings d"
        ).fetchall()
    )
    assert got == {s.setting_id: label for s, label in zip(grid, labels, strict=True)}
    # A missing row (a LEFT JOIN that found nothing) is NULL, for callers to coalesce.
    assert con.execute(
        f"SELECT {setting_label_sql('d')} FROM (SELECT 1) x LEFT JOIN decoding_settings d ON false"
    ).fetchone() == (None,)


# ----------------------------------------------------------------------------- events


def _ev(action, candidate=None, eid=None, **value):
    return Event(
        eid or f"ev-20261201T205318945404-{action}",
        "dolly:open-124",
        candidate,
        action,
        value,
        None,
        "alice",
        None,
        datetime(2026, 12, 1, 20, 53),
    )


NAMES = {"c:1": "T 0.5 · top-k 20, sample 0", "c:2": "T 1 · top-k all, sample 1"}


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (_ev("veto", "c:1"), "vetoed candidate (T 0.5 · top-k 20, sample 0) of dolly:open-124"),
        (
            _ev("unveto", "c:1"),
            "lifted the veto on candidate (T 0.5 · top-k 20, sample 0) of dolly:open-124",
        ),
        (
            _ev("force", "c:2"),
            "forced candidate (T 1 · top-k all, sample 1) as the pick of dolly:open-124",
        ),
        (
            _ev("accept", "c:2", candidate_id="c:2"),
            "accepted the pick (T 1 · top-k all, sample 1) of dolly:open-124",
        ),
        (_ev("exclude"), "excluded dolly:open-124 from curation"),
        (_ev("include"), "included dolly:open-124 in curation again"),
        (_ev("rank", ranking=["c:2", "c:1"]), "ranked 2 candidates of dolly:open-124"),
        (
            _ev("score", "c:1", aspect="faithfulness", score=0.25),
            "scored candidate (T 0.5 · top-k 20, sample 0) of dolly:open-124: faithfulness 0.25",
        ),
        (
            _ev("score", "c:1", aspect="task", score=None),
            "cleared the task score of candidate (T 0.5 · top-k 20, sample 0) of dolly:open-124",
        ),
        (_ev("note", text="The rhyme\nis off."), "noted on dolly:open-124: “The rhyme is off.”"),
    ],
)
def test_each_action_reads_as_what_it_did(event, text):
    assert describe_event(event, names=NAMES) == text


def test_an_undo_names_what_it_took_back_never_an_event_id():
    veto = _ev("veto", "c:1", eid="ev-20261201T205318945404-c44c6337")
    undo = _ev("undo", eid="ev-20261201T205400000000-0a0a0a0a", event_id=veto.event_id)
    assert describe_event(undo, [veto, undo], NAMES) == "undid the veto on dolly:open-124"
    score = _ev("score", "c:1", eid="ev-x", aspect="task", score=0.5)
    undo_score = _ev("undo", eid="ev-y", event_id="ev-x")
    assert describe_event(undo_score, [score]) == "undid the task score on dolly:open-124"
    assert event_noun(_ev("force", "c:1")) == "forced pick"
    # Without the history it still says what happened, and no id leaks.
    assert describe_event(undo, names=NAMES) == "undid an earlier action on dolly:open-124"
    for e in (veto, undo, score, undo_score):
        assert "ev-" not in describe_event(e, [veto, score], NAMES)


def test_without_names_candidates_fall_back_to_their_ids():
    assert describe_event(_ev("veto", "c:9")) == "vetoed candidate c:9 of dolly:open-124"


# ----------------------------------------------------------------------------- models


@pytest.fixture
def lineage_db():
    con = connect(":memory:")
    con.execute(
        "INSERT INTO curated_sets (set_id, name, preset, selection_id, n_items, manifest, "
        "content_hash) VALUES ('cur-mtl', 'MTL refs', 'MTL', NULL, 9, '{}', 'a'), "
        "('cur-r1', 'round 1', 'RESET', 'sel-1', 9, '{}', 'b'), "
        "('cur-r2', 'round 2', 'RESET-S', 'sel-2', 9, '{}', 'c')"
    )
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id, created_at) VALUES "
        "('m:base', 'SmolLM2-135M-Instruct', '/data/models/smollm2', NULL, 'base', NULL, NULL, "
        "NULL, '2026-01-01'), "
        "('m:mtl', 'cur-mtl', '/data/models/smollm2', '/t/mtl/adapter', 'mtl', 'm:base', "
        "'cur-mtl', 'run-1', '2026-01-02'), "
        "('m:r1', 'run-2', '/t/r1/merged', NULL, 'reset', 'm:mtl', 'cur-r1', 'run-2', "
        "'2026-01-03'), "
        "('m:r2', 'nightly', '/data/models/smollm2', '/t/r2/adapter', 'reset', 'm:r1', "
        "'cur-r2', 'run-3', '2026-01-04'), "
        "('m:hub', 'Qwen/Qwen2.5-0.5B-Instruct', 'Qwen/Qwen2.5-0.5B-Instruct', NULL, 'base', "
        "NULL, NULL, NULL, '2026-01-05')"
    )
    yield con
    con.close()


def test_models_read_as_name_and_lineage_never_a_path_or_set_id(lineage_db):
    labels = model_labels(lineage_db)
    assert labels == {
        "m:base": "SmolLM2-135M-Instruct",
        # Named after its curated set's id (the old default): the lineage says what it is.
        "m:mtl": "SmolLM2-135M-Instruct + LoRA (MTL)",
        "m:r1": "SmolLM2-135M-Instruct + LoRA merged (RESET round 1)",
        # A name its trainer chose leads; RESET rounds count along the lineage.
        "m:r2": "nightly · SmolLM2-135M-Instruct + LoRA (RESET-S round 2)",
        "m:hub": "Qwen2.5-0.5B-Instruct",
    }
    for label in labels.values():
        assert "/" not in label and "cur-" not in label and "run-" not in label
    assert model_label(lineage_db, "m:r1") == labels["m:r1"]


def test_the_next_model_is_named_for_what_it_will_be(lineage_db):
    assert (
        next_model_label(lineage_db, "m:r1", "cur-r2", merged=False)
        == "SmolLM2-135M-Instruct + LoRA (RESET-S round 2)"
    )
    assert (
        next_model_label(lineage_db, "m:base", "cur-mtl", merged=True)
        == "SmolLM2-135M-Instruct + LoRA merged (MTL)"
    )


def test_a_run_without_a_name_is_named_by_its_label_not_its_set(tmp_path):
    db = tmp_path / "studio.duckdb"
    con = connect(db)
    data = pa.table({"prompt": ["Say hi."], "completion": ["Hi!"]})
    cfg = TrainConfig(base_model=str(tmp_path / "base-model"))
    run_id, _ = start_training(con, db, cfg, data=data, launch=False)
    cfg_name = con.execute(
        "SELECT config->>'$.name', output_dir FROM training_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    assert cfg_name[0] == "base-model + LoRA (fine-tuned)"
    assert "base-model-LoRA-fine-tuned" in cfg_name[1]
    table = runs(con)
    assert list(table["started from"]) == ["base-model"]
    con.close()


def test_a_trained_model_job_shows_the_trained_model_not_its_base_path(tmp_path):
    from conftest import FIXTURES

    from reset_core.ingest.config import ImportOptions
    from reset_core.ingest.importer import import_file
    from reset_core.paths import jobs_dir
    from reset_core.sampling.config import ModelSpec, SampleSelection
    from reset_core.sampling.launch import plan_sampling, start_sampling
    from reset_core.sampling.queries import sampling_jobs
    from reset_core.sampling.settings import default_grid
    from reset_core.training.launch import ensure_model, model_id_for

    db = tmp_path / "studio.duckdb"
    con = connect(db)
    import_file(con, FIXTURES / "alpaca.json", ImportOptions(preset="alpaca"))
    base, adapter = tmp_path / "smol", tmp_path / "run" / "adapter"
    base_id = ensure_model(con, str(base), name="SmolLM2-135M-Instruct")
    con.execute(
        "INSERT INTO models (model_id, name, path, adapter_path, stage, parent_id, "
        "curated_set_id, training_run_id) VALUES (?, 'cur-123', ?, ?, 'other', ?, 'cur-123', "
        "'run-1')",  # named after its curated set's id, as runs used to be
        [model_id_for(str(base), str(adapter)), str(base), str(adapter), base_id],
    )
    for spec in (ModelSpec(model=str(base)), ModelSpec(model=str(base), adapter=str(adapter))):
        plan = plan_sampling(con, SampleSelection(count=1), spec, default_grid(), check=False)
        start_sampling(con, plan, jobs_dir(db), launch=False)
    models = sampling_jobs(con)["model"].tolist()
    assert sorted(models) == ["SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct + LoRA (fine-tuned)"]
    con.close()
