-- Test runs (the dashboard's manifest studio): an execution that runs a draft manifest, stored with it, instead of
-- the connector's saved one, with the connector's credential and config.
ALTER TABLE connector_executions ADD COLUMN manifest jsonb;
COMMENT ON COLUMN connector_executions.manifest IS
    'A test run''s draft manifest, run instead of the connector''s; NULL for every other execution.';

ALTER TABLE connector_executions DROP CONSTRAINT connector_executions_trigger_check;
ALTER TABLE connector_executions ADD CONSTRAINT connector_executions_trigger_check
    CHECK (trigger IN ('manual', 'api', 'schedule', 'webhook', 'test'));
ALTER TABLE connector_executions ADD CONSTRAINT connector_executions_manifest_only_in_tests
    CHECK ((manifest IS NULL) = (trigger <> 'test'));

-- Running another manifest with a connector's credential is changing where that credential goes: admins only, as
-- editing the connector's manifest is.
CREATE POLICY api_insert_test_run_admin ON connector_executions AS RESTRICTIVE FOR INSERT TO plugboard_api
    WITH CHECK (manifest IS NULL OR app_role_at_least('admin'));

-- Nor can the API change an execution's manifest, trigger or inputs afterwards: it only cancels (status,
-- cancel_requested_at, finished_at); workers write results as the service role.
REVOKE UPDATE ON connector_executions FROM plugboard_api;
GRANT UPDATE (status, cancel_requested_at, finished_at) ON connector_executions TO plugboard_api;
