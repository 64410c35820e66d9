-- The login limiter's counters, shared by every instance: an attacker gets
-- the same number of guesses however many instances the load balancer
-- spreads them over. `kind` is pair (user name + address), user or addr.
CREATE TABLE IF NOT EXISTS chizu_login_limits (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  failures BIGINT NOT NULL,
  last_ms BIGINT NOT NULL,
  next_allowed_ms BIGINT NOT NULL,
  PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS chizu_login_limits_age ON chizu_login_limits (last_ms);
