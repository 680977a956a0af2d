DROP TRIGGER IF EXISTS connector_executions_notify_cancel ON connector_executions;
DROP FUNCTION IF EXISTS connector_executions_notify_cancel();
DROP TABLE IF EXISTS key_ring_canary;
DROP TABLE IF EXISTS worker_heartbeats;
