//! Where layers live: the [`Store`] trait, its embedded GeoPackage backend, and
//! the in-memory R-tree index that serves tiles and queries.

mod gpkg_store;
mod index;

pub use gpkg_store::GpkgStore;
pub use index::{IndexedFeature, LayerIndex};

use chizu_core::{Bounds, Feature, LayerConfig};
use chizu_io::IngestReport;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Database { path: String, message: String },
    #[error("layer `{0}` is not in the store")]
    UnknownLayer(String),
    #[error("layer `{0}`: its fields or geometry type changed; run `chizu ingest --layer {0}`")]
    SchemaChanged(String),
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

/// A place layers are kept. Object-safe so that the server holds an
/// `Arc<dyn Store>` and does not care whether it is a GeoPackage or PostGIS.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Every layer with its current version.
    async fn layers(&self) -> Result<Vec<StoredLayer>, StoreError>;

    /// `layer id -> version`, cheap enough to poll.
    async fn versions(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// A layer's current version with every feature.
    async fn load(&self, id: &str) -> Result<LayerSnapshot, StoreError>;

    /// Replaces a layer atomically: readers see the old version or the new one,
    /// never a mix; on any error the old version is untouched. Returns the new version.
    async fn replace_layer(
        &self,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError>;
}
