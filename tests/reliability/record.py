"""Each reliability trial leaves one row for docs/reliability.md's table.

Tests assert their own outcome; this only keeps the figures. Rows go to
``$RESET_RELIABILITY_OUT/<suite>.jsonl`` when that variable is set (``make reliability-doc``
sets it and then renders the table with ``docs/reliability_table.py``); otherwise nothing
is written, so an ordinary ``make test`` leaves no files behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(suite: str, case: str, outcome: str, **numbers) -> None:
    """One row: ``suite`` (e.g. "crash"), ``case`` (e.g. "sampling worker, trial 7"),
    ``outcome`` (e.g. "resumed, 0 lost, 0 duplicated") and any figures (``lost=0``)."""
    out = os.environ.get("RESET_RELIABILITY_OUT")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    row = {"suite": suite, "case": case, "outcome": outcome, **numbers}
    with open(Path(out) / f"{suite}.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
