//! The embedded backend: one GeoPackage file that QGIS opens as it is.

use crate::{LayerReads, LayerSnapshot, LayerWrites, StoreError, StoredLayer};
use chizu_core::{Bounds, Feature, LayerConfig};
use chizu_io::gpkg::{self, TableSpec, quote};
use chizu_io::{IngestReport, STORAGE_EPSG};
use sqlx::{Connection, Row, SqlitePool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// chizu's own bookkeeping, beside the GeoPackage tables. One row per layer.
const META_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS chizu_layers (
  id TEXT PRIMARY KEY NOT NULL,
  version INTEGER NOT NULL,
  config TEXT NOT NULL,
  source_path TEXT NOT NULL,
  source_sha256 TEXT NOT NULL,
  ingested_at TEXT NOT NULL,
  feature_count INTEGER NOT NULL,
  invalid_count INTEGER NOT NULL,
  repaired_count INTEGER NOT NULL,
  skipped_count INTEGER NOT NULL
);
"#;

pub struct GpkgStore {
    path: PathBuf,
    pool: SqlitePool,
}

impl GpkgStore {
    /// Opens a store, creating the file if `create` is set.
    pub async fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        GpkgStore::open_with(path, create, true).await
    }

    /// Opens a store; `wal: false` writes it without a write-ahead log, so
    /// the file is complete by itself whenever a command has returned (for
    /// a store that is copied elsewhere, as `chizu publish` writes).
    pub async fn open_with(path: &Path, create: bool, wal: bool) -> Result<Self, StoreError> {
        if !create && !path.exists() {
            return Err(StoreError::Database {
                path: path.display().to_string(),
                message: "no such file (run `chizu ingest` first)".into(),
            });
        }
        let pool = gpkg::open_pool_with(path, create, wal).await?;
        let store = GpkgStore {
            path: path.to_path_buf(),
            pool,
        };
        sqlx::raw_sql(META_SCHEMA)
            .execute(&store.pool)
            .await
            .map_err(|e| store.db(e))?;
        Ok(store)
    }

    /// The connection pool of the map file.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, e: sqlx::Error) -> StoreError {
        StoreError::Database {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn row_to_layer(&self, row: &sqlx::sqlite::SqliteRow) -> Result<StoredLayer, StoreError> {
        let id: String = row.try_get("id").map_err(|e| self.db(e))?;
        let config_json: String = row.try_get("config").map_err(|e| self.db(e))?;
        let config: LayerConfig =
            serde_json::from_str(&config_json).map_err(|e| StoreError::Corrupt {
                layer: id.clone(),
                message: format!("layer configuration: {e}"),
            })?;
        let get =
            |name: &str| -> Result<i64, StoreError> { row.try_get(name).map_err(|e| self.db(e)) };
        let bounds = match (
            row.try_get::<Option<f64>, _>("min_x").ok().flatten(),
            row.try_get::<Option<f64>, _>("min_y").ok().flatten(),
            row.try_get::<Option<f64>, _>("max_x").ok().flatten(),
            row.try_get::<Option<f64>, _>("max_y").ok().flatten(),
        ) {
            (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) => Some(Bounds {
                min_x,
                min_y,
                max_x,
                max_y,
            }),
            _ => None,
        };
        Ok(StoredLayer {
            config,
            version: get("version")? as u64,
            source_sha256: row.try_get("source_sha256").map_err(|e| self.db(e))?,
            ingested_at: row.try_get("ingested_at").map_err(|e| self.db(e))?,
            feature_count: get("feature_count")? as u64,
            invalid_count: get("invalid_count")? as u64,
            repaired_count: get("repaired_count")? as u64,
            skipped_count: get("skipped_count")? as u64,
            bounds,
        })
    }

    async fn layer_row<'e, E>(&self, executor: E, id: &str) -> Result<StoredLayer, StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        let row = sqlx::query(LAYER_SELECT_ONE)
            .bind(id)
            .fetch_optional(executor)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| StoreError::UnknownLayer(id.to_string()))?;
        self.row_to_layer(&row)
    }
}

/// Every feature row of a layer, in the column order `decode_row` reads.
fn features_sql(meta: &StoredLayer) -> String {
    let columns: String = meta
        .config
        .fields
        .iter()
        .map(|f| format!(", {}", quote(&f.name)))
        .collect();
    format!(
        "SELECT fid, geom{columns} FROM {} ORDER BY fid",
        quote(&meta.config.id)
    )
}

const LAYER_SELECT: &str = "SELECT l.*, c.min_x, c.min_y, c.max_x, c.max_y FROM chizu_layers l LEFT JOIN gpkg_contents c ON c.table_name = l.id";
const LAYER_SELECT_ONE: &str = "SELECT l.*, c.min_x, c.min_y, c.max_x, c.max_y FROM chizu_layers l LEFT JOIN gpkg_contents c ON c.table_name = l.id WHERE l.id = ?";

#[async_trait::async_trait]
impl LayerReads for GpkgStore {
    async fn layers(&self) -> Result<Vec<StoredLayer>, StoreError> {
        let rows = sqlx::query(&format!("{LAYER_SELECT} ORDER BY l.id"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        rows.iter().map(|r| self.row_to_layer(r)).collect()
    }

    async fn versions(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, version FROM chizu_layers")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        Ok(rows.into_iter().map(|(id, v)| (id, v as u64)).collect())
    }

    async fn load(&self, id: &str) -> Result<LayerSnapshot, StoreError> {
        // One read transaction: the metadata and the rows belong to the same version.
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        let mut tx = conn.begin().await.map_err(|e| self.db(e))?;
        let meta = self.layer_row(&mut *tx, id).await?;
        // Rows are decoded as they are read, not held all at once beside
        // their features: the server's peak while loading is what it keeps.
        let sql = features_sql(&meta);
        let mut features = Vec::with_capacity(meta.feature_count as usize);
        {
            use futures::TryStreamExt;
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(|e| self.db(e))? {
                features.push(self.decode_row(id, &meta, &row)?);
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(LayerSnapshot { meta, features })
    }

    async fn layer(&self, id: &str) -> Result<StoredLayer, StoreError> {
        self.layer_row(&self.pool, id).await
    }

    async fn stream_features(
        &self,
        id: &str,
        sink: tokio::sync::mpsc::Sender<Feature>,
    ) -> Result<StoredLayer, StoreError> {
        self.stream_rows(id, sink).await
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

#[async_trait::async_trait]
impl LayerWrites for GpkgStore {
    async fn replace_layer(
        &self,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        // BEGIN IMMEDIATE takes the write lock up front: two ingests of one store
        // queue instead of failing half-way. Readers (WAL) keep the old version.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        let result = self
            .write_version(&mut conn, config, features, report, source_sha256)
            .await;
        match result {
            Ok(version) => {
                sqlx::query("COMMIT")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.db(e))?;
                Ok(version)
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }

    async fn update_config(&self, config: &LayerConfig) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        let result = async {
            let row: Option<(i64, String)> =
                sqlx::query_as("SELECT version, config FROM chizu_layers WHERE id = ?")
                    .bind(&config.id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| self.db(e))?;
            let (version, stored) =
                row.ok_or_else(|| StoreError::UnknownLayer(config.id.clone()))?;
            crate::check_same_schema(&stored, config)?;
            let json = serde_json::to_string(config).map_err(|e| StoreError::Corrupt {
                layer: config.id.clone(),
                message: e.to_string(),
            })?;
            sqlx::query("UPDATE chizu_layers SET config = ?, version = ? WHERE id = ?")
                .bind(json)
                .bind(version + 1)
                .bind(&config.id)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.db(e))?;
            Ok((version + 1) as u64)
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::query(end)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        result
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

impl GpkgStore {
    async fn stream_rows(
        &self,
        id: &str,
        sink: tokio::sync::mpsc::Sender<Feature>,
    ) -> Result<StoredLayer, StoreError> {
        use futures::TryStreamExt;
        // One read transaction, as in `load`: an ingest committing meanwhile
        // cannot pair this version's metadata with the next version's rows.
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        let mut tx = conn.begin().await.map_err(|e| self.db(e))?;
        let meta = self.layer_row(&mut *tx, id).await?;
        let sql = features_sql(&meta);
        {
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(|e| self.db(e))? {
                let feature = self.decode_row(id, &meta, &row)?;
                if sink.send(feature).await.is_err() {
                    break;
                }
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(meta)
    }

    fn decode_row(
        &self,
        id: &str,
        meta: &StoredLayer,
        row: &sqlx::sqlite::SqliteRow,
    ) -> Result<Feature, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt {
            layer: id.to_string(),
            message,
        };
        let fid: i64 = row.try_get(0).map_err(|e| self.db(e))?;
        let blob: Vec<u8> = row.try_get(1).map_err(|e| self.db(e))?;
        let geometry =
            gpkg::decode_blob(&blob).map_err(|e| corrupt(format!("feature {fid}: {e}")))?;
        let properties = crate::decode_properties(row, &meta.config.fields, 2)
            .map_err(|e| corrupt(format!("feature {fid} {e}")))?;
        Ok(Feature {
            id: fid as u64,
            geometry,
            properties,
        })
    }

    async fn write_version(
        &self,
        conn: &mut sqlx::SqliteConnection,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError> {
        let previous: Option<i64> =
            sqlx::query_scalar("SELECT version FROM chizu_layers WHERE id = ?")
                .bind(&config.id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.db(e))?;
        let version = previous.unwrap_or(0) + 1;
        let description = config
            .description
            .as_ref()
            .map(|d| d.ja.clone())
            .unwrap_or_default();
        let spec = TableSpec {
            table: &config.id,
            title: &config.title.ja,
            description: &description,
            srs_id: STORAGE_EPSG,
            kind: config.geometry,
            fields: &config.fields,
        };
        gpkg::write_table(conn, &spec, features).await?;
        let config_json = serde_json::to_string(config).map_err(|e| StoreError::Corrupt {
            layer: config.id.clone(),
            message: e.to_string(),
        })?;
        sqlx::query("INSERT OR REPLACE INTO chizu_layers VALUES (?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ','now'), ?, ?, ?, ?)")
                .bind(&config.id)
                .bind(version)
                .bind(config_json)
                .bind(config.source.path.display().to_string())
                .bind(source_sha256)
                .bind(features.len() as i64)
                .bind(report.invalid.len() as i64)
                .bind(report.repaired as i64)
                .bind(report.skipped as i64)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.db(e))?;
        Ok::<u64, StoreError>(version as u64)
    }
}
