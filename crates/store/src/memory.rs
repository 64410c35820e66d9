//! A store in memory: the same traits as the GeoPackage and PostGIS backends,
//! for router tests that run in process and for tools that need no file.

use crate::{LayerReads, LayerSnapshot, LayerWrites, StoreError, StoredLayer};
use chizu_core::{Bounds, Feature, LayerConfig};
use chizu_io::IngestReport;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Default)]
pub struct MemoryStore {
    layers: RwLock<BTreeMap<String, Arc<LayerSnapshot>>>,
    watchers: Mutex<Vec<Arc<tokio::sync::Notify>>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn snapshot(&self, id: &str) -> Result<Arc<LayerSnapshot>, StoreError> {
        let layers = self.layers.read().unwrap_or_else(|p| p.into_inner());
        layers
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::UnknownLayer(id.to_string()))
    }

    /// Swaps in a new version and tells the watchers, as a commit does.
    fn commit(&self, snapshot: LayerSnapshot) -> u64 {
        let version = snapshot.meta.version;
        let id = snapshot.meta.config.id.clone();
        let mut layers = self.layers.write().unwrap_or_else(|p| p.into_inner());
        layers.insert(id, Arc::new(snapshot));
        drop(layers);
        for watcher in self
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            watcher.notify_one();
        }
        version
    }

    fn next_version(&self, id: &str) -> u64 {
        self.snapshot(id).map_or(0, |s| s.meta.version) + 1
    }
}

#[async_trait::async_trait]
impl LayerReads for MemoryStore {
    async fn layers(&self) -> Result<Vec<StoredLayer>, StoreError> {
        let layers = self.layers.read().unwrap_or_else(|p| p.into_inner());
        Ok(layers.values().map(|s| s.meta.clone()).collect())
    }

    async fn versions(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let layers = self.layers.read().unwrap_or_else(|p| p.into_inner());
        Ok((layers.iter())
            .map(|(id, s)| (id.clone(), s.meta.version))
            .collect())
    }

    async fn layer(&self, id: &str) -> Result<StoredLayer, StoreError> {
        Ok(self.snapshot(id)?.meta.clone())
    }

    async fn load(&self, id: &str) -> Result<LayerSnapshot, StoreError> {
        Ok(self.snapshot(id)?.as_ref().clone())
    }

    async fn stream_features(
        &self,
        id: &str,
        sink: tokio::sync::mpsc::Sender<Feature>,
    ) -> Result<StoredLayer, StoreError> {
        let snapshot = self.snapshot(id)?;
        for feature in &snapshot.features {
            if sink.send(feature.clone()).await.is_err() {
                break;
            }
        }
        Ok(snapshot.meta.clone())
    }

    async fn watch(&self, changed: Arc<tokio::sync::Notify>) -> Result<bool, StoreError> {
        (self.watchers.lock().unwrap_or_else(|p| p.into_inner())).push(changed);
        Ok(true)
    }

    fn location(&self) -> String {
        "memory".into()
    }
}

#[async_trait::async_trait]
impl LayerWrites for MemoryStore {
    async fn replace_layer(
        &self,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError> {
        let mut bounds = Bounds::EMPTY;
        for f in features {
            bounds.expand(&Bounds::of_geometry(&f.geometry));
        }
        let meta = StoredLayer {
            config: config.clone(),
            version: self.next_version(&config.id),
            source_sha256: source_sha256.to_string(),
            ingested_at: chizu_core::time::iso_datetime(chizu_core::time::unix_now()),
            feature_count: features.len() as u64,
            invalid_count: report.invalid.len() as u64,
            repaired_count: report.repaired as u64,
            skipped_count: report.skipped as u64,
            bounds: (!bounds.is_empty()).then_some(bounds),
        };
        Ok(self.commit(LayerSnapshot {
            meta,
            features: features.to_vec(),
        }))
    }

    async fn update_config(&self, config: &LayerConfig) -> Result<u64, StoreError> {
        let current = self.snapshot(&config.id)?;
        let stored =
            serde_json::to_string(&current.meta.config).map_err(|e| StoreError::Corrupt {
                layer: config.id.clone(),
                message: e.to_string(),
            })?;
        crate::check_same_schema(&stored, config)?;
        let mut snapshot = current.as_ref().clone();
        snapshot.meta.config = config.clone();
        snapshot.meta.version += 1;
        Ok(self.commit(snapshot))
    }

    async fn close(&self) {}
}
