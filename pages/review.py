"""Review: the queue of judge picks, one example's candidates side by side, and the actions.

A thin view: the queries live in ``reset_core.review.queue``, the event model in
``reset_core.review.events``. Every action is an append-only event recorded by a callback
(so it sees the state the reviewer was shown) and then the page re-renders from the
database. Model and dataset text is only ever shown escaped (never as HTML).
"""

from __future__ import annotations

import streamlit as st

import ui
from reset_core.analytics.summaries import ensure_fresh
from reset_core.judging.queries import injection_flags_for
from reset_core.review import events as rv
from reset_core.review import links as review_links
from reset_core.review.queue import (
    SORTS,
    QueueFilter,
    example_view,
    filter_options,
    queue_counts,
    queue_is_fresh,
    queue_page,
    queue_position,
    refresh_queue,
    selections,
)
from reset_core.review.text import escape_markdown, highlight_markdown, unsupported_spans
from reset_core.sampling.queries import setting_labels
from reset_core.training.queries import model_labels

PAGE_SIZE = 25
ANY = "any"

st.title("Review")
con = ui.cursor()
reviewer = ui.reviewer()
can_act = reviewer != "anonymous"

# ----------------------------------------------------------------------------- helpers


def flash(kind: str, text: str) -> None:
    """A message shown once at the top of the next render (callbacks run before it)."""
    st.session_state.setdefault("rv_flash", []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop("rv_flash", []):
        getattr(st, kind)(text)


def md(text: str | None) -> None:
    """Model or dataset text as inert Markdown (every special character escaped)."""
    st.markdown(escape_markdown(text or "") or "*(empty)*")


def who(e: rv.Event, events=(), names=None) -> str:
    """ "alice vetoed candidate (…) of ex at 2026-01-01 12:00:00 UTC": who, what, when."""
    return f"{e.reviewer} {rv.describe_event(e, events, names)} at {e.created_at:%Y-%m-%d %H:%M:%S} UTC"


def act(
    example_id: str,
    action: str,
    candidate_id: str | None = None,
    value=None,
    value_key=None,
) -> None:
    """Button callback: record one event; report concurrent changes by others.

    ``value_key``: build the value from widget state at click time (note, ranking; for
    scores a dict aspect -> widget key, one event per aspect that changed).
    """
    reason_key = f"rv_reason_{example_id}"
    if value_key and action == "note":
        value = {"text": st.session_state.get(value_key, "")}
    elif value_key and action == "rank":
        value = {"ranking": list(st.session_state.get(value_key, []))}
    elif action == "score" and isinstance(value_key, dict):
        current = (value or {}).get("current", {})
        changed = {
            a: st.session_state.get(k)
            for a, k in value_key.items()
            if st.session_state.get(k) is not None and st.session_state.get(k) != current.get(a)
        }
        if not changed:
            flash("info", "No score changed.")
            return
        for i, (aspect, score) in enumerate(changed.items()):
            act(example_id, "score", candidate_id, {"aspect": aspect, "score": score})
            if i == 0:  # later events of this click are not "someone else's"
                st.session_state.get("rv_seen", {}).pop(example_id, None)
        return
    seen = st.session_state.get("rv_seen", {}).get(example_id, rv.UNCHECKED)
    try:
        if action == "undo":
            r = rv.undo(
                ui.cursor(),
                example_id,
                ui.reviewer(),
                event_id=(value or {}).get("event_id"),
                reason=st.session_state.get(reason_key),
                seen=seen,
                selection_id=st.session_state.get("rv_selection"),
            )
        else:
            r = rv.record(
                ui.cursor(),
                example_id,
                action,
                ui.reviewer(),
                candidate_id=candidate_id,
                value=value,
                reason=st.session_state.get(reason_key),
                seen=seen,
                selection_id=st.session_state.get("rv_selection"),
            )
    except rv.ReviewError as e:
        flash("error", f"Not recorded: {e}")
        return
    cur = ui.cursor()
    names = rv.candidate_names(cur, example_id)
    events = rv.history(cur, example_id)
    if r.concurrent:
        flash(
            "warning",
            "Changed by someone else since you opened this example: "
            + "; ".join(who(e, events, names) for e in r.concurrent)
            + ". Your action was recorded after theirs; below is the latest state.",
        )
    st.session_state[reason_key] = ""
    if action == "note":
        st.session_state[value_key] = ""
    pick = names.get(r.state.pick, r.state.pick) if r.state.pick else "none"
    flash(
        "success", f"Recorded: {rv.describe_event(r.event, events, names)}. Current pick: {pick}."
    )


def open_example(example_id: str | None, pos: int | None = None) -> None:
    if example_id:
        st.query_params["example"] = example_id
    else:
        st.query_params.pop("example", None)
    st.session_state["rv_pos"] = pos


def persisted(key: str, default):
    """Widget state that survives the queue being hidden while an example is open."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get("_keep_" + key, default)
    return key


def keep(*keys: str) -> None:
    for key in keys:
        st.session_state["_keep_" + key] = st.session_state[key]


def current_filter() -> QueueFilter:
    f = st.session_state.get("_keep_rv_filter")
    return (QueueFilter(**f) if f else QueueFilter()).model_copy(update={"link": current_link()})


def link_params() -> dict[str, str]:
    return {k: st.query_params[k] for k in review_links.KEYS if k in st.query_params}


def current_link() -> dict | None:
    """The analytics link in the URL (None if none, or if it does not parse)."""
    try:
        return review_links.parse(link_params())
    except ValueError:
        return None


def clear_link() -> None:
    """Drop the analytics link: the queue and the example view show everything again."""
    for key in review_links.KEYS:
        st.query_params.pop(key, None)


def go_next(example_id: str | None, step: int) -> None:
    """Callback for Previous/Next: move through the queue in its current order."""
    pos = st.session_state.get("rv_pos")
    f = current_filter()
    if pos is None and example_id:  # opened by id or "next unreviewed": find its place
        pos = queue_position(ui.cursor(), st.session_state["rv_selection"], f, example_id)
    if pos is None or pos + step < 0:
        f = f.model_copy(update={"reviewed": False})
        rows = queue_page(ui.cursor(), st.session_state["rv_selection"], f, 0, 2)
        ids = [i for i in rows["example_id"] if i != example_id]
        open_example(ids[0] if ids else None, None)
        if not ids:
            flash("info", "Nothing left to review in this filter.")
        return
    rows = queue_page(ui.cursor(), st.session_state["rv_selection"], f, pos + step, 1)
    if rows.empty:
        flash("info", "End of the queue.")
        return
    open_example(rows["example_id"][0], pos + step)


def next_unreviewed(exclude: str | None = None) -> None:
    f = current_filter().model_copy(update={"reviewed": False})
    rows = queue_page(ui.cursor(), st.session_state["rv_selection"], f, 0, 2)
    ids = [i for i in rows["example_id"] if i != exclude]
    if ids:
        open_example(ids[0], None)
    else:
        flash("info", "Nothing left to review in this filter.")


# ----------------------------------------------------------------------------- selection

sels = selections(con)
# A link to an example's candidates (e.g. the Evaluate page's before/after browser) opens
# without a selection too: its answers and verdicts are worth reading, read-only.
linked_example = st.query_params.get("example") if current_link() else None
selection_id = None
if sels:
    labels = {s[0]: f"{s[0]} · {s[1]} · {s[2][:19]}" for s in sels}
    if st.session_state.get("rv_selection") not in labels:
        st.session_state["rv_selection"] = sels[0][0]
    selection_id = st.selectbox(
        "Selection",
        list(labels),
        format_func=labels.get,
        key="rv_selection",
        help="Whose picks you review: newest first. Overrides apply to every selection.",
    )
    if not queue_is_fresh(con, selection_id):
        with st.spinner("Indexing this selection for review (once per new judging or scoring)…"):
            refresh_queue(con, selection_id)
elif not linked_example:
    st.info(
        "No selection yet. Judge and score candidates first; their picks appear here for review."
    )
    st.stop()

if not can_act:
    st.warning("Enter your name as **Reviewer** in the sidebar: every action records who took it.")
show_flash()

example_id = st.query_params.get("example")

# ----------------------------------------------------------------------------- analytics link
# The Agreement heatmap and the Trade-off chart open their candidates here through
# query parameters (contract: reset_core.review.links); they narrow the queue to the
# examples holding those candidates and the example view to the candidates themselves.
try:
    link = review_links.parse(link_params())
except ValueError as e:
    link = None
    st.error(f"Ignoring the link from the analytics pages: {e}")
    st.button("Clear link", key="rv_clear_link", on_click=clear_link)
if link:
    with st.spinner("Updating the analytics summaries…"):
        ensure_fresh(con)
    link_text = review_links.describe(
        link, review_links.counts(con, link), {**setting_labels(con), **model_labels(con)}
    )
    with st.container(border=True, key="rv_link"):
        l1, l2 = st.columns([5, 1], vertical_alignment="center")
        l1.markdown(f"**Filtered:** {escape_markdown(link_text)}.")
        l2.button("Clear filter", key="rv_clear_link", on_click=clear_link)

# ----------------------------------------------------------------------------- queue


def render_queue() -> None:
    """The queue: filters, where the reviewing stands, and one page of examples."""
    f = queue_filter(filter_options(con, selection_id))
    n = queue_counts(con, selection_id, f)
    queue_summary(n)
    queue_table(f, n["matching"])


def queue_filter(opts: dict) -> QueueFilter:
    """The filter and sort widgets (kept while an example is open) as a QueueFilter."""
    c1, c2, c3, c4 = st.columns(4)
    c1.multiselect("Kind", opts["kind"], key=persisted("rv_kinds", []))
    c2.multiselect("Source", opts["source"], key=persisted("rv_sources", []))
    c3.multiselect("Split", opts["split"], key=persisted("rv_splits", []))
    c4.multiselect(
        "Decoding setting",
        opts["settings"],
        key=persisted("rv_settings", []),
        format_func=lambda s: opts["setting_labels"].get(s, s),
        help="Examples with at least one candidate under any of these settings.",
    )
    c1, c2, c3, c4 = st.columns(4)
    lo, hi = opts["score_range"]
    score_range = None
    if lo is not None and hi is not None and hi > lo:
        score_range = c1.slider(
            "Pick RESET score",
            float(lo),
            float(hi),
            key=persisted("rv_score", (float(lo), float(hi))),
            help="RESET score of the judge pick; examples without a rankable pick drop "
            "out once you narrow the range.",
        )
    c2.slider(
        "Judge disagreement at least",
        0.0,
        1.0,
        step=0.05,
        key=persisted("rv_disagree", 0.0),
        help="Largest difference between two judges on one candidate and aspect (0: no filter).",
    )
    c3.selectbox("Overridden", [ANY, "yes", "no"], key=persisted("rv_overridden", ANY))
    c4.selectbox("Reviewed", [ANY, "yes", "no"], key=persisted("rv_reviewed", ANY))
    c1, c2 = st.columns([3, 1])
    c1.text_input("Search instruction, context or reference", key=persisted("rv_search", ""))
    c2.selectbox("Sort", list(SORTS), key=persisted("rv_sort", "example id"))
    keep(
        "rv_kinds",
        "rv_sources",
        "rv_splits",
        "rv_settings",
        "rv_disagree",
        "rv_overridden",
        "rv_reviewed",
        "rv_search",
        "rv_sort",
        *(["rv_score"] if score_range else []),
    )
    tri = {ANY: None, "yes": True, "no": False}
    narrowed = score_range and (score_range[0] > lo or score_range[1] < hi)
    f = QueueFilter(
        kinds=st.session_state.rv_kinds,
        sources=st.session_state.rv_sources,
        splits=st.session_state.rv_splits,
        settings=st.session_state.rv_settings,
        score_min=score_range[0] if narrowed else None,
        score_max=score_range[1] if narrowed else None,
        min_disagreement=st.session_state.rv_disagree,
        overridden=tri[st.session_state.rv_overridden],
        reviewed=tri[st.session_state.rv_reviewed],
        search=st.session_state.rv_search,
        sort=st.session_state.rv_sort,
        link=link,
    )
    st.session_state["_keep_rv_filter"] = f.model_dump()
    return f


def queue_summary(n: dict[str, int]) -> None:
    """Matching / left / reviewed counts, "Review next unreviewed" and open-by-id."""
    m1, m2, m3 = st.columns(3)
    m1.metric("Matching examples", f"{n['matching']:,}")
    m2.metric("Left to review", f"{n['left']:,}", help="Matching examples nobody decided on yet.")
    m3.metric(
        "Reviewed in this selection",
        f"{n['reviewed_total']:,} / {n['total']:,}",
        help="Examples with at least one live decision (accept, veto, force, exclude, rank, score).",
    )
    b1, b2, b3 = st.columns([1, 2, 1])
    b1.button(
        "Review next unreviewed",
        key="rv_next_unreviewed",
        shortcut="N",
        on_click=next_unreviewed,
        type="primary",
        disabled=n["left"] == 0,
    )
    goto = b2.text_input(
        "Open example by id", key="rv_goto", label_visibility="collapsed", placeholder="example id"
    )
    if b3.button("Open", key="rv_open") and goto.strip():
        open_example(goto.strip())
        st.rerun()


def queue_table(f: QueueFilter, n_matching: int) -> None:
    """One page of the matching examples; selecting a row opens that example."""
    n_pages = max(1, -(-n_matching // PAGE_SIZE))
    page = int(st.number_input(f"Page (of {n_pages:,})", 1, n_pages, 1, key="rv_page")) - 1
    df = queue_page(con, selection_id, f, page, PAGE_SIZE)
    event = st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="rv_table",
        column_config={
            "example_id": st.column_config.TextColumn("example", width="medium"),
            "setting": st.column_config.TextColumn(
                "pick setting",
                width="medium",
                help="Decoding setting of the current pick (reviewers' overrides applied).",
            ),
            "reviewed": st.column_config.CheckboxColumn("reviewed", width="small"),
            "overridden": st.column_config.CheckboxColumn(
                "overridden",
                width="small",
                help="A veto, forced pick, exclusion, ranking or manual score is in force.",
            ),
            "pick_score": st.column_config.NumberColumn("pick score", format="%.3f"),
            "disagreement": st.column_config.NumberColumn(format="%.2f"),
            "instruction": st.column_config.TextColumn(
                "instruction",
                width="large",
                help="First 160 characters; open the row to read it all.",
            ),
        },
    )
    rows = event.selection.rows if event and event.selection else []
    if rows:
        open_example(df["example_id"][rows[0]], page * PAGE_SIZE + rows[0])
        st.rerun()


# ----------------------------------------------------------------------------- example


def judgments_list(judgments: list[dict]) -> str:
    """Every judge's verdict as an escaped Markdown list (narrow enough for side by side)."""
    if not judgments:
        return "*No judgments.*"

    def esc(x) -> str:
        return escape_markdown(" ".join(str(x).split())) if x else ""

    lines = []
    for j in judgments:
        score = (
            f"**{j['score']:.3f}**"
            if j["score"] is not None
            else f"**failed** ({esc(j['status'])})"
        )
        why = esc(j["rationale"] or j["error"])
        lines.append(
            f"- {esc(j['aspect'])} {score} · {esc(j.get('judge') or j['judge_id'])}"
            + (f" — {why}" if why else "")
        )
    return "\n".join(lines)


def render_candidate(
    ex: dict,
    c: dict,
    i: int,
    aspects: tuple[str, str],
    linked: dict[str, float | None],
    read_only: bool = False,
) -> None:
    """One candidate card: header, text, verdicts, then its buttons (none if read-only)."""
    candidate_header(c, i, linked)
    candidate_text(ex, c, i)
    candidate_verdicts(c, read_only)
    if not read_only:
        candidate_actions(ex["example_id"], c, i, aspects)


def candidate_header(c: dict, i: int, linked: dict[str, float | None]) -> None:
    """Number, id and state badges (linked, pick, forced, vetoed, rank), then how it was made."""
    cid = c["candidate_id"]
    badges = []
    if cid in linked:
        gap = linked[cid]
        badges.append(":orange-badge[linked" + ("" if gap is None else f" · gap {gap:.2f}") + "]")
    if c["is_pick"]:
        badges.append(":green-badge[current pick]")
    if c["picked"]:
        badges.append(":blue-badge[judge pick]")
    if c["forced"]:
        badges.append(":violet-badge[forced]")
    if c["vetoed"]:
        badges.append(":red-badge[vetoed]")
    if c["manual_rank"]:
        badges.append(f":orange-badge[your rank {c['manual_rank']}]")
    why = ""
    if c.get("injection"):  # set by candidate_cards from the stored detector flags
        badges.append(":red-badge[aimed at the judge]")
        why = " · prompt injection: " + ", ".join(c["injection"]["rules"])
    st.markdown(
        f"**{i + 1}. {escape_markdown(c['name'])}** " + " ".join(badges),
        help=f"candidate {cid} · setting {c['setting_id']}{why}",
    )
    st.caption(
        f"max_tokens {c['max_tokens'] if c['max_tokens'] is not None else '?'} · "
        f"seed {c['seed']} · {c['completion_tokens'] or 0} tokens · "
        f"{escape_markdown(c['model'])}"
    )


def candidate_text(ex: dict, c: dict, i: int) -> None:
    """The answer, escaped; for a context example, words the context never uses highlighted."""
    with st.container(border=True, key=f"rv_text_{i}"):
        if ex["kind"] == "context" and ex["context"]:
            st.markdown(
                highlight_markdown(c["text"], unsupported_spans(c["text"], ex["context"]))
                or "*(empty)*"
            )
        else:
            md(c["text"])


def candidate_verdicts(c: dict, read_only: bool = False) -> None:
    """Its RESET score and rank, every judge's verdict, and the reviewer's own scores."""
    if not read_only:  # read-only: no selection scores it, so it has no RESET score
        score = "not rankable" if c["score"] is None else f"{c['score']:.3f} (rank {c['rank']})"
        st.markdown(f"**RESET score** {score}")
    st.markdown(judgments_list(c["judgments"]))
    if c["manual_scores"]:
        st.caption(
            "Your scores: " + ", ".join(f"{a} {s:.2f}" for a, s in c["manual_scores"].items())
        )


def candidate_actions(ex_id: str, c: dict, i: int, aspects: tuple[str, str]) -> None:
    """Force, Veto / Un-veto, and the Scores popover for this candidate."""
    cid = c["candidate_id"]
    b1, b2, b3 = st.columns(3)
    b1.button(
        "Force",
        key=f"rv_force_{i}",
        on_click=act,
        args=(ex_id, "force", cid),
        disabled=not can_act or c["forced"],
        shortcut=str(i + 1) if i < 9 else None,
        help="Make this candidate the pick.",
    )
    if c["vetoed"]:
        b2.button(
            "Un-veto",
            key=f"rv_unveto_{i}",
            on_click=act,
            args=(ex_id, "unveto", cid),
            disabled=not can_act,
        )
    else:
        b2.button(
            "Veto",
            key=f"rv_veto_{i}",
            on_click=act,
            args=(ex_id, "veto", cid),
            disabled=not can_act,
        )
    with b3.popover("Scores", disabled=not can_act):
        for a in aspects:
            st.number_input(
                a,
                0.0,
                1.0,
                value=c["manual_scores"].get(a),
                step=0.05,
                key=f"rv_score_{ex_id}_{i}_{a}",
                help="Your score in [0, 1]; leave empty to keep the judges'.",
            )
        st.button(
            "Save scores",
            key=f"rv_save_scores_{i}",
            on_click=act,
            args=(ex_id, "score", cid, {"current": c["manual_scores"]}),
            kwargs={"value_key": {a: f"rv_score_{ex_id}_{i}_{a}" for a in aspects}},
        )


def render_example(example_id: str) -> None:
    """One example: navigation, its prompt and state, actions, the candidates, history.

    Read-only when the selection does not score the example (no selection yet, or a
    test-split example linked from Evaluate): an override changes a selection's pick.
    """
    view = example_view(con, example_id, selection_id)
    if view is None:
        st.error(f"No example {example_id!r}.")
        if selection_id:
            st.button("← Queue", key="rv_back", on_click=open_example, args=(None,))
        return
    ex, state = view.example, view.state
    names = {c["candidate_id"]: c["name"] for c in view.candidates}
    events = rv.history(con, example_id)
    read_only = not view.in_selection
    if selection_id:  # the queue and its order exist only within a selection
        example_nav(example_id)
    example_header(ex, state, names, events, read_only)
    if read_only:
        st.info(
            (
                "No selection yet, so nothing here can be overridden"
                if selection_id is None
                else f"Selection {selection_id} does not score this example"
                + (" (test-split answers are never in one)" if ex["split"] != "seen" else "")
            )
            + ": read-only. Vetoes, forced picks, rankings and manual scores change a "
            "selection's pick; shown are the answers and every judge's verdict.",
            icon=":material/visibility:",
        )
    example_prompt(ex)
    if not read_only:
        example_actions(example_id, state, names, events)
    candidate_cards(ex, view.candidates, read_only)
    if not read_only:
        ranking_and_note(example_id, view.candidates, state)
    example_history(events, names)
    # What this reviewer was shown: the next action reports anything newer.
    st.session_state.setdefault("rv_seen", {})[example_id] = state.version


def example_nav(example_id: str) -> None:
    """Back to the queue, Previous, Next, Next unreviewed (with keyboard shortcuts)."""
    n1, n2, n3, n4 = st.columns([1, 1, 1, 1.3])
    n1.button("← Queue", key="rv_back", on_click=open_example, args=(None,), shortcut="B")
    n2.button("Previous", key="rv_prev", on_click=go_next, args=(example_id, -1), shortcut="K")
    n3.button("Next", key="rv_next", on_click=go_next, args=(example_id, 1), shortcut="J")
    n4.button(
        "Next unreviewed",
        key="rv_next_unrev",
        on_click=next_unreviewed,
        args=(example_id,),
        shortcut="N",
    )


def example_header(ex: dict, state, names: dict, events: list, read_only: bool = False) -> None:
    """The example's id and kind, its current pick (and where it comes from), last change.

    Read-only (no selection scores it): no pick to speak of, only the last change if any.
    """
    st.subheader(f"Example {ex['example_id']}")
    st.caption(
        f"{ex['kind']} · {ex['source']} · {ex['split']} · "
        + (f"selection {selection_id}" if selection_id else "no selection yet")
    )
    pick = names.get(state.pick, state.pick) if state.pick else "none"
    judge_pick = names.get(state.judge_pick, state.judge_pick) if state.judge_pick else "none"
    parts = []
    if not read_only:
        src = state.pick_source or "not in selection"
        parts.append(f"**Current pick:** {escape_markdown(pick)} ({src})")
        parts.append(f"judge pick: {escape_markdown(judge_pick)}")
    if state.excluded:
        parts.append(":red-badge[excluded from curation]")
    if state.last_event:
        parts.append(f"last change: {escape_markdown(who(state.last_event, events, names))}")
    if parts:
        st.markdown(" · ".join(parts))


def example_prompt(ex: dict) -> None:
    """Instruction, context and reference answer, escaped."""
    st.markdown("**Instruction**")
    with st.container(border=True, key="rv_instruction"):
        md(ex["instruction"])
    if ex["context"]:
        with st.expander("Context", expanded=True):
            md(ex["context"])
    if ex["reference"]:
        with st.expander("Reference answer", expanded=False):
            md(ex["reference"])


def example_actions(example_id: str, state, names: dict, events: list) -> None:
    """Example-level actions: reason, Accept, Veto pick, Exclude/Include, Undo."""
    # The common ones carry keyboard shortcuts.
    st.text_input(
        "Reason (optional, saved with your next action)",
        key=f"rv_reason_{example_id}",
        disabled=not can_act,
    )
    a1, a2, a3, a4 = st.columns(4)
    a1.button(
        "Accept pick",
        key="rv_accept",
        on_click=act,
        args=(example_id, "accept"),
        shortcut="A",
        type="primary",
        disabled=not can_act,
        help="The current pick is right (marks the example reviewed).",
    )
    a2.button(
        "Veto pick",
        key="rv_veto_pick",
        on_click=act,
        args=(example_id, "veto", state.pick),
        shortcut="V",
        disabled=not can_act or state.pick is None,
        help="The next best candidate that is not vetoed becomes the pick, or none.",
    )
    a3.button(
        "Include again" if state.excluded else "Exclude example",
        key="rv_exclude",
        on_click=act,
        args=(example_id, "include" if state.excluded else "exclude"),
        shortcut="X",
        disabled=not can_act,
        help="Excluded examples leave curation and exports.",
    )
    undo_label, undo_help = "Undo", "Nothing to undo on this example."
    if state.undoable:
        undo_label = f"Undo the {rv.event_noun(state.undoable)}"
        undo_help = f"Undo: {who(state.undoable, events, names)}."
    a4.button(
        undo_label,
        key="rv_undo",
        on_click=act,
        args=(
            example_id,
            "undo",
            None,
            {"event_id": state.undoable.event_id} if state.undoable else None,
        ),
        shortcut="U",
        disabled=not can_act or state.undoable is None,
        help=undo_help,
    )


def candidate_cards(ex: dict, cands: list[dict], read_only: bool = False) -> None:
    """The candidates as cards, side by side (3 a row) or stacked (without buttons if read-only)."""
    st.segmented_control(
        "Layout", ["side by side", "stacked"], key=persisted("rv_layout", "side by side")
    )
    keep("rv_layout")
    aspects = ("task", "instruction" if ex["kind"] == "instruction" else "faithfulness")
    shown, linked = linked_candidates(ex["example_id"], cands)
    flags = injection_flags_for(con, [c["candidate_id"] for c in cands])
    for c in cands:
        c["injection"] = flags.get(c["candidate_id"])
    if flags:
        st.warning(
            f"{len(flags)} candidate(s) here carry text aimed at the judge (badge "
            "*aimed at the judge*): the judge saw it as data, but check their scores.",
            icon=":material/gpp_maybe:",
        )
    if ex["kind"] == "context":
        st.caption("Highlighted: content words of the answer that the context never uses.")
    if not cands:
        st.info("No candidates for this example yet.")
    elif st.session_state.get("rv_layout") == "stacked":
        for i, c in shown:
            with st.container(border=True, key=f"rv_cand_{i}"):
                render_candidate(ex, c, i, aspects, linked, read_only)
    else:
        per_row = min(len(shown), 3)
        for start in range(0, len(shown), per_row):
            cols = st.columns(per_row)
            for col, (i, c) in zip(cols, shown[start : start + per_row], strict=False):
                with col.container(border=True, key=f"rv_cand_{i}"):
                    render_candidate(ex, c, i, aspects, linked, read_only)


def linked_candidates(
    example_id: str, cands: list[dict]
) -> tuple[list[tuple[int, dict]], dict[str, float | None]]:
    """Which candidates to show, numbered as in the full list, and the analytics-linked ones.

    With an analytics link, only the linked candidates (unless "Show all" is on).
    """
    linked = {}
    if link:
        linked = dict(review_links.linked_in(con, link, [example_id]).get(example_id, []))
    shown = list(enumerate(cands))
    if linked:
        show_all = st.toggle(
            f"Show all {len(cands)} candidates (the filter links {len(linked)})",
            key="rv_show_all",
        )
        if not show_all:
            shown = [(i, c) for i, c in shown if c["candidate_id"] in linked]
    elif link:
        st.caption("None of this example's candidates is in the filter: showing them all.")
    return shown, linked


def ranking_and_note(example_id: str, cands: list[dict], state) -> None:
    """The reviewer's own ranking of the candidates, and a free-text note."""
    ids = [c["candidate_id"] for c in cands]
    names = {c["candidate_id"]: c["name"] for c in cands}
    rank_key = f"rv_rank_{example_id}"
    if rank_key not in st.session_state:
        st.session_state[rank_key] = [c for c in state.ranking if c in ids]
    # A form: picking candidates one by one should not rerun the page after each pick.
    with st.form(f"rv_rank_form_{example_id}", border=False):
        r1, r2 = st.columns([4, 1], vertical_alignment="bottom")
        r1.multiselect(
            "Your ranking, best first (pick candidates in order)",
            ids,
            key=rank_key,
            format_func=lambda c: f"{ids.index(c) + 1}. {names[c]}",
            disabled=not can_act,
        )
        r2.form_submit_button(
            "Save ranking",
            key="rv_save_rank",
            on_click=act,
            args=(example_id, "rank"),
            kwargs={"value_key": rank_key},
            disabled=not can_act,
        )
    note_key = f"rv_note_{example_id}"
    st.text_area("Note", key=note_key, height=68, disabled=not can_act)
    st.button(
        "Add note",
        key="rv_add_note",
        on_click=act,
        args=(example_id, "note"),
        kwargs={"value_key": note_key},
        disabled=not can_act,
    )


def example_history(events: list, names: dict) -> None:
    """Every review event on this example, newest first, each as what it did; undone ones marked."""
    by_id = {e.event_id: e for e in events}
    n = len(events)
    with st.expander(f"History ({n} event{'' if n == 1 else 's'})", expanded=False):
        if not events:
            st.caption("No review events yet.")
            return
        lines = ["| time (UTC) | who | what | reason | undone |", "|---|---|---|---|---|"]
        for e in reversed(events):
            undone = by_id.get(e.undone_by)
            cells = [
                f"{e.created_at:%Y-%m-%d %H:%M:%S}",
                e.reviewer,
                rv.describe_event(e, events, names),
                e.reason or "",
                f"by {undone.reviewer} at {undone.created_at:%H:%M:%S}" if undone else "",
            ]
            lines.append(
                "| " + " | ".join(escape_markdown(" ".join(x.split())) for x in cells) + " |"
            )
        st.markdown("\n".join(lines))


if example_id:
    render_example(example_id)
else:
    render_queue()
