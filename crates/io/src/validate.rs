//! Geometry validation (OGC simple-features rules, via geo's `Validation`) and repair.

use geo::{
    BooleanOps, Geometry, MultiLineString, MultiPoint, MultiPolygon, Polygon, RemoveRepeatedPoints,
    Validation,
};

/// Why a geometry is invalid, in words; `None` when it is valid.
pub fn problem(g: &Geometry<f64>) -> Option<String> {
    if let Some(c) = first_non_finite(g) {
        return Some(format!("coordinate {c} is not a finite number"));
    }
    if let Some(reason) = g.check_validation().err().map(|e| e.to_string()) {
        return Some(reason);
    }
    // geo accepts rings whose points are all on one line; OGC does not.
    let polygons: &[Polygon<f64>] = match g {
        Geometry::Polygon(p) => std::slice::from_ref(p),
        Geometry::MultiPolygon(mp) => &mp.0,
        _ => &[],
    };
    polygons
        .iter()
        .any(|p| p.exterior().0.len() >= 4 && geo::Area::unsigned_area(p) == 0.0)
        .then(|| "polygon has no area (its exterior ring is a line)".to_string())
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
    fn non_finite_coordinates_are_invalid() {
        let g: Geometry<f64> = geo::Point::new(f64::NAN, 1.0).into();
        assert!(problem(&g).unwrap().contains("finite"));
    }
}
