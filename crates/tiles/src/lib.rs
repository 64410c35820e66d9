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
//! Size budget: a layer's share of a tile (its whole encoded message: geometry,
//! tags, keys, values) never exceeds `TileOptions::max_bytes`. The bytes are
//! measured, not estimated. Over budget, in this order, until it fits:
//! 1. features smaller than about a pixel (a bounding-box diagonal under
//!    [`PIXEL`] tile units) are left out, their count and area reported, but
//!    as tippecanoe does, the area of small polygons is carried on and each
//!    time it adds up to a pixel, the feature completing it stays as a
//!    one-pixel square: 200,000 lots at z8 still shade the city as densely
//!    as they cover it, in a few hundred features;
//! 2. the layer is encoded again with 4x, then 16x, then 64x the
//!    simplification tolerance;
//! 3. the smallest features are left out: features are written largest first
//!    (and so drawn under the smaller ones), each measured exactly as it is
//!    written, until the next one would not fit.
//!
//! Attributes are thinned before any of this by the layer file
//! (`tiles.fields_from_zoom`, applied by the caller of the encoder), so a
//! world layer's z0 tile need not carry every column. Tiles under budget (nearly
//! all) are encoded once.

mod clip;
pub mod glyphs;
mod pbf;
mod writer;

use chizu_core::label::LabelPoint;
use chizu_core::{TileCoord, TileOptions, Value};
use clip::{Pt, Window};
use geo::{Area, Geometry, LineString, Polygon, Simplify};
use writer::{LayerWriter, ValueKey};

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
    /// The geometry already simplified for this zoom at the layer's
    /// tolerance ([`chizu_core::tile::simplify_for_zoom`], precomputed once
    /// per layer version): the first pass takes it instead of simplifying.
    /// Sizes, areas and boxes still come from `geometry`, so the tile is the
    /// same bytes with or without it.
    pub simplified: Option<&'a Geometry<f64>>,
}

/// What the encoder needs of a layer: its name in the tile, the fields to write
/// (name and index into `TileFeature::properties`) and the tiling options.
#[derive(Debug, Clone)]
pub struct LayerSpec<'a> {
    pub name: &'a str,
    pub fields: Vec<(&'a str, usize)>,
    pub options: &'a TileOptions,
    /// The field label points carry (name and index into the properties),
    /// when the layer has a label and the caller may read that field.
    pub label: Option<(&'a str, usize)>,
}

/// About one screen pixel in tile units: MapLibre draws a tile 512 pixels wide.
pub const PIXEL: f64 = EXTENT as f64 / 512.0;

/// The key of a line label's angle (degrees clockwise on screen) in label
/// points: not a possible field name, so it never meets one.
pub const LABEL_ANGLE_KEY: &str = "chizu:angle";

/// What happened while encoding one layer of one tile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerStats {
    pub features: usize,
    /// The encoded layer message: what the budget holds.
    pub bytes: usize,
    /// 0 when the first encoding fit the budget.
    pub extra_simplification_passes: u8,
    /// Features under a pixel left out for the budget.
    pub dropped_small: usize,
    /// Features under a pixel kept to stand in for those left out: polygons
    /// as one-pixel squares, lines as they are.
    pub small_as_pixels: usize,
    /// Their summed area (polygons), in square Web Mercator metres.
    pub dropped_small_area: f64,
    /// Features left out last, smallest first, to meet the budget.
    pub dropped_for_budget: usize,
    /// Label points written (not counted in `features`).
    pub labels: usize,
}

impl LayerStats {
    /// Whether the budget changed what the tile holds.
    pub fn generalised(&self) -> bool {
        self.extra_simplification_passes > 0
            || self.dropped_small > 0
            || self.small_as_pixels > 0
            || self.dropped_for_budget > 0
    }
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
    /// A one-pixel square standing in for small polygons.
    pixel: bool,
}

/// How many threads one tile may use: one when the server is busy (its
/// other tiles use the other cores), all when it is idle (one visitor's
/// tiles come sooner). The bytes are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    One,
    All,
}

/// Layers with fewer features are cut on one thread: splitting costs more
/// than it saves.
const PARALLEL_FROM: usize = 2048;

/// Encodes a whole tile: one MVT layer per entry, empty layers left out.
/// Returns the bytes (empty when no layer has a feature) and per-layer stats.
pub fn encode_tile(
    tile: TileCoord,
    layers: &[(LayerSpec<'_>, Vec<TileFeature<'_>>)],
) -> (Vec<u8>, Vec<LayerStats>) {
    encode_tile_on(tile, layers, Threads::One)
}

/// [`encode_tile`] on as many threads as `threads` allows: the layers side
/// by side, and a big layer's features cut in parallel.
pub fn encode_tile_on(
    tile: TileCoord,
    layers: &[(LayerSpec<'_>, Vec<TileFeature<'_>>)],
    threads: Threads,
) -> (Vec<u8>, Vec<LayerStats>) {
    use rayon::prelude::*;
    let encode = |(spec, features): &(LayerSpec<'_>, Vec<TileFeature<'_>>)| {
        encode_layer_on(tile, spec, features, threads)
    };
    let bodies: Vec<(Vec<u8>, LayerStats)> = match threads {
        Threads::One => layers.iter().map(encode).collect(),
        Threads::All => layers.par_iter().map(encode).collect(),
    };
    let mut out = Vec::with_capacity(bodies.iter().map(|(b, _)| b.len() + 4).sum());
    let mut stats = Vec::with_capacity(layers.len());
    for (body, s) in bodies {
        if s.features > 0 {
            pbf::bytes_field(&mut out, 3, &body);
        }
        stats.push(s);
    }
    (out, stats)
}

/// Encodes one layer message (the body of `Tile.layers`), within its budget.
pub fn encode_layer(
    tile: TileCoord,
    spec: &LayerSpec<'_>,
    features: &[TileFeature<'_>],
) -> (Vec<u8>, LayerStats) {
    encode_layer_on(tile, spec, features, Threads::One)
}

fn encode_layer_on(
    tile: TileCoord,
    spec: &LayerSpec<'_>,
    features: &[TileFeature<'_>],
    threads: Threads,
) -> (Vec<u8>, LayerStats) {
    let layer = LayerEncoder::new(tile, spec, features, threads);
    let budget = spec.options.max_bytes;
    let mut stats = LayerStats::default();
    let mut tolerance = spec.options.simplify;
    let mut encoded = layer.geometries(tolerance, |_| true);
    let (mut body, mut len) = layer.attempt(&encoded, &mut stats, Length::AtLeastOverBudget);
    if len > budget {
        let small = encoded.len();
        layer.reduce_small(&mut encoded, &mut stats);
        if stats.dropped_small + stats.small_as_pixels > 0 || encoded.len() != small {
            (body, len) = layer.attempt(&encoded, &mut stats, Length::AtLeastOverBudget);
        }
        // Coarser shapes for what is left; the pixels stay as they are.
        let pixels: Vec<Encoded> = encoded.extract_if(.., |e| e.pixel).collect();
        let kept = layer.kept_sources(&encoded);
        // A pass that saves under a tenth (lots of four corners) is the last;
        // one that cannot (too little has corners to lose) is not made.
        let mut saved = shrinkable_bytes(&encoded) >= len / 10;
        while len > budget && saved && stats.extra_simplification_passes < 3 {
            stats.extra_simplification_passes += 1;
            tolerance = tolerance.max(1.0) * 4.0;
            encoded = layer.geometries(tolerance, |i| kept[i]);
            encoded.extend(pixels.iter().map(Encoded::copy));
            encoded.sort_by_key(|e| e.source);
            let before = len;
            (body, len) = layer.attempt(&encoded, &mut stats, Length::Exact);
            saved = len < before - before / 10;
        }
        if stats.extra_simplification_passes == 0 {
            encoded.extend(pixels);
            encoded.sort_by_key(|e| e.source);
        }
    }
    let body = match body {
        Some(body) if len <= budget => body,
        _ => layer.largest_that_fit(encoded, &mut stats),
    };
    stats.bytes = body.len();
    (body, stats)
}

/// One layer of one tile being encoded: the inputs and the tile transform.
struct LayerEncoder<'s, 'a> {
    tile: TileCoord,
    spec: &'s LayerSpec<'a>,
    features: &'s [TileFeature<'a>],
    transform: Transform,
    window: Window,
    threads: Threads,
}

impl<'s, 'a> LayerEncoder<'s, 'a> {
    fn new(
        tile: TileCoord,
        spec: &'s LayerSpec<'a>,
        features: &'s [TileFeature<'a>],
        threads: Threads,
    ) -> Self {
        let buffer = spec.options.buffer as f64;
        LayerEncoder {
            tile,
            spec,
            features,
            threads,
            transform: Transform::new(tile),
            window: Window {
                min: -buffer,
                max: EXTENT as f64 + buffer,
            },
        }
    }

    /// The geometries of the features `include` admits (by position) that
    /// leave something in the tile, in source order.
    /// In parallel when the encoder may use every thread: in order all the same.
    fn geometries(&self, tolerance: f64, include: impl Fn(usize) -> bool + Sync) -> Vec<Encoded> {
        use rayon::prelude::*;
        let base = tolerance == self.spec.options.simplify;
        let one = |(i, f): (usize, &TileFeature<'_>)| {
            if !include(i) {
                return None;
            }
            let simplified = f.simplified.filter(|_| base);
            let shape = Shape::new(&self.transform, &self.window, tolerance, simplified);
            encode_geometry(f, i, &shape)
        };
        if self.threads == Threads::All && self.features.len() >= PARALLEL_FROM {
            self.features
                .par_iter()
                .enumerate()
                .filter_map(one)
                .collect()
        } else {
            self.features.iter().enumerate().filter_map(one).collect()
        }
    }

    /// Leaves out the lines and polygons under a pixel, but carries their
    /// extent on: each time the area of small polygons adds up to a pixel,
    /// the polygon that completes it stays, as a one-pixel square where it
    /// lies; each time the length of short lines adds up to a pixel, the line
    /// that completes it stays as it is. Points are never small.
    fn reduce_small(&self, encoded: &mut Vec<Encoded>, stats: &mut LayerStats) {
        let pixel_area = (PIXEL / self.transform.scale).powi(2);
        let (mut carried_area, mut carried_length) = (0.0, 0.0);
        encoded.retain_mut(|e| {
            if e.size >= PIXEL || e.kind == GeomType::Point {
                return true;
            }
            let geometry = self.features[e.source].geometry;
            if e.kind == GeomType::Line {
                carried_length += e.size;
                if carried_length >= PIXEL {
                    carried_length -= PIXEL;
                    stats.small_as_pixels += 1;
                    return true;
                }
                stats.dropped_small += 1;
                return false;
            }
            let area = geometry.unsigned_area();
            carried_area += area;
            if area > 0.0 && carried_area >= pixel_area {
                carried_area -= pixel_area;
                if let Some(b) = geo::BoundingRect::bounding_rect(geometry) {
                    e.commands = pixel_square(self.transform.apply(b.center()));
                    e.pixel = true;
                    stats.small_as_pixels += 1;
                    return true;
                }
            }
            stats.dropped_small += 1;
            stats.dropped_small_area += area;
            false
        });
    }

    fn kept_sources(&self, encoded: &[Encoded]) -> Vec<bool> {
        let mut kept = vec![false; self.features.len()];
        for e in encoded {
            kept[e.source] = true;
        }
        kept
    }

    /// The layer message for these features and then their labels, and how
    /// many labels it holds. Once it grows over the budget, writing stops
    /// when `length` allows: then `None` and its length so far (over it).
    fn message(
        &self,
        encoded: &[Encoded],
        at_least: usize,
        length: Length,
    ) -> (Option<Vec<u8>>, usize, usize) {
        let budget = self.spec.options.max_bytes;
        let mut w = LayerWriter::new(
            self.spec.name,
            encoded.len().min(budget / 8),
            (at_least * 3 / 2).min(budget.saturating_add(1024)),
        );
        // Decided once the budget is passed, not before: it reads every
        // command, and most layers never pass it.
        let mut stop_over_budget = None;
        let mut over = |w: &LayerWriter<'_>| {
            w.len() > budget
                && *stop_over_budget.get_or_insert_with(|| {
                    length == Length::AtLeastOverBudget && !may_simplify(encoded, budget)
                })
        };
        for e in encoded {
            self.write(&mut w, e);
            if over(&w) {
                return (None, w.len(), 0);
            }
        }
        let mut labels = 0;
        for label in encoded.iter().filter_map(|e| self.label_of(e)) {
            self.write(&mut w, &label);
            labels += 1;
            if over(&w) {
                return (None, w.len(), 0);
            }
        }
        let len = w.len();
        (Some(w.finish()), len, labels)
    }

    /// The layer message and its length, unless a lower bound of its length
    /// (each feature takes at least 8 bytes and a byte per command) already
    /// exceeds the budget: then only that bound, and nothing is assembled.
    fn attempt(
        &self,
        encoded: &[Encoded],
        stats: &mut LayerStats,
        length: Length,
    ) -> (Option<Vec<u8>>, usize) {
        let at_least: usize = encoded.iter().map(|e| e.commands.len() + 8).sum();
        stats.features = encoded.len();
        if at_least > self.spec.options.max_bytes {
            return (None, at_least);
        }
        let (body, len, labels) = self.message(encoded, at_least, length);
        stats.labels = labels;
        (body, len)
    }

    /// Writes the largest features (each with its label) while the layer
    /// stays within the budget, measuring each exactly as it is written; the
    /// first that does not fit is undone and ends the layer. An empty layer
    /// always fits (budget >= 1 kB).
    fn largest_that_fit(&self, encoded: Vec<Encoded>, stats: &mut LayerStats) -> Vec<u8> {
        let mut order: Vec<&Encoded> = encoded.iter().collect();
        // Stable: equal sizes stay in source order.
        order.sort_by(|a, b| b.size.total_cmp(&a.size));
        let budget = self.spec.options.max_bytes;
        let mut w = LayerWriter::new(self.spec.name, order.len().min(budget / 8), budget);
        let (mut kept, mut labels) = (0, 0);
        for e in order {
            let mark = w.mark();
            self.write(&mut w, e);
            let label = self.label_of(e);
            if let Some(label) = &label {
                self.write(&mut w, label);
            }
            if w.len() > budget {
                w.undo(mark);
                break;
            }
            kept += 1;
            labels += label.is_some() as usize;
        }
        stats.features = kept;
        stats.labels = labels;
        stats.dropped_for_budget = encoded.len() - kept;
        w.finish()
    }

    /// Writes one encoded feature: a label point carries the label field
    /// (and a line label its angle), a feature the layer's fields.
    fn write(&self, w: &mut LayerWriter<'a>, e: &Encoded) {
        let source = &self.features[e.source];
        let fields: &[(&'a str, usize)] = match &self.spec.label {
            Some(field) if e.label => std::slice::from_ref(field),
            _ => &self.spec.fields,
        };
        let angle = (e.label).then(|| source.label?.angle).flatten().map(|a| {
            (
                source.properties.len(),
                LABEL_ANGLE_KEY,
                ValueKey::Int(a as i64),
            )
        });
        let properties: &'a [Value] = source.properties;
        let tags = (fields.iter())
            .filter_map(|(name, i)| Some((*i, *name, ValueKey::of(properties.get(*i)?)?)))
            .chain(angle);
        // Ids stay unique in the layer (MVT 2.1 4.2): a label point has none.
        w.push((!e.label).then_some(e.id), e.kind as u64, &e.commands, tags);
    }

    /// The point of `e`'s label, if the layer has labels, `e` one, and the
    /// point lies in the tile proper (not its buffer: a point there belongs
    /// to the neighbour). Which tile holds a point is decided from its global
    /// position, so exactly one tile of a zoom does, even on a tile edge.
    fn label_of(&self, e: &Encoded) -> Option<Encoded> {
        self.spec.label?;
        let label = self.features[e.source].label?;
        if e.label || !self.tile.holds(label.x, label.y) {
            return None;
        }
        let p = self.transform.apply(geo::Coord {
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
        Some(Encoded {
            id: e.id,
            kind: GeomType::Point,
            commands: cmd.out,
            size: 0.0,
            source: e.source,
            label: true,
            pixel: false,
        })
    }
}

struct Transform {
    z: u8,
    min_x: f64,
    max_y: f64,
    scale: f64,
}

impl Transform {
    fn new(tile: TileCoord) -> Self {
        let b = tile.bounds();
        Transform {
            z: tile.z(),
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

/// How one feature's geometry is cut for one tile.
struct Shape<'t, 'g> {
    t: &'t Transform,
    w: &'t Window,
    tol: f64,
    /// The precomputed simplification at `tol`, if any (polygons).
    simplified: Option<&'g Geometry<f64>>,
}

impl<'t, 'g> Shape<'t, 'g> {
    fn new(
        t: &'t Transform,
        w: &'t Window,
        tol: f64,
        simplified: Option<&'g Geometry<f64>>,
    ) -> Self {
        Shape {
            t,
            w,
            tol,
            simplified,
        }
    }

    /// The precomputed simplification of part `i` of a (multi)polygon.
    fn simplified_part(&self, i: usize) -> Option<&'g Polygon<f64>> {
        match self.simplified? {
            Geometry::Polygon(p) => (i == 0).then_some(p),
            Geometry::MultiPolygon(mp) => mp.0.get(i),
            _ => None,
        }
    }
}

fn encode_geometry(f: &TileFeature<'_>, source: usize, shape: &Shape<'_, '_>) -> Option<Encoded> {
    let (t, w, tolerance) = (shape.t, shape.w, shape.tol);
    let mut cmd = Commands::default();
    let (kind, size) = match f.geometry {
        Geometry::Polygon(p) => (
            GeomType::Polygon,
            polygon(&mut cmd, p, shape.simplified_part(0), t, w, tolerance),
        ),
        Geometry::MultiPolygon(mp) => (
            GeomType::Polygon,
            (mp.0.iter().enumerate())
                .map(|(i, p)| polygon(&mut cmd, p, shape.simplified_part(i), t, w, tolerance))
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
        pixel: false,
    })
}

/// How much of a layer over its budget an attempt must measure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Length {
    /// The whole length: a coarser-simplification pass compares it.
    Exact,
    /// Only that it is over the budget, unless a coarser pass may follow.
    AtLeastOverBudget,
}

/// Whether a coarser-simplification pass could follow an attempt over
/// `budget`: one is made only when it may save a tenth of the length,
/// which is then over the budget.
fn may_simplify(encoded: &[Encoded], budget: usize) -> bool {
    shrinkable_bytes(encoded) >= budget / 10
}

/// At most what coarser simplification can take off these features: the
/// geometry of polygons with more than four corners and of lines with more
/// than two points (the others keep every point at any tolerance).
fn shrinkable_bytes(encoded: &[Encoded]) -> usize {
    // MoveTo (3) + LineTo (1 + 2 a point) + ClosePath (1) for a quadrilateral;
    // MoveTo (3) + LineTo (1 + 2) for a segment.
    const QUADRILATERAL: usize = 3 + 1 + 2 * 3 + 1;
    const SEGMENT: usize = 3 + 1 + 2;
    (encoded.iter())
        .filter(|e| match e.kind {
            GeomType::Polygon => e.commands.len() > QUADRILATERAL,
            GeomType::Line => e.commands.len() > SEGMENT,
            GeomType::Point => false,
        })
        .map(|e| {
            (e.commands.iter())
                .map(|c| pbf::varint_len(*c as u64))
                .sum::<usize>()
        })
        .sum()
}

impl Encoded {
    fn copy(&self) -> Encoded {
        Encoded {
            commands: self.commands.clone(),
            ..*self
        }
    }
}

/// The commands of a square one [`PIXEL`] wide centred on `c` (tile units),
/// an exterior ring (positive area in tile space).
fn pixel_square(c: geo::Coord<f64>) -> Vec<u32> {
    let half = PIXEL / 2.0;
    let (x0, y0) = ((c.x - half).round() as i32, (c.y - half).round() as i32);
    let side = PIXEL as i32;
    let mut ring = [
        [x0, y0],
        [x0 + side, y0],
        [x0 + side, y0 + side],
        [x0, y0 + side],
    ];
    if signed_area2(&ring) < 0 {
        ring.reverse();
    }
    let mut cmd = Commands::default();
    cmd.path(&ring, true);
    cmd.out
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
        // MoveTo, LineTo and ClosePath with their points: one allocation
        // (a lot's ring grew its vector three times).
        self.out.reserve(2 + 2 * pts.len() + close as usize);
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
/// `simplified`: `p` already simplified at `tol` for this zoom.
fn polygon(
    cmd: &mut Commands,
    p: &Polygon<f64>,
    simplified: Option<&Polygon<f64>>,
    t: &Transform,
    w: &Window,
    tol: f64,
) -> f64 {
    if p.interiors().is_empty()
        && let Some(size) = small_ring(cmd, &p.exterior().0, t, w)
    {
        return size;
    }
    let Some(bbox) = geo::BoundingRect::bounding_rect(p) else {
        return 0.0;
    };
    // y flips: the box's top in Web Mercator is its top in tile units.
    let (a, b) = (t.apply(bbox.min()), t.apply(bbox.max()));
    let (min, max) = ([a.x, b.y], [b.x, a.y]);
    if w.misses_box(min, max) {
        return 0.0;
    }
    // Simplified whole, then cut: neighbouring tiles cut the same outline,
    // so no crack opens along their seam. A quadrilateral (a lot, a block)
    // has nothing to lose but a corner, and the topology-preserving pass
    // builds an R-tree per polygon: it is not simplified.
    let computed;
    let p = match simplified {
        _ if tol <= 0.0 || !chizu_core::tile::simplifies(p) => p,
        Some(s) => s,
        None => {
            computed = chizu_core::tile::simplify_for_zoom(p, t.z, tol);
            &computed
        }
    };
    let mut p = t.polygon(p);
    if !w.contains_box(min, max) {
        p = clip_polygon(&p, w);
    }
    let mut rings = std::iter::once(p.exterior()).chain(p.interiors().iter());
    let prepare = |ring: &LineString<f64>, exterior: bool| -> Option<Vec<[i32; 2]>> {
        let mut q = quantize(&ring_points(ring));
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

/// A ring of at most four corners (a lot, a block) inside the window, as
/// [`polygon`] writes it, without a single allocation: most features of a
/// cadastre. `None` when the ring is longer or needs clipping.
fn small_ring(
    cmd: &mut Commands,
    ring: &[geo::Coord<f64>],
    t: &Transform,
    w: &Window,
) -> Option<f64> {
    let mut pts = [[0.0; 2]; 5];
    if ring.len() > pts.len() {
        return None;
    }
    let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for (c, p) in ring.iter().zip(&mut pts) {
        let c = t.apply(*c);
        *p = [c.x, c.y];
        min = [min[0].min(c.x), min[1].min(c.y)];
        max = [max[0].max(c.x), max[1].max(c.y)];
    }
    if ring.is_empty() || w.misses_box(min, max) {
        return Some(0.0);
    }
    if !w.contains_box(min, max) {
        return None;
    }
    let mut q = [[0i32; 2]; 5];
    let mut n = 0;
    for p in &pts[..ring.len()] {
        let r = [p[0].round() as i32, p[1].round() as i32];
        if n == 0 || q[n - 1] != r {
            q[n] = r;
            n += 1;
        }
    }
    if n > 1 && q[0] == q[n - 1] {
        n -= 1;
    }
    let q = &mut q[..n];
    let area = if n < 3 { 0 } else { signed_area2(q) };
    if area == 0 {
        return Some(0.0);
    }
    if area < 0 {
        q.reverse();
    }
    cmd.path(q, true);
    let (dx, dy) = (max[0] - min[0], max[1] - min[1]);
    Some((dx * dx + dy * dy).sqrt())
}

/// The polygon cut to the window, ring by ring (rings left empty stay,
/// empty: `prepare` drops them).
fn clip_polygon(p: &Polygon<f64>, w: &Window) -> Polygon<f64> {
    let clip = |ring: &LineString<f64>| -> LineString<f64> {
        // Polygon::new closes the rings again.
        (clip::clip_ring(&ring_points(ring), w).into_iter())
            .map(|[x, y]| geo::Coord { x, y })
            .collect()
    };
    Polygon::new(clip(p.exterior()), p.interiors().iter().map(clip).collect())
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
