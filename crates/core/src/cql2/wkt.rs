//! WKT text of geometries (filters' canonical text, CSV export).

use geo::{Geometry, LineString, Polygon};

pub fn to_wkt(g: &Geometry<f64>) -> String {
    fn ring(l: &LineString<f64>) -> String {
        format!(
            "({})",
            l.0.iter()
                .map(|c| format!("{} {}", c.x, c.y))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
    fn poly(p: &Polygon<f64>) -> String {
        format!(
            "({})",
            std::iter::once(p.exterior())
                .chain(p.interiors())
                .map(ring)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
    match g {
        Geometry::Point(p) => format!("POINT({} {})", p.x(), p.y()),
        Geometry::LineString(l) => format!("LINESTRING{}", ring(l)),
        Geometry::Polygon(p) => format!("POLYGON{}", poly(p)),
        Geometry::MultiPoint(mp) => format!(
            "MULTIPOINT({})",
            mp.0.iter()
                .map(|p| format!("{} {}", p.x(), p.y()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Geometry::MultiLineString(ml) => format!(
            "MULTILINESTRING({})",
            ml.0.iter().map(ring).collect::<Vec<_>>().join(", ")
        ),
        Geometry::MultiPolygon(mp) => format!(
            "MULTIPOLYGON({})",
            mp.0.iter().map(poly).collect::<Vec<_>>().join(", ")
        ),
        Geometry::GeometryCollection(c) => format!(
            "GEOMETRYCOLLECTION({})",
            c.0.iter().map(to_wkt).collect::<Vec<_>>().join(", ")
        ),
        Geometry::Rect(r) => to_wkt(&Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => to_wkt(&Geometry::Polygon(t.to_polygon())),
        Geometry::Line(l) => to_wkt(&Geometry::LineString(LineString::new(vec![l.start, l.end]))),
    }
}
