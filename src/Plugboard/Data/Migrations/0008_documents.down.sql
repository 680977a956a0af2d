DROP TABLE pending_objects;
DROP TABLE document_chunks;
DROP TABLE file_upload_batch_failures;
DROP FUNCTION close_batch(uuid);

CREATE OR REPLACE FUNCTION increment_batch_processed(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET processed_files = b.processed_files + 1,
               status = CASE WHEN b.processed_files + 1 + b.failed_files >= b.total_files
                             THEN CASE WHEN b.failed_files > 0 THEN 'completed_with_errors' ELSE 'completed' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN b.processed_files + 1 + b.failed_files >= b.total_files THEN now() END
         WHERE b.id = increment_batch_processed.batch_id
     RETURNING b.*
    $$;

CREATE OR REPLACE FUNCTION increment_batch_failed(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET failed_files = b.failed_files + 1,
               status = CASE WHEN b.processed_files + b.failed_files + 1 >= b.total_files
                             THEN CASE WHEN b.processed_files = 0 THEN 'failed' ELSE 'completed_with_errors' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN b.processed_files + b.failed_files + 1 >= b.total_files THEN now() END
         WHERE b.id = increment_batch_failed.batch_id
     RETURNING b.*
    $$;

ALTER TABLE file_upload_batches DROP COLUMN received_files, DROP COLUMN is_open;
DROP INDEX imported_documents_batch_idx;
DROP INDEX imported_documents_upload_hash_key;
ALTER TABLE imported_documents DROP COLUMN created_by, DROP COLUMN deleted_at, DROP COLUMN batch_counted,
    DROP COLUMN processed_hash, DROP COLUMN file_name, DROP COLUMN source;
DROP EXTENSION IF EXISTS btree_gin;
