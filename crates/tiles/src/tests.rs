use super::*;
use geo::Geometry;
use geozero::mvt::{Message, Tile};

fn tile() -> TileCoord {
    TileCoord::new(14, 14112, 6593).unwrap()
}

/// A square of `size` metres at `(fx, fy)` of the way across the tile.
fn square(fx: f64, fy: f64, size: f64) -> Geometry<f64> {
    let b = tile().bounds();
    let x = b.min_x + fx * (b.max_x - b.min_x);
    let y = b.min_y + fy * (b.max_y - b.min_y);
    geo::Rect::new((x, y), (x + size, y + size))
        .to_polygon()
        .into()
}

fn spec(options: TileOptions) -> LayerSpec<'static> {
    LayerSpec {
        name: "parcels",
        label: None,
        fields: vec![("chiban", 0), ("area_m2", 1)],
        // Leaked: a few bytes per test, for a 'static spec.
        options: Box::leak(Box::new(options)),
    }
}

fn decode(bytes: &[u8]) -> Tile {
    Tile::decode(bytes).expect("valid protobuf")
}

/// A tile of the one layer message `encode_layer` returns.
fn decode_layer(body: &[u8]) -> Tile {
    let mut tile = Vec::new();
    pbf::bytes_field(&mut tile, 3, body);
    decode(&tile)
}

#[test]
fn encodes_ids_attributes_and_clockwise_exteriors() {
    let g = square(0.25, 0.25, 100.0);
    let props = [Value::Text("1234-5".into()), Value::Float(812.5)];
    let features = vec![TileFeature {
        id: 7,
        geometry: &g,
        properties: &props,
        label: None,
        simplified: None,
    }];
    let (bytes, stats) = encode_tile(tile(), &[(spec(TileOptions::default()), features)]);
    assert_eq!(stats[0].features, 1);
    let t = decode(&bytes);
    let layer = &t.layers[0];
    assert_eq!(layer.name, "parcels");
    assert_eq!(layer.extent, Some(4096));
    assert_eq!(layer.keys, vec!["chiban", "area_m2"]);
    let f = &layer.features[0];
    assert_eq!(f.id, Some(7));
    assert_eq!(
        layer.values[f.tags[1] as usize].string_value.as_deref(),
        Some("1234-5")
    );
    assert_eq!(layer.values[f.tags[3] as usize].double_value, Some(812.5));
    // MoveTo(1), LineTo(3), ClosePath: 1 + 2 + 1 + 6 + 1 integers.
    assert_eq!(f.geometry.len(), 11);
    // Decode the ring and check its area is positive in tile space (y down).
    let mut cursor = (0i64, 0i64);
    let mut ring = vec![];
    let g = &f.geometry;
    let unzig = |v: u32| ((v >> 1) as i64) ^ -((v & 1) as i64);
    cursor.0 += unzig(g[1]);
    cursor.1 += unzig(g[2]);
    ring.push(cursor);
    for i in 0..3 {
        cursor.0 += unzig(g[4 + 2 * i]);
        cursor.1 += unzig(g[5 + 2 * i]);
        ring.push(cursor);
    }
    let area2: i64 = (0..4)
        .map(|i| ring[i].0 * ring[(i + 1) % 4].1 - ring[(i + 1) % 4].0 * ring[i].1)
        .sum();
    assert!(
        area2 > 0,
        "exterior ring must have positive area in tile space: {ring:?}"
    );
}

#[test]
fn features_are_clipped_to_the_buffer() {
    // A square much larger than the tile: clipped to [-64, 4160].
    let b = tile().bounds();
    let g: Geometry<f64> = geo::Rect::new(
        (b.min_x - 5000.0, b.min_y - 5000.0),
        (b.max_x + 5000.0, b.max_y + 5000.0),
    )
    .to_polygon()
    .into();
    let props = [Value::Null, Value::Null];
    let features = vec![TileFeature {
        id: 1,
        geometry: &g,
        properties: &props,
        label: None,
        simplified: None,
    }];
    let (bytes, _) = encode_tile(tile(), &[(spec(TileOptions::default()), features)]);
    let t = decode(&bytes);
    let geom = &t.layers[0].features[0].geometry;
    let unzig = |v: u32| ((v >> 1) as i64) ^ -((v & 1) as i64);
    let (mut x, mut y) = (unzig(geom[1]), unzig(geom[2]));
    let mut all = vec![(x, y)];
    for i in 0..((geom[3] >> 3) as usize) {
        x += unzig(geom[4 + 2 * i]);
        y += unzig(geom[5 + 2 * i]);
        all.push((x, y));
    }
    for (x, y) in all {
        assert!(
            (-64..=4160).contains(&x) && (-64..=4160).contains(&y),
            "{x},{y}"
        );
    }
    // Null attributes are left out, not encoded.
    assert!(t.layers[0].features[0].tags.is_empty());
}

#[test]
fn features_outside_and_collapsed_are_dropped() {
    let far = square(3.0, 3.0, 100.0);
    let tiny = square(0.5, 0.5, 0.01);
    let props = [Value::Null, Value::Null];
    let features = vec![
        TileFeature {
            id: 1,
            geometry: &far,
            properties: &props,
            label: None,
            simplified: None,
        },
        TileFeature {
            id: 2,
            geometry: &tiny,
            properties: &props,
            label: None,
            simplified: None,
        },
    ];
    let (bytes, stats) = encode_tile(tile(), &[(spec(TileOptions::default()), features)]);
    assert!(bytes.is_empty());
    assert_eq!(stats[0].features, 0);
}

#[test]
fn lines_keep_ids_and_split_at_the_edge() {
    let b = tile().bounds();
    let w = b.max_x - b.min_x;
    let line: Geometry<f64> = geo::LineString::from(vec![
        (b.min_x + 0.1 * w, b.min_y + 0.5 * w),
        (b.min_x + 2.0 * w, b.min_y + 0.5 * w),
    ])
    .into();
    let props = [Value::Int(-3), Value::Bool(true)];
    let features = vec![TileFeature {
        id: 9,
        geometry: &line,
        properties: &props,
        label: None,
        simplified: None,
    }];
    let (bytes, _) = encode_tile(tile(), &[(spec(TileOptions::default()), features)]);
    let t = decode(&bytes);
    let f = &t.layers[0].features[0];
    assert_eq!(f.r#type, Some(2));
    assert_eq!(t.layers[0].values[f.tags[1] as usize].sint_value, Some(-3));
    assert_eq!(
        t.layers[0].values[f.tags[3] as usize].bool_value,
        Some(true)
    );
}

#[test]
fn the_size_budget_holds() {
    // 2,000 detailed polygons against a 20 kB budget.
    let polys: Vec<Geometry<f64>> = (0..2000)
        .map(|i| {
            let b = tile().bounds();
            let w = b.max_x - b.min_x;
            let (cx, cy) = (
                b.min_x + ((i % 50) as f64 + 0.5) / 50.0 * w,
                b.min_y + ((i / 50) as f64 + 0.5) / 40.0 * w,
            );
            let ring: Vec<(f64, f64)> = (0..64)
                .map(|k| {
                    let a = k as f64 / 64.0 * std::f64::consts::TAU;
                    let r = w / 120.0 * (1.0 + 0.2 * (5.0 * a).sin());
                    (cx + r * a.cos(), cy + r * a.sin())
                })
                .collect();
            geo::Polygon::new(ring.into(), vec![]).into()
        })
        .collect();
    let props = [Value::Null, Value::Null];
    let features: Vec<_> = polys
        .iter()
        .enumerate()
        .map(|(i, g)| TileFeature {
            id: i as u64 + 1,
            geometry: g,
            properties: &props,
            label: None,
            simplified: None,
        })
        .collect();
    let options = TileOptions {
        max_bytes: 20_000,
        ..TileOptions::default()
    };
    let (body, stats) = encode_layer(tile(), &spec(options), &features);
    assert!(body.len() <= 20_000, "{} bytes", body.len());
    assert_eq!(stats.bytes, body.len());
    assert!(stats.extra_simplification_passes > 0 || stats.dropped_for_budget > 0);
    // As much as fits is kept: the budget is not met by emptying the tile.
    assert!(body.len() > 15_000, "{} bytes", body.len());
    let t = decode_layer(&body);
    assert_eq!(t.layers.len(), 1);
    assert_eq!(t.layers[0].features.len(), stats.features);
    let unlimited = TileOptions {
        max_bytes: usize::MAX,
        ..TileOptions::default()
    };
    let (big, _) = encode_layer(tile(), &spec(unlimited), &features);
    assert!(big.len() > body.len());
}

#[test]
fn wkt_multipolygon_with_hole_keeps_hole_counter_clockwise() {
    let b = tile().bounds();
    let (x, y, w) = (b.min_x, b.min_y, b.max_x - b.min_x);
    let s = |v: f64| v * w;
    let g: Geometry<f64> = geo::Polygon::new(
        vec![
            (x + s(0.1), y + s(0.1)),
            (x + s(0.9), y + s(0.1)),
            (x + s(0.9), y + s(0.9)),
            (x + s(0.1), y + s(0.9)),
        ]
        .into(),
        vec![
            vec![
                (x + s(0.4), y + s(0.4)),
                (x + s(0.6), y + s(0.4)),
                (x + s(0.6), y + s(0.6)),
                (x + s(0.4), y + s(0.6)),
            ]
            .into(),
        ],
    )
    .into();
    let props = [Value::Null, Value::Null];
    let (bytes, _) = encode_tile(
        tile(),
        &[(
            spec(TileOptions::default()),
            vec![TileFeature {
                id: 1,
                geometry: &g,
                properties: &props,
                label: None,
                simplified: None,
            }],
        )],
    );
    // geozero's MVT reader is strict about winding: it must accept the polygon.
    use geozero::ToGeo;
    let t = decode(&bytes);
    let geo = t.layers[0].features[0].to_geo().expect("decodes");
    let Geometry::Polygon(p) = geo else {
        panic!("{geo:?}")
    };
    assert_eq!(p.interiors().len(), 1);
}

/// Features 1, 2, ... of these geometries and properties, without labels.
fn numbered<'a>(geoms: &'a [Geometry<f64>], props: &'a [Vec<Value>]) -> Vec<TileFeature<'a>> {
    (geoms.iter().zip(props).enumerate())
        .map(|(i, (g, p))| TileFeature {
            id: i as u64 + 1,
            geometry: g,
            properties: p,
            label: None,
            simplified: None,
        })
        .collect()
}

/// Squares of `side` tile units on a grid over the tile, each with `attrs`
/// distinct text attributes.
fn squares(side: f64, count: usize) -> Vec<Geometry<f64>> {
    let b = tile().bounds();
    let unit = (b.max_x - b.min_x) / EXTENT as f64;
    let per_row = (count as f64).sqrt().ceil() as usize;
    (0..count)
        .map(|i| {
            let x = b.min_x + ((i % per_row) as f64 + 0.1) * 4000.0 / per_row as f64 * unit;
            let y = b.min_y + ((i / per_row) as f64 + 0.1) * 4000.0 / per_row as f64 * unit;
            let s = side * unit;
            geo::Rect::new((x, y), (x + s, y + s)).to_polygon().into()
        })
        .collect()
}

#[test]
fn features_under_a_pixel_go_first_with_their_area() {
    // 3,000 specks (1 unit) and 10 fields of text each: far over 20 kB;
    // 20 squares of 100 units stay.
    let mut geoms = squares(1.0, 3000);
    geoms.extend(squares(100.0, 20));
    let texts: Vec<Vec<Value>> = (0..geoms.len())
        .map(|i| {
            (0..10)
                .map(|k| Value::Text(format!("v{i}-{k}").into()))
                .collect()
        })
        .collect();
    let features = numbered(&geoms, &texts);
    let options = TileOptions {
        max_bytes: 20_000,
        ..TileOptions::default()
    };
    let mut s = spec(options);
    s.fields = (0..10).map(|k| (&*format!("f{k}").leak(), k)).collect();
    let (body, stats) = encode_layer(tile(), &s, &features);
    assert!(body.len() <= 20_000, "{} bytes", body.len());
    // A square unit each: every 64th completes a pixel and stays as one
    // (give or take the last, as the areas are summed in metres).
    let pixels = stats.small_as_pixels;
    assert!((3000 / 64 - 1..=3000 / 64).contains(&pixels), "{pixels}");
    assert_eq!(stats.dropped_small, 3000 - pixels);
    assert_eq!(stats.dropped_for_budget, 0);
    assert_eq!(stats.features, 20 + pixels);
    let speck = geoms[0].unsigned_area();
    let dropped = stats.dropped_small as f64 * speck;
    assert!((stats.dropped_small_area - dropped).abs() < 1e-6 * dropped);
    let t = decode_layer(&body);
    let ids: Vec<u64> = t.layers[0].features.iter().map(|f| f.id.unwrap()).collect();
    assert_eq!(ids.len(), 20 + pixels);
    assert_eq!(ids[pixels..], (3001..=3020).collect::<Vec<u64>>());
    assert!(ids[..pixels].iter().all(|id| *id <= 3000));
    // The stand-ins are one-pixel squares (8 units) with their attributes.
    let square = &t.layers[0].features[0];
    assert_eq!(square.geometry.len(), 11, "{:?}", square.geometry);
    assert_eq!(square.tags.len(), 20);
}

#[test]
fn the_budget_holds_for_any_budget_and_keeps_the_largest() {
    let geoms: Vec<Geometry<f64>> = (1..=400)
        .map(|i| squares(10.0 + i as f64, 1).remove(0))
        .collect();
    let texts: Vec<Vec<Value>> = (0..geoms.len())
        .map(|i| vec![Value::Text("x".repeat(i % 50).into()), Value::Int(i as i64)])
        .collect();
    let features = numbered(&geoms, &texts);
    for budget in [1024, 1500, 4000, 9000] {
        let options = TileOptions {
            max_bytes: budget,
            ..TileOptions::default()
        };
        let (body, stats) = encode_layer(tile(), &spec(options), &features);
        assert!(body.len() <= budget, "{} > {budget}", body.len());
        let t = decode_layer(&body);
        let ids: Vec<u64> = t.layers[0].features.iter().map(|f| f.id.unwrap()).collect();
        assert_eq!(ids.len(), stats.features);
        assert!(stats.features > 0, "budget {budget}");
        // The kept ones are the largest (the highest ids here), in order.
        // Written largest first.
        let lowest = *ids.iter().min().unwrap();
        assert_eq!(
            ids,
            (lowest..=400).rev().collect::<Vec<u64>>(),
            "budget {budget}"
        );
        assert_eq!(stats.dropped_for_budget, 400 - ids.len());
        assert!(stats.dropped_for_budget > 0);
    }
    // Within budget, every feature in source order.
    let options = TileOptions {
        max_bytes: 20_000,
        ..TileOptions::default()
    };
    let (body, stats) = encode_layer(tile(), &spec(options), &features);
    let t = decode_layer(&body);
    let ids: Vec<u64> = t.layers[0].features.iter().map(|f| f.id.unwrap()).collect();
    assert_eq!(ids, (1..=400).collect::<Vec<u64>>());
    assert!(!stats.generalised());
}

/// A precomputed simplification (a layer's per-zoom generalisation) gives
/// the very bytes the encoder computes on its own, for polygons inside the
/// tile, across its edge, multipolygons and tiny ones under the budget's
/// pixel rule; it does not apply to the budget's coarser passes.
#[test]
fn a_precomputed_simplification_gives_the_same_tile() {
    let b = tile().bounds();
    let w = b.max_x - b.min_x;
    let star = |cx: f64, cy: f64, r: f64, n: usize| -> geo::Polygon<f64> {
        let ring: Vec<(f64, f64)> = (0..n)
            .map(|k| {
                let a = k as f64 / n as f64 * std::f64::consts::TAU;
                let r = r * (1.0 + 0.05 * ((k * 7919) % 13) as f64 / 13.0);
                (cx + r * a.cos(), cy + r * a.sin())
            })
            .collect();
        geo::Polygon::new(ring.into(), vec![])
    };
    let geometries: Vec<Geometry<f64>> = vec![
        star(b.min_x + 0.5 * w, b.min_y + 0.5 * w, 0.2 * w, 500).into(),
        star(b.max_x, b.min_y + 0.3 * w, 0.3 * w, 900).into(),
        geo::MultiPolygon(vec![
            star(b.min_x + 0.2 * w, b.min_y + 0.8 * w, 0.05 * w, 80),
            star(b.min_x + 0.8 * w, b.min_y + 0.8 * w, 0.08 * w, 120),
        ])
        .into(),
        star(b.min_x + 0.9 * w, b.min_y + 0.1 * w, 0.0005 * w, 40).into(),
    ];
    let z = tile().z();
    let tolerance = TileOptions::default().simplify;
    let simplified: Vec<Geometry<f64>> = (geometries.iter())
        .map(|g| match g {
            Geometry::Polygon(p) => chizu_core::tile::simplify_for_zoom(p, z, tolerance).into(),
            Geometry::MultiPolygon(mp) => geo::MultiPolygon(
                (mp.0.iter())
                    .map(|p| chizu_core::tile::simplify_for_zoom(p, z, tolerance))
                    .collect(),
            )
            .into(),
            _ => unreachable!(),
        })
        .collect();
    let encode = |precomputed: bool, options: TileOptions| {
        let features: Vec<TileFeature> = (geometries.iter().zip(&simplified).enumerate())
            .map(|(i, (g, s))| TileFeature {
                id: i as u64 + 1,
                geometry: g,
                properties: &[],
                label: None,
                simplified: precomputed.then_some(s),
            })
            .collect();
        encode_tile(tile(), &[(spec(options), features)])
    };
    let (plain, _) = encode(false, TileOptions::default());
    let (with, _) = encode(true, TileOptions::default());
    assert!(!plain.is_empty());
    assert_eq!(plain, with);
    // Over budget, coarser passes simplify the originals again.
    let tight = TileOptions {
        max_bytes: 1024,
        ..TileOptions::default()
    };
    let (plain, stats) = encode(false, tight.clone());
    assert!(stats[0].extra_simplification_passes > 0 || stats[0].dropped_for_budget > 0);
    assert_eq!(plain, encode(true, tight).0);
}

/// A tile encoded on every thread (an idle server) is the very bytes of one
/// encoded on one: big layers under and over their budget, side by side.
#[test]
fn every_thread_gives_the_same_tile_as_one() {
    let geoms = squares(3.0, 12_000);
    let props: Vec<Vec<Value>> = (0..geoms.len())
        .map(|i| {
            vec![
                Value::Text(format!("{i}-{}", i % 7).into()),
                Value::Int(i as i64),
            ]
        })
        .collect();
    let features = numbered(&geoms, &props);
    let layers: Vec<_> = [1024, 60_000, 2_000_000]
        .into_iter()
        .map(|max_bytes| {
            let options = TileOptions {
                max_bytes,
                ..TileOptions::default()
            };
            (spec(options), features.clone())
        })
        .collect();
    let (one, one_stats) = encode_tile_on(tile(), &layers, Threads::One);
    let (all, all_stats) = encode_tile_on(tile(), &layers, Threads::All);
    assert_eq!(one_stats, all_stats);
    assert!(
        one_stats[0].generalised() && !one_stats[2].generalised(),
        "{one_stats:?}"
    );
    assert_eq!(one_stats[2].features, 12_000);
    assert!(one == all, "the bytes differ");
}
