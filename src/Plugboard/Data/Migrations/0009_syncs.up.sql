-- Scheduled syncs: what a connector's frequency means, where each stream's cursor stands, one log row per sync.

-- A frequency is a word (manual, realtime, 15m, hourly, daily, weekly) or a cron expression read in sync_timezone;
-- the API parses both (Cronos), the column only bounds them. A paused connector keeps its frequency and has no
-- next_sync_at until it is resumed.
ALTER TABLE connectors DROP CONSTRAINT connectors_sync_frequency_check;
ALTER TABLE connectors
    ADD CONSTRAINT connectors_sync_frequency_check CHECK (length(sync_frequency) BETWEEN 1 AND 100),
    ADD COLUMN sync_timezone  text NOT NULL DEFAULT 'UTC' CHECK (length(sync_timezone) BETWEEN 1 AND 64),
    ADD COLUMN sync_paused_at timestamptz;
GRANT SELECT (sync_timezone, sync_paused_at) ON connectors TO plugboard_api;
-- Until now nothing read next_sync_at: connectors that cannot sync (no streams) lose the start set for them.
UPDATE connectors SET next_sync_at = NULL WHERE NOT (manifest ? 'streams');
DROP INDEX connectors_next_sync_idx;
CREATE INDEX connectors_next_sync_idx ON connectors (next_sync_at) WHERE next_sync_at IS NOT NULL;

-- One row per sync, queued before its job runs. At most one queued or running sync per connector: the index is what
-- makes "two syncs of one connector never overlap" hold for any number of schedulers and API processes.
ALTER TABLE connector_sync_logs
    ALTER COLUMN status SET DEFAULT 'queued',
    ADD COLUMN trigger           text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('schedule', 'manual', 'webhook')),
    ADD COLUMN full_refresh      boolean NOT NULL DEFAULT false,
    ADD COLUMN job_id            uuid,
    ADD COLUMN records_fetched   int NOT NULL DEFAULT 0,
    ADD COLUMN records_unchanged int NOT NULL DEFAULT 0,
    ADD COLUMN records_deleted   int NOT NULL DEFAULT 0,
    ADD COLUMN pages             int NOT NULL DEFAULT 0,
    ADD COLUMN requests          int NOT NULL DEFAULT 0,
    ADD COLUMN cursor_before     jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN cursor_after      jsonb NOT NULL DEFAULT '{}';
ALTER TABLE connector_sync_logs ALTER COLUMN started_at DROP NOT NULL, ALTER COLUMN started_at DROP DEFAULT;
CREATE UNIQUE INDEX connector_sync_logs_one_active ON connector_sync_logs (workspace_id, connector_id) WHERE status IN ('queued', 'running');

-- Where each stream of a connector stands: its cursor advances only in the transaction that imports what it covers.
CREATE TABLE connector_stream_states (
    workspace_id text NOT NULL,
    connector_id uuid NOT NULL,
    stream       text NOT NULL CHECK (length(stream) BETWEEN 1 AND 64),
    cursor       jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, connector_id, stream),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);
ALTER TABLE connector_stream_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE connector_stream_states FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON connector_stream_states TO plugboard_service USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON connector_stream_states TO plugboard_service;
GRANT SELECT ON connector_stream_states TO plugboard_api;
CREATE POLICY api_select ON connector_stream_states FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id());

-- Synced documents remember their stream, so a full refresh marks deleted only what its own stream no longer returns.
ALTER TABLE imported_documents ADD COLUMN stream text CHECK (length(stream) <= 64);
CREATE INDEX imported_documents_stream_idx ON imported_documents (workspace_id, connector_id, stream) WHERE stream IS NOT NULL;

-- The records feed: every write a sync makes to a document takes the next number of its workspace's change sequence.
-- The counter row is locked by the import until it commits, so numbers commit in order and a reader that has seen
-- number N never later finds a smaller one appear.
CREATE TABLE workspace_change_counters (
    workspace_id text PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    last_seq     bigint NOT NULL DEFAULT 0
);
ALTER TABLE workspace_change_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_change_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON workspace_change_counters TO plugboard_service USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON workspace_change_counters TO plugboard_service;

ALTER TABLE imported_documents
    ADD COLUMN change_seq      bigint,
    ADD COLUMN last_action     text CHECK (last_action IN ('added', 'updated', 'deleted')),
    ADD COLUMN last_changed_at timestamptz;
CREATE INDEX imported_documents_changes_idx ON imported_documents (workspace_id, connector_id, change_seq) WHERE change_seq IS NOT NULL;
