-- Trust hardening: what the API role may never do is refused by the database, not only by handlers.
--  * SECURITY DEFINER functions are owned by plugboard_definer, a role that cannot log in (it sees the rows
--    they need through its own policies), so no login role's password can alter them.
--  * A key confined to a workspace or capped to a role carries no platform role.
--  * Column-level grants: the API cannot re-home, un-confine, un-cap, re-hash or un-revoke an API key, change a
--    user's email, set a template's install count, nor read credential or webhook-secret ciphertext at all.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plugboard_definer') THEN
        BEGIN
            CREATE ROLE plugboard_definer NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'Plugboard needs the role plugboard_definer, and % cannot create it.', current_user
                    USING HINT = 'As a superuser run: CREATE ROLE plugboard_definer NOLOGIN; then migrate again.';
        END;
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- What the definer functions touch, and nothing else.
GRANT SELECT, UPDATE (last_used_at) ON api_keys TO plugboard_definer;
GRANT SELECT ON saas_admin_users, workspace_members TO plugboard_definer;
GRANT SELECT, INSERT ON users TO plugboard_definer;
GRANT SELECT, UPDATE (install_count) ON connector_templates TO plugboard_definer;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'saas_admin_users', 'workspace_members', 'users', 'connector_templates']
    LOOP
        EXECUTE format('CREATE POLICY definer_all ON %I TO plugboard_definer USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;

-- A confined or capped key answers with no platform role; the key's expiry comes along so keys it mints can be
-- capped at it.
DROP FUNCTION authenticate_api_key(bytea);
CREATE FUNCTION authenticate_api_key(p_key_hash bytea)
    RETURNS TABLE (key_id uuid, user_id uuid, workspace_id text, key_role text, platform_role text, key_expires_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
        UPDATE api_keys k SET last_used_at = now()
         WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
           AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
        RETURNING k.id, k.user_id, k.workspace_id, k.role,
                  CASE WHEN k.workspace_id IS NULL AND k.role IS NULL
                       THEN (SELECT s.role FROM saas_admin_users s WHERE s.user_id = k.user_id) END,
                  k.expires_at;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT k.id, k.user_id, k.workspace_id, k.role,
                   CASE WHEN k.workspace_id IS NULL AND k.role IS NULL
                        THEN (SELECT s.role FROM saas_admin_users s WHERE s.user_id = k.user_id) END,
                   k.expires_at
              FROM api_keys k
             WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now());
    END IF;
END
$$;

-- Answers only for the caller (the user in the request context), whoever the first argument names.
CREATE OR REPLACE FUNCTION workspace_role_of(p_user_id uuid, p_workspace_id text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT m.role FROM workspace_members m WHERE m.user_id = p_user_id AND p_user_id = app_user_id() AND m.workspace_id = p_workspace_id $$;

-- Counts an installation by an admin of the current workspace (the install endpoint's rule), nothing else.
CREATE OR REPLACE FUNCTION record_template_install(p_template_id uuid) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        UPDATE connector_templates SET install_count = install_count + 1
         WHERE id = p_template_id AND status = 'published' AND app_workspace_id() IS NOT NULL AND app_role_at_least('admin')
    $$;

-- The new owner of a function must be able to create in its schema (for the ALTER OWNER below only).
GRANT CREATE ON SCHEMA public TO plugboard_definer;
DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['authenticate_api_key(bytea)', 'find_user_by_email(text)', 'workspace_role_of(uuid,text)',
                             'ensure_user(text)', 'record_template_install(uuid)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO plugboard_definer', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO plugboard_api', f);
    END LOOP;
    -- The workers never authenticate API keys or add users.
    REVOKE EXECUTE ON FUNCTION authenticate_api_key(bytea), find_user_by_email(text), workspace_role_of(uuid,text),
        ensure_user(text), record_template_install(uuid) FROM plugboard_service;
END
$$;
REVOKE CREATE ON SCHEMA public FROM plugboard_definer;

-- api_keys: the API names and revokes keys; nothing else about a key changes after it is made. It makes only
-- keys confined to the current workspace (personal keys come from bootstrap and `keys create`), never revoked,
-- used or already-named-by-the-server columns.
REVOKE INSERT, UPDATE, DELETE ON api_keys FROM plugboard_api;
GRANT INSERT (id, workspace_id, user_id, name, prefix, key_hash, role, expires_at) ON api_keys TO plugboard_api;
GRANT UPDATE (name, revoked_at) ON api_keys TO plugboard_api;
DROP POLICY api_insert ON api_keys;
CREATE POLICY api_insert ON api_keys FOR INSERT TO plugboard_api
    WITH CHECK (user_id = app_user_id() AND workspace_id = app_workspace_id());

CREATE FUNCTION api_keys_revocation_is_final() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'a revoked API key stays revoked' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER api_keys_revocation_is_final BEFORE UPDATE OF revoked_at ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_revocation_is_final();

-- users: the API may change a display name; users are created by ensure_user and bootstrap only.
REVOKE INSERT, UPDATE, DELETE ON users FROM plugboard_api;
GRANT UPDATE (display_name) ON users TO plugboard_api;

-- connector_templates: everything an edit or moderation sets, but not the install count (record_template_install).
REVOKE INSERT, UPDATE ON connector_templates FROM plugboard_api;
GRANT INSERT (id, workspace_id, kind, slug, name, description, category, tags, manifest, credential_fields, auth_type, created_by)
    ON connector_templates TO plugboard_api;
GRANT UPDATE (name, description, category, tags, status, featured, version, manifest, credential_fields, auth_type,
              rejection_reason, published_at) ON connector_templates TO plugboard_api;

-- Row versions for ETags as real columns: reading xmin would need SELECT on the whole table, which the column
-- grants below withhold.
CREATE FUNCTION bump_row_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.row_version := OLD.row_version + 1;
    RETURN NEW;
END
$$;
ALTER TABLE workspace_api_credentials ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
ALTER TABLE connectors ADD COLUMN row_version bigint NOT NULL DEFAULT 1;
CREATE TRIGGER workspace_api_credentials_row_version BEFORE UPDATE ON workspace_api_credentials
    FOR EACH ROW EXECUTE FUNCTION bump_row_version();
CREATE TRIGGER connectors_row_version BEFORE UPDATE ON connectors
    FOR EACH ROW EXECUTE FUNCTION bump_row_version();

-- Ciphertexts: the API writes them but never reads them back (decryption happens in workers and key rotation,
-- as plugboard_service).
REVOKE SELECT ON workspace_api_credentials FROM plugboard_api;
GRANT SELECT (workspace_id, id, name, auth_type, key_id, masked_hint, secret_fields, expires_at, credentials_updated_at,
              created_by, created_at, updated_at, row_version) ON workspace_api_credentials TO plugboard_api;

ALTER TABLE connectors ADD COLUMN webhook_secret_set boolean GENERATED ALWAYS AS (webhook_secret IS NOT NULL) STORED;
REVOKE SELECT ON connectors FROM plugboard_api;
GRANT SELECT (workspace_id, id, name, description, connector_type, template_id, template_version, manifest, config,
              credential_id, is_active, filters, metadata, sync_frequency, next_sync_at, last_sync_at, webhook_url,
              webhook_secret_set, webhook_active, error_count, last_error, last_error_at, credentials_updated_at,
              max_concurrency, created_by, created_at, updated_at, row_version) ON connectors TO plugboard_api;
