//! Reprojection with PROJ.

use crate::IoError;
use geo::{Coord, Geometry, LineString};
use proj::Proj;

/// Transforms coordinates between two EPSG coordinate reference systems.
///
/// Axis order is always x = easting/longitude, y = northing/latitude (PROJ's
/// "normalized for visualization" order), whatever the CRS definition says.
pub struct Reprojector {
    proj: Option<Proj>,
    from: u32,
    to: u32,
}

impl Reprojector {
    pub fn new(from: u32, to: u32) -> Result<Self, IoError> {
        check_known(from)?;
        check_known(to)?;
        let proj = if from == to {
            None
        } else {
            Some(
                Proj::new_known_crs(&format!("EPSG:{from}"), &format!("EPSG:{to}"), None).map_err(
                    |e| IoError::Crs {
                        crs: format!("EPSG:{from} -> EPSG:{to}"),
                        message: e.to_string(),
                    },
                )?,
            )
        };
        Ok(Reprojector { proj, from, to })
    }

    pub fn from_epsg(&self) -> u32 {
        self.from
    }
    pub fn to_epsg(&self) -> u32 {
        self.to
    }

    pub fn point(&self, x: f64, y: f64) -> Result<(f64, f64), IoError> {
        match &self.proj {
            None => Ok((x, y)),
            Some(p) => p.convert((x, y)).map_err(|e| self.error(e)),
        }
    }

    /// Reprojects a geometry in place. Non-finite results (a point outside the
    /// projection's domain) are errors, never silent NaNs.
    pub fn geometry(&self, g: &mut Geometry<f64>) -> Result<(), IoError> {
        let Some(proj) = &self.proj else {
            return Ok(());
        };
        for_each_coord_mut(
            g,
            &mut |c: &mut Coord<f64>| match proj.convert((c.x, c.y)) {
                Ok((x, y)) if x.is_finite() && y.is_finite() => {
                    *c = Coord { x, y };
                    Ok(())
                }
                Ok(_) => Err(format!("({}, {}) has no image", c.x, c.y)),
                Err(e) => Err(format!("({}, {}): {e}", c.x, c.y)),
            },
        )
        .map_err(|message| IoError::Crs {
            crs: format!("EPSG:{} -> EPSG:{}", self.from, self.to),
            message,
        })
    }

    fn error(&self, e: proj::ProjError) -> IoError {
        IoError::Crs {
            crs: format!("EPSG:{} -> EPSG:{}", self.from, self.to),
            message: e.to_string(),
        }
    }
}

/// Visits every coordinate of `g` mutably, stopping at the first error.
/// (geo's `try_map_coords_in_place` overflows the compiler's recursion limit on
/// `Geometry` because of `GeometryCollection`; a `dyn` visitor does not.)
pub fn for_each_coord_mut(
    g: &mut Geometry<f64>,
    f: &mut dyn FnMut(&mut Coord<f64>) -> Result<(), String>,
) -> Result<(), String> {
    fn line(
        l: &mut LineString<f64>,
        f: &mut dyn FnMut(&mut Coord<f64>) -> Result<(), String>,
    ) -> Result<(), String> {
        l.0.iter_mut().try_for_each(f)
    }
    fn polygon(
        p: &mut geo::Polygon<f64>,
        f: &mut dyn FnMut(&mut Coord<f64>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut result = Ok(());
        p.exterior_mut(|r| result = line(r, f));
        result.clone()?;
        p.interiors_mut(|rings| {
            for r in rings {
                if result.is_ok() {
                    result = line(r, f);
                }
            }
        });
        result
    }
    match g {
        Geometry::Point(p) => f(&mut p.0),
        Geometry::Line(l) => {
            f(&mut l.start)?;
            f(&mut l.end)
        }
        Geometry::LineString(l) => line(l, f),
        Geometry::Polygon(p) => polygon(p, f),
        Geometry::MultiPoint(mp) => mp.0.iter_mut().try_for_each(|p| f(&mut p.0)),
        Geometry::MultiLineString(ml) => ml.0.iter_mut().try_for_each(|l| line(l, f)),
        Geometry::MultiPolygon(mp) => mp.0.iter_mut().try_for_each(|p| polygon(p, f)),
        Geometry::GeometryCollection(gc) => {
            gc.0.iter_mut().try_for_each(|g| for_each_coord_mut(g, f))
        }
        Geometry::Rect(r) => {
            let mut as_polygon = r.to_polygon();
            polygon(&mut as_polygon, f)?;
            *g = Geometry::Polygon(as_polygon);
            Ok(())
        }
        Geometry::Triangle(t) => {
            let mut as_polygon = t.to_polygon();
            polygon(&mut as_polygon, f)?;
            *g = Geometry::Polygon(as_polygon);
            Ok(())
        }
    }
}

/// Fails unless PROJ knows `EPSG:code` as a coordinate reference system.
pub fn check_known(code: u32) -> Result<(), IoError> {
    Proj::new(&format!("EPSG:{code}"))
        .map(|_| ())
        .map_err(|e| IoError::Crs {
            crs: format!("EPSG:{code}"),
            message: format!("not a coordinate reference system PROJ knows ({e})"),
        })
}

/// The OGC WKT 1 definition of `EPSG:code`, as GeoPackage's `gpkg_spatial_ref_sys` wants it.
pub fn wkt(code: u32) -> Result<String, IoError> {
    let p = Proj::new(&format!("EPSG:{code}")).map_err(|e| IoError::Crs {
        crs: format!("EPSG:{code}"),
        message: e.to_string(),
    })?;
    p.as_wkt(Some(proj::wkt::WktVersion::Wkt1_Gdal), None)
        .map_err(|e| IoError::Crs {
            crs: format!("EPSG:{code}"),
            message: e.to_string(),
        })
}

/// The CRS's name, e.g. "JGD2011 / Japan Plane Rectangular CS II".
pub fn name(code: u32) -> Option<String> {
    let p = Proj::new(&format!("EPSG:{code}")).ok()?;
    let wkt = p
        .as_wkt(Some(proj::wkt::WktVersion::Wkt1_Gdal), None)
        .ok()?;
    let start = wkt.find('"')? + 1;
    let end = start + wkt[start..].find('"')?;
    Some(wkt[start..end].to_string())
}

/// Where a CRS may be used, in degrees of longitude and latitude (PROJ's
/// area of use, from the EPSG database).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaOfUse {
    pub west: f64,
    pub south: f64,
    pub east: f64,
    pub north: f64,
}

impl AreaOfUse {
    /// How far outside the area of use coordinates may still lie: data
    /// along a zone border is legitimately drawn in the neighbouring zone.
    pub const MARGIN_DEGREES: f64 = 1.0;

    /// Whether (lon, lat) is inside, with the margin.
    pub fn admits(&self, lon: f64, lat: f64) -> bool {
        let m = Self::MARGIN_DEGREES;
        let lon_ok = if self.west <= self.east {
            lon >= self.west - m && lon <= self.east + m
        } else {
            // The area crosses the antimeridian.
            lon >= self.west - m || lon <= self.east + m
        };
        lon_ok
            && lon.abs() <= 180.0
            && lat.abs() <= 90.0
            && lat >= self.south - m
            && lat <= self.north + m
    }
}

impl std::fmt::Display for AreaOfUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "longitude {}..{}, latitude {}..{}",
            self.west, self.east, self.south, self.north
        )
    }
}

/// The area of use of `EPSG:code`, when PROJ knows one.
pub fn area_of_use(code: u32) -> Option<AreaOfUse> {
    let p = Proj::new(&format!("EPSG:{code}")).ok()?;
    let (area, _) = p.area_of_use().ok()?;
    let a = area?;
    Some(AreaOfUse {
        west: a.west,
        south: a.south,
        east: a.east,
        north: a.north,
    })
}

/// The ESRI WKT 1 definition of `EPSG:code`, as a shapefile's `.prj` wants it.
pub fn esri_wkt(code: u32) -> Result<String, IoError> {
    let p = Proj::new(&format!("EPSG:{code}")).map_err(|e| IoError::Crs {
        crs: format!("EPSG:{code}"),
        message: e.to_string(),
    })?;
    p.as_wkt(Some(proj::wkt::WktVersion::Wkt1_Esri), None)
        .map_err(|e| IoError::Crs {
            crs: format!("EPSG:{code}"),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ii_to_wgs84() {
        // The verified pair from shared/notes/dependencies.md.
        let r = Reprojector::new(6670, 4326).unwrap();
        let (lon, lat) = r.point(-84005.8886, 11449.7512).unwrap();
        assert!(
            (lon - 130.1).abs() < 1e-8 && (lat - 33.1).abs() < 1e-8,
            "{lon} {lat}"
        );
        let back = Reprojector::new(4326, 6670).unwrap();
        let (x, y) = back.point(lon, lat).unwrap();
        assert!((x + 84005.8886).abs() < 1e-3 && (y - 11449.7512).abs() < 1e-3);
    }

    #[test]
    fn areas_of_use_come_from_proj() {
        let zone_ii = area_of_use(6670).unwrap();
        assert!(zone_ii.admits(130.1, 33.1), "{zone_ii}");
        assert!(!zone_ii.admits(140.1, 35.6), "Chiba is not in zone II");
        let world = area_of_use(4326).unwrap();
        assert!(world.admits(179.0, -89.0));
        assert!(!world.admits(200.0, 10.0) && !world.admits(10.0, 95.0));
        assert!(!world.admits(1e300, 1e300));
    }

    #[test]
    fn unknown_epsg_is_an_error() {
        let e = Reprojector::new(999_999, 4326).err().unwrap().to_string();
        assert!(e.contains("EPSG:999999"), "{e}");
    }

    #[test]
    fn names_and_wkt() {
        assert_eq!(
            name(6670).unwrap(),
            "JGD2011 / Japan Plane Rectangular CS II"
        );
        assert!(wkt(4326).unwrap().starts_with("GEOGCS[\"WGS 84\""));
    }
}
