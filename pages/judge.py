"""Judge: configure judges, estimate the cost, launch, browse verdicts, score and pick."""

import json

import streamlit as st
from pydantic import ValidationError

import ui
from reset_core import jobs
from reset_core.aspects import ASPECTS
from reset_core.judging.base import STATUSES
from reset_core.judging.launch import (
    SPLITS,
    JudgePlan,
    cache_path,
    create_judge_job,
    estimate_judging,
    estimate_plan_cached,
    llm_spec,
    sync_judge_job,
)
from reset_core.judging.llm_judge import LLMJudgeConfig
from reset_core.judging.metric_judges import DEFAULT_OFFLINE, METRIC_JUDGES
from reset_core.judging.queries import (
    judge_ids,
    judge_labels,
    judgment_statuses,
    judgment_summary,
    judgments_with_status,
)
from reset_core.judging.rubrics import latest_rubric, rubric_versions, save_rubric
from reset_core.options import help_text
from reset_core.sampling.queries import count_candidates
from reset_core.scoring.config import SelectionConfig
from reset_core.scoring.panels import Panel
from reset_core.scoring.queries import latest_selection, selection_rows
from reset_core.scoring.selection import preview_selection, save_selection

H = lambda name: help_text(LLMJudgeConfig, name)  # noqa: E731 - short alias for widget help
S = lambda name: help_text(SelectionConfig, name)  # noqa: E731
P = lambda name: help_text(JudgePlan, name)  # noqa: E731
PN = lambda name: help_text(Panel, name)  # noqa: E731

st.title("Judge")
con = ui.cursor()
n_cand = count_candidates(con)
if n_cand == 0:
    st.info("No candidates yet: sample some on the Sample page first.")

# ----------------------------------------------------------------------------- judges
st.header("1 · Judges")
use_offline = st.checkbox(
    "Offline metric judges (no API key needed)",
    value=True,
    key="use_offline",
    help="Two independent judges per aspect, so their agreement can be measured: "
    + ", ".join(DEFAULT_OFFLINE),
)
with st.expander("What the offline judges measure, and what they cannot"):
    for name in DEFAULT_OFFLINE:
        st.markdown(
            f"**{name}** ({', '.join(METRIC_JUDGES[name].aspects)}): "
            f"{METRIC_JUDGES[name].description}"
        )

llm_mode = st.radio(
    "LLM judge",
    ["none", "OpenAI-compatible endpoint", "local model (weak)"],
    horizontal=True,
    key="llm_mode",
    help="The local mode runs the same rubrics on the embedded small model in the worker: "
    "a weak judge, for trying prompts offline.",
)
llm_cfg = None
if llm_mode != "none":
    c1, c2, c3 = st.columns(3)
    model = c1.text_input("Model", "gpt-4o-mini", help=H("model"), key="llm_model")
    base_url = c2.text_input("Base URL", "", help=H("base_url"), key="llm_base_url")
    key_env = c3.text_input("API key variable", "OPENAI_API_KEY", help=H("api_key_env"))
    c1, c2, c3, c4 = st.columns(4)
    p_in = c1.number_input("$ / M prompt tokens", 0.0, value=0.15, help=H("price_input_per_mtok"))
    p_out = c2.number_input(
        "$ / M completion tokens", 0.0, value=0.6, help=H("price_output_per_mtok")
    )
    conc = c3.number_input("Concurrency", 1, 1024, 16, help=H("concurrency"))
    budget = c4.number_input("Budget cap $ (0 = none)", 0.0, value=0.0, help=H("budget_usd"))
    c1, c2, c3 = st.columns(3)
    per_call = c1.number_input("Candidates per call", 1, 16, 1, help=H("candidates_per_call"))
    timeout = c2.number_input("Timeout s", 1.0, 3600.0, 60.0, help=H("timeout_s"))
    retries = c3.number_input("Retries", 0, 20, 3, help=H("max_retries"))
    try:
        llm_cfg = LLMJudgeConfig(
            model=model,
            base_url=base_url or None,
            api_key_env=key_env,
            price_input_per_mtok=p_in,
            price_output_per_mtok=p_out,
            concurrency=conc,
            budget_usd=budget or None,
            candidates_per_call=per_call,
            timeout_s=timeout,
            max_retries=retries,
        )
    except ValidationError as e:
        st.error(str(e))

with st.expander("Rubrics (versioned: saving an edit creates a new version)"):
    aspect = st.selectbox("Aspect", ASPECTS, key="rubric_aspect")
    current = latest_rubric(con, aspect)
    st.caption(f"Current: {current.rubric_id}; {len(rubric_versions(con, aspect))} version(s)")
    text = st.text_area("Rubric", current.text, height=140, key=f"rubric_text_{current.rubric_id}")
    c1, c2 = st.columns(2)
    lo = c1.number_input("Scale min", value=current.scale_min, key=f"lo_{current.rubric_id}")
    hi = c2.number_input("Scale max", value=current.scale_max, key=f"hi_{current.rubric_id}")
    if st.button("Save as new version", key="save_rubric"):
        try:
            r = save_rubric(con, aspect, text, lo, hi)
            st.success(f"saved {r.rubric_id}")
        except ValueError as e:
            st.error(str(e))

specs = [{"type": "metric", "name": n} for n in DEFAULT_OFFLINE] if use_offline else []
if llm_cfg is not None:
    specs.append(llm_spec(con, llm_cfg, local=llm_mode.startswith("local")))

# ----------------------------------------------------------------------------- launch
st.header("2 · Estimate and launch")
c1, c2 = st.columns(2)
aspects = c1.radio(
    "Aspects", ["needed", "all"], horizontal=True, key="plan_aspects", help=P("aspects")
)
splits = c2.multiselect(
    "Splits", list(SPLITS), default=["seen"], key="plan_splits", help=P("splits")
)
plan = JudgePlan(aspects=aspects, splits=splits) if splits else None
if not splits:
    st.warning("Choose at least one split to judge.")
elif specs and n_cand:
    # Counted in the database (no item is read into Python), and kept until the data
    # changes: the page's other reruns do not recount a million candidates.
    est = estimate_plan_cached(con, specs, plan, cache=cache_path(ui.db_path()))
    n_items = sum(v["n_items"] for v in est.values())
    st.dataframe([{"judge": k, **v} for k, v in est.items()], hide_index=True, width="stretch")
    total = sum(v["cost_usd"] for v in est.values())
    st.caption(
        f"{n_items:,} items to judge; estimated ${total:.4f} "
        f"(worst case ${sum(v['cost_usd_max'] for v in est.values()):.4f}). Estimates count "
        "prompt tokens approximately; cached verdicts cost nothing."
    )
    if ui.launch_button(
        "Launch judging",
        estimate_judging(con, specs, est),
        key="launch",
        disabled=n_items == 0,
    ):
        job_id = create_judge_job(con, ui.db_path(), specs, plan=plan)
        jobs.launch(con, job_id)
        st.session_state["judge_job"] = job_id
elif not specs:
    st.warning("Choose at least one judge.")

judging_now = jobs.active_job_ids(con, "judge")


@st.fragment(run_every=ui.POLL_S if judging_now else None)
def judge_jobs(watching: list[str]) -> None:
    """The latest judging jobs, newest (the one just launched) first, live while one runs.

    When a job that was running at the last full page run ends, the whole page reruns
    once: the items still to judge, the judgments and the picks below are recounted.
    """
    cur = ui.cursor()
    for job_id, status in jobs.recent_jobs(cur, "judge", limit=5):
        if status in jobs.ACTIVE:
            prog = sync_judge_job(cur, job_id)
        else:
            prog = {
                **jobs.read_json(jobs.work_dir(cur, job_id) / "progress.json"),
                "status": status,
            }
        c1, c2 = st.columns([5, 1])
        c1.progress(
            jobs.progress_fraction(prog), text=f"{job_id}: {jobs.describe_progress(prog, 'items')}"
        )
        if prog["status"] in jobs.ACTIVE and c2.button("Cancel", key=f"cancel_{job_id}"):
            jobs.cancel(cur, job_id)
            st.rerun()
        if prog.get("ledger"):
            c2.caption(json.dumps({k: v["cost_usd"] for k, v in prog["ledger"].items()}))
        if prog.get("error"):
            st.warning(prog["error"])
        for judge_id, e in (prog.get("endpoints") or {}).items():
            if e.get("placeholder"):
                st.info(
                    f"{judge_id} got its answers from the local stand-in server at "
                    f"{e['endpoint']}: its verdicts are placeholders, labelled so everywhere "
                    "and left out of selection unless a panel includes placeholders."
                )
    if set(watching) - set(jobs.active_job_ids(cur, "judge")):
        st.rerun()  # a job ended: recount the page, stop polling


judge_jobs(judging_now)

# ----------------------------------------------------------------------------- judgments
st.header("3 · Judgments")
summary = judgment_summary(con)
if summary.empty:
    st.caption("No judgments yet.")
else:
    st.dataframe(summary, hide_index=True, width="stretch")
    pick = st.selectbox(
        "Show",
        judgment_statuses(con),
        key="judgment_status",
        format_func=lambda s: f"{s}: {STATUSES.get(s, '')}",
        help="Failures first: each keeps its error and the raw answer.",
    )
    st.dataframe(
        judgments_with_status(con, pick, limit=100),
        hide_index=True,
        width="stretch",
    )

# ----------------------------------------------------------------------------- selection
st.header("4 · Scores and picks")
st.caption(
    "score = s_task + w·(I_instr·s_instr + I_faith·s_faith); I_instr = 1 for open-ended, "
    "I_faith = 1 for context examples."
)
if summary.empty:
    # Nothing to rank before the first verdict: no counts that only say "not judged yet".
    st.info("Scores and picks appear here once candidates are judged: launch judging above.")
    st.stop()
c1, c2, c3 = st.columns(3)
preset = c1.selectbox("Preset", ["reset", "reset_s", "custom"], key="preset", help=S("preset"))
weight = c2.slider("w", 0.0, 5.0, 2.0, 0.1, key="weight", help=S("weight"))
combine = c3.selectbox(
    "Combine judges", ["mean", "agree", "judge"], key="combine", help=P("combine")
)
by_aspect = {}
if combine == "judge":
    judges, labels = judge_ids(con), judge_labels(con)
    cols = st.columns(3)
    for col, a in zip(cols, ASPECTS, strict=True):
        by_aspect[a] = col.selectbox(
            f"Judge for {a}",
            judges,
            key=f"judge_for_{a}",
            format_func=lambda j: labels.get(j, j),
        )
c1, c2, c3, c4 = st.columns(4)
delta = c1.number_input("δ (agreement)", 0.0, 1.0, 0.2, 0.05, help=PN("delta"))
threshold = c2.number_input("Threshold (0 = none)", 0.0, value=0.0, help=S("threshold"))
top_k = c3.number_input("Top-k (custom)", 1, 1000, 1, help=S("top_k"))
target = c4.number_input("Target size (custom, 0 = all)", 0, value=0, help=S("target_size"))
try:
    cfg = SelectionConfig(
        preset=preset,
        weight=weight,
        combine=combine,
        judge_by_aspect=by_aspect,
        delta=delta,
        threshold=threshold or None,
        top_k=top_k,
        target_size=target or None,
    )
except ValidationError as e:
    st.error(str(e))
    st.stop()

prev = preview_selection(con, cfg)
m = st.columns(4)
m[0].metric("Picks", f"{prev.n_picked:,}")
m[1].metric("Examples with a pick", f"{prev.n_examples_with_pick:,} / {prev.n_examples:,}")
m[2].metric(
    "Not rankable",
    f"{prev.n_unrankable:,} / {prev.n_candidates:,}",
    help=f"Candidates of the {cfg.split} split missing a valid verdict for an aspect their "
    "kind needs (task, and instruction or faithfulness): never picked.",
)
m[3].metric(
    "Picks changed",
    "-" if prev.n_changed is None else f"{prev.n_changed:,}",
    help=f"examples whose pick differs from the saved selection {prev.compared_to}",
)
if prev.n_unrankable:
    why = "not judged yet, or the judge failed" + (
        f", or the judges differ by more than δ = {delta:g}" if combine == "agree" else ""
    )
    st.warning(
        f"{prev.n_unrankable:,} of the {prev.n_candidates:,} candidates in the {cfg.split} split "
        "cannot be ranked: an aspect their kind needs (task, and instruction for open-ended or "
        f"faithfulness for context examples) has no valid verdict ({why}). They are never "
        "picked until judged."
    )
if st.button("Save selection", type="primary", key="save_selection"):
    res = save_selection(con, cfg)
    st.success(f"saved {res.selection_id}: {res.n_picked} picks")

sel = latest_selection(con)
if sel:
    st.subheader(f"Saved selection {sel}")
    only_picks = st.checkbox("Picks only", value=True, key="only_picks")
    st.dataframe(
        selection_rows(con, sel, picks_only=only_picks, limit=200),
        hide_index=True,
        width="stretch",
    )
