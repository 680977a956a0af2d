-- Inbound webhooks: each connector gets an unguessable endpoint POST /v1/hooks/{webhook_token}; a rotated signing
-- secret stays valid until webhook_secret_previous_until; failed verifications are counted per endpoint.

-- Two random UUIDs (PostgreSQL's strong random source): 244 random bits, URL-safe.
CREATE FUNCTION new_webhook_token() RETURNS text
    LANGUAGE sql VOLATILE
    AS $$ SELECT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '') $$;

ALTER TABLE connectors
    ADD COLUMN webhook_token text NOT NULL DEFAULT new_webhook_token() CHECK (webhook_token ~ '^[A-Za-z0-9_-]{32,128}$'),
    ADD COLUMN webhook_secret_previous text CHECK (webhook_secret_previous IS NULL OR webhook_secret_previous LIKE 'pb1:%'),
    ADD COLUMN webhook_secret_previous_until timestamptz;
CREATE UNIQUE INDEX connectors_webhook_token_key ON connectors (webhook_token);

-- The URL the API shows is derived from the token, so the two cannot disagree.
ALTER TABLE connectors DROP COLUMN webhook_url;
ALTER TABLE connectors ADD COLUMN webhook_url text GENERATED ALWAYS AS ('/v1/hooks/' || webhook_token) STORED;
GRANT SELECT (webhook_url, webhook_secret_previous_until) ON connectors TO plugboard_api;

-- A new secret moves the old one aside (the API cannot read either ciphertext, so the database does it). A rotation
-- says so by setting webhook_secret_previous_until, the end of the overlap, in the same update; re-encryption under
-- a new key (same secret, new ciphertext) leaves it alone and so keeps the previous secret as it was.
CREATE FUNCTION connectors_keep_previous_webhook_secret() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.webhook_secret IS DISTINCT FROM OLD.webhook_secret
       AND NEW.webhook_secret_previous_until IS DISTINCT FROM OLD.webhook_secret_previous_until THEN
        NEW.webhook_secret_previous := OLD.webhook_secret;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER connectors_keep_previous_webhook_secret BEFORE UPDATE OF webhook_secret ON connectors
    FOR EACH ROW EXECUTE FUNCTION connectors_keep_previous_webhook_secret();

-- Failed verifications per endpoint, apart from the connector row so a flood of bad requests never changes the
-- connector's ETag.
CREATE TABLE connector_webhook_failures (
    workspace_id         text NOT NULL,
    connector_id         uuid NOT NULL,
    failed_verifications bigint NOT NULL DEFAULT 0,
    last_failure         text,
    last_failure_at      timestamptz,
    PRIMARY KEY (workspace_id, connector_id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);
ALTER TABLE connector_webhook_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE connector_webhook_failures FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON connector_webhook_failures TO plugboard_service USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON connector_webhook_failures TO plugboard_service;
CREATE POLICY api_select ON connector_webhook_failures FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id());
GRANT SELECT ON connector_webhook_failures TO plugboard_api;

-- What verification concluded (scheme, and whether the previous secret matched), what processing did, and the
-- index the events list reads.
ALTER TABLE connector_webhook_events
    ADD COLUMN verification text NOT NULL DEFAULT '' CHECK (length(verification) <= 100),
    ADD COLUMN attempts int NOT NULL DEFAULT 0,
    ADD COLUMN result jsonb,
    ADD COLUMN note text CHECK (length(note) <= 2000);
CREATE INDEX connector_webhook_events_connector_idx ON connector_webhook_events (workspace_id, connector_id, id DESC);
