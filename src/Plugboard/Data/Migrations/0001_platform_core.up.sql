-- Platform core: workspaces, users, roles, API keys, credentials, connectors, templates and the
-- tables later capabilities fill (executions, sync logs, webhook events, documents, upload batches).
-- Every tenant table carries workspace_id, has ENABLE + FORCE ROW LEVEL SECURITY, and is reachable by
-- plugboard_api only through policies that read the request context set with set_config(..., true).

-- Roles are cluster-wide: create them once, never drop them in a down migration. Two databases of one
-- cluster may migrate at the same moment, so losing the race to create a role is fine.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['plugboard_api', 'plugboard_service']
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = role_name);
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', role_name);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'Plugboard needs the login roles plugboard_api and plugboard_service, and % cannot create them.', current_user
                    USING HINT = 'As a superuser run: CREATE ROLE plugboard_api LOGIN; CREATE ROLE plugboard_service LOGIN; then migrate again (or grant CREATEROLE to the migrating role).';
        END;
    END LOOP;
END
$$;

-- Request context -----------------------------------------------------------------------------------
CREATE FUNCTION app_workspace_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.workspace_id', true), '') $$;

CREATE FUNCTION app_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE FUNCTION app_workspace_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.workspace_role', true), '') $$;

CREATE FUNCTION app_platform_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.platform_role', true), '') $$;

-- True when the current workspace role is at least `minimum` (viewer < member < admin < owner).
CREATE FUNCTION app_role_at_least(minimum text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(array_position(ARRAY['viewer','member','admin','owner'], app_workspace_role())
                        >= array_position(ARRAY['viewer','member','admin','owner'], minimum), false)
    $$;

CREATE FUNCTION app_platform_role_at_least(minimum text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(array_position(ARRAY['developer','admin','owner'], app_platform_role())
                        >= array_position(ARRAY['developer','admin','owner'], minimum), false)
    $$;

CREATE FUNCTION set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Identity ------------------------------------------------------------------------------------------
CREATE TABLE users (
    id           uuid PRIMARY KEY,
    email        text NOT NULL,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lower CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 320)
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE workspaces (
    id         text PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_members (
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE saas_admin_users (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('developer', 'admin', 'owner')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A key belongs to a user; workspace_id, when set, confines it to one workspace (and role caps it there).
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    workspace_id text REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL,
    role         text CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (key_hash);
CREATE UNIQUE INDEX api_keys_prefix_key ON api_keys (prefix);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id, id);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, id);

CREATE TABLE audit_log (
    id           uuid NOT NULL,
    workspace_id text, -- no foreign key: the audit trail outlives the workspace it describes
    actor_user_id uuid,
    actor_key_id uuid,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
CREATE INDEX audit_log_workspace_idx ON audit_log (workspace_id, id DESC);

-- Create-once answers for Idempotency-Key, scoped to the user who sent them.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    workspace_id text REFERENCES workspaces (id) ON DELETE CASCADE,
    request_hash bytea NOT NULL,
    status_code  int,
    location     text,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Templates -----------------------------------------------------------------------------------------
-- Official templates have no workspace; community templates belong to the workspace that wrote them.
CREATE TABLE connector_templates (
    id                uuid PRIMARY KEY,
    workspace_id      text REFERENCES workspaces (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('official', 'community')),
    slug              text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,98}$'),
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description       text NOT NULL DEFAULT '',
    category          text NOT NULL DEFAULT 'other',
    tags              text[] NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'rejected', 'archived')),
    featured          boolean NOT NULL DEFAULT false,
    version           int NOT NULL DEFAULT 1 CHECK (version >= 1),
    manifest          jsonb NOT NULL,
    credential_fields jsonb NOT NULL DEFAULT '[]'::jsonb,
    auth_type         text NOT NULL DEFAULT 'none',
    install_count     bigint NOT NULL DEFAULT 0,
    rejection_reason  text,
    created_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    published_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connector_templates_kind_owner CHECK ((kind = 'official') = (workspace_id IS NULL))
);
CREATE UNIQUE INDEX connector_templates_official_slug_key ON connector_templates (slug) WHERE workspace_id IS NULL;
CREATE UNIQUE INDEX connector_templates_community_slug_key ON connector_templates (workspace_id, slug) WHERE workspace_id IS NOT NULL;
CREATE INDEX connector_templates_marketplace_idx ON connector_templates (install_count DESC, id) WHERE status = 'published';
CREATE INDEX connector_templates_tags_idx ON connector_templates USING gin (tags);

-- Credentials ---------------------------------------------------------------------------------------
CREATE TABLE workspace_api_credentials (
    workspace_id           text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                     uuid NOT NULL,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    auth_type              text NOT NULL CHECK (auth_type IN ('api_key', 'bearer', 'basic', 'oauth2_client_credentials', 'oauth2_refresh_token', 'session', 'custom')),
    encrypted_payload      text NOT NULL CHECK (encrypted_payload LIKE 'pb1:%'),
    key_id                 text NOT NULL,
    masked_hint            text NOT NULL,
    secret_fields          text[] NOT NULL DEFAULT '{}',
    expires_at             timestamptz,
    credentials_updated_at timestamptz NOT NULL DEFAULT now(),
    created_by             uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX workspace_api_credentials_name_key ON workspace_api_credentials (workspace_id, name);
CREATE INDEX workspace_api_credentials_key_idx ON workspace_api_credentials (key_id);

-- Connectors (the seeds' connectors + connector_configs in one table) --------------------------------
CREATE TABLE connectors (
    workspace_id           text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                     uuid NOT NULL,
    name                   text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description            text NOT NULL DEFAULT '',
    connector_type         text NOT NULL DEFAULT 'http',
    template_id            uuid REFERENCES connector_templates (id) ON DELETE SET NULL,
    template_version       int,
    manifest               jsonb NOT NULL DEFAULT '{}'::jsonb,
    config                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    credential_id          uuid,
    is_active              boolean NOT NULL DEFAULT true,
    filters                jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata               jsonb NOT NULL DEFAULT '{}'::jsonb,
    sync_frequency         text NOT NULL DEFAULT 'manual' CHECK (sync_frequency IN ('manual', 'hourly', 'daily', 'weekly', 'realtime')),
    next_sync_at           timestamptz,
    last_sync_at           timestamptz,
    webhook_url            text,
    webhook_secret         text CHECK (webhook_secret IS NULL OR webhook_secret LIKE 'pb1:%'),
    webhook_active         boolean NOT NULL DEFAULT false,
    error_count            int NOT NULL DEFAULT 0,
    last_error             text,
    last_error_at          timestamptz,
    credentials_updated_at timestamptz,
    created_by             uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, credential_id) REFERENCES workspace_api_credentials (workspace_id, id) ON DELETE SET NULL (credential_id)
);
CREATE UNIQUE INDEX connectors_name_key ON connectors (workspace_id, name);
CREATE INDEX connectors_credential_idx ON connectors (workspace_id, credential_id) WHERE credential_id IS NOT NULL;
CREATE INDEX connectors_next_sync_idx ON connectors (next_sync_at) WHERE is_active AND sync_frequency <> 'manual';

CREATE TABLE connector_executions (
    workspace_id    text NOT NULL,
    id              uuid NOT NULL,
    connector_id    uuid NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')),
    trigger         text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('manual', 'api', 'schedule', 'webhook')),
    inputs          jsonb NOT NULL DEFAULT '{}'::jsonb,
    output          jsonb,
    error           text,
    steps_log       jsonb NOT NULL DEFAULT '[]'::jsonb,
    started_at      timestamptz,
    finished_at     timestamptz,
    duration_ms     int,
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX connector_executions_connector_idx ON connector_executions (workspace_id, connector_id, created_at DESC);
CREATE INDEX connector_executions_active_idx ON connector_executions (status) WHERE status IN ('queued', 'running');

CREATE TABLE connector_sync_logs (
    workspace_id      text NOT NULL,
    id                uuid NOT NULL,
    connector_id      uuid NOT NULL,
    status            text NOT NULL DEFAULT 'running' CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    started_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    records_processed int NOT NULL DEFAULT 0,
    records_created   int NOT NULL DEFAULT 0,
    records_updated   int NOT NULL DEFAULT 0,
    records_failed    int NOT NULL DEFAULT 0,
    error_message     text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX connector_sync_logs_connector_idx ON connector_sync_logs (workspace_id, connector_id, started_at DESC);

CREATE TABLE connector_webhook_events (
    workspace_id    text NOT NULL,
    id              uuid NOT NULL,
    connector_id    uuid NOT NULL,
    event_type      text NOT NULL DEFAULT 'unknown',
    external_id     text,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    signature_valid boolean NOT NULL DEFAULT false,
    processed       boolean NOT NULL DEFAULT false,
    processed_at    timestamptz,
    error           text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);
CREATE INDEX connector_webhook_events_unprocessed_idx ON connector_webhook_events (received_at) WHERE NOT processed;
CREATE UNIQUE INDEX connector_webhook_events_dedupe_key ON connector_webhook_events (workspace_id, connector_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE file_upload_batches (
    workspace_id    text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    connector_id    uuid,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'completed', 'completed_with_errors', 'failed', 'cancelled')),
    total_files     int NOT NULL CHECK (total_files >= 0),
    processed_files int NOT NULL DEFAULT 0 CHECK (processed_files >= 0),
    failed_files    int NOT NULL DEFAULT 0 CHECK (failed_files >= 0),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE
);

CREATE TABLE imported_documents (
    workspace_id      text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id                uuid NOT NULL,
    connector_id      uuid,
    batch_id          uuid,
    external_id       text,
    title             text NOT NULL DEFAULT '',
    content_type      text,
    content           text,
    storage_path      text,
    file_size         bigint,
    content_hash      text,
    processing_status text NOT NULL DEFAULT 'pending' CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    chunks_generated  boolean NOT NULL DEFAULT false,
    chunk_count       int NOT NULL DEFAULT 0,
    source_metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_deleted        boolean NOT NULL DEFAULT false,
    external_url      text,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, connector_id) REFERENCES connectors (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, batch_id) REFERENCES file_upload_batches (workspace_id, id) ON DELETE SET NULL (batch_id)
);
CREATE UNIQUE INDEX imported_documents_external_key ON imported_documents (workspace_id, connector_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX imported_documents_pending_chunks_idx ON imported_documents (created_at) WHERE NOT chunks_generated;
CREATE INDEX imported_documents_hash_idx ON imported_documents (workspace_id, content_hash);

-- updated_at triggers --------------------------------------------------------------------------------
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'workspaces', 'workspace_members', 'saas_admin_users', 'api_keys',
                             'connector_templates', 'workspace_api_credentials', 'connectors',
                             'connector_executions', 'connector_sync_logs', 'file_upload_batches', 'imported_documents']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION set_updated_at()',
                       t || '_updated_at', t);
    END LOOP;
END
$$;

-- Batch counters: atomic, and they complete the batch when processed + failed reaches the total.
CREATE FUNCTION increment_batch_processed(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET processed_files = b.processed_files + 1,
               status = CASE WHEN b.processed_files + 1 + b.failed_files >= b.total_files
                             THEN CASE WHEN b.failed_files > 0 THEN 'completed_with_errors' ELSE 'completed' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN b.processed_files + 1 + b.failed_files >= b.total_files THEN now() END
         WHERE b.id = increment_batch_processed.batch_id
     RETURNING b.*
    $$;

CREATE FUNCTION increment_batch_failed(batch_id uuid) RETURNS file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET failed_files = b.failed_files + 1,
               status = CASE WHEN b.processed_files + b.failed_files + 1 >= b.total_files
                             THEN CASE WHEN b.processed_files = 0 THEN 'failed' ELSE 'completed_with_errors' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN b.processed_files + b.failed_files + 1 >= b.total_files THEN now() END
         WHERE b.id = increment_batch_failed.batch_id
     RETURNING b.*
    $$;

-- Stats (SECURITY INVOKER: row-level security decides what they count) ------------------------------
CREATE FUNCTION connector_execution_stats(p_connector_id uuid)
    RETURNS TABLE (executions bigint, succeeded bigint, failed bigint, success_rate numeric,
                   avg_duration_ms numeric, last_run_at timestamptz)
    LANGUAGE sql STABLE
    AS $$
        SELECT count(*),
               count(*) FILTER (WHERE status = 'succeeded'),
               count(*) FILTER (WHERE status IN ('failed', 'timed_out')),
               round(count(*) FILTER (WHERE status = 'succeeded')::numeric
                     / nullif(count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'timed_out')), 0), 4),
               round(avg(duration_ms) FILTER (WHERE duration_ms IS NOT NULL), 1),
               max(coalesce(started_at, created_at))
          FROM connector_executions
         WHERE connector_id = p_connector_id
    $$;

CREATE FUNCTION workspace_execution_stats()
    RETURNS TABLE (connectors bigint, active_connectors bigint, executions bigint, succeeded bigint, failed bigint,
                   success_rate numeric, avg_duration_ms numeric, last_run_at timestamptz)
    LANGUAGE sql STABLE
    AS $$
        SELECT (SELECT count(*) FROM connectors),
               (SELECT count(*) FROM connectors WHERE is_active),
               count(*),
               count(*) FILTER (WHERE status = 'succeeded'),
               count(*) FILTER (WHERE status IN ('failed', 'timed_out')),
               round(count(*) FILTER (WHERE status = 'succeeded')::numeric
                     / nullif(count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'timed_out')), 0), 4),
               round(avg(duration_ms) FILTER (WHERE duration_ms IS NOT NULL), 1),
               max(coalesce(started_at, created_at))
          FROM connector_executions
    $$;

-- Row-level security --------------------------------------------------------------------------------
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'workspaces', 'workspace_members', 'saas_admin_users', 'api_keys', 'audit_log',
                             'idempotency_keys', 'connector_templates', 'workspace_api_credentials', 'connectors',
                             'connector_executions', 'connector_sync_logs', 'connector_webhook_events',
                             'file_upload_batches', 'imported_documents']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        -- The seeds' service_role bypass: background work sees every row, through policies, not BYPASSRLS.
        EXECUTE format('CREATE POLICY service_all ON %I TO plugboard_service USING (true) WITH CHECK (true)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO plugboard_service', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON users, workspaces, workspace_members, saas_admin_users, api_keys,
    idempotency_keys, connector_templates, workspace_api_credentials, connectors, connector_executions,
    connector_sync_logs, connector_webhook_events, file_upload_batches, imported_documents TO plugboard_api;
GRANT SELECT, INSERT ON audit_log TO plugboard_api; -- append-only for the API

-- users: yourself, your current workspace's members, or everyone for platform admins.
CREATE POLICY api_select ON users FOR SELECT TO plugboard_api USING (
    id = app_user_id()
    OR app_platform_role_at_least('admin')
    OR EXISTS (SELECT 1 FROM workspace_members m WHERE m.user_id = users.id AND m.workspace_id = app_workspace_id()));
CREATE POLICY api_update ON users FOR UPDATE TO plugboard_api
    USING (id = app_user_id() OR app_platform_role_at_least('admin'))
    WITH CHECK (id = app_user_id() OR app_platform_role_at_least('admin'));

-- workspaces: the current one, or any you are a member of.
CREATE POLICY api_select ON workspaces FOR SELECT TO plugboard_api USING (
    id = app_workspace_id()
    OR EXISTS (SELECT 1 FROM workspace_members m WHERE m.workspace_id = workspaces.id AND m.user_id = app_user_id()));
CREATE POLICY api_insert ON workspaces FOR INSERT TO plugboard_api WITH CHECK (id = app_workspace_id() AND app_user_id() IS NOT NULL);
CREATE POLICY api_update ON workspaces FOR UPDATE TO plugboard_api
    USING (id = app_workspace_id() AND app_role_at_least('admin')) WITH CHECK (id = app_workspace_id());
CREATE POLICY api_delete ON workspaces FOR DELETE TO plugboard_api USING (id = app_workspace_id() AND app_role_at_least('owner'));

CREATE POLICY api_select ON workspace_members FOR SELECT TO plugboard_api
    USING (workspace_id = app_workspace_id() OR user_id = app_user_id());
CREATE POLICY api_insert ON workspace_members FOR INSERT TO plugboard_api
    WITH CHECK (workspace_id = app_workspace_id() AND app_role_at_least('owner'));
CREATE POLICY api_update ON workspace_members FOR UPDATE TO plugboard_api
    USING (workspace_id = app_workspace_id() AND app_role_at_least('owner')) WITH CHECK (workspace_id = app_workspace_id());
CREATE POLICY api_delete ON workspace_members FOR DELETE TO plugboard_api
    USING (workspace_id = app_workspace_id() AND app_role_at_least('owner'));

CREATE POLICY api_select ON saas_admin_users FOR SELECT TO plugboard_api
    USING (user_id = app_user_id() OR app_platform_role_at_least('admin'));
CREATE POLICY api_insert ON saas_admin_users FOR INSERT TO plugboard_api
    WITH CHECK (app_platform_role_at_least('owner') OR (app_platform_role_at_least('admin') AND role = 'developer'));
CREATE POLICY api_update ON saas_admin_users FOR UPDATE TO plugboard_api
    USING (app_platform_role_at_least('owner') OR (app_platform_role_at_least('admin') AND role = 'developer'))
    WITH CHECK (app_platform_role_at_least('owner') OR (app_platform_role_at_least('admin') AND role = 'developer'));
CREATE POLICY api_delete ON saas_admin_users FOR DELETE TO plugboard_api
    USING (app_platform_role_at_least('owner') OR (app_platform_role_at_least('admin') AND role = 'developer'));

-- api_keys: your own keys; a workspace's owners and admins also see (and revoke) keys confined to it.
CREATE POLICY api_select ON api_keys FOR SELECT TO plugboard_api USING (
    user_id = app_user_id() OR (workspace_id = app_workspace_id() AND app_role_at_least('admin')));
CREATE POLICY api_insert ON api_keys FOR INSERT TO plugboard_api
    WITH CHECK (user_id = app_user_id() AND (workspace_id IS NULL OR workspace_id = app_workspace_id()));
CREATE POLICY api_update ON api_keys FOR UPDATE TO plugboard_api
    USING (user_id = app_user_id() OR (workspace_id = app_workspace_id() AND app_role_at_least('admin')))
    WITH CHECK (user_id = app_user_id() OR (workspace_id = app_workspace_id() AND app_role_at_least('admin')));

CREATE POLICY api_select ON audit_log FOR SELECT TO plugboard_api USING (
    (workspace_id = app_workspace_id() AND app_role_at_least('admin'))
    OR (workspace_id IS NULL AND app_platform_role_at_least('admin')));
-- Anyone may append entries about their own actions: in the current workspace, or outside any workspace
-- (personal keys, platform work), which only platform admins read.
CREATE POLICY api_insert ON audit_log FOR INSERT TO plugboard_api WITH CHECK (
    actor_user_id = app_user_id() AND (workspace_id = app_workspace_id() OR workspace_id IS NULL));

CREATE POLICY api_all ON idempotency_keys TO plugboard_api
    USING (user_id = app_user_id()) WITH CHECK (user_id = app_user_id());

-- connector_templates: published ones are the marketplace; drafts are seen by their authors' workspace
-- (community) or the platform team (official).
CREATE POLICY api_select ON connector_templates FOR SELECT TO plugboard_api USING (
    (status = 'published' AND app_user_id() IS NOT NULL)
    OR (workspace_id IS NOT NULL AND workspace_id = app_workspace_id())
    OR app_platform_role_at_least('developer'));
CREATE POLICY api_insert ON connector_templates FOR INSERT TO plugboard_api WITH CHECK (
    (workspace_id IS NULL AND app_platform_role_at_least('developer') AND (status = 'draft' OR app_platform_role_at_least('admin')))
    OR (workspace_id = app_workspace_id() AND app_role_at_least('admin') AND status = 'draft' AND NOT featured));
CREATE POLICY api_update ON connector_templates FOR UPDATE TO plugboard_api
    USING (
        app_platform_role_at_least('admin')
        OR (workspace_id IS NULL AND app_platform_role_at_least('developer'))
        OR (workspace_id = app_workspace_id() AND app_role_at_least('admin')))
    WITH CHECK (
        app_platform_role_at_least('admin')
        OR (workspace_id IS NULL AND app_platform_role_at_least('developer') AND status IN ('draft', 'published'))
        OR (workspace_id = app_workspace_id() AND app_role_at_least('admin') AND status IN ('draft', 'archived') AND NOT featured));
CREATE POLICY api_delete ON connector_templates FOR DELETE TO plugboard_api USING (
    app_platform_role_at_least('admin') OR (workspace_id = app_workspace_id() AND app_role_at_least('admin') AND status = 'draft'));

-- Workspace-owned tables: read by every member of the current workspace, written by the roles that may.
DO $$
DECLARE
    spec text[];
BEGIN
    -- table, minimum role to insert, minimum role to update, minimum role to delete
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ARRAY['workspace_api_credentials', 'admin', 'admin', 'admin'],
        ARRAY['connectors', 'admin', 'admin', 'admin'],
        ARRAY['connector_executions', 'member', 'member', 'admin'],
        ARRAY['connector_sync_logs', 'member', 'member', 'admin'],
        ARRAY['connector_webhook_events', 'admin', 'admin', 'admin'],
        ARRAY['file_upload_batches', 'member', 'member', 'admin'],
        ARRAY['imported_documents', 'member', 'member', 'admin']]
    LOOP
        EXECUTE format('CREATE POLICY api_select ON %I FOR SELECT TO plugboard_api USING (workspace_id = app_workspace_id())', spec[1]);
        EXECUTE format('CREATE POLICY api_insert ON %I FOR INSERT TO plugboard_api WITH CHECK (workspace_id = app_workspace_id() AND app_role_at_least(%L))', spec[1], spec[2]);
        EXECUTE format('CREATE POLICY api_update ON %I FOR UPDATE TO plugboard_api USING (workspace_id = app_workspace_id() AND app_role_at_least(%L)) WITH CHECK (workspace_id = app_workspace_id())', spec[1], spec[3]);
        EXECUTE format('CREATE POLICY api_delete ON %I FOR DELETE TO plugboard_api USING (workspace_id = app_workspace_id() AND app_role_at_least(%L))', spec[1], spec[4]);
    END LOOP;
END
$$;

-- Narrow doors for the API role, owned by plugboard_service (whose policies see every row) -----------

-- Authenticates a presented API key by its SHA-256 hash; records last use at most once a minute.
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

-- Resolves a user by email for OIDC sign-in (no secrets involved).
CREATE FUNCTION find_user_by_email(p_email text)
    RETURNS TABLE (user_id uuid, platform_role text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
        SELECT u.id, (SELECT s.role FROM saas_admin_users s WHERE s.user_id = u.id) FROM users u WHERE u.email = lower(p_email)
    $$;

-- The role a user holds in a workspace (NULL when not a member).
CREATE FUNCTION workspace_role_of(p_user_id uuid, p_workspace_id text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT m.role FROM workspace_members m WHERE m.user_id = p_user_id AND m.workspace_id = p_workspace_id $$;

-- Finds or creates the user with this email, so owners can invite people who have never signed in.
-- Callable only by a workspace owner or a platform admin.
CREATE FUNCTION ensure_user(p_email text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$
DECLARE found_id uuid;
BEGIN
    IF NOT (app_role_at_least('owner') OR app_platform_role_at_least('admin')) THEN
        RAISE EXCEPTION 'permission denied to add users' USING ERRCODE = '42501';
    END IF;
    INSERT INTO users (id, email) VALUES (gen_random_uuid(), lower(p_email))
        ON CONFLICT (email) DO NOTHING RETURNING id INTO found_id;
    IF found_id IS NULL THEN
        SELECT u.id INTO found_id FROM users u WHERE u.email = lower(p_email);
    END IF;
    RETURN found_id;
END
$$;

-- Counts an installation of a published template (the API role cannot update official templates).
CREATE FUNCTION record_template_install(p_template_id uuid) RETURNS void
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

-- Readiness checks read the applied migration version as the service role.
GRANT SELECT ON "VersionInfo" TO plugboard_service;
