//! Where layers live: the [`LayerReads`] and [`LayerWrites`] traits, their
//! embedded GeoPackage backend and their PostgreSQL/PostGIS backend, and the
//! in-memory R-tree index that serves tiles and queries.

pub mod generalise;
mod gpkg_store;
mod index;
mod memory;
mod postgis;
mod source;

pub use gpkg_store::GpkgStore;
pub use index::{IndexedFeature, LayerIndex, tile_box};
pub use memory::MemoryStore;
pub use postgis::PgStore;
pub use source::{LayerSource, Pushdown, mercator_box};

use chizu_core::{Bounds, Feature, LayerConfig};
use chizu_io::IngestReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Database { path: String, message: String },
    #[error("layer `{0}` is not in the store")]
    UnknownLayer(String),
    #[error("layer `{0}`: its fields or geometry type changed; run `chizu ingest --layer {0}`")]
    SchemaChanged(String),
    #[error("layer `{0}` is being replaced by a new version; try again")]
    Replaced(String),
    #[error("layer `{layer}`: stored data is damaged: {message}")]
    Corrupt { layer: String, message: String },
    #[error(transparent)]
    Io(#[from] chizu_io::IoError),
}

/// One layer's current version as the store records it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredLayer {
    pub config: LayerConfig,
    /// Starts at 1 and grows by one with every successful ingest.
    pub version: u64,
    pub source_sha256: String,
    /// RFC 3339, UTC.
    pub ingested_at: String,
    pub feature_count: u64,
    pub invalid_count: u64,
    pub repaired_count: u64,
    pub skipped_count: u64,
    /// In longitude/latitude (EPSG:4326).
    pub bounds: Option<Bounds>,
}

/// A layer version with all its features (in EPSG:4326).
#[derive(Debug, Clone)]
pub struct LayerSnapshot {
    pub meta: StoredLayer,
    pub features: Vec<Feature>,
}

/// The read side of a place layers are kept: what the server and the
/// export and publish commands ask. Object-safe, so that they hold an
/// `Arc<dyn Store>` and never ask which backend it is.
#[async_trait::async_trait]
pub trait LayerReads: Send + Sync {
    /// Every layer with its current version.
    async fn layers(&self) -> Result<Vec<StoredLayer>, StoreError>;

    /// `layer id -> version`, cheap enough to poll.
    async fn versions(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// The recorded metadata of one layer's current version.
    async fn layer(&self, id: &str) -> Result<StoredLayer, StoreError>;

    /// A layer's current version with every feature.
    async fn load(&self, id: &str) -> Result<LayerSnapshot, StoreError>;

    /// Sends every feature of a layer's current version into `sink` as rows
    /// are read (memory does not grow with the layer); the metadata returned
    /// belongs to the same version. Stops early, without error, when the
    /// receiver is dropped.
    async fn stream_features(
        &self,
        id: &str,
        sink: tokio::sync::mpsc::Sender<Feature>,
    ) -> Result<StoredLayer, StoreError>;

    /// Wakes `changed` whenever a new layer version or policy is committed,
    /// by this process or another. Returns `false` when the backend cannot
    /// push changes (then the caller polls [`LayerReads::versions`]).
    async fn watch(&self, changed: Arc<tokio::sync::Notify>) -> Result<bool, StoreError> {
        let _ = changed;
        Ok(false)
    }

    /// Where the store is, for messages (never a password).
    fn location(&self) -> String;

    /// The layer's current version served from the database on each request,
    /// when this backend can (`None`: load it into memory).
    async fn open_source(&self, id: &str) -> Result<Option<Arc<dyn LayerSource>>, StoreError> {
        let _ = id;
        Ok(None)
    }
}

/// The write side: new versions of layers and of their policies.
#[async_trait::async_trait]
pub trait LayerWrites: Send + Sync {
    /// Replaces a layer atomically: readers see the old version or the new one,
    /// never a mix; on any error (or if the process dies) the old version is
    /// untouched. Returns the new version.
    async fn replace_layer(
        &self,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError>;

    /// Replaces a layer's configuration without re-reading its source, when only
    /// policy and presentation changed (access, titles, zooms, tiling). The field
    /// list and geometry must be unchanged; the version grows so that caches and
    /// running servers pick the new policy up. Returns the new version.
    async fn update_config(&self, config: &LayerConfig) -> Result<u64, StoreError>;

    /// Closes the store's connections.
    async fn close(&self);
}

/// A place layers are kept: both sides, one backend.
pub trait Store: LayerReads + LayerWrites {}
impl<T: LayerReads + LayerWrites> Store for T {}

/// Where a store is: a GeoPackage file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Gpkg(std::path::PathBuf),
    Postgres(String),
}

impl StoreLocation {
    /// `postgres://...` or `postgresql://...` is a database; anything else a file.
    pub fn parse(s: &str) -> StoreLocation {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            StoreLocation::Postgres(s.to_string())
        } else {
            StoreLocation::Gpkg(s.into())
        }
    }

    /// Opens the store; `create` makes a missing GeoPackage file.
    pub async fn open(&self, create: bool) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreLocation::Gpkg(path) => Arc::new(GpkgStore::open(path, create).await?),
            StoreLocation::Postgres(url) => Arc::new(PgStore::connect(url).await?),
        })
    }
}

impl std::str::FromStr for StoreLocation {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(StoreLocation::parse(s))
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Gpkg(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// A connection URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Refuses a configuration whose fields or geometry differ from the stored
/// one (`stored` is the stored configuration as JSON): such a change needs
/// the source read again.
pub(crate) fn check_same_schema(stored: &str, config: &LayerConfig) -> Result<(), StoreError> {
    let stored: LayerConfig = serde_json::from_str(stored).map_err(|e| StoreError::Corrupt {
        layer: config.id.clone(),
        message: format!("layer configuration: {e}"),
    })?;
    let schema = |c: &LayerConfig| {
        (c.fields.iter())
            .map(|f| (f.name.clone(), f.ty))
            .collect::<Vec<_>>()
    };
    if schema(&stored) != schema(config) || stored.geometry != config.geometry {
        return Err(StoreError::SchemaChanged(config.id.clone()));
    }
    Ok(())
}

/// Reads a row's attribute columns, from column `first` on, as the layer's
/// fields say (either backend: the column types are the same by name).
pub(crate) fn decode_properties<R>(
    row: &R,
    fields: &[chizu_core::FieldDef],
    first: usize,
) -> Result<Vec<chizu_core::Value>, String>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use chizu_core::{FieldType, Value};
    let mut properties = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let c = first + i;
        let v = match field.ty {
            FieldType::Text | FieldType::Date => row
                .try_get::<Option<&str>, _>(c)
                .map(|v| v.map(|text| Value::Text(text.into()))),
            FieldType::Integer => row.try_get::<Option<i64>, _>(c).map(|v| v.map(Value::Int)),
            FieldType::Float => row
                .try_get::<Option<f64>, _>(c)
                .map(|v| v.map(Value::Float)),
            FieldType::Boolean => row
                .try_get::<Option<bool>, _>(c)
                .map(|v| v.map(Value::Bool)),
        }
        .map_err(|e| format!("field `{}`: {e}", field.name))?;
        properties.push(v.unwrap_or(Value::Null));
    }
    Ok(properties)
}
