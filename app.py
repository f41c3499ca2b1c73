"""RESET Studio: the router. Pages live in pages/, the logic in reset_core/."""

import streamlit as st

import ui

st.set_page_config(page_title="RESET Studio", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", default=True),
    st.Page("pages/data.py", title="Data"),
    st.Page("pages/sample.py", title="Sample"),
    st.Page("pages/judge.py", title="Judge"),
    st.Page("pages/review.py", title="Review"),
    st.Page("pages/agreement.py", title="Agreement"),
    st.Page("pages/tradeoff.py", title="Trade-off"),
    st.Page("pages/decoding.py", title="Decoding"),
    st.Page("pages/train.py", title="Train"),
    st.Page("pages/evaluate.py", title="Evaluate"),
]

ui.gate(PAGES)  # with login on, nothing below runs (no page, whatever its URL) until the user is in
ui.sidebar()
st.navigation(PAGES).run()
