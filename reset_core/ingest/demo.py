"""The bundled demo set: real examples from permissively licensed sources.

``data/demo/demo_examples.jsonl`` is built by ``data/build_demo_set.py`` from
``../shared/data`` and committed; ``data/README.md`` credits each source. Each row
carries its own ``source``, ``split`` and ``kind``, so loading is one ordinary,
all-or-nothing import (same validation, same dedupe as any user file).
"""

from __future__ import annotations

from pathlib import Path

from reset_core.ingest.config import ImportOptions
from reset_core.ingest.importer import import_file
from reset_core.paths import DEMO_FILE
from reset_core.store import one

DEMO_MAPPING = {
    "id": "id",
    "instruction": "instruction",
    "context": "context",
    "reference": "reference",
    "source": "source",
    "split": "split",
    "kind": "kind",
    "meta": "meta",  # IFEval's verifiable instructions, read by its judge
}


def load_demo(con, path: Path = DEMO_FILE) -> int:
    """Import the demo set when the database has no examples yet; return rows added."""
    if one(con, "SELECT count(*) FROM examples")[0]:
        return 0
    return import_file(con, path, ImportOptions(mapping=DEMO_MAPPING, source="demo")).n_added
