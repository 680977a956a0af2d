ALTER TABLE imported_documents DROP COLUMN download_url;
