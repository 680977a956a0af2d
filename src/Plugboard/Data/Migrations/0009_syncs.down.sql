DROP INDEX imported_documents_changes_idx;
ALTER TABLE imported_documents DROP COLUMN change_seq, DROP COLUMN last_action, DROP COLUMN last_changed_at;
DROP TABLE workspace_change_counters;
DROP INDEX imported_documents_stream_idx;
ALTER TABLE imported_documents DROP COLUMN stream;
DROP TABLE connector_stream_states;
DROP INDEX connector_sync_logs_one_active;
DELETE FROM connector_sync_logs WHERE started_at IS NULL;
ALTER TABLE connector_sync_logs ALTER COLUMN started_at SET DEFAULT now(), ALTER COLUMN started_at SET NOT NULL;
ALTER TABLE connector_sync_logs
    ALTER COLUMN status SET DEFAULT 'running',
    DROP COLUMN trigger, DROP COLUMN full_refresh, DROP COLUMN job_id, DROP COLUMN records_fetched, DROP COLUMN records_unchanged,
    DROP COLUMN records_deleted, DROP COLUMN pages, DROP COLUMN requests, DROP COLUMN cursor_before, DROP COLUMN cursor_after;
DROP INDEX connectors_next_sync_idx;
ALTER TABLE connectors DROP COLUMN sync_timezone, DROP COLUMN sync_paused_at, DROP CONSTRAINT connectors_sync_frequency_check;
UPDATE connectors SET sync_frequency = 'daily' WHERE sync_frequency NOT IN ('manual', 'hourly', 'daily', 'weekly', 'realtime');
ALTER TABLE connectors ADD CONSTRAINT connectors_sync_frequency_check CHECK (sync_frequency IN ('manual', 'hourly', 'daily', 'weekly', 'realtime'));
CREATE INDEX connectors_next_sync_idx ON connectors (next_sync_at) WHERE is_active AND sync_frequency <> 'manual';
