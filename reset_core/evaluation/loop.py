"""Where a user stands on the MTL → RESET path, and the lineage graph of their models.

The guided path, one round at a time: train MTL on references (round 1's policy),
sample with the round's policy, judge, score and save a selection, freeze a curated
set, continue training from the policy for one epoch, then evaluate the result beside
base and MTL. Later rounds start from the previous round's result (the policy is
:func:`reset_core.training.queries.round_policy`). :func:`loop_status` says which
steps are done, with a one-line detail and the page that does each, and the next
step; :func:`lineage_dot` draws base → MTL → round 1 → round 2 … with the curated
set each was trained on (Graphviz DOT; ``st.graphviz_chart`` renders it).

>>> from reset_core.store import connect
>>> status = loop_status(connect(":memory:"))
>>> status.round, status.next_step.key, status.next_step.page
(1, 'mtl', 'pages/train.py')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reset_core.store import one

#: The pages that do each step (``st.switch_page``/``st.page_link`` targets).
PAGES = {
    "mtl": "pages/train.py",
    "sample": "pages/sample.py",
    "judge": "pages/judge.py",
    "select": "pages/judge.py",
    "review": "pages/review.py",
    "curate": "pages/train.py",
    "train": "pages/train.py",
    "evaluate": "pages/evaluate.py",
}

_STAGED = "(lower(stage) IN ('mtl', 'reset') OR upper(stage) LIKE 'RESET%')"


@dataclass
class LoopStep:
    key: str  # mtl | sample | judge | select | curate | train | evaluate
    title: str
    done: bool
    detail: str  # one line: what is there, or what to do
    page: str  # the page that does it


@dataclass
class LoopStatus:
    round: int  # the RESET round the steps below belong to (1 = from MTL)
    policy_id: str | None  # the model this round samples and continues from
    policy_label: str | None
    steps: list[LoopStep] = field(default_factory=list)

    @property
    def next_step(self) -> LoopStep | None:
        """The first step not done yet (None when the round is complete)."""
        return next((s for s in self.steps if not s.done), None)


def _count(con, sql: str, params: list) -> int:
    return one(con, sql, params)[0]


def _evaluated(con, model_id: str) -> tuple[str, str] | None:
    """The newest finished evaluation comparing this model: (id, its checkpoint labels)."""
    row = one(
        con,
        "SELECT e.evaluation_id, (SELECT string_agg(c.label, ', ' ORDER BY c.position) "
        "FROM evaluation_checkpoints c WHERE c.evaluation_id = e.evaluation_id) "
        "FROM evaluations e JOIN evaluation_checkpoints k USING (evaluation_id) "
        "WHERE k.model_id = ? AND e.status = 'done' ORDER BY e.created_at DESC LIMIT 1",
        [model_id],
    )
    return (row[0], row[1]) if row else None


def _reset_round(con, model_id: str) -> int:
    """How many RESET models the lineage of ``model_id`` holds (itself included)."""
    from reset_core.training.queries import lineage

    return sum(
        1 for m in lineage(con, model_id) if (m.get("stage") or "").upper().startswith("RESET")
    )


def loop_status(con) -> LoopStatus:
    """The MTL → RESET path: each step of the current round, done or not, and the next.

    A round is shown until its result is evaluated: a RESET model that has no
    finished evaluation keeps its round open (the next step is to evaluate it); once
    evaluated, the next round starts from it.
    """
    from reset_core.training.queries import model_labels

    labels = model_labels(con)
    n_mtl = _count(con, "SELECT count(*) FROM models WHERE lower(stage) = 'mtl'", [])
    mtl_row = one(
        con,
        "SELECT model_id FROM models WHERE lower(stage) = 'mtl' "
        "ORDER BY created_at DESC, model_id DESC LIMIT 1",
    )
    newest = one(
        con,
        f"SELECT model_id, lower(stage), parent_id FROM models WHERE {_STAGED} "
        "ORDER BY created_at DESC, model_id DESC LIMIT 1",
    )
    mtl = LoopStep(
        "mtl",
        "Train MTL on references",
        bool(mtl_row),
        f"{labels.get(mtl_row[0], mtl_row[0])}"
        + (f" ({n_mtl} MTL models)" if n_mtl > 1 else "")
        + ": round 1's policy"
        if mtl_row
        else "train the base model on the seen examples' reference answers (Train page, "
        "MTL stage); it becomes round 1's policy",
        PAGES["mtl"],
    )
    # Which round is open: the newest RESET model's until it is evaluated, else the next.
    policy, trained = (newest[0], None) if newest else (None, None)
    if newest and newest[1] != "mtl" and newest[2] and not _evaluated(con, newest[0]):
        policy, trained = newest[2], newest[0]
    rnd = (_reset_round(con, policy) if policy else 0) + 1
    status = LoopStatus(rnd, policy, labels.get(policy, policy) if policy else None, [mtl])
    if policy is None:
        status.steps += [
            LoopStep(k, t, False, "after MTL: " + d, PAGES[k])
            for k, t, d in (
                ("sample", "Sample with the policy", "sample the seen examples with it"),
                ("judge", "Judge the candidates", "score them with a judge panel"),
                ("select", "Select the best", "save a RESET selection"),
                ("curate", "Freeze a curated set", "freeze the picks to train on"),
                ("train", "Train RESET", "continue from the policy for one epoch"),
                ("evaluate", "Evaluate", "compare base, MTL and RESET"),
            )
        ]
        return status
    name = status.policy_label
    n_cand = _count(
        con,
        "SELECT count(*) FROM candidates c JOIN examples e USING (example_id) "
        "WHERE c.model_id = ? AND e.split = 'seen'",
        [policy],
    )
    n_judged = _count(
        con,
        "SELECT count(DISTINCT c.candidate_id) FROM candidates c "
        "JOIN examples e USING (example_id) JOIN judgments j USING (candidate_id) "
        "WHERE c.model_id = ? AND e.split = 'seen' AND j.score IS NOT NULL",
        [policy],
    )
    sel = one(
        con,
        "SELECT s.selection_id, count(*) FILTER (WHERE ss.picked) FROM selections s "
        "JOIN selection_scores ss USING (selection_id) JOIN candidates c USING (candidate_id) "
        "WHERE c.model_id = ? GROUP BY s.selection_id, s.created_at "
        "ORDER BY s.created_at DESC LIMIT 1",
        [policy],
    )
    cur = one(
        con,
        "SELECT s.set_id, s.name, s.n_items FROM curated_sets s WHERE s.preset <> 'MTL' AND "
        "EXISTS (SELECT 1 FROM curated_items i JOIN candidates c USING (candidate_id) "
        "WHERE i.set_id = s.set_id AND c.model_id = ?) ORDER BY s.created_at DESC LIMIT 1",
        [policy],
    )
    if trained is None:
        row = one(
            con,
            f"SELECT model_id FROM models WHERE parent_id = ? AND {_STAGED} "
            "AND lower(stage) <> 'mtl' ORDER BY created_at DESC LIMIT 1",
            [policy],
        )
        trained = row[0] if row else None
    ev = _evaluated(con, trained) if trained else None
    status.steps += [
        LoopStep(
            "sample",
            "Sample with the policy",
            n_cand > 0,
            f"{n_cand} seen candidates from {name}"
            if n_cand
            else f"sample the seen examples with {name} (the round's policy)",
            PAGES["sample"],
        ),
        LoopStep(
            "judge",
            "Judge the candidates",
            n_cand > 0 and n_judged > 0,
            f"{n_judged} of {n_cand} candidates have verdicts"
            if n_judged
            else "score the candidates with a judge panel (offline judges need no API key)",
            PAGES["judge"],
        ),
        LoopStep(
            "select",
            "Select the best",
            sel is not None,
            f"selection {sel[0]}: {sel[1]} picks (reviewers can veto them on Review)"
            if sel
            else "save a RESET selection of this round's candidates",
            PAGES["select"],
        ),
        LoopStep(
            "curate",
            "Freeze a curated set",
            cur is not None,
            f"{cur[1]}: {cur[2]} items" if cur else "freeze the picks (after review) to train on",
            PAGES["curate"],
        ),
        LoopStep(
            "train",
            f"Train RESET round {rnd}",
            trained is not None,
            labels.get(trained, trained)
            if trained
            else f"continue from {name} for one epoch at a small learning rate",
            PAGES["train"],
        ),
        LoopStep(
            "evaluate",
            "Evaluate base, MTL and RESET",
            ev is not None,
            f"evaluation {ev[0]} compares {ev[1]}"
            if ev
            else "answer the test sets with base, MTL and this round's model, side by side",
            PAGES["evaluate"],
        ),
    ]
    return status


# --------------------------------------------------------------------------- lineage graph


def _quote(text: str) -> str:
    """A DOT string literal: backslashes and quotes escaped, newlines as DOT line breaks.

    >>> print(_quote('say "hi"\\\\now'))
    "say \\"hi\\"\\\\now"
    """
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def lineage_dot(con) -> str:
    """Graphviz DOT of every model and its parent, with the curated set it trained on.

    Models are boxes labelled with their display label (:func:`model_labels`),
    base models grey, MTL blue, RESET rounds green; an edge runs from a parent to
    the model trained from it, through the curated set (a note) when there is one.

    >>> from reset_core.store import connect
    >>> lineage_dot(connect(":memory:")).splitlines()[0]
    'digraph lineage {'
    """
    from reset_core.training.queries import model_labels

    labels = model_labels(con)
    rows = con.execute(
        "SELECT m.model_id, lower(coalesce(s.preset, m.stage)), m.parent_id, m.curated_set_id, "
        "s.name, s.n_items FROM models m LEFT JOIN curated_sets s ON s.set_id = m.curated_set_id "
        "ORDER BY m.created_at, m.model_id"
    ).fetchall()
    colours = {"base": "lightgrey", "mtl": "lightblue"}
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for model_id, stage, *_ in rows:
        colour = colours.get(
            stage or "", "palegreen" if (stage or "").startswith("reset") else "white"
        )
        lines.append(
            f"  {_quote(model_id)} [label={_quote(labels.get(model_id, model_id))}, "
            f"fillcolor={colour}];"
        )
    sets_drawn = set()
    for model_id, _, parent, set_id, set_name, n_items in rows:
        if not parent:
            continue
        if set_id:
            if set_id not in sets_drawn:
                sets_drawn.add(set_id)
                label = f"{set_name or set_id}\n{n_items} items"
                lines.append(
                    f"  {_quote(set_id)} [label={_quote(label)}, shape=note, "
                    "style=filled, fillcolor=lightyellow, fontsize=10];"
                )
            edge = f"  {_quote(parent)} -> {_quote(set_id)} [style=dashed, arrowhead=none];"
            if edge not in lines:  # one set can train several models from one parent
                lines.append(edge)
            lines.append(f"  {_quote(set_id)} -> {_quote(model_id)};")
        else:
            lines.append(f"  {_quote(parent)} -> {_quote(model_id)};")
    lines.append("}")
    return "\n".join(lines)
