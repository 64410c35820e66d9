//! The in-memory R-tree over one layer version, in Web Mercator for tiles.

use crate::generalise::{Generalisation, Generalisations};
use crate::{LayerSnapshot, StoredLayer};
use chizu_core::label::LabelPoint;
use chizu_core::search::{PlaceIndex, SearchIndex};
use chizu_core::tile::{lonlat_to_mercator, mercator_to_lonlat};
use chizu_core::{Bounds, TileCoord, Value};
use geo::{Geometry, MapCoords};
use geo_index::rtree::sort::HilbertSort;
use geo_index::rtree::{RTree, RTreeBuilder, RTreeIndex};
use std::sync::Arc;

/// A feature held by the index: its Web Mercator geometry, which tiles use as
/// it is and feature output turns back into longitude/latitude
/// ([`IndexedFeature::lonlat`]). One geometry instead of two halves the
/// memory of the coordinates; the way back is exact to about 1e-14 degrees
/// (a hundred-millionth of a millimetre; tested below), far under what any
/// output writes.
#[derive(Debug, Clone)]
pub struct IndexedFeature {
    pub id: u64,
    pub mercator: Geometry<f64>,
    /// A boxed slice, not a `Vec`: no spare capacity, one word less a feature.
    pub properties: Box<[Value]>,
    /// Where maps write the layer's `label` field for this feature, if here
    /// (decided per layer version: see `chizu_core::label`).
    /// Boxed: most layers have no labels, and a box costs them one word a
    /// feature instead of the point's 24 bytes.
    pub label: Option<Box<LabelPoint>>,
}

impl IndexedFeature {
    /// The geometry in longitude/latitude, as stored (to ~1e-14 degrees).
    pub fn lonlat(&self) -> Geometry<f64> {
        self.mercator.map_coords(|c| {
            let (x, y) = mercator_to_lonlat(c.x, c.y);
            geo::Coord { x, y }
        })
    }

    /// The longitude/latitude box of the geometry, without converting every
    /// vertex: the projection keeps the order of each axis.
    pub fn lonlat_bounds(&self) -> Bounds {
        let m = Bounds::of_geometry(&self.mercator);
        if m.is_empty() {
            return m;
        }
        crate::source::lonlat_box(&m)
    }
}

impl From<chizu_core::Feature> for IndexedFeature {
    /// Projects the stored geometry to Web Mercator (and keeps only that).
    fn from(f: chizu_core::Feature) -> IndexedFeature {
        let mercator = f.geometry.map_coords(|c| {
            let (x, y) = lonlat_to_mercator(c.x, c.y);
            geo::Coord { x, y }
        });
        IndexedFeature {
            id: f.id,
            mercator,
            properties: f.properties.into_boxed_slice(),
            label: None,
        }
    }
}

/// One layer version, bulk-loaded into an R-tree (keyed in Web Mercator metres).
pub struct LayerIndex {
    pub meta: StoredLayer,
    /// Shared with the threads that build its generalisations.
    pub features: Arc<Vec<IndexedFeature>>,
    /// The values of the `searchable` fields, for `/search`.
    pub search: SearchIndex,
    /// One entry per district, road... (the values of `place` fields).
    pub places: PlaceIndex,
    /// A packed Hilbert R-tree (flatbush layout) over the features' boxes in
    /// `f32`, rounded outward: 20 bytes a feature instead of rstar's ~70, and
    /// faster to walk. The boxes are a prefilter (a metre or two larger at
    /// most): tiles clip and selections test the exact geometry.
    tree: RTree<f32>,
    /// `features` position of each tree item (items are the non-empty boxes).
    tree_items: Vec<u32>,
    /// Polygons simplified per zoom, when the layer has polygons to simplify.
    generalisations: Option<Arc<Generalisations>>,
}

impl LayerIndex {
    /// Projects every feature to Web Mercator and bulk-loads the tree (O(n log n)).
    pub fn build(snapshot: LayerSnapshot) -> LayerIndex {
        let mut entries: Vec<([f32; 4], u32)> = Vec::with_capacity(snapshot.features.len());
        // A place's extent is taken from the stored coordinates, exactly as
        // PostgreSQL computes it, not from the way back out of Web Mercator:
        // every backend answers with the same numbers.
        let has_places = snapshot
            .meta
            .config
            .fields
            .iter()
            .any(|f| f.place.is_some());
        let mut stored_bounds = Vec::new();
        let mut features: Vec<IndexedFeature> = (snapshot.features.into_iter())
            .map(|f| {
                if has_places {
                    stored_bounds.push(Bounds::of_geometry(&f.geometry));
                }
                IndexedFeature::from(f)
            })
            .collect();
        if let Some(field) = (snapshot.meta.config.label.as_deref())
            .and_then(|name| snapshot.meta.config.field_index(name))
        {
            let mut placer = chizu_core::label::LabelPlacer::default();
            for f in &features {
                placer.push(&f.mercator, f.properties[field].as_text());
            }
            for (f, label) in features.iter_mut().zip(placer.finish()) {
                f.label = label.map(Box::new);
            }
        }
        for (i, f) in features.iter().enumerate() {
            let b = Bounds::of_geometry(&f.mercator);
            if !b.is_empty() {
                entries.push((outward_f32(&b), i as u32));
            }
        }
        // Each searchable field, and the field of its reading: a reading
        // is indexed as a value of the field it reads.
        let config = &snapshot.meta.config;
        let searchable: Vec<(usize, usize)> = (config.fields.iter().enumerate())
            .filter(|(_, f)| f.searchable)
            .flat_map(|(i, f)| {
                let reading = f.reading.as_deref().and_then(|r| config.field_index(r));
                std::iter::once((i, i)).chain(reading.map(|r| (i, r)))
            })
            .collect();
        let search = SearchIndex::build(features.iter().enumerate().flat_map(|(pos, f)| {
            searchable.iter().filter_map(move |(field, column)| {
                f.properties[*column]
                    .as_text()
                    .map(|text| (pos as u32, *field as u32, text))
            })
        }));
        let places = PlaceIndex::build(features.iter().zip(&stored_bounds).flat_map(|(f, b)| {
            (config.fields.iter().enumerate())
                .filter(|(_, def)| def.place.is_some())
                .filter_map(|(i, def)| {
                    let text = f.properties[i].as_text()?;
                    let reading = (def.reading.as_deref())
                        .and_then(|r| config.field_index(r))
                        .and_then(|r| f.properties[r].as_text());
                    Some((i as u32, text, reading, *b))
                })
        }));
        let generalisations =
            Generalisations::for_layer(&features, snapshot.meta.config.tiles.simplify);
        LayerIndex {
            meta: snapshot.meta,
            features: Arc::new(features),
            generalisations,
            search,
            places,
            tree: packed_tree(&entries),
            tree_items: entries.into_iter().map(|(_, i)| i).collect(),
        }
    }

    /// Features whose bounding box meets `b` (Web Mercator), in id order.
    pub fn query(&self, b: &Bounds) -> Vec<&IndexedFeature> {
        self.query_positions(b)
            .into_iter()
            .map(|i| &self.features[i])
            .collect()
    }

    /// Positions in `features` of those whose bounding box meets `b`, ascending.
    pub fn query_positions(&self, b: &Bounds) -> Vec<usize> {
        let [min_x, min_y, max_x, max_y] = outward_f32(b);
        let mut hits: Vec<usize> = (self.tree.search(min_x, min_y, max_x, max_y).into_iter())
            .map(|item| self.tree_items[item as usize] as usize)
            .collect();
        // Stable order: the same tile always encodes the same bytes (and ETag).
        hits.sort_unstable();
        hits
    }

    /// Features that may appear in `tile`: those meeting the tile grown by
    /// `buffer` tile units (of 4096), as the MVT encoder will clip them.
    pub fn tile_query(&self, tile: TileCoord, buffer: u32) -> Vec<&IndexedFeature> {
        self.query(&tile_box(tile, buffer))
    }

    /// The layer's polygons simplified for zoom `z`, when built (the first
    /// call for a zoom starts building it in the background).
    pub fn generalised(&self, z: u8) -> Option<Arc<Generalisation>> {
        self.generalisations.as_ref()?.at(z, &self.features)
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}

/// Bulk-loads the boxes (in the order given: the tree answers their positions).
fn packed_tree(entries: &[([f32; 4], u32)]) -> RTree<f32> {
    let mut builder = RTreeBuilder::<f32>::new(entries.len() as u32);
    for ([min_x, min_y, max_x, max_y], _) in entries {
        builder.add(*min_x, *min_y, *max_x, *max_y);
    }
    builder.finish::<HilbertSort>()
}

/// `b` in `f32`, every side rounded outward, so that the `f32` box holds `b`.
fn outward_f32(b: &Bounds) -> [f32; 4] {
    let down = |v: f64| {
        let r = v as f32;
        if f64::from(r) > v { r.next_down() } else { r }
    };
    let up = |v: f64| {
        let r = v as f32;
        if f64::from(r) < v { r.next_up() } else { r }
    };
    [down(b.min_x), down(b.min_y), up(b.max_x), up(b.max_y)]
}

/// The Web Mercator box of `tile` grown by `buffer` tile units (of 4096): what
/// the MVT encoder keeps of the features it is given.
pub fn tile_box(tile: TileCoord, buffer: u32) -> Bounds {
    let bounds = tile.bounds();
    let margin = (bounds.max_x - bounds.min_x) * buffer as f64 / 4096.0;
    bounds.buffered(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Web Mercator and back, over Japan from Okinotori to Wakkanai and at
    /// the city's own coordinates: within 1e-12 degrees (0.1 micrometre),
    /// a million times finer than 1 mm, the resolution of a z22 tile unit
    /// (9 mm) or any output.
    #[test]
    fn the_way_back_from_web_mercator_is_exact_to_far_below_a_millimetre() {
        let mut worst: f64 = 0.0;
        for i in 0..=200 {
            for j in 0..=200 {
                let lon = 122.0 + 32.0 * i as f64 / 200.0;
                let lat = 20.0 + 26.0 * j as f64 / 200.0;
                let f = IndexedFeature::from(chizu_core::Feature {
                    id: 1,
                    geometry: geo::Point::new(lon, lat).into(),
                    properties: vec![],
                });
                let Geometry::Point(p) = f.lonlat() else {
                    unreachable!()
                };
                worst = worst.max((p.x() - lon).abs()).max((p.y() - lat).abs());
            }
        }
        assert!(worst < 1e-12, "{worst}");
    }

    fn meets(a: &Bounds, b: &Bounds) -> bool {
        a.min_x <= b.max_x && b.min_x <= a.max_x && a.min_y <= b.max_y && b.min_y <= a.max_y
    }

    fn boxes_layer() -> StoredLayer {
        let path = std::path::Path::new("layers/boxes.toml");
        let roles = chizu_core::config::RoleSet::from_toml(path, "[roles]\npublic = \"all\"\n");
        let text = "id = \"boxes\"\ntitle = { ja = \"箱\", en = \"Boxes\" }\n\
            source = { path = \"b.geojson\", format = \"geojson\", crs = \"EPSG:4326\" }\n\
            geometry = \"polygon\"\nzoom = { min = 0, max = 22 }\nfields = [{ name = \"n\", type = \"integer\" }]\n[access]\nread = [\"public\"]\n";
        StoredLayer {
            config: chizu_core::config::LayerConfig::from_toml(path, text, &roles.unwrap())
                .unwrap(),
            version: 1,
            source_sha256: String::new(),
            ingested_at: String::new(),
            feature_count: 0,
            invalid_count: 0,
            repaired_count: 0,
            skipped_count: 0,
            bounds: None,
        }
    }

    /// The packed tree answers exactly what a scan of the boxes answers
    /// (plus, at most, boxes within an `f32` step of the query).
    #[test]
    fn the_packed_tree_finds_every_box_a_scan_finds() {
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let features: Vec<chizu_core::Feature> = (0..5_000)
            .map(|i| {
                let (x, y) = (129.9 + next() * 0.2, 33.0 + next() * 0.2);
                let (w, h) = (next() * 0.002, next() * 0.002);
                chizu_core::Feature {
                    id: i,
                    geometry: geo::Rect::new((x, y), (x + w, y + h)).to_polygon().into(),
                    properties: vec![chizu_core::Value::Int(i as i64)],
                }
            })
            .collect();
        let boxes: Vec<Bounds> = (features.iter())
            .map(|f| crate::source::mercator_box(&Bounds::of_geometry(&f.geometry)))
            .collect();
        let index = LayerIndex::build(LayerSnapshot {
            meta: boxes_layer(),
            features,
        });
        for _ in 0..300 {
            let (x, y) = (129.9 + next() * 0.2, 33.0 + next() * 0.2);
            let size = next() * 0.02;
            let q = crate::source::mercator_box(&Bounds {
                min_x: x,
                min_y: y,
                max_x: x + size,
                max_y: y + size,
            });
            let scan: Vec<usize> = (boxes.iter().enumerate())
                .filter(|(_, b)| meets(b, &q))
                .map(|(i, _)| i)
                .collect();
            let found = index.query_positions(&q);
            assert!(scan.iter().all(|i| found.binary_search(i).is_ok()));
            let step = 4.0; // metres: an f32 step at 2e7 m is 2 m, on each side
            assert!(found.iter().all(|i| meets(&boxes[*i].buffered(step), &q)));
        }
    }
}
