//! The coordinate reference systems offered by the features API (OGC API -
//! Features Part 2), with their axis order, and the transforms to them from the
//! stored longitude/latitude.

use chizu_io::Reprojector;
use geo::Geometry;
use std::cell::RefCell;
use std::collections::HashMap;

pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// One supported CRS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crs {
    /// `None` is OGC:CRS84 (longitude, latitude).
    pub epsg: Option<u32>,
    /// Whether the CRS's first axis is latitude or northing (EPSG:4326,
    /// EPSG:6668 and the JGD2011 plane rectangular zones, whose X points north).
    pub north_first: bool,
}

impl Crs {
    pub const CRS84: Crs = Crs {
        epsg: None,
        north_first: false,
    };

    pub fn uri(&self) -> String {
        match self.epsg {
            None => CRS84.to_string(),
            Some(code) => format!("http://www.opengis.net/def/crs/EPSG/0/{code}"),
        }
    }

    /// Parses a CRS URI, URN or `EPSG:code`; `None` when not supported.
    pub fn parse(text: &str) -> Option<Crs> {
        let t = text.trim();
        let upper = t.to_ascii_uppercase();
        if upper.ends_with("/OGC/1.3/CRS84")
            || upper == "OGC:CRS84"
            || upper == "CRS84"
            || upper.ends_with("OGC:1.3:CRS84")
        {
            return Some(Crs::CRS84);
        }
        let code = upper
            .strip_prefix("HTTP://WWW.OPENGIS.NET/DEF/CRS/EPSG/0/")
            .or_else(|| upper.strip_prefix("EPSG:"))
            .or_else(|| upper.strip_prefix("URN:OGC:DEF:CRS:EPSG::"))?
            .parse::<u32>()
            .ok()?;
        supported().into_iter().find(|c| c.epsg == Some(code))
    }

    /// Transforms a longitude/latitude geometry into this CRS, in its axis order.
    pub fn from_lonlat(&self, g: &mut Geometry<f64>) -> Result<(), String> {
        if let Some(code) = self.epsg.filter(|c| *c != 4326) {
            with_reprojector(4326, code, |r| r.geometry(g).map_err(|e| e.to_string()))?;
        }
        if self.north_first {
            swap_axes(g);
        }
        Ok(())
    }

    /// Transforms a geometry given in this CRS (its axis order) to longitude/latitude.
    pub fn to_lonlat(&self, g: &mut Geometry<f64>) -> Result<(), String> {
        if self.north_first {
            swap_axes(g);
        }
        if let Some(code) = self.epsg.filter(|c| *c != 4326) {
            with_reprojector(code, 4326, |r| r.geometry(g).map_err(|e| e.to_string()))?;
        }
        Ok(())
    }
}

/// CRS84, EPSG:4326, EPSG:3857, EPSG:6668 and the 19 JGD2011 plane rectangular zones.
pub fn supported() -> Vec<Crs> {
    let mut out = vec![
        Crs::CRS84,
        Crs {
            epsg: Some(4326),
            north_first: true,
        },
        Crs {
            epsg: Some(3857),
            north_first: false,
        },
        Crs {
            epsg: Some(6668),
            north_first: true,
        },
    ];
    out.extend((6669..=6687).map(|code| Crs {
        epsg: Some(code),
        north_first: true,
    }));
    out
}

fn swap_axes(g: &mut Geometry<f64>) {
    let _ = chizu_io::crs::for_each_coord_mut(g, &mut |c| {
        std::mem::swap(&mut c.x, &mut c.y);
        Ok(())
    });
}

thread_local! {
    // PROJ objects are costly to create and not shareable between threads.
    static REPROJECTORS: RefCell<HashMap<(u32, u32), Reprojector>> = RefCell::new(HashMap::new());
}

fn with_reprojector<T>(
    from: u32,
    to: u32,
    f: impl FnOnce(&Reprojector) -> Result<T, String>,
) -> Result<T, String> {
    REPROJECTORS.with(|cell| {
        let mut map = cell.borrow_mut();
        let reprojector = match map.entry((from, to)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Reprojector::new(from, to).map_err(|e| e.to_string())?)
            }
        };
        f(reprojector)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris_and_orders_axes() {
        assert_eq!(Crs::parse(CRS84), Some(Crs::CRS84));
        let zone = Crs::parse("http://www.opengis.net/def/crs/EPSG/0/6670").unwrap();
        assert!(zone.north_first);
        assert_eq!(Crs::parse("EPSG:6670"), Some(zone));
        assert!(Crs::parse("EPSG:2000").is_none());
        let mut g: Geometry<f64> = geo::Point::new(130.1, 33.1).into();
        zone.from_lonlat(&mut g).unwrap();
        let Geometry::Point(p) = g else {
            unreachable!()
        };
        // Northing first: the zone's X is about 11.4 km north of its origin.
        assert!(
            (p.x() - 11449.7512).abs() < 1e-3 && (p.y() + 84005.8886).abs() < 1e-3,
            "{p:?}"
        );
        let mut back: Geometry<f64> = p.into();
        zone.to_lonlat(&mut back).unwrap();
        let Geometry::Point(q) = back else {
            unreachable!()
        };
        assert!((q.x() - 130.1).abs() < 1e-9 && (q.y() - 33.1).abs() < 1e-9);
    }
}
