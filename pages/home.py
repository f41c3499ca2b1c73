"""Home: where the loop stands, and the next step."""

from pathlib import Path

import streamlit as st

import ui
from reset_core.store import COUNT_HELP, counts

# The loop in order: (label in store.counts, what to do next, page that does it).
NEXT_STEPS = [
    ("examples", "Import examples", "pages/data.py"),
    ("candidates", "Sample candidates", "pages/sample.py"),
    ("judgments", "Judge the candidates", "pages/judge.py"),
    ("picks", "Score and pick", "pages/judge.py"),
    ("curated sets", "Freeze a curated set", "pages/train.py"),
    ("training runs", "Continue fine-tuning", "pages/train.py"),
    ("evaluations", "Evaluate before and after", "pages/evaluate.py"),
]

st.title("RESET Studio")
st.caption(
    "Rejection sampling for continued self-instruction tuning: sample candidates over a "
    "decoding grid, judge them for task quality, instruction following and faithfulness, keep "
    "the best per example, and continue fine-tuning on them."
)

con = ui.cursor()
n = counts(con)
cols = st.columns(len(n))
for col, (label, value) in zip(cols, n.items(), strict=True):
    col.metric(label.capitalize(), f"{value:,}", help=COUNT_HELP.get(label))

root = Path(__file__).resolve().parent.parent
todo = next(((label, text, page) for label, text, page in NEXT_STEPS if n[label] == 0), None)
if todo is None:
    st.success("Every stage of the loop has data. Review picks or start another round.")
else:
    label, text, page = todo
    st.subheader("Next step")
    if (root / page).exists():
        st.page_link(page, label=f"{text} →")
    else:
        st.info(f"{text}: this step is not available in this version yet.")

st.caption(f"Database: `{ui.db_path()}`")
