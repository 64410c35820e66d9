//! Mapbox Vector Tiles 2.1: transform, simplify, clip, quantize and encode.
//!
//! The pipeline per feature and tile:
//! 1. Web Mercator metres -> tile units (extent 4096, y down);
//! 2. simplify the whole feature at the tile's zoom (Visvalingam-Whyatt with
//!    topology preservation for polygons, Douglas-Peucker for lines), before
//!    clipping, so neighbouring tiles see the same simplified shape and no crack
//!    opens along tile seams;
//! 3. clip to the tile square grown by the layer's buffer;
//! 4. round to integers (not floor: no half-pixel bias), drop repeated points,
//!    drop rings that collapse to no area, orient exterior rings with positive
//!    area in tile space (clockwise on screen) and holes the other way, as MVT 2.1
//!    requires;
//! 5. encode commands with zigzag deltas, attributes through per-layer key and
//!    value tables, feature ids from the store.
//!
//! Size budget: a layer's share of a tile is limited to `TileOptions::max_bytes`.
//! Over budget, the layer is encoded again with 4x, then 16x, then 64x the
//! simplification tolerance; if still over, the smallest features (by extent in
//! the tile) are left out until it fits. This keeps a few huge polygons at low
//! zoom from producing megabyte tiles while small tiles are never touched.

mod clip;
pub mod glyphs;
mod pbf;

use chizu_core::label::LabelPoint;
use chizu_core::{TileCoord, TileOptions, Value};
use clip::{Pt, Window};
use geo::{Geometry, LineString, Polygon, Simplify, SimplifyVwPreserve};
use std::collections::HashMap;

/// Tile units per tile side.
pub const EXTENT: u32 = 4096;

/// One feature offered to the encoder; geometry in Web Mercator metres.
#[derive(Debug, Clone, Copy)]
pub struct TileFeature<'a> {
    pub id: u64,
    pub geometry: &'a Geometry<f64>,
    pub properties: &'a [Value],
    /// Where the layer's label is written for this feature, if anywhere:
    /// encoded as an extra point feature in the one tile that holds it.
    pub label: Option<LabelPoint>,
}

/// What the encoder needs of a layer: its name in the tile, the fields to write
/// (name and index into `TileFeature::properties`) and the tiling options.
#[derive(Debug, Clone)]
pub struct LayerSpec<'a> {
    pub name: &'a str,
    pub fields: Vec<(&'a str, usize)>,
    pub options: TileOptions,
    /// The field label points carry (name and index into the properties),
    /// when the layer has a label and the caller may read that field.
    pub label: Option<(&'a str, usize)>,
}

/// The key of a line label's angle (degrees clockwise on screen) in label
/// points: not a possible field name, so it never meets one.
pub const LABEL_ANGLE_KEY: &str = "chizu:angle";

/// What happened while encoding one layer of one tile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerStats {
    pub features: usize,
    pub bytes: usize,
    /// 0 when the first encoding fit the budget.
    pub extra_simplification_passes: u8,
    pub dropped_for_budget: usize,
    /// Label points written (not counted in `features`).
    pub labels: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum GeomType {
    Point = 1,
    Line = 2,
    Polygon = 3,
}

struct Encoded {
    id: u64,
    kind: GeomType,
    commands: Vec<u32>,
    /// Extent in tile units (bbox diagonal): what "smallest" means for the budget.
    size: f64,
    source: usize,
    /// A label point: carries the label field only.
    label: bool,
}

/// Encodes a whole tile: one MVT layer per entry, empty layers left out.
/// Returns the bytes (empty when no layer has a feature) and per-layer stats.
pub fn encode_tile(
    tile: TileCoord,
    layers: &[(LayerSpec<'_>, Vec<TileFeature<'_>>)],
) -> (Vec<u8>, Vec<LayerStats>) {
    let mut out = Vec::new();
    let mut stats = Vec::with_capacity(layers.len());
    for (spec, features) in layers {
        let (body, s) = encode_layer(tile, spec, features);
        if s.features > 0 {
            pbf::bytes_field(&mut out, 3, &body);
        }
        stats.push(s);
    }
    (out, stats)
}

/// Encodes one layer message (the body of `Tile.layers`).
pub fn encode_layer(
    tile: TileCoord,
    spec: &LayerSpec<'_>,
    features: &[TileFeature<'_>],
) -> (Vec<u8>, LayerStats) {
    let transform = Transform::new(tile);
    let buffer = spec.options.buffer as f64;
    let window = Window {
        min: -buffer,
        max: EXTENT as f64 + buffer,
    };
    let mut stats = LayerStats::default();
    let mut tolerance = spec.options.simplify;
    let mut encoded;
    let mut pass = 0u8;
    loop {
        encoded = features
            .iter()
            .enumerate()
            .filter_map(|(i, f)| encode_geometry(f, i, &transform, &window, tolerance))
            .collect::<Vec<_>>();
        let estimate: usize = encoded.iter().map(|e| e.commands.len() * 2 + 16).sum();
        if estimate <= spec.options.max_bytes || pass == 3 || tolerance == 0.0 && pass > 0 {
            break;
        }
        pass += 1;
        tolerance = tolerance.max(1.0) * 4.0;
    }
    stats.extra_simplification_passes = pass;
    let estimate: usize = encoded.iter().map(|e| e.commands.len() * 2 + 16).sum();
    if estimate > spec.options.max_bytes {
        // Keep the biggest features first, in source order among those kept.
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by(|a, b| encoded[*b].size.total_cmp(&encoded[*a].size));
        let mut keep = vec![false; encoded.len()];
        let mut used = 0;
        for i in order {
            let cost = encoded[i].commands.len() * 2 + 16;
            if used + cost <= spec.options.max_bytes {
                used += cost;
                keep[i] = true;
            }
        }
        let before = encoded.len();
        let mut k = keep.into_iter();
        encoded.retain(|_| k.next().unwrap_or(false));
        stats.dropped_for_budget = before - encoded.len();
    }
    stats.features = encoded.len();
    stats.labels = push_labels(tile, spec, features, &transform, &mut encoded);
    let body = assemble(spec, features, &encoded);
    stats.bytes = body.len();
    (body, stats)
}

/// Adds a point for each label that lies in the tile proper (not its buffer:
/// a point there belongs to the neighbour) of a feature kept in the tile.
/// Which tile holds a point is decided from its global position, so exactly
/// one tile of a zoom does, even on a tile edge.
fn push_labels(
    tile: TileCoord,
    spec: &LayerSpec<'_>,
    features: &[TileFeature<'_>],
    transform: &Transform,
    encoded: &mut Vec<Encoded>,
) -> usize {
    if spec.label.is_none() {
        return 0;
    }
    let kept = encoded.len();
    for i in 0..kept {
        let source = encoded[i].source;
        let Some(label) = features[source].label else {
            continue;
        };
        if !tile.holds(label.x, label.y) {
            continue;
        }
        let p = transform.apply(geo::Coord {
            x: label.x,
            y: label.y,
        });
        let last = EXTENT as i32 - 1;
        let at = [
            (p.x.floor() as i32).clamp(0, last),
            (p.y.floor() as i32).clamp(0, last),
        ];
        let mut cmd = Commands::default();
        cmd.out.push(Commands::command(1, 1));
        cmd.delta(at);
        encoded.push(Encoded {
            id: features[source].id,
            kind: GeomType::Point,
            commands: cmd.out,
            size: 0.0,
            source,
            label: true,
        });
    }
    encoded.len() - kept
}

fn assemble(spec: &LayerSpec<'_>, features: &[TileFeature<'_>], encoded: &[Encoded]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut key_index: HashMap<&str, u32> = HashMap::new();
    let mut values: Vec<&Value> = Vec::new();
    let mut value_index: HashMap<ValueKey, u32> = HashMap::new();
    let mut body = Vec::with_capacity(encoded.len() * 64);
    pbf::uint_field(&mut body, 15, 2);
    pbf::bytes_field(&mut body, 1, spec.name.as_bytes());
    let mut feature = Vec::new();
    let mut tags = Vec::new();
    // The angle of each line label, as a value the table can point at.
    let angles: Vec<Option<Value>> = (encoded.iter())
        .map(|e| e.label.then(|| features[e.source].label?.angle).flatten())
        .map(|a| a.map(|a| Value::Int(a as i64)))
        .collect();
    for (e, angle) in encoded.iter().zip(&angles) {
        let source = &features[e.source];
        tags.clear();
        let fields = match &spec.label {
            Some(field) if e.label => std::slice::from_ref(field),
            _ => &spec.fields[..],
        };
        let angle_tag = angle.as_ref().map(|v| (LABEL_ANGLE_KEY, v));
        for (name, v) in fields
            .iter()
            .filter_map(|(name, idx)| Some((*name, source.properties.get(*idx)?)))
            .chain(angle_tag)
        {
            if v.is_null() {
                continue;
            }
            let k = *key_index.entry(name).or_insert_with(|| {
                keys.push(name);
                keys.len() as u32 - 1
            });
            let vk = ValueKey::of(v);
            let vi = *value_index.entry(vk).or_insert_with(|| {
                values.push(v);
                values.len() as u32 - 1
            });
            tags.push(k);
            tags.push(vi);
        }
        feature.clear();
        // Ids stay unique in the layer (MVT 2.1 4.2): a label point has none.
        if !e.label {
            pbf::uint_field(&mut feature, 1, e.id);
        }
        pbf::packed_u32(&mut feature, 2, &tags);
        pbf::uint_field(&mut feature, 3, e.kind as u64);
        pbf::packed_u32(&mut feature, 4, &e.commands);
        pbf::bytes_field(&mut body, 2, &feature);
    }
    for k in keys {
        pbf::bytes_field(&mut body, 3, k.as_bytes());
    }
    let mut v = Vec::new();
    for value in values {
        v.clear();
        match value {
            Value::Text(s) => pbf::bytes_field(&mut v, 1, s.as_bytes()),
            Value::Float(f) => {
                pbf::key(&mut v, 3, pbf::FIXED64);
                v.extend_from_slice(&f.to_le_bytes());
            }
            Value::Int(i) if *i < 0 => pbf::uint_field(&mut v, 6, ((*i << 1) ^ (*i >> 63)) as u64),
            Value::Int(i) => pbf::uint_field(&mut v, 5, *i as u64),
            Value::Bool(b) => pbf::uint_field(&mut v, 7, *b as u64),
            Value::Null => {}
        }
        pbf::bytes_field(&mut body, 4, &v);
    }
    pbf::uint_field(&mut body, 5, EXTENT as u64);
    body
}

/// Values are deduplicated by type and exact bits (1 and 1.0 stay distinct).
#[derive(Hash, PartialEq, Eq)]
enum ValueKey {
    Text(String),
    Float(u64),
    Int(i64),
    Bool(bool),
    Null,
}

impl ValueKey {
    fn of(v: &Value) -> ValueKey {
        match v {
            Value::Text(s) => ValueKey::Text(s.clone()),
            Value::Float(f) => ValueKey::Float(f.to_bits()),
            Value::Int(i) => ValueKey::Int(*i),
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::Null => ValueKey::Null,
        }
    }
}

struct Transform {
    min_x: f64,
    max_y: f64,
    scale: f64,
}

impl Transform {
    fn new(tile: TileCoord) -> Self {
        let b = tile.bounds();
        Transform {
            min_x: b.min_x,
            max_y: b.max_y,
            scale: EXTENT as f64 / (b.max_x - b.min_x),
        }
    }
    fn apply(&self, c: geo::Coord<f64>) -> geo::Coord<f64> {
        geo::Coord {
            x: (c.x - self.min_x) * self.scale,
            y: (self.max_y - c.y) * self.scale,
        }
    }
    fn line(&self, l: &LineString<f64>) -> LineString<f64> {
        LineString::new(l.0.iter().map(|c| self.apply(*c)).collect())
    }
    fn polygon(&self, p: &Polygon<f64>) -> Polygon<f64> {
        Polygon::new(
            self.line(p.exterior()),
            p.interiors().iter().map(|r| self.line(r)).collect(),
        )
    }
}

fn encode_geometry(
    f: &TileFeature<'_>,
    source: usize,
    t: &Transform,
    w: &Window,
    tolerance: f64,
) -> Option<Encoded> {
    let mut cmd = Commands::default();
    let (kind, size) = match f.geometry {
        Geometry::Polygon(p) => (GeomType::Polygon, polygon(&mut cmd, p, t, w, tolerance)),
        Geometry::MultiPolygon(mp) => (
            GeomType::Polygon,
            mp.0.iter()
                .map(|p| polygon(&mut cmd, p, t, w, tolerance))
                .fold(0.0, f64::max),
        ),
        Geometry::LineString(l) => (GeomType::Line, line(&mut cmd, l, t, w, tolerance)),
        Geometry::MultiLineString(ml) => (
            GeomType::Line,
            ml.0.iter()
                .map(|l| line(&mut cmd, l, t, w, tolerance))
                .fold(0.0, f64::max),
        ),
        Geometry::Point(p) => (GeomType::Point, points(&mut cmd, &[p.0], t, w)),
        Geometry::MultiPoint(mp) => {
            let pts: Vec<_> = mp.0.iter().map(|p| p.0).collect();
            (GeomType::Point, points(&mut cmd, &pts, t, w))
        }
        _ => return None,
    };
    if cmd.out.is_empty() {
        return None;
    }
    Some(Encoded {
        id: f.id,
        kind,
        commands: cmd.out,
        size,
        source,
        label: false,
    })
}

/// MVT geometry commands with the cursor carried across parts.
#[derive(Default)]
struct Commands {
    out: Vec<u32>,
    cursor: [i32; 2],
}

impl Commands {
    fn command(id: u32, count: usize) -> u32 {
        (id & 0x7) | ((count as u32) << 3)
    }
    fn delta(&mut self, p: [i32; 2]) {
        self.out.push(pbf::zigzag(p[0] - self.cursor[0]));
        self.out.push(pbf::zigzag(p[1] - self.cursor[1]));
        self.cursor = p;
    }
    fn path(&mut self, pts: &[[i32; 2]], close: bool) {
        self.out.push(Self::command(1, 1));
        self.delta(pts[0]);
        self.out.push(Self::command(2, pts.len() - 1));
        for p in &pts[1..] {
            self.delta(*p);
        }
        if close {
            self.out.push(Self::command(7, 1));
        }
    }
}

fn quantize(pts: &[Pt]) -> Vec<[i32; 2]> {
    let mut out: Vec<[i32; 2]> = Vec::with_capacity(pts.len());
    for p in pts {
        let q = [p[0].round() as i32, p[1].round() as i32];
        if out.last() != Some(&q) {
            out.push(q);
        }
    }
    out
}

/// Twice the signed area in tile space (y down): positive is an MVT exterior ring.
fn signed_area2(ring: &[[i32; 2]]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] as i64 * b[1] as i64 - b[0] as i64 * a[1] as i64
        })
        .sum()
}

fn ring_points(ring: &LineString<f64>) -> Vec<Pt> {
    ring.0.iter().map(|c| [c.x, c.y]).collect()
}

/// Returns the feature's extent in tile units, 0 when nothing is left.
fn polygon(cmd: &mut Commands, p: &Polygon<f64>, t: &Transform, w: &Window, tol: f64) -> f64 {
    let mut p = t.polygon(p);
    let Some(bbox) = geo::BoundingRect::bounding_rect(&p) else {
        return 0.0;
    };
    let (min, max) = ([bbox.min().x, bbox.min().y], [bbox.max().x, bbox.max().y]);
    if w.misses_box(min, max) {
        return 0.0;
    }
    if tol > 0.0 {
        p = p.simplify_vw_preserve(tol * tol);
    }
    let inside = w.contains_box(min, max);
    let mut rings = std::iter::once(p.exterior()).chain(p.interiors().iter());
    let prepare = |ring: &LineString<f64>, exterior: bool| -> Option<Vec<[i32; 2]>> {
        let pts = ring_points(ring);
        let pts = if inside {
            pts
        } else {
            clip::clip_ring(&pts, w)
        };
        let mut q = quantize(&pts);
        if q.len() > 1 && q.first() == q.last() {
            q.pop();
        }
        if q.len() < 3 {
            return None;
        }
        let area = signed_area2(&q);
        if area == 0 {
            return None;
        }
        if (area > 0) != exterior {
            q.reverse();
        }
        Some(q)
    };
    let Some(exterior) = rings.next().and_then(|r| prepare(r, true)) else {
        return 0.0;
    };
    cmd.path(&exterior, true);
    for hole in rings {
        if let Some(h) = prepare(hole, false) {
            cmd.path(&h, true);
        }
    }
    let (dx, dy) = (max[0] - min[0], max[1] - min[1]);
    (dx * dx + dy * dy).sqrt()
}

fn line(cmd: &mut Commands, l: &LineString<f64>, t: &Transform, w: &Window, tol: f64) -> f64 {
    let mut l = t.line(l);
    let Some(bbox) = geo::BoundingRect::bounding_rect(&l) else {
        return 0.0;
    };
    let (min, max) = ([bbox.min().x, bbox.min().y], [bbox.max().x, bbox.max().y]);
    if w.misses_box(min, max) {
        return 0.0;
    }
    if tol > 0.0 {
        l = l.simplify(tol);
    }
    let pts = ring_points(&l);
    let pieces = if w.contains_box(min, max) {
        vec![pts]
    } else {
        clip::clip_line(&pts, w)
    };
    let mut any = false;
    for piece in pieces {
        let q = quantize(&piece);
        if q.len() >= 2 {
            cmd.path(&q, false);
            any = true;
        }
    }
    if !any {
        return 0.0;
    }
    let (dx, dy) = (max[0] - min[0], max[1] - min[1]);
    (dx * dx + dy * dy).sqrt()
}

fn points(cmd: &mut Commands, pts: &[geo::Coord<f64>], t: &Transform, w: &Window) -> f64 {
    let inside: Vec<[i32; 2]> = pts
        .iter()
        .map(|c| t.apply(*c))
        .filter(|c| c.x >= w.min && c.x <= w.max && c.y >= w.min && c.y <= w.max)
        .map(|c| [c.x.round() as i32, c.y.round() as i32])
        .collect();
    if inside.is_empty() {
        return 0.0;
    }
    cmd.out.push(Commands::command(1, inside.len()));
    for p in inside {
        cmd.delta(p);
    }
    1.0
}

#[cfg(test)]
mod tests;
