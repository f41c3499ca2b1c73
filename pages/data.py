"""Data: import example files and browse the examples."""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st
from pydantic import ValidationError

import ui
from reset_core.aspects import KINDS
from reset_core.errors import validation_message
from reset_core.ingest.config import SPLITS, ImportOptions, ImportRejected
from reset_core.ingest.importer import describe_counts, import_file, read_examples
from reset_core.ingest.presets import PRESET_KINDS, PRESETS
from reset_core.ingest.queries import (
    count_examples,
    distinct_values,
    example_breakdown,
    examples_page,
)
from reset_core.ingest.rekind import REKIND_TARGETS, RekindRejected, rekind_source
from reset_core.options import help_text

PAGE_SIZE = 25
H = lambda name: help_text(ImportOptions, name)  # noqa: E731 - short alias for widget help

st.title("Data")
con = ui.cursor()

# ----------------------------------------------------------------------------- import
st.header("Import examples")
src_upload, src_path = st.tabs(["Upload a file", "Path on this machine"])
with src_upload:
    upload = st.file_uploader(
        "JSONL, JSON, CSV or Parquet", type=["jsonl", "ndjson", "json", "csv", "parquet"]
    )
with src_path:
    typed_path = st.text_input(
        "File or Hugging Face datasets folder",
        key="import_path",
        help="A file or a folder written by datasets.save_to_disk, inside the data root "
        f"{ui.data_root()} (a relative path is taken from there).",
    )

path: Path | None = None
if upload is not None:
    # Keeps the upload's (sanitised) name: the suffix picks the reader, the stem is the source.
    path = ui.saved_upload(upload)
else:
    if "_upload" in st.session_state:  # the user removed it from the uploader
        ui.drop_uploads()
    if typed_path.strip():
        path = ui.confined(typed_path, "File or Hugging Face datasets folder")

c1, c2, c3, c4 = st.columns(4)
preset = c1.selectbox(
    "Preset", ["auto-detect", *PRESETS, "column mapping"], help=H("preset"), key="import_preset"
)
# A preset declares its kind (the dataset's role); auto is offered for a column mapping only.
if preset == "column mapping":
    kind = c2.selectbox("Kind", ["auto", *KINDS], help=H("kind"), key="import_kind_mapping")
else:
    role = PRESET_KINDS.get(preset)
    kind = c2.selectbox(
        "Kind",
        ["preset", *KINDS],
        format_func=lambda k: (
            (f"preset's role ({role})" if role else "preset's role") if k == "preset" else k
        ),
        help=H("kind"),
        key="import_kind",
    )
    kind = None if kind == "preset" else kind
source = c3.text_input("Source", help=H("source"), key="import_source")
split_mode = c4.selectbox("Split", [*SPLITS, "by ratio"], help=H("split"), key="import_split")
mapping: dict[str, str] = {}
if preset == "column mapping":
    m1, m2, m3, m4 = st.columns(4)
    for col, target in zip(
        (m1, m2, m3, m4), ("instruction", "context", "reference", "id"), strict=True
    ):
        value = col.text_input(f"{target} column", key=f"map_{target}", help=H("mapping"))
        if value.strip():
            mapping[target] = value.strip()
ratios = None
seed = 0
if split_mode == "by ratio":
    r1, r2, r3, r4 = st.columns(4)
    ratios = {
        "seen": r1.number_input("seen", 0.0, 1.0, 0.9, 0.05, key="ratio_seen"),
        "test_seen": r2.number_input("test_seen", 0.0, 1.0, 0.1, 0.05, key="ratio_test_seen"),
        "test_unseen": r3.number_input("test_unseen", 0.0, 1.0, 0.0, 0.05, key="ratio_test_unseen"),
    }
    seed = int(r4.number_input("seed", value=0, step=1, help=H("seed"), key="ratio_seed"))
max_chars = st.number_input(
    "Max characters per field", min_value=1, value=50_000, step=1000, help=H("max_chars")
)

options = None
if path is not None:
    try:
        options = ImportOptions(
            preset=None if preset in ("auto-detect", "column mapping") else preset,
            mapping=mapping,
            kind=kind,
            source=source.strip() or None,
            split=split_mode if split_mode in SPLITS else "seen",
            split_ratios=ratios,
            seed=seed,
            max_chars=int(max_chars),
        )
    except ValidationError as e:
        st.error(validation_message(e))

if path is not None and options is not None:
    try:
        parsed = read_examples(path, options)
    except ImportRejected as e:
        st.error(f"Cannot import: {e}")
    else:
        st.write(
            f"**Preview** of `{path.name}` with preset **{parsed.preset}**: "
            f"{parsed.n_rows:,} rows, {parsed.table.num_rows:,} unique, "
            f"{parsed.n_duplicates:,} duplicates within the file."
        )
        # Kinds and splits before anything is committed: what the import will add.
        counts = parsed.counts()
        st.caption(f"{parsed.kind_note}. Rows {describe_counts(counts)}.")
        st.dataframe(
            pd.DataFrame(
                [{"kind": k, "split": sp, "examples": n} for (k, sp), n in sorted(counts.items())]
            )
            .pivot_table(
                index="kind", columns="split", values="examples", aggfunc="sum", fill_value=0
            )
            .reset_index(),
            hide_index=True,
            key="import_counts",
        )
        st.dataframe(
            parsed.table.slice(0, 5)
            .select(["instruction", "context", "reference", "kind", "source", "split"])
            .to_pandas(),
            hide_index=True,
        )
        if st.button("Import", type="primary", key="import_button"):
            try:
                result = import_file(con, path, options)
            except ImportRejected as e:
                st.error(f"Cannot import: {e}. Nothing was imported.")
            else:
                st.session_state["last_import"] = (
                    f"Imported {result.n_added:,} new examples from {Path(result.path).name} "
                    f"({result.n_duplicates:,} already stored or duplicated)."
                )
                st.rerun()
if msg := st.session_state.pop("last_import", None):
    st.success(msg)

# ----------------------------------------------------------------------------- browse
st.header("Examples")
total = count_examples(con)
if total == 0:
    st.info("No examples yet: import a file above.")
    st.stop()

st.metric("Examples", f"{total:,}", help="All examples in the database.")
charts = st.columns(3)
for col, by in zip(charts, ("kind", "split", "source"), strict=True):
    rows = example_breakdown(con, by)
    fig = px.bar(x=[r[0] for r in rows], y=[r[1] for r in rows], labels={"x": by, "y": "examples"})
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), title=f"by {by}")
    col.plotly_chart(fig, key=f"chart_{by}")
    col.caption(" · ".join(f"{k}: {v:,}" for k, v in rows))

with st.expander("Re-kind a source"):
    st.caption(
        "Imports set kinds once; nothing changes them afterwards unless you ask here (or with "
        "`reset-studio rekind`). preset: the role each row's import preset declares "
        "(alpaca, dolly, chat, self_instruct, ifeval: instruction; qa, nq, summarization: context)."
    )
    r1, r2 = st.columns(2)
    rk_source = r1.selectbox("Source", distinct_values(con, "source"), key="rekind_source")
    rk_target = r2.selectbox("New kind", REKIND_TARGETS, key="rekind_target")
    try:
        planned = rekind_source(con, rk_source, rk_target, dry_run=True)
    except RekindRejected as e:
        st.error(str(e))
    else:
        st.write(planned.describe())
        if st.button("Re-kind", key="rekind_button", disabled=not planned.n_changed):
            try:
                done = rekind_source(con, rk_source, rk_target)
            except RekindRejected as e:
                st.error(str(e))
            else:
                st.session_state["last_rekind"] = done.describe()
                st.rerun()
if msg := st.session_state.pop("last_rekind", None):
    st.success(msg)

f1, f2, f3, f4 = st.columns(4)
kinds = f1.multiselect("Kind", distinct_values(con, "kind"), key="f_kind")
sources = f2.multiselect("Source", distinct_values(con, "source"), key="f_source")
splits = f3.multiselect("Split", distinct_values(con, "split"), key="f_split")
search = f4.text_input("Search instruction or context", key="f_search")
filters = dict(kinds=kinds, sources=sources, splits=splits, search=search)
matching = count_examples(con, **filters)
n_pages = max(1, -(-matching // PAGE_SIZE))
page = st.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="f_page") - 1
df = examples_page(con, **filters, page=page, page_size=PAGE_SIZE)
st.caption(f"{matching:,} matching examples")
st.dataframe(df, hide_index=True, width="stretch")
