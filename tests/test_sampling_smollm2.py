"""End to end with the embedded SmolLM2: `reset-studio sample` runs a worker and stores candidates."""

from __future__ import annotations

import subprocess
import sys

import pytest

from reset_core.paths import DEFAULT_MODEL_DIR


@pytest.mark.slow
@pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").exists(), reason="embedded model not prepared"
)
def test_cli_samples_demo_examples_with_smollm2(tmp_path):
    from reset_core.store import connect

    db = tmp_path / "e2e.duckdb"
    cli = [sys.executable, "-m", "reset_core.cli", "--db", str(db)]
    subprocess.run([*cli, "db", "init", "--demo"], check=True, capture_output=True)
    run = subprocess.run(
        [
            *cli,
            "sample",
            "--kinds",
            "instruction",
            "--count",
            "3",
            "--max-tokens",
            "16",
            "--samples",
            "1",
            "--poll-s",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 examples x 6 settings: 18 candidates" in run.stdout
    con = connect(db)
    rows = con.execute(
        "SELECT c.text, c.finish_reason, c.completion_tokens, c.seed, d.temperature, m.name "
        "FROM candidates c JOIN decoding_settings d USING (setting_id) JOIN models m USING (model_id)"
    ).fetchall()
    assert len(rows) == 18
    assert {r[5] for r in rows} == {"smollm2-135m-instruct"}
    assert all(r[1] in ("stop", "length") and 1 <= r[2] <= 17 for r in rows)
    # A real instruct model answers in words: most candidates are non-trivial text.
    assert sum(len(r[0].split()) >= 3 for r in rows) >= 15
    assert len({r[3] for r in rows}) == 18
    assert con.execute("SELECT status FROM jobs").fetchall() == [("done",)]
