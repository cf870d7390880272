//! Schema migrations of the store, applied in order on open. Never edit a
//! released migration: add a new one.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            "CREATE TABLE applied (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            project TEXT,
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            file TEXT NOT NULL,
            commit_id TEXT NOT NULL,
            applied_at TEXT NOT NULL
        );
        CREATE TABLE status (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            project TEXT,
            name TEXT NOT NULL,
            phase TEXT NOT NULL,
            message TEXT NOT NULL,
            synced_commit TEXT,
            file TEXT,
            last_transition TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            job TEXT NOT NULL,
            number INTEGER NOT NULL,
            trigger TEXT NOT NULL,
            pipeline TEXT NOT NULL,
            state TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            commit_id TEXT NOT NULL,
            params TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            exit_code INTEGER,
            message TEXT NOT NULL,
            pid INTEGER,
            start_ticks INTEGER,
            log_path TEXT NOT NULL,
            gpus TEXT,
            UNIQUE (job, number)
        );
        CREATE INDEX runs_state ON runs (state);
        CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs (id),
            job TEXT NOT NULL,
            output TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX artifacts_job_output ON artifacts (job, output);
        CREATE TABLE processes (
            key TEXT NOT NULL,
            replica INTEGER NOT NULL,
            pid INTEGER NOT NULL,
            start_ticks INTEGER NOT NULL,
            port INTEGER NOT NULL,
            commit_id TEXT NOT NULL,
            started_at TEXT NOT NULL,
            PRIMARY KEY (key, replica)
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            commit_id TEXT,
            resource TEXT,
            action TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE TABLE syncs (
            id INTEGER PRIMARY KEY,
            commit_id TEXT NOT NULL,
            detected_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            duration_ms INTEGER NOT NULL,
            summary TEXT NOT NULL,
            errors INTEGER NOT NULL
        );
        CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
        ),
        M::up(
            "CREATE TABLE model_versions (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            commit_id TEXT NOT NULL,
            artifact_sha256 TEXT NOT NULL,
            run_id INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (model, version)
        );",
        ),
        M::up(
            "ALTER TABLE model_versions ADD COLUMN state TEXT NOT NULL DEFAULT 'retired';
        CREATE TABLE rollout_steps (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            at TEXT NOT NULL,
            weight INTEGER NOT NULL,
            decision TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX rollout_steps_model ON rollout_steps (model, version);",
        ),
        M::up("ALTER TABLE model_versions ADD COLUMN spec_digest TEXT NOT NULL DEFAULT '';"),
        M::up(
            "ALTER TABLE audit ADD COLUMN actor TEXT NOT NULL DEFAULT 'cairn';
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            project TEXT,
            role TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            revoked_at TEXT,
            last_used_at TEXT
        );",
        ),
        // The Kubernetes objects Cairn applied, by UID: only these are pruned.
        M::up(
            "CREATE TABLE kube_objects (
            resource TEXT NOT NULL,
            api_version TEXT NOT NULL,
            kind TEXT NOT NULL,
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            uid TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (api_version, kind, namespace, name)
        );
        CREATE INDEX kube_objects_resource ON kube_objects (resource);
        CREATE INDEX kube_objects_uid ON kube_objects (uid);",
        ),
        // Experiment tracking (MLflow's model): experiments, runs, params,
        // tags, metric histories with the latest value per key, dataset
        // inputs, model outputs and logged models.
        M::up(
            "CREATE TABLE experiments (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            project TEXT,
            job TEXT,
            artifact_location TEXT NOT NULL,
            lifecycle TEXT NOT NULL DEFAULT 'active',
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        );
        CREATE TABLE experiment_tags (
            experiment_id INTEGER NOT NULL REFERENCES experiments (id),
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (experiment_id, key)
        );
        CREATE TABLE tracked_runs (
            id TEXT PRIMARY KEY NOT NULL,
            experiment_id INTEGER NOT NULL REFERENCES experiments (id),
            name TEXT NOT NULL,
            user TEXT NOT NULL,
            status TEXT NOT NULL,
            start_ms INTEGER,
            end_ms INTEGER,
            lifecycle TEXT NOT NULL DEFAULT 'active',
            artifact_uri TEXT NOT NULL,
            job_run INTEGER UNIQUE
        );
        CREATE INDEX tracked_runs_experiment ON tracked_runs (experiment_id, start_ms);
        CREATE TABLE run_params (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE run_tags (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE TABLE run_metrics (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            step INTEGER NOT NULL,
            timestamp_ms INTEGER NOT NULL,
            value REAL,
            is_nan INTEGER NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX run_metrics_history ON run_metrics (run_id, key, timestamp_ms, step, value, is_nan);
        CREATE TABLE latest_metrics (
            run_id TEXT NOT NULL,
            key TEXT NOT NULL,
            step INTEGER NOT NULL,
            timestamp_ms INTEGER NOT NULL,
            value REAL,
            is_nan INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX latest_metrics_key ON latest_metrics (key, value);
        CREATE TABLE run_inputs (
            run_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            source_type TEXT NOT NULL,
            source TEXT NOT NULL,
            schema TEXT,
            profile TEXT,
            tags TEXT NOT NULL,
            PRIMARY KEY (run_id, name, digest)
        ) WITHOUT ROWID;
        CREATE TABLE run_outputs (
            run_id TEXT NOT NULL,
            model_id TEXT NOT NULL,
            step INTEGER NOT NULL,
            PRIMARY KEY (run_id, model_id)
        ) WITHOUT ROWID;
        CREATE TABLE logged_models (
            id TEXT PRIMARY KEY NOT NULL,
            experiment_id INTEGER NOT NULL REFERENCES experiments (id),
            name TEXT NOT NULL,
            artifact_uri TEXT NOT NULL,
            status TEXT NOT NULL,
            model_type TEXT NOT NULL,
            source_run_id TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            params TEXT NOT NULL,
            tags TEXT NOT NULL
        );
        CREATE INDEX logged_models_experiment ON logged_models (experiment_id, name);",
        ),
        // A sweep's runs feed models and downstream jobs only once one is chosen.
        M::up(
            "ALTER TABLE runs ADD COLUMN sweep TEXT;
        ALTER TABLE runs ADD COLUMN best INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX runs_sweep ON runs (sweep);",
        ),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }
}
