-- chizu's layer catalog and the schema its data tables live in.
-- Each layer version is one table `chizu_data.<data_table>` with a GiST
-- index on its geometry (EPSG:4326); the catalog row names the current one.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS chizu_data;
CREATE TABLE IF NOT EXISTS chizu_layers (
  id TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  data_table TEXT NOT NULL UNIQUE,
  config TEXT NOT NULL,
  source_path TEXT NOT NULL,
  source_sha256 TEXT NOT NULL,
  ingested_at TEXT NOT NULL,
  feature_count BIGINT NOT NULL,
  invalid_count BIGINT NOT NULL,
  repaired_count BIGINT NOT NULL,
  skipped_count BIGINT NOT NULL,
  min_x DOUBLE PRECISION,
  min_y DOUBLE PRECISION,
  max_x DOUBLE PRECISION,
  max_y DOUBLE PRECISION
);
