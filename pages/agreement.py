"""Agreement: do the judges agree with each other, with humans, and do humans agree?"""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from reset_core.analytics import agreement as ag
from reset_core.analytics.summaries import ensure_fresh, missing_note
from reset_core.aspects import ASPECTS
from reset_core.judging.queries import judge_labels
from reset_core.options import help_text
from reset_core.review import links as review_links
from reset_core.scoring.config import SelectionConfig
from reset_core.scoring.panels import list_panels

st.title("Agreement")
con = ui.cursor()
with st.spinner("Updating the analytics summaries…"):
    summary = ensure_fresh(con)
st.caption(
    f"Summaries of {summary['n_candidates']:,} candidates, refreshed {summary['refreshed_at']:%Y-%m-%d %H:%M}."
)

_labels = judge_labels(con)


def label(judge_id: str) -> str:
    """A judge's on-screen name: placeholders (the stand-in server's) are marked."""
    return _labels.get(judge_id, judge_id)


c1, c2, c3 = st.columns(3)
aspect = c1.selectbox("Aspect", ASPECTS, key="ag_aspect")
report = ag.judge_agreement(con, aspect)
human = ag.judge_vs_human(con, aspect)
st.caption(missing_note(report.missing))
two_judges = len(report.judges) >= 2
# The heatmap needs two raters (judges, or a judge and the reviewers' scores): its
# controls appear only with it.
heatmap = len(report.judges) + (1 if human else 0) >= 2
for note in report.notes:
    if two_judges:  # with fewer judges, the empty state below says it once
        st.info(note)
if not two_judges:
    with st.container(border=True, key="ag_empty"):
        head = report.notes[0] if report.notes else "Judge-vs-judge agreement needs two judges."
        st.info(
            f"{head} Run a second judge on the Judge page (an LLM judge beside the offline "
            f"metric judges, or another model), then judge the same candidates again."
            + ("" if heatmap else " Manual scores in Review are compared with the judges here too.")
        )
        st.page_link("pages/judge.py", label="Open the Judge page", icon=":material/gavel:")


def open_in_review(a: str, b: str, gap: float) -> None:
    st.switch_page(
        "pages/review.py", query_params=review_links.disagreement_query(a, b, aspect, gap)
    )


gap = 0.25
if heatmap:
    stat = c2.selectbox(
        "Heatmap statistic", ag.PAIR_STATS, format_func=ag.STAT_LABELS.get, index=1, key="ag_stat"
    )
    gap = c3.slider(
        "Disagreement gap to review",
        0.05,
        1.0,
        0.25,
        0.05,
        key="ag_gap",
        help="A heatmap cell opens the candidates whose two scores differ by at least this much.",
    )
    raters, cells = ag.agreement_matrix(report, stat, human)
    xs, ys, zs, texts, ids = [], [], [], [], []
    for i, a in enumerate(raters):
        for j, b in enumerate(raters):
            s = cells[i][j]
            if i == j or s is None:
                continue
            xs.append(label(b))
            ys.append(label(a))
            ids.append((a, b))
            zs.append(s.value if s.value is not None else float("nan"))
            texts.append(s.label())
    fig = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+text",
            text=[f"{z:.2f}" if z == z else "n/a" for z in zs],
            hovertext=texts,
            hoverinfo="text",
            customdata=ids,
            marker={
                "symbol": "square",
                "size": max(40, 300 // len(raters)),
                "color": zs,
                "cmin": -1,
                "cmax": 1,
                "colorscale": "RdYlGn",
                "colorbar": {"title": stat},
            },
        )
    )
    fig.update_layout(
        title=f"{ag.STAT_LABELS[stat]} — {aspect} (click a cell to review disagreements)",
        xaxis={"type": "category"},
        yaxis={"type": "category"},
        height=200 + 90 * len(raters),
    )
    event = st.plotly_chart(
        fig, on_select="rerun", selection_mode="points", key="ag_heatmap", width="stretch"
    )
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        a, b = points[0]["customdata"]
        open_in_review(a, b, gap)

# ----------------------------------------------------------------------------- tables
if two_judges:
    st.subheader("Judge vs judge")
    rows = [
        {
            "judge A": label(a),
            "judge B": label(b),
            **{ag.STAT_LABELS[k]: v.label() for k, v in s.items()},
        }
        for (a, b), s in report.pairs.items()
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    pair_labels = [f"{label(a)} vs {label(b)}" for a, b in report.pairs]
    choice = st.selectbox("Pair", pair_labels, key="ag_pair")
    if st.button("Open disagreements in Review", key="ag_open"):
        open_in_review(*list(report.pairs)[pair_labels.index(choice)], gap)
    m1, m2 = st.columns(2)
    for col, (name, s) in zip((m1, m2), report.alpha.items(), strict=True):
        col.metric(ag.STAT_LABELS[name], "n/a" if s.value is None else f"{s.value:.3f}")
        col.caption(s.label())

st.subheader("Judges and reviewers")
hh = ag.human_vs_human(con, aspect)
if not hh["reviewers"]:
    st.info(
        f"No manual {aspect} scores yet: score candidates in Review (a candidate's Scores "
        "button) to compare the judges with people, and people with each other."
    )
else:
    st.markdown("**Judge vs human**")
    rows = [
        {"judge": label(j), **{ag.STAT_LABELS[k]: v.label() for k, v in s.items()}}
        for j, s in human.items()
    ]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption(f"No judge has a valid {aspect} score on the candidates people scored.")
    st.markdown("**Human vs human**")
    if hh["note"]:
        st.caption(hh["note"])
    else:
        rows = [
            {
                "reviewer A": a,
                "reviewer B": b,
                **{ag.STAT_LABELS[k]: v.label() for k, v in s.items()},
            }
            for (a, b), s in hh["pairs"].items()
        ]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        st.caption(" · ".join(f"{ag.STAT_LABELS[k]}: {v.label()}" for k, v in hh["alpha"].items()))

picks = ag.judge_vs_human_picks(con)
rows = [
    {"judge": label(j), "aspect": a, "sides with vetoes/forced picks": s.label()}
    for (j, a), s in picks.items()
    if a == aspect
]
st.markdown("**Judges against vetoes and forced picks**")
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True)
else:
    st.caption("No vetoes or forced picks on judged candidates yet: veto or force picks in Review.")

# ----------------------------------------------------------------------------- panels
st.subheader("Panel against panel")
st.caption(
    "Which candidate would each panel pick? Both rank the same candidates (the round's "
    "policy on the seen split) with the RESET preset and w below; human overrides are "
    "left out, so this compares the judges' picks only."
)
panels = {p.name: p for p in list_panels(con)}
c1, c2, c3 = st.columns(3)
name_a = c1.selectbox("Panel A", list(panels), key="cmp_panel_a")
name_b = c2.selectbox("Panel B", list(panels), index=min(1, len(panels) - 1), key="cmp_panel_b")
cmp_w = c3.slider(
    "w", 0.0, 5.0, 2.0, 0.1, key="cmp_weight", help=help_text(SelectionConfig, "weight")
)
for col, name in ((c1, name_a), (c2, name_b)):
    p = panels[name]
    judges = "; ".join(
        f"{a}: {', '.join(p.judges[a]) if a in p.judges else 'every judge with verdicts'}"
        for a in ASPECTS
    )
    col.caption(f"{p.describe_rule()}. {judges}")
if len(panels) < 2:
    st.info("Save a second panel on the Judge page (section 4, Scores and picks) to compare two.")
elif name_a == name_b:
    st.caption("Choose two different panels.")
elif st.button("Compare picks", key="cmp_run"):
    with st.spinner("Ranking with both panels…"):
        st.session_state["cmp_result"] = (
            (name_a, name_b, cmp_w),
            ag.compare_panels(
                con,
                SelectionConfig(panel=panels[name_a], weight=cmp_w),
                SelectionConfig(panel=panels[name_b], weight=cmp_w),
                label_a=name_a,
                label_b=name_b,
            ),
        )
asked, cmp = st.session_state.get("cmp_result", (None, None))
if cmp is not None and asked == (name_a, name_b, cmp_w):  # shown only for what it answers
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Overlap",
        "n/a" if cmp.overlap is None else f"{cmp.overlap:.1%}",
        help="examples where both panels pick the same candidate / examples either picks for",
    )
    m2.metric("Same pick", f"{cmp.n_same:,} / {cmp.n_examples:,}")
    m3.metric(
        "Examples that change",
        f"{cmp.n_changed:,}",
        help=f"of which {cmp.only_a:,} only {name_a} and {cmp.only_b:,} only {name_b} can pick",
    )
    if cmp.n_changed:
        shown = cmp.changed
        st.caption(f"The first {len(shown):,} of {cmp.n_changed:,} examples that change:")
        st.dataframe(
            shown.drop(columns=["candidates"]).rename(
                columns={"pick_a": f"pick ({name_a})", "pick_b": f"pick ({name_b})"}
            ),
            hide_index=True,
            key="cmp_changed",
        )
        labels = [f"{r.example_id}: {r.instruction[:60]}" for r in shown.itertuples()]
        which = st.selectbox("Example", ["all shown", *labels], key="cmp_example")
        if st.button("Open in Review", key="cmp_open"):
            rows = shown if which == "all shown" else shown.iloc[[labels.index(which)]]
            ids = [c for cands in rows["candidates"] for c in cands]
            st.switch_page("pages/review.py", query_params=review_links.region_query(ids))
