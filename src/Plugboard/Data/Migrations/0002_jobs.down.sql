-- Reverses 0002. Queued, running and dead jobs are lost with the table.
DROP TABLE IF EXISTS jobs;
DROP FUNCTION IF EXISTS jobs_notify();
