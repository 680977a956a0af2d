-- Connecting an account (OAuth2 authorization code with PKCE). A credential can now be of that scheme.
ALTER TABLE workspace_api_credentials DROP CONSTRAINT workspace_api_credentials_auth_type_check;
ALTER TABLE workspace_api_credentials ADD CONSTRAINT workspace_api_credentials_auth_type_check
    CHECK (auth_type IN ('api_key', 'bearer', 'basic', 'oauth2_client_credentials', 'oauth2_refresh_token', 'oauth2_authorization_code', 'session', 'custom'));

-- One started connection: the consent URL was handed out and the callback has not yet used its state. Only the
-- state's SHA-256 is stored; the client's id and secret and the PKCE verifier are encrypted. The callback (no API
-- key: the browser comes back from the provider) claims the row once, as the service role, and acts as its creator.
CREATE TABLE oauth_authorizations (
    workspace_id      text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL,
    state_hash        bytea NOT NULL UNIQUE CHECK (length(state_hash) = 32),
    created_by        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connector_id      uuid,
    template_id       uuid,
    manifest          jsonb NOT NULL,
    config            jsonb NOT NULL DEFAULT '{}',
    credential_name   text NOT NULL CHECK (length(credential_name) BETWEEN 1 AND 200),
    encrypted_payload text NOT NULL CHECK (encrypted_payload LIKE 'pb1:%'),
    redirect_uri      text NOT NULL,
    redirect_to       text,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'exchanging', 'completed', 'failed')),
    credential_id     uuid,
    error             text,
    expires_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX oauth_authorizations_expiry_idx ON oauth_authorizations (expires_at);
ALTER TABLE oauth_authorizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_authorizations FORCE ROW LEVEL SECURITY;
CREATE POLICY service_all ON oauth_authorizations TO plugboard_service USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_authorizations TO plugboard_service;
GRANT INSERT ON oauth_authorizations TO plugboard_api;
GRANT SELECT (workspace_id, id, created_by, connector_id, template_id, credential_name, redirect_to, status, credential_id, error,
              expires_at, completed_at, created_at) ON oauth_authorizations TO plugboard_api;
CREATE POLICY api_select ON oauth_authorizations FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id());
CREATE POLICY api_insert ON oauth_authorizations FOR INSERT TO plugboard_api
    WITH CHECK (workspace_id = app_workspace_id() AND created_by = app_user_id() AND app_role_at_least('admin'));
-- The callback finishes the attempt in the same transaction that stores the credential, acting as its creator.
GRANT UPDATE (status, credential_id, error, completed_at) ON oauth_authorizations TO plugboard_api;
CREATE POLICY api_update ON oauth_authorizations FOR UPDATE TO plugboard_api
    USING (workspace_id = app_workspace_id() AND created_by = app_user_id()) WITH CHECK (workspace_id = app_workspace_id());
