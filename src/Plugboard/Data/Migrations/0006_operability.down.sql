DROP TABLE IF EXISTS key_ring_canary;
DROP TABLE IF EXISTS worker_heartbeats;
