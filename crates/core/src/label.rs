//! Where maps write a feature's name, decided once per layer version (when
//! it is loaded), so that every tile agrees: a polygon is labelled at its
//! pole of inaccessibility (the inside point farthest from its edges, which
//! a centroid is not for an L-shaped lot), a line layer once per distinct
//! name, half-way along the longest feature of that name, turned along it.
//! The tile encoder writes each label point into the one tile that holds it.
//!
//! The pole search is Mapbox's polylabel, written here because the
//! `polylabel` crate is built on geo 0.28 and chizu on geo 0.33; it keeps the
//! crate's algorithm (cells in a max-heap by the best distance they could
//! hold, split until no cell can beat the best by more than the precision)
//! and bounds the work per feature.

use geo::{Area, Coord, Geometry, LineString, Polygon};
use std::collections::{BinaryHeap, HashMap};

/// A label's anchor in Web Mercator metres, with the angle (degrees clockwise
/// on screen, -90..90 so text never reads upside down) for line names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelPoint {
    pub x: f64,
    pub y: f64,
    pub angle: Option<i16>,
}

/// Most cells one pole search looks at: a few hundred suffice for a lot;
/// a zoning area of thousands of vertices stops here at a good point.
const MAX_CELLS: usize = 4_096;

/// Places the labels of a layer's features (Web Mercator geometries with
/// their label text), pushed in order: one per polygon feature with a label;
/// for lines, one per distinct text, on the longest feature that has it (the
/// others get none). Nothing of a feature is kept but its label point (and,
/// for lines, the best candidate per name so far), so a layer read from a
/// database is placed as its rows stream in.
#[derive(Default)]
pub struct LabelPlacer {
    out: Vec<Option<LabelPoint>>,
    /// For lines: label text -> (position, length, label point) of its longest feature.
    longest: HashMap<String, (usize, f64, Option<LabelPoint>)>,
}

impl LabelPlacer {
    pub fn push(&mut self, geometry: &Geometry<f64>, text: Option<&str>) {
        let position = self.out.len();
        self.out.push(None);
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return;
        };
        match geometry {
            Geometry::Polygon(_) | Geometry::MultiPolygon(_) => {
                self.out[position] = pole_of_geometry(geometry);
            }
            Geometry::LineString(_) | Geometry::MultiLineString(_) => {
                let part = longest_part(geometry);
                let length = part.map_or(0.0, length);
                match self.longest.get_mut(text) {
                    Some(best) if length <= best.1 => {}
                    Some(best) => *best = (position, length, part.and_then(midpoint_along)),
                    None => {
                        let point = part.and_then(midpoint_along);
                        self.longest
                            .insert(text.to_string(), (position, length, point));
                    }
                }
            }
            Geometry::Point(p) => {
                self.out[position] = Some(LabelPoint {
                    x: p.x(),
                    y: p.y(),
                    angle: None,
                })
            }
            _ => {}
        }
    }

    /// The label point of each feature pushed, in order.
    pub fn finish(mut self) -> Vec<Option<LabelPoint>> {
        for (position, _, point) in self.longest.into_values() {
            self.out[position] = point;
        }
        self.out
    }
}

fn longest_part(geometry: &Geometry<f64>) -> Option<&LineString<f64>> {
    match geometry {
        Geometry::LineString(l) => Some(l),
        Geometry::MultiLineString(ml) => ml.0.iter().max_by(|a, b| length(a).total_cmp(&length(b))),
        _ => None,
    }
}

fn length(line: &LineString<f64>) -> f64 {
    line.lines().map(|s| s.dx().hypot(s.dy())).sum()
}

/// The point half-way along `line` and the direction of the line there.
fn midpoint_along(line: &LineString<f64>) -> Option<LabelPoint> {
    let total = length(line);
    if line.0.len() < 2 || total <= 0.0 {
        return None;
    }
    let mut walked = 0.0;
    for segment in line.lines() {
        let (dx, dy) = (segment.dx(), segment.dy());
        let length = dx.hypot(dy);
        if length > 0.0 && walked + length >= total / 2.0 {
            let t = (total / 2.0 - walked) / length;
            return Some(LabelPoint {
                x: segment.start.x + dx * t,
                y: segment.start.y + dy * t,
                angle: Some(upright_angle(dx, dy)),
            });
        }
        walked += length;
    }
    None
}

/// The screen angle (clockwise, y down) of a Mercator direction (y up),
/// turned into -90..90 so the text reads left to right.
fn upright_angle(dx: f64, dy: f64) -> i16 {
    let mut a = (-dy).atan2(dx).to_degrees();
    if a >= 90.0 {
        a -= 180.0;
    } else if a < -90.0 {
        a += 180.0;
    }
    a.round() as i16
}

/// The pole of inaccessibility of the largest part of a (multi)polygon.
fn pole_of_geometry(geometry: &Geometry<f64>) -> Option<LabelPoint> {
    let polygon = match geometry {
        Geometry::Polygon(p) => p,
        Geometry::MultiPolygon(mp) => {
            mp.0.iter()
                .max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))?
        }
        _ => return None,
    };
    let c = pole_of_inaccessibility(polygon)?;
    Some(LabelPoint {
        x: c.x,
        y: c.y,
        angle: None,
    })
}

struct Cell {
    center: Coord<f64>,
    half: f64,
    /// Signed distance from the centre to the outline (positive inside).
    distance: f64,
    /// The most any point of the cell could have.
    best_possible: f64,
}

impl Cell {
    fn new(center: Coord<f64>, half: f64, polygon: &Polygon<f64>) -> Cell {
        let distance = signed_distance(center, polygon);
        Cell {
            center,
            half,
            distance,
            best_possible: distance + half * std::f64::consts::SQRT_2,
        }
    }
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.best_possible == other.best_possible
    }
}
impl Eq for Cell {}
impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cell {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.best_possible.total_cmp(&other.best_possible)
    }
}

/// Mapbox's polylabel with a precision of 1/200 of the polygon's smaller
/// side (at least 5 cm): a label is placed to a pixel at any zoom it shows.
pub fn pole_of_inaccessibility(polygon: &Polygon<f64>) -> Option<Coord<f64>> {
    use geo::BoundingRect;
    let rect = polygon.exterior().bounding_rect()?;
    let (width, height) = (rect.width(), rect.height());
    let size = width.min(height);
    if !size.is_finite() || size <= 0.0 {
        return Some(rect.min());
    }
    let precision = (size / 200.0).max(0.05);
    let half = size / 2.0;
    let mut heap = BinaryHeap::new();
    let mut y = rect.min().y;
    while y < rect.max().y {
        let mut x = rect.min().x;
        while x < rect.max().x {
            heap.push(Cell::new(
                Coord {
                    x: x + half,
                    y: y + half,
                },
                half,
                polygon,
            ));
            x += size;
        }
        y += size;
    }
    let centroid = geo::Centroid::centroid(polygon).map(|p| p.0);
    let mut best = Cell::new(centroid.unwrap_or(rect.center()), 0.0, polygon);
    let middle = Cell::new(rect.center(), 0.0, polygon);
    if middle.distance > best.distance {
        best = middle;
    }
    let mut looked = heap.len();
    while let Some(cell) = heap.pop() {
        if cell.distance > best.distance {
            best = Cell::new(cell.center, 0.0, polygon);
        }
        if cell.best_possible - best.distance <= precision || looked >= MAX_CELLS {
            continue;
        }
        let h = cell.half / 2.0;
        for (sx, sy) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
            let center = Coord {
                x: cell.center.x + sx * h,
                y: cell.center.y + sy * h,
            };
            heap.push(Cell::new(center, h, polygon));
            looked += 1;
        }
    }
    Some(best.center)
}

/// Distance from `p` to the polygon's outline, positive inside, negative
/// outside (even-odd over every ring, so holes are outside).
fn signed_distance(p: Coord<f64>, polygon: &Polygon<f64>) -> f64 {
    let mut inside = false;
    let mut nearest = f64::INFINITY;
    for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
        for segment in ring.lines() {
            let (a, b) = (segment.start, segment.end);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            nearest = nearest.min(segment_distance_squared(p, a, b));
        }
    }
    let d = nearest.sqrt();
    if inside { d } else { -d }
}

fn segment_distance_squared(p: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (mut x, mut y) = (a.x, a.y);
    let (dx, dy) = (b.x - x, b.y - y);
    if dx != 0.0 || dy != 0.0 {
        let t = ((p.x - x) * dx + (p.y - y) * dy) / (dx * dx + dy * dy);
        if t > 1.0 {
            x = b.x;
            y = b.y;
        } else if t > 0.0 {
            x += dx * t;
            y += dy * t;
        }
    }
    let (ex, ey) = (p.x - x, p.y - y);
    ex * ex + ey * ey
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, MultiLineString, Point, polygon};

    fn label_points(features: &[(&Geometry<f64>, Option<&str>)]) -> Vec<Option<LabelPoint>> {
        let mut placer = LabelPlacer::default();
        for (geometry, text) in features {
            placer.push(geometry, *text);
        }
        placer.finish()
    }

    #[test]
    fn an_l_shaped_lot_is_labelled_inside_its_wide_arm() {
        // An L: the centroid (about 3.2, 3.2) lies outside the shape's
        // thick part; the pole sits in the 10 x 4 foot of the L.
        let l = polygon![
            (x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 4.0),
            (x: 4.0, y: 4.0), (x: 4.0, y: 10.0), (x: 0.0, y: 10.0),
        ];
        let p = pole_of_inaccessibility(&l).unwrap();
        assert!(signed_distance(p, &l) > 1.9, "{p:?}");
        assert!(p.y < 4.0 || p.x < 4.0, "{p:?}");
    }

    #[test]
    fn holes_are_avoided() {
        let ring = polygon!(
            exterior: [(x: 0.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 10.0)],
            interiors: [[(x: 3.0, y: 3.0), (x: 7.0, y: 3.0), (x: 7.0, y: 7.0), (x: 3.0, y: 7.0)]],
        );
        let p = pole_of_inaccessibility(&ring).unwrap();
        assert!(signed_distance(p, &ring) > 1.0, "{p:?}");
        let hole = polygon![(x: 3.0, y: 3.0), (x: 7.0, y: 3.0), (x: 7.0, y: 7.0), (x: 3.0, y: 7.0)];
        assert!(signed_distance(p, &hole) < 0.0, "{p:?} is not in the hole");
    }

    #[test]
    fn one_label_per_line_name_on_its_longest_feature() {
        let short = Geometry::LineString(LineString::from(vec![(0.0, 0.0), (10.0, 0.0)]));
        let long = Geometry::MultiLineString(MultiLineString::new(vec![LineString::from(vec![
            (0.0, 0.0),
            (0.0, 100.0),
        ])]));
        let other = Geometry::LineString(LineString::from(vec![(0.0, 0.0), (100.0, 100.0)]));
        let features = [
            (&short, Some("国道207号")),
            (&long, Some("国道207号")),
            (&other, Some("市道1号")),
            (&short, None),
        ];
        let labels = label_points(&features);
        assert_eq!(labels.iter().filter(|l| l.is_some()).count(), 2);
        assert!(labels[0].is_none() && labels[3].is_none());
        let placed = labels[1].unwrap();
        assert_eq!((placed.x, placed.y, placed.angle), (0.0, 50.0, Some(-90)));
        let diagonal = labels[2].unwrap();
        // Up and to the right on the map is up and to the right on screen.
        assert_eq!(diagonal.angle, Some(-45));
        let point = Geometry::Point(Point::new(1.0, 2.0));
        let labels = label_points(&[(&point, Some("a"))]);
        assert_eq!(labels[0].unwrap().x, 1.0);
    }
}
