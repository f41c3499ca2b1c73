"""RESET Studio: the router. Pages live in pages/, the logic in reset_core/."""

import streamlit as st

import ui
from reset_core import config_file, deployment

st.set_page_config(page_title="RESET Studio", layout="wide")
# Keys and deployment settings kept in the app's secrets reach reset_core (which never
# imports streamlit) here, on every run: a secrets file may change while the app runs.
deployment.use_app_secrets(st.secrets if st.secrets.load_if_toml_exists() else None)

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

# reset-studio.toml sets the forms' defaults: a bad file is one clear line, not a
# traceback on the first page that reads it.
try:
    config_file.active()
except config_file.ConfigError as e:
    st.error(f"reset-studio.toml: {e}")
    st.stop()

ui.gate(PAGES)  # with login on, nothing below runs (no page, whatever its URL) until the user is in
ui.sidebar()
st.navigation(PAGES).run()
