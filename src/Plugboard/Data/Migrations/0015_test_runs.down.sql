REVOKE UPDATE (status, cancel_requested_at, finished_at) ON connector_executions FROM plugboard_api;
GRANT UPDATE ON connector_executions TO plugboard_api;
DROP POLICY api_insert_test_run_admin ON connector_executions;
DELETE FROM connector_executions WHERE trigger = 'test';
ALTER TABLE connector_executions DROP CONSTRAINT connector_executions_manifest_only_in_tests;
ALTER TABLE connector_executions DROP CONSTRAINT connector_executions_trigger_check;
ALTER TABLE connector_executions ADD CONSTRAINT connector_executions_trigger_check
    CHECK (trigger IN ('manual', 'api', 'schedule', 'webhook'));
ALTER TABLE connector_executions DROP COLUMN manifest;
