//! A deterministic synthetic Kashima (鹿島市, Saga) for demos, tests and benchmarks.
//!
//! The city outline is real (the Japan Meteorological Agency's municipal area,
//! committed as `data-samples/kashima_outline.geojson`); everything inside it is
//! generated: a street grid of blocks split into lots (chiban = 地番), roads along
//! the blocks and a few trunk routes, water and sewer mains under the roads,
//! 用途地域 zoning around the district centres, and hazard areas. Output is in
//! JGD2011 / Japan Plane Rectangular CS II (EPSG:6670), in the formats a city
//! hands over: Shapefile with a CP932 DBF, GeoJSON, GeoPackage and FlatGeobuf.
//! Like real data it has a few bow-tie polygons, repeated vertices and empty
//! attributes. The parcels are also written as the Ministry of Justice map
//! XML (`parcels.zip`, see [`moj`]). The same seed always gives the same bytes.

pub mod moj;
mod names;
mod rng;

use chizu_core::{Feature, FieldDef, FieldType, GeometryKind, Value};
use chizu_io::gpkg::TableSpec;
use chizu_io::{IoError, Reprojector};
use geo::{Area, Contains, Coord, Geometry, LineString, MultiPolygon, Point, Polygon};
use rng::Rng;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// JGD2011 / Japan Plane Rectangular CS II: Saga prefecture's zone.
pub const CITY_EPSG: u32 = 6670;

#[derive(Debug, thiserror::Error)]
pub enum SamplesError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{0}: the city outline must hold one polygon")]
    Outline(PathBuf),
}

/// How many features of each layer were written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleCounts {
    pub parcels: usize,
    pub roads: usize,
    pub zoning: usize,
    pub water_pipes: usize,
    pub hazard: usize,
}

/// The files the generator writes, relative to its output directory.
pub const FILES: &[&str] = &[
    "parcels.shp",
    "parcels.zip",
    "parcels_control.toml",
    "parcel_ledger.csv",
    "roads.geojson",
    "zoning.gpkg",
    "water_pipes.fgb",
    "hazard.geojson",
];

/// Generates the sample city into `out`. `scale` 1 gives ~20,000 parcels; 10 gives ~200,000.
pub fn generate(outline: &Path, out: &Path, scale: u32) -> Result<SampleCounts, SamplesError> {
    std::fs::create_dir_all(out).map_err(|e| IoError::Open {
        path: out.to_path_buf(),
        source: e,
    })?;
    let city = load_outline(outline)?;
    let mut rng = Rng::new(0x006b_6173_6869_6d61 + scale as u64);
    let town = Town::lay_out(&city, scale, &mut rng);
    let mut counts = SampleCounts::default();

    let parcels = town.parcels(&mut rng);
    counts.parcels = parcels.len();
    chizu_io::shp::write(
        &out.join("parcels.shp"),
        CITY_EPSG,
        encoding_rs::SHIFT_JIS,
        &parcel_fields(),
        &parcels,
    )?;
    let mut districts: Vec<&str> = Vec::new();
    for f in &parcels {
        if let Some(Value::Text(oaza)) = f.properties.get(1)
            && !districts.contains(&oaza.as_str())
        {
            districts.push(oaza);
        }
    }
    moj::write(out, &parcels, &districts)?;
    moj::write_ledger(out, &parcels)?;
    drop(parcels);

    let roads = town.roads(&mut rng);
    counts.roads = roads.len();
    chizu_io::geojson_io::write(
        &out.join("roads.geojson"),
        "roads",
        Some(CITY_EPSG),
        &road_fields(),
        &roads,
    )?;

    let pipes = town.pipes(&roads, &mut rng);
    counts.water_pipes = pipes.len();
    chizu_io::fgb::write(
        &out.join("water_pipes.fgb"),
        "water_pipes",
        CITY_EPSG,
        GeometryKind::Line,
        &pipe_fields(),
        &pipes,
    )?;

    let zoning = town.zoning(&mut rng);
    counts.zoning = zoning.len();
    let zoning_path = out.join("zoning.gpkg");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", zoning_path.display()));
    }
    chizu_io::gpkg::write_file(
        &zoning_path,
        &TableSpec {
            table: "youto_chiiki",
            title: "用途地域",
            description: "都市計画 用途地域 (synthetic)",
            srs_id: CITY_EPSG,
            kind: GeometryKind::Polygon,
            fields: &zoning_fields(),
        },
        &zoning,
    )?;

    let hazard = town.hazard(&mut rng);
    counts.hazard = hazard.len();
    chizu_io::geojson_io::write(
        &out.join("hazard.geojson"),
        "hazard",
        Some(CITY_EPSG),
        &hazard_fields(),
        &hazard,
    )?;
    Ok(counts)
}

fn load_outline(path: &Path) -> Result<Polygon<f64>, SamplesError> {
    let mut polygons = Vec::new();
    chizu_io::geojson_io::read(path, &mut |f| {
        match f.geometry {
            Some(Geometry::Polygon(p)) => polygons.push(p),
            Some(Geometry::MultiPolygon(mp)) => polygons.extend(mp.0),
            _ => {}
        }
        Ok(())
    })?;
    let mut largest = polygons
        .into_iter()
        .max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))
        .ok_or_else(|| SamplesError::Outline(path.to_path_buf()))?;
    let to_city = Reprojector::new(4326, CITY_EPSG)?;
    let mut g = Geometry::Polygon(largest.clone());
    to_city.geometry(&mut g)?;
    if let Geometry::Polygon(p) = g {
        largest = p;
    }
    Ok(largest)
}

fn parcel_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("chiban", FieldType::Text),
        FieldDef::new("oaza", FieldType::Text),
        FieldDef::new("aza", FieldType::Text),
        FieldDef::new("chimoku", FieldType::Text),
        FieldDef::new("area_m2", FieldType::Float),
        FieldDef::new("owner_name", FieldType::Text),
    ]
}

fn road_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("route_name", FieldType::Text),
        FieldDef::new("road_class", FieldType::Text),
        FieldDef::new("width_m", FieldType::Float),
        FieldDef::new("manager", FieldType::Text),
        FieldDef::new("surface", FieldType::Text),
        FieldDef::new("last_inspected", FieldType::Date),
    ]
}

fn pipe_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("network", FieldType::Text),
        FieldDef::new("diameter_mm", FieldType::Integer),
        FieldDef::new("material", FieldType::Text),
        FieldDef::new("install_year", FieldType::Integer),
        FieldDef::new("pressure_class", FieldType::Text),
    ]
}

fn zoning_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("youto", FieldType::Text),
        FieldDef::new("youto_code", FieldType::Integer),
        FieldDef::new("kenpei_pct", FieldType::Integer),
        FieldDef::new("youseki_pct", FieldType::Integer),
        FieldDef::new("fire_zone", FieldType::Text),
    ]
}

fn hazard_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("hazard_type", FieldType::Text),
        FieldDef::new("rank", FieldType::Integer),
        FieldDef::new("label", FieldType::Text),
        FieldDef::new("status", FieldType::Text),
    ]
}

/// The town plan: one street grid (rotated to the city's main axis), its blocks
/// claimed by districts (大字 oaza) around their centres.
struct Town {
    city: Polygon<f64>,
    origin: Coord<f64>,
    angle: f64,
    lot_w: f64,
    lot_d: f64,
    street: f64,
    districts: Vec<District>,
    /// (block i, block j, district)
    blocks: Vec<(i32, i32, usize)>,
}

struct District {
    name: &'static str,
    center: Coord<f64>,
}

const LOTS_ACROSS: i32 = 4;
const LOTS_DEEP: i32 = 2;

impl Town {
    fn lay_out(city: &Polygon<f64>, scale: u32, rng: &mut Rng) -> Town {
        let bbox =
            geo::BoundingRect::bounding_rect(city).unwrap_or(geo::Rect::new((0., 0.), (1., 1.)));
        let shrink = (scale.max(1) as f64).sqrt();
        let mut town = Town {
            city: city.clone(),
            origin: bbox.center(),
            angle: 0.21,
            lot_w: 20.0 / shrink,
            lot_d: 28.0 / shrink,
            street: 8.0 / shrink.sqrt(),
            districts: Vec::new(),
            blocks: Vec::new(),
        };
        // District centres: inside the city, at least 1.3 km apart.
        let mut attempts = 0;
        while town.districts.len() < names::OAZA.len() && attempts < 20_000 {
            attempts += 1;
            let c = Coord {
                x: rng.range(bbox.min().x, bbox.max().x),
                y: rng.range(bbox.min().y, bbox.max().y),
            };
            if !city.contains(&Point::from(c)) {
                continue;
            }
            if town.districts.iter().any(|d| dist(d.center, c) < 1300.0) {
                continue;
            }
            let name = names::OAZA[town.districts.len()];
            town.districts.push(District { name, center: c });
        }
        // Each district claims the nearest free blocks until it has its share of lots.
        let target = 20_400 * scale.max(1) as usize;
        // Districts squeezed by the coast or hills fill less than their share: over-ask.
        let per_district = target * 3 / 2 / town.districts.len().max(1) + 1;
        let mut claimed = BTreeSet::new();
        for d in 0..town.districts.len() {
            let (ci, cj) = town.block_of(town.districts[d].center);
            let mut lots = 0;
            'rings: for r in 0..400 {
                for (i, j) in square_ring(ci, cj, r) {
                    if lots >= per_district {
                        break 'rings;
                    }
                    if claimed.contains(&(i, j)) {
                        continue;
                    }
                    // Every lot of the block must be inside the city.
                    let inside = town
                        .block_corners(i, j)
                        .iter()
                        .all(|c| city.contains(&Point::from(*c)));
                    if !inside {
                        continue;
                    }
                    claimed.insert((i, j));
                    town.blocks.push((i, j, d));
                    lots += (LOTS_ACROSS * LOTS_DEEP) as usize;
                }
            }
        }
        town
    }

    fn block_w(&self) -> f64 {
        LOTS_ACROSS as f64 * self.lot_w + self.street
    }
    fn block_d(&self) -> f64 {
        LOTS_DEEP as f64 * self.lot_d + self.street
    }

    /// Grid coordinates (metres along the grid axes) to EPSG:6670.
    fn world(&self, u: f64, v: f64) -> Coord<f64> {
        let (s, c) = self.angle.sin_cos();
        Coord {
            x: self.origin.x + u * c - v * s,
            y: self.origin.y + u * s + v * c,
        }
    }

    fn block_of(&self, p: Coord<f64>) -> (i32, i32) {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = (p.x - self.origin.x, p.y - self.origin.y);
        let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
        (
            (u / self.block_w()).floor() as i32,
            (v / self.block_d()).floor() as i32,
        )
    }

    fn block_corners(&self, i: i32, j: i32) -> [Coord<f64>; 4] {
        let (u0, v0) = (i as f64 * self.block_w(), j as f64 * self.block_d());
        let (u1, v1) = (u0 + self.block_w(), v0 + self.block_d());
        [
            self.world(u0, v0),
            self.world(u1, v0),
            self.world(u1, v1),
            self.world(u0, v1),
        ]
    }

    fn parcels(&self, rng: &mut Rng) -> Vec<Feature> {
        let mut features = Vec::new();
        let mut next_number = vec![1u32; self.districts.len()];
        let mut sorted = self.blocks.clone();
        sorted.sort_by_key(|&(i, j, d)| (d, j, i));
        for (i, j, d) in sorted {
            let district = &self.districts[d];
            let aza =
                names::AZA[((i.rem_euclid(7)) + (j.rem_euclid(3)) * 7) as usize % names::AZA.len()];
            let (u0, v0) = (
                i as f64 * self.block_w() + self.street / 2.0,
                j as f64 * self.block_d() + self.street / 2.0,
            );
            for m in 0..LOTS_DEEP {
                let mut k = 0;
                while k < LOTS_ACROSS {
                    // A quarter of the lots span two widths, as merged lots do.
                    let span = if k + 1 < LOTS_ACROSS && rng.chance(0.25) {
                        2
                    } else {
                        1
                    };
                    let (a, b) = (u0 + k as f64 * self.lot_w, v0 + m as f64 * self.lot_d);
                    let (c, e) = (a + span as f64 * self.lot_w, b + self.lot_d);
                    let mut ring = vec![
                        self.world(a, b),
                        self.world(c, b),
                        self.world(c, e),
                        self.world(a, e),
                    ];
                    let n = features.len();
                    // Real data: a few bow-ties (two corners swapped) and repeated vertices.
                    if n % 2111 == 17 {
                        ring.swap(1, 2);
                    } else if n % 307 == 5 {
                        ring.insert(2, ring[1]);
                    }
                    ring.push(ring[0]);
                    let polygon = Polygon::new(LineString::new(ring), vec![]);
                    let base = next_number[d];
                    let branch = rng.below(6);
                    next_number[d] += 1 + (rng.below(3) == 0) as u32;
                    let chiban = if branch == 0 {
                        format!("{base}")
                    } else {
                        format!("{base}-{branch}")
                    };
                    let from_centre = dist(district.center, self.world(a, b));
                    let chimoku = names::chimoku(from_centre, rng);
                    let aza_value = if n % 211 == 3 {
                        Value::Text(String::new().into())
                    } else {
                        Value::Text(aza.into())
                    };
                    features.push(Feature {
                        id: n as u64 + 1,
                        properties: vec![
                            Value::Text(chiban.into()),
                            Value::Text(district.name.into()),
                            aza_value,
                            Value::Text(chimoku.into()),
                            Value::Float((polygon.unsigned_area() * 100.0).round() / 100.0),
                            Value::Text(names::person(rng).into()),
                        ],
                        geometry: MultiPolygon::new(vec![polygon]).into(),
                    });
                    k += span;
                }
            }
        }
        features
    }

    /// Block edges as street segments (shared edges once), plus trunk routes.
    fn roads(&self, rng: &mut Rng) -> Vec<Feature> {
        let mut edges = BTreeSet::new();
        for &(i, j, d) in &self.blocks {
            for e in [(i, j, 0), (i, j, 1), (i + 1, j, 1), (i, j + 1, 0)] {
                edges.insert((e, d));
            }
        }
        let mut seen = BTreeSet::new();
        let mut features = Vec::new();
        for ((i, j, dir), d) in edges {
            if !seen.insert((i, j, dir)) {
                continue;
            }
            let (u, v) = (i as f64 * self.block_w(), j as f64 * self.block_d());
            let (u1, v1) = if dir == 0 {
                (u + self.block_w(), v)
            } else {
                (u, v + self.block_d())
            };
            let district = self.districts[d].name;
            let number = (i.rem_euclid(40) * 3 + j.rem_euclid(30)) as u32 + 1;
            let wide = (i.rem_euclid(5) == 0 && dir == 1) || (j.rem_euclid(6) == 0 && dir == 0);
            let (class, width, manager) = if wide {
                (
                    "市道 (幹線)",
                    9.0 + rng.below(4) as f64,
                    "鹿島市 建設環境部 建設課",
                )
            } else {
                (
                    "市道",
                    4.0 + rng.below(3) as f64,
                    "鹿島市 建設環境部 建設課",
                )
            };
            features.push(road(
                features.len(),
                vec![self.world(u, v), self.world(u1, v1)],
                format!("市道{district}{number}号線"),
                class,
                width,
                manager,
                rng,
            ));
        }
        // Trunk routes joining the district centres, as the national roads do.
        let mut centres: Vec<&District> = self.districts.iter().collect();
        centres.sort_by(|a, b| a.center.y.total_cmp(&b.center.y));
        for (k, pair) in centres.windows(2).enumerate() {
            let (a, b) = (pair[0].center, pair[1].center);
            let (name, class, manager) = match k % 3 {
                0 => ("国道207号", "一般国道", "国土交通省 九州地方整備局"),
                1 => ("国道444号", "一般国道", "佐賀県 鹿島土木事務所"),
                _ => ("県道鹿島嬉野線", "主要地方道", "佐賀県 鹿島土木事務所"),
            };
            let steps = 12;
            let mut points = Vec::new();
            for s in 0..=steps {
                let t = s as f64 / steps as f64;
                let wobble =
                    (t * std::f64::consts::PI).sin() * 120.0 * if k % 2 == 0 { 1.0 } else { -1.0 };
                let (dx, dy) = (b.x - a.x, b.y - a.y);
                let len = (dx * dx + dy * dy).sqrt().max(1.0);
                points.push(Coord {
                    x: a.x + dx * t - dy / len * wobble,
                    y: a.y + dy * t + dx / len * wobble,
                });
            }
            // Each route is cut into segments of 3 vertices, like road centreline data.
            for chunk in points.windows(3).step_by(2) {
                features.push(road(
                    features.len(),
                    chunk.to_vec(),
                    name.to_string(),
                    class,
                    12.0,
                    manager,
                    rng,
                ));
            }
        }
        features
    }

    fn pipes(&self, roads: &[Feature], rng: &mut Rng) -> Vec<Feature> {
        let mut features = Vec::new();
        for road in roads {
            let Geometry::LineString(line) = &road.geometry else {
                continue;
            };
            let networks: &[(&str, f64)] = if rng.chance(0.7) {
                &[("water", 2.0), ("sewer", -2.0)]
            } else {
                &[("water", 2.0)]
            };
            for (network, offset) in networks {
                let shifted = offset_line(line, *offset);
                let (diameter, material, year, pressure) = names::pipe(network, rng);
                features.push(Feature {
                    id: features.len() as u64 + 1,
                    geometry: geo::MultiLineString::new(vec![shifted]).into(),
                    properties: vec![
                        Value::Text((*network).into()),
                        Value::Int(diameter),
                        Value::Text(material.into()),
                        Value::Int(year),
                        Value::Text(pressure.into()),
                    ],
                });
            }
        }
        features
    }

    fn zoning(&self, rng: &mut Rng) -> Vec<Feature> {
        let mut features = Vec::new();
        let cell = 450.0;
        for d in &self.districts {
            for gi in -2..=2 {
                for gj in -2..=2 {
                    let r = ((gi * gi + gj * gj) as f64).sqrt();
                    if r > 2.3 {
                        continue;
                    }
                    let (u, v) = (gi as f64 * cell, gj as f64 * cell);
                    let corner = |du: f64, dv: f64| {
                        let (s, c) = (0.21f64).sin_cos();
                        Coord {
                            x: d.center.x + (u + du) * c - (v + dv) * s,
                            y: d.center.y + (u + du) * s + (v + dv) * c,
                        }
                    };
                    let h = cell / 2.0;
                    let ring = vec![
                        corner(-h, -h),
                        corner(h, -h),
                        corner(h, h),
                        corner(-h, h),
                        corner(-h, -h),
                    ];
                    let polygon = Polygon::new(LineString::new(ring), vec![]);
                    if !self.city.contains(&polygon.exterior().0[0]) {
                        continue;
                    }
                    let zone = names::zone_for(r, rng);
                    features.push(Feature {
                        id: features.len() as u64 + 1,
                        geometry: MultiPolygon::new(vec![polygon]).into(),
                        properties: vec![
                            Value::Text(zone.name.into()),
                            Value::Int(zone.code),
                            Value::Int(zone.coverage),
                            Value::Int(zone.floor_area),
                            Value::Text(zone.fire.into()),
                        ],
                    });
                }
            }
        }
        features
    }

    fn hazard(&self, rng: &mut Rng) -> Vec<Feature> {
        let bbox = geo::BoundingRect::bounding_rect(&self.city)
            .unwrap_or(geo::Rect::new((0., 0.), (1., 1.)));
        let mut features = Vec::new();
        let mut attempts = 0;
        while features.len() < 240 && attempts < 100_000 {
            attempts += 1;
            let c = Coord {
                x: rng.range(bbox.min().x, bbox.max().x),
                y: rng.range(bbox.min().y, bbox.max().y),
            };
            if !self.city.contains(&Point::from(c)) {
                continue;
            }
            let n = features.len();
            let (kind, rank, label) = names::hazard(n, rng);
            let radius = match kind {
                "landslide" => rng.range(60.0, 220.0),
                _ => rng.range(150.0, 700.0),
            };
            let outer = blob(c, radius, 40, rng);
            let holes = if n % 5 == 0 {
                vec![blob(c, radius * 0.3, 16, rng)]
            } else {
                vec![]
            };
            let mut parts = vec![Polygon::new(outer, holes)];
            if n % 9 == 0 {
                let other = Coord {
                    x: c.x + radius * 2.6,
                    y: c.y - radius * 0.5,
                };
                parts.push(Polygon::new(blob(other, radius * 0.5, 24, rng), vec![]));
            }
            let status = if n % 10 == 7 { "draft" } else { "published" };
            features.push(Feature {
                id: n as u64 + 1,
                geometry: MultiPolygon::new(parts).into(),
                properties: vec![
                    Value::Text(kind.into()),
                    Value::Int(rank),
                    Value::Text(label.into()),
                    Value::Text(status.into()),
                ],
            });
        }
        features
    }
}

fn road(
    n: usize,
    points: Vec<Coord<f64>>,
    name: String,
    class: &str,
    width: f64,
    manager: &str,
    rng: &mut Rng,
) -> Feature {
    let surface = if rng.chance(0.85) {
        "アスファルト"
    } else {
        "コンクリート"
    };
    let inspected = if n % 97 == 13 {
        Value::Null
    } else {
        Value::Text(
            format!(
                "{}-{:02}-{:02}",
                2015 + rng.below(10),
                1 + rng.below(12),
                1 + rng.below(28)
            )
            .into(),
        )
    };
    Feature {
        id: n as u64 + 1,
        geometry: LineString::new(points).into(),
        properties: vec![
            Value::Text(name.into()),
            Value::Text(class.into()),
            Value::Float(width),
            Value::Text(manager.into()),
            Value::Text(surface.into()),
            inspected,
        ],
    }
}

/// A noisy circle, counter-clockwise, closed.
fn blob(c: Coord<f64>, radius: f64, n: usize, rng: &mut Rng) -> LineString<f64> {
    let phase = rng.range(0.0, std::f64::consts::TAU);
    let mut pts: Vec<Coord<f64>> = (0..n)
        .map(|k| {
            let a = k as f64 / n as f64 * std::f64::consts::TAU;
            let r = radius * (1.0 + 0.18 * (3.0 * a + phase).sin() + 0.07 * (7.0 * a).cos());
            Coord {
                x: c.x + r * a.cos(),
                y: c.y + r * a.sin(),
            }
        })
        .collect();
    pts.push(pts[0]);
    LineString::new(pts)
}

fn offset_line(line: &LineString<f64>, offset: f64) -> LineString<f64> {
    let (a, b) = (line.0[0], line.0[line.0.len() - 1]);
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = (dx * dx + dy * dy).sqrt().max(1e-9);
    let (nx, ny) = (-dy / len * offset, dx / len * offset);
    LineString::new(
        line.0
            .iter()
            .map(|c| Coord {
                x: c.x + nx,
                y: c.y + ny,
            })
            .collect(),
    )
}

fn dist(a: Coord<f64>, b: Coord<f64>) -> f64 {
    ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
}

fn square_ring(ci: i32, cj: i32, r: i32) -> Vec<(i32, i32)> {
    if r == 0 {
        return vec![(ci, cj)];
    }
    let mut out = Vec::with_capacity(8 * r as usize);
    for k in -r..=r {
        out.push((ci + k, cj - r));
        out.push((ci + k, cj + r));
    }
    for k in -r + 1..r {
        out.push((ci - r, cj + k));
        out.push((ci + r, cj + k));
    }
    out
}
