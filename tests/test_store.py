import duckdb
import pyarrow as pa
import pytest

from reset_core.jobs import write_shard
from reset_core.migrations import MIGRATIONS, current_version, migrate
from reset_core.store import connect, counts, ingest_shards


def test_migrations_on_fresh_database_create_every_noun(tmp_path):
    con = connect(tmp_path / "fresh.duckdb")
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for noun in (
        "examples",
        "candidates",
        "judgments",
        "decoding_settings",
        "selections",
        "selection_scores",
        "overrides",
        "curated_sets",
        "curated_items",
        "training_runs",
        "eval_runs",
        "jobs",
        "rubrics",
        "judges",
        "models",
    ):
        assert noun in tables
    assert current_version(con) == [m.name for m in MIGRATIONS]
    assert migrate(con) == []  # idempotent
    con.close()
    # Reopening keeps the version and runs nothing.
    con = connect(tmp_path / "fresh.duckdb")
    assert current_version(con) == [m.name for m in MIGRATIONS]


def test_failed_migration_leaves_database_at_previous_version(monkeypatch):
    from reset_core import migrations

    con = duckdb.connect()
    migrate(con)
    broken = migrations.Migration(
        "999_broken", "CREATE TABLE half_done (a INT); SELECT * FROM nowhere;"
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with pytest.raises(duckdb.Error):
        migrate(con)
    assert "999_broken" not in current_version(con)
    assert not con.execute(
        "SELECT * FROM information_schema.tables WHERE table_name = 'half_done'"
    ).fetchall()


def test_newer_database_is_refused():
    con = duckdb.connect()
    migrate(con)
    con.execute("INSERT INTO schema_migrations (name) VALUES ('999_from_the_future')")
    with pytest.raises(RuntimeError, match="newer RESET Studio"):
        migrate(con)


def _candidates(keys, text="x"):
    n = len(keys)
    return pa.table(
        {
            "candidate_id": keys,
            "example_id": ["e"] * n,
            "model_id": ["m"] * n,
            "setting_id": ["s"] * n,
            "sample_index": list(range(n)),
            "seed": [1] * n,
            "text": [text] * n,
            "engine": ["test"] * n,
        }
    )


def test_ingest_shards_is_idempotent_by_path_and_by_key(con, tmp_path):
    shards = tmp_path / "shards"
    write_shard(shards, _candidates(["a", "b"]))
    write_shard(shards, _candidates(["b", "c"]))  # a resumed worker re-wrote key b
    (shards / "partial.parquet.tmp").write_bytes(b"half a file")  # still being written
    assert ingest_shards(con, "candidates", shards) == 3
    assert ingest_shards(con, "candidates", shards) == 0
    # The same keys under a new file name add nothing.
    write_shard(shards, _candidates(["a", "c"]))
    assert ingest_shards(con, "candidates", shards) == 0
    assert counts(con)["candidates"] == 3
    assert con.execute("SELECT count(*) FROM ingested_shards").fetchall()[0][0] == 3


def test_ingest_shards_rejects_shards_without_keys(con, tmp_path):
    write_shard(tmp_path, pa.table({"text": ["x"]}))
    with pytest.raises(ValueError, match="candidate_id"):
        ingest_shards(con, "candidates", tmp_path)
    assert counts(con)["candidates"] == 0


def test_cursor_per_thread(db_path):
    import threading

    con = connect(db_path)
    errors = []

    def work():
        try:
            cur = con.cursor()
            assert cur.execute("SELECT count(*) FROM examples").fetchall() == [(0,)]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_second_writer_gets_a_clear_error(db_path):
    import subprocess
    import sys

    con = connect(db_path)
    code = (
        "import sys\nfrom reset_core.cli import main\n"
        f"sys.exit(main(['--db', {str(db_path)!r}, 'db', 'info']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3
    assert "open for writing in another process" in out.stderr
    con.close()
