-- tenantize journal, version 1: which plan ran where, step by step.
-- Applied by the tool itself (embedded in the binary), inside one transaction.

CREATE TABLE tenantize.plans (
    plan_hash            text PRIMARY KEY,
    catalog_fingerprint  text NOT NULL,
    database_name        text NOT NULL,
    step_count           integer NOT NULL,
    registered_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenantize.steps (
    plan_hash      text NOT NULL REFERENCES tenantize.plans (plan_hash) ON DELETE CASCADE,
    step_id        text NOT NULL,
    position       integer NOT NULL,
    stage          smallint NOT NULL CHECK (stage BETWEEN 1 AND 8),
    step_hash      text NOT NULL,
    state          text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'running', 'done', 'failed', 'rolled_back')),
    started_at     timestamptz,
    finished_at    timestamptz,
    duration_ms    bigint,
    rows_affected  bigint NOT NULL DEFAULT 0,
    error          text,
    -- JSON: {"direction": "forward"|"rollback", "statement": n, "batch_key": [...], "block": n}
    resume_key     text,
    attempts       integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_hash, step_id)
);

CREATE TABLE tenantize.runs (
    run_id            bigserial PRIMARY KEY,
    plan_hash         text NOT NULL,
    command           text NOT NULL,
    tool_version      text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    outcome           text,
    detail            text,
    backend_pid       integer NOT NULL DEFAULT pg_backend_pid(),
    application_name  text NOT NULL DEFAULT current_setting('application_name')
);
