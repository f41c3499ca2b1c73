"""Home: where the user stands on the MTL → RESET path, the next step, the lineage."""

import streamlit as st

import ui
from reset_core import jobs
from reset_core.evaluation import loop
from reset_core.review.text import escape_markdown
from reset_core.store import COUNT_HELP, counts
from reset_core.training.queries import trained_models

#: The page that follows each kind of job (its work is ingested with the kind's own sync,
#: jobs.stage_sync, as that page does).
PAGE = {
    "sample": "pages/sample.py",
    "judge": "pages/judge.py",
    "judge_batch": "pages/judge.py",
    "train": "pages/train.py",
}

st.title("RESET Studio")
st.caption(
    "Rejection sampling for continued self-instruction tuning: sample candidates over a "
    "decoding grid, judge them for task quality, instruction following and faithfulness, keep "
    "the best per example, and continue fine-tuning on them."
)

con = ui.cursor()
# A job's page ingests its shards only while it is open: a user who launches sampling and
# comes back here would otherwise see no candidates and the step still to do. Syncing is
# by key, so doing it here as well never duplicates anything.
running: list[tuple[str, str]] = []
for kind in PAGE:
    for job_id in jobs.active_job_ids(con, kind):
        if jobs.stage_sync(kind)(con, job_id).get("status") in jobs.ACTIVE:
            running.append((kind, job_id))
n = counts(con)
cols = st.columns(len(n))
for col, (label, value) in zip(cols, n.items(), strict=True):
    col.metric(label.capitalize(), f"{value:,}", help=COUNT_HELP.get(label))

status = loop.loop_status(con)
for kind, job_id in running:
    st.page_link(
        PAGE[kind],
        label=f"{job_id} is running: follow it on its page (reload here when it ends)",
        icon=":material/hourglass_top:",
    )
nxt = status.next_step
st.subheader("Next step")
if n["examples"] == 0:  # the path starts from examples: nothing to train on before them
    st.page_link("pages/data.py", label="Import examples →")
    st.caption(
        "Import your files on the Data page, or start from the demo set: "
        "`reset-studio db init --demo` (what `make app` runs)."
    )
elif nxt is None:
    st.success(
        f"Round {status.round} is done and evaluated. Start the next round from its result, "
        "or run one of the paper's experiments."
    )
    st.page_link("pages/evaluate.py", label="Evaluate and run experiments →")
else:
    with st.container(border=True, key="home_next"):
        st.page_link(nxt.page, label=f"{nxt.title} →")
        st.caption(escape_markdown(nxt.detail[:1].upper() + nxt.detail[1:]) + ".")

st.subheader(f"The MTL → RESET path: round {status.round}")
st.caption(
    "Train the multi-task (MTL) baseline on references; sample and judge with it, score and "
    "curate the picks, continue from it for one epoch at a small learning rate; evaluate "
    "base, MTL and RESET side by side. Each later round starts from the previous round's "
    "result." + (f" This round's policy: {status.policy_label}." if status.policy_label else "")
)
with st.container(key="home_path"):
    for i, step in enumerate(status.steps, 1):
        # Material icons render everywhere; emoji need a font the machine may lack.
        if step.done:
            mark = ":green[:material/check_circle:]"
        elif nxt is not None and step.key == nxt.key:
            mark = ":blue[:material/arrow_circle_right:]"
        else:
            mark = ":gray[:material/radio_button_unchecked:]"
        st.markdown(
            f"{mark} **{i}. {escape_markdown(step.title)}**: {escape_markdown(step.detail)}"
        )

st.subheader("Lineage")
if trained_models(con).empty:
    st.caption("No models yet: the lineage graph appears once a model is sampled or trained.")
else:
    st.graphviz_chart(loop.lineage_dot(con))

st.caption(f"Database: `{ui.db_path()}`")
