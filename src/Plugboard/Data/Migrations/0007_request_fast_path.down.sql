CREATE OR REPLACE FUNCTION workspace_role_of(p_user_id uuid, p_workspace_id text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT m.role FROM workspace_members m WHERE m.user_id = p_user_id AND p_user_id = app_user_id() AND m.workspace_id = p_workspace_id $$;

CREATE OR REPLACE FUNCTION find_user_by_email(p_email text)
    RETURNS TABLE (user_id uuid, platform_role text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT u.id, (SELECT s.role FROM saas_admin_users s WHERE s.user_id = u.id) FROM users u WHERE u.email = lower(p_email)
    $$;
