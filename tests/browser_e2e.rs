//! The web maps in headless Chromium (viewer/tests/browser.mjs, playwright-core):
//! the public map draws parcels, answers clicks and searches and never touches
//! staff data; the staff map logs in, queries and exports pipes and logs out.
//! This test prepares a city and the facts the browser checks against, and
//! checks what the browser brought back (its query and its download) with GDAL.

mod common;
use common::*;
use geo::InteriorPoint;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const STAFF: &str = "browser-staff";

fn polygon_of(geometry: &Value) -> geo::Polygon<f64> {
    let rings = match geometry["type"].as_str() {
        Some("Polygon") => &geometry["coordinates"],
        Some("MultiPolygon") => &geometry["coordinates"][0],
        other => panic!("a parcel is a polygon, not {other:?}"),
    };
    let ring = |r: &Value| -> geo::LineString<f64> {
        r.as_array()
            .unwrap()
            .iter()
            .map(|c| (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()))
            .collect()
    };
    let rings = rings.as_array().unwrap();
    geo::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
}

/// A large parcel with zoning, away from the edge of the town: its chiban, its
/// zoning (from "what is here", itself checked against GDAL in features_e2e)
/// and a point inside it.
fn pick_parcel(server: &Server, offset: usize) -> Value {
    let page = server
        .get(&format!(
            "/ogc/collections/parcels/items?limit=400&offset={offset}"
        ))
        .json();
    let mut features: Vec<&Value> = page["features"].as_array().unwrap().iter().collect();
    features.sort_by(|a, b| {
        let area = |f: &Value| f["properties"]["area_m2"].as_f64().unwrap_or(0.0);
        area(b).total_cmp(&area(a))
    });
    for feature in features {
        let point = polygon_of(&feature["geometry"])
            .interior_point()
            .expect("a parcel has an interior point");
        let here = server
            .get(&format!(
                "/query/point?lon={}&lat={}&zoom=18",
                point.x(),
                point.y()
            ))
            .json();
        let layer = |id: &str| {
            here["layers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["id"] == id)
                .cloned()
        };
        let (Some(parcels), Some(zoning)) = (layer("parcels"), layer("zoning")) else {
            continue;
        };
        // Exactly this parcel under the point, so the click is unambiguous.
        if parcels["features"].as_array().unwrap().len() != 1
            || parcels["features"][0]["id"] != feature["id"]
        {
            continue;
        }
        let p = &feature["properties"];
        return json!({
            "id": feature["id"],
            "chiban": p["chiban"],
            "oaza": p["oaza"],
            "youto": zoning["features"][0]["properties"]["youto"],
            "lon": point.x(),
            "lat": point.y(),
        });
    }
    panic!("no parcel with zoning at offset {offset}");
}

/// A water main near `near`, seen with the staff token.
fn pick_pipe(server: &Server, token: &str, near: &Value) -> Value {
    let (lon, lat) = (near["lon"].as_f64().unwrap(), near["lat"].as_f64().unwrap());
    let bbox = format!(
        "{},{},{},{}",
        lon - 0.01,
        lat - 0.01,
        lon + 0.01,
        lat + 0.01
    );
    let auth = format!("Bearer {token}");
    let page = get(
        &format!(
            "{}/ogc/collections/water_pipes/items?bbox={bbox}&limit=50&filter=network%20%3D%20%27water%27",
            server.base
        ),
        &[("Authorization", auth.as_str())],
    )
    .json();
    let feature = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["properties"]["material"].is_string())
        .expect("a water main near the parcel");
    let line = &feature["geometry"]["coordinates"][0];
    let (a, b) = (&line[0], &line[1]);
    let p = &feature["properties"];
    json!({
        "id": feature["id"],
        "diameter_mm": p["diameter_mm"],
        "material": p["material"],
        "install_year": p["install_year"],
        "lon": (a[0].as_f64().unwrap() + b[0].as_f64().unwrap()) / 2.0,
        "lat": (a[1].as_f64().unwrap() + b[1].as_f64().unwrap()) / 2.0,
    })
}

fn ogr_count(args: &[&str]) -> u64 {
    let out = run("ogrinfo", args);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Feature Count: "))
        .unwrap_or_else(|| panic!("no feature count from ogrinfo {args:?}:\n{out}"))
        .parse()
        .unwrap()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn web_maps_in_chromium() {
    let viewer = repo().join("viewer");
    assert!(
        viewer.join("dist/index.html").exists()
            && viewer.join("node_modules/playwright-core").exists(),
        "build the viewer first: npm --prefix viewer ci && npm --prefix viewer run build (scripts/test.sh does)"
    );
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let token = city.user_with_token(STAFF, &["staff", "water"]);
    let server = Server::start(&city.store());

    let parcel = pick_parcel(&server, 2000);
    let target = pick_parcel(&server, 15000);
    let q = format!(
        "{} {}",
        target["oaza"].as_str().unwrap(),
        target["chiban"].as_str().unwrap()
    );
    // The search API's best match for "oaza chiban" is the target lot.
    let found = server
        .get(&format!("/search?q={}", q.replace(' ', "%20")))
        .json();
    assert_eq!(found["results"][0]["id"], target["id"], "{found}");
    let center = &found["results"][0]["center"];
    let search = json!({
        "q": q, "id": target["id"],
        "lon": center[0], "lat": center[1],
    });
    let pipe = pick_pipe(&server, &token, &parcel);

    let artifacts = repo().join("target/browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let facts = json!({
        "base": server.base,
        "artifacts": artifacts,
        "staff": { "user": STAFF, "password": format!("{STAFF}-secret-password") },
        "parcel": parcel,
        "search": search,
        "pipe": pipe,
    });
    let out = Command::new("node")
        .arg("tests/browser.mjs")
        .current_dir(&viewer)
        .env("CHIZU_FACTS", facts.to_string())
        .output()
        .expect("node runs (install nodejs)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no report ({e}):\n{stdout}"));
    eprintln!("browser report: {report}");

    // The page's query, run again by GDAL on the store: same count.
    let store = city.store();
    let store = store.to_str().unwrap();
    let url = report["query"]["url"].as_str().unwrap();
    let bbox: Vec<String> = query_param(url, "bbox")
        .expect("the query is limited to the view")
        .split(',')
        .map(str::to_string)
        .collect();
    let filter = query_param(url, "filter").expect("the query has a filter");
    let mut spat = vec!["-ro", "-so", "-spat"];
    spat.extend(bbox.iter().map(String::as_str));
    let mut args = spat.clone();
    args.extend(["-where", filter.as_str(), store, "water_pipes"]);
    let gdal_count = ogr_count(&args);
    assert_eq!(
        report["query"]["numberMatched"].as_u64(),
        Some(gdal_count),
        "filter {filter} in {bbox:?}"
    );
    assert!(gdal_count >= 1);

    // The download is a GeoPackage GDAL opens: every pipe in the exported view,
    // in EPSG:6670.
    let file = report["export"]["file"].as_str().unwrap();
    assert!(Path::new(file).exists());
    let info = run("ogrinfo", &["-ro", "-so", "-al", file]);
    assert!(
        info.contains("Geometry: Multi Line String") || info.contains("Geometry: Line String"),
        "{info}"
    );
    assert!(
        info.contains("\"EPSG\",\"6670\"") || info.contains("EPSG\",6670"),
        "{info}"
    );
    let export_url = report["export"]["url"].as_str().unwrap();
    let export_bbox: Vec<String> = query_param(export_url, "bbox")
        .expect("the export is of the current view")
        .split(',')
        .map(str::to_string)
        .collect();
    let mut args = vec!["-ro", "-so", "-spat"];
    args.extend(export_bbox.iter().map(String::as_str));
    args.extend([store, "water_pipes"]);
    let in_view = ogr_count(&args);
    let exported = ogr_count(&["-ro", "-so", "-al", file]);
    assert_eq!(exported, in_view, "exported pipes = pipes in the view");
    assert!(exported > 0);
}
