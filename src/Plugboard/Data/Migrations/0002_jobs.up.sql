-- The durable job queue every capability shares (executions, syncs, webhooks, documents, batches).
-- A job is inserted in the same transaction as the row that records the work; workers claim due jobs in
-- batches with FOR UPDATE SKIP LOCKED, hold them under a renewed lease, and delete them on success.
-- Failed attempts come back with backoff until max_attempts, then stay as dead letters for operators.
CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (length(kind) BETWEEN 1 AND 200),
    payload           jsonb NOT NULL DEFAULT '{}'::jsonb,
    workspace_id      text, -- NULL for platform work; no foreign key: a job may outlive its workspace's rows
    concurrency_key   text CHECK (length(concurrency_key) BETWEEN 1 AND 500),
    concurrency_limit int NOT NULL DEFAULT 1 CHECK (concurrency_limit >= 1),
    priority          smallint NOT NULL DEFAULT 0,
    state             text NOT NULL DEFAULT 'available' CHECK (state IN ('available', 'running', 'dead', 'cancelled')),
    run_at            timestamptz NOT NULL DEFAULT now(),
    attempts          int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      int NOT NULL DEFAULT 10 CHECK (max_attempts >= 1),
    lease_expires_at  timestamptz,
    locked_by         text,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CONSTRAINT jobs_running_has_lease CHECK ((state = 'running') = (lease_expires_at IS NOT NULL AND locked_by IS NOT NULL))
);
-- Claims read the due head of the queue, reclaim expired leases and count running jobs per concurrency key.
CREATE INDEX jobs_due_idx ON jobs (priority DESC, run_at) WHERE state = 'available';
-- Fair claims walk the workspaces that have available jobs (a skip scan) and read each one's due head.
CREATE INDEX jobs_workspace_due_idx ON jobs ((coalesce(workspace_id, '') COLLATE "C"), priority DESC, run_at) WHERE state = 'available';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_running_key_idx ON jobs (concurrency_key) WHERE state = 'running';
-- Operators page through dead letters newest first.
CREATE INDEX jobs_dead_idx ON jobs (id DESC) WHERE state = 'dead';

CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Wakes listening workers; NOTIFY is delivered when the inserting transaction commits, and never on rollback.
CREATE FUNCTION jobs_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('plugboard_jobs', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify();

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON jobs TO plugboard_service USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO plugboard_service;
-- The API may only enqueue, and only for the workspace of the current request; it never reads the queue.
CREATE POLICY api_insert ON jobs FOR INSERT TO plugboard_api WITH CHECK (workspace_id = app_workspace_id());
GRANT INSERT ON jobs TO plugboard_api;
