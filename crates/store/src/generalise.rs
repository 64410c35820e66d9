//! Per-zoom generalisations of an in-memory layer's polygons: each polygon
//! the tile encoder would simplify, simplified once per layer version and
//! zoom, on a background thread, the first time a tile of that zoom is asked
//! for. Until it is ready, tiles simplify as they are rendered; after, they
//! take the stored shapes. Both compute the same thing
//! ([`chizu_core::tile::simplify_for_zoom`]): a tile is the same bytes either
//! way, and the same as a database layer's.
//!
//! Measured on the bench city, the topology-preserving simplification of the
//! 2,500 zoning and hazard polygons was a third of a composite z14 tile's
//! time: every tile simplified every polygon it touched, whole.

use crate::index::IndexedFeature;
use chizu_core::tile::{simplifies, simplify_for_zoom};
use geo::{Geometry, MultiPolygon};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Zooms above this are simplified as tiles are rendered: the tolerance is
/// centimetres, little is removed, and a copy per zoom would cost memory.
pub const MAX_ZOOM: u8 = 16;

/// The simplified geometry of each feature that has one, by feature id.
pub type Generalisation = HashMap<u64, Geometry<f64>>;

/// One slot a zoom: empty, being built, or built.
pub struct Generalisations {
    tolerance: f64,
    zooms: Vec<(AtomicBool, OnceLock<Arc<Generalisation>>)>,
}

impl Generalisations {
    /// For a layer whose tiles simplify with `tolerance` (tile units);
    /// `None` when none of `features` would be simplified.
    pub fn for_layer(features: &[IndexedFeature], tolerance: f64) -> Option<Arc<Generalisations>> {
        let any = tolerance > 0.0 && features.iter().any(|f| simplified(&f.mercator).is_some());
        any.then(|| {
            Arc::new(Generalisations {
                tolerance,
                zooms: (0..=MAX_ZOOM)
                    .map(|_| (AtomicBool::new(false), OnceLock::new()))
                    .collect(),
            })
        })
    }

    /// The generalisation of zoom `z` if built; if not, starts building it
    /// (once) on a thread of its own, below the threads that serve.
    pub fn at(
        self: &Arc<Self>,
        z: u8,
        features: &Arc<Vec<IndexedFeature>>,
    ) -> Option<Arc<Generalisation>> {
        let (started, built) = self.zooms.get(z as usize)?;
        if let Some(g) = built.get() {
            return Some(g.clone());
        }
        if !started.swap(true, Ordering::AcqRel) {
            let (this, features) = (self.clone(), features.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("generalise-z{z}"))
                .spawn(move || {
                    chizu_core::priority::lower_this_thread();
                    let g = this.build(z, &features);
                    let _ = this.zooms[z as usize].1.set(Arc::new(g));
                });
            if spawned.is_err() {
                // No thread now: a later tile tries again.
                started.store(false, Ordering::Release);
            }
        }
        None
    }

    fn build(&self, z: u8, features: &[IndexedFeature]) -> Generalisation {
        (features.iter())
            .filter_map(|f| {
                let polygons = simplified(&f.mercator)?;
                let shapes: Vec<_> = (polygons.iter())
                    .map(|p| {
                        if simplifies(p) {
                            simplify_for_zoom(p, z, self.tolerance)
                        } else {
                            p.clone()
                        }
                    })
                    .collect();
                let geometry = match &f.mercator {
                    Geometry::Polygon(_) => shapes.into_iter().next()?.into(),
                    _ => MultiPolygon(shapes).into(),
                };
                Some((f.id, geometry))
            })
            .collect()
    }
}

/// The polygons of `g` when the encoder would simplify one of them.
fn simplified(g: &Geometry<f64>) -> Option<&[geo::Polygon<f64>]> {
    let polygons = match g {
        Geometry::Polygon(p) => std::slice::from_ref(p),
        Geometry::MultiPolygon(mp) => &mp.0[..],
        _ => return None,
    };
    polygons.iter().any(simplifies).then_some(polygons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn star(id: u64, points: usize) -> IndexedFeature {
        let ring: Vec<(f64, f64)> = (0..points)
            .map(|i| {
                let a = i as f64 / points as f64 * std::f64::consts::TAU;
                let r = 300.0 + (i % 7) as f64 * 0.5;
                (14_470_000.0 + r * a.cos(), 3_900_000.0 + r * a.sin())
            })
            .collect();
        IndexedFeature {
            id,
            mercator: geo::Polygon::new(ring.into(), vec![]).into(),
            properties: Box::new([]),
            label: None,
        }
    }

    /// Built once, on its own thread, and then the very shapes the encoder
    /// would compute; quadrilaterals and layers without polygons get none.
    #[test]
    fn a_zoom_is_built_once_in_the_background_as_the_encoder_would() {
        let features = Arc::new(vec![star(1, 400), star(2, 60)]);
        let g = Generalisations::for_layer(&features, 4.0).unwrap();
        let mut built = g.at(12, &features);
        for _ in 0..200 {
            if built.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            built = g.at(12, &features);
        }
        let built = built.expect("built within two seconds");
        for f in features.iter() {
            let Geometry::Polygon(p) = &f.mercator else {
                unreachable!()
            };
            let expected: Geometry<f64> = simplify_for_zoom(p, 12, 4.0).into();
            assert_eq!(built[&f.id], expected);
            let Geometry::Polygon(s) = &built[&f.id] else {
                unreachable!()
            };
            assert!(s.exterior().0.len() < p.exterior().0.len());
        }
        assert!(g.at(MAX_ZOOM + 1, &features).is_none());

        let lot = IndexedFeature {
            mercator: geo::Rect::new((0.0, 0.0), (10.0, 10.0)).to_polygon().into(),
            ..star(3, 4)
        };
        assert!(Generalisations::for_layer(&[lot], 4.0).is_none());
        assert!(Generalisations::for_layer(&features, 0.0).is_none());
    }
}
