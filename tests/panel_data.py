"""A small database two judge panels disagree on, with picks computed by hand.

Four open-ended examples (``e1``-``e4``), two candidates each (``e1a``, ``e1b``, …) from
one model ``m`` (``tiny``); judge ``J1`` scores every candidate, ``J2`` all but e4's, on
task and instruction alike. Saved panels ``only-j1`` and ``only-j2`` use one of them.
With w = 2 the picks are: J1 → e1a, e2a, e3a, e4a; J2 → e1a, e2b, e3a (nothing on e4);
both together (mean) → e1a, e2a (a tie at 0.5, broken by candidate id), e3a, e4a.
"""

from __future__ import annotations


def fill_two_panels(con) -> None:
    """Four instruction examples, two candidates each, judged by J1 everywhere and by J2
    on e1-e3 only, so a J1 panel and a J2 panel pick alike on e1 and e3, swap on e2,
    and only J1 can pick on e4."""
    from reset_core.scoring.panels import Panel, save_panel

    con.execute("INSERT INTO models (model_id, name, stage) VALUES ('m', 'tiny', 'base')")
    con.execute(
        "INSERT INTO examples (example_id, instruction, kind, source, split, content_hash) "
        "SELECT 'e' || i, 'Question ' || i, 'instruction', 'demo', 'seen', 'h' || i "
        "FROM range(1, 5) t(i)"
    )
    con.execute(
        "INSERT INTO candidates (candidate_id, example_id, model_id, setting_id, sample_index, "
        "seed, text, engine) SELECT 'e' || i || x, 'e' || i, 'm', 's', 0, 0, 'answer ' || x, 't' "
        "FROM range(1, 5) t(i), (VALUES ('a'), ('b')) v(x)"
    )
    # (candidate, J1 score, J2 score or None); each judge scores task and instruction alike
    scores = [
        ("e1a", 0.9, 0.9), ("e1b", 0.1, 0.1),  # both pick a
        ("e2a", 0.9, 0.1), ("e2b", 0.1, 0.9),  # J1 picks a, J2 picks b
        ("e3a", 0.8, 0.8), ("e3b", 0.2, 0.3),  # both pick a
        ("e4a", 0.5, None), ("e4b", 0.4, None),  # J2 never judged e4: only J1 picks
    ]  # fmt: skip
    rows = [
        (f"{c}:{j}:{a}", c, j, a, s)
        for c, s1, s2 in scores
        for j, s in (("J1", s1), ("J2", s2))
        if s is not None
        for a in ("task", "instruction")
    ]
    con.execute(
        "INSERT INTO judgments (judgment_id, candidate_id, judge_id, aspect, score, status) "
        "SELECT r[1], r[2], r[3], r[4], r[5]::DOUBLE, 'ok' FROM (SELECT unnest(?) AS r)",
        [[list(map(str, r)) for r in rows]],
    )
    # A reviewer's veto of e1's judge pick: a panel comparison is about the judges' picks.
    con.execute(
        "INSERT INTO overrides (event_id, example_id, candidate_id, action, reviewer) "
        "VALUES ('o1', 'e1', 'e1a', 'veto', 'alice')"
    )
    for name, judge in (("only-j1", "J1"), ("only-j2", "J2")):
        save_panel(con, Panel(name=name, judges={"task": [judge], "instruction": [judge]}))
