"""Train: freeze a curated set, export it, continue fine-tuning with LoRA, follow the run."""

from __future__ import annotations

import contextlib
import json
import typing
from pathlib import Path

import plotly.express as px
import streamlit as st
from pydantic import ValidationError

import ui
from reset_core import jobs
from reset_core.config_file import default as config_default
from reset_core.curation import queries as curation_queries
from reset_core.curation import sets as curation
from reset_core.curation.config import CurationSpec
from reset_core.curation.export import FORMATS, FORMS, export_set
from reset_core.errors import validation_message
from reset_core.ingest.queries import distinct_values
from reset_core.models import DEFAULT_MODEL_NAME, ModelUnavailable, default_model_path
from reset_core.options import help_text
from reset_core.review.events import OVERRIDE_KINDS
from reset_core.review.text import escape_markdown
from reset_core.scoring import queries as scoring_queries
from reset_core.training import launch as runs
from reset_core.training import queries as training_queries
from reset_core.training.config import TrainConfig
from reset_core.training.queries import base_model_name

#: Fields shown up front; the rest go under "More settings".
MAIN_FIELDS = ("num_train_epochs", "max_steps", "learning_rate", "lora_r", "lora_alpha", "merge")
NOT_WIDGETS = ("base_model", "adapter_path", "output_dir")


def _widget(name: str, key: str):
    """One input for a TrainConfig field, typed from its annotation, with its help text."""
    info = TrainConfig.model_fields[name]
    # The default is reset-studio.toml's [training] value when it sets one.
    ann, default, helptext = info.annotation, config_default(TrainConfig, name), info.description
    label = name.replace("_", " ")
    args = typing.get_args(ann)
    if ann is bool:
        return st.checkbox(label, value=default, help=helptext, key=key)
    if typing.get_origin(ann) is typing.Literal:
        return st.selectbox(
            label, list(args), index=list(args).index(default), help=helptext, key=key
        )
    if ann is int or (int in args and default is None):
        v = st.number_input(
            label + (" (0 = none)" if default is None else ""),
            value=int(default or 0),
            step=1,
            help=helptext,
            key=key,
        )
        return None if default is None and v == 0 else int(v)
    if ann is float:
        return float(
            st.number_input(label, value=float(default), format="%g", help=helptext, key=key)
        )
    return st.text_input(label, value=str(default), help=helptext, key=key)


# ----------------------------------------------------------------------------- curate


def curate_tab(con, db: str) -> None:
    """Freeze a curated set (from picks or from references), then list and export sets."""
    modes = ["Picks of a scoring run", "References (MTL baseline)"]
    # The guided path starts with the MTL baseline: before any scoring run there are no
    # picks to curate, so the references are what can be frozen first.
    mode = st.radio(
        "Curate from",
        modes,
        index=1 if scoring_queries.list_selections(con).empty else 0,
        horizontal=True,
        key="cur_mode",
        help="RESET trains on the judges' picks; the MTL baseline on the examples' references.",
    )
    examples_kinds = distinct_values(con, "kind")
    examples_sources = distinct_values(con, "source")
    if mode == "Picks of a scoring run":
        curate_from_picks(con, examples_kinds, examples_sources)
    else:
        curate_from_references(con, examples_kinds, examples_sources)
    if msg := st.session_state.pop("cur_msg", None):
        st.success(msg)
    curated_sets(con, db)


def curate_from_picks(con, examples_kinds: list[str], examples_sources: list[str]) -> None:
    """A scoring run's picks with reviewers' overrides: the filters, a preview, Freeze."""
    sels = scoring_queries.list_selections(con)
    if sels.empty:
        st.info("No scoring runs yet: judge candidates and score them on the Judge page first.")
        return
    spec = picks_spec(sels, examples_kinds, examples_sources)
    pv = curation.preview(con, spec)
    curation_preview(pv)
    if st.button(
        "Freeze curated set", type="primary", key="cur_freeze", disabled=pv["n_items"] == 0
    ):
        try:
            set_id = curation.create_curated_set(con, spec)
        except ValueError as e:
            st.error(str(e))
        else:
            st.session_state["cur_msg"] = f"Froze curated set {set_id} ({pv['n_items']} items)."
            st.rerun()


def picks_spec(sels, examples_kinds: list[str], examples_sources: list[str]) -> CurationSpec:
    """The curation widgets (scoring run, preset, size, filters, name) as a spec."""
    c1, c2, c3 = st.columns(3)
    sel = c1.selectbox(
        "Scoring run",
        list(sels["selection_id"]),
        format_func=lambda s: f"{s} ({int(sels.set_index('selection_id').loc[s, 'picks'])} picks)",
        help=help_text(CurationSpec, "selection_id"),
        key="cur_sel",
    )
    preset = c2.radio(
        "Preset",
        ["RESET", "RESET-S"],
        help=help_text(CurationSpec, "preset"),
        key="cur_preset",
    )
    target = c3.number_input(
        "Target size (0 = no cap)",
        0,
        10_000_000,
        0,
        help=help_text(CurationSpec, "target_size"),
        key="cur_target",
    )
    f1, f2, f3, f4 = st.columns(4)
    kinds = f1.multiselect(
        "Kinds", examples_kinds, help=help_text(CurationSpec, "kinds"), key="cur_kinds"
    )
    sources = f2.multiselect(
        "Sources",
        examples_sources,
        help=help_text(CurationSpec, "sources"),
        key="cur_sources",
    )
    use_min = f3.checkbox(
        "Minimum score", key="cur_use_min", help=help_text(CurationSpec, "min_score")
    )
    min_score = f3.number_input(
        "min score", value=0.0, format="%g", key="cur_min", disabled=not use_min
    )
    balance = f4.checkbox(
        "Keep the kind mix",
        True,
        help=help_text(CurationSpec, "balance_kinds"),
        key="cur_balance",
    )
    name = st.text_input("Name", key="cur_name", help=help_text(CurationSpec, "name"))
    return CurationSpec(
        selection_id=sel,
        preset=preset,
        target_size=int(target) or None,
        kinds=kinds,
        sources=sources,
        min_score=min_score if use_min else None,
        balance_kinds=balance,
        name=name,
    )


def curation_preview(pv: dict) -> None:
    """What a curated set would hold: counts, its mix by kind/source/override, its scores."""
    m = st.columns(4)
    m[0].metric("Judge picks", f"{pv['n_judge_picks']:,}")
    m[1].metric("After overrides and filters", f"{pv['n_after_overrides_and_filters']:,}")
    m[2].metric("In the set", f"{pv['n_items']:,}")
    live = pv["live_overrides"]
    m[3].metric(
        "Live overrides",
        f"{sum(live.values()):,}",
        help="Reviewers' vetoes, forced picks, exclusions and rankings in force on this "
        "scoring run's examples. Notes, accepts, manual scores and undone or lifted "
        "actions are not counted.",
    )
    if any(live.values()):
        st.caption(
            "In force: "
            + ", ".join(f"{n:,} {OVERRIDE_KINDS[k][n != 1]}" for k, n in live.items() if n)
            + f" ({pv['n_override_events']:,} review events in all, notes and undos included)."
        )
    if pv["n_without_score"]:
        st.caption(f"{pv['n_without_score']} forced picks have no score (not rankable).")
    g1, g2, g3 = st.columns(3)
    for col, key in ((g1, "by_kind"), (g2, "by_source"), (g3, "by_override")):
        d = pv[key]
        fig = px.bar(x=list(d), y=list(d.values()), labels={"x": key[3:], "y": "items"})
        fig.update_layout(
            height=240, margin=dict(l=10, r=10, t=30, b=10), title=key.replace("_", " ")
        )
        col.plotly_chart(fig, key=f"cur_chart_{key}")
    if pv["scores"]:
        data = [{"kind": k, "score": s} for k, v in pv["score_by_kind"].items() for s in v]
        fig = px.histogram(data, x="score", color="kind", nbins=30, barmode="overlay")
        fig.update_layout(
            height=260, margin=dict(l=10, r=10, t=30, b=10), title="RESET scores kept"
        )
        st.plotly_chart(fig, key="cur_hist")


def curate_from_references(con, examples_kinds: list[str], examples_sources: list[str]) -> None:
    """The MTL baseline's set: examples with a reference, filtered; Freeze."""
    r1, r2, r3, r4 = st.columns(4)
    rkinds = r1.multiselect("Kinds", examples_kinds, default=examples_kinds, key="ref_kinds")
    rsources = r2.multiselect("Sources", examples_sources, key="ref_sources")
    rsplit = r3.selectbox("Split", ["seen", "test_seen", "test_unseen"], key="ref_split")
    rtarget = r4.number_input("Target size (0 = all)", 0, 10_000_000, 0, key="ref_target")
    counts = curation_queries.reference_counts(con, kinds=rkinds, sources=rsources, split=rsplit)
    st.write(
        "Examples with a reference: "
        + (", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none")
    )
    if st.button("Freeze MTL set", type="primary", key="ref_freeze", disabled=not counts):
        try:
            set_id = curation.create_reference_set(
                con,
                kinds=rkinds,
                sources=rsources,
                split=rsplit,
                target_size=int(rtarget) or None,
            )
        except ValueError as e:
            st.error(str(e))
        else:
            st.session_state["cur_msg"] = f"Froze MTL set {set_id}."
            st.rerun()


def curated_sets(con, db: str) -> None:
    """The frozen sets, and exporting one for TRL (with its manifest)."""
    st.subheader("Curated sets")
    sets = curation_queries.list_sets(con)
    if sets.empty:
        st.info("No curated sets yet.")
        return
    st.dataframe(sets, hide_index=True, width="stretch")
    e1, e2, e3, e4 = st.columns([2, 1, 1, 2])
    exp_set = e1.selectbox("Set", list(sets["set_id"]), key="exp_set")
    form = e2.selectbox(
        "Form",
        FORMS,
        key="exp_form",
        help="chat messages, or prompt/completion (loss on the completion)",
    )
    fmt = e3.selectbox(
        "Format",
        FORMATS,
        key="exp_fmt",
        help="hf = a datasets.save_to_disk folder; csv = a sheet to read in a spreadsheet "
        "(formulas neutralised), not for training",
    )
    out_dir = e4.text_input(
        "Folder",
        str(Path(db).resolve().parent / "exports"),
        key="exp_out",
        help="Inside the data root (a relative path is taken from there).",
    )
    if st.button("Export", key="exp_go") and (folder := ui.confined(out_dir, "Folder")):
        try:
            path = export_set(con, exp_set, folder, form=form, fmt=fmt)
        except (FileExistsError, ValueError, OSError) as e:
            st.error(str(e))
        else:
            use = "a sheet to read" if fmt == "csv" else "it loads unchanged in TRL's SFTTrainer"
            st.success(f"Wrote {path} and its manifest; {use}.")
    with st.expander("Manifest"):
        st.json(curation_queries.manifest(con, exp_set))


# ----------------------------------------------------------------------------- train


def train_tab(con, db: str) -> None:
    """Launch a run: a curated set, the model to start from, the settings, Start."""
    sets = curation_queries.list_sets(con)
    if sets.empty:
        st.info("Freeze a curated set first (Curate tab).")
        return
    set_id = st.selectbox(
        "Curated set",
        list(sets["set_id"]),
        format_func=lambda s: (
            f"{s} · {sets.set_index('set_id').loc[s, 'preset']} · "
            f"{int(sets.set_index('set_id').loc[s, 'n_items'])} items"
        ),
        key="tr_set",
    )
    preset = str(sets.set_index("set_id").loc[set_id, "preset"] or "")
    base, adapter, model_id, continue_adapter = start_model(con, preset)
    values, out = train_settings()
    out_ok = True
    if out.strip():  # empty: a new folder beside the database, inside the data root too
        folder = ui.confined(out, "Output folder")
        out, out_ok = (str(folder), True) if folder else ("", False)
    st.caption(throughput_note(con))
    parent = model_id if (continue_adapter or not adapter) else None
    default_name = training_queries.next_model_label(
        con, parent, set_id, merged=bool(values.get("merge")), base_name=base_display_name(base)
    )
    name = st.text_input(
        "Model name",
        key="tr_name",
        placeholder=default_name,
        help="Names the run and the model it makes; empty: what it is, as shown.",
    )
    cfg = None
    if base and out_ok:
        try:
            cfg = TrainConfig(
                base_model=base,
                adapter_path=adapter if continue_adapter else None,
                output_dir=out or None,
                **values,
            )
        except ValidationError as e:
            st.error(validation_message(e))
    n_items = int(sets.set_index("set_id").loc[set_id, "n_items"])
    estimate = runs.estimate_training(con, cfg, n_items) if cfg else None
    if ui.launch_button("Start training", estimate, key="tr_go", disabled=cfg is None):
        try:
            run_id, job_id = runs.start_training(
                con,
                db,
                cfg,
                set_id=set_id,
                name=name.strip(),
                base_model_id=model_id if (continue_adapter or not adapter) else None,
            )
        except (ValueError, KeyError) as e:
            st.error(str(e))
        else:
            st.session_state["tr_watch"] = run_id
            st.success(f"Started run {run_id} (job {job_id}); follow it in the Runs tab.")


def throughput_note(con) -> str:
    """What training speed to expect: the figure the latest run measured, never a guess."""
    t = training_queries.measured_throughput(con)
    if t is None:
        return (
            "Throughput is measured and charted in the Runs tab once a run starts; on CPU, "
            "use max steps for a short demo run."
        )
    speed = (
        f"{t['min']:,.0f}"
        if round(t["min"]) == round(t["max"])
        else (f"{t['min']:,.0f}–{t['max']:,.0f}")
    )
    return (
        f"The latest run here measured {speed} tokens/s over {t['n_steps']:,} logged steps; "
        "use max steps for a short demo run on CPU."
    )


def base_display_name(base: str) -> str:
    """The base model as its label names it (the embedded model by its name)."""
    with contextlib.suppress(ModelUnavailable):
        if base and Path(base).resolve() == default_model_path().resolve():
            return DEFAULT_MODEL_NAME
    return base_model_name(base) if base else "base model"


def start_model(con, preset: str = "") -> tuple[str, str | None, str | None, bool]:
    """Which model to start from: ``(base, adapter, model_id, continue_adapter)``.

    Preselected by the set's preset, as the MTL → RESET path goes: an MTL set trains
    the base model; a RESET set continues the round's policy (the MTL checkpoint, then
    each round's result). The preselection follows the set until the user picks.
    """
    models = training_queries.trained_models(con)
    labels = training_queries.model_labels(con)
    choices: dict[str, tuple[str, str | None, str | None]] = {}
    with contextlib.suppress(ModelUnavailable):
        embedded = str(default_model_path())
        if not any(
            r.path == embedded and not r.adapter_path for r in models.itertuples()
        ):  # registered: listed below under its label
            choices[f"{DEFAULT_MODEL_NAME} (embedded)"] = (embedded, None, None)
    for r in models.itertuples():
        label = labels.get(r.model_id, r.name)
        if label in choices:  # two rows with one label: tell them apart by their id
            label = f"{label} [{r.model_id}]"
        choices[label] = (r.path, r.adapter_path, r.model_id)
    choices["another path or hub id"] = ("", None, None)
    preferred = preferred_start(con, preset, choices, models)
    if st.session_state.get("tr_model") in (None, st.session_state.get("_tr_model_default")):
        st.session_state["tr_model"] = preferred  # follow the set unless the user chose
    st.session_state["_tr_model_default"] = preferred
    pick = st.selectbox(
        "Start from",
        list(choices),
        key="tr_model",
        help="The MTL checkpoint for RESET, or a base model for the MTL stage. A model "
        "with an adapter can be continued (base + adapter, is_trainable=True).",
    )
    base, adapter, model_id = choices[pick]
    if pick == "another path or hub id":
        typed = st.text_input(
            "Model path or hub id", key="tr_path", help=help_text(TrainConfig, "base_model")
        )
        base = (ui.confined_model(typed, "Model path or hub id") or "") if typed.strip() else ""
    continue_adapter = False
    if adapter:
        continue_adapter = st.checkbox(
            f"Continue its adapter ({adapter})",
            True,
            key="tr_continue",
            help=help_text(TrainConfig, "adapter_path"),
        )
    return base, adapter, model_id, continue_adapter


def preferred_start(con, preset: str, choices: dict, models) -> str:
    """The choice the path suggests for a set: its round's policy for RESET, else a base."""
    by_id = {v[2]: k for k, v in choices.items() if v[2]}
    if preset.upper().startswith("RESET"):
        policy = training_queries.round_policy(con, split=None)
        if policy in by_id:
            return by_id[policy]
    bases = [
        by_id[m]
        for m, run in zip(models["model_id"], models["training_run_id"], strict=True)
        if not run and m in by_id
    ]  # registered, not trained: what an MTL run starts from
    embedded = [k for k in choices if k.endswith("(embedded)")]
    return (embedded or bases or list(choices))[0]


def train_settings() -> tuple[dict, str]:
    """The TrainConfig fields as widgets (main ones up front): ``(values, output folder)``."""
    values = {}
    cols = st.columns(len(MAIN_FIELDS))
    for col, name in zip(cols, MAIN_FIELDS, strict=True):
        with col:
            values[name] = _widget(name, f"tr_{name}")
    with st.expander("More settings"):
        rest = [n for n in TrainConfig.model_fields if n not in MAIN_FIELDS + NOT_WIDGETS]
        grid = st.columns(3)
        for i, name in enumerate(rest):
            with grid[i % 3]:
                values[name] = _widget(name, f"tr_{name}")
        out = st.text_input(
            "Output folder (empty = new folder beside the database)",
            key="tr_out",
            help=help_text(TrainConfig, "output_dir"),
        )
    return values, out


# ----------------------------------------------------------------------------- runs


def runs_tab(con) -> None:
    """Pick a run (the one just started by default), follow it live, list all runs."""
    table = training_queries.runs(con)
    if table.empty:
        st.info("No training runs yet.")
        return
    ids = list(table["run_id"])
    ui.follow_launched("tr_watch", "runs_pick")
    if st.session_state.get("runs_pick") not in ids:
        st.session_state["runs_pick"] = ids[0]
    run_id = st.selectbox("Run", ids, key="runs_pick")
    job_id = table.set_index("run_id").loc[run_id, "job_id"]
    status = table.set_index("run_id").loc[run_id, "status"]
    # Polls while the run is active; only this part reruns.
    st.fragment(run_every=ui.POLL_S if status in jobs.ACTIVE else None)(live_run)(
        run_id, job_id, status
    )
    st.dataframe(table, hide_index=True, width="stretch")


def live_run(run_id: str, job_id: str, status: str) -> None:
    """A run's progress, live loss/learning-rate/throughput charts, Cancel and Resume.

    ``status`` is the run's status when the page last ran in full: once the run ends,
    the whole page reruns to refresh the table and stop polling.
    """
    cur = ui.cursor()
    p = runs.sync_training(cur, job_id)
    st.progress(jobs.progress_fraction(p), text=jobs.describe_progress(p, "steps"))
    if p.get("error"):
        st.error(p["error"])
    if p.get("model_id"):
        label = training_queries.model_label(cur, p["model_id"])
        st.success(
            f"Model {label} registered: sample with it on the Sample page and compare it on "
            "the Evaluate page."
        )
    m = training_queries.metrics_frame(cur, run_id)
    if not m.empty:
        c = st.columns(3)
        for col, y in zip(c, ("loss", "learning_rate", "tokens_per_s"), strict=True):
            fig = px.line(m, x="step", y=y)
            fig.update_layout(
                height=240, margin=dict(l=10, r=10, t=30, b=10), title=y.replace("_", " ")
            )
            col.plotly_chart(fig, key=f"run_{y}")
    b1, b2 = st.columns(2)
    if p.get("status") in jobs.ACTIVE and b1.button("Cancel", key="run_cancel"):
        jobs.cancel(cur, job_id)
        st.rerun()
    if p.get("status") in ("failed", "cancelled") and b2.button(
        "Resume from last checkpoint", key="run_resume"
    ):
        jobs.launch(cur, job_id)
        st.rerun()
    if p.get("status") not in jobs.ACTIVE and status in jobs.ACTIVE:
        st.rerun()  # the run ended: refresh the table and stop polling


# ----------------------------------------------------------------------------- models


def models_tab(con) -> None:
    """The registered models by name and lineage, and the lineage of one back to its root."""
    models = training_queries.trained_models(con)
    if models.empty:
        st.info("No models registered yet.")
        return
    labels = training_queries.model_labels(con)
    models.insert(0, "model", [labels.get(m, m) for m in models["model_id"]])
    models.insert(2, "parent", [labels.get(m, m) if m else None for m in models["parent_id"]])
    st.dataframe(
        models.drop(columns=["name", "parent_id"]),
        hide_index=True,
        width="stretch",
        column_config={"model": st.column_config.TextColumn("model", width="large")},
    )
    ids = list(models["model_id"])
    # The model just trained by default: the watched run's, else the newest trained one.
    trained = [m for m, run in zip(ids, models["training_run_id"], strict=True) if run]
    watched = training_queries.runs(con).set_index("run_id")["model_id"].to_dict()
    default = watched.get(st.session_state.get("tr_watch")) or (trained[0] if trained else ids[0])
    shown = st.session_state.get("lin_model")
    if shown not in ids or shown == st.session_state.get("_lin_default"):
        st.session_state["lin_model"] = default  # follow new models unless the user chose
    st.session_state["_lin_default"] = default
    mid = st.selectbox("Lineage of", ids, format_func=lambda m: labels.get(m, m), key="lin_model")
    for i, node in enumerate(training_queries.lineage(con, mid)):
        lineage_node(i, node, labels)


def lineage_node(i: int, node: dict, labels: dict[str, str]) -> None:
    """One model of a lineage: its label and stage (id in the tooltip), then its details."""
    label = labels.get(node["model_id"], node.get("name") or node["model_id"])
    head = (
        f"{'↳ ' if i else ''}**{escape_markdown(label)}** · {node.get('stage') or 'not registered'}"
    )
    st.markdown(head, help=f"model id {node['model_id']}")
    details = {
        "path": node.get("path"),
        "adapter": node.get("adapter_path"),
        "curated set": node.get("curated_set_id"),
        "set": node.get("curated_set"),
        "training run": node.get("training_run_id"),
    }
    if node.get("metrics"):
        mt = node["metrics"]
        details["metrics"] = {
            k: mt.get(k)
            for k in ("global_step", "train_loss", "first_loss", "last_loss", "tokens_per_s")
        }
    if node.get("train_config"):
        details["config"] = node["train_config"]
    st.code(
        json.dumps({k: v for k, v in details.items() if v}, indent=2, default=str),
        language="json",
    )


# ----------------------------------------------------------------------------- page

st.title("Train")
st.caption(
    "Freeze the picks into a curated set, export it for TRL, and continue fine-tuning with a "
    "LoRA adapter: one epoch, small learning rate, loss on the answer only. The same job trains "
    "the MTL baseline on references."
)
st.info(
    "**The MTL → RESET path.** 1. Curate from *References (MTL baseline)*, freeze, and train "
    "the base model on it: that checkpoint is round 1's policy. 2. Sample and judge with it, "
    "score the picks, then curate from *Picks of a scoring run* and train again: the round's "
    "policy is preselected and continued for one epoch. 3. Compare base, MTL and RESET on the "
    "Evaluate page.",
    # A Material icon: emoji need a font the machine may lack (a blank box on Debian's Chromium).
    icon=":material/explore:",
)
con = ui.cursor()
db = ui.db_path()
tab_curate, tab_train, tab_runs, tab_models = st.tabs(
    ["Curate", "Train", "Runs", "Models and lineage"]
)
with tab_curate:
    curate_tab(con, db)
with tab_train:
    train_tab(con, db)
with tab_runs:
    runs_tab(con)
with tab_models:
    models_tab(con)
