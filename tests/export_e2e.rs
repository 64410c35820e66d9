//! Export end to end: every format downloaded through the API and read back
//! with GDAL (counts, Japanese text, geometry types, EPSG:6670 coordinates to
//! 1 mm against the source), permissions and the command line.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn attrs(ogrinfo_out: &str) -> BTreeMap<String, String> {
    ogrinfo_out
        .lines()
        .filter_map(|l| l.trim().split_once(" = "))
        .filter_map(|(k, v)| {
            k.split_once(' ')
                .map(|(name, _)| (name.to_string(), v.to_string()))
        })
        .collect()
}

fn first_vertex(ogrinfo_out: &str) -> (f64, f64) {
    let wkt = ogrinfo_out
        .lines()
        .find(|l| {
            l.trim_start().starts_with("MULTIPOLYGON") || l.trim_start().starts_with("POLYGON")
        })
        .expect("a polygon");
    let n: Vec<f64> = wkt
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter_map(|s| s.parse().ok())
        .collect();
    (n[0], n[1])
}

fn feature_count(path: &str, layer: &str) -> u64 {
    let out = run("ogrinfo", &["-ro", "-so", path, layer]);
    out.lines()
        .find_map(|l| l.strip_prefix("Feature Count: "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn every_format_round_trips_through_gdal() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let store = city.store();
    let planner = city.user_with_token("tanaka", &["staff", "planning"]);
    let bearer = format!("Bearer {planner}");
    let auth = [("Authorization", bearer.as_str())];
    let server = Server::start(&store);
    let dir = city.path().join("exports");
    std::fs::create_dir_all(&dir).unwrap();

    // The reference: feature 0 of the source shapefile (EPSG:6670, CP932), read by GDAL.
    let shp = city.path().join("data-samples/parcels.shp");
    let source = run(
        "ogrinfo",
        &["-ro", "-q", shp.to_str().unwrap(), "parcels", "-fid", "0"],
    );
    let expected = attrs(&source);
    let (e0, n0) = first_vertex(&source);
    let total = feature_count(store.to_str().unwrap(), "parcels");
    let key = format!(
        "chiban = '{}' AND oaza = '{}' AND owner_name = '{}'",
        expected["chiban"], expected["oaza"], expected["owner_name"]
    );

    for (format, extra, path_in_gdal) in [
        ("gpkg", "", "parcels.gpkg"),
        ("fgb", "", "parcels.fgb"),
        ("geojson", "", "parcels.geojson"),
        ("csv", "", "parcels.csv"),
        ("shp", "", "/vsizip/{dir}/parcels.zip/parcels.shp"),
        (
            "shp",
            "&encoding=utf-8",
            "/vsizip/{dir}/parcels-utf8.zip/parcels.shp",
        ),
    ] {
        let r = server.get_with(
            &format!("/ogc/collections/parcels/items?f={format}&crs=EPSG:6670{extra}"),
            &auth,
        );
        assert_eq!(
            r.status,
            200,
            "{format}: {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        );
        let disposition = r.header("content-disposition").unwrap().to_string();
        assert!(
            disposition.starts_with("attachment; filename=\"parcels_")
                && disposition.contains("_EPSG6670."),
            "{disposition}"
        );
        let file_name = if extra.is_empty() {
            format!("parcels.{}", if format == "shp" { "zip" } else { format })
        } else {
            "parcels-utf8.zip".to_string()
        };
        std::fs::write(dir.join(&file_name), &r.body).unwrap();
        let gdal_path = if path_in_gdal.starts_with("/vsizip") {
            path_in_gdal.replace("{dir}", dir.to_str().unwrap())
        } else {
            dir.join(path_in_gdal).to_str().unwrap().to_string()
        };
        let mut open = vec!["-ro", "-q"];
        if format == "csv" {
            open.extend([
                "-oo",
                "GEOM_POSSIBLE_NAMES=WKT",
                "-oo",
                "KEEP_GEOM_COLUMNS=NO",
                "-oo",
                "AUTODETECT_TYPE=YES",
            ]);
        }
        let layer = Path::new(&gdal_path)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let summary = run(
            "ogrinfo",
            &[&open[..1], &open[2..], &["-so", &gdal_path, &layer]].concat(),
        );
        let count: u64 = summary
            .lines()
            .find_map(|l| l.strip_prefix("Feature Count: "))
            .unwrap_or_else(|| panic!("{format}: {summary}"))
            .parse()
            .unwrap();
        assert_eq!(count, total, "{format}{extra}: feature count");
        // (A CSV's WKT column has no declared type; its features' geometries are checked below.)
        assert!(
            format == "csv" || summary.contains("Polygon"),
            "{format}: geometry type\n{summary}"
        );
        if format != "csv" {
            assert!(
                summary.contains("ID[\"EPSG\",6670]]"),
                "{format}: CRS\n{summary}"
            );
        }
        let found = run(
            "ogrinfo",
            &[open.as_slice(), &[&gdal_path, &layer, "-where", &key]].concat(),
        );
        let got = attrs(&found);
        for field in ["chiban", "oaza", "chimoku", "owner_name"] {
            assert_eq!(
                got.get(field),
                expected.get(field),
                "{format}{extra}: {field}"
            );
        }
        let area: f64 = got["area_m2"].parse().unwrap();
        assert!(
            (area - expected["area_m2"].parse::<f64>().unwrap()).abs() < 0.01,
            "{format}: area"
        );
        let (e, n) = first_vertex(&found);
        assert!(
            (e - e0).abs() < 0.001 && (n - n0).abs() < 0.001,
            "{format}: ({e}, {n}) vs ({e0}, {n0})"
        );
    }
    // The CSV opens in Excel: UTF-8 with a BOM; and in CP932 on request.
    let csv = std::fs::read(dir.join("parcels.csv")).unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBFWKT,chiban"));
    let sjis = server.get_with(
        "/ogc/collections/parcels/items?f=csv&encoding=cp932&limit=50",
        &auth,
    );
    let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(&sjis.body);
    assert!(
        !bad && text.contains(&expected["oaza"]) || text.contains("地"),
        "CP932 CSV decodes"
    );
    assert!(
        std::str::from_utf8(&sjis.body).is_err(),
        "CP932 is not UTF-8"
    );
    // The zip holds the five parts and the field-name mapping; the DBF says CP932.
    let zip = std::fs::read(dir.join("parcels.zip")).unwrap();
    let listing = String::from_utf8_lossy(&zip);
    for part in [
        "parcels.shp",
        "parcels.shx",
        "parcels.dbf",
        "parcels.prj",
        "parcels.cpg",
        "parcels_fields.txt",
    ] {
        assert!(listing.contains(part), "{part}");
    }
    let cpg = run(
        "sh",
        &[
            "-c",
            &format!("unzip -p {} parcels.cpg", dir.join("parcels.zip").display()),
        ],
    );
    assert_eq!(cpg.trim(), "CP932");
}

#[test]
fn long_field_names_are_cut_and_mapped() {
    let city = City::new();
    assert!(city.ingest(&["--layer", "roads"]).status.success());
    let out = city.path().join("roads.zip");
    let o = chizu(
        city.path(),
        &[
            "export",
            "--store",
            city.store().to_str().unwrap(),
            "--layer",
            "roads",
            "--format",
            "shp",
            "--crs",
            "EPSG:6670",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let gdal = format!("/vsizip/{}/roads.shp", out.display());
    let summary = run("ogrinfo", &["-ro", "-so", &gdal, "roads"]);
    assert!(summary.contains("last_inspe: Date"), "{summary}");
    assert!(summary.contains("route_name: String"), "{summary}");
    let mapping = run(
        "sh",
        &[
            "-c",
            &format!("unzip -p {} roads_fields.txt", out.display()),
        ],
    );
    assert!(
        mapping.contains("last_inspe\tlast_inspected\t点検日"),
        "{mapping}"
    );
    assert_eq!(
        feature_count(&gdal, "roads"),
        feature_count(city.store().to_str().unwrap(), "roads")
    );
    // Lines stay lines; multipart geometries are kept.
    assert!(summary.contains("Line String"), "{summary}");
}

#[test]
fn exports_follow_the_view() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let store = city.store();
    let staff = city.user_with_token("kato", &["staff"]);
    let planner = city.user_with_token("tanaka", &["staff", "planning"]);
    let server = Server::start(&store);
    let staff_auth = format!("Bearer {staff}");
    let planner_auth = format!("Bearer {planner}");

    // The public may export zoning and hazard (published rows only), not parcels.
    for format in ["gpkg", "fgb", "geojson", "csv", "shp"] {
        let r = server.get(&format!("/ogc/collections/hazard/items?f={format}"));
        assert_eq!(r.status, 200, "{format}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("draft"),
            "{format}: a draft row was exported"
        );
    }
    let hazard = server.get("/ogc/collections/hazard/items?f=geojson").json();
    let published = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT COUNT(*) AS n FROM hazard WHERE status = 'published'",
            store.to_str().unwrap(),
        ],
    );
    let published: usize = published
        .lines()
        .find_map(sql_count)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(hazard["features"].as_array().unwrap().len(), published);
    let refused = server.get("/ogc/collections/parcels/items?f=gpkg");
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        server
            .get("/ogc/collections/water_pipes/items?f=gpkg")
            .status,
        404
    );
    // Roads: the public export has no maintenance fields.
    let roads = server.get("/ogc/collections/roads/items?f=csv");
    assert_eq!(roads.status, 403, "roads export is for planners");
    // Staff without the export role: refused, with a clear message.
    let r = server.get_with(
        "/ogc/collections/parcels/items?f=shp",
        &[("Authorization", &staff_auth)],
    );
    assert_eq!(r.status, 403);
    assert!(r.json()["detail"].as_str().unwrap().contains("not export"));
    // A planner's export with owner names is audited, with its purpose.
    let r = server.get_with(
        "/ogc/collections/parcels/items?f=geojson&bbox=130.08,33.08,130.09,33.09&purpose=tax%20assessment%0A2026",
        &[("Authorization", &planner_auth)],
    );
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("owner_name"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = run(
            chizu_bin(),
            &[
                "audit",
                "--store",
                store.to_str().unwrap(),
                "--user",
                "tanaka",
            ],
        );
        if log.contains("\tparcels\texport\tbbox=130.08,33.08,130.09,33.09\t")
            && log.trim_end().ends_with("owner_name\ttax assessment 2026")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The command line: same code, same view rules, filtered.
    let out = city.path().join("takuchi.gpkg");
    let o = chizu(
        city.path(),
        &[
            "export",
            "--store",
            store.to_str().unwrap(),
            "--layer",
            "parcels",
            "--format",
            "gpkg",
            "--crs",
            "EPSG:6670",
            "--filter",
            "chimoku = '宅地'",
            "--role",
            "planning",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let n = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT COUNT(*) AS n FROM parcels WHERE chimoku = '宅地'",
            store.to_str().unwrap(),
        ],
    );
    let n: u64 = n.lines().find_map(sql_count).unwrap().parse().unwrap();
    assert_eq!(feature_count(out.to_str().unwrap(), "parcels"), n);
    let schema = run("ogrinfo", &["-ro", "-so", out.to_str().unwrap(), "parcels"]);
    assert!(
        !schema.contains("owner_name"),
        "planning alone does not read owner names"
    );
    let o = chizu(
        city.path(),
        &[
            "export",
            "--store",
            store.to_str().unwrap(),
            "--layer",
            "parcels",
            "--format",
            "csv",
            "--role",
            "public",
            "--out",
            city.path().join("x.csv").to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("not export"));
}

#[test]
fn a_client_that_disconnects_stops_the_export() {
    use std::io::{Read, Write};
    let city = City::new();
    assert!(city.ingest(&["--layer", "parcels"]).status.success());
    let planner = city.user_with_token("tanaka", &["staff", "planning"]);
    let log = city.path().join("server.log");
    let server = Server::start_with_log(&city.store(), Some(&log));
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut socket = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        socket,
        "GET /ogc/collections/parcels/items?f=geojson&crs=EPSG:6670 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {planner}\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 4096];
    let n = socket.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(socket);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("export of parcels stopped") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the export ran on after the client left: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
