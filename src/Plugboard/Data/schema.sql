CREATE EXTENSION IF NOT EXISTS btree_gin WITH SCHEMA public;

COMMENT ON EXTENSION btree_gin IS 'support for indexing common datatypes in GIN';

CREATE FUNCTION public.api_keys_revocation_is_final() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'a revoked API key stays revoked' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION public.app_platform_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.platform_role', true), '') $$;

CREATE FUNCTION public.app_platform_role_at_least(minimum text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(array_position(ARRAY['developer','admin','owner'], app_platform_role())
                        >= array_position(ARRAY['developer','admin','owner'], minimum), false)
    $$;

CREATE FUNCTION public.app_role_at_least(minimum text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(array_position(ARRAY['viewer','member','admin','owner'], app_workspace_role())
                        >= array_position(ARRAY['viewer','member','admin','owner'], minimum), false)
    $$;

CREATE FUNCTION public.app_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE FUNCTION public.app_workspace_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.workspace_id', true), '') $$;

CREATE FUNCTION public.app_workspace_role() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.workspace_role', true), '') $$;

CREATE FUNCTION public.authenticate_api_key(p_key_hash bytea) RETURNS TABLE(key_id uuid, user_id uuid, workspace_id text, key_role text, platform_role text, key_expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE FUNCTION public.authenticate_dashboard_session(p_token_hash bytea) RETURNS TABLE(key_id uuid, user_id uuid, workspace_id text, key_role text, platform_role text, key_expires_at timestamp with time zone)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE FUNCTION public.bump_row_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.row_version := OLD.row_version + 1;
    RETURN NEW;
END
$$;

CREATE TABLE public.file_upload_batches (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    connector_id uuid,
    status text DEFAULT 'pending'::text NOT NULL,
    total_files integer NOT NULL,
    processed_files integer DEFAULT 0 NOT NULL,
    failed_files integer DEFAULT 0 NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    is_open boolean DEFAULT false NOT NULL,
    received_files integer DEFAULT 0 NOT NULL,
    CONSTRAINT file_upload_batches_failed_files_check CHECK ((failed_files >= 0)),
    CONSTRAINT file_upload_batches_processed_files_check CHECK ((processed_files >= 0)),
    CONSTRAINT file_upload_batches_received_files_check CHECK ((received_files >= 0)),
    CONSTRAINT file_upload_batches_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'processing'::text, 'completed'::text, 'completed_with_errors'::text, 'failed'::text, 'cancelled'::text]))),
    CONSTRAINT file_upload_batches_total_files_check CHECK ((total_files >= 0))
);

ALTER TABLE ONLY public.file_upload_batches FORCE ROW LEVEL SECURITY;

CREATE FUNCTION public.close_batch(batch_id uuid) RETURNS public.file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET is_open = false,
               total_files = b.received_files,
               status = CASE WHEN b.processed_files + b.failed_files >= b.received_files
                             THEN CASE WHEN b.failed_files = 0 THEN 'completed'
                                       WHEN b.processed_files = 0 THEN 'failed' ELSE 'completed_with_errors' END
                             ELSE b.status END,
               completed_at = CASE WHEN b.processed_files + b.failed_files >= b.received_files THEN now() END
         WHERE b.id = close_batch.batch_id AND b.is_open
     RETURNING b.*
    $$;

CREATE FUNCTION public.connector_execution_stats(p_connector_id uuid) RETURNS TABLE(executions bigint, succeeded bigint, failed bigint, success_rate numeric, avg_duration_ms numeric, last_run_at timestamp with time zone)
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

CREATE FUNCTION public.connector_executions_notify_cancel() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('plugboard_cancel', 'execution:' || NEW.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION public.connectors_keep_previous_webhook_secret() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.webhook_secret IS DISTINCT FROM OLD.webhook_secret
       AND NEW.webhook_secret_previous_until IS DISTINCT FROM OLD.webhook_secret_previous_until THEN
        NEW.webhook_secret_previous := OLD.webhook_secret;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION public.end_dashboard_session(p_token_hash bytea) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$ UPDATE dashboard_sessions SET revoked_at = now() WHERE token_hash = p_token_hash AND revoked_at IS NULL $$;

CREATE FUNCTION public.ensure_user(p_email text) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE FUNCTION public.find_user_by_email(p_email text) RETURNS TABLE(user_id uuid, platform_role text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    RETURN QUERY SELECT u.id, (SELECT s.role FROM saas_admin_users s WHERE s.user_id = u.id) FROM users u WHERE u.email = lower(p_email);
END
$$;

CREATE FUNCTION public.increment_batch_failed(batch_id uuid) RETURNS public.file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET failed_files = b.failed_files + 1,
               status = CASE WHEN NOT b.is_open AND b.processed_files + b.failed_files + 1 >= b.total_files
                             THEN CASE WHEN b.processed_files = 0 THEN 'failed' ELSE 'completed_with_errors' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN NOT b.is_open AND b.processed_files + b.failed_files + 1 >= b.total_files THEN now() END
         WHERE b.id = increment_batch_failed.batch_id
     RETURNING b.*
    $$;

CREATE FUNCTION public.increment_batch_processed(batch_id uuid) RETURNS public.file_upload_batches
    LANGUAGE sql
    AS $$
        UPDATE file_upload_batches b
           SET processed_files = b.processed_files + 1,
               status = CASE WHEN NOT b.is_open AND b.processed_files + 1 + b.failed_files >= b.total_files
                             THEN CASE WHEN b.failed_files > 0 THEN 'completed_with_errors' ELSE 'completed' END
                             ELSE 'processing' END,
               completed_at = CASE WHEN NOT b.is_open AND b.processed_files + 1 + b.failed_files >= b.total_files THEN now() END
         WHERE b.id = increment_batch_processed.batch_id
     RETURNING b.*
    $$;

CREATE FUNCTION public.jobs_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('plugboard_jobs', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION public.jobs_notify_freed_slot() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM finished WHERE concurrency_key IS NOT NULL AND state = 'running') THEN
        PERFORM pg_notify('plugboard_jobs', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.new_webhook_token() RETURNS text
    LANGUAGE sql
    AS $$ SELECT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '') $$;

CREATE FUNCTION public.record_template_install(p_template_id uuid) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
        UPDATE connector_templates SET install_count = install_count + 1
         WHERE id = p_template_id AND status = 'published' AND app_workspace_id() IS NOT NULL AND app_role_at_least('admin')
    $$;

CREATE FUNCTION public.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE FUNCTION public.start_dashboard_session(p_key_hash bytea, p_token_hash bytea, p_ttl interval) RETURNS timestamp with time zone
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
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

CREATE FUNCTION public.start_user_dashboard_session(p_email text, p_token_hash bytea, p_ttl interval) RETURNS timestamp with time zone
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
DECLARE ends timestamptz;
BEGIN
    INSERT INTO dashboard_sessions (id, token_hash, user_id, expires_at)
        SELECT gen_random_uuid(), p_token_hash, u.id, now() + p_ttl FROM users u WHERE u.email = lower(p_email)
        RETURNING expires_at INTO ends;
    RETURN ends;
END
$$;

CREATE FUNCTION public.workspace_execution_stats() RETURNS TABLE(connectors bigint, active_connectors bigint, executions bigint, succeeded bigint, failed bigint, success_rate numeric, avg_duration_ms numeric, last_run_at timestamp with time zone)
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

CREATE FUNCTION public.workspace_role_of(p_user_id uuid, p_workspace_id text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'public', 'pg_temp'
    AS $$
BEGIN
    RETURN (SELECT m.role FROM workspace_members m
             WHERE m.user_id = p_user_id AND p_user_id = app_user_id() AND m.workspace_id = p_workspace_id);
END
$$;

CREATE TABLE public."VersionInfo" (
    "Version" bigint NOT NULL,
    "AppliedOn" timestamp without time zone,
    "Description" character varying(1024)
);

CREATE TABLE public.api_keys (
    id uuid NOT NULL,
    workspace_id text,
    user_id uuid NOT NULL,
    name text NOT NULL,
    prefix text NOT NULL,
    key_hash bytea NOT NULL,
    role text,
    expires_at timestamp with time zone,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT api_keys_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT api_keys_role_check CHECK ((role = ANY (ARRAY['owner'::text, 'admin'::text, 'member'::text, 'viewer'::text])))
);

ALTER TABLE ONLY public.api_keys FORCE ROW LEVEL SECURITY;

CREATE TABLE public.audit_log (
    id uuid NOT NULL,
    workspace_id text,
    actor_user_id uuid,
    actor_key_id uuid,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;

CREATE TABLE public.connector_executions (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    connector_id uuid NOT NULL,
    status text DEFAULT 'queued'::text NOT NULL,
    trigger text DEFAULT 'manual'::text NOT NULL,
    inputs jsonb DEFAULT '{}'::jsonb NOT NULL,
    output jsonb,
    error text,
    steps_log jsonb DEFAULT '[]'::jsonb NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    duration_ms integer,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    cancel_requested_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    output_truncated boolean DEFAULT false NOT NULL,
    manifest jsonb,
    CONSTRAINT connector_executions_manifest_only_in_tests CHECK (((manifest IS NULL) = (trigger <> 'test'::text))),
    CONSTRAINT connector_executions_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text, 'timed_out'::text]))),
    CONSTRAINT connector_executions_trigger_check CHECK ((trigger = ANY (ARRAY['manual'::text, 'api'::text, 'schedule'::text, 'webhook'::text, 'test'::text])))
);

ALTER TABLE ONLY public.connector_executions FORCE ROW LEVEL SECURITY;

COMMENT ON COLUMN public.connector_executions.manifest IS 'A test run''s draft manifest, run instead of the connector''s; NULL for every other execution.';

CREATE TABLE public.connector_stream_states (
    workspace_id text NOT NULL,
    connector_id uuid NOT NULL,
    stream text NOT NULL,
    cursor jsonb,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT connector_stream_states_stream_check CHECK (((length(stream) >= 1) AND (length(stream) <= 64)))
);

ALTER TABLE ONLY public.connector_stream_states FORCE ROW LEVEL SECURITY;

CREATE TABLE public.connector_sync_logs (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    connector_id uuid NOT NULL,
    status text DEFAULT 'queued'::text NOT NULL,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    records_processed integer DEFAULT 0 NOT NULL,
    records_created integer DEFAULT 0 NOT NULL,
    records_updated integer DEFAULT 0 NOT NULL,
    records_failed integer DEFAULT 0 NOT NULL,
    error_message text,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    trigger text DEFAULT 'manual'::text NOT NULL,
    full_refresh boolean DEFAULT false NOT NULL,
    job_id uuid,
    records_fetched integer DEFAULT 0 NOT NULL,
    records_unchanged integer DEFAULT 0 NOT NULL,
    records_deleted integer DEFAULT 0 NOT NULL,
    pages integer DEFAULT 0 NOT NULL,
    requests integer DEFAULT 0 NOT NULL,
    cursor_before jsonb DEFAULT '{}'::jsonb NOT NULL,
    cursor_after jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT connector_sync_logs_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'completed'::text, 'failed'::text, 'cancelled'::text]))),
    CONSTRAINT connector_sync_logs_trigger_check CHECK ((trigger = ANY (ARRAY['schedule'::text, 'manual'::text, 'webhook'::text])))
);

ALTER TABLE ONLY public.connector_sync_logs FORCE ROW LEVEL SECURITY;

CREATE TABLE public.connector_templates (
    id uuid NOT NULL,
    workspace_id text,
    kind text NOT NULL,
    slug text NOT NULL,
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    category text DEFAULT 'other'::text NOT NULL,
    tags text[] DEFAULT '{}'::text[] NOT NULL,
    status text DEFAULT 'draft'::text NOT NULL,
    featured boolean DEFAULT false NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    manifest jsonb NOT NULL,
    credential_fields jsonb DEFAULT '[]'::jsonb NOT NULL,
    auth_type text DEFAULT 'none'::text NOT NULL,
    install_count bigint DEFAULT 0 NOT NULL,
    rejection_reason text,
    created_by uuid,
    published_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT connector_templates_kind_check CHECK ((kind = ANY (ARRAY['official'::text, 'community'::text]))),
    CONSTRAINT connector_templates_kind_owner CHECK (((kind = 'official'::text) = (workspace_id IS NULL))),
    CONSTRAINT connector_templates_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT connector_templates_slug_check CHECK ((slug ~ '^[a-z0-9][a-z0-9-]{0,98}$'::text)),
    CONSTRAINT connector_templates_status_check CHECK ((status = ANY (ARRAY['draft'::text, 'published'::text, 'rejected'::text, 'archived'::text]))),
    CONSTRAINT connector_templates_version_check CHECK ((version >= 1))
);

ALTER TABLE ONLY public.connector_templates FORCE ROW LEVEL SECURITY;

CREATE TABLE public.connector_webhook_events (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    connector_id uuid NOT NULL,
    event_type text DEFAULT 'unknown'::text NOT NULL,
    external_id text,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    headers jsonb DEFAULT '{}'::jsonb NOT NULL,
    signature_valid boolean DEFAULT false NOT NULL,
    processed boolean DEFAULT false NOT NULL,
    processed_at timestamp with time zone,
    error text,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    verification text DEFAULT ''::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    result jsonb,
    note text,
    CONSTRAINT connector_webhook_events_note_check CHECK ((length(note) <= 2000)),
    CONSTRAINT connector_webhook_events_verification_check CHECK ((length(verification) <= 100))
);

ALTER TABLE ONLY public.connector_webhook_events FORCE ROW LEVEL SECURITY;

CREATE TABLE public.connector_webhook_failures (
    workspace_id text NOT NULL,
    connector_id uuid NOT NULL,
    failed_verifications bigint DEFAULT 0 NOT NULL,
    last_failure text,
    last_failure_at timestamp with time zone
);

ALTER TABLE ONLY public.connector_webhook_failures FORCE ROW LEVEL SECURITY;

CREATE TABLE public.connectors (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    connector_type text DEFAULT 'http'::text NOT NULL,
    template_id uuid,
    template_version integer,
    manifest jsonb DEFAULT '{}'::jsonb NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    credential_id uuid,
    is_active boolean DEFAULT true NOT NULL,
    filters jsonb DEFAULT '{}'::jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    sync_frequency text DEFAULT 'manual'::text NOT NULL,
    next_sync_at timestamp with time zone,
    last_sync_at timestamp with time zone,
    webhook_secret text,
    webhook_active boolean DEFAULT false NOT NULL,
    error_count integer DEFAULT 0 NOT NULL,
    last_error text,
    last_error_at timestamp with time zone,
    credentials_updated_at timestamp with time zone,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    max_concurrency integer DEFAULT 4 NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    webhook_secret_set boolean GENERATED ALWAYS AS ((webhook_secret IS NOT NULL)) STORED,
    sync_timezone text DEFAULT 'UTC'::text NOT NULL,
    sync_paused_at timestamp with time zone,
    webhook_token text DEFAULT public.new_webhook_token() NOT NULL,
    webhook_secret_previous text,
    webhook_secret_previous_until timestamp with time zone,
    webhook_url text GENERATED ALWAYS AS (('/v1/hooks/'::text || webhook_token)) STORED,
    CONSTRAINT connectors_max_concurrency_check CHECK (((max_concurrency >= 1) AND (max_concurrency <= 100))),
    CONSTRAINT connectors_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT connectors_sync_frequency_check CHECK (((length(sync_frequency) >= 1) AND (length(sync_frequency) <= 100))),
    CONSTRAINT connectors_sync_timezone_check CHECK (((length(sync_timezone) >= 1) AND (length(sync_timezone) <= 64))),
    CONSTRAINT connectors_webhook_secret_check CHECK (((webhook_secret IS NULL) OR (webhook_secret ~~ 'pb1:%'::text))),
    CONSTRAINT connectors_webhook_secret_previous_check CHECK (((webhook_secret_previous IS NULL) OR (webhook_secret_previous ~~ 'pb1:%'::text))),
    CONSTRAINT connectors_webhook_token_check CHECK ((webhook_token ~ '^[A-Za-z0-9_-]{32,128}$'::text))
);

ALTER TABLE ONLY public.connectors FORCE ROW LEVEL SECURITY;

CREATE TABLE public.dashboard_sessions (
    id uuid NOT NULL,
    token_hash bytea NOT NULL,
    api_key_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    user_id uuid,
    CONSTRAINT dashboard_sessions_one_owner CHECK (((api_key_id IS NULL) <> (user_id IS NULL)))
);

ALTER TABLE ONLY public.dashboard_sessions FORCE ROW LEVEL SECURITY;

CREATE TABLE public.document_chunks (
    workspace_id text NOT NULL,
    document_id uuid NOT NULL,
    ordinal integer NOT NULL,
    content text NOT NULL,
    heading_path text[] DEFAULT '{}'::text[] NOT NULL,
    char_start integer NOT NULL,
    char_end integer NOT NULL,
    page_start integer,
    page_end integer,
    start_ms bigint,
    end_ms bigint,
    speaker text,
    token_count integer NOT NULL,
    search tsvector NOT NULL,
    CONSTRAINT document_chunks_char_start_check CHECK ((char_start >= 0)),
    CONSTRAINT document_chunks_check CHECK ((char_end >= char_start)),
    CONSTRAINT document_chunks_ordinal_check CHECK ((ordinal >= 0)),
    CONSTRAINT document_chunks_token_count_check CHECK ((token_count >= 0))
);

ALTER TABLE ONLY public.document_chunks FORCE ROW LEVEL SECURITY;

CREATE TABLE public.file_upload_batch_failures (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    batch_id uuid NOT NULL,
    file_name text NOT NULL,
    reason text NOT NULL,
    document_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT file_upload_batch_failures_file_name_check CHECK ((length(file_name) <= 1024))
);

ALTER TABLE ONLY public.file_upload_batch_failures FORCE ROW LEVEL SECURITY;

CREATE TABLE public.idempotency_keys (
    user_id uuid NOT NULL,
    key text NOT NULL,
    workspace_id text,
    request_hash bytea NOT NULL,
    status_code integer,
    location text,
    response jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT idempotency_keys_key_check CHECK (((length(key) >= 1) AND (length(key) <= 255)))
);

ALTER TABLE ONLY public.idempotency_keys FORCE ROW LEVEL SECURITY;

CREATE TABLE public.imported_documents (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    connector_id uuid,
    batch_id uuid,
    external_id text,
    title text DEFAULT ''::text NOT NULL,
    content_type text,
    content text,
    storage_path text,
    file_size bigint,
    content_hash text,
    processing_status text DEFAULT 'pending'::text NOT NULL,
    chunks_generated boolean DEFAULT false NOT NULL,
    chunk_count integer DEFAULT 0 NOT NULL,
    source_metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    is_deleted boolean DEFAULT false NOT NULL,
    external_url text,
    error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    source text DEFAULT 'upload'::text NOT NULL,
    file_name text,
    processed_hash text,
    batch_counted boolean DEFAULT false NOT NULL,
    deleted_at timestamp with time zone,
    created_by uuid,
    stream text,
    change_seq bigint,
    last_action text,
    last_changed_at timestamp with time zone,
    download_url text,
    CONSTRAINT imported_documents_download_url_check CHECK ((length(download_url) <= 8192)),
    CONSTRAINT imported_documents_file_name_check CHECK ((length(file_name) <= 1024)),
    CONSTRAINT imported_documents_last_action_check CHECK ((last_action = ANY (ARRAY['added'::text, 'updated'::text, 'deleted'::text]))),
    CONSTRAINT imported_documents_processing_status_check CHECK ((processing_status = ANY (ARRAY['pending'::text, 'processing'::text, 'completed'::text, 'failed'::text]))),
    CONSTRAINT imported_documents_source_check CHECK ((source = ANY (ARRAY['upload'::text, 'sync'::text, 'webhook'::text]))),
    CONSTRAINT imported_documents_stream_check CHECK ((length(stream) <= 64))
);

ALTER TABLE ONLY public.imported_documents FORCE ROW LEVEL SECURITY;

CREATE TABLE public.jobs (
    id uuid NOT NULL,
    kind text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    workspace_id text,
    concurrency_key text,
    concurrency_limit integer DEFAULT 1 NOT NULL,
    priority smallint DEFAULT 0 NOT NULL,
    state text DEFAULT 'available'::text NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 10 NOT NULL,
    lease_expires_at timestamp with time zone,
    locked_by text,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT jobs_attempts_check CHECK ((attempts >= 0)),
    CONSTRAINT jobs_concurrency_key_check CHECK (((length(concurrency_key) >= 1) AND (length(concurrency_key) <= 500))),
    CONSTRAINT jobs_concurrency_limit_check CHECK ((concurrency_limit >= 1)),
    CONSTRAINT jobs_kind_check CHECK (((length(kind) >= 1) AND (length(kind) <= 200))),
    CONSTRAINT jobs_max_attempts_check CHECK ((max_attempts >= 1)),
    CONSTRAINT jobs_running_has_lease CHECK (((state = 'running'::text) = ((lease_expires_at IS NOT NULL) AND (locked_by IS NOT NULL)))),
    CONSTRAINT jobs_state_check CHECK ((state = ANY (ARRAY['available'::text, 'running'::text, 'dead'::text, 'cancelled'::text])))
);

ALTER TABLE ONLY public.jobs FORCE ROW LEVEL SECURITY;

CREATE TABLE public.key_ring_canary (
    id integer NOT NULL,
    ciphertext text NOT NULL,
    key_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT key_ring_canary_ciphertext_check CHECK ((ciphertext ~~ 'pb1:%'::text)),
    CONSTRAINT key_ring_canary_id_check CHECK ((id = 1))
);

ALTER TABLE ONLY public.key_ring_canary FORCE ROW LEVEL SECURITY;

CREATE TABLE public.oauth_authorizations (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    state_hash bytea NOT NULL,
    created_by uuid NOT NULL,
    connector_id uuid,
    template_id uuid,
    manifest jsonb NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    credential_name text NOT NULL,
    encrypted_payload text NOT NULL,
    redirect_uri text NOT NULL,
    redirect_to text,
    status text DEFAULT 'pending'::text NOT NULL,
    credential_id uuid,
    error text,
    expires_at timestamp with time zone NOT NULL,
    completed_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT oauth_authorizations_credential_name_check CHECK (((length(credential_name) >= 1) AND (length(credential_name) <= 200))),
    CONSTRAINT oauth_authorizations_encrypted_payload_check CHECK ((encrypted_payload ~~ 'pb1:%'::text)),
    CONSTRAINT oauth_authorizations_state_hash_check CHECK ((length(state_hash) = 32)),
    CONSTRAINT oauth_authorizations_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'exchanging'::text, 'completed'::text, 'failed'::text])))
);

ALTER TABLE ONLY public.oauth_authorizations FORCE ROW LEVEL SECURITY;

CREATE TABLE public.pending_objects (
    object_key text NOT NULL,
    workspace_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    swept_at timestamp with time zone,
    CONSTRAINT pending_objects_check CHECK (((object_key ~ '^workspaces/[a-z0-9_]{1,64}/documents/[0-9a-f]{32}$'::text) AND starts_with(object_key, (('workspaces/'::text || workspace_id) || '/'::text))))
);

ALTER TABLE ONLY public.pending_objects FORCE ROW LEVEL SECURITY;

CREATE TABLE public.saas_admin_users (
    user_id uuid NOT NULL,
    role text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT saas_admin_users_role_check CHECK ((role = ANY (ARRAY['developer'::text, 'admin'::text, 'owner'::text])))
);

ALTER TABLE ONLY public.saas_admin_users FORCE ROW LEVEL SECURITY;

CREATE TABLE public.users (
    id uuid NOT NULL,
    email text NOT NULL,
    display_name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT users_email_lower CHECK (((email = lower(email)) AND ((length(email) >= 3) AND (length(email) <= 320))))
);

ALTER TABLE ONLY public.users FORCE ROW LEVEL SECURITY;

CREATE TABLE public.worker_heartbeats (
    worker_id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    kinds text[] DEFAULT '{}'::text[] NOT NULL,
    slots integer NOT NULL,
    running integer DEFAULT 0 NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    beat_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT worker_heartbeats_worker_id_check CHECK (((length(worker_id) >= 1) AND (length(worker_id) <= 200)))
);

ALTER TABLE ONLY public.worker_heartbeats FORCE ROW LEVEL SECURITY;

CREATE TABLE public.workspace_api_credentials (
    workspace_id text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    auth_type text NOT NULL,
    encrypted_payload text NOT NULL,
    key_id text NOT NULL,
    masked_hint text NOT NULL,
    secret_fields text[] DEFAULT '{}'::text[] NOT NULL,
    expires_at timestamp with time zone,
    credentials_updated_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    row_version bigint DEFAULT 1 NOT NULL,
    refreshing_until timestamp with time zone,
    CONSTRAINT workspace_api_credentials_auth_type_check CHECK ((auth_type = ANY (ARRAY['api_key'::text, 'bearer'::text, 'basic'::text, 'oauth2_client_credentials'::text, 'oauth2_refresh_token'::text, 'oauth2_authorization_code'::text, 'session'::text, 'custom'::text]))),
    CONSTRAINT workspace_api_credentials_encrypted_payload_check CHECK ((encrypted_payload ~~ 'pb1:%'::text)),
    CONSTRAINT workspace_api_credentials_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
);

ALTER TABLE ONLY public.workspace_api_credentials FORCE ROW LEVEL SECURITY;

CREATE TABLE public.workspace_change_counters (
    workspace_id text NOT NULL,
    last_seq bigint DEFAULT 0 NOT NULL
);

ALTER TABLE ONLY public.workspace_change_counters FORCE ROW LEVEL SECURITY;

CREATE TABLE public.workspace_members (
    workspace_id text NOT NULL,
    user_id uuid NOT NULL,
    role text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workspace_members_role_check CHECK ((role = ANY (ARRAY['owner'::text, 'admin'::text, 'member'::text, 'viewer'::text])))
);

ALTER TABLE ONLY public.workspace_members FORCE ROW LEVEL SECURITY;

CREATE TABLE public.workspaces (
    id text NOT NULL,
    name text NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workspaces_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
);

ALTER TABLE ONLY public.workspaces FORCE ROW LEVEL SECURITY;

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.connector_executions
    ADD CONSTRAINT connector_executions_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.connector_stream_states
    ADD CONSTRAINT connector_stream_states_pkey PRIMARY KEY (workspace_id, connector_id, stream);

ALTER TABLE ONLY public.connector_sync_logs
    ADD CONSTRAINT connector_sync_logs_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.connector_templates
    ADD CONSTRAINT connector_templates_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.connector_webhook_events
    ADD CONSTRAINT connector_webhook_events_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.connector_webhook_failures
    ADD CONSTRAINT connector_webhook_failures_pkey PRIMARY KEY (workspace_id, connector_id);

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.dashboard_sessions
    ADD CONSTRAINT dashboard_sessions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.dashboard_sessions
    ADD CONSTRAINT dashboard_sessions_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.document_chunks
    ADD CONSTRAINT document_chunks_pkey PRIMARY KEY (workspace_id, document_id, ordinal);

ALTER TABLE ONLY public.file_upload_batch_failures
    ADD CONSTRAINT file_upload_batch_failures_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.file_upload_batches
    ADD CONSTRAINT file_upload_batches_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.idempotency_keys
    ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, key);

ALTER TABLE ONLY public.imported_documents
    ADD CONSTRAINT imported_documents_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.key_ring_canary
    ADD CONSTRAINT key_ring_canary_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.oauth_authorizations
    ADD CONSTRAINT oauth_authorizations_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.oauth_authorizations
    ADD CONSTRAINT oauth_authorizations_state_hash_key UNIQUE (state_hash);

ALTER TABLE ONLY public.pending_objects
    ADD CONSTRAINT pending_objects_pkey PRIMARY KEY (object_key);

ALTER TABLE ONLY public.saas_admin_users
    ADD CONSTRAINT saas_admin_users_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.worker_heartbeats
    ADD CONSTRAINT worker_heartbeats_pkey PRIMARY KEY (worker_id);

ALTER TABLE ONLY public.workspace_api_credentials
    ADD CONSTRAINT workspace_api_credentials_pkey PRIMARY KEY (workspace_id, id);

ALTER TABLE ONLY public.workspace_change_counters
    ADD CONSTRAINT workspace_change_counters_pkey PRIMARY KEY (workspace_id);

ALTER TABLE ONLY public.workspace_members
    ADD CONSTRAINT workspace_members_pkey PRIMARY KEY (workspace_id, user_id);

ALTER TABLE ONLY public.workspaces
    ADD CONSTRAINT workspaces_pkey PRIMARY KEY (id);

CREATE UNIQUE INDEX "UC_Version" ON public."VersionInfo" USING btree ("Version");

CREATE UNIQUE INDEX api_keys_hash_key ON public.api_keys USING btree (key_hash);

CREATE UNIQUE INDEX api_keys_prefix_key ON public.api_keys USING btree (prefix);

CREATE INDEX api_keys_user_idx ON public.api_keys USING btree (user_id, id);

CREATE INDEX api_keys_workspace_idx ON public.api_keys USING btree (workspace_id, id);

CREATE INDEX audit_log_workspace_idx ON public.audit_log USING btree (workspace_id, id DESC);

CREATE INDEX connector_executions_active_idx ON public.connector_executions USING btree (status) WHERE (status = ANY (ARRAY['queued'::text, 'running'::text]));

CREATE INDEX connector_executions_connector_idx ON public.connector_executions USING btree (workspace_id, connector_id, created_at DESC);

CREATE INDEX connector_executions_finished_idx ON public.connector_executions USING btree (finished_at) WHERE (finished_at IS NOT NULL);

CREATE INDEX connector_executions_status_idx ON public.connector_executions USING btree (workspace_id, status, id DESC);

CREATE INDEX connector_executions_workspace_idx ON public.connector_executions USING btree (workspace_id, id DESC);

CREATE INDEX connector_sync_logs_completed_idx ON public.connector_sync_logs USING btree (completed_at) WHERE (completed_at IS NOT NULL);

CREATE INDEX connector_sync_logs_connector_idx ON public.connector_sync_logs USING btree (workspace_id, connector_id, started_at DESC);

CREATE UNIQUE INDEX connector_sync_logs_one_active ON public.connector_sync_logs USING btree (workspace_id, connector_id) WHERE (status = ANY (ARRAY['queued'::text, 'running'::text]));

CREATE UNIQUE INDEX connector_templates_community_slug_key ON public.connector_templates USING btree (workspace_id, slug) WHERE (workspace_id IS NOT NULL);

CREATE INDEX connector_templates_marketplace_idx ON public.connector_templates USING btree (install_count DESC, id) WHERE (status = 'published'::text);

CREATE UNIQUE INDEX connector_templates_official_slug_key ON public.connector_templates USING btree (slug) WHERE (workspace_id IS NULL);

CREATE INDEX connector_templates_tags_idx ON public.connector_templates USING gin (tags);

CREATE INDEX connector_webhook_events_connector_idx ON public.connector_webhook_events USING btree (workspace_id, connector_id, id DESC);

CREATE UNIQUE INDEX connector_webhook_events_dedupe_key ON public.connector_webhook_events USING btree (workspace_id, connector_id, external_id) WHERE (external_id IS NOT NULL);

CREATE INDEX connector_webhook_events_processed_idx ON public.connector_webhook_events USING btree (processed_at) WHERE processed;

CREATE INDEX connector_webhook_events_unprocessed_idx ON public.connector_webhook_events USING btree (received_at) WHERE (NOT processed);

CREATE INDEX connectors_credential_idx ON public.connectors USING btree (workspace_id, credential_id) WHERE (credential_id IS NOT NULL);

CREATE UNIQUE INDEX connectors_name_key ON public.connectors USING btree (workspace_id, name);

CREATE INDEX connectors_next_sync_idx ON public.connectors USING btree (next_sync_at) WHERE (next_sync_at IS NOT NULL);

CREATE UNIQUE INDEX connectors_webhook_token_key ON public.connectors USING btree (webhook_token);

CREATE INDEX dashboard_sessions_expires_idx ON public.dashboard_sessions USING btree (expires_at);

CREATE INDEX dashboard_sessions_key_idx ON public.dashboard_sessions USING btree (api_key_id);

CREATE INDEX dashboard_sessions_user_idx ON public.dashboard_sessions USING btree (user_id) WHERE (user_id IS NOT NULL);

CREATE INDEX document_chunks_search_idx ON public.document_chunks USING gin (workspace_id, search);

CREATE INDEX file_upload_batch_failures_batch_idx ON public.file_upload_batch_failures USING btree (workspace_id, batch_id, id);

CREATE INDEX idempotency_keys_created_idx ON public.idempotency_keys USING btree (created_at);

CREATE INDEX imported_documents_batch_idx ON public.imported_documents USING btree (workspace_id, batch_id) WHERE (batch_id IS NOT NULL);

CREATE INDEX imported_documents_changes_idx ON public.imported_documents USING btree (workspace_id, connector_id, change_seq) WHERE (change_seq IS NOT NULL);

CREATE UNIQUE INDEX imported_documents_external_key ON public.imported_documents USING btree (workspace_id, connector_id, external_id) WHERE (external_id IS NOT NULL);

CREATE INDEX imported_documents_hash_idx ON public.imported_documents USING btree (workspace_id, content_hash);

CREATE INDEX imported_documents_pending_chunks_idx ON public.imported_documents USING btree (created_at) WHERE (NOT chunks_generated);

CREATE INDEX imported_documents_stream_idx ON public.imported_documents USING btree (workspace_id, connector_id, stream) WHERE (stream IS NOT NULL);

CREATE UNIQUE INDEX imported_documents_upload_hash_key ON public.imported_documents USING btree (workspace_id, content_hash) WHERE ((source = 'upload'::text) AND (NOT is_deleted) AND (content_hash IS NOT NULL));

CREATE INDEX jobs_dead_idx ON public.jobs USING btree (id DESC) WHERE (state = 'dead'::text);

CREATE INDEX jobs_due_idx ON public.jobs USING btree (priority DESC, run_at) WHERE (state = 'available'::text);

CREATE INDEX jobs_finished_idx ON public.jobs USING btree (finished_at) WHERE (state = ANY (ARRAY['dead'::text, 'cancelled'::text]));

CREATE INDEX jobs_lease_idx ON public.jobs USING btree (lease_expires_at) WHERE (state = 'running'::text);

CREATE INDEX jobs_running_key_idx ON public.jobs USING btree (concurrency_key) WHERE (state = 'running'::text);

CREATE INDEX jobs_workspace_due_idx ON public.jobs USING btree (COALESCE(workspace_id, ''::text) COLLATE "C", priority DESC, run_at) WHERE (state = 'available'::text);

CREATE INDEX oauth_authorizations_expiry_idx ON public.oauth_authorizations USING btree (expires_at);

CREATE INDEX pending_objects_created_idx ON public.pending_objects USING btree (created_at);

CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email);

CREATE INDEX worker_heartbeats_beat_idx ON public.worker_heartbeats USING btree (beat_at);

CREATE INDEX workspace_api_credentials_key_idx ON public.workspace_api_credentials USING btree (key_id);

CREATE UNIQUE INDEX workspace_api_credentials_name_key ON public.workspace_api_credentials USING btree (workspace_id, name);

CREATE INDEX workspace_members_user_idx ON public.workspace_members USING btree (user_id);

CREATE TRIGGER api_keys_revocation_is_final BEFORE UPDATE OF revoked_at ON public.api_keys FOR EACH ROW EXECUTE FUNCTION public.api_keys_revocation_is_final();

CREATE TRIGGER api_keys_updated_at BEFORE UPDATE ON public.api_keys FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER connector_executions_notify_cancel AFTER UPDATE OF cancel_requested_at ON public.connector_executions FOR EACH ROW WHEN (((old.cancel_requested_at IS NULL) AND (new.cancel_requested_at IS NOT NULL) AND (new.status = 'running'::text))) EXECUTE FUNCTION public.connector_executions_notify_cancel();

CREATE TRIGGER connector_executions_updated_at BEFORE UPDATE ON public.connector_executions FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER connector_sync_logs_updated_at BEFORE UPDATE ON public.connector_sync_logs FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER connector_templates_updated_at BEFORE UPDATE ON public.connector_templates FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER connectors_keep_previous_webhook_secret BEFORE UPDATE OF webhook_secret ON public.connectors FOR EACH ROW EXECUTE FUNCTION public.connectors_keep_previous_webhook_secret();

CREATE TRIGGER connectors_row_version BEFORE UPDATE ON public.connectors FOR EACH ROW EXECUTE FUNCTION public.bump_row_version();

CREATE TRIGGER connectors_updated_at BEFORE UPDATE ON public.connectors FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER file_upload_batches_updated_at BEFORE UPDATE ON public.file_upload_batches FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER imported_documents_updated_at BEFORE UPDATE ON public.imported_documents FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER jobs_notify AFTER INSERT ON public.jobs FOR EACH STATEMENT EXECUTE FUNCTION public.jobs_notify();

CREATE TRIGGER jobs_notify_freed_slot AFTER DELETE ON public.jobs REFERENCING OLD TABLE AS finished FOR EACH STATEMENT EXECUTE FUNCTION public.jobs_notify_freed_slot();

CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON public.jobs FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER key_ring_canary_updated_at BEFORE UPDATE ON public.key_ring_canary FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER saas_admin_users_updated_at BEFORE UPDATE ON public.saas_admin_users FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER users_updated_at BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER workspace_api_credentials_row_version BEFORE UPDATE ON public.workspace_api_credentials FOR EACH ROW EXECUTE FUNCTION public.bump_row_version();

CREATE TRIGGER workspace_api_credentials_updated_at BEFORE UPDATE ON public.workspace_api_credentials FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER workspace_members_updated_at BEFORE UPDATE ON public.workspace_members FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER workspaces_updated_at BEFORE UPDATE ON public.workspaces FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connector_executions
    ADD CONSTRAINT connector_executions_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connector_stream_states
    ADD CONSTRAINT connector_stream_states_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connector_sync_logs
    ADD CONSTRAINT connector_sync_logs_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connector_templates
    ADD CONSTRAINT connector_templates_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.connector_templates
    ADD CONSTRAINT connector_templates_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connector_webhook_events
    ADD CONSTRAINT connector_webhook_events_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connector_webhook_failures
    ADD CONSTRAINT connector_webhook_failures_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_template_id_fkey FOREIGN KEY (template_id) REFERENCES public.connector_templates(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_workspace_id_credential_id_fkey FOREIGN KEY (workspace_id, credential_id) REFERENCES public.workspace_api_credentials(workspace_id, id) ON DELETE SET NULL (credential_id);

ALTER TABLE ONLY public.connectors
    ADD CONSTRAINT connectors_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.dashboard_sessions
    ADD CONSTRAINT dashboard_sessions_api_key_id_fkey FOREIGN KEY (api_key_id) REFERENCES public.api_keys(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.dashboard_sessions
    ADD CONSTRAINT dashboard_sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.document_chunks
    ADD CONSTRAINT document_chunks_workspace_id_document_id_fkey FOREIGN KEY (workspace_id, document_id) REFERENCES public.imported_documents(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.file_upload_batch_failures
    ADD CONSTRAINT file_upload_batch_failures_workspace_id_batch_id_fkey FOREIGN KEY (workspace_id, batch_id) REFERENCES public.file_upload_batches(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.file_upload_batches
    ADD CONSTRAINT file_upload_batches_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.file_upload_batches
    ADD CONSTRAINT file_upload_batches_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.idempotency_keys
    ADD CONSTRAINT idempotency_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.idempotency_keys
    ADD CONSTRAINT idempotency_keys_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.imported_documents
    ADD CONSTRAINT imported_documents_workspace_id_batch_id_fkey FOREIGN KEY (workspace_id, batch_id) REFERENCES public.file_upload_batches(workspace_id, id) ON DELETE SET NULL (batch_id);

ALTER TABLE ONLY public.imported_documents
    ADD CONSTRAINT imported_documents_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.imported_documents
    ADD CONSTRAINT imported_documents_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth_authorizations
    ADD CONSTRAINT oauth_authorizations_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth_authorizations
    ADD CONSTRAINT oauth_authorizations_workspace_id_connector_id_fkey FOREIGN KEY (workspace_id, connector_id) REFERENCES public.connectors(workspace_id, id) ON DELETE CASCADE;

ALTER TABLE ONLY public.oauth_authorizations
    ADD CONSTRAINT oauth_authorizations_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.saas_admin_users
    ADD CONSTRAINT saas_admin_users_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.workspace_api_credentials
    ADD CONSTRAINT workspace_api_credentials_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.workspace_api_credentials
    ADD CONSTRAINT workspace_api_credentials_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.workspace_change_counters
    ADD CONSTRAINT workspace_change_counters_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.workspace_members
    ADD CONSTRAINT workspace_members_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.workspace_members
    ADD CONSTRAINT workspace_members_workspace_id_fkey FOREIGN KEY (workspace_id) REFERENCES public.workspaces(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.workspaces
    ADD CONSTRAINT workspaces_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

CREATE POLICY api_all ON public.idempotency_keys TO plugboard_api USING ((user_id = public.app_user_id())) WITH CHECK ((user_id = public.app_user_id()));

CREATE POLICY api_delete ON public.connector_executions FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.connector_sync_logs FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.connector_templates FOR DELETE TO plugboard_api USING ((public.app_platform_role_at_least('admin'::text) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text) AND (status = 'draft'::text))));

CREATE POLICY api_delete ON public.connector_webhook_events FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.connectors FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.file_upload_batches FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.imported_documents FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.pending_objects FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_delete ON public.saas_admin_users FOR DELETE TO plugboard_api USING ((public.app_platform_role_at_least('owner'::text) OR (public.app_platform_role_at_least('admin'::text) AND (role = 'developer'::text))));

CREATE POLICY api_delete ON public.workspace_api_credentials FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_delete ON public.workspace_members FOR DELETE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('owner'::text)));

CREATE POLICY api_delete ON public.workspaces FOR DELETE TO plugboard_api USING (((id = public.app_workspace_id()) AND public.app_role_at_least('owner'::text)));

CREATE POLICY api_insert ON public.api_keys FOR INSERT TO plugboard_api WITH CHECK (((user_id = public.app_user_id()) AND (workspace_id = public.app_workspace_id())));

CREATE POLICY api_insert ON public.audit_log FOR INSERT TO plugboard_api WITH CHECK (((actor_user_id = public.app_user_id()) AND ((workspace_id = public.app_workspace_id()) OR (workspace_id IS NULL))));

CREATE POLICY api_insert ON public.connector_executions FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_insert ON public.connector_sync_logs FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_insert ON public.connector_templates FOR INSERT TO plugboard_api WITH CHECK ((((workspace_id IS NULL) AND public.app_platform_role_at_least('developer'::text) AND ((status = 'draft'::text) OR public.app_platform_role_at_least('admin'::text))) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text) AND (status = 'draft'::text) AND (NOT featured))));

CREATE POLICY api_insert ON public.connector_webhook_events FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_insert ON public.connectors FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_insert ON public.file_upload_batch_failures FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_insert ON public.file_upload_batches FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_insert ON public.imported_documents FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_insert ON public.jobs FOR INSERT TO plugboard_api WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_insert ON public.oauth_authorizations FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND (created_by = public.app_user_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_insert ON public.pending_objects FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text)));

CREATE POLICY api_insert ON public.saas_admin_users FOR INSERT TO plugboard_api WITH CHECK ((public.app_platform_role_at_least('owner'::text) OR (public.app_platform_role_at_least('admin'::text) AND (role = 'developer'::text))));

CREATE POLICY api_insert ON public.workspace_api_credentials FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)));

CREATE POLICY api_insert ON public.workspace_members FOR INSERT TO plugboard_api WITH CHECK (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('owner'::text)));

CREATE POLICY api_insert ON public.workspaces FOR INSERT TO plugboard_api WITH CHECK (((id = public.app_workspace_id()) AND (public.app_user_id() IS NOT NULL)));

CREATE POLICY api_insert_test_run_admin ON public.connector_executions AS RESTRICTIVE FOR INSERT TO plugboard_api WITH CHECK (((manifest IS NULL) OR public.app_role_at_least('admin'::text)));

ALTER TABLE public.api_keys ENABLE ROW LEVEL SECURITY;

CREATE POLICY api_select ON public.api_keys FOR SELECT TO plugboard_api USING (((user_id = public.app_user_id()) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text))));

CREATE POLICY api_select ON public.audit_log FOR SELECT TO plugboard_api USING ((((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)) OR ((workspace_id IS NULL) AND public.app_platform_role_at_least('admin'::text))));

CREATE POLICY api_select ON public.connector_executions FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.connector_stream_states FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.connector_sync_logs FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.connector_templates FOR SELECT TO plugboard_api USING ((((status = 'published'::text) AND (public.app_user_id() IS NOT NULL)) OR ((workspace_id IS NOT NULL) AND (workspace_id = public.app_workspace_id())) OR public.app_platform_role_at_least('developer'::text)));

CREATE POLICY api_select ON public.connector_webhook_events FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.connector_webhook_failures FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.connectors FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.document_chunks FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.file_upload_batch_failures FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.file_upload_batches FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.imported_documents FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.oauth_authorizations FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.pending_objects FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.saas_admin_users FOR SELECT TO plugboard_api USING (((user_id = public.app_user_id()) OR public.app_platform_role_at_least('admin'::text)));

CREATE POLICY api_select ON public.users FOR SELECT TO plugboard_api USING (((id = public.app_user_id()) OR public.app_platform_role_at_least('admin'::text) OR (EXISTS ( SELECT 1
   FROM public.workspace_members m
  WHERE ((m.user_id = users.id) AND (m.workspace_id = public.app_workspace_id()))))));

CREATE POLICY api_select ON public.worker_heartbeats FOR SELECT TO plugboard_api USING (public.app_platform_role_at_least('admin'::text));

CREATE POLICY api_select ON public.workspace_api_credentials FOR SELECT TO plugboard_api USING ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_select ON public.workspace_members FOR SELECT TO plugboard_api USING (((workspace_id = public.app_workspace_id()) OR (user_id = public.app_user_id())));

CREATE POLICY api_select ON public.workspaces FOR SELECT TO plugboard_api USING (((id = public.app_workspace_id()) OR (EXISTS ( SELECT 1
   FROM public.workspace_members m
  WHERE ((m.workspace_id = workspaces.id) AND (m.user_id = public.app_user_id()))))));

CREATE POLICY api_update ON public.api_keys FOR UPDATE TO plugboard_api USING (((user_id = public.app_user_id()) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)))) WITH CHECK (((user_id = public.app_user_id()) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text))));

CREATE POLICY api_update ON public.connector_executions FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.connector_sync_logs FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.connector_templates FOR UPDATE TO plugboard_api USING ((public.app_platform_role_at_least('admin'::text) OR ((workspace_id IS NULL) AND public.app_platform_role_at_least('developer'::text)) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text)))) WITH CHECK ((public.app_platform_role_at_least('admin'::text) OR ((workspace_id IS NULL) AND public.app_platform_role_at_least('developer'::text) AND (status = ANY (ARRAY['draft'::text, 'published'::text]))) OR ((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text) AND (status = ANY (ARRAY['draft'::text, 'archived'::text])) AND (NOT featured))));

CREATE POLICY api_update ON public.connector_webhook_events FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.connectors FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.file_upload_batches FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.imported_documents FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('member'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.oauth_authorizations FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND (created_by = public.app_user_id()))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.saas_admin_users FOR UPDATE TO plugboard_api USING ((public.app_platform_role_at_least('owner'::text) OR (public.app_platform_role_at_least('admin'::text) AND (role = 'developer'::text)))) WITH CHECK ((public.app_platform_role_at_least('owner'::text) OR (public.app_platform_role_at_least('admin'::text) AND (role = 'developer'::text))));

CREATE POLICY api_update ON public.users FOR UPDATE TO plugboard_api USING (((id = public.app_user_id()) OR public.app_platform_role_at_least('admin'::text))) WITH CHECK (((id = public.app_user_id()) OR public.app_platform_role_at_least('admin'::text)));

CREATE POLICY api_update ON public.workspace_api_credentials FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.workspace_members FOR UPDATE TO plugboard_api USING (((workspace_id = public.app_workspace_id()) AND public.app_role_at_least('owner'::text))) WITH CHECK ((workspace_id = public.app_workspace_id()));

CREATE POLICY api_update ON public.workspaces FOR UPDATE TO plugboard_api USING (((id = public.app_workspace_id()) AND public.app_role_at_least('admin'::text))) WITH CHECK ((id = public.app_workspace_id()));

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connector_executions ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connector_stream_states ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connector_sync_logs ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connector_templates ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connector_webhook_events ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connector_webhook_failures ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.connectors ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.dashboard_sessions ENABLE ROW LEVEL SECURITY;

CREATE POLICY definer_all ON public.api_keys TO plugboard_definer USING (true) WITH CHECK (true);

CREATE POLICY definer_all ON public.connector_templates TO plugboard_definer USING (true) WITH CHECK (true);

CREATE POLICY definer_all ON public.dashboard_sessions TO plugboard_definer USING (true) WITH CHECK (true);

CREATE POLICY definer_all ON public.saas_admin_users TO plugboard_definer USING (true) WITH CHECK (true);

CREATE POLICY definer_all ON public.users TO plugboard_definer USING (true) WITH CHECK (true);

CREATE POLICY definer_all ON public.workspace_members TO plugboard_definer USING (true) WITH CHECK (true);

ALTER TABLE public.document_chunks ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.file_upload_batch_failures ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.file_upload_batches ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.idempotency_keys ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.imported_documents ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.jobs ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.key_ring_canary ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.oauth_authorizations ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.pending_objects ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.saas_admin_users ENABLE ROW LEVEL SECURITY;

CREATE POLICY service_all ON public.api_keys TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.audit_log TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connector_executions TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connector_stream_states TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connector_sync_logs TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connector_templates TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connector_webhook_events TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connector_webhook_failures TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.connectors TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.dashboard_sessions TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.document_chunks TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.file_upload_batch_failures TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.file_upload_batches TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.idempotency_keys TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.imported_documents TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.jobs TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.key_ring_canary TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.oauth_authorizations TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.pending_objects TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.saas_admin_users TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.users TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.worker_heartbeats TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.workspace_api_credentials TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.workspace_change_counters TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.workspace_members TO plugboard_service USING (true) WITH CHECK (true);

CREATE POLICY service_all ON public.workspaces TO plugboard_service USING (true) WITH CHECK (true);

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.worker_heartbeats ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.workspace_api_credentials ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.workspace_change_counters ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.workspace_members ENABLE ROW LEVEL SECURITY;

ALTER TABLE public.workspaces ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON FUNCTION public.authenticate_api_key(p_key_hash bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.authenticate_api_key(p_key_hash bytea) TO plugboard_api;

REVOKE ALL ON FUNCTION public.authenticate_dashboard_session(p_token_hash bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.authenticate_dashboard_session(p_token_hash bytea) TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.file_upload_batches TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.file_upload_batches TO plugboard_api;

REVOKE ALL ON FUNCTION public.end_dashboard_session(p_token_hash bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.end_dashboard_session(p_token_hash bytea) TO plugboard_api;

REVOKE ALL ON FUNCTION public.ensure_user(p_email text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ensure_user(p_email text) TO plugboard_api;

REVOKE ALL ON FUNCTION public.find_user_by_email(p_email text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.find_user_by_email(p_email text) TO plugboard_api;

REVOKE ALL ON FUNCTION public.record_template_install(p_template_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.record_template_install(p_template_id uuid) TO plugboard_api;

REVOKE ALL ON FUNCTION public.start_dashboard_session(p_key_hash bytea, p_token_hash bytea, p_ttl interval) FROM PUBLIC;
GRANT ALL ON FUNCTION public.start_dashboard_session(p_key_hash bytea, p_token_hash bytea, p_ttl interval) TO plugboard_api;

REVOKE ALL ON FUNCTION public.start_user_dashboard_session(p_email text, p_token_hash bytea, p_ttl interval) FROM PUBLIC;
GRANT ALL ON FUNCTION public.start_user_dashboard_session(p_email text, p_token_hash bytea, p_ttl interval) TO plugboard_api;

REVOKE ALL ON FUNCTION public.workspace_role_of(p_user_id uuid, p_workspace_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.workspace_role_of(p_user_id uuid, p_workspace_id text) TO plugboard_api;

GRANT SELECT ON TABLE public."VersionInfo" TO plugboard_service;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.api_keys TO plugboard_service;
GRANT SELECT ON TABLE public.api_keys TO plugboard_api;
GRANT SELECT ON TABLE public.api_keys TO plugboard_definer;

GRANT INSERT(id) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(workspace_id) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(user_id) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(name),UPDATE(name) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(prefix) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(key_hash) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(role) ON TABLE public.api_keys TO plugboard_api;

GRANT INSERT(expires_at) ON TABLE public.api_keys TO plugboard_api;

GRANT UPDATE(last_used_at) ON TABLE public.api_keys TO plugboard_definer;

GRANT UPDATE(revoked_at) ON TABLE public.api_keys TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.audit_log TO plugboard_service;
GRANT SELECT,INSERT ON TABLE public.audit_log TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_executions TO plugboard_service;
GRANT SELECT,INSERT,DELETE ON TABLE public.connector_executions TO plugboard_api;

GRANT UPDATE(status) ON TABLE public.connector_executions TO plugboard_api;

GRANT UPDATE(finished_at) ON TABLE public.connector_executions TO plugboard_api;

GRANT UPDATE(cancel_requested_at) ON TABLE public.connector_executions TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_stream_states TO plugboard_service;
GRANT SELECT ON TABLE public.connector_stream_states TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_sync_logs TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_sync_logs TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_templates TO plugboard_service;
GRANT SELECT,DELETE ON TABLE public.connector_templates TO plugboard_api;
GRANT SELECT ON TABLE public.connector_templates TO plugboard_definer;

GRANT INSERT(id) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(workspace_id) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(kind) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(slug) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(name),UPDATE(name) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(description),UPDATE(description) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(category),UPDATE(category) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(tags),UPDATE(tags) ON TABLE public.connector_templates TO plugboard_api;

GRANT UPDATE(status) ON TABLE public.connector_templates TO plugboard_api;

GRANT UPDATE(featured) ON TABLE public.connector_templates TO plugboard_api;

GRANT UPDATE(version) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(manifest),UPDATE(manifest) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(credential_fields),UPDATE(credential_fields) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(auth_type),UPDATE(auth_type) ON TABLE public.connector_templates TO plugboard_api;

GRANT UPDATE(install_count) ON TABLE public.connector_templates TO plugboard_definer;

GRANT UPDATE(rejection_reason) ON TABLE public.connector_templates TO plugboard_api;

GRANT INSERT(created_by) ON TABLE public.connector_templates TO plugboard_api;

GRANT UPDATE(published_at) ON TABLE public.connector_templates TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_webhook_events TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_webhook_events TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connector_webhook_failures TO plugboard_service;
GRANT SELECT ON TABLE public.connector_webhook_failures TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.connectors TO plugboard_service;
GRANT INSERT,DELETE,UPDATE ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(workspace_id) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(id) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(name) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(description) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(connector_type) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(template_id) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(template_version) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(manifest) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(config) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(credential_id) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(is_active) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(filters) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(metadata) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(sync_frequency) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(next_sync_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(last_sync_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(webhook_active) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(error_count) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(last_error) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(last_error_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(credentials_updated_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(created_by) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(created_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(updated_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(max_concurrency) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(row_version) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(webhook_secret_set) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(sync_timezone) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(sync_paused_at) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(webhook_secret_previous_until) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT(webhook_url) ON TABLE public.connectors TO plugboard_api;

GRANT SELECT,INSERT ON TABLE public.dashboard_sessions TO plugboard_definer;
GRANT SELECT,DELETE ON TABLE public.dashboard_sessions TO plugboard_service;

GRANT UPDATE(revoked_at) ON TABLE public.dashboard_sessions TO plugboard_definer;
GRANT UPDATE(revoked_at) ON TABLE public.dashboard_sessions TO plugboard_service;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.document_chunks TO plugboard_service;
GRANT SELECT ON TABLE public.document_chunks TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.file_upload_batch_failures TO plugboard_service;
GRANT SELECT,INSERT ON TABLE public.file_upload_batch_failures TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.idempotency_keys TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.idempotency_keys TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.imported_documents TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.imported_documents TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.jobs TO plugboard_service;
GRANT INSERT ON TABLE public.jobs TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.key_ring_canary TO plugboard_service;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.oauth_authorizations TO plugboard_service;
GRANT INSERT ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(workspace_id) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(id) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(created_by) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(connector_id) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(template_id) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(credential_name) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(redirect_to) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(status),UPDATE(status) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(credential_id),UPDATE(credential_id) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(error),UPDATE(error) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(expires_at) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(completed_at),UPDATE(completed_at) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT(created_at) ON TABLE public.oauth_authorizations TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.pending_objects TO plugboard_service;
GRANT SELECT,INSERT,DELETE ON TABLE public.pending_objects TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.saas_admin_users TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.saas_admin_users TO plugboard_api;
GRANT SELECT ON TABLE public.saas_admin_users TO plugboard_definer;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.users TO plugboard_service;
GRANT SELECT ON TABLE public.users TO plugboard_api;
GRANT SELECT,INSERT ON TABLE public.users TO plugboard_definer;

GRANT UPDATE(display_name) ON TABLE public.users TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.worker_heartbeats TO plugboard_service;
GRANT SELECT ON TABLE public.worker_heartbeats TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_api_credentials TO plugboard_service;
GRANT INSERT,DELETE,UPDATE ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(workspace_id) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(id) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(name) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(auth_type) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(key_id) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(masked_hint) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(secret_fields) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(expires_at) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(credentials_updated_at) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(created_by) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(created_at) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(updated_at) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT(row_version) ON TABLE public.workspace_api_credentials TO plugboard_api;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_change_counters TO plugboard_service;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_members TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspace_members TO plugboard_api;
GRANT SELECT ON TABLE public.workspace_members TO plugboard_definer;

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspaces TO plugboard_service;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.workspaces TO plugboard_api;
