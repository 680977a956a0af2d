DROP TRIGGER IF EXISTS jobs_notify_freed_slot ON jobs;
DROP FUNCTION IF EXISTS jobs_notify_freed_slot();
