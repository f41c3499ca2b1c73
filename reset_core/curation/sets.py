"""Curated sets: frozen snapshots of the picks (or of references, for MTL) to train on.

A curated set is what RESET continues fine-tuning on. It is built from one scoring
run (``selections`` + ``selection_scores``, written by the judging stage) with the
reviewers' overrides applied on top (:func:`apply_overrides`), cut to a preset and a
target size, and then frozen: its items (prompt + completion text) are copied into
``curated_items`` so later re-scoring or review never changes a set a model was
trained on. The manifest records everything needed to rebuild it: the selection,
its weights and judges, rubric versions, the override events applied, the filters,
and a content hash over the items.

The MTL stage uses the same noun: :func:`create_reference_set` freezes examples with
their reference answers as completions (a mixed import of instruction and context
data), which is what the baseline is trained on before RESET starts.

The spec and presets are in :mod:`reset_core.curation.config`, the reads in
:mod:`reset_core.curation.queries`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pyarrow as pa

from reset_core.curation.config import CurationSpec
from reset_core.curation.queries import reference_filter
from reset_core.scoring.reset_s import keep_best_sql
from reset_core.store import insert_arrow, one


def user_message(instruction: str, context: str | None) -> str:
    """The user turn for one example, exactly as sampling prompted the model.

    >>> user_message("Who wrote it?", "Hamlet was written by Shakespeare.")
    'Who wrote it?\\n\\nContext:\\nHamlet was written by Shakespeare.'
    """
    from reset_core.sampling.base import build_messages

    return build_messages(instruction, context)[0]["content"]


# --------------------------------------------------------------------------- overrides


def apply_overrides(con, selection_id: str) -> pa.Table:
    """The picks of a selection with the reviewers' override events applied on top.

    One row per picked example: ``example_id, candidate_id, score, how`` where
    ``how`` is ``judge`` (the judges' pick stands), ``next_best`` (the pick was vetoed
    and the next best took its place), ``force`` or ``rank`` (a reviewer chose).
    Excluded examples, and examples whose candidates were all vetoed, are dropped.
    The event ids on the selection's examples are in the schema metadata
    (``applied_events``) for the manifest.

    The rules (undo, veto/un-veto, force, exclude/include, manual ranks) live in one
    place, :func:`reset_core.review.effective_picks`; this only reshapes its answer,
    so a curated set always agrees with what reviewers see.

    >>> from reset_core.store import connect
    >>> apply_overrides(connect(":memory:"), "none").num_rows
    0
    """
    from reset_core.review.events import effective_picks

    picks = effective_picks(con, selection_id).select(
        ["example_id", "candidate_id", "score", "source"]
    )
    picks = picks.rename_columns(["example_id", "candidate_id", "score", "how"])
    events = [
        r[0]
        for r in con.execute(
            "SELECT event_id FROM overrides WHERE example_id IN "
            "(SELECT example_id FROM selection_scores WHERE selection_id = ?) "
            "ORDER BY created_at, event_id",
            [selection_id],
        ).fetchall()
    ]
    return picks.sort_by("example_id").replace_schema_metadata(
        {"applied_events": json.dumps(events)}
    )


# --------------------------------------------------------------------------- building sets


def _selection_config(con, selection_id: str) -> tuple[str, dict] | None:
    """(preset, config) of a stored selection, its config read as today's fields.

    Selections saved before panels existed stored flat judge fields; reading them
    through :class:`~reset_core.scoring.config.SelectionConfig` gives their panel.
    """
    from reset_core.scoring.config import SelectionConfig

    row = one(con, "SELECT preset, config FROM selections WHERE selection_id = ?", [selection_id])
    if row is None:
        return None
    raw = (json.loads(row[1]) if isinstance(row[1], str) else row[1]) or {}
    if "weight" not in raw:
        return row[0], raw  # not written by save_selection: never fill in defaults
    try:
        cfg = SelectionConfig.model_validate(raw).model_dump(mode="json")
    except ValueError:
        return row[0], raw
    return row[0], {**raw, **cfg}


def _cuts_reset_s(con, spec: CurationSpec) -> bool:
    """Whether curation makes the RESET-S cut: not when the selection made it already."""
    if spec.preset != "RESET-S":
        return False
    sel = _selection_config(con, spec.selection_id)
    return not (sel and sel[0] == "reset_s")


def _picks_with_text(con, spec: CurationSpec) -> tuple[pa.Table, list[str]]:
    """Picks after overrides, filters and the preset's cut, joined with example and candidate text."""
    picks = apply_overrides(con, spec.selection_id)
    applied = json.loads((picks.schema.metadata or {}).get(b"applied_events", b"[]"))
    con.register("_picks", picks)
    try:
        where, params = [], []
        if spec.kinds:
            where.append("e.kind IN (SELECT unnest(?))")
            params.append(spec.kinds)
        if spec.sources:
            where.append("e.source IN (SELECT unnest(?))")
            params.append(spec.sources)
        if spec.min_score is not None:
            # A forced pick may have no score (not rankable); the reviewer's choice stands.
            where.append("(p.score >= ? OR p.how IN ('force', 'rank'))")
            params.append(spec.min_score)
        sql = (
            "SELECT p.example_id, p.candidate_id, p.score, p.how, e.kind, e.source, "
            "e.instruction, e.context, c.text AS completion, c.model_id "
            "FROM _picks p JOIN examples e USING (example_id) "
            "JOIN candidates c ON c.candidate_id = p.candidate_id"
            + (" WHERE " + " AND ".join(where) if where else "")
        )
        if _cuts_reset_s(con, spec):
            # The one RESET-S definition, as selection's reset_s preset applies it.
            sql = f"WITH f AS ({sql}) {keep_best_sql('f', spec.reset_s_fraction)}"
        sql = f"SELECT * FROM ({sql}) ORDER BY score DESC NULLS LAST, example_id, candidate_id"
        table = con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister("_picks")
    return table, applied


def _cut(rows: list[dict], spec: CurationSpec) -> list[dict]:
    """Apply the target size to rows sorted best first (the preset's cut is made in SQL)."""
    n = len(rows)
    if spec.target_size is not None:
        n = min(n, spec.target_size)
    if n >= len(rows):
        return rows
    if not spec.balance_kinds:
        return rows[:n]
    # Largest-remainder split of n across kinds in proportion to what the picks hold.
    by_kind: dict[str, list[dict]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r)
    quota = {k: n * len(v) / len(rows) for k, v in by_kind.items()}
    take = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: quota[k] - take[k], reverse=True)[
        : n - sum(take.values())
    ]:
        take[k] += 1
    kept = {id(r) for k, v in by_kind.items() for r in v[: take[k]]}
    return [r for r in rows if id(r) in kept]


def preview(con, spec: CurationSpec) -> dict:
    """What freezing ``spec`` would give, without writing anything.

    Returns counts (picks before and after overrides and the cut), counts by kind
    and by source, override outcomes, the overrides in force by kind
    (``live_overrides``, see :func:`reset_core.review.events.live_override_counts`),
    and the scores of the kept items for a histogram.
    """
    from reset_core.review.events import live_override_counts

    table, applied = _picks_with_text(con, spec)
    rows = table.to_pylist()
    kept = _cut(rows, spec)
    n_judge_picks = one(
        con,
        "SELECT count(*) FROM selection_scores WHERE selection_id = ? AND picked",
        [spec.selection_id],
    )[0]
    scores = [r["score"] for r in kept if r["score"] is not None]

    def count(key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in kept:
            out[r[key]] = out.get(r[key], 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    return {
        "n_judge_picks": n_judge_picks,
        "n_after_overrides_and_filters": len(rows),
        "n_items": len(kept),
        "by_kind": count("kind"),
        "by_source": count("source"),
        "by_override": count("how"),
        "n_override_events": len(applied),  # every review event, for the audit trail
        "live_overrides": live_override_counts(con, spec.selection_id),
        "n_without_score": len(kept) - len(scores),
        "scores": scores,
        "score_by_kind": {
            k: [r["score"] for r in kept if r["kind"] == k and r["score"] is not None]
            for k in count("kind")
        },
    }


def content_hash(items: Sequence[dict]) -> str:
    """sha256 over the items (example, candidate, prompt, completion), order-independent."""
    h = hashlib.sha256()
    for r in sorted(items, key=lambda r: r["example_id"]):
        for key in ("example_id", "candidate_id", "prompt", "completion"):
            h.update(r[key].encode())
            h.update(b"\x1f")
        h.update(b"\x1e")
    return h.hexdigest()


def _judges_and_rubrics(con, candidate_ids: list[str]) -> tuple[list[dict], list[dict]]:
    judges = con.execute(
        "SELECT j.judge_id, j.name, j.kind, j.model, j.config, count(*) AS n_judgments "
        "FROM judgments g JOIN judges j USING (judge_id) "
        "WHERE g.candidate_id IN (SELECT unnest(?)) GROUP BY ALL ORDER BY j.judge_id",
        [candidate_ids],
    ).fetchall()
    rubrics = con.execute(
        "SELECT aspect, max(version) FROM rubrics GROUP BY aspect ORDER BY aspect"
    ).fetchall()
    return (
        [
            {
                "judge_id": j,
                "name": n,
                "kind": k,
                "model": m,
                "config": json.loads(c) if isinstance(c, str) else c,
                "n_judgments": cnt,
            }
            for j, n, k, m, c, cnt in judges
        ],
        [{"aspect": a, "version": v} for a, v in rubrics],
    )


def _freeze(con, items: list[dict], manifest: dict, preset: str, name: str, selection_id) -> str:
    """Store a set and its items in one transaction; the same content gives the same id."""
    if not items:
        raise ValueError(
            "the curated set would be empty: no picks are left after overrides and filters "
            f"({json.dumps(manifest.get('filters', {}))})"
        )
    digest = content_hash(items)
    manifest = {**manifest, "content_hash": digest, "n_items": len(items)}
    set_id = (
        "cs-"
        + hashlib.sha256(
            json.dumps([digest, preset, selection_id], sort_keys=True).encode()
        ).hexdigest()[:12]
    )
    if one(con, "SELECT 1 FROM curated_sets WHERE set_id = ?", [set_id]):
        return set_id  # frozen already: same picks, same preset, same run
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO curated_sets (set_id, name, preset, selection_id, manifest, content_hash, "
            "n_items) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [set_id, name, preset, selection_id, json.dumps(manifest), digest, len(items)],
        )
        insert_arrow(
            con,
            "curated_items",
            pa.table(
                {
                    "set_id": [set_id] * len(items),
                    "example_id": [r["example_id"] for r in items],
                    "candidate_id": [r["candidate_id"] for r in items],
                    "prompt": [r["prompt"] for r in items],
                    "completion": [r["completion"] for r in items],
                }
            ),
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return set_id


def create_curated_set(con, spec: CurationSpec) -> str:
    """Freeze the picks of ``spec.selection_id`` (overrides applied) into a curated set.

    Returns the set id. Freezing the same picks again returns the same id and writes
    nothing. Raises ``ValueError`` naming the filters when nothing would be left.

    >>> from reset_core.review.events import record
    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = con.execute("INSERT INTO examples (example_id, instruction, kind, source, split, "
    ...                 "content_hash) VALUES ('e1', 'Say hi', 'instruction', 'demo', 'seen', 'h')")
    >>> _ = con.execute("INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, "
    ...     "sample_index, seed, text, engine) VALUES ('a', 'e1', 'm', 's', 0, 0, 'Hi!', 't'), "
    ...     "('b', 'e1', 'm', 's', 1, 1, 'Hello there.', 't')")
    >>> _ = con.execute("INSERT INTO selections VALUES ('sel-1', 'reset', '{}', now())")
    >>> _ = con.execute("INSERT INTO selection_scores (selection_id, candidate_id, example_id, "
    ...     "score, rank, picked) VALUES ('sel-1', 'a', 'e1', 2.5, 1, true), "
    ...     "('sel-1', 'b', 'e1', 2, 2, false)")
    >>> set_id = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    >>> con.execute("SELECT candidate_id, prompt, completion FROM curated_items "
    ...             "WHERE set_id = ?", [set_id]).fetchall()
    [('a', 'Say hi', 'Hi!')]
    >>> create_curated_set(con, CurationSpec(selection_id="sel-1")) == set_id
    True
    >>> _ = record(con, "e1", "veto", "ann", candidate_id="a", reason="too curt")
    >>> vetoed = create_curated_set(con, CurationSpec(selection_id="sel-1"))
    >>> con.execute("SELECT candidate_id FROM curated_items WHERE set_id = ?", [vetoed]).fetchall()
    [('b',)]
    """
    from reset_core.review.events import live_override_counts
    from reset_core.training.queries import model_labels

    sel = _selection_config(con, spec.selection_id)
    if sel is None:
        raise ValueError(f"selection_id: no scoring run {spec.selection_id!r}")
    sel_preset, sel_config = sel
    table, applied = _picks_with_text(con, spec)
    kept = _cut(table.to_pylist(), spec)
    items = [
        {
            "example_id": r["example_id"],
            "candidate_id": r["candidate_id"],
            "prompt": user_message(r["instruction"], r["context"]),
            "completion": r["completion"],
            "kind": r["kind"],
            "score": r["score"],
        }
        for r in kept
    ]
    judges, rubrics = _judges_and_rubrics(con, [r["candidate_id"] for r in items])
    overrides_used = sorted({r["example_id"] for r in kept if r["how"] != "judge"})
    labels = model_labels(con)
    panel = sel_config.get("panel") if isinstance(sel_config.get("panel"), dict) else None
    live = live_override_counts(con, spec.selection_id)
    manifest = {
        "kind": "picks",
        "selection": {
            "selection_id": spec.selection_id,
            "preset": sel_preset,
            "config": sel_config,
        },
        # What made these picks, at a glance (all of it is in selection.config too).
        "generator_models": [
            {"model_id": m, "label": labels.get(m, m), "n_items": n}
            for m, n in sorted(_count([r["model_id"] for r in kept]).items())
        ],
        "panel": panel,
        "judges_used": sel_config.get("judges_used"),
        "scale": (panel or {}).get("scale"),
        "weight": sel_config.get("weight"),
        "preset": spec.preset,
        "reset_s": {
            "fraction": spec.reset_s_fraction
            if _cuts_reset_s(con, spec)
            else sel_config.get("reset_s_fraction"),
            "cut_by": "curation"
            if _cuts_reset_s(con, spec)
            else ("selection" if sel_preset == "reset_s" else None),
            "require_agreement": sel_config.get("require_agreement"),
        },
        "judges": judges,
        "rubric_versions": rubrics,
        "overrides": {
            "n_applied": sum(live.values()),
            "in_force": live,
            "events_applied": applied,
            "examples_changed": overrides_used,
            "by_outcome": _count([r["how"] for r in kept]),
        },
        "filters": spec.model_dump(exclude={"selection_id", "name"}),
        "by_kind": _count([r["kind"] for r in kept]),
        "by_source": _count([r["source"] for r in kept]),
        "prompt_format": "reset_core.sampling.base.build_messages (same as sampling)",
    }
    name = spec.name or f"{spec.preset} of {spec.selection_id}"
    return _freeze(con, items, manifest, spec.preset, name, spec.selection_id)


def create_reference_set(
    con,
    *,
    kinds: Sequence[str] = (),
    sources: Sequence[str] = (),
    split: str = "seen",
    target_size: int | None = None,
    name: str = "",
) -> str:
    """Freeze examples with their reference answers as completions: the MTL training set.

    Mixes instruction and context examples (filter with ``kinds``/``sources``);
    examples without a reference are skipped. With ``target_size`` the cut keeps the
    kind mix and is deterministic (ordered by example id).

    >>> import json
    >>> from reset_core.ingest.demo import load_demo
    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = load_demo(con)
    >>> set_id = create_reference_set(con, target_size=100)
    >>> manifest = con.execute("SELECT manifest FROM curated_sets WHERE set_id = ?", [set_id])
    >>> manifest = json.loads(manifest.fetchone()[0])
    >>> con.execute("SELECT kind, count(*) FROM examples WHERE split = 'seen' "
    ...             "AND reference IS NOT NULL GROUP BY kind ORDER BY kind DESC").fetchall()
    [('instruction', 186), ('context', 131)]
    >>> manifest["n_items"], manifest["by_kind"]  # the same mix, 59% instruction data
    (100, {'instruction': 59, 'context': 41})
    """
    where, params = reference_filter(kinds, sources, split)
    rows = [
        {
            "example_id": e,
            "candidate_id": f"reference:{e}",
            "kind": k,
            "source": s,
            "prompt": user_message(i, c),
            "completion": r,
            "score": None,
        }
        for e, k, s, i, c, r in con.execute(
            "SELECT example_id, kind, source, instruction, context, reference FROM examples "
            f"WHERE {' AND '.join(where)} ORDER BY example_id",
            params,
        ).fetchall()
    ]
    spec_like = CurationSpec(selection_id="", target_size=target_size, balance_kinds=True)
    kept = _cut(rows, spec_like)
    manifest = {
        "kind": "references",
        "selection": None,
        "weights": None,
        "judges": [],
        "rubric_versions": [],
        "overrides": None,
        "filters": {
            "kinds": list(kinds),
            "sources": list(sources),
            "split": split,
            "target_size": target_size,
        },
        "by_kind": _count([r["kind"] for r in kept]),
        "by_source": _count([r["source"] for r in kept]),
        "prompt_format": "reset_core.sampling.base.build_messages (same as sampling)",
    }
    return _freeze(con, kept, manifest, "MTL", name or f"MTL references ({split})", None)


def _count(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
