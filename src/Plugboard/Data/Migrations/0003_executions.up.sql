-- Executions run durably: cancellation requests, a per-connector concurrency limit enforced by the job claim,
-- and the job that carries each execution.

ALTER TABLE connectors
    ADD COLUMN max_concurrency int NOT NULL DEFAULT 4 CHECK (max_concurrency BETWEEN 1 AND 100);

ALTER TABLE connector_executions
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN attempts int NOT NULL DEFAULT 0,
    ADD COLUMN output_truncated boolean NOT NULL DEFAULT false;

CREATE INDEX connector_executions_workspace_idx ON connector_executions (workspace_id, id DESC);
CREATE INDEX connector_executions_status_idx ON connector_executions (workspace_id, status, id DESC);
