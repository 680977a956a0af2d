-- PostgreSQL plans the body of a non-inlinable SQL function (SECURITY DEFINER ones are never inlined) again on every
-- statement that calls it; a PL/pgSQL body keeps its plan for the session. The membership check runs on every
-- workspace request, so it is PL/pgSQL now, as is the OIDC lookup. Same rules as before.

-- Answers only for the caller (the user in the request context), whoever the first argument names.
CREATE OR REPLACE FUNCTION workspace_role_of(p_user_id uuid, p_workspace_id text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN (SELECT m.role FROM workspace_members m
             WHERE m.user_id = p_user_id AND p_user_id = app_user_id() AND m.workspace_id = p_workspace_id);
END
$$;

CREATE OR REPLACE FUNCTION find_user_by_email(p_email text)
    RETURNS TABLE (user_id uuid, platform_role text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
BEGIN
    RETURN QUERY SELECT u.id, (SELECT s.role FROM saas_admin_users s WHERE s.user_id = u.id) FROM users u WHERE u.email = lower(p_email);
END
$$;
