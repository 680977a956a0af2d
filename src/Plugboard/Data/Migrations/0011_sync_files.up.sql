-- A synced document may be a file to download (a stream's content_url): the document job fetches it into the bucket
-- through the connector's engine (SSRF guard, credential hosts) before extracting it.
ALTER TABLE imported_documents ADD COLUMN download_url text CHECK (length(download_url) <= 8192);
