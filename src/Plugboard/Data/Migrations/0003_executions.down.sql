DROP INDEX IF EXISTS connector_executions_status_idx;
DROP INDEX IF EXISTS connector_executions_workspace_idx;
ALTER TABLE connector_executions
    DROP COLUMN IF EXISTS output_truncated,
    DROP COLUMN IF EXISTS attempts,
    DROP COLUMN IF EXISTS cancel_requested_at;
ALTER TABLE connectors DROP COLUMN IF EXISTS max_concurrency;
