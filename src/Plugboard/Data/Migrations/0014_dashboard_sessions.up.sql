-- Dashboard sessions: signing in to the web dashboard with an API key gives the browser an opaque session token
-- (an HttpOnly cookie), never the key. A session acts exactly as its key: the same user, confinement and role cap,
-- and it dies with the key (revoked or expired) as well as on sign-out or at its own expiry. Only the token's
-- SHA-256 is stored; the API role reaches the table through the three functions below, never directly.
CREATE TABLE dashboard_sessions (
    id uuid PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    api_key_id uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX dashboard_sessions_key_idx ON dashboard_sessions (api_key_id);
CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);
ALTER TABLE dashboard_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE dashboard_sessions FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE (revoked_at) ON dashboard_sessions TO plugboard_definer;
CREATE POLICY definer_all ON dashboard_sessions TO plugboard_definer USING (true) WITH CHECK (true);
-- The retention pruner deletes sessions long past their expiry.
GRANT SELECT, UPDATE (revoked_at), DELETE ON dashboard_sessions TO plugboard_service; -- UPDATE: the pruner takes rows FOR UPDATE
CREATE POLICY service_all ON dashboard_sessions TO plugboard_service USING (true) WITH CHECK (true);

-- Starts a session for a valid key; it ends at p_ttl or at the key's own expiry, whichever is first.
CREATE FUNCTION start_dashboard_session(p_key_hash bytea, p_token_hash bytea, p_ttl interval) RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE ends timestamptz;
BEGIN
    INSERT INTO dashboard_sessions (id, token_hash, api_key_id, expires_at)
        SELECT gen_random_uuid(), p_token_hash, k.id, least(now() + p_ttl, coalesce(k.expires_at, 'infinity'))
          FROM api_keys k
         WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
        RETURNING expires_at INTO ends;
    RETURN ends;
END
$$;

-- The same answer as authenticate_api_key, for the key behind a live session.
CREATE FUNCTION authenticate_dashboard_session(p_token_hash bytea)
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

CREATE FUNCTION end_dashboard_session(p_token_hash bytea) RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ UPDATE dashboard_sessions SET revoked_at = now() WHERE token_hash = p_token_hash AND revoked_at IS NULL $$;

GRANT CREATE ON SCHEMA public TO plugboard_definer;
DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['start_dashboard_session(bytea,bytea,interval)', 'authenticate_dashboard_session(bytea)',
                             'end_dashboard_session(bytea)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO plugboard_definer', f);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO plugboard_api', f);
    END LOOP;
END
$$;
REVOKE CREATE ON SCHEMA public FROM plugboard_definer;
