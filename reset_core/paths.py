"""Where things live on disk. One place, so the app, CLI and workers agree."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository (or install) root: ``data/`` sits next to ``reset_core/``.
ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
DEMO_FILE = DATA_DIR / "demo" / "demo_examples.jsonl"
MODELS_DIR = DATA_DIR / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "smollm2-135m-instruct"
#: NLTK data extracted by ``make setup`` (gitignored): punkt_tab for IFEval's checks.
NLTK_DATA_DIR = DATA_DIR / "nltk_data"
#: Benchmarks bundled with the app (e.g. IFEval's prompts), credited in data/README.md.
BENCHMARKS_DIR = DATA_DIR / "benchmarks"


def default_db_path() -> Path:
    """The database file: ``$RESET_STUDIO_DB`` or ``data/reset_studio.duckdb``."""
    return Path(os.environ.get("RESET_STUDIO_DB", DATA_DIR / "reset_studio.duckdb"))


def jobs_dir(db_path: str | Path) -> Path:
    """Worker folders live beside the database they feed, so a moved DB keeps its jobs."""
    return Path(db_path).resolve().parent / "jobs"
