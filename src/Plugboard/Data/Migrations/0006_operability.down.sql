DROP TRIGGER IF EXISTS connector_executions_notify_cancel ON connector_executions;
DROP FUNCTION IF EXISTS connector_executions_notify_cancel();
ALTER TABLE workspace_api_credentials DROP COLUMN IF EXISTS refreshing_until;
DROP TABLE IF EXISTS key_ring_canary;
DROP TABLE IF EXISTS worker_heartbeats;
