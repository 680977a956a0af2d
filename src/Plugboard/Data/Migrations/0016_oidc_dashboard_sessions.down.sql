DELETE FROM dashboard_sessions WHERE user_id IS NOT NULL;
CREATE OR REPLACE FUNCTION authenticate_dashboard_session(p_token_hash bytea)
    RETURNS TABLE (key_id uuid, user_id uuid, workspace_id text, key_role text, platform_role text, key_expires_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
        SELECT k.id, k.user_id, k.workspace_id, k.role,
               CASE WHEN k.workspace_id IS NULL AND k.role IS NULL
                    THEN (SELECT s.role FROM saas_admin_users s WHERE s.user_id = k.user_id) END,
               k.expires_at
          FROM dashboard_sessions d JOIN api_keys k ON k.id = d.api_key_id
         WHERE d.token_hash = p_token_hash AND d.revoked_at IS NULL AND d.expires_at > now()
           AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now());
END
$$;
DROP FUNCTION start_user_dashboard_session(text, bytea, interval);
ALTER TABLE dashboard_sessions DROP CONSTRAINT dashboard_sessions_one_owner;
DROP INDEX dashboard_sessions_user_idx;
ALTER TABLE dashboard_sessions DROP COLUMN user_id;
ALTER TABLE dashboard_sessions ALTER COLUMN api_key_id SET NOT NULL;
