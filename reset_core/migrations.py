"""The database schema, as an ordered list of named, transactional migrations.

Later features add a migration at the end of :data:`MIGRATIONS`; they never edit one
that has shipped, because users' databases already ran it. Each migration runs in
one transaction together with its row in ``schema_migrations``, so a crash leaves
the database at the previous version, never half-migrated.

Keys are text ids derived from content (see ``reset_core.keys``), which is what lets
worker shards be ingested idempotently: the same candidate always has the same key.

>>> import duckdb
>>> con = duckdb.connect()
>>> migrate(con)
['001_core_nouns']
>>> migrate(con)  # already current
[]
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        "001_core_nouns",
        """
        -- Every import, so each example can be traced to the file and options it came from.
        CREATE TABLE imports (
            import_id    TEXT PRIMARY KEY,
            path         TEXT NOT NULL,
            preset       TEXT,
            options      JSON,
            n_rows       INTEGER NOT NULL,
            n_added      INTEGER NOT NULL,
            n_duplicates INTEGER NOT NULL,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- A training or test item. kind: 'instruction' (open-ended) or 'context' (grounded).
        CREATE TABLE examples (
            example_id   TEXT PRIMARY KEY,
            instruction  TEXT NOT NULL,
            context      TEXT,
            reference    TEXT,
            kind         TEXT NOT NULL CHECK (kind IN ('instruction', 'context')),
            source       TEXT NOT NULL,
            split        TEXT NOT NULL CHECK (split IN ('seen', 'test_seen', 'test_unseen')),
            content_hash TEXT NOT NULL,     -- duplicate key; imports skip stored hashes
            import_id    TEXT,
            meta         JSON,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- A model or checkpoint a candidate can come from; parent_id gives lineage.
        CREATE TABLE models (
            model_id     TEXT PRIMARY KEY,
            name         TEXT NOT NULL,
            path         TEXT,
            revision     TEXT,
            adapter_path TEXT,
            stage        TEXT NOT NULL DEFAULT 'base',  -- base | mtl | reset | other
            parent_id    TEXT,
            curated_set_id TEXT,
            training_run_id TEXT,
            config       JSON,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- One decoding setting (vLLM/OpenAI field names); setting_id hashes the values.
        CREATE TABLE decoding_settings (
            setting_id   TEXT PRIMARY KEY,
            temperature  DOUBLE NOT NULL,
            top_k        INTEGER NOT NULL,   -- -1 = unrestricted, as in vLLM
            top_p        DOUBLE NOT NULL,
            max_tokens   INTEGER NOT NULL,
            seed         BIGINT NOT NULL,
            n            INTEGER NOT NULL
        );

        -- Long work (sampling, judging, training, evaluation) runs in worker processes.
        CREATE TABLE jobs (
            job_id       TEXT PRIMARY KEY,
            kind         TEXT NOT NULL,      -- sample | judge | train | evaluate
            status       TEXT NOT NULL,      -- queued | running | done | failed | cancelled
            config       JSON NOT NULL,
            work_dir     TEXT NOT NULL,
            pid          INTEGER,
            error        TEXT,
            n_total      BIGINT,
            n_done       BIGINT NOT NULL DEFAULT 0,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
            started_at   TIMESTAMP,
            finished_at  TIMESTAMP
        );

        -- One generation; candidate_id = hash(example, model, setting, sample_index).
        CREATE TABLE candidates (
            candidate_id      TEXT PRIMARY KEY,
            example_id        TEXT NOT NULL,
            model_id          TEXT NOT NULL,
            setting_id        TEXT NOT NULL,
            sample_index      INTEGER NOT NULL,
            seed              BIGINT NOT NULL,
            text              TEXT NOT NULL,
            finish_reason     TEXT,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            latency_ms        DOUBLE,
            engine            TEXT NOT NULL,
            job_id            TEXT,
            created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- Versioned rubric prompts: an edit is a new row, never an update.
        CREATE TABLE rubrics (
            rubric_id    TEXT PRIMARY KEY,    -- aspect + version
            aspect       TEXT NOT NULL CHECK (aspect IN ('task', 'instruction', 'faithfulness')),
            version      INTEGER NOT NULL,
            text         TEXT NOT NULL,
            scale_min    DOUBLE NOT NULL,
            scale_max    DOUBLE NOT NULL,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
            UNIQUE (aspect, version)
        );

        CREATE TABLE judges (
            judge_id     TEXT PRIMARY KEY,    -- model + rubric/prompt version
            name         TEXT NOT NULL,
            kind         TEXT NOT NULL,       -- llm | metric
            model        TEXT,
            description  TEXT,
            config       JSON,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- One judge's verdict on one candidate for one aspect. score is NULL when the
        -- judge failed: a failure is "no vote", never a fake 0.
        CREATE TABLE judgments (
            judgment_id       TEXT PRIMARY KEY,
            candidate_id      TEXT NOT NULL,
            judge_id          TEXT NOT NULL,
            aspect            TEXT NOT NULL CHECK (aspect IN ('task', 'instruction', 'faithfulness')),
            score             DOUBLE CHECK (score IS NULL OR (score >= 0 AND score <= 1)),
            raw_score         DOUBLE,
            status            TEXT NOT NULL,  -- ok | http_error | timeout | parse_error | ...
            error             TEXT,
            raw_output        TEXT,
            rationale         TEXT,
            permutation       JSON,
            prompt_tokens     INTEGER,
            completion_tokens INTEGER,
            cost_usd          DOUBLE,
            job_id            TEXT,
            created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- A scoring of all candidates under given weights and combination rule.
        CREATE TABLE selections (
            selection_id TEXT PRIMARY KEY,
            preset       TEXT NOT NULL,
            config       JSON NOT NULL,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE selection_scores (
            selection_id TEXT NOT NULL,
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            score        DOUBLE,             -- NULL: a needed aspect is missing, not rankable
            rank         INTEGER,
            picked       BOOLEAN NOT NULL,
            PRIMARY KEY (selection_id, candidate_id)
        );

        -- Append-only review events. Current state is derived, history never rewritten.
        CREATE TABLE overrides (
            event_id     TEXT PRIMARY KEY,
            example_id   TEXT NOT NULL,
            candidate_id TEXT,
            action       TEXT NOT NULL,  -- veto | force | exclude | rank | score | note | undo
            value        JSON,
            previous     JSON,
            reviewer     TEXT NOT NULL,
            reason       TEXT,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- Frozen snapshots of picks exported for training.
        CREATE TABLE curated_sets (
            set_id       TEXT PRIMARY KEY,
            name         TEXT NOT NULL,
            preset       TEXT NOT NULL,
            selection_id TEXT,
            manifest     JSON NOT NULL,
            content_hash TEXT NOT NULL,
            n_items      INTEGER NOT NULL,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE curated_items (
            set_id       TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            candidate_id TEXT NOT NULL,
            prompt       TEXT NOT NULL,
            completion   TEXT NOT NULL,
            PRIMARY KEY (set_id, example_id)
        );

        CREATE TABLE training_runs (
            run_id         TEXT PRIMARY KEY,
            job_id         TEXT,
            base_model_id  TEXT,
            curated_set_id TEXT,
            config         JSON NOT NULL,
            output_dir     TEXT,
            model_id       TEXT,
            metrics        JSON,
            created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE training_metrics (
            run_id        TEXT NOT NULL,
            step          INTEGER NOT NULL,
            loss          DOUBLE,
            learning_rate DOUBLE,
            tokens_per_s  DOUBLE,
            epoch         DOUBLE,
            logged_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, step)
        );

        CREATE TABLE eval_runs (
            eval_id      TEXT PRIMARY KEY,
            job_id       TEXT,
            model_id     TEXT NOT NULL,
            split        TEXT NOT NULL,
            config       JSON NOT NULL,
            metrics      JSON,
            created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        -- Shards already loaded, so re-ingesting a folder skips files it has seen.
        CREATE TABLE ingested_shards (
            path         TEXT PRIMARY KEY,
            target       TEXT NOT NULL,
            n_rows       BIGINT NOT NULL,
            ingested_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        CREATE INDEX candidates_example ON candidates (example_id);
        CREATE INDEX judgments_candidate ON judgments (candidate_id);
        CREATE INDEX overrides_example ON overrides (example_id);
        """,
    ),
]


def current_version(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the migrations this database has run, in order."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name TEXT PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    return [
        r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    ]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Run every migration this database has not run yet; return their names."""
    done = set(current_version(con))
    unknown = done - {m.name for m in MIGRATIONS}
    if unknown:
        raise RuntimeError(
            f"database has migrations this version does not know: {sorted(unknown)}; "
            "it was written by a newer RESET Studio"
        )
    applied = []
    for m in MIGRATIONS:
        if m.name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(m.sql)
            con.execute("INSERT INTO schema_migrations (name) VALUES (?)", [m.name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(m.name)
    return applied
