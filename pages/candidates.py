"""Candidates named by an analytics link (heatmap cell, trade-off region).

Stand-in landing page until Review reads the same query parameters
(contract: ``reset_core.review_links``).
"""

import pandas as pd
import streamlit as st

import ui
from reset_core import review_links
from reset_core.analytics import ensure_fresh

PAGE_SIZE = 50

st.title("Selected candidates")
con = ui.cursor()
ensure_fresh(con)
params = {k: st.query_params[k] for k in st.query_params}
try:
    sel = review_links.parse(params)
except ValueError as e:
    st.error(str(e))
    st.stop()
if sel is None:
    st.info("Open candidates from the Agreement heatmap or a Trade-off selection.")
    st.stop()
page = st.number_input("Page", min_value=1, value=1, step=1, key="sel_page")
try:
    total, rows = review_links.candidates_for(con, sel, PAGE_SIZE, (page - 1) * PAGE_SIZE)
except ValueError as e:
    st.error(str(e))
    st.stop()
if sel["form"] == "disagreement":
    st.caption(
        f"{total:,} candidates where {sel['judge_a']} and {sel['judge_b']} differ by at least "
        f"{sel['disagree']:g} on {sel['aspect']}"
    )
else:
    st.caption(f"{total:,} selected candidates")
if rows:
    # a plain HTML table: readable, and its ids are text a browser test can find
    st.table(pd.DataFrame(rows))
