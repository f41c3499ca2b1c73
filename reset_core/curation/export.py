"""Export curated sets as files TRL's ``SFTTrainer`` loads unchanged.

Two forms, both conversational so that the model's own chat template is applied
(the same template the candidates were sampled with):

* ``messages``: ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``
  (TRL's conversational language-modeling form);
* ``prompt_completion``: ``{"prompt": [{"role": "user", ...}], "completion":
  [{"role": "assistant", ...}]}`` (TRL's conversational prompt-completion form;
  TRL computes the loss on the completion only, as RESET trains).

Three training formats: ``jsonl``, ``parquet`` and ``hf`` (a ``datasets.save_to_disk``
folder), and ``csv``, a flat sheet for reading the set in a spreadsheet (``example_id,
candidate_id, prompt, completion`` as text, whatever the form). Candidate text is model
output, so a CSV cell that a spreadsheet would run as a formula is neutralised
(:func:`neutralise_cell`); the training formats keep every character. Every export is written under a temporary name and renamed, with the
set's manifest beside it (``<name>.manifest.json``), and never overwrites a file.

>>> FORMS, FORMATS
(('messages', 'prompt_completion'), ('jsonl', 'parquet', 'hf', 'csv'))
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reset_core.atomic import atomic_path, write_json_atomic
from reset_core.curation.queries import manifest as set_manifest
from reset_core.store import one

FORMS = ("messages", "prompt_completion")
#: ``TRAINING_FORMATS`` load back as the form's dataset; ``csv`` is for people.
TRAINING_FORMATS = ("jsonl", "parquet", "hf")
FORMATS = (*TRAINING_FORMATS, "csv")
_SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "hf": "", "csv": ".csv"}
#: A cell starting with one of these is run as a formula by Excel, LibreOffice or Sheets
#: (OWASP's CSV-injection list: = + - @, tab and carriage return).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value):
    """A CSV cell a spreadsheet shows as text: a leading ``'`` before a formula start.

    >>> print(neutralise_cell('=HYPERLINK("http://x","click")'), neutralise_cell("-1+2"))
    '=HYPERLINK("http://x","click") '-1+2
    >>> neutralise_cell("fine"), neutralise_cell(3)
    ('fine', 3)
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_neutralised_csv(table: pa.Table, stream) -> None:
    """``table`` as CSV on ``stream``, every cell through :func:`neutralise_cell`.

    The one CSV writer of reset_core (a test checks there is no other): whatever people
    open in a spreadsheet, model output or a reviewer's note, cannot run as a formula.

    >>> import io
    >>> out = io.StringIO()
    >>> write_neutralised_csv(pa.table({"note": ["=1+1", "ok"]}), out)
    >>> out.getvalue().splitlines()
    ['note', "'=1+1", 'ok']
    """
    w = csv.writer(stream)
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow([neutralise_cell(v) for v in row.values()])


def items_table(con, set_id: str) -> pa.Table:
    """The items of a set: ``example_id, candidate_id, prompt, completion``."""
    if one(con, "SELECT 1 FROM curated_sets WHERE set_id = ?", [set_id]) is None:
        raise KeyError(f"no curated set {set_id!r}")
    return con.sql(
        "SELECT example_id, candidate_id, prompt, completion FROM curated_items "
        "WHERE set_id = ? ORDER BY example_id",
        params=[set_id],
    ).to_arrow_table()


def to_form(items: pa.Table, form: str) -> pa.Table:
    """Turn items (``prompt``/``completion`` text) into one TRL dataset form.

    >>> t = pa.table({"example_id": ["e"], "prompt": ["Hi?"], "completion": ["Hello."]})
    >>> to_form(t, "messages").column("messages")[0].as_py()[1]
    {'role': 'assistant', 'content': 'Hello.'}
    """
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    user = [[{"role": "user", "content": p}] for p in items.column("prompt").to_pylist()]
    bot = [[{"role": "assistant", "content": c}] for c in items.column("completion").to_pylist()]
    ids = items.column("example_id")
    if form == "messages":
        return pa.table(
            {"example_id": ids, "messages": [u + b for u, b in zip(user, bot, strict=True)]}
        )
    return pa.table({"example_id": ids, "prompt": user, "completion": bot})


def export_set(
    con, set_id: str, out: str | Path, form: str = "messages", fmt: str = "jsonl"
) -> Path:
    """Write a curated set to ``out`` (file or folder, by format); return the path.

    ``out`` may be a folder (an existing one, or a name without a suffix for jsonl and
    parquet): the file is then named ``<set_id>-<form>.<ext>`` inside
    it. An existing target is never overwritten (``FileExistsError``).

    >>> import tempfile
    >>> from reset_core.curation.sets import create_reference_set
    >>> from reset_core.ingest.demo import load_demo
    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = load_demo(con)
    >>> set_id = create_reference_set(con, target_size=10)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = export_set(con, set_id, tmp.name, form="prompt_completion", fmt="parquet")
    >>> out.name == f"{set_id}-prompt_completion.parquet"
    True
    >>> sorted(p.name.removeprefix(set_id) for p in out.parent.iterdir())
    ['-prompt_completion.parquet', '-prompt_completion.parquet.manifest.json']
    >>> export_set(con, set_id, out, fmt="parquet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: ... exists; exports never overwrite, choose another name
    >>> tmp.cleanup()
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    items = items_table(con, set_id)
    # A sheet for people holds the texts themselves; the form's message lists are for TRL.
    table = items if fmt == "csv" else to_form(items, form)
    out = Path(out)
    if out.is_dir() or (fmt != "hf" and not out.suffix):
        out = out / f"{set_id}-{form}{_SUFFIX[fmt]}"
    write_table(table, out, fmt)
    man = {**set_manifest(con, set_id), "set_id": set_id, "form": form, "format": fmt}
    write_json_atomic(out.with_name(out.name + ".manifest.json"), man, indent=2)
    return out


def write_table(table: pa.Table, out: Path, fmt: str) -> None:
    """Write ``table`` in ``fmt`` to ``out`` via a temporary name; refuse to overwrite."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; exports never overwrite, choose another name")
    with atomic_path(out, overwrite=False) as tmp:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in table.to_pylist():
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif fmt == "parquet":
            pq.write_table(table, tmp)
        elif fmt == "csv":
            # utf-8-sig: spreadsheets read the BOM as "this is UTF-8" instead of guessing.
            with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
                write_neutralised_csv(table, f)
        else:
            from datasets import Dataset

            Dataset(table).save_to_disk(str(tmp))


def load_exported(path: str | Path):
    """Load an export (any form and format) as a ``datasets.Dataset``.

    >>> import tempfile
    >>> from reset_core.curation.sets import create_reference_set
    >>> from reset_core.ingest.demo import load_demo
    >>> from reset_core.store import connect
    >>> con = connect(":memory:")
    >>> _ = load_demo(con)
    >>> set_id = create_reference_set(con, target_size=10)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ds = load_exported(export_set(con, set_id, tmp.name))  # messages, jsonl
    >>> ds.num_rows, ds.column_names
    (10, ['example_id', 'messages'])
    >>> [m["role"] for m in ds[0]["messages"]]
    ['user', 'assistant']
    >>> tmp.cleanup()
    """
    from datasets import load_dataset, load_from_disk

    path = Path(path)
    if path.is_dir():
        return load_from_disk(str(path))
    if path.suffix == ".csv":
        raise ValueError(f"{path}: a CSV export is for reading; train from jsonl, parquet or hf")
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
    if kind is None:
        raise ValueError(f"{path}: expected .jsonl, .parquet or a datasets folder")
    return load_dataset(kind, data_files=str(path), split="train")
