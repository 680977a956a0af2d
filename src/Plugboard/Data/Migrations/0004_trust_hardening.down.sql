-- Back to 0003's grants and functions. The plugboard_definer role stays (roles are cluster-wide).
DROP TRIGGER IF EXISTS connectors_row_version ON connectors;
DROP TRIGGER IF EXISTS workspace_api_credentials_row_version ON workspace_api_credentials;
ALTER TABLE connectors DROP COLUMN IF EXISTS row_version;
ALTER TABLE workspace_api_credentials DROP COLUMN IF EXISTS row_version;
DROP FUNCTION IF EXISTS bump_row_version();
GRANT SELECT ON connectors TO plugboard_api;
ALTER TABLE connectors DROP COLUMN IF EXISTS webhook_secret_set;
GRANT SELECT ON workspace_api_credentials TO plugboard_api;
GRANT INSERT, UPDATE ON connector_templates TO plugboard_api;
GRANT INSERT, UPDATE, DELETE ON users TO plugboard_api;
DROP TRIGGER IF EXISTS api_keys_revocation_is_final ON api_keys;
DROP FUNCTION IF EXISTS api_keys_revocation_is_final();
GRANT INSERT, UPDATE, DELETE ON api_keys TO plugboard_api;
DROP POLICY api_insert ON api_keys;
CREATE POLICY api_insert ON api_keys FOR INSERT TO plugboard_api
    WITH CHECK (user_id = app_user_id() AND (workspace_id IS NULL OR workspace_id = app_workspace_id()));

DROP FUNCTION authenticate_api_key(bytea);
CREATE FUNCTION authenticate_api_key(p_key_hash bytea)
    RETURNS TABLE (key_id uuid, user_id uuid, workspace_id text, key_role text, platform_role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
        UPDATE api_keys k SET last_used_at = now()
         WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
           AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
        RETURNING k.id, k.user_id, k.workspace_id, k.role,
                  (SELECT s.role FROM saas_admin_users s WHERE s.user_id = k.user_id);
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT k.id, k.user_id, k.workspace_id, k.role,
                   (SELECT s.role FROM saas_admin_users s WHERE s.user_id = k.user_id)
              FROM api_keys k
             WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now());
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION workspace_role_of(p_user_id uuid, p_workspace_id text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT m.role FROM workspace_members m WHERE m.user_id = p_user_id AND m.workspace_id = p_workspace_id $$;

CREATE OR REPLACE FUNCTION record_template_install(p_template_id uuid) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ UPDATE connector_templates SET install_count = install_count + 1 WHERE id = p_template_id AND status = 'published' $$;

DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['authenticate_api_key(bytea)', 'find_user_by_email(text)', 'workspace_role_of(uuid,text)',
                             'ensure_user(text)', 'record_template_install(uuid)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO plugboard_service', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO plugboard_api, plugboard_service', f);
    END LOOP;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'saas_admin_users', 'workspace_members', 'users', 'connector_templates']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS definer_all ON %I', t);
    END LOOP;
END
$$;
REVOKE ALL ON api_keys, saas_admin_users, workspace_members, users, connector_templates FROM plugboard_definer;
