"""Trade-off: instruction following against faithfulness, the frontier, the picks."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import ui
from reset_core.analytics import tradeoff
from reset_core.analytics.summaries import ensure_fresh, missing_note, missing_summary
from reset_core.aspects import ASPECTS
from reset_core.review import links as review_links
from reset_core.sampling.queries import setting_labels

#: The label column shown for each id column (the id itself stays in the hover).
LABEL_OF = {"setting_id": "setting", "model_id": "model"}
LEVEL_LABELS = {
    "setting": "per decoding setting",
    "setting_model": "per setting and model",
    "model": "per model / checkpoint",
    "kind": "per example kind",
    "candidate": "per candidate (sample)",
}


def in_setting_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in setting order (cooler first, restrictive top-k first) when they have one."""
    if "setting" not in df.columns:
        return df
    rank = {label: i for i, label in enumerate(setting_labels(con).values())}
    return df.sort_values("setting", key=lambda s: s.map(rank), kind="stable")


st.title("Trade-off")
con = ui.cursor()
with st.spinner("Updating the analytics summaries…"):
    ensure_fresh(con)
st.caption(missing_note(missing_summary(con)))

c1, c2, c3, c4, c5 = st.columns(5)
level = c1.selectbox("Points", list(LEVEL_LABELS), format_func=LEVEL_LABELS.get, key="to_level")
x = c2.selectbox("x axis", ASPECTS, index=1, key="to_x")
y = c3.selectbox("y axis", ASPECTS, index=2, key="to_y")
kind = c4.selectbox("Kind", ["all", "instruction", "context"], key="to_kind")
split = c5.selectbox("Split", ["seen", "test_seen", "test_unseen", "all"], key="to_split")
res = tradeoff.tradeoff_points(
    con,
    x,
    y,
    level,
    kind=None if kind == "all" else kind,
    split=None if split == "all" else split,
)
pts = pd.DataFrame(res["points"])
st.caption(
    f"{res['n_candidates']:,} candidates: {res['n_with_x']:,} with {x}, {res['n_with_y']:,} with "
    f"{y}, {res['n_with_both']:,} with both; {res['n_failed']:,} failed judgments excluded."
    + (" Showing a deterministic sample." if res["sampled"] else "")
)

usable = pts.dropna(subset=["x", "y"]) if len(pts) else pts
if usable.empty:
    st.info(
        f"No points with both {x} and {y} at this level. Aggregated levels combine "
        "candidates that have either aspect; per-candidate points need both."
    )
else:
    front = pts.loc[res["frontier"]].sort_values("x")
    # Labels live in the legend and the hover, never drawn on the markers (they overlapped);
    # the ids are one hover away.
    if level == "candidate":
        usable = usable.assign(pick=usable["picked"].map({True: "pick", False: "candidate"}))
        fig = px.scatter(
            usable,
            x="x",
            y="y",
            color="pick",
            symbol="pick",
            hover_data={
                "setting": True,
                "model": True,
                "kind": True,
                "candidate_id": True,
                "setting_id": True,
                "pick": False,
            },
            custom_data=["candidate_id"],
            opacity=0.6,
        )
        fxy = pd.DataFrame(res["frontier_xy"], columns=["x", "y"])
        st.caption(f"{res['n_on_frontier']:,} candidates lie on the Pareto frontier.")
    else:
        group = [c for c in ("setting_id", "model_id", "kind") if c in usable.columns]
        shown = [LABEL_OF.get(c, c) for c in group]
        usable = in_setting_order(usable)  # the legend lists settings cool to hot
        fig = px.scatter(
            usable,
            x="x",
            y="y",
            size="n",
            color=shown[0],
            symbol=shown[1] if len(shown) > 1 else None,
            hover_data={
                **{c: True for c in shown},
                **{c: True for c in group if c not in shown},
                **{c: True for c in ("n", "n_x", "n_y", "n_picks", "n_failed")},
            },
            custom_data=group,
        )
        fig.update_layout(legend_title_text=" · ".join(shown))
        fxy = front[["x", "y"]]
    fig.add_trace(
        go.Scatter(
            x=fxy["x"], y=fxy["y"], mode="lines", name="Pareto frontier", line={"dash": "dash"}
        )
    )
    fig.update_layout(xaxis_title=f"{x} (mean score)", yaxis_title=f"{y} (mean score)")
    event = st.plotly_chart(
        fig, on_select="rerun", selection_mode=("box", "lasso", "points"), key="to_chart"
    )
    sel_pts = (event or {}).get("selection", {}).get("points", []) if event else []
    data_pts = [p for p in sel_pts if p.get("customdata")]
    if data_pts:
        if level == "candidate":
            q = review_links.region_query(candidates=[p["customdata"][0] for p in data_pts])
        else:
            cols = [c for c in ("setting_id", "model_id", "kind") if c in usable.columns]
            vals = {c: sorted({p["customdata"][i] for p in data_pts}) for i, c in enumerate(cols)}
            q = review_links.region_query(
                setting=vals.get("setting_id"), model=vals.get("model_id"), kind=vals.get("kind")
            )
        if split != "all":
            q["split"] = split
        st.switch_page("pages/review.py", query_params=q)
    if level != "candidate":
        ids = [c for c in ("setting_id", "model_id") if c in pts.columns]
        labels = [c for c in ("setting", "model", "kind") if c in pts.columns]
        table = in_setting_order(pts)
        table = table[labels + [c for c in table.columns if c not in labels + ids]]
        st.dataframe(table, hide_index=True, key="to_table")

st.subheader("Models on the same axes")
st.caption(
    "Each checkpoint of the latest finished evaluations, by its comparison's means (its "
    "frozen judges and decoding, on its test set), and each model's judged answers on the "
    "test splits. Confidence intervals and paired deltas are on the Evaluate page."
)
mv = pd.DataFrame(tradeoff.model_view(con, x, y))
if mv.empty:
    st.info(
        "No finished evaluation and no judged answers on the test splits yet: evaluate base, "
        "MTL and RESET on the Evaluate page to place the checkpoints here."
    )
    st.page_link("pages/evaluate.py", label="Evaluate checkpoints →")
else:
    fig = px.scatter(
        mv,
        x="x",
        y="y",
        color="name",
        symbol="source",
        hover_data={
            "stage": True,
            "n": True,
            "model_id": True,
            **({"evaluation_id": True} if "evaluation_id" in mv.columns else {}),
        },
        labels={"name": "model"},
    )
    fig.update_layout(xaxis_title=x, yaxis_title=y)
    st.plotly_chart(fig, key="to_models")
    if "evaluation_id" in mv.columns:
        for evaluation_id, source in (
            mv.dropna(subset=["evaluation_id"])[["evaluation_id", "source"]]
            .drop_duplicates()
            .itertuples(index=False)
        ):
            st.page_link(
                "pages/evaluate.py",
                label=f"{source[0].upper()}{source[1:]}: results →",
                query_params={"ev_tab": "Results", "evaluation": evaluation_id},
            )
