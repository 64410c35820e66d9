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
        // A lot without holes and with few corners, for measuring its
        // longest edge and its area.
        let geometry = &feature["geometry"];
        let polygon = match geometry["type"].as_str() {
            Some("MultiPolygon") if geometry["coordinates"].as_array().unwrap().len() == 1 => {
                &geometry["coordinates"][0]
            }
            Some("Polygon") => &geometry["coordinates"],
            _ => continue,
        };
        let ring = &polygon[0];
        if polygon.as_array().unwrap().len() != 1 || ring.as_array().unwrap().len() > 12 {
            continue;
        }
        let p = &feature["properties"];
        let (edge_start, edge6670, area6670) = plane_edge_and_area(server, &feature["id"]);
        return json!({
            "id": feature["id"],
            "chiban": p["chiban"],
            "oaza": p["oaza"],
            "youto": zoning["features"][0]["properties"]["youto"],
            "lon": point.x(),
            "lat": point.y(),
            "ring": ring,
            "edgeStart": edge_start,
            "edge6670": edge6670,
            "area6670": area6670,
        });
    }
    panic!("no parcel with zoning at offset {offset}");
}

/// The longest edge (its first vertex and length) and the area of a parcel
/// in plane rectangular zone II (EPSG:6670), as the server reprojects it:
/// what measuring must match.
fn plane_edge_and_area(server: &Server, id: &Value) -> (usize, f64, f64) {
    let f = server
        .get(&format!(
            "/ogc/collections/parcels/items/{id}?crs=http://www.opengis.net/def/crs/EPSG/0/6670"
        ))
        .json();
    let coordinates = &f["geometry"]["coordinates"];
    let polygon = match f["geometry"]["type"].as_str() {
        Some("MultiPolygon") => &coordinates[0],
        _ => coordinates,
    };
    let ring: Vec<(f64, f64)> = polygon[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()))
        .collect();
    let (start, edge) = (ring.windows(2).enumerate())
        .map(|(i, w)| {
            (
                i,
                ((w[1].0 - w[0].0).powi(2) + (w[1].1 - w[0].1).powi(2)).sqrt(),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let twice: f64 = ring
        .windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum();
    (start, edge, twice.abs() / 2.0)
}

/// A lot whose number has a branch (`282-3`), for the ways people write it.
fn pick_branched_lot(server: &Server) -> Value {
    let page = server
        .get("/ogc/collections/parcels/items?limit=200&offset=15000")
        .json();
    let f = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            let p = &f["properties"];
            p["chiban"].as_str().is_some_and(|c| c.contains('-')) && p["oaza"].is_string()
        })
        .expect("a lot with a branch number");
    json!({ "id": f["id"], "chiban": f["properties"]["chiban"], "oaza": f["properties"]["oaza"] })
}

/// The road name with the most segments, and how many.
fn pick_road(server: &Server) -> Value {
    let page = server
        .get("/ogc/collections/roads/items?limit=10000&properties=route_name")
        .json();
    let mut counts = std::collections::BTreeMap::new();
    for f in page["features"].as_array().unwrap() {
        if let Some(name) = f["properties"]["route_name"].as_str() {
            *counts.entry(name.to_string()).or_insert(0u64) += 1;
        }
    }
    let (name, segments) = counts.into_iter().max_by_key(|(_, n)| *n).unwrap();
    assert!(segments > 1, "a road of several segments");
    json!({ "name": name, "segments": segments })
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
    // Planning: the staff map also exports lots with their owners (audited).
    let token = city.user_with_token(STAFF, &["staff", "water", "planning"]);
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
    let lot = pick_branched_lot(&server);
    let road = pick_road(&server);

    let artifacts = repo().join("target/browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let facts = json!({
        "base": server.base,
        "artifacts": artifacts,
        "staff": { "user": STAFF, "password": format!("{STAFF}-secret-password") },
        "parcel": parcel,
        "search": search,
        "pipe": pipe,
        "lot": lot,
        "road": road,
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

    check_query_export(&report, store);
    check_print(&report);
}

/// The lots the staff map exported from its query: exactly the query's
/// features (GDAL counts them again in the store), only the chosen fields,
/// in CP932 as asked, and the audit log holds the purpose.
fn check_query_export(report: &Value, store: &str) {
    let export = &report["queryExport"];
    let bytes = std::fs::read(export["file"].as_str().unwrap()).unwrap();
    let (text, _, malformed) = encoding_rs::SHIFT_JIS.decode(&bytes);
    assert!(!malformed, "the CSV is CP932");
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "CP932, not UTF-8: owner names are Japanese"
    );
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("WKT,chiban,oaza,owner_name"),
        "only the chosen fields"
    );
    let rows = lines.filter(|l| !l.is_empty()).count() as u64;
    let query = export["query"].as_str().unwrap();
    let bbox: Vec<String> = query_param(query, "bbox")
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let filter = query_param(query, "filter").expect("the query has a filter");
    let mut args = vec!["-ro", "-so", "-spat"];
    args.extend(bbox.iter().map(String::as_str));
    args.extend(["-where", filter.as_str(), store, "parcels"]);
    let in_store = ogr_count(&args);
    assert_eq!(
        rows, in_store,
        "exported lots = the query's lots ({filter} in {bbox:?})"
    );
    assert_eq!(Some(rows), export["matched"].as_u64());
    let url = export["url"].as_str().unwrap();
    assert_eq!(query_param(url, "filter").as_deref(), Some(filter.as_str()));
    let purpose = export["purpose"].as_str().unwrap();
    let log = run(chizu_bin(), &["audit", "--store", store, "--user", STAFF]);
    assert!(
        log.lines().any(|l| l.contains("\tparcels\texport\t")
            && l.contains("owner_name")
            && l.ends_with(purpose)),
        "the audit log has the export with its purpose:\n{log}"
    );
}

/// The PDF the public map printed at 1:1000: rendered by pdftoppm at 300 dpi,
/// its map, legend and scale bar are drawn, and the measured line on it is
/// as long as 1:1000 makes it (within 1 %).
fn check_print(report: &Value) {
    let print = &report["print"];
    let file = print["file"].as_str().unwrap();
    let info = run("pdfinfo", &[file]);
    assert!(
        info.contains("595.276 x 841.89 pts (A4)"),
        "A4 portrait: {info}"
    );
    let subject = info
        .lines()
        .find_map(|l| l.strip_prefix("Subject:"))
        .unwrap_or_else(|| panic!("the layout is in the subject: {info}"))
        .trim();
    let layout: Value = serde_json::from_str(subject).unwrap();
    assert_eq!(layout["scale"], 1000);
    let out = Path::new(file).with_extension("");
    run(
        "pdftoppm",
        &["-r", "300", "-singlefile", file, out.to_str().unwrap()],
    );
    let image = Ppm::read(&out.with_extension("ppm"));
    let mm = 300.0 / 25.4;
    let region = |key: &str| -> (usize, usize, usize, usize) {
        let r = &layout[key];
        let at = |k: &str| (r[k].as_f64().unwrap() * mm).round() as usize;
        (at("x"), at("y"), at("w").max(1), at("h").max(1))
    };
    let (mx, my, mw, mh) = region("map");
    let drawn = image.share(mx, my, mw, mh, |p| p != [255, 255, 255]);
    assert!(
        drawn > 0.3,
        "the map is drawn ({:.1}% not white)",
        drawn * 100.0
    );
    let (lx, ly, lw, lh) = region("legend");
    let legend = image.share(lx, ly, lw, lh, |p| p.iter().all(|c| *c < 100));
    assert!(
        legend > 0.002,
        "the legend is written ({:.2}% dark)",
        legend * 100.0
    );
    assert!(layout["legend"]["items"].as_u64().unwrap() > 3);
    let (sx, sy, sw, sh) = region("scaleBar");
    let bar = image.share(sx, sy, sw, sh, |p| p.iter().all(|c| *c < 100));
    assert!(
        bar > 0.3,
        "the scale bar is drawn ({:.1}% dark)",
        bar * 100.0
    );
    // The measuring line is the only pure green on the map.
    let green = |p: [u8; 3]| p[1] > 150 && p[0] < 90 && p[2] < 90;
    let (mut min_x, mut max_x) = (usize::MAX, 0);
    for y in my..my + mh {
        for x in mx..mx + mw {
            if green(image.pixel(x, y)) {
                min_x = min_x.min(x);
                max_x = max_x.max(x);
            }
        }
    }
    assert!(max_x > min_x, "the measured line is on the print");
    let printed_mm = (max_x - min_x + 1) as f64 / mm;
    let expected_mm = print["metres"].as_f64().unwrap() * 1000.0 / 1000.0;
    let error = (printed_mm - expected_mm).abs() / expected_mm;
    eprintln!(
        "print: {printed_mm:.2} mm printed for {expected_mm:.2} mm at 1:1000 ({:.2}%)",
        error * 100.0
    );
    assert!(
        error < 0.01,
        "{printed_mm:.2} mm printed, {expected_mm:.2} mm expected"
    );
}

/// A binary PPM (P6), as pdftoppm writes it.
struct Ppm {
    width: usize,
    pixels: Vec<u8>,
}

impl Ppm {
    fn read(path: &Path) -> Ppm {
        let bytes = std::fs::read(path).unwrap();
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
        }
        assert_eq!(fields[0], "P6");
        Ppm {
            width: fields[1].parse().unwrap(),
            pixels: bytes[at + 1..].to_vec(),
        }
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// The share of a rectangle's pixels that pass `test`.
    fn share(&self, x: usize, y: usize, w: usize, h: usize, test: impl Fn([u8; 3]) -> bool) -> f64 {
        let mut hits = 0;
        for yy in y..y + h {
            for xx in x..x + w {
                hits += test(self.pixel(xx, yy)) as usize;
            }
        }
        hits as f64 / (w * h) as f64
    }
}
