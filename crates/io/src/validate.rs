//! Geometry validation (OGC simple-features rules, via geo's `Validation`) and repair.
//!
//! geo tests a ring for self-intersection by comparing every segment with
//! every other: 12.8 s of CPU for one ring of 40,000 vertices. Polygons with
//! a large ring are checked here instead with the same rules, the segment
//! pairs found through an R-tree (near-linear: `benches/core_paths.rs`
//! measures an 80,000-vertex ring).

use geo::coordinate_position::CoordPos;
use geo::dimensions::Dimensions;
use geo::{
    BooleanOps, Geometry, Intersects, Line, LineString, MultiLineString, MultiPoint, MultiPolygon,
    Polygon, PreparedGeometry, Relate, RemoveRepeatedPoints, Validation,
};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

/// Rings up to this many vertices are left to geo's own validation.
const SMALL_RING: usize = 512;

/// Why a geometry is invalid, in words; `None` when it is valid.
pub fn problem(g: &Geometry<f64>) -> Option<String> {
    if let Some(c) = first_non_finite(g) {
        return Some(format!("coordinate {c} is not a finite number"));
    }
    let polygons: &[Polygon<f64>] = match g {
        Geometry::Polygon(p) => std::slice::from_ref(p),
        Geometry::MultiPolygon(mp) => &mp.0,
        _ => &[],
    };
    let large = polygons.iter().any(|p| {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .any(|r| r.0.len() > SMALL_RING)
    });
    let reason = if large {
        large_polygons_problem(polygons)
    } else {
        g.check_validation().err().map(|e| e.to_string())
    };
    if reason.is_some() {
        return reason;
    }
    // geo accepts rings whose points are all on one line; OGC does not.
    polygons
        .iter()
        .any(|p| p.exterior().0.len() >= 4 && geo::Area::unsigned_area(p) == 0.0)
        .then(|| "polygon has no area (its exterior ring is a line)".to_string())
}

/// geo's polygon and multipolygon rules, with the ring self-intersection
/// test done through an R-tree of the ring's segments.
fn large_polygons_problem(polygons: &[Polygon<f64>]) -> Option<String> {
    for (i, p) in polygons.iter().enumerate() {
        let at = if polygons.len() > 1 {
            format!("polygon {i}: ")
        } else {
            String::new()
        };
        if let Some(reason) = polygon_problem(p) {
            return Some(format!("{at}{reason}"));
        }
    }
    for (i, a) in polygons.iter().enumerate() {
        let prepared = PreparedGeometry::from(a);
        for (j, b) in polygons.iter().enumerate().skip(i + 1) {
            let im = prepared.relate(b);
            if im.get(CoordPos::Inside, CoordPos::Inside) == Dimensions::TwoDimensional {
                return Some(format!("polygons {i} and {j} overlap"));
            }
            if im.get(CoordPos::OnBoundary, CoordPos::OnBoundary) == Dimensions::OneDimensional {
                return Some(format!("polygons {i} and {j} touch on a line"));
            }
        }
    }
    None
}

fn polygon_problem(p: &Polygon<f64>) -> Option<String> {
    for (k, ring) in std::iter::once(p.exterior())
        .chain(p.interiors())
        .enumerate()
    {
        let role = if k == 0 {
            "exterior ring".to_string()
        } else {
            format!("interior ring {}", k - 1)
        };
        if !ring.0.is_empty() && ring.0.len() < 4 {
            return Some(format!("{role} must have at least 3 distinct points"));
        }
        if ring_self_intersects(ring) {
            return Some(format!("{role} has a self-intersection"));
        }
    }
    let exterior = PreparedGeometry::from(Polygon::new(p.exterior().clone(), vec![]));
    let holes: Vec<Polygon<f64>> = p
        .interiors()
        .iter()
        .map(|r| Polygon::new(r.clone(), vec![]))
        .collect();
    for (i, hole) in holes.iter().enumerate() {
        let im = exterior.relate(hole);
        if !im.is_contains() {
            return Some(format!(
                "interior ring {i} is not contained within the polygon's exterior"
            ));
        }
        if im.get(CoordPos::OnBoundary, CoordPos::OnBoundary) == Dimensions::OneDimensional {
            return Some(format!(
                "exterior ring and interior ring {i} intersect on a line"
            ));
        }
        let prepared = PreparedGeometry::from(hole);
        for (j, other) in holes.iter().enumerate().skip(i + 1) {
            let im = prepared.relate(other);
            if im.get(CoordPos::Inside, CoordPos::Inside) == Dimensions::TwoDimensional {
                return Some(format!(
                    "interior ring {i} and interior ring {j} intersect on an area"
                ));
            }
            if im.get(CoordPos::OnBoundary, CoordPos::OnBoundary) == Dimensions::OneDimensional {
                return Some(format!(
                    "interior ring {i} and interior ring {j} intersect on a line"
                ));
            }
        }
    }
    None
}

/// geo's rule (two segments that meet anywhere but where one ends and the
/// next begins), tested only on the pairs whose boxes overlap.
pub fn ring_self_intersects(ring: &LineString<f64>) -> bool {
    let lines: Vec<Line<f64>> = ring.lines().collect();
    let boxes: Vec<GeomWithData<Rectangle<[f64; 2]>, usize>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| GeomWithData::new(Rectangle::from_aabb(envelope(l)), i))
        .collect();
    let tree = RTree::bulk_load(boxes);
    lines.iter().enumerate().any(|(i, line)| {
        tree.locate_in_envelope_intersecting(&envelope(line))
            .filter(|candidate| candidate.data > i)
            .any(|candidate| {
                let other = &lines[candidate.data];
                line.start != other.end && line.end != other.start && line.intersects(other)
            })
    })
}

fn envelope(l: &Line<f64>) -> AABB<[f64; 2]> {
    AABB::from_corners([l.start.x, l.start.y], [l.end.x, l.end.y])
}

fn first_non_finite(g: &Geometry<f64>) -> Option<String> {
    use geo::CoordsIter;
    g.coords_iter()
        .find(|c| !c.x.is_finite() || !c.y.is_finite())
        .map(|c| format!("({}, {})", c.x, c.y))
}

/// Makes an invalid geometry valid, or says it cannot be.
///
/// Polygons are rebuilt with an even-odd union of their own rings, which splits
/// bow-ties into their lobes and resolves holes that cross their shell (what
/// GEOS's `MakeValid` "linework" method does). Repeated vertices are removed.
/// A polygon with no area left (every ring collapsed) cannot be repaired.
pub fn repair(g: &Geometry<f64>) -> Result<Geometry<f64>, String> {
    if let Some(c) = first_non_finite(g) {
        return Err(format!("coordinate {c} is not a finite number"));
    }
    let repaired = match g {
        Geometry::Polygon(p) => polygons(std::slice::from_ref(p)),
        Geometry::MultiPolygon(mp) => polygons(&mp.0),
        Geometry::LineString(l) => {
            let l = l.remove_repeated_points();
            if l.0.len() < 2 {
                return Err("line has fewer than two distinct points".into());
            }
            Geometry::LineString(l)
        }
        Geometry::MultiLineString(ml) => {
            let parts: Vec<_> =
                ml.0.iter()
                    .map(|l| l.remove_repeated_points())
                    .filter(|l| l.0.len() >= 2)
                    .collect();
            if parts.is_empty() {
                return Err("no line part has two distinct points".into());
            }
            Geometry::MultiLineString(MultiLineString::new(parts))
        }
        Geometry::MultiPoint(mp) => Geometry::MultiPoint(MultiPoint::new(mp.0.clone())),
        other => other.clone(),
    };
    match &repaired {
        Geometry::MultiPolygon(mp) if mp.0.is_empty() => {
            Err("polygon has no area left after repair".into())
        }
        g => match problem(g) {
            None => Ok(repaired),
            Some(reason) => Err(format!("still invalid after repair: {reason}")),
        },
    }
}

fn polygons(parts: &[Polygon<f64>]) -> Geometry<f64> {
    let input = MultiPolygon::new(parts.iter().map(|p| p.remove_repeated_points()).collect());
    // A union with nothing, under the even-odd rule, re-nodes every ring.
    let out = input.union(&MultiPolygon::<f64>::new(vec![]));
    Geometry::MultiPolygon(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Area, wkt};

    #[test]
    fn bow_tie_is_reported_and_split() {
        let bow: Geometry<f64> = wkt!(POLYGON((0. 0., 10. 10., 10. 0., 0. 10., 0. 0.))).into();
        let why = problem(&bow).expect("a bow-tie is invalid");
        assert!(why.contains("intersect"), "{why}");
        let fixed = repair(&bow).unwrap();
        assert!(problem(&fixed).is_none());
        let Geometry::MultiPolygon(mp) = &fixed else {
            panic!("{fixed:?}")
        };
        assert_eq!(mp.0.len(), 2);
        assert!((fixed.unsigned_area() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn repeated_points_are_removed_and_collapsed_rings_fail() {
        let dup: Geometry<f64> = wkt!(POLYGON((0. 0., 0. 0., 4. 0., 4. 4., 0. 4., 0. 0.))).into();
        let fixed = repair(&dup).unwrap();
        assert!((fixed.unsigned_area() - 16.0).abs() < 1e-9);
        let flat: Geometry<f64> = wkt!(POLYGON((0. 0., 4. 0., 8. 0., 0. 0.))).into();
        assert!(problem(&flat).is_some());
        assert!(repair(&flat).is_err());
    }

    #[test]
    fn large_rings_get_the_same_answers_as_geo() {
        let n = 2000;
        let circle: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                (a.cos() * 100.0, a.sin() * 100.0)
            })
            .collect();
        let mut ring = circle.clone();
        ring.push(ring[0]);
        let valid = Polygon::new(LineString::from(ring.clone()), vec![]);
        assert!(problem(&valid.clone().into()).is_none());
        assert!(!ring_self_intersects(valid.exterior()));
        // Swapping two far-apart vertices makes the ring cross itself.
        let mut crossed = ring.clone();
        crossed.swap(10, 1000);
        let crossed = Polygon::new(LineString::from(crossed), vec![]);
        assert!(crossed.check_validation().is_err());
        let why = problem(&crossed.into()).unwrap();
        assert!(why.contains("self-intersection"), "{why}");
        // A hole outside the shell.
        let hole: Vec<(f64, f64)> = circle
            .iter()
            .map(|(x, y)| (x / 10.0 + 300.0, y / 10.0))
            .collect();
        let outside = Polygon::new(LineString::from(ring.clone()), vec![LineString::from(hole)]);
        assert!(problem(&outside.into()).unwrap().contains("not contained"));
        let hole: Vec<(f64, f64)> = circle.iter().map(|(x, y)| (x / 10.0, y / 10.0)).collect();
        let inside = Polygon::new(LineString::from(ring), vec![LineString::from(hole)]);
        assert!(problem(&inside.into()).is_none());
    }

    #[test]
    fn non_finite_coordinates_are_invalid() {
        let g: Geometry<f64> = geo::Point::new(f64::NAN, 1.0).into();
        assert!(problem(&g).unwrap().contains("finite"));
    }
}
