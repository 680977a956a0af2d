-- The sweeper marks the intents it takes (and commits the mark) before it deletes their objects: a recording records
-- only under an unmarked intent, so a delete that fails after it removed the object (a timeout, an ambiguous answer)
-- can no longer let an upload record a document without its object. A marked intent stays until its object is
-- deleted for certain.
ALTER TABLE pending_objects ADD COLUMN swept_at timestamptz;
