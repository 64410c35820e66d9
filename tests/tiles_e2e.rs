//! End to end: generate the sample city, ingest it with the real binary, serve it
//! on a free port, fetch tiles at many zooms and decode them with independent
//! decoders (Python mapbox-vector-tile; geozero, which rejects wrong winding).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

const LAYERS: &[(&str, u8, u8)] = &[
    ("boundary", 8, 22),
    ("hazard", 10, 22),
    ("parcels", 14, 22),
    ("roads", 12, 22),
    ("water_pipes", 13, 22),
    ("zoning", 10, 22),
];

/// The first vertex and attributes of feature `fid`, as GDAL reads them from the store.
fn feature_by_gdal(
    store: &std::path::Path,
    layer: &str,
    fid: u32,
) -> ((f64, f64), BTreeMap<String, String>) {
    let out = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            store.to_str().unwrap(),
            layer,
            "-fid",
            &fid.to_string(),
        ],
    );
    let mut attrs = BTreeMap::new();
    let mut first = None;
    for line in out.lines() {
        let line = line.trim();
        if let Some((key, value)) = line.split_once(" = ")
            && let Some((name, _ty)) = key.split_once(' ')
        {
            attrs.insert(name.to_string(), value.to_string());
        }
        if line.starts_with("MULTI")
            || line.starts_with("POLYGON")
            || line.starts_with("LINESTRING")
        {
            let start = line
                .rfind('(')
                .map(|_| line.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '-'));
            let nums: Vec<f64> = start
                .unwrap_or("")
                .split([',', ' ', ')'])
                .filter_map(|s| s.parse().ok())
                .take(2)
                .collect();
            first = Some((nums[0], nums[1]));
        }
    }
    (first.expect("ogrinfo prints the geometry"), attrs)
}

#[test]
fn tiles_are_correct_in_every_layers_zoom_range() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    // Water staff see every layer and field; the permission tests cover the rest.
    let token = city.user_with_token("mizuno", &["staff", "water"]);
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let server = Server::start(&city.store());
    let tmp = tempfile::tempdir().unwrap();

    let catalog = server.get_with("/catalog", &auth).json();
    let ids: Vec<&str> = catalog["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, LAYERS.iter().map(|l| l.0).collect::<Vec<_>>());

    let (parcel_point, parcel) = feature_by_gdal(&city.store(), "parcels", 100);
    let chiban = parcel["chiban"].clone();
    assert!(!chiban.is_empty());

    let mut files = Vec::new();
    let mut expected = Vec::new();
    for &(layer, min, max) in LAYERS {
        let (point, _) = if layer == "parcels" {
            (parcel_point, parcel.clone())
        } else {
            feature_by_gdal(&city.store(), layer, 1)
        };
        for z in [8u8, 10, 12, 13, 14, 17, 22, 23] {
            let (z, x, y) = tile_of(point.0, point.1, z);
            let r = server.get_with(&format!("/tiles/{layer}/{z}/{x}/{y}.mvt"), &auth);
            let in_range = (min..=max).contains(&z);
            if !in_range {
                assert_eq!(r.status, 204, "{layer} at z{z} is outside its zoom range");
                continue;
            }
            assert_eq!(r.status, 200, "{layer} at z{z} must have its feature");
            assert_eq!(
                r.header("content-type"),
                Some("application/vnd.mapbox-vector-tile")
            );
            let file = tmp.path().join(format!("{layer}-{z}.mvt"));
            std::fs::write(&file, &r.body).unwrap();

            // geozero's reader refuses polygons with the wrong winding.
            use geozero::ToGeo;
            use geozero::mvt::Message;
            let tile = geozero::mvt::Tile::decode(r.body.as_slice()).unwrap();
            for f in &tile.layers[0].features {
                f.to_geo()
                    .unwrap_or_else(|e| panic!("{layer} z{z} feature {:?}: {e}", f.id));
            }
            files.push(file.clone());
            expected.push((file, layer, z));
        }
    }
    let decoded = decode_with_python(&files);
    for (file, layer, z) in expected {
        let tile = &decoded[file.to_str().unwrap()];
        let l = &tile[layer];
        assert_eq!(
            tile.as_object().unwrap().len(),
            1,
            "{layer} z{z}: only its own layer"
        );
        assert_eq!(l["extent"], 4096);
        assert!(l["count"].as_u64().unwrap() >= 1, "{layer} z{z}");
        assert_eq!(l["bad_rings"], 0, "{layer} z{z}: MVT winding");
        assert!(
            l["min"].as_i64().unwrap() >= -64 && l["max"].as_i64().unwrap() <= 4096 + 64,
            "{layer} z{z}: inside the buffer"
        );
        assert!(
            l["ids"]
                .as_array()
                .unwrap()
                .iter()
                .all(|id| id.as_u64().unwrap_or(0) > 0),
            "{layer}: ids set"
        );
        if layer == "parcels" {
            let props = l["properties"].as_array().unwrap();
            let ids = l["ids"].as_array().unwrap();
            let i = ids
                .iter()
                .position(|id| id == 100)
                .expect("the known parcel is in its tile");
            assert_eq!(props[i]["chiban"], chiban.as_str());
            assert_eq!(props[i]["oaza"], parcel["oaza"].as_str());
            // Typed attributes: area is a number, not text.
            assert!(props[i]["area_m2"].is_f64(), "{}", props[i]);
        }
        if layer == "water_pipes" {
            let props = &l["properties"][0];
            assert!(props["diameter_mm"].is_i64(), "{props}");
        }
    }

    // A composite tile holds the same layers as the single ones.
    let (z, x, y) = tile_of(parcel_point.0, parcel_point.1, 14);
    let names = LAYERS.iter().map(|l| l.0).collect::<Vec<_>>().join(",");
    let composite = server.get_with(&format!("/tiles/{names}/{z}/{x}/{y}.mvt"), &auth);
    assert_eq!(composite.status, 200);
    let cfile = tmp.path().join("composite.mvt");
    std::fs::write(&cfile, &composite.body).unwrap();
    let mut singles = Vec::new();
    for &(layer, ..) in LAYERS {
        let r = server.get_with(&format!("/tiles/{layer}/{z}/{x}/{y}.mvt"), &auth);
        if r.status == 200 {
            let f = tmp.path().join(format!("single-{layer}.mvt"));
            std::fs::write(&f, &r.body).unwrap();
            singles.push((layer, f));
        }
    }
    let mut all = vec![cfile.clone()];
    all.extend(singles.iter().map(|(_, f)| f.clone()));
    let decoded = decode_with_python(&all);
    let c = &decoded[cfile.to_str().unwrap()];
    assert_eq!(c.as_object().unwrap().len(), singles.len());
    for (layer, f) in &singles {
        assert_eq!(
            c[layer]["count"],
            decoded[f.to_str().unwrap()][layer]["count"],
            "{layer}"
        );
    }
    assert!(singles.iter().any(|(l, _)| *l == "parcels"));

    labels_once_per_lot_and_road_name(&server, &catalog, tmp.path());
}

/// Over every z14 tile of the city, each lot has exactly one label point
/// (carrying its chiban and nothing else) and each road name exactly one
/// (with its angle): no label repeats across tile edges.
fn labels_once_per_lot_and_road_name(server: &Server, catalog: &Value, dir: &std::path::Path) {
    let layer = |id: &str| {
        (catalog["layers"].as_array().unwrap().iter())
            .find(|l| l["id"] == id)
            .unwrap()
            .clone()
    };
    let (parcels, roads) = (layer("parcels"), layer("roads"));
    let b = |i: usize, pick: fn(f64, f64) -> f64| {
        pick(
            parcels["bounds"][i].as_f64().unwrap(),
            roads["bounds"][i].as_f64().unwrap(),
        )
    };
    let (_, x0, y0) = tile_of(b(0, f64::min), b(3, f64::max), 14);
    let (_, x1, y1) = tile_of(b(2, f64::max), b(1, f64::min), 14);
    let mut files = Vec::new();
    for x in x0..=x1 {
        for y in y0..=y1 {
            let r = server.get(&format!("/tiles/parcels,roads/14/{x}/{y}.mvt"));
            if r.status == 200 {
                let file = dir.join(format!("labels-{x}-{y}.mvt"));
                std::fs::write(&file, &r.body).unwrap();
                files.push(file);
            }
        }
    }
    let decoded = decode_with_python(&files);
    let mut lots = 0u64;
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    for tile in decoded.as_object().unwrap().values() {
        for label in tile["parcels"]["labels"].as_array().into_iter().flatten() {
            let keys: Vec<&String> = label["properties"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["chiban"], "a lot label carries its chiban only");
            lots += 1;
        }
        for label in tile["roads"]["labels"].as_array().into_iter().flatten() {
            let p = &label["properties"];
            assert!(
                p["chizu:angle"]
                    .as_i64()
                    .is_some_and(|a| (-90..90).contains(&a)),
                "{p}"
            );
            *names
                .entry(p["route_name"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(
        lots,
        parcels["feature_count"].as_u64().unwrap(),
        "one label per lot"
    );
    let road_names: std::collections::BTreeSet<String> = server
        .get("/ogc/collections/roads/items?limit=10000&properties=route_name")
        .json()["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["properties"]["route_name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), road_names.len(), "every road name is labelled");
    assert!(
        names.values().all(|n| *n == 1),
        "one label per road name: {names:?}"
    );
}

#[test]
fn http_behaviour_of_tiles_and_metadata() {
    let city = City::new();
    let out = city.ingest(&["--layer", "parcels", "--layer", "boundary"]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start(&city.store());
    let (lon, lat) = feature_by_gdal(&city.store(), "parcels", 1).0;
    let (z, x, y) = tile_of(lon, lat, 15);
    let path = format!("/tiles/parcels/{z}/{x}/{y}.mvt");

    let raw = server.get(&path);
    assert_eq!(raw.status, 200);
    assert!(raw.header("content-encoding").is_none());
    assert!(raw.header("cache-control").unwrap().contains("max-age"));
    let etag = raw.header("etag").unwrap().to_string();

    let gz = server.get_with(&path, &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(gz.body.as_slice()),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, raw.body);
    assert!(gz.body.len() < raw.body.len());

    let again = server.get_with(&path, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let stale = server.get_with(&path, &[("If-None-Match", "\"something-else\"")]);
    assert_eq!(stale.status, 200);

    // Errors are JSON problem details with the right status.
    for (bad, status) in [
        ("/tiles/nosuchlayer/15/1/1.mvt", 404),
        ("/tiles/parcels,nosuchlayer/15/1/1.mvt", 404),
        ("/tiles/parcels/25/0/0.mvt", 404),
        ("/tiles/parcels/3/8/0.mvt", 404),
        ("/tiles/parcels/3/-1/0.mvt", 404),
        ("/tiles/parcels/a/b/c.mvt", 404),
        ("/tiles/parcels/3/1/1.png", 404),
        ("/tiles/parcels,parcels/3/1/1.mvt", 400),
        ("/tiles/nosuchlayer.json", 404),
        ("/nothing/here", 404),
    ] {
        let r = server.get(bad);
        assert_eq!(r.status, status, "{bad}");
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{bad}"
        );
        let body = r.json();
        assert_eq!(body["status"], status, "{bad}");
        assert!(body["detail"].as_str().unwrap().len() > 5, "{bad}");
    }

    // Empty tile: 204. The ocean south of Japan at z14.
    let (z, x, y) = tile_of(135.0, 25.0, 14);
    assert_eq!(
        server
            .get(&format!("/tiles/parcels/{z}/{x}/{y}.mvt"))
            .status,
        204
    );

    let tj = server.get("/tiles/parcels.json").json();
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(tj["minzoom"], 14);
    assert_eq!(tj["maxzoom"], 22);
    assert!(
        tj["tiles"][0]
            .as_str()
            .unwrap()
            .ends_with("/tiles/parcels/{z}/{x}/{y}.mvt")
    );
    let b = tj["bounds"].as_array().unwrap();
    let b: Vec<f64> = b.iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(
        b[0] > 130.0 && b[2] < 130.2 && b[1] > 32.9 && b[3] < 33.2,
        "{b:?}"
    );
    let fields = &tj["vector_layers"][0]["fields"];
    assert_eq!(fields["chiban"], "String");
    assert_eq!(fields["area_m2"], "Number");
    assert_eq!(
        server.get("/health").json(),
        serde_json::json!({"status": "ok"})
    );
}

/// OGC API - Tiles: from the landing page by links only, as a client would,
/// to the same bytes `/tiles` serves; staff layers stay out of the anonymous
/// dataset tileset and answer 404 like layers that do not exist.
#[test]
fn ogc_api_tiles_lead_to_the_same_tiles() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start(&city.store());
    let link = |doc: &Value, rel: &str| -> String {
        let href = (doc["links"].as_array().unwrap().iter())
            .find(|l| l["rel"] == rel)
            .unwrap_or_else(|| panic!("no {rel} link in {doc}"))["href"]
            .as_str()
            .unwrap()
            .to_string();
        href.strip_prefix(&server.base).unwrap_or(&href).to_string()
    };
    let conformance = server.get("/ogc/conformance").json();
    let classes = conformance["conformsTo"].to_string();
    assert!(classes.contains("ogcapi-tiles-1/1.0/conf/mvt"), "{classes}");
    let landing = server.get("/ogc").json();
    let vector = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector";
    let tilesets = server.get(&link(&landing, vector)).json();
    let tileset_path = link(&tilesets["tilesets"][0], "self");
    let tileset = server.get(&tileset_path).json();
    assert_eq!(tileset["dataType"], "vector");
    let ids: Vec<&str> = (tileset["layers"].as_array().unwrap().iter())
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"parcels") && !ids.contains(&"water_pipes"),
        "{ids:?}"
    );
    // The tile matrix set: 256-pixel Web Mercator tiles, halving at each zoom.
    let tms = server
        .get(&link(
            &tileset,
            "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
        ))
        .json();
    let m14 = &tms["tileMatrices"][14];
    assert_eq!(m14["matrixWidth"], 1 << 14);
    let cell = m14["cellSize"].as_f64().unwrap();
    assert!(
        (cell * 256.0 * 16384.0 - 40_075_016.686).abs() < 0.01,
        "{cell}"
    );

    // A z14 tile of the city through the template (row = y, column = x).
    let template = link(&tileset, "item");
    let limit = (tileset["tileMatrixSetLimits"].as_array().unwrap().iter())
        .find(|l| l["tileMatrix"] == "14")
        .unwrap();
    let (row, col) = (
        (limit["minTileRow"].as_u64().unwrap() + limit["maxTileRow"].as_u64().unwrap()) / 2,
        (limit["minTileCol"].as_u64().unwrap() + limit["maxTileCol"].as_u64().unwrap()) / 2,
    );
    let url = template
        .replace("{tileMatrix}", "14")
        .replace("{tileRow}", &row.to_string())
        .replace("{tileCol}", &col.to_string());
    let ogc = server.get(&url);
    assert_eq!(ogc.status, 200, "{url}");
    assert_eq!(
        ogc.header("content-type"),
        Some("application/vnd.mapbox-vector-tile")
    );
    let plain = server.get(&format!("/tiles/{}/14/{col}/{row}.mvt", ids.join(",")));
    assert_eq!(ogc.body, plain.body, "the same tile by both routes");
    let decoded = decode_with_python(&[{
        let path = city.path().join("ogc.mvt");
        std::fs::write(&path, &ogc.body).unwrap();
        path
    }]);
    assert!(decoded.to_string().contains("parcels"), "{decoded}");

    // One collection's tileset and tile.
    let parcels = server.get("/ogc/collections/parcels").json();
    let sets = server.get(&link(&parcels, vector)).json();
    let set = server.get(&link(&sets["tilesets"][0], "self")).json();
    let url = link(&set, "item")
        .replace("{tileMatrix}", "14")
        .replace("{tileRow}", &row.to_string())
        .replace("{tileCol}", &col.to_string());
    let one = server.get(&url);
    assert_eq!(
        one.body,
        server
            .get(&format!("/tiles/parcels/14/{col}/{row}.mvt"))
            .body
    );
    // Staff data: the same 404 as a layer that does not exist.
    for path in [
        "/ogc/collections/water_pipes/tiles",
        "/ogc/collections/water_pipes/tiles/WebMercatorQuad",
        &format!("/ogc/collections/water_pipes/tiles/WebMercatorQuad/14/{row}/{col}"),
    ] {
        let r = server.get(path);
        let missing = server.get(&path.replace("water_pipes", "no_such_layer"));
        assert_eq!(r.status, 404, "{path}");
        let as_text = |b: &[u8]| String::from_utf8_lossy(b).replace("water_pipes", "X");
        let missing_text = String::from_utf8_lossy(&missing.body).replace("no_such_layer", "X");
        assert_eq!(as_text(&r.body), missing_text, "{path}");
    }
}
