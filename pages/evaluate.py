"""Evaluate: checkpoints answer frozen test sets; compare them, browse before/after, report.

Four tabs, run lazily (only the open one works; the tab is in the URL, so a link can
open ``/evaluate?ev_tab=Results&evaluation=eval-…``):

- New evaluation: checkpoints, baseline, test set, decoding, judge panel, Start;
- Results: the frozen panel, the comparison tables, IFEval, K-Precision, the
  instruction/faithfulness plane, report downloads;
- Before/after: one example answered by two checkpoints side by side, with scores;
- Experiments: the paper's recipes (and the user's) one click each.

Runs in flight are advanced by a polled fragment at the top (``advance_evaluation``
and ``advance_experiment`` never block: they sync the jobs and start the next one).
"""

from __future__ import annotations

import json
import typing

import pandas as pd
import streamlit as st
from pydantic import ValidationError

import ui
from reset_core.aspects import ASPECTS
from reset_core.config_file import default as config_default
from reset_core.errors import validation_message
from reset_core.evaluation import benchmarks, charts, compare, experiments, report
from reset_core.evaluation import launch as evaluations
from reset_core.evaluation import queries as eval_queries
from reset_core.evaluation.config import GREEDY, EvalConfig, TestSet
from reset_core.evaluation.ifeval import MEASURES
from reset_core.ingest.queries import distinct_values
from reset_core.judging.queries import judge_labels
from reset_core.models import DEFAULT_MODEL_NAME, ModelUnavailable, default_model_path
from reset_core.options import help_text
from reset_core.review.text import escape_markdown
from reset_core.sampling.settings import DecodingSetting
from reset_core.scoring.panels import list_panels
from reset_core.training import queries as training_queries
from reset_core.training.launch import ensure_model

TABS = ["New evaluation", "Results", "Before/after", "Experiments"]
#: Evaluation statuses with work left (the fragment advances them).
UNFINISHED = ("planned", "sampling", "judging")
#: Rows per window of the before/after list.
PAIRS_PAGE = 25
#: The decoding fields an evaluation sets (n is always 1: one answer per checkpoint).
DECODING_FIELDS = ("temperature", "top_k", "top_p", "max_tokens", "seed")
EMBEDDED = "embedded"  # the choice standing for the embedded model before it is registered

E = lambda name: help_text(EvalConfig, name)  # noqa: E731 - short alias for widget help
T = lambda name: help_text(TestSet, name)  # noqa: E731
D = lambda name: help_text(DecodingSetting, name)  # noqa: E731

NUMBER = st.column_config.NumberColumn
TABLE_COLUMNS = {
    "label": st.column_config.TextColumn("checkpoint"),
    "is_baseline": st.column_config.CheckboxColumn("baseline", width="small"),
    "n": NUMBER("n", help="Answers with a valid score."),
    "mean": NUMBER("mean", format="%.3f", help="Mean aspect score of the answers scored."),
    "mean_ci_low": NUMBER("mean CI low", format="%.3f", help="95% bootstrap CI of the mean."),
    "mean_ci_high": NUMBER("mean CI high", format="%.3f", help="95% bootstrap CI of the mean."),
    "value": NUMBER("accuracy", format="%.3f"),
    "measure_text": st.column_config.TextColumn("measure"),
    "delta_ci_low": NUMBER("Δ CI low", format="%+.3f", help="Bootstrap CI of the delta."),
    "delta_ci_high": NUMBER("Δ CI high", format="%+.3f", help="Bootstrap CI of the delta."),
    "n_prompts": NUMBER("prompts", help="Prompts scored at prompt level."),
    "n_unscored": NUMBER(
        "unscored",
        help="Prompts with an instruction that could not be checked: counted here with "
        "their reason, never as failed.",
    ),
    "delta": NUMBER(
        "Δ vs baseline",
        format="%+.3f",
        help="Mean paired difference to the baseline over the examples both answered and "
        "got scored on.",
    ),
    "ci_low": NUMBER("95% CI low", format="%+.3f", help="Bootstrap CI of the mean delta."),
    "ci_high": NUMBER("95% CI high", format="%+.3f", help="Bootstrap CI of the mean delta."),
    "p_value": NUMBER("p", format="%.3g", help="Paired test (Wilcoxon signed-rank)."),
    "n_missing": NUMBER(
        "missing", help="Answers without a valid score on this aspect (failed or not yet judged)."
    ),
    "n_pairs": NUMBER("pairs", help="Examples scored for both this checkpoint and the baseline."),
}


def decoding_input(name: str, default, key: str):
    """One DecodingSetting field as a number input, with its help text."""
    info = DecodingSetting.model_fields[name]
    if info.annotation is float:
        return float(
            st.number_input(name, value=float(default), format="%g", help=D(name), key=key)
        )
    return int(st.number_input(name, value=int(default), step=1, help=D(name), key=key))


def literal_choice(model, name: str, key: str, label: str | None = None):
    """A Literal field of a pydantic model as a selectbox with its choices and help."""
    info = model.model_fields[name]
    choices = list(typing.get_args(info.annotation))
    return st.selectbox(
        label or name.replace("_", " "),
        choices,
        index=choices.index(config_default(model, name)),  # reset-studio.toml, else the model's
        help=info.description,
        key=key,
    )


# ----------------------------------------------------------------------------- progress


def unfinished(table: pd.DataFrame, column: str, statuses) -> list[str]:
    if table.empty:
        return []
    return table.loc[table["status"].isin(statuses), column].tolist()


def progress_view(watch_evals: list[str], watch_exps: list[str]) -> None:
    """Advance every unfinished evaluation and running experiment; show where each is.

    Polled while any is in flight. ``advance_*`` only syncs jobs and starts the next
    one, so each poll is quick. When one that was in flight at the last full page run
    ends, the whole page reruns once (lists, results and polling refresh).
    """
    cur = ui.cursor()
    db = ui.db_path()
    still = []
    for experiment_id in watch_exps:
        p = experiments.advance_experiment(cur, db, experiment_id)
        if p.status == "running":
            still.append(experiment_id)
        with st.container(border=True):
            st.markdown(f"**Experiment {escape_markdown(experiment_id)}** · {p.status}")
            experiment_progress(p)
    for evaluation_id in watch_evals:
        p = evaluations.advance_evaluation(cur, db, evaluation_id)
        if p.status in UNFINISHED:
            still.append(evaluation_id)
        c1, c2 = st.columns([5, 1])
        with c1:
            evaluation_progress(p)
        if p.status in UNFINISHED and c2.button("Cancel", key=f"ev_cancel_{evaluation_id}"):
            evaluations.cancel_evaluation(cur, evaluation_id)
            st.rerun()
    if set(watch_evals + watch_exps) - set(still):
        st.rerun()  # one ended: refresh the lists and results, stop polling if none is left


def evaluation_progress(p) -> None:
    """An evaluation's answers and verdicts as two progress bars and its message."""
    st.markdown(f"**{escape_markdown(p.evaluation_id)}** · {p.status} · {p.stage or ''}")
    answers = p.answers_done / p.answers_total if p.answers_total else 0.0
    verdicts = p.verdicts_done / p.verdicts_total if p.verdicts_total else 0.0
    st.progress(min(answers, 1.0), text=f"answers {p.answers_done:,} / {p.answers_total:,}")
    st.progress(min(verdicts, 1.0), text=f"verdicts {p.verdicts_done:,} / {p.verdicts_total:,}")
    if p.message:
        st.caption(p.message)


# ----------------------------------------------------------------------------- new evaluation


def checkpoint_choices(con) -> tuple[dict[str, str], list[str]]:
    """Every registered model by label (plus the embedded one, unregistered), and defaults.

    The defaults are the newest trained model's lineage, root first: base, MTL, each
    RESET round (what the paper compares). Without a trained model: the first three.
    """
    labels = training_queries.model_labels(con)
    models = training_queries.trained_models(con)
    choices = dict(labels)
    try:
        embedded = str(default_model_path())
    except ModelUnavailable:
        embedded = None
    if embedded and not any(
        p == embedded and not a for p, a in zip(models["path"], models["adapter_path"], strict=True)
    ):
        choices[EMBEDDED] = f"{DEFAULT_MODEL_NAME} (embedded)"
    trained = [
        m for m, run in zip(models["model_id"], models["training_run_id"], strict=True) if run
    ]
    if trained:
        chain = training_queries.lineage(con, trained[0])
        defaults = [n["model_id"] for n in reversed(chain) if n["model_id"] in choices]
    else:
        defaults = list(choices)[:3]
    return choices, defaults


def default_baseline(con, chosen: list[str]) -> str:
    """The MTL checkpoint when it is among the chosen (the paper's baseline), else the first."""
    stages = training_queries.trained_models(con).set_index("model_id")["stage"].to_dict()
    mtl = [m for m in chosen if str(stages.get(m) or "").lower() == "mtl"]
    return mtl[0] if mtl else chosen[0]


def benchmark_installer(con) -> None:
    """Each built-in benchmark: installed or not, and a button that installs it."""
    for b in benchmarks.benchmark_status(con):
        c1, c2 = st.columns([3, 2], vertical_alignment="center")
        installed, total = b["installed"], b["total"]
        c1.markdown(
            f"**{escape_markdown(b['title'])}** (source `{b['name']}`, {b['license']}): "
            f"{installed:,} of {total:,} prompts installed as test data."
            + (f" {b['in_seen']:,} sit in the seen split (training data)." if b["in_seen"] else "")
        )
        short = b["title"].split(":")[0]  # "IFEval: instruction following …" -> "IFEval"
        if installed + b["in_seen"] < total and c2.button(
            f"Install {short} ({total:,} prompts)", key=f"ev_install_{b['name']}"
        ):
            try:
                r = benchmarks.install_benchmark(con, b["name"])
            except (ValueError, OSError) as e:
                st.error(str(e))
            else:
                st.session_state["ev_msg"] = (
                    f"{short}: {r['added']:,} prompts added, {r['already_present']:,} "
                    f"already present; {r['installed']:,} in the test splits."
                )
                st.rerun()


def test_set_widgets(con) -> TestSet | None:
    """Splits, kinds, sources, count, seed (and the benchmarks to install) as a TestSet."""
    st.subheader("Test set")
    with st.expander("Built-in benchmarks", expanded=True):
        benchmark_installer(con)
    t1, t2, t3, t4, t5 = st.columns([2, 2, 2, 1, 1])
    split_ann = TestSet.model_fields["splits"].annotation  # list[Literal[...]]
    split_choices = list(typing.get_args(typing.get_args(split_ann)[0]))
    splits = t1.multiselect(
        "Splits",
        split_choices,
        default=config_default(TestSet, "splits"),
        key="ev_splits",
        help=T("splits"),
    )
    kinds = t2.multiselect("Kinds", ["instruction", "context"], key="ev_kinds", help=T("kinds"))
    sources = t3.multiselect(
        "Sources", distinct_values(con, "source"), key="ev_sources", help=T("sources")
    )
    count = t4.number_input(
        "Count",
        min_value=1,
        value=config_default(TestSet, "count"),
        step=50,
        key="ev_count",
        help=T("count"),
    )
    seed = t5.number_input("Seed", min_value=0, value=0, key="ev_seed", help=T("seed"))
    per_source = st.checkbox("Count per source", key="ev_per_source", help=T("per_source"))
    try:
        return TestSet(
            splits=splits,
            kinds=kinds,
            sources=sources,
            count=int(count),
            seed=int(seed),
            per_source=per_source,
        )
    except ValidationError as e:
        st.error(validation_message(e))
        return None


def test_set_count(con, tests: TestSet | None) -> int:
    """How many examples the test set matches now, shown live under its widgets."""
    if tests is None:
        return 0
    size = evaluations.test_set_size(con, tests)
    line = evaluations.describe_test_set_size(size)
    if size["total"]:
        st.container(key="ev_test_size").markdown(f"**{escape_markdown(line)}**")
    else:
        st.error(
            f"{line} match these filters (splits {', '.join(tests.splits) or 'none'}, "
            f"kinds {', '.join(tests.kinds) or 'any'}, sources {', '.join(tests.sources) or 'any'}): "
            "import a test set or split one off on the Data page, install a benchmark above, "
            "or widen the filters. Start stays off until one matches."
        )
    return size["total"]


def decoding_widgets() -> DecodingSetting | None:
    """The one decoding setting every checkpoint answers with: greedy unless changed."""
    st.subheader("Decoding")
    st.caption(
        "One setting for every checkpoint, one answer per example: greedy (temperature 0) "
        "by default, so a difference is the checkpoint's, not the sampler's."
    )
    cols = st.columns(len(DECODING_FIELDS))
    values = {}
    for col, name in zip(cols, DECODING_FIELDS, strict=True):
        with col:
            default = config_default(DecodingSetting, name, getattr(GREEDY, name))
            values[name] = decoding_input(name, default, f"ev_dec_{name}")
    try:
        return DecodingSetting(**values, n=1)
    except ValidationError as e:
        st.error(validation_message(e))
        return None


def new_evaluation(con, db: str) -> None:
    """Choose checkpoints, baseline, test set, decoding and panel; Start."""
    if msg := st.session_state.pop("ev_msg", None):
        st.success(msg)
    choices, defaults = checkpoint_choices(con)
    if not choices:
        st.info(
            "No models yet: sample with a model (Sample page) or train one (Train page); "
            "registered models and checkpoints are listed here."
        )
        return
    st.subheader("Checkpoints")
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect(
        "Checkpoints",
        list(choices),
        default=defaults,
        format_func=choices.get,
        key="ev_checkpoints",
        help=E("checkpoints"),
    )
    baseline = None
    if chosen:
        suggested = default_baseline(con, chosen)
        if st.session_state.get("ev_baseline") not in chosen:
            st.session_state["ev_baseline"] = suggested
        baseline = c2.selectbox(
            "Baseline", chosen, format_func=choices.get, key="ev_baseline", help=E("baseline")
        )
    tests = test_set_widgets(con)
    n_tests = test_set_count(con, tests)
    decoding = decoding_widgets()
    st.subheader("Judges")
    p1, p2, p3, p4 = st.columns([2, 1, 1, 2])
    panel = p1.selectbox(
        "Panel", [p.name for p in list_panels(con)], key="ev_panel", help=E("panel")
    )
    with p2:
        engine = literal_choice(EvalConfig, "engine", "ev_engine", "Engine")
    batch = p3.number_input(
        "Batch size",
        1,
        4096,
        config_default(EvalConfig, "batch_size"),
        key="ev_batch",
        help=E("batch_size"),
    )
    name = p4.text_input("Name", key="ev_name", help=E("name"))
    ready = bool(chosen) and tests is not None and decoding is not None and n_tests > 0
    if not chosen:
        st.warning("Choose at least one checkpoint.")
    if st.button("Start evaluation", type="primary", key="ev_start", disabled=not ready):
        labels = {m: choices[m] for m in chosen}
        if EMBEDDED in chosen:  # registered now, under the id every later run finds it by
            model_id = ensure_model(con, str(default_model_path()), name=DEFAULT_MODEL_NAME)
            labels[model_id] = labels.pop(EMBEDDED)
            chosen = [model_id if m == EMBEDDED else m for m in chosen]
            baseline = model_id if baseline == EMBEDDED else baseline
        try:
            cfg = EvalConfig(
                name=name.strip() or None,
                checkpoints=chosen,
                baseline=baseline,
                tests=tests,
                decoding=decoding,
                panel=panel,
                engine=engine,
                batch_size=int(batch),
            )
            evaluation_id = evaluations.create_evaluation(con, db, cfg, labels=labels)
        except ValidationError as e:
            st.error(validation_message(e))
        except ValueError as e:
            st.error(str(e))
        else:
            p = evaluations.advance_evaluation(con, db, evaluation_id)
            st.session_state["ev_launched"] = evaluation_id
            st.session_state["ev_msg"] = (
                f"Started evaluation {evaluation_id}: {p.message or p.status}. "
                "Its progress shows above; its results in the Results tab."
            )
            st.rerun()


def evaluation_list(evals: pd.DataFrame) -> None:
    st.subheader("Evaluations")
    if evals.empty:
        st.info("No evaluations yet.")
    else:
        st.dataframe(evals, hide_index=True, width="stretch", key="ev_list")


# ----------------------------------------------------------------------------- results


def pick_evaluation(evals: pd.DataFrame, key: str) -> str | None:
    """An evaluation picker: the one just launched or linked by URL, else the newest."""
    if evals.empty:
        st.info("No evaluations yet: start one in the New evaluation tab.")
        return None
    ids = evals["evaluation_id"].tolist()
    linked = st.query_params.get("evaluation")
    if linked in ids and st.session_state.get(f"_linked_{key}") != linked:
        st.session_state[key] = linked  # once per link, so the user can pick another
        st.session_state[f"_linked_{key}"] = linked
    ui.follow_launched("ev_launched", key)
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    rows = evals.set_index("evaluation_id")

    def label(e: str) -> str:
        name = rows.loc[e, "name"]
        return f"{name if pd.notna(name) and name else e} · {rows.loc[e, 'status']} · {e}"

    return st.selectbox("Evaluation", ids, format_func=label, key=key)


def comparison(con, evaluation_id: str, baseline: str | None, stamp: str):
    """``compare.compare`` kept per (evaluation, baseline, state): the bootstrap is not free.

    Kept in session state, one at a time. ``stamp`` is the evaluation's status and
    finish time (a finished evaluation never changes), plus a refresh count while it runs.
    """
    key = (evaluation_id, baseline, stamp)
    kept = st.session_state.get("_ev_comparison")
    if kept and kept[0] == key:
        return kept[1]
    with st.spinner("Comparing the checkpoints (bootstrap CIs, paired tests)…"):
        c = compare.compare(con, evaluation_id, baseline=baseline)
    st.session_state["_ev_comparison"] = (key, c)
    return c


def frozen_panel(con, info: dict) -> None:
    """Which judges score each aspect, and their rubric versions, as frozen at creation."""
    frozen = info.get("frozen") or {}
    labels = judge_labels(con)
    specs = frozen.get("specs") or {}
    rows = []
    for aspect, ids in (frozen.get("judges") or {}).items():
        for judge_id in ids:
            spec = specs.get(judge_id) or {}
            rubric = (spec.get("rubrics") or {}).get(aspect) or {}
            rows.append(
                {
                    "aspect": aspect,
                    "judge": labels.get(judge_id, judge_id),
                    "kind": spec.get("type", ""),
                    "rubric version": str(rubric.get("version", "none (a metric)")),
                }
            )
    panel = frozen.get("panel") or {}
    st.markdown(
        f"**Judge panel** `{escape_markdown(str(panel.get('name', info['config'].get('panel'))))}`"
        ", frozen when the evaluation was created: later edits to rubrics or panels do not "
        "change it."
    )
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="ev_panel_table")
    else:
        st.warning("This evaluation froze no judges: its answers are not scored.")


def aspect_tables(c, aspect: str) -> None:
    """One aspect's table per kind and split: means, paired deltas, CIs, p-values, missing."""
    t = c.table[c.table["aspect"] == aspect]
    if t.empty:
        st.caption(f"No {aspect} scores in this evaluation.")
        return
    # The comparison's own columns, less what the tab and the label already say.
    shown = [col for col in compare.TABLE_COLUMNS if col not in ("aspect", "model_id")]
    st.dataframe(
        t[[col for col in shown if col in t.columns]],
        hide_index=True,
        width="stretch",
        column_config=TABLE_COLUMNS,
        key=f"ev_table_{aspect}",
    )
    st.plotly_chart(charts.delta_figure(c, aspect), key=f"ev_delta_{aspect}")


def ifeval_table(c) -> None:
    """IFEval's four accuracies per checkpoint, with CIs and deltas, and what went unscored."""
    st.markdown("**IFEval accuracy**")
    df = c.ifeval
    if df is None or df.empty:
        st.caption(
            "No IFEval verdicts: the panel has no IFEval judge or the test set no IFEval "
            "prompts (install IFEval in the New evaluation tab; its source is ifeval)."
        )
        return
    st.caption(
        "Prompt level: every instruction of a prompt followed; instruction level: the share "
        "of instructions followed. Strict checks the answer as given; loose also after "
        "dropping its first or last line or its markup (IFEval's definitions). A prompt "
        "with an instruction that could not be checked is unscored, never failed."
    )
    order = {m: i for i, m in enumerate(MEASURES)}
    df = df.sort_values("measure", key=lambda col: col.map(order), kind="stable")
    cols = [
        "label",
        "is_baseline",
        "measure_text",
        "value",
        "ci_low",
        "ci_high",
        "delta",
        "delta_ci_low",
        "delta_ci_high",
        "n_prompts",
        "n_unscored",
    ]
    st.dataframe(
        df[[col for col in cols if col in df.columns]],
        hide_index=True,
        width="stretch",
        column_config={
            **TABLE_COLUMNS,
            "ci_low": NUMBER("CI low", format="%.3f"),
            "ci_high": NUMBER("CI high", format="%.3f"),
        },
        key="ev_ifeval",
    )
    reasons = df.drop_duplicates("model_id")
    for row in reasons.itertuples():
        if row.n_unscored:
            why = row.unscored_reasons
            text = "; ".join(f"{k} ({v})" for k, v in why.items()) if isinstance(why, dict) else why
            st.caption(f"{row.label}: {row.n_unscored} prompts unscored: {text}.")


def kprecision_table(c) -> None:
    st.markdown("**K-Precision** (how much of the answer's knowledge the passage supports)")
    df = c.kprecision
    if df is None or df.empty:
        st.caption(
            "No K-Precision verdicts: the panel has no knowledge_precision judge or the test "
            "set no context examples."
        )
        return
    # The comparison's own columns, split first, less the model id and the test's name.
    cols = ["split"] + [
        col for col in compare.KPRECISION_COLUMNS if col not in ("model_id", "split", "test")
    ]
    st.dataframe(
        df[[col for col in cols if col in df.columns]],
        hide_index=True,
        width="stretch",
        column_config=TABLE_COLUMNS,
        key="ev_kprec",
    )


def report_downloads(evaluation_id: str) -> None:
    """The report as one offline HTML file and as Markdown, built when clicked."""
    db = ui.db_path()
    d1, d2 = st.columns(2)
    # Built on click (a callable): the HTML inlines plotly's JS, several MB per build.
    d1.download_button(
        "Download report (HTML, opens offline)",
        data=lambda: report.report_html(ui.cursor(db), evaluation_id=evaluation_id),
        file_name=f"{evaluation_id}.html",
        mime="text/html",
        key="ev_dl_html",
        on_click="ignore",
    )
    d2.download_button(
        "Download tables (Markdown)",
        data=lambda: report.report_markdown(ui.cursor(db), evaluation_id=evaluation_id),
        file_name=f"{evaluation_id}.md",
        mime="text/markdown",
        key="ev_dl_md",
        on_click="ignore",
    )


def results(con, evals: pd.DataFrame) -> None:
    evaluation_id = pick_evaluation(evals, "ev_pick")
    if evaluation_id is None:
        return
    info = eval_queries.get_evaluation(con, evaluation_id)
    checkpoints = sorted(info["checkpoints"], key=lambda c: c["position"])
    labels = {c["model_id"]: c["label"] for c in checkpoints}
    if info["status"] == "failed":
        st.error(f"This evaluation failed: {info.get('error') or 'no error recorded'}")
        if st.button("Resume (make only the missing answers and verdicts)", key="ev_resume"):
            evaluations.resume_evaluation(con, evaluation_id)
            evaluations.advance_evaluation(con, ui.db_path(), evaluation_id)
            st.rerun()
    elif info["status"] != "done":
        st.info(
            f"This evaluation is {info['status']}: the tables show the answers and verdicts "
            "made so far (missing ones are counted)."
        )
    frozen_panel(con, info)
    cfg = EvalConfig.model_validate(info["config"])
    ids = [c["model_id"] for c in checkpoints]
    if st.session_state.get("ev_res_baseline") not in ids:
        st.session_state["ev_res_baseline"] = cfg.baseline_id
    baseline = st.selectbox(
        "Baseline", ids, format_func=labels.get, key="ev_res_baseline", help=E("baseline")
    )
    # A finished evaluation no longer changes; one in flight is recomputed on request.
    stamp = f"{info['status']}|{info.get('finished_at')}"
    if info["status"] in UNFINISHED:
        if st.button("Refresh the tables with the latest verdicts", key="ev_refresh"):
            st.session_state["_ev_refreshes"] = st.session_state.get("_ev_refreshes", 0) + 1
        stamp += f"|{st.session_state.get('_ev_refreshes', 0)}"
    c = comparison(con, evaluation_id, baseline, stamp)
    sizes = c.table[c.table["model_id"] == baseline].drop_duplicates(["kind", "split"])
    m = st.columns(2 + len(sizes))
    m[0].metric("Test examples", f"{info['n_examples']:,}")
    m[1].metric("Checkpoints", len(ids))
    for col, row in zip(m[2:], sizes.itertuples(), strict=True):
        col.metric(f"{row.kind} · {row.split}", f"{row.n + row.n_missing:,}")
    st.subheader("Instruction following vs faithfulness")
    st.plotly_chart(charts.plane_figure(c), key="ev_plane")
    st.subheader("Per aspect")
    st.caption(c.method)
    for aspect, tab in zip(ASPECTS, st.tabs(list(ASPECTS)), strict=True):
        with tab:
            aspect_tables(c, aspect)
    st.subheader("Benchmarks")
    ifeval_table(c)
    kprecision_table(c)
    st.subheader("Report")
    report_downloads(evaluation_id)
    with st.expander("Configuration"):
        st.code(json.dumps(info["config"], indent=2), language="json")


# ----------------------------------------------------------------------------- before/after


#: The before/after list's orders (``compare.PAIR_ORDERS``), as the page says them.
ORDER_TEXT = {
    "delta": "B's regressions first",
    "-delta": "B's gains first",
    "abs": "largest change first",
    "example": "by example id",
}


def before_after(con, evals: pd.DataFrame) -> None:
    """Two checkpoints, filters, a window ordered by delta, one example side by side."""
    evaluation_id = pick_evaluation(evals, "ba_pick")
    if evaluation_id is None:
        return
    info = eval_queries.get_evaluation(con, evaluation_id)
    checkpoints = sorted(info["checkpoints"], key=lambda c: c["position"])
    ids = [c["model_id"] for c in checkpoints]
    labels = {c["model_id"]: c["label"] for c in checkpoints}
    if len(ids) < 2:
        st.info("This evaluation has one checkpoint: nothing to compare side by side.")
        return
    cfg = EvalConfig.model_validate(info["config"])
    c1, c2 = st.columns(2)
    if st.session_state.get("ba_a") not in ids:
        st.session_state["ba_a"] = cfg.baseline_id
    if st.session_state.get("ba_b") not in ids:
        st.session_state["ba_b"] = next(m for m in reversed(ids) if m != cfg.baseline_id)
    a = c1.selectbox("Before (A)", ids, format_func=labels.get, key="ba_a")
    b = c2.selectbox("After (B)", ids, format_func=labels.get, key="ba_b")
    f1, f2, f3, f4 = st.columns(4)
    aspect = f1.selectbox(
        "Aspect",
        [None, *ASPECTS],
        format_func=lambda x: x or "its kind's (instruction / faithfulness)",
        key="ba_aspect",
        help="The score of an answer: the mean of the frozen panel's judges on this aspect. "
        "By default each example on its kind's aspect: instruction following for "
        "open-ended examples, faithfulness for grounded ones.",
    )
    kind = f2.selectbox("Kind", [None, "instruction", "context"], format_func=_all, key="ba_kind")
    split = f3.selectbox("Split", [None, *cfg.tests.splits], format_func=_all, key="ba_split")
    order = f4.selectbox(
        "Order", list(compare.PAIR_ORDERS), format_func=ORDER_TEXT.get, key="ba_order"
    )
    if st.session_state.get("_ba_filter") != (evaluation_id, a, b, aspect, kind, split, order):
        st.session_state["ba_page"] = 1  # a new list starts at its first window
        st.session_state["_ba_filter"] = (evaluation_id, a, b, aspect, kind, split, order)
    w1, w2 = st.columns([1, 4], vertical_alignment="bottom")
    page = int(w1.number_input("Window", min_value=1, value=1, step=1, key="ba_page")) - 1
    pairs = compare.answer_pairs(
        con,
        evaluation_id,
        a,
        b,
        aspect=aspect,
        kind=kind,
        split=split,
        order=order,
        limit=PAIRS_PAGE,
        offset=page * PAIRS_PAGE,
    )
    n_total = pairs.attrs.get("n_total", len(pairs))
    if pairs.empty:
        st.info(
            f"No examples here: the filter matches {n_total:,}, and this window starts at "
            f"{page * PAIRS_PAGE + 1:,}."
        )
        return
    w2.caption(
        f"Examples {page * PAIRS_PAGE + 1:,}–{page * PAIRS_PAGE + len(pairs):,} of "
        f"{n_total:,}; B − A is NULL where either answer has no score yet. Click a row "
        "(or pick below) to open it."
    )
    event = st.dataframe(
        pairs,
        hide_index=True,
        width="stretch",
        key="ba_table",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "score_a": NUMBER("A", format="%.3f", help=labels[a]),
            "score_b": NUMBER("B", format="%.3f", help=labels[b]),
            "delta": NUMBER("B − A", format="%+.3f"),
            "instruction": st.column_config.TextColumn("instruction", width="large"),
        },
    )
    shown = pairs["example_id"].tolist()
    rows = event.selection.rows if event and event.selection else []
    clicked = shown[rows[0]] if rows else None
    if clicked and clicked != st.session_state.get("_ba_clicked"):
        st.session_state["ba_example"] = clicked  # a new click wins over the picker
    st.session_state["_ba_clicked"] = clicked
    if st.session_state.get("ba_example") not in shown:
        st.session_state["ba_example"] = shown[0]
    deltas = dict(zip(pairs["example_id"], pairs["delta"], strict=True))
    example_id = st.selectbox(
        "Example",
        shown,
        format_func=lambda e: (
            f"{e} · B − A {deltas[e]:+.3f}" if pd.notna(deltas[e]) else f"{e} · not scored on both"
        ),
        key="ba_example",
    )
    side_by_side(con, evaluation_id, example_id, a, b)


def _all(value):
    return "all" if value is None else value


def side_by_side(con, evaluation_id: str, example_id: str, a: str, b: str) -> None:
    """The example, then each checkpoint's answer with its per-judge scores; a Review link."""
    pair = compare.answer_pair(con, evaluation_id, example_id, a, b)
    ex = pair["example"]
    with st.container(border=True, key="ba_example_view"):
        st.markdown(
            f"**Example {escape_markdown(example_id)}** · {ex['kind']} · {ex['split']} · "
            f"{escape_markdown(str(ex['source']))}"
        )
        st.markdown(escape_markdown(ex["instruction"] or ""))
        if ex.get("context"):
            with st.expander("Context"):
                st.markdown(escape_markdown(ex["context"]))
        if ex.get("reference"):
            with st.expander("Reference answer"):
                st.markdown(escape_markdown(ex["reference"]))
    names = judge_labels(con)
    for col, side in zip(st.columns(2), ("a", "b"), strict=True):
        answer = pair[side]
        with col.container(border=True, key=f"ba_side_{side}"):
            st.markdown(f"**{side.upper()}: {escape_markdown(answer['label'])}**")
            if answer["text"] is None:
                st.warning("This checkpoint has not answered this example yet.")
                continue
            st.markdown(
                " · ".join(f"{asp} **{v:.3f}**" for asp, v in answer["aspects"].items())
                or "No valid scores yet."
            )
            st.markdown(escape_markdown(answer["text"]))
            if answer.get("finish_reason") == "length":
                st.caption("Cut at the decoding setting's max_tokens.")
            verdicts = pd.DataFrame(answer["verdicts"])
            if not verdicts.empty:
                verdicts["judge_id"] = verdicts["judge_id"].map(lambda j: names.get(j, j))
                st.dataframe(
                    verdicts.rename(columns={"judge_id": "judge"}),
                    hide_index=True,
                    width="stretch",
                    key=f"ba_verdicts_{side}",
                    column_config={"score": NUMBER("score", format="%.3f")},
                )
    if pair.get("review_query"):
        st.page_link(
            "pages/review.py",
            label="Open this example in Review",
            query_params={
                "example": example_id,
                **pair["review_query"],
                "via": "the before/after browser",
            },
        )


# ----------------------------------------------------------------------------- experiments


def experiment_progress(p) -> None:
    """An experiment's steps done, the step in flight and its job."""
    done = p.steps_done / p.steps_total if p.steps_total else 0.0
    text = f"{p.steps_done} of {p.steps_total} steps"
    if p.step:
        text += f" · {p.step}" + (f" ({p.job_status})" if p.job_status else "")
    st.progress(min(done, 1.0), text=text)
    if p.message:
        st.caption(p.message)


def experiments_tab(con, db: str) -> None:
    """The recipes (built-in and the user's), one click to start; the experiments run."""
    if msg := st.session_state.pop("ex_msg", None):
        st.success(msg)
    st.subheader("Recipes")
    st.caption(
        "A recipe is data (a TOML file), not code: it trains MTL on references, runs its "
        "RESET arms from it, and ends in one evaluation comparing the checkpoints. Your own "
        f"recipes go in `{experiments.user_recipe_dir(db)}`; the CLI runs them headless "
        "(`reset-studio experiment NAME`)."
    )
    try:
        recipes = experiments.list_recipes(db)
    except ValueError as e:  # a user recipe that does not parse: its file, line and field
        st.error(str(e))
        recipes = {}
    s1, s2, s3 = st.columns(3)
    size = {
        "examples": s1.number_input(
            "Seen examples (0 = the recipe's)",
            0,
            10_000_000,
            0,
            key="ex_examples",
            help="How many seen examples the MTL stage and the RESET arms use.",
        ),
        "tests": s2.number_input(
            "Test examples (0 = the recipe's)",
            0,
            1_000_000,
            0,
            key="ex_tests",
            help="How many test examples the evaluation answers (a seeded subset).",
        ),
        "max_steps": s3.number_input(
            "Training steps (0 = the recipe's)",
            -1,
            1_000_000,
            0,
            key="ex_max_steps",
            help="max_steps of every training run; -1 = full epochs.",
        ),
    }
    overrides = {k: int(v) for k, v in size.items() if v}
    for name, recipe in recipes.items():
        with st.container(border=True, key=f"ex_recipe_{name}"):
            r1, r2 = st.columns([5, 1], vertical_alignment="center")
            r1.markdown(f"**{escape_markdown(name)}**: {escape_markdown(recipe.description)}")
            if r2.button("Run", key=f"ex_start_{name}", type="primary"):
                try:
                    experiment_id = experiments.start_experiment(con, db, recipe, **overrides)
                    experiments.advance_experiment(con, db, experiment_id)
                except (ValueError, ModelUnavailable) as e:
                    st.error(str(e))
                else:
                    st.session_state["ex_launched"] = experiment_id
                    st.session_state["ex_msg"] = (
                        f"Started experiment {experiment_id}; its steps show above as they run."
                    )
                    st.rerun()
    st.subheader("Experiments")
    table = experiments.list_experiments(con)
    if table.empty:
        st.info("No experiments yet.")
        return
    st.dataframe(table, hide_index=True, width="stretch", key="ex_list")
    ids = table["experiment_id"].tolist()
    ui.follow_launched("ex_launched", "ex_pick")
    if st.session_state.get("ex_pick") not in ids:
        st.session_state["ex_pick"] = ids[0]
    experiment_id = st.selectbox("Experiment", ids, key="ex_pick")
    exp = experiments.get_experiment(con, experiment_id)
    if exp["error"]:
        st.error(exp["error"])
    steps = pd.DataFrame(exp["steps"])
    if not steps.empty:
        steps = steps.drop(columns=[c for c in ("outputs",) if c in steps.columns])
        st.dataframe(steps, hide_index=True, width="stretch", key="ex_steps")
    if exp["status"] == "failed" and st.button("Resume the failed step", key="ex_resume"):
        experiments.advance_experiment(con, db, experiment_id, resume=True)
        st.rerun()
    if exp["evaluation_id"]:
        st.page_link(
            "pages/evaluate.py",
            label=f"Its evaluation: {exp['evaluation_id']} →",
            query_params={"ev_tab": "Results", "evaluation": exp["evaluation_id"]},
        )


# ----------------------------------------------------------------------------- page

st.title("Evaluate")
st.caption(
    "Compare checkpoints (base, MTL, each RESET round) on held-out test sets, on equal "
    "terms: one frozen test set, one decoding setting (greedy by default), one frozen judge "
    "panel. Runs reuse the sampling and judging jobs and resume where they stopped."
)
con = ui.cursor()
db = ui.db_path()
evals = eval_queries.list_evaluations(con)
exps = experiments.list_experiments(con)
watch_evals = unfinished(evals, "evaluation_id", UNFINISHED)
watch_exps = unfinished(exps, "experiment_id", ("running",))
if watch_evals or watch_exps:
    st.fragment(run_every=ui.POLL_S)(progress_view)(watch_evals, watch_exps)

tab_new, tab_results, tab_pairs, tab_exps = st.tabs(TABS, key="ev_tab", bind="query-params")
if tab_new.open:
    with tab_new:
        new_evaluation(con, db)
        evaluation_list(evals)
if tab_results.open:
    with tab_results:
        results(con, evals)
if tab_pairs.open:
    with tab_pairs:
        before_after(con, evals)
if tab_exps.open:
    with tab_exps:
        experiments_tab(con, db)
