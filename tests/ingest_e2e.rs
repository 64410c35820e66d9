//! Ingest end to end: real files from ../shared/data, the store as GDAL sees it,
//! reprojection against PROJ's cs2cs, and bad input that must change nothing.

mod common;
use common::*;
use std::path::Path;

fn write_roles(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(repo().join("layers/roles.toml"), dir.join("roles.toml")).unwrap();
}

#[test]
fn real_files_from_shared_data_ingest() {
    let data = shared_data()
        .canonicalize()
        .expect("../shared/data is beside the project");
    let tmp = tempfile::tempdir().unwrap();
    let layers = tmp.path().join("layers");
    write_roles(&layers);
    let d = data.display();
    std::fs::write(
        layers.join("osm_roads.toml"),
        format!(
            r#"
id = "osm_roads"
title = {{ ja = "道路 (OSM ヘルシンキ)", en = "OSM roads, Helsinki" }}
source = {{ path = "{d}/osm/helsinki_roads.fgb", format = "flatgeobuf", crs = "EPSG:4326" }}
geometry = "line"
zoom = {{ min = 10, max = 20 }}
invalid_geometry = "skip"
fields = [
  {{ name = "osm_id", type = "text", required = true }},
  {{ name = "name", type = "text" }},
  {{ name = "highway", type = "text", required = true }},
]
[access]
read = ["public"]
"#
        ),
    )
    .unwrap();
    std::fs::write(
        layers.join("osm_pipes.toml"),
        format!(
            r#"
id = "osm_pipes"
title = {{ ja = "管路 (OSM)", en = "OSM pipelines" }}
source = {{ path = "{d}/osm/helsinki_pipelines.fgb", format = "flatgeobuf", crs = "EPSG:4326" }}
geometry = "line"
zoom = {{ min = 10, max = 20 }}
fields = [
  {{ name = "osm_id", type = "text", required = true }},
  {{ name = "other_tags", type = "text" }},
]
[access]
read = ["staff"]
"#
        ),
    )
    .unwrap();
    std::fs::write(layers.join("jma_areas.toml"), format!(r#"
id = "jma_areas"
title = {{ ja = "気象庁 市町村等", en = "JMA municipal areas" }}
source = {{ path = "{d}/shapefile-sjis/jma_areas_sjis.shp", format = "shapefile", crs = "EPSG:6668" }}
geometry = "polygon"
zoom = {{ min = 5, max = 14 }}
invalid_geometry = "repair"
fields = [
  {{ name = "code", type = "text", required = true }},
  {{ name = "name", type = "text", required = true, searchable = true }},
  {{ name = "en_name", type = "text", source = "enName" }},
]
[access]
read = ["public"]
"#)).unwrap();
    std::fs::write(layers.join("flood.toml"), format!(r#"
id = "flood"
title = {{ ja = "浸水想定 (久留米)", en = "Flood ranks, Kurume" }}
source = {{ path = "{d}/flood/kurume_flood_rank_polygons_wgs84.geojson", format = "geojson", crs = "EPSG:4326" }}
geometry = "polygon"
zoom = {{ min = 10, max = 18 }}
invalid_geometry = "repair"
fields = [ {{ name = "kurume_rank", type = "integer", required = true }} ]
[access]
read = ["public"]
"#)).unwrap();
    let store = tmp.path().join("real.gpkg");
    let out = chizu(
        tmp.path(),
        &["ingest", "--all", "--store", store.to_str().unwrap()],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("osm_roads: version 1: 2504 features"), "{log}");
    assert!(log.contains("osm_pipes: version 1: 78 features"), "{log}");
    assert!(log.contains("jma_areas: version 1: 1855 features"), "{log}");
    assert!(log.contains("flood: version 1: 104 features"), "{log}");
    // The Shift_JIS names arrive intact, as GDAL reads them back from the store.
    let kashima = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            store.to_str().unwrap(),
            "jma_areas",
            "-where",
            "code = '4120700'",
        ],
    );
    assert!(kashima.contains("name (String) = 鹿島市"), "{kashima}");
    assert!(
        kashima.contains("en_name (String) = Kashima City"),
        "{kashima}"
    );
    let flood = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT COUNT(*) AS n FROM flood WHERE kurume_rank = 3",
            store.to_str().unwrap(),
        ],
    );
    assert!(flood.contains("n (Integer) = "), "{flood}");
}

#[test]
fn the_store_is_a_geopackage_gdal_reads_as_ingested() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let store = city.store();
    let s = store.to_str().unwrap();
    let summary = run("ogrinfo", &["-ro", "-so", "-al", s]);
    for (layer, kind) in [
        ("parcels", "Multi Polygon"),
        ("roads", "Multi Line String"),
        ("zoning", "Multi Polygon"),
        ("water_pipes", "Multi Line String"),
        ("hazard", "Multi Polygon"),
        ("boundary", "Multi Polygon"),
    ] {
        assert!(
            summary.contains(&format!("Layer name: {layer}\n")),
            "{layer}"
        );
        let section = summary
            .split(&format!("Layer name: {layer}\n"))
            .nth(1)
            .unwrap();
        assert!(
            section.contains(&format!("Geometry: {kind}")),
            "{layer}: {section}"
        );
        let count: u64 = section
            .lines()
            .find_map(|l| l.strip_prefix("Feature Count: "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            log.contains(&format!("{layer}: version 1: {count} features stored")),
            "{layer} {count}\n{log}"
        );
        assert!(
            section.contains("ID[\"EPSG\",4326]"),
            "{layer}: stored in WGS 84"
        );
    }
    assert!(summary.contains("Layer name: parcels\n"));
    let parcels_count: u64 = summary
        .split("Layer name: parcels\n")
        .nth(1)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Feature Count: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(parcels_count >= 20_000);

    // Feature 1 of the store is feature 0 of the CP932 shapefile, as GDAL reads both.
    let shp = city.path().join("data-samples/parcels.shp");
    let source = run(
        "ogrinfo",
        &["-ro", "-q", shp.to_str().unwrap(), "parcels", "-fid", "0"],
    );
    let stored = run("ogrinfo", &["-ro", "-q", s, "parcels", "-fid", "1"]);
    for field in ["chiban", "oaza", "chimoku", "owner_name"] {
        let line = |t: &str| {
            t.lines()
                .find(|l| l.trim_start().starts_with(&format!("{field} (")))
                .map(|l| l.split(" = ").nth(1).unwrap_or("").trim().to_string())
        };
        assert_eq!(line(&source), line(&stored), "{field}");
    }
    assert!(
        stored
            .lines()
            .any(|l| l.contains("oaza (String) = ") && !l.is_ascii()),
        "{stored}"
    );

    // The rest is the GeoPackage's own structure.
    if on_postgres() {
        return;
    }
    // The R-tree extension is there and complete.
    let rtree = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT COUNT(*) AS n FROM rtree_parcels_geom",
            s,
        ],
    );
    assert!(
        rtree.contains(&format!("n (Integer) = {parcels_count}")),
        "{rtree}"
    );
    let ext = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT extension_name FROM gpkg_extensions WHERE table_name = 'parcels'",
            s,
        ],
    );
    assert!(ext.contains("gpkg_rtree_index"), "{ext}");
}

#[test]
fn reprojection_matches_cs2cs_to_a_millimetre() {
    use chizu_io::Reprojector;
    // (zone EPSG, longitude, latitude): Kashima (II), Joetsu (VIII), Chiba Inage (IX).
    for (epsg, lon, lat) in [
        (6670, 130.0989, 33.1036),
        (6676, 138.2468, 37.1478),
        (6677, 140.0764, 35.6373),
    ] {
        let ours = Reprojector::new(4326, epsg)
            .unwrap()
            .point(lon, lat)
            .unwrap();
        // cs2cs uses each CRS's own axis order: latitude first; northing (X) first.
        let out = std::process::Command::new("cs2cs")
            .args(["-f", "%.6f", "EPSG:4326", &format!("EPSG:{epsg}")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                writeln!(c.stdin.take().unwrap(), "{lat} {lon}")?;
                c.wait_with_output()
            })
            .expect("cs2cs runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<f64> = text
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        let (northing, easting) = (nums[0], nums[1]);
        assert!(
            (ours.0 - easting).abs() < 1e-3 && (ours.1 - northing).abs() < 1e-3,
            "EPSG:{epsg}: ours {ours:?}, cs2cs E {easting} N {northing}"
        );
        // And back, to a millimetre on the ground (1e-8 degrees is ~1 mm).
        let back = Reprojector::new(epsg, 4326)
            .unwrap()
            .point(ours.0, ours.1)
            .unwrap();
        assert!(
            (back.0 - lon).abs() < 1e-8 && (back.1 - lat).abs() < 1e-8,
            "EPSG:{epsg}: {back:?}"
        );
    }
}

fn catalog_version(server: &Server, layer: &str) -> u64 {
    server.get("/catalog").json()["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == layer)
        .map(|l| l["version"].as_u64().unwrap())
        .unwrap()
}

/// Makes the city's parcels layer read the sample Shapefile (the demo's
/// reads the MOJ map XML), as the next `set_layer_file` edits start from.
fn use_shapefile_parcels(city: &City) {
    let shapefile =
        std::fs::read_to_string(repo().join("tests/fixtures/parcels_shapefile.toml")).unwrap();
    for name in ["parcels.toml", "parcels.toml.orig"] {
        std::fs::write(city.path().join("layers").join(name), &shapefile).unwrap();
    }
}

fn set_layer_file(city: &City, id: &str, from: &str, to: &str) {
    let path = city.path().join(format!("layers/{id}.toml"));
    let original = std::fs::read_to_string(city.dir.path().join(format!("layers/{id}.toml.orig")))
        .or_else(|_| std::fs::read_to_string(&path))
        .unwrap();
    std::fs::write(
        city.dir.path().join(format!("layers/{id}.toml.orig")),
        &original,
    )
    .ok();
    assert!(original.contains(from), "{from}");
    std::fs::write(&path, original.replace(from, to)).unwrap();
}

#[test]
fn bad_input_is_named_and_changes_nothing() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start(&city.store());
    let samples = city.path().join("data-samples");
    let bad = city.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let parcel_tile = {
        let (z, x, y) = (16, 56451, 26387);
        format!("/tiles/parcels,roads,zoning/{z}/{x}/{y}.mvt")
    };
    let before = server.get(&parcel_tile);

    // A shapefile cut short, as by an interrupted copy.
    for ext in ["shp", "shx", "dbf", "cpg", "prj"] {
        std::fs::copy(
            samples.join(format!("parcels.{ext}")),
            bad.join(format!("cut.{ext}")),
        )
        .unwrap();
    }
    let shp = std::fs::read(bad.join("cut.shp")).unwrap();
    std::fs::write(bad.join("cut.shp"), &shp[..shp.len() / 2]).unwrap();
    use_shapefile_parcels(&city);
    set_layer_file(
        &city,
        "parcels",
        "../data-samples/parcels.shp",
        "../bad/cut.shp",
    );
    let out = city.ingest(&["--layer", "parcels"]);
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(msg.contains("cut.shp") && msg.contains("feature"), "{msg}");
    assert!(
        !msg.contains("panicked") && !msg.contains("stack backtrace"),
        "{msg}"
    );

    // A DBF in CP932 with no .cpg and no language byte, read as UTF-8: detected.
    for ext in ["shp", "shx", "dbf", "prj"] {
        std::fs::copy(
            samples.join(format!("parcels.{ext}")),
            bad.join(format!("nocpg.{ext}")),
        )
        .unwrap();
    }
    let mut dbf = std::fs::read(bad.join("nocpg.dbf")).unwrap();
    dbf[29] = 0;
    std::fs::write(bad.join("nocpg.dbf"), &dbf).unwrap();
    set_layer_file(
        &city,
        "parcels",
        "path = \"../data-samples/parcels.shp\", format = \"shapefile\", crs = \"EPSG:6670\", encoding = \"CP932\"",
        "path = \"../bad/nocpg.shp\", format = \"shapefile\", crs = \"EPSG:6670\"",
    );
    let out = city.ingest(&["--layer", "parcels"]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("nocpg.dbf")
            && msg.contains("feature 1")
            && msg.contains("field `")
            && msg.contains("CP932"),
        "{msg}"
    );

    // A GeoJSON geometry of the wrong type, and a missing required field.
    std::fs::write(bad.join("roads.geojson"), r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"route_name":"市道1号線"},"geometry":{"type":"LineString","coordinates":[[-84000,11000],[-83900,11000]]}},
      {"type":"Feature","properties":{"route_name":"市道2号線"},"geometry":{"type":"Polygon","coordinates":[[[-84000,11000],[-83900,11000],[-83900,11100],[-84000,11000]]]}},
      {"type":"Feature","properties":{"road_class":"市道"},"geometry":{"type":"LineString","coordinates":[[-84000,11000],[-83900,11050]]}}
    ]}"#).unwrap();
    set_layer_file(
        &city,
        "roads",
        "../data-samples/roads.geojson",
        "../bad/roads.geojson",
    );
    let out = city.ingest(&["--layer", "roads"]);
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(msg.contains("roads.geojson: feature 2: geometry is a Polygon but layer `roads` holds line geometries"), "{msg}");
    assert!(
        msg.contains("roads.geojson: feature 3: field `route_name`: required"),
        "{msg}"
    );

    // An EPSG code PROJ does not know.
    set_layer_file(&city, "zoning", "EPSG:6670", "EPSG:999999");
    let out = city.ingest(&["--layer", "zoning"]);
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(msg.contains("EPSG:999999"), "{msg}");

    // A missing file.
    set_layer_file(
        &city,
        "zoning",
        "../data-samples/zoning.gpkg",
        "../data-samples/gone.gpkg",
    );
    let out = city.ingest(&["--layer", "zoning"]);
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(
        msg.contains("gone.gpkg") && msg.contains("not found"),
        "{msg}"
    );

    // An unknown key in a layer file.
    set_layer_file(
        &city,
        "hazard",
        "invalid_geometry = \"repair\"",
        "invalid_geometry = \"repair\"\ncolour = \"red\"",
    );
    let out = city.ingest(&["--layer", "hazard"]);
    let msg = text(&out);
    assert!(!out.status.success());
    assert!(
        msg.contains("hazard.toml") && msg.contains("colour"),
        "{msg}"
    );
    std::fs::copy(
        city.path().join("layers/hazard.toml.orig"),
        city.path().join("layers/hazard.toml"),
    )
    .unwrap();

    // Nothing changed: same versions, same tile bytes, served throughout.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    for layer in ["parcels", "roads", "zoning"] {
        assert_eq!(catalog_version(&server, layer), 1, "{layer}");
    }
    let after = server.get(&parcel_tile);
    assert_eq!(after.status, before.status);
    assert_eq!(after.body, before.body);

    // The same CP932 file without .cpg ingests when the layer file says CP932,
    // and the running server picks the new version up.
    set_layer_file(
        &city,
        "parcels",
        "path = \"../data-samples/parcels.shp\", format = \"shapefile\", crs = \"EPSG:6670\", encoding = \"CP932\"",
        "path = \"../bad/nocpg.shp\", format = \"shapefile\", crs = \"EPSG:6670\", encoding = \"CP932\"",
    );
    let out = city.ingest(&["--layer", "parcels"]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while catalog_version(&server, "parcels") != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not load version 2"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let stored = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            city.store().to_str().unwrap(),
            "parcels",
            "-fid",
            "1",
        ],
    );
    assert!(
        stored
            .lines()
            .any(|l| l.contains("oaza (String) = ") && !l.is_ascii()),
        "{stored}"
    );
}
