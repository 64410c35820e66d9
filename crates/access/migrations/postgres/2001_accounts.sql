-- chizu's accounts in PostgreSQL: shared by every instance, so a session
-- started on one works on all and a logout, revocation or disabled user
-- takes effect on all at once. Integers as in the SQLite accounts file
-- (the same SQL serves both).
CREATE TABLE IF NOT EXISTS chizu_users (
  name TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  roles TEXT NOT NULL,
  disabled BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS chizu_sessions (
  id_hash TEXT PRIMARY KEY,
  "user" TEXT NOT NULL REFERENCES chizu_users(name),
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS chizu_sessions_expiry ON chizu_sessions (expires_at);
CREATE TABLE IF NOT EXISTS chizu_tokens (
  id BIGSERIAL PRIMARY KEY,
  token_hash TEXT UNIQUE NOT NULL,
  "user" TEXT NOT NULL REFERENCES chizu_users(name),
  label TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chizu_audit (
  id BIGSERIAL PRIMARY KEY,
  at BIGINT NOT NULL,
  "user" TEXT NOT NULL,
  layer TEXT NOT NULL,
  via TEXT NOT NULL,
  area TEXT NOT NULL,
  features BIGINT NOT NULL,
  fields TEXT NOT NULL
);
CREATE OR REPLACE FUNCTION chizu_audit_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
DROP TRIGGER IF EXISTS chizu_audit_no_change ON chizu_audit;
CREATE TRIGGER chizu_audit_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON chizu_audit
  FOR EACH STATEMENT EXECUTE FUNCTION chizu_audit_append_only();
