-- A job with a concurrency key that finishes frees a slot of its key: wake the workers at once, so the next job of
-- that key is claimed now rather than at the next poll. (A finished job is deleted; one that failed is set back to
-- 'available' or 'dead' by its worker, which notifies itself in the same statement.)
CREATE FUNCTION jobs_notify_freed_slot() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM finished WHERE concurrency_key IS NOT NULL AND state = 'running') THEN
        PERFORM pg_notify('plugboard_jobs', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify_freed_slot AFTER DELETE ON jobs REFERENCING OLD TABLE AS finished
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_freed_slot();
