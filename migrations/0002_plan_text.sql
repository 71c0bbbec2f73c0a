-- tenantize journal, version 2: the plan itself, so that a run in progress can be resumed
-- (status, apply, rollback, the wizard) without its plan file.
-- Applied by the tool itself (embedded in the binary), inside one transaction, once.

-- One row per plan a run started with: its full sealed file text, exactly as the plan codec
-- writes it, and the SHA-256 of that text. The plan hash inside the text must equal plan_hash,
-- and the text its own checksums: a copy that does not is refused, never run.
CREATE TABLE IF NOT EXISTS tenantize.plan_texts (
    plan_hash    text PRIMARY KEY,
    plan_text    text NOT NULL,
    text_sha256  text NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now()
);
