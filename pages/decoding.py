"""Decoding: which settings win picks, at what diversity and length; judge length bias."""

import pandas as pd
import plotly.express as px
import streamlit as st

import ui
from reset_core.analytics.decoding import setting_report, suggest_grid
from reset_core.analytics.judge_bias import length_bias
from reset_core.analytics.summaries import ensure_fresh, missing_note, missing_summary
from reset_core.judging.queries import judge_labels
from reset_core.review.text import escape_markdown
from reset_core.sampling.settings import SETTING_HELP

st.title("Decoding settings")
con = ui.cursor()
with st.spinner("Updating the analytics summaries…"):
    ensure_fresh(con)
st.caption(missing_note(missing_summary(con)))
split = st.selectbox("Split", ["seen", "test_seen", "test_unseen"], key="dec_split")
report = setting_report(con, split)
if not report:
    st.info("No candidates yet: sample the seen split with a decoding grid first.")
    st.stop()

df = pd.DataFrame(report)
cols = [
    "setting",
    "n",
    "n_picks",
    "pick_share",
    "task",
    "instruction",
    "faithfulness",
    "n_failed",
    "distinct_1",
    "distinct_2",
    "dup_rate",
    "mean_words",
    "temperature",
    "top_k",
    "top_p",
    "max_tokens",
]
st.dataframe(
    df[cols],
    hide_index=True,
    key="dec_table",
    column_config={
        "setting": st.column_config.TextColumn("setting", help=SETTING_HELP),
        "n": st.column_config.NumberColumn("candidates"),
        "pick_share": st.column_config.NumberColumn("share of picks", format="%.2f"),
    },
)
st.caption(
    "Means are over valid scores; n_failed judgments were missing and excluded. distinct-n "
    f"uses up to {report[0]['text_sample']} texts per setting and model."
)
# One bar per setting, labelled by its values; the id is in the hover.
hover = {"setting_id": True}
c1, c2 = st.columns(2)
c1.plotly_chart(
    px.bar(df, x="setting", y="pick_share", hover_data=hover, title="Share of picks"),
    key="dec_share",
)
long = df.melt(
    id_vars=["setting", "setting_id"], value_vars=["task", "instruction", "faithfulness"]
)
c2.plotly_chart(
    px.bar(
        long,
        x="setting",
        y="value",
        color="variable",
        barmode="group",
        hover_data=hover,
        title="Mean scores",
    ),
    key="dec_scores",
)

st.subheader("Suggested grid for the next round")
grid = suggest_grid(report)
label_of = {r["setting_id"]: r["setting"] for r in report}


def _settings_line(title: str, ids: list[str]) -> None:
    """A line of settings by their values; their ids in the tooltip."""
    st.markdown(
        f"{title}: " + ", ".join(escape_markdown(label_of.get(i, i)) for i in ids),
        help="Setting ids: " + ", ".join(ids),
    )


st.write(grid["note"])
if grid["drop"]:
    _settings_line("Drop", grid["drop"])
if grid["rare"]:
    _settings_line("Rarely win", grid["rare"])
if grid["keep"]:
    _settings_line("Keep (by share of picks)", grid["keep"])

st.subheader("Judge length bias")
bias = length_bias(con)
if not bias:
    st.info("No valid judgments yet.")
else:
    labels = judge_labels(con)  # placeholder judges (the stand-in's) are marked
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "judge": labels.get(b["judge_id"], b["judge_id"]),
                    "aspect": b["aspect"],
                    "Spearman rho (score vs words)": b["rho"].label(),
                }
                for b in bias
            ]
        ),
        hide_index=True,
        key="dec_bias",
    )
    dec = pd.DataFrame(
        [
            {
                "judge · aspect": f"{labels.get(b['judge_id'], b['judge_id'])} · {b['aspect']}",
                "words": w,
                "mean score": s,
            }
            for b in bias
            for w, s in b["deciles"]
        ]
    )
    st.plotly_chart(
        px.line(
            dec,
            x="words",
            y="mean score",
            color="judge · aspect",
            markers=True,
            title="Mean score by length decile",
        ),
        key="dec_bias_chart",
    )
