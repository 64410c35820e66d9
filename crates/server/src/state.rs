//! What the server holds: the store, the current index of every layer, the tile cache.

use crate::web::Background;
use chizu_access::{AuditLog, AuthDb, Caller, LayerView, Limiter, View};
use chizu_core::Bounds;
use chizu_core::ServeMode;
use chizu_store::{LayerIndex, LayerSource, Store, StoreError};
use chizu_tiles::glyphs::{FontLibrary, FontStack};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The URL clients reach this server by (for TileJSON links behind a proxy).
    pub public_url: Option<String>,
    /// Upper bound of the tile cache, in bytes of cached tiles.
    pub tile_cache_bytes: u64,
    /// How often the store is asked for new layer versions.
    pub reload_interval: Duration,
    /// Mark the session cookie `Secure` (set when serving over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// The built web viewer (`viewer/dist`); `None` serves the API only.
    pub viewer_dir: Option<PathBuf>,
    /// MapLibre style templates (`styles/`).
    pub styles_dir: PathBuf,
    /// Fonts for label glyphs.
    pub fonts: Arc<FontLibrary>,
    /// Raster backgrounds under the city's layers, the first shown at first
    /// (the maps offer the others); none by default.
    pub background: Vec<Background>,
    /// What one request may ask of the server.
    pub limits: crate::limits::RequestLimits,
    /// Serve every layer this way, whatever its layer file says (`None`: as it says).
    pub serve_mode: Option<ServeMode>,
    /// Origins whose pages may embed the maps in a frame (the city's web
    /// site); none by default. Each is `scheme://host[:port]`, checked by
    /// [`crate::web::plain_origin`].
    pub frame_ancestors: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: None,
            tile_cache_bytes: 256 * 1024 * 1024,
            reload_interval: Duration::from_secs(2),
            secure_cookies: false,
            viewer_dir: None,
            styles_dir: PathBuf::from("styles"),
            fonts: Arc::new(FontLibrary::default()),
            background: Vec::new(),
            limits: crate::limits::RequestLimits::default(),
            serve_mode: None,
            frame_ancestors: Vec::new(),
        }
    }
}

impl CachedTile {
    /// Bytes ready to serve: gzipped once, tagged by content.
    pub fn of_bytes(raw: Vec<u8>) -> CachedTile {
        CachedTile::encoded(raw, true)
    }

    /// The tile and its etag, and its gzip when `gzip` (an empty `gzip`
    /// means: none made, send `raw`).
    pub fn encoded(raw: Vec<u8>, gzip: bool) -> CachedTile {
        use sha2::{Digest, Sha256};
        let gzip = if raw.is_empty() || !gzip {
            Vec::new()
        } else {
            crate::tiles::gzip(&raw)
        };
        let digest = Sha256::digest(&raw);
        let etag = format!(
            "\"{}\"",
            digest[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        CachedTile {
            raw: raw.into(),
            gzip: gzip.into(),
            etag,
            layer_features: Vec::new(),
            generalised: Generalised::default(),
        }
    }
}

pub type Layers = BTreeMap<String, Arc<dyn LayerSource>>;

/// A cached tile: its bytes, gzipped bytes, entity tag, and features per layer.
#[derive(Debug)]
pub struct CachedTile {
    pub raw: bytes::Bytes,
    pub gzip: bytes::Bytes,
    pub etag: String,
    pub layer_features: Vec<usize>,
    /// What the size budget changed, summed over the tile's layers.
    pub generalised: Generalised,
}

/// What the tile size budget left out of one tile (see `chizu_tiles`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Generalised {
    pub dropped_small: usize,
    /// Square Web Mercator metres of the features under a pixel.
    pub dropped_small_area: f64,
    pub dropped_for_budget: usize,
    pub extra_simplification_passes: u8,
}

impl Generalised {
    pub fn of(stats: &[chizu_tiles::LayerStats]) -> Generalised {
        let mut g = Generalised::default();
        for s in stats {
            g.dropped_small += s.dropped_small;
            g.dropped_small_area += s.dropped_small_area;
            g.dropped_for_budget += s.dropped_for_budget;
            g.extra_simplification_passes = g
                .extra_simplification_passes
                .max(s.extra_simplification_passes);
        }
        g
    }
}

/// The key of a cached tile: which layers, at which data version, seen through
/// which view (fields and row filter), and where. Never the URL alone: a tile
/// rendered for staff can only be found again by a caller with the same view,
/// and a new ingest can never be answered from a tile of the old data.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct TileKey {
    /// (layer id, data version, view fingerprint)
    pub layers: Vec<(String, u64, String)>,
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

/// Memory one cache entry holds besides its strings and buffers: moka's
/// entry, its hash-table slot and queue nodes, the `Arc`s and the structs
/// (about 780 bytes an entry were measured for empty tiles in all, of which
/// the key's and tile's own allocations are below 200).
const CACHE_ENTRY_OVERHEAD: usize = 600;

/// What a cached tile costs in memory, not only its bytes, so that the
/// configured cache size bounds the memory a flood of distinct (even empty)
/// tile URLs can make the server keep.
pub fn tile_weight(key: &TileKey, tile: &CachedTile) -> u32 {
    let key_bytes: usize = (key.layers.iter())
        .map(|(id, _, fingerprint)| 56 + id.len() + fingerprint.len())
        .sum();
    let tile_bytes = tile.raw.len()
        + tile.gzip.len()
        + tile.etag.len()
        + tile.layer_features.len() * std::mem::size_of::<usize>();
    (CACHE_ENTRY_OVERHEAD + key_bytes + tile_bytes).min(u32::MAX as usize) as u32
}

pub struct AppState {
    pub config: ServerConfig,
    pub store: Arc<dyn Store>,
    pub auth: AuthDb,
    pub audit: AuditLog,
    pub limiter: Limiter,
    /// The layers served and their generation (bumped at every swap).
    layers: RwLock<(u64, Arc<Layers>)>,
    /// Views by (layer generation, roles): row filters are parsed and compiled
    /// once per policy version, not once per request.
    views: moka::sync::Cache<(u64, std::collections::BTreeSet<String>), View>,
    pub tile_cache: moka::future::Cache<TileKey, Arc<CachedTile>>,
    /// Rendered glyph ranges by (resolved font stack, first code point).
    pub glyph_cache: moka::future::Cache<(FontStack, u32), Arc<CachedTile>>,
    /// Parsed style templates by name, with their files' modification times.
    pub style_templates:
        moka::sync::Cache<String, (Option<std::time::SystemTime>, Arc<serde_json::Value>)>,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The Content-Security-Policy header of every response.
    pub csp: axum::http::HeaderValue,
    /// Query work: time budget and slots.
    pub work: crate::work::WorkLimits,
    /// Tiles rendered at once (`RequestLimits::render_slots`).
    pub render_slots: tokio::sync::Semaphore,
    /// Requests in flight per client address.
    pub in_flight: crate::limits::InFlight,
    /// Set when the server is shutting down (`/ready` answers 503).
    pub draining: std::sync::atomic::AtomicBool,
    /// Feature count and bounds of a layer as one view sees it (row filters).
    summaries: moka::sync::Cache<(String, u64, String), (u64, Option<Bounds>)>,
    /// The ids a selection matched, by (layer, version, view fingerprint,
    /// selection key): the pages of one query after the first are read by id
    /// (clients such as GDAL page through whole layers with `offset`).
    pub selections: moka::sync::Cache<(String, u64, String, String), Arc<Vec<u64>>>,
}

impl AppState {
    /// Loads and indexes every layer of the store.
    pub async fn new(
        store: Arc<dyn Store>,
        auth: AuthDb,
        config: ServerConfig,
    ) -> Result<Arc<Self>, StoreError> {
        let tile_cache = moka::future::Cache::builder()
            .weigher(|k: &TileKey, v: &Arc<CachedTile>| tile_weight(k, v))
            .max_capacity(config.tile_cache_bytes)
            .support_invalidation_closures()
            .build();
        let audit = AuditLog::start(auth.db().clone());
        let limiter = Limiter::for_accounts(auth.db());
        // Built once: it goes on every response. Background origins are
        // checked to be plain host names, so the value is always a valid header.
        let csp = axum::http::HeaderValue::from_str(&crate::web::content_security_policy(
            &config.background,
            &config.frame_ancestors,
        ))
        .unwrap_or(axum::http::HeaderValue::from_static("default-src 'self'"));
        let work =
            crate::work::WorkLimits::new(config.limits.query_budget, config.limits.query_slots);
        let state = Arc::new(AppState {
            work,
            render_slots: tokio::sync::Semaphore::new(config.limits.render_slots.max(1)),
            in_flight: crate::limits::InFlight::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            config,
            store,
            auth,
            audit,
            limiter,
            layers: RwLock::new((0, Arc::new(Layers::new()))),
            views: moka::sync::Cache::new(1024),
            tile_cache,
            glyph_cache: moka::future::Cache::builder()
                .weigher(|_k: &(FontStack, u32), v: &Arc<CachedTile>| {
                    (v.raw.len() + v.gzip.len()).min(u32::MAX as usize) as u32
                })
                .max_capacity(64 * 1024 * 1024)
                .build(),
            style_templates: moka::sync::Cache::new(64),
            metrics: crate::metrics::Metrics::default(),
            csp,
            summaries: moka::sync::Cache::new(10_000),
            // Weighed in bytes of ids (and key): 64 MiB in all.
            selections: moka::sync::Cache::builder()
                .weigher(|k: &(String, u64, String, String), v: &Arc<Vec<u64>>| {
                    (200 + k.3.len() + v.len() * 8).min(u32::MAX as usize) as u32
                })
                .max_capacity(64 << 20)
                .support_invalidation_closures()
                .build(),
        });
        state.reload().await?;
        Ok(state)
    }

    /// The current layers. Cheap: a clone of an `Arc`.
    pub fn layers(&self) -> Arc<Layers> {
        self.generation_and_layers().1
    }

    fn generation_and_layers(&self) -> (u64, Arc<Layers>) {
        match self.layers.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The layers currently served and what `caller` may see of them, from
    /// the same generation.
    pub fn layers_and_view(&self, caller: &Caller) -> (Arc<Layers>, View) {
        let (generation, layers) = self.generation_and_layers();
        let view = self
            .views
            .get_with((generation, caller.roles.clone()), || {
                View::for_caller(caller, layers.values().map(|l| &l.meta().config))
            })
            .for_same_roles(caller);
        (layers, view)
    }

    /// Feature count and lon/lat bounds of a layer as `view` sees it: with a row
    /// filter, computed over the admitted rows only (once per version and
    /// view, off the async runtime), so neither number reveals rows the caller
    /// may not see.
    pub async fn summary(
        &self,
        source: &Arc<dyn LayerSource>,
        view: &LayerView,
    ) -> Result<(u64, Option<Bounds>), crate::ApiError> {
        let meta = source.meta();
        if view.rows.is_none() {
            return Ok((meta.feature_count, meta.bounds));
        }
        let key = (
            meta.config.id.clone(),
            meta.version,
            view.fingerprint.clone(),
        );
        if let Some(summary) = self.summaries.get(&key) {
            return Ok(summary);
        }
        let (source, view) = (source.clone(), view.clone());
        let summary = crate::work::background(move || {
            let mut bounds = Bounds::EMPTY;
            let mut count = 0;
            let push = crate::selection::view_pushdown(&source.meta().config, &view);
            source.scan(None, &push, &mut |f| {
                if view.admits(&f.properties) {
                    count += 1;
                    bounds.expand(&f.lonlat_bounds());
                }
                true
            })?;
            Ok::<_, StoreError>((count, (!bounds.is_empty()).then_some(bounds)))
        })
        .await
        .map_err(|e| crate::ApiError::internal("layer summary", e))??;
        self.summaries.insert(key, summary);
        Ok(summary)
    }

    /// Loads every layer whose version changed (or that is new) and swaps the
    /// set in one step: into memory (indexed off the async runtime), or, for a
    /// layer served from the database, its metadata and search index only.
    /// Returns the ids reloaded.
    pub async fn reload(&self) -> Result<Vec<String>, StoreError> {
        let versions = self.store.versions().await?;
        let current = self.layers();
        let mut next: Layers = Layers::new();
        let mut changed = Vec::new();
        for (id, version) in &versions {
            match current.get(id) {
                Some(source) if source.meta().version == *version => {
                    next.insert(id.clone(), source.clone());
                }
                _ => {
                    let source = self.open_layer(id).await?;
                    tracing::info!(
                        layer = %id,
                        version = source.meta().version,
                        features = source.meta().feature_count,
                        from_database = source.reads_database(),
                        "layer loaded"
                    );
                    next.insert(id.clone(), source);
                    changed.push(id.clone());
                }
            }
        }
        let removed = current.keys().any(|k| !versions.contains_key(k));
        if !changed.is_empty() || removed {
            let mut guard = match self.layers.write() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            *guard = (guard.0 + 1, Arc::new(next));
            drop(guard);
            self.drop_cached(&current);
        }
        Ok(changed)
    }

    /// Drops what the caches hold of layer versions no longer served (they
    /// would never be asked for again, only age out): their memory is free
    /// at once for the new versions.
    fn drop_cached(&self, before: &Layers) {
        let now = self.layers();
        let replaced: std::collections::BTreeSet<(String, u64)> = (before.iter())
            .filter(|(id, old)| {
                now.get(*id)
                    .is_none_or(|n| n.meta().version != old.meta().version)
            })
            .map(|(id, old)| (id.clone(), old.meta().version))
            .collect();
        if replaced.is_empty() {
            return;
        }
        let stale = Arc::new(replaced);
        let tiles = stale.clone();
        let dropped = self.tile_cache.invalidate_entries_if(move |k, _| {
            (k.layers.iter()).any(|(id, version, _)| tiles.contains(&(id.clone(), *version)))
        });
        let selections = stale.clone();
        let _ = self
            .selections
            .invalidate_entries_if(move |k, _| selections.contains(&(k.0.clone(), k.1)));
        if let Err(e) = dropped {
            tracing::warn!("cached tiles of replaced versions stay until evicted: {e}");
        }
    }

    /// One layer's current version, served as its layer file (or the
    /// server's `serve_mode`) says and the store can.
    async fn open_layer(&self, id: &str) -> Result<Arc<dyn LayerSource>, StoreError> {
        let meta = self.store.layer(id).await?;
        let mode = self.config.serve_mode.unwrap_or(meta.config.serve);
        if mode.from_database(meta.feature_count) {
            match self.store.open_source(id).await? {
                Some(source) => return Ok(source),
                None if mode == ServeMode::Database => tracing::warn!(
                    layer = %id,
                    "this store cannot serve layers from the database; loading it into memory"
                ),
                None => {}
            }
        }
        let snapshot = self.store.load(id).await?;
        let index = crate::work::background(move || LayerIndex::build(snapshot))
            .await
            .map_err(|e| StoreError::Corrupt {
                layer: id.to_string(),
                message: format!("indexing failed: {e}"),
            })?;
        Ok(Arc::new(index))
    }

    /// Keeps the layers current until the process ends: reloads when the
    /// store announces a change (PostgreSQL's LISTEN/NOTIFY, well under a
    /// second) and, as a fallback for missed or unsupported notifications,
    /// every `reload_interval`.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let state = Arc::clone(self);
        tokio::spawn(async move {
            let changed = Arc::new(tokio::sync::Notify::new());
            match state.store.watch(changed.clone()).await {
                Ok(true) => tracing::info!("listening for layer changes"),
                Ok(false) => {}
                Err(e) => tracing::warn!("no change notifications, polling only: {e}"),
            }
            let mut tick = tokio::time::interval(state.config.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = changed.notified() => {}
                }
                if let Err(e) = state.reload().await {
                    tracing::warn!(
                        "reloading layers failed, still serving the previous versions: {e}"
                    );
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_tile_weighs_what_it_holds() {
        let key = TileKey {
            layers: vec![("parcels".into(), 3, "0,1,2|*".into())],
            z: 16,
            x: 1,
            y: 2,
        };
        let empty = CachedTile::of_bytes(Vec::new());
        let weight = tile_weight(&key, &empty);
        // Not the 64 bytes it once counted: the entry, key and tag are memory too.
        assert!(
            weight as usize > CACHE_ENTRY_OVERHEAD + 7 + 7 + 26,
            "{weight}"
        );
        let full = CachedTile::of_bytes(vec![7; 10_000]);
        assert!(tile_weight(&key, &full) as usize >= weight as usize + 10_000);
    }
}
