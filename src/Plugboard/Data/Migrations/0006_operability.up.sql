-- Readiness that means something: a row per live worker process with its last beat, and a canary ciphertext that
-- proves the key ring of a process can decrypt what the others wrote.
CREATE TABLE worker_heartbeats (
    worker_id  text PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 200),
    host       text NOT NULL,
    pid        int NOT NULL,
    kinds      text[] NOT NULL DEFAULT '{}',
    slots      int NOT NULL,
    running    int NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    beat_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_heartbeats_beat_idx ON worker_heartbeats (beat_at);

CREATE TABLE key_ring_canary (
    id         int PRIMARY KEY CHECK (id = 1),
    ciphertext text NOT NULL CHECK (ciphertext LIKE 'pb1:%'),
    key_id     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER key_ring_canary_updated_at BEFORE UPDATE ON key_ring_canary FOR EACH ROW EXECUTE FUNCTION set_updated_at();

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['worker_heartbeats', 'key_ring_canary']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY service_all ON %I TO plugboard_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO plugboard_service', t);
    END LOOP;
END
$$;
-- Cancelling a running execution reaches the worker that runs it at once, through its LISTEN connection (no
-- worker polls for cancellations); a queued one is cancelled by the API directly.
CREATE FUNCTION connector_executions_notify_cancel() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('plugboard_cancel', 'execution:' || NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER connector_executions_notify_cancel AFTER UPDATE OF cancel_requested_at ON connector_executions
    FOR EACH ROW WHEN (OLD.cancel_requested_at IS NULL AND NEW.cancel_requested_at IS NOT NULL AND NEW.status = 'running')
    EXECUTE FUNCTION connector_executions_notify_cancel();

-- OAuth2 refreshes are single-flight per credential through a short lease, not a row lock held during the token
-- request (the API never reads or writes this column).
ALTER TABLE workspace_api_credentials ADD COLUMN refreshing_until timestamptz;

-- Platform admins read the heartbeats through the API; nobody else, and nothing else of these tables.
GRANT SELECT ON worker_heartbeats TO plugboard_api;
CREATE POLICY api_select ON worker_heartbeats FOR SELECT TO plugboard_api USING (app_platform_role_at_least('admin'));
