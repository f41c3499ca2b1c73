"""RESET Studio: the router. Pages live in pages/, the logic in reset_core/."""

import streamlit as st

import ui

st.set_page_config(page_title="RESET Studio", layout="wide")
ui.sidebar()

PAGES = [
    st.Page("pages/home.py", title="Home", default=True),
    st.Page("pages/data.py", title="Data"),
    st.Page("pages/train.py", title="Train"),
]

st.navigation(PAGES).run()
