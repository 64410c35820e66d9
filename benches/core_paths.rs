//! The hot paths, measured on the sample city (generated into a temp dir):
//! ingest (features/s), R-tree queries, and z14 tile encoding (tiles/s).
//!
//! `cargo bench --bench core_paths`. Each group reports throughput, so numbers
//! compare as ratios across runs on the same machine.

use chizu_core::{LayerConfig, RoleSet, TileCoord};
use chizu_store::{LayerIndex, LayerSnapshot, StoredLayer};
use chizu_tiles::{LayerSpec, TileFeature};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    parcels: LayerConfig,
}

fn fixture() -> Fixture {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("data-samples");
    chizu_samples::generate(
        &root.join("data-samples/kashima_outline.geojson"),
        &samples,
        1,
    )
    .unwrap();
    let roles_path = root.join("layers/roles.toml");
    let roles =
        RoleSet::from_toml(&roles_path, &std::fs::read_to_string(&roles_path).unwrap()).unwrap();
    let layer_path = dir.path().join("layers/parcels.toml");
    std::fs::create_dir_all(layer_path.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(root.join("layers/parcels.toml")).unwrap();
    let parcels = LayerConfig::from_toml(Path::new(&layer_path), &text, &roles).unwrap();
    Fixture { _dir: dir, parcels }
}

fn index_of(config: &LayerConfig) -> LayerIndex {
    let prepared = chizu_io::prepare_layer(config, &Default::default(), &mut |_| {}).unwrap();
    LayerIndex::build(LayerSnapshot {
        meta: StoredLayer {
            config: config.clone(),
            version: 1,
            source_sha256: String::new(),
            ingested_at: String::new(),
            feature_count: prepared.features.len() as u64,
            invalid_count: 0,
            repaired_count: 0,
            skipped_count: 0,
            bounds: prepared.report.bounds,
        },
        features: prepared.features,
    })
}

/// Every z14 tile that holds at least one parcel.
fn z14_tiles(index: &LayerIndex) -> Vec<TileCoord> {
    let mut tiles = std::collections::BTreeSet::new();
    for f in index.features.iter() {
        let b = chizu_core::Bounds::of_geometry(&f.mercator);
        tiles.insert(TileCoord::containing(14, b.min_x, b.max_y));
    }
    tiles.into_iter().collect()
}

fn benches(c: &mut Criterion) {
    let fx = fixture();

    let mut ingest = c.benchmark_group("ingest");
    ingest.sample_size(10);
    let count = chizu_io::prepare_layer(&fx.parcels, &Default::default(), &mut |_| {})
        .unwrap()
        .features
        .len();
    ingest.throughput(Throughput::Elements(count as u64));
    ingest.bench_function("parcels_shapefile_cp932_to_wgs84", |b| {
        b.iter(|| chizu_io::prepare_layer(&fx.parcels, &Default::default(), &mut |_| {}).unwrap())
    });
    ingest.finish();

    let index = index_of(&fx.parcels);
    let tiles = z14_tiles(&index);

    let mut rtree = c.benchmark_group("rtree");
    rtree.throughput(Throughput::Elements(tiles.len() as u64));
    rtree.bench_function("query_every_z14_tile", |b| {
        b.iter(|| {
            tiles
                .iter()
                .map(|t| index.query(&t.bounds()).len())
                .sum::<usize>()
        })
    });
    rtree.finish();

    let mut encode = c.benchmark_group("tiles");
    encode.sample_size(10);
    encode.throughput(Throughput::Elements(tiles.len() as u64));
    let config = &fx.parcels;
    let spec = LayerSpec {
        name: &config.id,
        label: None,
        fields: config
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), i))
            .collect(),
        options: &config.tiles,
    };
    for (name, zoom_in) in [("z14", 0u8), ("z16", 2)] {
        let coords: Vec<TileCoord> = if zoom_in == 0 {
            tiles.clone()
        } else {
            tiles
                .iter()
                .map(|t| TileCoord::new(16, t.x() * 4 + 1, t.y() * 4 + 1).unwrap())
                .collect()
        };
        encode.bench_with_input(
            BenchmarkId::new("encode_parcels", name),
            &coords,
            |b, coords| {
                b.iter(|| {
                    let mut bytes = 0;
                    for t in coords {
                        let features: Vec<TileFeature<'_>> = index
                            .query(&t.bounds().buffered(t.bounds().max_x - t.bounds().min_x))
                            .into_iter()
                            .map(|f| TileFeature {
                                id: f.id,
                                geometry: &f.mercator,
                                properties: &f.properties,
                                label: None,
                                simplified: None,
                            })
                            .collect();
                        bytes += chizu_tiles::encode_layer(*t, &spec, &features).0.len();
                    }
                    bytes
                })
            },
        );
    }
    encode.finish();

    // The permission layer's cost on the tile path: the same z14 tiles rendered
    // (a) with one anonymous view computed once, as a server without
    // permissions would; (b) computing the caller's view per tile, as chizu does
    // per request, for the public and for staff (more fields, personal data).
    let mut perms = c.benchmark_group("permissions");
    perms.sample_size(10);
    perms.throughput(Throughput::Elements(tiles.len() as u64));
    let configs = vec![index.meta.config.clone()];
    let index: std::sync::Arc<dyn chizu_store::LayerSource> = std::sync::Arc::new(index);
    let anonymous = chizu_access::Caller::anonymous();
    let staff = chizu_access::Caller::user("bench", ["staff".to_string()]);
    let fixed = chizu_access::View::for_caller(&anonymous, &configs);
    let fixed_layers = vec![(index.clone(), fixed.layer("parcels").unwrap().clone())];
    perms.bench_function("fixed_anonymous_view", |b| {
        b.iter(|| {
            tiles
                .iter()
                .map(|t| {
                    chizu_server::render_tile(*t, &fixed_layers, true, chizu_tiles::Threads::One)
                        .unwrap()
                        .raw
                        .len()
                })
                .sum::<usize>()
        })
    });
    for (name, caller) in [
        ("view_per_tile_public", &anonymous),
        ("view_per_tile_staff", &staff),
    ] {
        perms.bench_function(name, |b| {
            b.iter(|| {
                tiles
                    .iter()
                    .map(|t| {
                        let view = chizu_access::View::for_caller(caller, &configs);
                        let layers = vec![(index.clone(), view.layer("parcels").unwrap().clone())];
                        chizu_server::render_tile(*t, &layers, true, chizu_tiles::Threads::One)
                            .unwrap()
                            .raw
                            .len()
                    })
                    .sum::<usize>()
            })
        });
    }
    perms.finish();

    // Label glyphs: one range of 256 code points rendered as distance fields
    // (what a cold cache costs per range; afterwards ranges are served from
    // memory). Latin (0-255) against kanji (U+5700-57FF, which holds 地).
    let font = std::path::PathBuf::from("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc");
    if font.exists() {
        let fonts = chizu_tiles::glyphs::FontLibrary::load(&[font]).expect("font loads");
        let mut glyphs = c.benchmark_group("glyphs");
        glyphs.sample_size(10);
        glyphs.throughput(Throughput::Elements(256));
        let stack = fonts.resolve("Noto Sans CJK JP Regular");
        for (name, start) in [("latin_0_255", 0u32), ("kanji_22272_22527", 22272)] {
            glyphs.bench_function(name, |b| {
                b.iter(|| {
                    fonts
                        .render_range(&stack, start, start + 255)
                        .unwrap()
                        .len()
                })
            });
        }
        glyphs.finish();
    }
}

/// Validating one ring of n vertices (a wavy circle, valid): near-linear
/// with the R-tree, where geo's own test compares every pair of segments.
fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_ring");
    group.sample_size(10);
    for n in [10_000usize, 40_000, 80_000] {
        let mut ring: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                let r = 1000.0 + 5.0 * (a * 400.0).sin();
                (a.cos() * r, a.sin() * r)
            })
            .collect();
        ring.push(ring[0]);
        let polygon: geo::Geometry<f64> =
            geo::Polygon::new(geo::LineString::from(ring), vec![]).into();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &polygon, |b, p| {
            b.iter(|| assert!(chizu_io::validate::problem(p).is_none()))
        });
        // The baseline, in the same run: geo's own validation (every pair of
        // segments), at the smallest size only (it is quadratic).
        if n == 10_000 {
            group.bench_with_input(BenchmarkId::new("geo", n), &polygon, |b, p| {
                b.iter(|| assert!(geo::Validation::is_valid(p)))
            });
        }
    }
    group.finish();
}

criterion_group!(core_paths, benches, validation);
criterion_main!(core_paths);
