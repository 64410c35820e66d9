//! Web Mercator tile addressing (the XYZ scheme used by MapLibre and MVT).

use serde::Serialize;
use std::fmt;

/// Half the width of the Web Mercator square, in metres.
pub const MERCATOR_HALF: f64 = 20_037_508.342_789_244;
/// The deepest zoom chizu serves; 2^24 tiles across is ~2.4 m per tile at the equator.
pub const MAX_ZOOM: u8 = 24;
/// The latitude where Web Mercator is cut off.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// A tile address that is known to exist: `x, y < 2^z` and `z <= MAX_ZOOM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TileCoord {
    z: u8,
    x: u32,
    y: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("zoom {0} is out of range (0..={MAX_ZOOM})")]
    Zoom(u32),
    #[error("tile {x}/{y} does not exist at zoom {z} (x and y must be below {limit})")]
    OutOfRange { z: u8, x: u32, y: u32, limit: u64 },
}

impl TileCoord {
    /// Whether the Web Mercator point (x, y) lies in this tile: west and
    /// north edges in, east and south edges out, so each point of the world
    /// is in exactly one tile of a zoom.
    pub fn holds(&self, x: f64, y: f64) -> bool {
        let n = (1u64 << self.z) as f64;
        let fx = (x + MERCATOR_HALF) / (2.0 * MERCATOR_HALF) * n;
        let fy = (MERCATOR_HALF - y) / (2.0 * MERCATOR_HALF) * n;
        fx.floor() == self.x as f64 && fy.floor() == self.y as f64
    }

    pub fn new(z: u32, x: u32, y: u32) -> Result<Self, TileError> {
        if z > MAX_ZOOM as u32 {
            return Err(TileError::Zoom(z));
        }
        let z = z as u8;
        let limit = 1u64 << z;
        if x as u64 >= limit || y as u64 >= limit {
            return Err(TileError::OutOfRange { z, x, y, limit });
        }
        Ok(Self { z, x, y })
    }

    pub fn z(&self) -> u8 {
        self.z
    }
    pub fn x(&self) -> u32 {
        self.x
    }
    pub fn y(&self) -> u32 {
        self.y
    }

    /// The tile's square in Web Mercator metres.
    pub fn bounds(&self) -> Bounds {
        let size = tile_size_m(self.z);
        let min_x = -MERCATOR_HALF + self.x as f64 * size;
        let max_y = MERCATOR_HALF - self.y as f64 * size;
        Bounds {
            min_x,
            min_y: max_y - size,
            max_x: min_x + size,
            max_y,
        }
    }

    /// The tile at zoom `z` holding the Web Mercator point (x, y), clamped to the world.
    pub fn containing(z: u8, x: f64, y: f64) -> TileCoord {
        let n = 1u64 << z;
        let size = tile_size_m(z);
        let clamp = |v: f64| (v.floor().max(0.0) as u64).min(n - 1) as u32;
        TileCoord {
            z,
            x: clamp((x + MERCATOR_HALF) / size),
            y: clamp((MERCATOR_HALF - y) / size),
        }
    }
}

impl fmt::Display for TileCoord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

/// The width of one tile at zoom `z`, in Web Mercator metres.
pub fn tile_size_m(z: u8) -> f64 {
    2.0 * MERCATOR_HALF / (1u64 << z) as f64
}

/// An axis-aligned rectangle (in whatever CRS the context says).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

impl Bounds {
    pub const EMPTY: Bounds = Bounds {
        min_x: f64::INFINITY,
        min_y: f64::INFINITY,
        max_x: f64::NEG_INFINITY,
        max_y: f64::NEG_INFINITY,
    };

    pub fn is_empty(&self) -> bool {
        !(self.min_x <= self.max_x && self.min_y <= self.max_y)
    }

    pub fn expand(&mut self, other: &Bounds) {
        self.min_x = self.min_x.min(other.min_x);
        self.min_y = self.min_y.min(other.min_y);
        self.max_x = self.max_x.max(other.max_x);
        self.max_y = self.max_y.max(other.max_y);
    }

    pub fn buffered(&self, margin: f64) -> Bounds {
        Bounds {
            min_x: self.min_x - margin,
            min_y: self.min_y - margin,
            max_x: self.max_x + margin,
            max_y: self.max_y + margin,
        }
    }

    pub fn of_geometry(g: &geo::Geometry<f64>) -> Bounds {
        use geo::BoundingRect;
        match g.bounding_rect() {
            Some(r) => Bounds {
                min_x: r.min().x,
                min_y: r.min().y,
                max_x: r.max().x,
                max_y: r.max().y,
            },
            None => Bounds::EMPTY,
        }
    }
}

/// Whether the tile encoder simplifies this polygon: a ring of four corners
/// or fewer (a lot, a block) and no holes has nothing to lose but a corner.
pub fn simplifies(p: &geo::Polygon<f64>) -> bool {
    p.exterior().0.len() > 5 || !p.interiors().is_empty()
}

/// `p` (Web Mercator) simplified for tiles of zoom `z` with `tolerance` in
/// tile units (of 4096): Visvalingam-Whyatt, topology preserved, with the
/// tile's area scale. The encoder and a layer's precomputed generalisation
/// both call this, so a tile is the same bytes with or without it.
pub fn simplify_for_zoom(p: &geo::Polygon<f64>, z: u8, tolerance: f64) -> geo::Polygon<f64> {
    use geo::SimplifyVwPreserve;
    let metres = tolerance * tile_size_m(z) / 4096.0;
    p.simplify_vw_preserve(metres * metres)
}

/// Longitude/latitude (degrees) to Web Mercator metres.
pub fn lonlat_to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE);
    let x = lon.to_radians() * 6_378_137.0;
    let y = (std::f64::consts::FRAC_PI_4 + lat.to_radians() / 2.0)
        .tan()
        .ln()
        * 6_378_137.0;
    (x, y)
}

/// Web Mercator metres to longitude/latitude (degrees).
pub fn mercator_to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / 6_378_137.0).to_degrees();
    let lat = (2.0 * (y / 6_378_137.0).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
    (lon, lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_tiles_that_do_not_exist() {
        assert!(TileCoord::new(0, 0, 0).is_ok());
        assert!(TileCoord::new(0, 1, 0).is_err());
        assert!(TileCoord::new(14, 16383, 16383).is_ok());
        assert!(TileCoord::new(14, 16384, 0).is_err());
        assert_eq!(TileCoord::new(25, 0, 0), Err(TileError::Zoom(25)));
    }

    #[test]
    fn bounds_and_containing_agree() {
        // Kashima city hall, roughly 130.0989 E, 33.1036 N.
        let (mx, my) = lonlat_to_mercator(130.0989, 33.1036);
        let t = TileCoord::containing(14, mx, my);
        assert_eq!((t.x(), t.y()), (14112, 6593));
        let b = t.bounds();
        assert!(b.min_x <= mx && mx < b.max_x && b.min_y < my && my <= b.max_y);
        let (lon, lat) = mercator_to_lonlat(mx, my);
        assert!((lon - 130.0989).abs() < 1e-9 && (lat - 33.1036).abs() < 1e-9);
    }
}
