"""The database schema, as an ordered list of named, transactional migrations.

Later features add a migration at the end of :data:`MIGRATIONS`; they never edit one
that has shipped, because users' databases already ran it. Each migration runs in
one transaction together with its row in ``schema_migrations``, so a crash leaves
the database at the previous version, never half-migrated.

Keys are text ids derived from content (see ``reset_core.keys``), which is what lets
worker shards be ingested idempotently: the same candidate always has the same key.

>>> import duckdb
>>> con = duckdb.connect()
>>> migrate(con)[0]
'001_core_nouns'
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
    Migration(
        "003_judging",
        """
        -- Judging: which example a judgment belongs to (for per-example views without a
        -- join), whether it came from the cache (cost 0 this run), attempts and latency.
        ALTER TABLE judgments ADD COLUMN example_id TEXT;
        ALTER TABLE judgments ADD COLUMN cached BOOLEAN DEFAULT false;
        ALTER TABLE judgments ADD COLUMN attempts INTEGER;
        ALTER TABLE judgments ADD COLUMN latency_ms DOUBLE;
        CREATE INDEX judgments_judge_aspect ON judgments (judge_id, aspect);

        -- Selection: the combined aspect scores behind each RESET score, why a
        -- candidate is not rankable, and whether its judges agreed.
        ALTER TABLE selection_scores ADD COLUMN s_task DOUBLE;
        ALTER TABLE selection_scores ADD COLUMN s_instr DOUBLE;
        ALTER TABLE selection_scores ADD COLUMN s_faith DOUBLE;
        ALTER TABLE selection_scores ADD COLUMN agree BOOLEAN;
        ALTER TABLE selection_scores ADD COLUMN missing TEXT;
        ALTER TABLE selection_scores ADD COLUMN override TEXT;
        """,
    ),
    Migration(
        "005_review",
        """
        -- Per-example facts the review queue filters and sorts on, derived from one
        -- selection (its scores, the candidates' settings, the judges' spread), so the
        -- queue never aggregates a million candidates per click. Rebuilt by
        -- reset_core.review.queue.refresh_queue when its inputs change (see stamp);
        -- the human side (overrides) is small and joined live.
        CREATE TABLE review_queue (
            selection_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            kind         TEXT NOT NULL,
            source       TEXT NOT NULL,
            split        TEXT NOT NULL,
            n_candidates INTEGER NOT NULL,
            n_rankable   INTEGER NOT NULL,  -- candidates with a RESET score
            judge_pick   TEXT,              -- best-ranked picked candidate, NULL if none
            pick_score   DOUBLE,            -- its RESET score
            best_score   DOUBLE,
            disagreement DOUBLE NOT NULL,   -- max over candidates/aspects of max-min judge score
            n_failed     INTEGER NOT NULL,  -- judgments with no score (failed judge)
            settings     TEXT[] NOT NULL,   -- decoding settings of its candidates
            haystack     TEXT NOT NULL,     -- lower(instruction, context, reference) for search:
                                            -- one LIKE over one column, 3x faster than 3 ILIKEs
            PRIMARY KEY (selection_id, example_id)
        );
        CREATE TABLE review_queue_state (
            selection_id TEXT PRIMARY KEY,
            stamp        JSON NOT NULL,     -- counts/timestamps of the inputs it was built from
            built_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        -- The example view reads one example's selection rows.
        CREATE INDEX selection_scores_example ON selection_scores (example_id);
        """,
    ),
    Migration(
        "006_analytics",
        """
        -- Analytics summaries: derived, rebuilt from judgments/candidates/selections
        -- whenever their fingerprint changes (reset_core.analytics.refresh). They hold
        -- nothing that is not recomputable, so dropping them loses nothing.
        -- bucket = hash(candidate_id) % 4096, rows stored in bucket order, so a
        -- deterministic sample ("bucket < k") reads only the first row groups.
        CREATE TABLE analytics_state (
            name         TEXT PRIMARY KEY,
            fingerprint  TEXT NOT NULL,
            refreshed_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            seconds      DOUBLE,
            n_candidates BIGINT
        );
        -- One row per (candidate, judge, aspect): the latest valid score (NULL when
        -- every attempt failed) and how many failed rows were excluded.
        CREATE TABLE analytics_judgments (
            bucket       SMALLINT NOT NULL,
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            judge_id     TEXT NOT NULL,
            aspect       TEXT NOT NULL,
            score        DOUBLE,
            n_failed     INTEGER NOT NULL
        );
        -- One row per candidate: its nouns, length, duplicate flag, pick in the latest
        -- selection and the mean valid score per aspect over judges.
        CREATE TABLE analytics_candidates (
            bucket       SMALLINT NOT NULL,
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            model_id     TEXT NOT NULL,
            setting_id   TEXT NOT NULL,
            kind         TEXT NOT NULL,
            split        TEXT NOT NULL,
            n_chars      INTEGER NOT NULL,
            n_words      INTEGER NOT NULL,
            is_dup       BOOLEAN NOT NULL,
            picked       BOOLEAN NOT NULL,
            s_task       DOUBLE,
            s_instr      DOUBLE,
            s_faith      DOUBLE,
            n_failed     INTEGER NOT NULL
        );
        -- Judgment rows per judge and aspect: valid, failed (excluded), not applicable.
        CREATE TABLE analytics_missing (
            judge_id         TEXT NOT NULL,
            aspect           TEXT NOT NULL,
            n_valid          BIGINT NOT NULL,
            n_failed         BIGINT NOT NULL,
            n_not_applicable BIGINT NOT NULL
        );
        -- A fixed-size text sample per (setting, model) for distinct-n diversity.
        CREATE TABLE analytics_texts (
            setting_id   TEXT NOT NULL,
            model_id     TEXT NOT NULL,
            candidate_id TEXT NOT NULL,
            text         TEXT NOT NULL
        );
        """,
    ),
    Migration(
        "007_analytics_derived",
        """
        -- More analytics summaries, so no page view scans the 5M-row judgment summary
        -- (reset_core.analytics.refresh; derived, recomputable, safe to drop).
        -- Per judge pair (judge_a < judge_b) and aspect: the absolute score gap of every
        -- candidate both scored, stored by gap (largest first) so "gap >= x" reads only
        -- the leading row groups. Review's disagreement filter reads it.
        CREATE TABLE analytics_gaps (
            aspect       TEXT NOT NULL,
            judge_a      TEXT NOT NULL,
            judge_b      TEXT NOT NULL,
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            gap          DOUBLE NOT NULL
        );
        -- analytics_judgments rows of the examples reviewers acted on (any override
        -- event): judge-vs-human agreement reads these few rows. Rebuilt on its own
        -- when the overrides change (append-only, so their count is the version).
        CREATE TABLE analytics_reviewed (
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            judge_id     TEXT NOT NULL,
            aspect       TEXT NOT NULL,
            score        DOUBLE,
            n_failed     INTEGER NOT NULL
        );
        -- Each reviewer's latest manual score per candidate and aspect (undone events
        -- and values outside [0, 1] dropped), rebuilt with analytics_reviewed.
        CREATE TABLE analytics_manual (
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            reviewer     TEXT NOT NULL,
            aspect       TEXT NOT NULL,
            score        DOUBLE NOT NULL
        );
        -- distinct-n diversity per decoding setting over analytics_texts.
        CREATE TABLE analytics_diversity (
            setting_id TEXT NOT NULL,
            n          INTEGER NOT NULL,
            value      DOUBLE NOT NULL
        );
        """,
    ),
    Migration(
        "008_provenance",
        """
        -- A judge's identity covers the endpoint that produced its verdicts: the
        -- normalised base URL, 'in-process:<model>' or the local stand-in. Placeholder
        -- verdicts (the stand-in's) are kept but never selected unless asked for.
        ALTER TABLE judges ADD COLUMN endpoint TEXT;
        ALTER TABLE judges ADD COLUMN placeholder BOOLEAN DEFAULT false;
        -- How each verdict's structured output was asked for: json_schema |
        -- json_object | prompt (NULL for metric judges).
        ALTER TABLE judgments ADD COLUMN output_mode TEXT;
        -- Named judge panels (reset_core.scoring.panels.Panel as JSON); a saved
        -- selection records the panel it used in its config.
        CREATE TABLE panels (
            name       TEXT PRIMARY KEY,
            config     JSON NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        """,
    ),
    Migration(
        "009_aspect_scores",
        """
        -- Per-candidate aspect scores under one (panel, split, model scope), kept so a
        -- weight or preset change re-ranks from one table instead of re-aggregating
        -- every judgment (reset_core.scoring.aspect_scores). Derived and recomputable:
        -- rebuilt when the stamp of its inputs changes, safe to drop.
        CREATE TABLE aspect_scores (
            scope        TEXT NOT NULL,     -- aspect_scores_state.scope
            candidate_id TEXT NOT NULL,
            example_id   TEXT NOT NULL,
            kind         TEXT NOT NULL,
            s_task       DOUBLE,
            s_instr      DOUBLE,
            s_faith      DOUBLE,
            agree        BOOLEAN NOT NULL,  -- judges within the panel's delta where needed
            missing      TEXT               -- why not rankable; NULL when rankable
        );
        CREATE TABLE aspect_scores_state (
            scope      TEXT PRIMARY KEY,    -- hash of (panel without its name, split, models)
            stamp      TEXT NOT NULL,       -- row counts of the inputs it was built from
            panel      JSON NOT NULL,
            judges     JSON NOT NULL,       -- the panel resolved: judge ids per aspect
            split      TEXT NOT NULL,
            model_ids  JSON,                -- null: every model
            n_candidates BIGINT NOT NULL,   -- counts a preview reports, weight-independent
            n_examples   BIGINT NOT NULL,
            n_unrankable BIGINT NOT NULL,   -- missing a needed aspect
            n_disagree   BIGINT NOT NULL,   -- rankable, but the judges disagree
            seconds    DOUBLE,
            built_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        -- Per example, the review flags the queue filters on (reviewed, overridden, last
        -- reviewer), derived from the append-only overrides and rebuilt when their count
        -- changes (reset_core.review.queue), so a queue render never re-derives the state
        -- of every override event. Derived, safe to drop.
        CREATE TABLE review_flags (
            example_id    TEXT PRIMARY KEY,
            reviewed      BOOLEAN NOT NULL,
            overridden    BOOLEAN NOT NULL,
            last_at       TIMESTAMP,
            last_reviewer TEXT
        );
        CREATE TABLE review_flags_state (n_events BIGINT NOT NULL);
        -- Stored selections hold the judges' picks only; reviewers' overrides are
        -- applied when read (reset_core.review.events.effective_picks). Rows written
        -- before this migration had them baked in: the column says which were edited.
        COMMENT ON COLUMN selection_scores.override IS
            'legacy: the override baked in at save time (rows before 009); new rows NULL';
        """,
    ),
    Migration(
        "010_judge_endpoints",
        """
        -- Judges registered before endpoints were recorded get theirs as well as it can
        -- be known; no judge or judgment row is deleted or re-keyed. (From now on a
        -- judge's id covers its endpoint, so a rerun makes a new judge; the old verdicts
        -- stay under their old ids.) Metric judges ran in-process; the local judge on
        -- its model; an LLM judge on its configured base URL, normalised as
        -- reset_core.judging.engine.normalise_base_url does (lowercase scheme and host,
        -- no credentials, default port, query or trailing slash); one that read its URL
        -- from the environment cannot be known any more, and says so.
        UPDATE judges SET endpoint = CASE
            WHEN kind = 'metric' THEN 'in-process'
            WHEN json_extract_string(config, '$.type') = 'local'
                THEN 'in-process:' || coalesce(model, 'unknown model')
            WHEN nullif(trim(json_extract_string(config, '$.config.base_url')), '') IS NOT NULL
                THEN (
                    WITH u AS (
                        SELECT CASE WHEN contains(b, '://') THEN b ELSE 'http://' || b END AS b
                        FROM (SELECT trim(json_extract_string(config, '$.config.base_url')) AS b)
                    ), p AS (
                        SELECT lower(regexp_extract(b, '^([^:]+)://', 1)) AS scheme,
                               lower(regexp_replace(
                                   regexp_extract(b, '^[^:]+://([^/?#]*)', 1), '^.*@', ''
                               )) AS hostport,
                               rtrim(regexp_extract(b, '^[^:]+://[^/?#]*([^?#]*)', 1), '/')
                                   AS path
                        FROM u
                    )
                    SELECT scheme || '://' || CASE
                        WHEN scheme = 'http' THEN regexp_replace(hostport, ':80$', '')
                        WHEN scheme = 'https' THEN regexp_replace(hostport, ':443$', '')
                        ELSE hostport END || path
                    FROM p
                )
            ELSE 'unknown (judged before endpoints were recorded)'
        END
        WHERE endpoint IS NULL;
        UPDATE judges SET placeholder = false WHERE placeholder IS NULL;
        """,
    ),
    Migration(
        "011_rekinds",
        """
        -- Every re-kind of a source's examples, asked for by a person (reset-studio
        -- rekind, the Data page): the only way stored kinds change. Summaries that cache
        -- an example's kind count these rows in their stamps, so a re-kind refreshes them.
        CREATE TABLE rekinds (
            rekind_id  TEXT PRIMARY KEY,
            source     TEXT NOT NULL,
            target     TEXT NOT NULL,       -- instruction | context | preset
            n_changed  INTEGER NOT NULL,
            changes    JSON NOT NULL,       -- [{"from", "to", "n"}]
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        """,
    ),
    Migration(
        "012_evaluations",
        """
        -- An evaluation: checkpoints answering one frozen test set with one fixed decoding
        -- setting, scored by one frozen judge panel (reset_core.evaluation). It drives
        -- ordinary sampling and judging jobs (evaluation_jobs), so its answers are
        -- candidates and its scores judgments; what it adds is the frozen inputs.
        CREATE TABLE evaluations (
            evaluation_id TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            config        JSON NOT NULL,   -- EvalConfig as given
            frozen        JSON NOT NULL,   -- panel, judge specs (rubric text included) per
                                           -- judge id, setting, test-set filter: never edited
            status        TEXT NOT NULL,   -- planned | sampling | judging | done | failed
            error         TEXT,
            experiment_id TEXT,            -- the experiment that made it, if any
            created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
            finished_at   TIMESTAMP
        );
        -- The test set, resolved once when the evaluation is created, so a later import
        -- or re-kind never changes what an evaluation measured.
        CREATE TABLE evaluation_examples (
            evaluation_id TEXT NOT NULL,
            example_id    TEXT NOT NULL,
            PRIMARY KEY (evaluation_id, example_id)
        );
        -- The checkpoints compared, in the order given (position 0 first).
        CREATE TABLE evaluation_checkpoints (
            evaluation_id TEXT NOT NULL,
            model_id      TEXT NOT NULL,
            position      INTEGER NOT NULL,
            label         TEXT NOT NULL,   -- e.g. base, MTL, RESET round 1, or the arm name
            PRIMARY KEY (evaluation_id, model_id)
        );
        -- The sampling and judging jobs an evaluation started (stage: sample | judge).
        CREATE TABLE evaluation_jobs (
            evaluation_id TEXT NOT NULL,
            job_id        TEXT NOT NULL,
            stage         TEXT NOT NULL,
            model_id      TEXT,            -- sample jobs: the checkpoint it answers with
            PRIMARY KEY (evaluation_id, job_id)
        );
        -- A paper experiment run from a recipe (reset_core.evaluation.experiments): the
        -- recipe as run, and each step's outputs (models, sets, jobs, the evaluation).
        CREATE TABLE experiments (
            experiment_id TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            recipe        JSON NOT NULL,
            state         JSON NOT NULL,   -- step name -> {status, job_id, outputs}
            status        TEXT NOT NULL,   -- running | done | failed
            error         TEXT,
            created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
            finished_at   TIMESTAMP
        );
        """,
    ),
    Migration(
        "013_evaluation_attempts",
        """
        -- When an evaluation was last started or resumed. A failed verdict or a failed
        -- sampling job is retried a bounded number of times (reset_core.evaluation.launch)
        -- counting only the jobs started since then, so resuming a failed evaluation
        -- gives it fresh attempts while a job that fails every time never loops forever.
        ALTER TABLE evaluations ADD COLUMN started_at TIMESTAMP;
        UPDATE evaluations SET started_at = created_at;
        """,
    ),
    Migration(
        "014_injection_flags",
        """
        -- What the prompt-injection detector (reset_core.judging.injection) found in each
        -- candidate it scanned: one row per candidate and detector version, rules empty
        -- when clean. Stored, not recomputed, so the Judge page can count flags over a
        -- million candidates in SQL and the Review page show them by lookup.
        CREATE TABLE injection_flags (
            candidate_id  TEXT PRIMARY KEY,
            detector      TEXT NOT NULL,      -- e.g. injection-v1
            rules         TEXT[] NOT NULL,    -- the rules that fired; [] = clean
            sentences     TEXT[],             -- the sentences they fired in
            scanned_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
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
