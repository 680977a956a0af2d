-- Dashboard sessions started by OIDC single sign-on: such a session belongs to a user, not to an API key. It acts as
-- the user (every membership at its own role, the user's platform role), with no key's confinement or role cap, and
-- it dies with the user as well as on sign-out or at its own expiry.
ALTER TABLE dashboard_sessions ALTER COLUMN api_key_id DROP NOT NULL;
ALTER TABLE dashboard_sessions ADD COLUMN user_id uuid REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE dashboard_sessions ADD CONSTRAINT dashboard_sessions_one_owner CHECK ((api_key_id IS NULL) <> (user_id IS NULL));
CREATE INDEX dashboard_sessions_user_idx ON dashboard_sessions (user_id) WHERE user_id IS NOT NULL;

-- Starts a session for the user with this email (the ID token's verified email, checked by the caller); null when
-- no user has it.
CREATE FUNCTION start_user_dashboard_session(p_email text, p_token_hash bytea, p_ttl interval) RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE ends timestamptz;
BEGIN
    INSERT INTO dashboard_sessions (id, token_hash, user_id, expires_at)
        SELECT gen_random_uuid(), p_token_hash, u.id, now() + p_ttl FROM users u WHERE u.email = lower(p_email)
        RETURNING expires_at INTO ends;
    RETURN ends;
END
$$;

-- As before for a key's session; a user's session answers as the user with no key (key columns null).
CREATE OR REPLACE FUNCTION authenticate_dashboard_session(p_token_hash bytea)
    RETURNS TABLE (key_id uuid, user_id uuid, workspace_id text, key_role text, platform_role text, key_expires_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
        SELECT k.id, coalesce(k.user_id, d.user_id), k.workspace_id, k.role,
               CASE WHEN k.workspace_id IS NULL AND k.role IS NULL
                    THEN (SELECT s.role FROM saas_admin_users s WHERE s.user_id = coalesce(k.user_id, d.user_id)) END,
               k.expires_at
          FROM dashboard_sessions d LEFT JOIN api_keys k ON k.id = d.api_key_id
         WHERE d.token_hash = p_token_hash AND d.revoked_at IS NULL AND d.expires_at > now()
           AND (d.user_id IS NOT NULL OR (k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())));
END
$$;

GRANT CREATE ON SCHEMA public TO plugboard_definer;
ALTER FUNCTION start_user_dashboard_session(text, bytea, interval) OWNER TO plugboard_definer;
REVOKE ALL ON FUNCTION start_user_dashboard_session(text, bytea, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION start_user_dashboard_session(text, bytea, interval) TO plugboard_api;
REVOKE CREATE ON SCHEMA public FROM plugboard_definer;
