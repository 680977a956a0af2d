ALTER TABLE pending_objects DROP COLUMN swept_at;
