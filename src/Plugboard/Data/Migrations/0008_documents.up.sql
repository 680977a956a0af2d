-- Files and documents: uploads into the connector-imports bucket, batches that count exactly, chunks that search.
CREATE EXTENSION IF NOT EXISTS btree_gin; -- lets one GIN index hold (workspace_id, search)

ALTER TABLE imported_documents
    ADD COLUMN source         text NOT NULL DEFAULT 'upload' CHECK (source IN ('upload', 'sync', 'webhook')),
    ADD COLUMN file_name      text CHECK (length(file_name) <= 1024),
    ADD COLUMN processed_hash text,
    ADD COLUMN batch_counted  boolean NOT NULL DEFAULT false,
    ADD COLUMN deleted_at     timestamptz,
    ADD COLUMN created_by     uuid;
-- Uploading the same bytes twice into a workspace yields the first document (race-free through the index).
CREATE UNIQUE INDEX imported_documents_upload_hash_key ON imported_documents (workspace_id, content_hash)
    WHERE source = 'upload' AND NOT is_deleted AND content_hash IS NOT NULL;
CREATE INDEX imported_documents_batch_idx ON imported_documents (workspace_id, batch_id) WHERE batch_id IS NOT NULL;

-- A batch created without an expected count is open: each file it receives adds to its total, and it completes only
-- once closed. received_files counts files taken in, so an expected-count batch refuses one too many.
ALTER TABLE file_upload_batches
    ADD COLUMN is_open        boolean NOT NULL DEFAULT false,
    ADD COLUMN received_files int NOT NULL DEFAULT 0 CHECK (received_files >= 0);

CREATE OR REPLACE FUNCTION increment_batch_processed(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET processed_files = b.processed_files + 1,
               status = CASE WHEN NOT b.is_open AND b.processed_files + 1 + b.failed_files >= b.total_files
                             THEN CASE WHEN b.failed_files > 0 THEN 'completed_with_errors' ELSE 'completed' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN NOT b.is_open AND b.processed_files + 1 + b.failed_files >= b.total_files THEN now() END
         WHERE b.id = increment_batch_processed.batch_id
     RETURNING b.*
    $$;

CREATE OR REPLACE FUNCTION increment_batch_failed(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET failed_files = b.failed_files + 1,
               status = CASE WHEN NOT b.is_open AND b.processed_files + b.failed_files + 1 >= b.total_files
                             THEN CASE WHEN b.processed_files = 0 THEN 'failed' ELSE 'completed_with_errors' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN NOT b.is_open AND b.processed_files + b.failed_files + 1 >= b.total_files THEN now() END
         WHERE b.id = increment_batch_failed.batch_id
     RETURNING b.*
    $$;

-- Closing an open batch fixes its total at what it received; it completes at once if everything is through.
CREATE FUNCTION close_batch(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET is_open = false,
               total_files = b.received_files,
               status = CASE WHEN b.processed_files + b.failed_files >= b.received_files
                             THEN CASE WHEN b.failed_files = 0 THEN 'completed'
                                       WHEN b.processed_files = 0 THEN 'failed' ELSE 'completed_with_errors' END
                             ELSE b.status END,
               completed_at = CASE WHEN b.processed_files + b.failed_files >= b.received_files THEN now() END
         WHERE b.id = close_batch.batch_id AND b.is_open
     RETURNING b.*
    $$;

-- Every file a batch could not take or process, with the reason a user can act on.
CREATE TABLE file_upload_batch_failures (
    workspace_id text NOT NULL,
    id           uuid NOT NULL,
    batch_id     uuid NOT NULL,
    file_name    text NOT NULL CHECK (length(file_name) <= 1024),
    reason       text NOT NULL,
    document_id  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, batch_id) REFERENCES file_upload_batches (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX file_upload_batch_failures_batch_idx ON file_upload_batch_failures (workspace_id, batch_id, id);

-- A document's searchable pieces. search holds the title (weight A), the heading path (B) and the text (D), built by
-- the worker with the configured text search configuration.
CREATE TABLE document_chunks (
    workspace_id text NOT NULL,
    document_id  uuid NOT NULL,
    ordinal      int NOT NULL CHECK (ordinal >= 0),
    content      text NOT NULL,
    heading_path text[] NOT NULL DEFAULT '{}',
    char_start   int NOT NULL CHECK (char_start >= 0),
    char_end     int NOT NULL CHECK (char_end >= char_start),
    page_start   int,
    page_end     int,
    start_ms     bigint,
    end_ms       bigint,
    speaker      text,
    token_count  int NOT NULL CHECK (token_count >= 0),
    search       tsvector NOT NULL,
    PRIMARY KEY (workspace_id, document_id, ordinal),
    FOREIGN KEY (workspace_id, document_id) REFERENCES imported_documents (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX document_chunks_search_idx ON document_chunks USING gin (workspace_id, search);

-- Objects written before their document row commits: the intent is inserted before the object is stored and deleted
-- in the transaction that records the document. The sweeper takes intents older than its grace period (row-locked, so
-- a recording and a sweep exclude each other) and deletes their objects: the request crashed or failed between
-- storing and recording. A recording that finds its intent gone was too late, and rolls back.
CREATE TABLE pending_objects (
    object_key   text PRIMARY KEY,
    workspace_id text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Only keys Plugboard makes, under the workspace's own prefix: the sweeper (service role) deletes these objects,
    -- so a workspace can never point it at another's.
    CHECK (object_key ~ '^workspaces/[a-z0-9_]{1,64}/documents/[0-9a-f]{32}$' AND starts_with(object_key, 'workspaces/' || workspace_id || '/'))
);
CREATE INDEX pending_objects_created_idx ON pending_objects (created_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['file_upload_batch_failures', 'document_chunks', 'pending_objects']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY service_all ON %I TO plugboard_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO plugboard_service', t);
    END LOOP;
END
$$;

-- The API reads chunks and failures of its workspace; it records refusals (members); chunks are written by workers only.
GRANT SELECT ON document_chunks TO plugboard_api;
CREATE POLICY api_select ON document_chunks FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id());
GRANT SELECT, INSERT ON file_upload_batch_failures TO plugboard_api;
CREATE POLICY api_select ON file_upload_batch_failures FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id());
CREATE POLICY api_insert ON file_upload_batch_failures FOR INSERT TO plugboard_api
    WITH CHECK (workspace_id = app_workspace_id() AND app_role_at_least('member'));
GRANT SELECT, INSERT, DELETE ON pending_objects TO plugboard_api;
CREATE POLICY api_select ON pending_objects FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id());
CREATE POLICY api_insert ON pending_objects FOR INSERT TO plugboard_api
    WITH CHECK (workspace_id = app_workspace_id() AND app_role_at_least('member'));
CREATE POLICY api_delete ON pending_objects FOR DELETE TO plugboard_api
    USING (workspace_id = app_workspace_id() AND app_role_at_least('member'));
