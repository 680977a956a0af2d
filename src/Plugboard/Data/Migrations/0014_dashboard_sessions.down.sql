DROP FUNCTION end_dashboard_session(bytea);
DROP FUNCTION authenticate_dashboard_session(bytea);
DROP FUNCTION start_dashboard_session(bytea, bytea, interval);
DROP TABLE dashboard_sessions;
