-- Why personal data was exported (利用目的), as the staff member said.
ALTER TABLE chizu_audit ADD COLUMN IF NOT EXISTS purpose TEXT NOT NULL DEFAULT '';
