//! One layer version as the routes ask about it: features for a tile, a scan
//! of an area for items, exports and point queries, one feature by id, and the
//! search index. Served from memory ([`LayerIndex`]) or from the database
//! ([`crate::PgStore::open_source`]); the server does not know which.
//!
//! The methods block (the database answers through the async runtime's
//! handle): they are called from the blocking pool, where the server runs
//! all feature work.

use crate::{IndexedFeature, LayerIndex, StoreError, StoredLayer};
use chizu_core::Bounds;
use chizu_core::search::{PlaceIndex, SearchIndex};
use chizu_core::tile::{lonlat_to_mercator, mercator_to_lonlat};
use std::borrow::Cow;

/// What a query may leave to the database: conditions it checks exactly as
/// chizu does, and the only columns needed (the others are never read).
/// Sources in memory ignore it: the server applies the view and the filter
/// to every row it is given, from either kind of source.
#[derive(Debug, Clone, Default)]
pub struct Pushdown {
    pub conditions: Vec<chizu_core::cql2::Pushed>,
    pub columns: Option<Vec<usize>>,
    /// The caller does not look at geometries (counting and listing ids
    /// by attributes): rows come with an empty one.
    pub skip_geometry: bool,
}

pub trait LayerSource: Send + Sync {
    fn meta(&self) -> &StoredLayer;

    /// Whether features are read from the database on each request.
    fn reads_database(&self) -> bool;

    /// Features whose bounding box meets `mercator` (a Web Mercator box), in
    /// id order, with their Web Mercator geometries (for tiles).
    fn in_mercator_box(
        &self,
        mercator: &Bounds,
        push: &Pushdown,
    ) -> Result<Vec<Cow<'_, IndexedFeature>>, StoreError>;

    /// Calls `visit` for every feature whose bounding box meets `lonlat` (every
    /// feature without it), in id order, until `visit` returns `false`.
    /// Memory stays flat: rows are visited as they are read.
    fn scan(
        &self,
        lonlat: Option<&Bounds>,
        push: &Pushdown,
        visit: &mut dyn FnMut(&IndexedFeature) -> bool,
    ) -> Result<(), StoreError>;

    /// One feature by id.
    fn feature(
        &self,
        id: u64,
        push: &Pushdown,
    ) -> Result<Option<Cow<'_, IndexedFeature>>, StoreError>;

    /// The features with these ids (ascending), in id order; missing ids are skipped.
    fn features(
        &self,
        ids: &[u64],
        push: &Pushdown,
    ) -> Result<Vec<Cow<'_, IndexedFeature>>, StoreError>;

    /// The values of the layer's searchable fields, normalised.
    fn search_index(&self) -> &SearchIndex;

    /// The districts, roads... of the layer's `place` fields, with extents.
    fn places(&self) -> &PlaceIndex;

    /// The feature a search hit points at (its `feature` position).
    fn search_hit(
        &self,
        position: u32,
        push: &Pushdown,
    ) -> Result<Option<Cow<'_, IndexedFeature>>, StoreError>;

    /// The layer's polygons simplified for tiles of zoom `z` (by feature id),
    /// when a generalisation is kept and built; tiles simplify the others.
    fn generalised(&self, _z: u8) -> Option<std::sync::Arc<crate::generalise::Generalisation>> {
        None
    }
}

/// A Web Mercator box in longitude/latitude (the inverse of [`mercator_box`]).
pub fn lonlat_box(mercator: &Bounds) -> Bounds {
    let (min_x, min_y) = mercator_to_lonlat(mercator.min_x, mercator.min_y);
    let (max_x, max_y) = mercator_to_lonlat(mercator.max_x, mercator.max_y);
    Bounds {
        min_x,
        min_y,
        max_x,
        max_y,
    }
}

/// A longitude/latitude box in Web Mercator metres.
pub fn mercator_box(lonlat: &Bounds) -> Bounds {
    let (min_x, min_y) = lonlat_to_mercator(lonlat.min_x, lonlat.min_y);
    let (max_x, max_y) = lonlat_to_mercator(lonlat.max_x, lonlat.max_y);
    Bounds {
        min_x,
        min_y,
        max_x,
        max_y,
    }
}

impl LayerSource for LayerIndex {
    fn meta(&self) -> &StoredLayer {
        &self.meta
    }

    fn reads_database(&self) -> bool {
        false
    }

    fn in_mercator_box(
        &self,
        mercator: &Bounds,
        _push: &Pushdown,
    ) -> Result<Vec<Cow<'_, IndexedFeature>>, StoreError> {
        Ok(self
            .query(mercator)
            .into_iter()
            .map(Cow::Borrowed)
            .collect())
    }

    fn scan(
        &self,
        lonlat: Option<&Bounds>,
        _push: &Pushdown,
        visit: &mut dyn FnMut(&IndexedFeature) -> bool,
    ) -> Result<(), StoreError> {
        match lonlat {
            Some(b) => {
                for i in self.query_positions(&mercator_box(b)) {
                    if !visit(&self.features[i]) {
                        break;
                    }
                }
            }
            None => {
                for f in self.features.iter() {
                    if !visit(f) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn feature(
        &self,
        id: u64,
        _push: &Pushdown,
    ) -> Result<Option<Cow<'_, IndexedFeature>>, StoreError> {
        // Features are held in id order.
        Ok((self.features.binary_search_by_key(&id, |f| f.id).ok())
            .map(|i| Cow::Borrowed(&self.features[i])))
    }

    fn features(
        &self,
        ids: &[u64],
        push: &Pushdown,
    ) -> Result<Vec<Cow<'_, IndexedFeature>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.feature(*id, push)?);
        }
        Ok(out)
    }

    fn places(&self) -> &PlaceIndex {
        &self.places
    }

    fn search_index(&self) -> &SearchIndex {
        &self.search
    }

    fn search_hit(
        &self,
        position: u32,
        _push: &Pushdown,
    ) -> Result<Option<Cow<'_, IndexedFeature>>, StoreError> {
        Ok(self.features.get(position as usize).map(Cow::Borrowed))
    }

    fn generalised(&self, z: u8) -> Option<std::sync::Arc<crate::generalise::Generalisation>> {
        LayerIndex::generalised(self, z)
    }
}
