DROP TABLE oauth_authorizations;
DELETE FROM workspace_api_credentials WHERE auth_type = 'oauth2_authorization_code';
ALTER TABLE workspace_api_credentials DROP CONSTRAINT workspace_api_credentials_auth_type_check;
ALTER TABLE workspace_api_credentials ADD CONSTRAINT workspace_api_credentials_auth_type_check
    CHECK (auth_type IN ('api_key', 'bearer', 'basic', 'oauth2_client_credentials', 'oauth2_refresh_token', 'session', 'custom'));
