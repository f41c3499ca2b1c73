"""Shared fixtures: a real DuckDB file, the tiny Llama, the local OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"

# Not test modules. Under --doctest-modules pytest would import them while collecting,
# and the vLLM stand-in would then shadow the (absent) real vllm for the whole session.
collect_ignore = ["vllm_standin", "fixtures"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "studio.duckdb"


@pytest.fixture
def con(db_path: Path):
    from reset_core.store import connect

    con = connect(db_path)
    yield con
    con.close()


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The whole app (router + pages) in AppTest, on a fresh database file (``app.db``)."""
    from streamlit.testing.v1 import AppTest

    db = tmp_path / "app.duckdb"
    monkeypatch.setenv("RESET_STUDIO_DB", str(db))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.db = db
    return at


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + tokenizer saved to disk, loadable by path like any model."""
    from reset_core.models import build_tiny_llama

    out = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_llama(out)
    return out


@pytest.fixture
def openai_server():
    from devtools.openai_standin import OpenAICompatServer

    with OpenAICompatServer(timeout_fault_s=5.0) as srv:
        yield srv


def table_snapshot(con) -> dict[str, list]:
    """Every row of every user table: equal snapshots mean the database is unchanged."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
        ).fetchall()
    ]
    return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}


@pytest.fixture(autouse=True)
def _data_root(tmp_path_factory, monkeypatch):
    """Every test's files (its databases, the session's tiny model) lie under pytest's base
    temporary folder: make that the data root the app confines typed paths to. Tests of the
    default root (the database's folder) remove this variable."""
    monkeypatch.setenv("RESET_STUDIO_DATA_ROOT", str(tmp_path_factory.getbasetemp()))
