"""Sample: generate candidates for selected examples over a grid of decoding settings."""

import pandas as pd
import streamlit as st

import ui
from reset_core import jobs, paths
from reset_core.config_file import default as config_default
from reset_core.deployment import Deployment
from reset_core.ingest.queries import distinct_values
from reset_core.models import ModelUnavailable, default_model_path
from reset_core.options import help_text
from reset_core.sampling.config import ModelSpec, SampleSelection
from reset_core.sampling.launch import (
    SamplingRejected,
    check_endpoint,
    default_model,
    estimate_sampling,
    plan_sampling,
    resume_sampling,
    start_sampling,
    sync_sampling,
)
from reset_core.sampling.queries import job_candidates, sampling_jobs
from reset_core.sampling.settings import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURES,
    DEFAULT_TOP_KS,
    SETTING_HELP,
    DecodingSetting,
    setting_labels_of,
)
from reset_core.training.queries import model_labels, trained_checkpoints

GRID_FIELDS = ["temperature", "top_k", "top_p", "max_tokens", "seed", "n"]
H = lambda name: help_text(DecodingSetting, name)  # noqa: E731 - short alias for widget help
M = lambda name: help_text(ModelSpec, name)  # noqa: E731
S = lambda name: help_text(SampleSelection, name)  # noqa: E731


def _numbers(text: str, cast, field: str) -> list:
    try:
        return [cast(x) for x in text.replace(";", ",").split(",") if x.strip()]
    except ValueError as e:
        raise SamplingRejected(f"{field}: {e}; give numbers separated by commas") from e


st.title("Sample")
con = ui.cursor()

# ----------------------------------------------------------------------------- examples
st.header("Examples")
c1, c2, c3, c4 = st.columns(4)
split_values = distinct_values(con, "split")
kinds = c1.multiselect("Kind", distinct_values(con, "kind"), key="sample_kinds", help=S("kinds"))
sources = c2.multiselect(
    "Source", distinct_values(con, "source"), key="sample_sources", help=S("sources")
)
splits = c3.multiselect(
    "Split",
    split_values,
    default=["seen"] if "seen" in split_values else [],
    key="sample_splits",
    help=S("splits"),
)
count = int(
    c4.number_input(
        "Count",
        min_value=1,
        value=config_default(SampleSelection, "count"),
        step=10,
        key="sample_count",
        help=S("count"),
    )
)

# ----------------------------------------------------------------------------- model
st.header("Model")
trained = trained_checkpoints(con)
# One policy per round: the round's policy (the MTL checkpoint, then each round's
# result) is the default; the embedded model before one exists.
try:
    default = default_model(con)
except ModelUnavailable:
    default = None  # the embedded model is not prepared: its option says so below
policy = default.checkpoint if default else None
if policy and policy[0] not in {r[0] for r in trained}:
    trained = [policy, *trained]  # a policy registered by hand, not by a Train run
SOURCES = [
    "Embedded SmolLM2",
    "Trained model",
    "Local folder",
    "Hub id",
    "OpenAI-compatible endpoint",
]
source = st.radio(
    "Model source",
    SOURCES,
    index=SOURCES.index("Trained model" if policy else "Embedded SmolLM2"),
    horizontal=True,
    key="sample_model_source",
    help="Trained model: a checkpoint from the Train page (merged, or base + LoRA adapter).",
)
if default:
    st.caption(f"Default: {default.why}.")
spec_kw: dict = {}
if source == "Trained model":
    if not trained:
        st.info("No trained models yet: train one on the Train page.")
    else:
        labels = model_labels(con)
        row = st.selectbox(
            "Checkpoint",
            trained,
            index=[r[0] for r in trained].index(policy[0]) if policy else 0,
            format_func=lambda r: labels.get(r[0], r[1]),
            key="sample_trained",
            help="Newest first, by name and lineage (base, LoRA adapter or merged, stage). "
            "The round's policy is preselected.",
        )
        spec_kw = {"model": row[2], "adapter": row[3], "name": labels.get(row[0], row[1])}
elif source == "Embedded SmolLM2":
    try:
        spec_kw = {"model": str(default_model_path()), "name": "SmolLM2-135M-Instruct"}
    except ModelUnavailable as e:
        st.error(str(e))
elif source in ("Local folder", "Hub id"):
    m1, m2, m3 = st.columns([3, 1, 1])
    label = "Model folder" if source == "Local folder" else "Hub id (org/name)"
    typed = m1.text_input(label, key="sample_model_ref", help=M("model")).strip()
    # A folder (or a "hub id" that transformers would read from disk) stays inside the
    # data root or the bundled models folder; an empty field is left for the spec to refuse.
    local = source == "Local folder"
    spec_kw["model"] = (ui.confined_model(typed, label, local=local) or "") if typed else ""
    spec_kw["engine"] = m2.selectbox(
        "Engine", ["transformers", "vllm"], key="sample_engine", help=M("engine")
    )
    if source == "Hub id":
        spec_kw["revision"] = (
            m3.text_input("Revision", key="sample_revision", help=M("revision")).strip() or None
        )
else:
    m1, m2, m3, m4 = st.columns([3, 2, 1, 1])
    spec_kw = {
        "engine": "openai",
        "base_url": m1.text_input(
            "Endpoint", "http://127.0.0.1:8000/v1", key="sample_base_url", help=M("base_url")
        ).strip(),
        "model": m2.text_input("Served model name", key="sample_served_model", help=M("model")),
        "api": m3.selectbox("API", ["chat", "completions"], key="sample_api", help=M("api")),
        "concurrency": int(
            m4.number_input(
                "Concurrency", 1, 256, 8, key="sample_concurrency", help=M("concurrency")
            )
        ),
    }
    # A vllm serve fleet: more endpoints of the same model, as a comma list (the spec
    # splits it); each is checked against the deployment's allow-list like base_url.
    spec_kw["base_urls"] = st.text_input(
        "More endpoints (replicas of the same model)",
        "",
        key="sample_base_urls",
        placeholder="http://10.0.0.2:8000/v1, http://10.0.0.3:8000/v1",
        help=M("base_urls"),
    )
    # The key is a choice among the names the deployment allows, never free text: the
    # server sends that variable's value to the endpoint (see reset_core.deployment).
    deployment = Deployment.current()
    key_names = deployment.allowed_key_names()
    spec_kw["api_key_env"] = st.selectbox(
        "API key variable",
        key_names,
        index=key_names.index("OPENAI_API_KEY") if "OPENAI_API_KEY" in key_names else 0,
        key="sample_key_env",
        help=M("api_key_env") + f" Allowed here: {', '.join(deployment.allowed_key_envs)}.",
    )
if spec_kw.get("engine", "transformers") == "transformers":
    with st.expander("Device and batching"):
        a1, a2, a3 = st.columns(3)
        spec_kw["device"] = a1.selectbox(
            "Device", ["auto", "cpu", "cuda"], key="sample_device", help=M("device")
        )
        spec_kw["dtype"] = a2.selectbox(
            "Dtype", ["auto", "float32", "bfloat16", "float16"], key="sample_dtype", help=M("dtype")
        )
        spec_kw["batch_size"] = int(
            a3.number_input("Batch size", 1, 4096, 32, key="sample_batch", help=M("batch_size"))
        )

# ----------------------------------------------------------------------------- grid
st.header("Decoding grid")
st.caption(
    "The grid crosses every temperature with every top-k; each row is one setting, "
    "and every example gets n candidates per setting."
)
g1, g2, g3, g4, g5, g6 = st.columns(6)
temps_text = g1.text_input(
    "Temperatures",
    ", ".join(f"{t:g}" for t in DEFAULT_TEMPERATURES),
    key="grid_temperatures",
    help=H("temperature"),
)
topk_text = g2.text_input(
    "Top-k values", ", ".join(map(str, DEFAULT_TOP_KS)), key="grid_top_ks", help=H("top_k")
)
top_p = g3.number_input("top_p", value=1.0, step=0.05, key="grid_top_p", help=H("top_p"))
max_tokens = g4.number_input(
    "max_tokens", value=DEFAULT_MAX_TOKENS, step=16, key="grid_max_tokens", help=H("max_tokens")
)
n = g5.number_input("n (samples)", value=1, step=1, key="grid_n", help=H("n"))
seed = g6.number_input("seed", value=0, step=1, key="grid_seed", help=H("seed"))

plan = None
problem = None
try:
    grid_rows = [
        {
            "temperature": t,
            "top_k": k,
            "top_p": float(top_p),
            "max_tokens": int(max_tokens),
            "seed": int(seed),
            "n": int(n),
        }
        for t in _numbers(temps_text, float, "temperature")
        for k in _numbers(topk_text, int, "top_k")
    ]
    if st.toggle("Edit rows one by one", key="grid_edit_rows"):
        edited = st.data_editor(
            pd.DataFrame(grid_rows, columns=GRID_FIELDS),
            num_rows="dynamic",
            key="grid_editor",
            column_config={f: st.column_config.NumberColumn(f, help=H(f)) for f in GRID_FIELDS},
        )
        grid_rows = edited.to_dict("records")
    else:
        preview = pd.DataFrame(grid_rows, columns=GRID_FIELDS)
        preview.insert(
            0,
            "setting",
            setting_labels_of(grid_rows),
        )
        st.dataframe(preview, hide_index=True)
    if not spec_kw.get("model"):
        raise SamplingRejected("model: choose a model folder, hub id or served model name")
    if "api_key_env" in spec_kw and spec_kw["api_key_env"] is None:
        raise SamplingRejected(
            "api_key_env: no API key variable is allowed and set here "
            f"(allowed: {', '.join(deployment.allowed_key_envs)})"
        )
    spec = ModelSpec(**spec_kw)
    check_endpoint(spec)  # key variable and host, as the worker checks them again
    selection = SampleSelection(kinds=kinds, sources=sources, splits=splits, count=count)
    # Cheap checks on every change; the model/endpoint check runs when launching.
    plan = plan_sampling(con, selection, spec, grid_rows, check=False)
except (SamplingRejected, ValueError) as e:
    problem = str(e)

if problem:
    st.error(problem)
else:
    k1, k2, k3 = st.columns(3)
    k1.metric("Examples × settings", f"{len(plan.example_ids)} × {len(plan.grid)}")
    k2.metric("Candidates", f"{plan.n_candidates:,}")
    k3.metric(
        "To generate",
        f"{plan.n_new:,}",
        help="Candidates already stored for this model are not made again.",
    )

estimate = estimate_sampling(con, plan) if plan is not None else None
if ui.launch_button("Start sampling", estimate, key="sample_start", disabled=plan is None):
    try:
        checked = plan_sampling(con, plan.selection, plan.model, plan.grid, check=True)
        job_id = start_sampling(con, checked, paths.jobs_dir(ui.db_path()))
        st.session_state["sample_job"] = job_id
        st.success(f"Started job {job_id}: {checked.n_new:,} candidates.")
    except SamplingRejected as e:
        st.error(str(e))

# ----------------------------------------------------------------------------- jobs
st.header("Jobs")
watching = jobs.active_job_ids(con, "sample")
ui.follow_launched("sample_job", "sample_browse_job", reset={"sample_page": 0})


@st.fragment(run_every=ui.POLL_S if watching else None)
def job_view(watching: list[str]) -> None:
    """Live progress of running jobs (polled while any runs), the job list, the browser.

    When a job that was running at the last full page run ends, the whole page reruns
    once, so every count that depends on it ("To generate") is fresh.
    """
    cur = ui.cursor()
    running = []  # still active after this sync: the statuses just read, not a new query
    for job_id in jobs.active_job_ids(cur, "sample"):
        p = sync_sampling(cur, job_id)
        if p["status"] in jobs.ACTIVE:
            running.append(job_id)
        c1, c2 = st.columns([5, 1])
        c1.progress(
            jobs.progress_fraction(p), text=f"{job_id}: {jobs.describe_progress(p, 'candidates')}"
        )
        if p["status"] in jobs.ACTIVE and c2.button("Cancel", key=f"cancel_{job_id}"):
            jobs.cancel(cur, job_id)
            st.rerun()
    if set(watching) - set(running):
        st.rerun()  # a job ended: recount the page, stop polling
    table = sampling_jobs(cur)
    if table.empty:
        st.info("No sampling jobs yet.")
        return
    st.dataframe(table, hide_index=True)
    ids = table["job_id"].tolist()
    if st.session_state.get("sample_browse_job") not in ids:
        st.session_state["sample_browse_job"] = ids[0]
    job_id = st.selectbox("Job", ids, key="sample_browse_job")
    row = table[table["job_id"] == job_id].iloc[0]
    if row["status"] in ("failed", "cancelled"):
        if row["error"]:
            st.error(row["error"])
        if st.button("Resume (make only the missing candidates)", key="sample_resume"):
            try:
                resume_sampling(cur, job_id)
                st.session_state["sample_job"] = job_id
                st.rerun()
            except SamplingRejected as e:
                st.error(str(e))
    page = int(st.number_input("Page", min_value=0, key="sample_page"))
    st.dataframe(
        job_candidates(cur, job_id, limit=25, offset=page * 25),
        hide_index=True,
        column_config={
            "setting": st.column_config.TextColumn("setting", help=SETTING_HELP),
            "sample": st.column_config.NumberColumn("sample", help="Sample index", width="small"),
            "text": st.column_config.TextColumn("text", width="large"),
            "instruction": st.column_config.TextColumn("instruction", width="medium"),
        },
    )


job_view(watching)
