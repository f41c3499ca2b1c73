"""Judge: configure judges, estimate the cost, launch, browse verdicts, score and pick."""

import json

import plotly.graph_objects as go
import streamlit as st
from pydantic import ValidationError

import ui
from reset_core import jobs
from reset_core.aspects import ASPECTS
from reset_core.config_file import default as config_default
from reset_core.deployment import Deployment, SecretNotAllowed
from reset_core.errors import validation_message
from reset_core.judging.base import STATUSES
from reset_core.judging.batch import KIND as BATCH_KIND
from reset_core.judging.batch import BatchConfig, batch_summary
from reset_core.judging.engine import env_endpoint
from reset_core.judging.launch import (
    SPLITS,
    JudgePlan,
    cache_path,
    create_judge_job,
    estimate_judging,
    estimate_plan_cached,
    llm_spec,
)
from reset_core.judging.llm_judge import LLMJudgeConfig
from reset_core.judging.metric_judges import DEFAULT_OFFLINE, METRIC_JUDGES
from reset_core.judging.queries import (
    injection_counts,
    judge_descriptions,
    judgment_statuses,
    judgment_summary,
    judgments_with_status,
)
from reset_core.judging.rubrics import latest_rubric, rubric_versions, save_rubric
from reset_core.judging.worker import build_judge
from reset_core.options import help_text
from reset_core.review.events import event_count
from reset_core.sampling.queries import count_candidates, split_models
from reset_core.scoring.config import SelectionConfig
from reset_core.scoring.panels import (
    DEFAULT_PANEL,
    SCALE_HELP,
    Panel,
    list_panels,
    save_panel,
)
from reset_core.scoring.queries import (
    judge_score_distribution,
    judge_versions,
    judges_with_verdicts,
    list_selections,
    selection_rows,
)
from reset_core.scoring.reset_s import FRACTION_HELP
from reset_core.scoring.selection import prepare, preview_selection, save_selection
from reset_core.training.queries import model_labels, round_policy

H = lambda name: help_text(LLMJudgeConfig, name)  # noqa: E731 - short alias for widget help
# A widget's default: reset-studio.toml's [judging.llm] value, else the page's, else the model's.
CFG = lambda name, *page: config_default(LLMJudgeConfig, name, *page)  # noqa: E731
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
use_batch, poll_s = False, 60.0
if llm_mode != "none":
    c1, c2, c3 = st.columns(3)
    model = c1.text_input("Model", CFG("model"), help=H("model"), key="llm_model")
    base_url = c2.text_input(
        "Base URL", CFG("base_url") or "", help=H("base_url"), key="llm_base_url"
    )
    # A choice among the names the deployment allows, never free text: the server
    # sends the chosen variable's value to the endpoint (see reset_core.deployment).
    deployment = Deployment.current()
    key_names = deployment.allowed_key_names()
    key_env = c3.selectbox(
        "API key variable",
        key_names,
        index=key_names.index(CFG("api_key_env")) if CFG("api_key_env") in key_names else 0,
        key="llm_key_env",
        help=H("api_key_env") + f". Allowed here: {', '.join(deployment.allowed_key_envs)}.",
    )
    endpoint_problem = None
    if key_env is None:
        endpoint_problem = (
            "api_key_env: no API key variable is allowed and set here "
            f"(allowed: {', '.join(deployment.allowed_key_envs)})"
        )
    elif llm_mode != "local model (weak)":
        try:  # the checks the worker makes again before it sends anything
            env_endpoint(base_url.strip() or None, api_key_env=key_env)
        except SecretNotAllowed as e:
            endpoint_problem = str(e)
    if endpoint_problem:
        st.error(endpoint_problem)
    c1, c2, c3, c4 = st.columns(4)
    p_in = c1.number_input(
        "$ / M prompt tokens",
        0.0,
        value=float(CFG("price_input_per_mtok", 0.15)),
        help=H("price_input_per_mtok"),
    )
    p_out = c2.number_input(
        "$ / M completion tokens",
        0.0,
        value=float(CFG("price_output_per_mtok", 0.6)),
        help=H("price_output_per_mtok"),
    )
    conc = c3.number_input("Concurrency", 1, 1024, CFG("concurrency"), help=H("concurrency"))
    budget = c4.number_input(
        "Budget cap $ (0 = none)",
        0.0,
        value=float(CFG("budget_usd") or 0.0),
        help=H("budget_usd"),
    )
    c1, c2, c3 = st.columns(3)
    per_call = c1.number_input(
        "Candidates per call", 1, 16, CFG("candidates_per_call"), help=H("candidates_per_call")
    )
    timeout = c2.number_input(
        "Timeout s", 1.0, 3600.0, float(CFG("timeout_s")), help=H("timeout_s")
    )
    retries = c3.number_input("Retries", 0, 20, CFG("max_retries"), help=H("max_retries"))
    try:
        llm_cfg = (
            None
            if endpoint_problem
            else LLMJudgeConfig(
                model=model,
                base_url=base_url.strip() or None,
                api_key_env=key_env,
                price_input_per_mtok=p_in,
                price_output_per_mtok=p_out,
                concurrency=conc,
                budget_usd=budget or None,
                candidates_per_call=per_call,
                timeout_s=timeout,
                max_retries=retries,
            )
        )
    except ValidationError as e:
        st.error(str(e))
    if llm_mode == "OpenAI-compatible endpoint":
        use_batch = st.checkbox(
            "Use the Batch API (50% cheaper, results within 24 h)",
            key="llm_batch",
            help="The LLM judge's requests go to the endpoint's /v1/batches as request "
            "files; the job polls until they are answered. A batch that expires half done "
            "keeps its answers and stops; resuming the job sends only the rest.",
        )
        if use_batch:
            poll_s = st.number_input(
                "Check the batches every (s)",
                1.0,
                3600.0,
                60.0,
                key="llm_poll_s",
                help=help_text(BatchConfig, "poll_s"),
            )

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
use_batch = use_batch and llm_cfg is not None  # the Batch API takes the LLM judge alone
if llm_cfg is not None:
    specs.append(llm_spec(con, llm_cfg, local=llm_mode.startswith("local")))

# ----------------------------------------------------------------------------- launch
st.header("2 · Estimate and launch")
c1, c2 = st.columns(2)
aspect_choices = ["needed", "all"]
aspects = c1.radio(
    "Aspects",
    aspect_choices,
    index=aspect_choices.index(config_default(JudgePlan, "aspects")),
    horizontal=True,
    key="plan_aspects",
    help=P("aspects"),
)
splits = c2.multiselect(
    "Splits",
    list(SPLITS),
    default=config_default(JudgePlan, "splits"),  # [judging] in reset-studio.toml, else seen
    key="plan_splits",
    help=P("splits"),
)
plan = JudgePlan(aspects=aspects, splits=splits) if splits else None
if not splits:
    st.warning("Choose at least one split to judge.")
elif specs and n_cand:
    # Counted in the database (no item is read into Python), and kept until the data
    # changes: the page's other reruns do not recount a million candidates.
    est = estimate_plan_cached(con, specs, plan, cache=cache_path(ui.db_path()), batch=use_batch)
    n_items = sum(v["n_items"] for v in est.values())
    st.dataframe([{"judge": k, **v} for k, v in est.items()], hide_index=True, width="stretch")
    total = sum(v["cost_usd"] for v in est.values())
    st.caption(
        f"{n_items:,} items to judge; estimated ${total:.4f} "
        f"(worst case ${sum(v['cost_usd_max'] for v in est.values()):.4f}). Estimates count "
        "prompt tokens approximately; cached verdicts cost nothing."
        + (" The LLM judge is priced at Batch API rates (50% off)." if use_batch else "")
    )
    if ui.launch_button(
        "Launch judging",
        estimate_judging(con, specs, est, batch=use_batch),
        key="launch",
        disabled=n_items == 0,
    ):
        # The Batch API takes the LLM judge alone; the metric judges run beside it.
        groups = (
            [(specs[:-1], None), (specs[-1:], BatchConfig(poll_s=poll_s))]
            if use_batch
            else [(specs, None)]
        )
        for group, batch in groups:
            if group and sum(est[build_judge(s).judge_id]["n_items"] for s in group):
                job_id = create_judge_job(con, ui.db_path(), group, plan=plan, batch=batch)
                jobs.launch(con, job_id)
                st.session_state["judge_job"] = job_id
elif not specs:
    st.warning("Choose at least one judge.")

JOB_KINDS = ("judge", BATCH_KIND)  # online judging and Batch API jobs
judging_now = [j for kind in JOB_KINDS for j in jobs.active_job_ids(con, kind)]


@st.fragment(run_every=ui.POLL_S if judging_now else None)
def judge_jobs(watching: list[str]) -> None:
    """The latest judging jobs, newest (the one just launched) first, live while one runs.

    When a job that was running at the last full page run ends, the whole page reruns
    once: the items still to judge, the judgments and the picks below are recounted.
    """
    cur = ui.cursor()
    recent = [(*j, kind) for kind in JOB_KINDS for j in jobs.recent_jobs(cur, kind, limit=5)]
    for job_id, status, kind in sorted(recent, key=lambda j: j[0].split("-", 1)[1], reverse=True)[
        :5
    ]:
        if status in jobs.ACTIVE:  # a Batch API job's sync also rewrites its batches' rows
            prog = jobs.stage_sync(kind)(cur, job_id)
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
        for line in batch_summary(prog):
            st.caption(line)
        for judge_id, e in (prog.get("endpoints") or {}).items():
            if e.get("placeholder"):
                st.info(
                    f"{judge_id} got its answers from the local stand-in server at "
                    f"{e['endpoint']}: its verdicts are placeholders, labelled so everywhere "
                    "and left out of selection unless a panel includes placeholders."
                )
    if set(watching) - {j for kind in JOB_KINDS for j in jobs.active_job_ids(cur, kind)}:
        st.rerun()  # a job ended: recount the page, stop polling


judge_jobs(judging_now)

# ----------------------------------------------------------------------------- judgments


@st.cache_data(show_spinner=False, max_entries=8)
def _verdicts(_con, db: str, stamp: str) -> tuple:
    """The verdict summary and statuses: seconds at millions of verdicts, so read once per
    change of the judgments (stored verdicts are only ever appended)."""
    return judgment_summary(_con), judgment_statuses(_con), injection_counts(_con)


@st.cache_data(show_spinner=False, max_entries=16)
def _with_status(_con, db: str, stamp: str, status: str):
    return judgments_with_status(_con, status, limit=100)


st.header("3 · Judgments")
stamp = judge_versions(con)
summary, statuses, injected = _verdicts(con, ui.db_path(), stamp)
if summary.empty:
    st.caption("No judgments yet.")
else:
    st.dataframe(summary, hide_index=True, width="stretch")
    st.caption(
        f"Prompt injection: {injected['flagged']:,} of {injected['scanned']:,} scanned "
        "candidates carry text aimed at the judge (marked on the Review page). The judge "
        "prompt shows candidates as data; `reset-studio injection-check` measures how "
        "often a flagged candidate's score moves without that text."
    )
    pick = st.selectbox(
        "Show",
        statuses,
        key="judgment_status",
        format_func=lambda s: f"{s}: {STATUSES.get(s, '')}",
        help="Failures first: each keeps its error and the raw answer.",
    )
    st.dataframe(
        _with_status(con, ui.db_path(), stamp, pick),
        hide_index=True,
        width="stretch",
    )

# ----------------------------------------------------------------------------- selection
st.header("4 · Scores and picks")
st.caption(
    "score = s_task + w·(I_instr·s_instr + I_faith·s_faith); I_instr = 1 for open-ended, "
    "I_faith = 1 for context examples. Each s_* combines the scores of the panel's judges "
    "for that aspect, after the panel's scale method."
)
if summary.empty:
    # Nothing to rank before the first verdict: no counts that only say "not judged yet".
    st.info("Scores and picks appear here once candidates are judged: launch judging above.")
    st.stop()

NEW_PANEL = "new panel…"
#: Up to this many stored verdicts the score histograms are drawn without asking.
DIST_AT_ONCE = 500_000


@st.cache_data(show_spinner=False, max_entries=16)
def _scope_facts(_con, db: str, stamp: str, split: str) -> dict:
    """What the selection controls offer, read once per change of the judgments or models."""
    return {
        "policy": round_policy(_con, split),
        "models": split_models(_con, split),
        "model_labels": model_labels(_con),
        "judge_labels": judge_descriptions(_con),
    }


@st.cache_data(show_spinner=False, max_entries=32)
def _judges_on(_con, db: str, stamp: str, split: str, models: tuple | None) -> dict:
    return judges_with_verdicts(_con, split, None if models is None else list(models))


@st.cache_data(show_spinner="Binning each judge's verdicts…", max_entries=32)
def _distribution(_con, db: str, stamp: str, panel_json: str, split: str, models: tuple | None):
    """The panel judges' histograms on linear [0,1] (before) and on the panel's scale (after)."""
    panel = Panel.model_validate_json(panel_json)
    models = None if models is None else list(models)
    after = judge_score_distribution(_con, panel, split, models)
    before = (
        after
        if panel.scale == "linear"
        else judge_score_distribution(
            _con, panel.model_copy(update={"scale": "linear"}), split, models
        )
    )
    return before, after


def _judges_text(ids: list[str], labels: dict[str, str]) -> str:
    return "; ".join(labels.get(j, j) for j in ids) or "none with valid verdicts"


def _panel_builder(cur, base: Panel, judges_on: dict, labels: dict) -> Panel | None:
    """Widgets for a panel, starting from ``base``; the panel they describe (None: invalid)."""
    k = base.name  # widget keys per starting panel: choosing another one refills them
    st.caption(
        "Judges per aspect, from those with verdicts on these candidates. None chosen: "
        "every judge with verdicts on that aspect, placeholders excepted."
    )
    cols = st.columns(3)
    chosen = {}
    for col, a in zip(cols, ASPECTS, strict=True):
        options = sorted(set(judges_on.get(a, [])) | set(base.judges.get(a, [])))
        chosen[a] = col.multiselect(
            f"{a} judges",
            options,
            default=[j for j in base.judges.get(a, []) if j in options],
            format_func=lambda j: labels.get(j, j),
            key=f"pj_{a}_{k}",
        )
    c1, c2, c3, c4 = st.columns(4)
    scale = c1.selectbox(
        "Scale method",
        list(SCALE_HELP),
        index=list(SCALE_HELP).index(base.scale),
        format_func=lambda m: SCALE_HELP[m].split(":")[0],
        key=f"pscale_{k}",
        help=PN("scale"),
    )
    c1.caption(SCALE_HELP[scale])
    combine = c2.selectbox(
        "Combination rule",
        ["mean", "agree"],
        index=["mean", "agree"].index(base.combine),
        key=f"pcombine_{k}",
        help=PN("combine"),
    )
    delta = c3.number_input(
        "δ (agreement)", 0.0, 1.0, base.delta, 0.05, key=f"pdelta_{k}", help=PN("delta")
    )
    placeholders = c4.checkbox(
        "Include placeholders",
        base.include_placeholders,
        key=f"pph_{k}",
        help=PN("include_placeholders"),
    )
    c1, c2 = st.columns([3, 1])
    name = c1.text_input(
        "Panel name", "" if base.name == DEFAULT_PANEL else base.name, key=f"pname_{k}"
    )
    try:
        panel = Panel(
            name=name.strip() or "unsaved",
            judges=chosen,
            scale=scale,
            combine=combine,
            delta=delta,
            include_placeholders=placeholders,
        )
    except ValidationError as e:
        st.error(validation_message(e))
        return None
    if c2.button("Save panel", key="save_panel", disabled=not name.strip()):
        try:
            save_panel(cur, panel)
        except ValueError as e:
            st.error(str(e))
        else:
            # the chooser is drawn already: it shows the saved panel from the next run on
            st.session_state["_panel_saved"] = panel.name
            st.rerun()
    return panel


@st.fragment
def scores_and_picks() -> None:
    """Panel, model scope, preset and weight, and the picks they give.

    A fragment: changing the weight or any other control re-runs only this section,
    not the launch plan and verdict tables above. Reads that only change with the
    judgments or the models are cached under :func:`judge_versions`.
    """
    cur = ui.cursor()
    split = SelectionConfig.model_fields["split"].default
    stamp = judge_versions(cur)  # what every cached read below depends on
    facts = _scope_facts(cur, ui.db_path(), stamp, split)
    labels, mlabels = facts["judge_labels"], facts["model_labels"]

    # --- model scope: the round's policy unless the user mixes models on purpose
    policy = facts["policy"]
    mix = st.toggle("Mix models", key="mix_models", help=S("all_models"))
    if mix:
        models = st.multiselect(
            "Models",
            list(facts["models"]),
            default=list(facts["models"]),
            format_func=lambda m: f"{mlabels.get(m, m)} ({facts['models'][m]:,} candidates)",
            key="mix_model_ids",
        )
        if not models:
            st.warning("Choose at least one model.")
            return
        every = set(models) == set(facts["models"])
        scope = dict(all_models=True) if every else dict(model_ids=models)
        model_ids = None if every else models
    else:
        st.markdown(
            f"**Model**: {mlabels.get(policy, policy) if policy else 'none'} "
            "(the round's policy: RESET samples and selects from one model per round)"
        )
        scope, model_ids = {}, [policy] if policy else []
    models_key = None if model_ids is None else tuple(sorted(model_ids))

    # --- the panel: shown before anything is scored, never implied
    panels = {p.name: p for p in list_panels(cur)}
    if saved := st.session_state.pop("_panel_saved", None):
        st.session_state["panel_choice"] = saved
    choice = st.selectbox(
        "Judge panel",
        [*panels, NEW_PANEL],
        key="panel_choice",
        help="Which judges score each aspect, on which scale, combined how. "
        f"'{DEFAULT_PANEL}': every judge with verdicts, placeholders excepted, mean of "
        "linear [0,1] scores. Build a panel to choose judges, the scale and the rule.",
    )
    base = panels.get(choice, panels[DEFAULT_PANEL])
    edit = choice == NEW_PANEL or st.toggle("Edit this panel", key=f"edit_{choice}")
    panel = base
    if edit:
        with st.container(border=True, key="panel_builder"):
            judges_on = _judges_on(cur, ui.db_path(), stamp, split, models_key)
            panel = _panel_builder(cur, base, judges_on, labels)
        if panel is None:
            return
    # The panel resolved to judges per aspect, as the kept aspect scores record it: cheap
    # when they are fresh, and built now otherwise (the first re-rank would build them).
    try:
        kept = prepare(cur, SelectionConfig(panel=panel, split=split, **scope))
    except ValueError as e:  # a saved panel naming judges this database lacks, say
        st.error(str(e))
        return
    resolved = kept.judges
    with st.container(border=True, key="panel_shown"):
        st.markdown(f"**Panel {panel.name}**: {panel.describe_rule()}")
        st.dataframe(
            [
                {
                    "aspect": a,
                    "judges": _judges_text(resolved[a], labels),
                    "chosen": "named" if a in panel.judges else "every judge with verdicts",
                }
                for a in ASPECTS
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption(
            f"Scale: {SCALE_HELP[panel.scale]}. Placeholder verdicts "
            + ("included." if panel.include_placeholders else "left out.")
        )

    # --- preset, weight and RESET-S
    c1, c2 = st.columns(2)
    preset = c1.selectbox("Preset", ["reset", "reset_s", "custom"], key="preset", help=S("preset"))
    weight = c2.slider("w", 0.0, 5.0, 2.0, 0.1, key="weight", help=S("weight"))
    extra: dict = {}
    if preset == "reset_s":
        st.caption(
            "RESET-S: " + FRACTION_HELP + ". The same cut makes a RESET-S curated set on Train."
        )
        c1, c2 = st.columns(2)
        extra["reset_s_fraction"] = c1.number_input(
            "Fraction kept",
            0.01,
            1.0,
            SelectionConfig.model_fields["reset_s_fraction"].default,
            0.01,
            key="reset_s_fraction",
            help=S("reset_s_fraction"),
        )
        extra["require_agreement"] = c2.checkbox(
            "Judges must agree", key="rs_agree", help=S("require_agreement")
        )
    elif preset == "custom":
        c1, c2, c3, c4 = st.columns(4)
        extra["top_k"] = c1.number_input("Top-k", 1, 1000, 1, key="top_k", help=S("top_k"))
        target = c2.number_input(
            "Target size (0 = all)", 0, value=0, key="target", help=S("target_size")
        )
        thr = c3.number_input(
            "Threshold (0 = none)", 0.0, value=0.0, key="thr", help=S("threshold")
        )
        extra["require_agreement"] = c4.checkbox(
            "Judges must agree", key="cu_agree", help=S("require_agreement")
        )
        extra["target_size"] = target or None
        extra["threshold"] = thr or None
    try:
        cfg = SelectionConfig(
            preset=preset, weight=weight, panel=panel, split=split, **scope, **extra
        )
    except ValidationError as e:
        st.error(validation_message(e))
        return

    prev = preview_selection(cur, cfg)
    with st.container(key="scores_and_picks"):
        m = st.columns(4)
        m[0].metric("Picks", f"{prev.n_picked:,}")
        m[1].metric("Examples with a pick", f"{prev.n_examples_with_pick:,} / {prev.n_examples:,}")
        m[2].metric(
            "Not rankable",
            f"{prev.n_unrankable:,} / {prev.n_candidates:,}",
            help=f"Candidates of the {cfg.split} split missing a valid verdict for an aspect "
            "their kind needs (task, and instruction or faithfulness): never picked.",
        )
        m[3].metric(
            "Picks changed",
            "-" if prev.n_changed is None else f"{prev.n_changed:,}",
            help=f"examples whose pick differs from the saved selection {prev.compared_to}",
        )
    if prev.n_unrankable:
        why = "not judged yet, or the judge failed" + (
            f", or the judges differ by more than δ = {panel.delta:g}"
            if panel.combine == "agree"
            else ""
        )
        st.warning(
            f"{prev.n_unrankable:,} of the {prev.n_candidates:,} candidates in the {cfg.split} "
            "split cannot be ranked: an aspect their kind needs (task, and instruction for "
            "open-ended or faithfulness for context examples) has no valid verdict of the "
            f"panel's judges ({why}). They are never picked until judged."
        )
    if st.button("Save selection", type="primary", key="save_selection"):
        res = save_selection(cur, cfg)
        st.success(f"saved {res.selection_id} with panel {panel.name}: {res.n_picked:,} picks")

    score_distributions(cur, panel, split, model_ids, stamp, resolved)
    saved_selections(cur)


def score_distributions(cur, panel, split, model_ids, stamp, resolved) -> None:
    """Each panel judge's scores before and after the panel's scale method."""
    st.subheader("What the scale method does")
    n_verdicts = int(summary["n"].sum())
    # Binning every verdict on a scale takes tens of seconds at millions of verdicts, and
    # a running query holds the page: shown at once on small runs, on request on large ones.
    if not st.toggle(
        "Show each judge's score distribution",
        value=n_verdicts <= DIST_AT_ONCE,
        key="show_dist",
        help=f"Histograms of the panel judges' verdicts before and after the scale method. "
        f"Computed once per panel and cached; with {n_verdicts:,} verdicts "
        + ("this is quick." if n_verdicts <= DIST_AT_ONCE else "this takes a while."),
    ):
        return
    before, after = _distribution(
        cur,
        ui.db_path(),
        stamp,
        panel.model_dump_json(),
        split,
        None if model_ids is None else tuple(sorted(model_ids)),
    )
    if after.empty:
        st.caption("No valid verdicts of the panel's judges on these candidates.")
        return
    aspect = st.radio(
        "Aspect",
        [a for a in ASPECTS if resolved[a]],
        horizontal=True,
        key="dist_aspect",
        help="Each judge's verdicts on the candidates being ranked, before (its own [0,1] "
        "score) and after the panel's scale method: the scores the rule combines.",
    )
    cols = st.columns(2)
    for col, d, which, when, title in (
        (cols[0], before, "linear", "before", SCALE_HELP["linear"]),
        (cols[1], after, panel.scale, "after", SCALE_HELP[panel.scale]),
    ):
        d = d[d["aspect"] == aspect]
        fig = go.Figure()
        for judge_id, g in d.groupby("judge_id"):
            fig.add_bar(x=(g["lo"] + g["hi"]) / 2, y=g["n"], width=g["hi"] - g["lo"], name=judge_id)
        fig.update_layout(
            title=f"{when}: {title}",
            barmode="overlay",
            height=320,
            margin={"t": 40, "b": 20},
            xaxis_title="score" if which != "standard" else "z-score",
            yaxis_title="verdicts",
            legend={"orientation": "h"},
        )
        fig.update_traces(opacity=0.55)
        col.plotly_chart(fig, key=f"dist_{when}_{aspect}", width="stretch")


@st.cache_data(show_spinner=False, max_entries=16)
def _selection_rows(_con, db: str, selection_id: str, picks_only: bool, n_events: int):
    """A stored selection's first rows: seconds at a million candidates. A stored
    selection never changes and its overrides only with a new review event, so a live
    re-rank does not read it again."""
    return selection_rows(_con, selection_id, picks_only=picks_only, limit=200)


def saved_selections(cur) -> None:
    sels = list_selections(cur)
    if sels.empty:
        return
    st.subheader("Saved selections")
    st.dataframe(sels, hide_index=True, width="stretch", key="selections_list")
    sel = sels["selection_id"].iloc[0]
    st.markdown(f"**Latest: {sel}**")
    only_picks = st.checkbox("Picks only", value=True, key="only_picks")
    st.dataframe(
        _selection_rows(cur, ui.db_path(), sel, only_picks, event_count(cur)),
        hide_index=True,
        width="stretch",
    )


scores_and_picks()
