-- Retention: what the pruner deletes by age is found through an index, so each small batch is cheap however large
-- the tables grow.
CREATE INDEX connector_executions_finished_idx ON connector_executions (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX connector_sync_logs_completed_idx ON connector_sync_logs (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX connector_webhook_events_processed_idx ON connector_webhook_events (processed_at) WHERE processed;
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE state IN ('dead', 'cancelled');
