-- The data table of the version before the current one, kept until the next
-- ingest: instances that have not yet switched (a notification on its way,
-- a request in flight) go on reading it.
ALTER TABLE chizu_layers ADD COLUMN IF NOT EXISTS previous_table TEXT;
