//! The Ministry of Justice map XML (地図XML) end to end: the real Joetsu and
//! Chiba files of `../shared/data/moj` against PROJ's cs2cs and GDAL, a
//! 任意座標系 sheet refused, skipped and placed from control points, and the
//! change report of a re-ingest.

mod common;
use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn layers_dir(root: &Path) -> PathBuf {
    let dir = root.join("layers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo().join("layers/roles.toml"), dir.join("roles.toml")).unwrap();
    dir
}

const PARCEL_FIELDS: &str = r#"fields = [
  { name = "map_name", type = "text", source = "地図名" },
  { name = "fude_id", type = "text", source = "筆ID", required = true },
  { name = "oaza_code", type = "text", source = "大字コード" },
  { name = "chome_code", type = "text", source = "丁目コード" },
  { name = "koaza_code", type = "text", source = "小字コード" },
  { name = "yobi_code", type = "text", source = "予備コード" },
  { name = "oaza", type = "text", source = "大字名", searchable = true },
  { name = "koaza", type = "text", source = "小字名" },
  { name = "chiban", type = "text", source = "地番", required = true, searchable = true },
  { name = "seido", type = "text", source = "精度区分" },
  { name = "mark", type = "text", source = "区分" },
  { name = "zone", type = "text", source = "座標系" },
  { name = "map_class", type = "text", source = "地図分類" },
]"#;

fn parcel_layer(id: &str, source: &str, extra: &str) -> String {
    format!(
        r#"id = "{id}"
title = {{ ja = "地番図 (法務省地図XML)", en = "Parcels (MOJ map XML)" }}
source = {{ {source} }}
geometry = "polygon"
zoom = {{ min = 12, max = 22 }}
{extra}
{PARCEL_FIELDS}
[access]
read = ["public"]
"#
    )
}

fn ingest(dir: &Path, store: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["ingest", "--store", store.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = chizu(dir, &all);
    let log = text(&out);
    assert!(
        !log.contains("panicked") && !log.contains("stack backtrace"),
        "{log}"
    );
    (out.status.success(), log)
}

/// Every (X, Y) of an XML's GM_Points and direct positions, in file order.
fn xml_positions(xml: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<zmn:X>") {
        rest = &rest[i + 7..];
        let x: f64 = rest[..rest.find('<').unwrap()].trim().parse().unwrap();
        let j = rest.find("<zmn:Y>").unwrap();
        rest = &rest[j + 7..];
        let y: f64 = rest[..rest.find('<').unwrap()].trim().parse().unwrap();
        out.push((x, y));
    }
    out
}

/// cs2cs from a zone (northing, easting) to (longitude, latitude).
fn cs2cs_to_lonlat(epsg: u32, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    use std::io::Write;
    let mut child = std::process::Command::new("cs2cs")
        .args(["-f", "%.12f", &format!("EPSG:{epsg}"), "EPSG:4326"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cs2cs runs");
    let mut input = String::new();
    for (x, y) in points {
        input.push_str(&format!("{x} {y}\n"));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let n: Vec<f64> = l
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            // EPSG:4326 is latitude first.
            (n[1], n[0])
        })
        .collect()
}

/// Every vertex of a stored layer, as GDAL reads the store.
fn stored_vertices(store: &Path, layer: &str) -> Vec<(f64, f64)> {
    let store = store.to_str().unwrap();
    let json = run("ogr2ogr", &["-f", "GeoJSON", "/vsistdout/", store, layer]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<(f64, f64)>) {
        match v.as_array() {
            Some(a) if a.len() == 2 && a[0].is_f64() => {
                out.push((a[0].as_f64().unwrap(), a[1].as_f64().unwrap()))
            }
            Some(a) => a.iter().for_each(|x| walk(x, out)),
            None => {}
        }
    }
    for f in v["features"].as_array().unwrap() {
        walk(&f["geometry"]["coordinates"], &mut out);
    }
    out
}

fn unzip_xml(zip: &Path) -> String {
    let out = std::process::Command::new("unzip")
        .args(["-p", zip.to_str().unwrap()])
        .output()
        .expect("unzip runs");
    String::from_utf8(out.stdout).unwrap()
}

/// Each stored vertex lies within 1 mm of cs2cs's image of an XML position.
fn assert_vertices_match_cs2cs(store: &Path, layer: &str, xml: &str, epsg: u32) -> usize {
    let expected = cs2cs_to_lonlat(epsg, &xml_positions(xml));
    let cell = |lon: f64, lat: f64| ((lon * 1e5).round() as i64, (lat * 1e5).round() as i64);
    let mut grid: HashMap<(i64, i64), Vec<(f64, f64)>> = HashMap::new();
    for &(lon, lat) in &expected {
        grid.entry(cell(lon, lat)).or_default().push((lon, lat));
    }
    let vertices = stored_vertices(store, layer);
    assert!(!vertices.is_empty());
    for &(lon, lat) in &vertices {
        let (cx, cy) = cell(lon, lat);
        let nearest = (-1..=1)
            .flat_map(|dx| (-1..=1).map(move |dy| (cx + dx, cy + dy)))
            .filter_map(|c| grid.get(&c))
            .flatten()
            .map(|&(x, y)| {
                // Metres on the ground.
                let dy = (y - lat) * 111_320.0;
                let dx = (x - lon) * 111_320.0 * lat.to_radians().cos();
                dx.hypot(dy)
            })
            .fold(f64::INFINITY, f64::min);
        assert!(
            nearest < 0.001,
            "{layer}: vertex ({lon}, {lat}) is {nearest} m from cs2cs"
        );
    }
    vertices.len()
}

fn field_values(store: &Path, layer: &str, field: &str) -> Vec<String> {
    let info = run("ogrinfo", &["-ro", "-q", store.to_str().unwrap(), layer]);
    info.lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix(&format!("{field} ("))
                .and_then(|r| r.split(" = ").nth(1))
                .map(|v| v.trim().to_string())
        })
        .collect()
}

#[test]
fn joetsu_and_chiba_ingest_as_cs2cs_places_them() {
    let moj = shared_data().join("moj").canonicalize().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let layers = layers_dir(tmp.path());
    let joetsu = moj.join("15222-1107-1553.zip");
    let chiba = moj.join("12103-0400-76.zip");
    let write = |id: &str, zip: &Path, extra: &str| {
        std::fs::write(
            layers.join(format!("{id}.toml")),
            parcel_layer(
                id,
                &format!(r#"path = "{}", format = "mojxml""#, zip.display()),
                extra,
            ),
        )
        .unwrap();
    };
    // Kept as they are first, so that every stored vertex is an XML vertex.
    write("joetsu", &joetsu, r#"invalid_geometry = "keep""#);
    write("chiba", &chiba, "");
    std::fs::write(
        layers.join("joetsu_sheets.toml"),
        format!(
            r#"id = "joetsu_sheets"
title = {{ ja = "図郭 (上越市)", en = "Map sheets, Joetsu" }}
source = {{ path = "{}", format = "mojxml", mojxml = {{ features = "sheets" }} }}
geometry = "polygon"
zoom = {{ min = 12, max = 20 }}
fields = [
  {{ name = "sheet_no", type = "text", source = "地図番号" }},
  {{ name = "scale", type = "integer", source = "縮尺分母" }},
  {{ name = "map_kind", type = "text", source = "地図種類" }},
  {{ name = "map_class", type = "text", source = "地図分類" }},
  {{ name = "installed", type = "date", source = "備付地図年月日" }},
  {{ name = "surveyed", type = "text", source = "測図年月" }},
]
[access]
read = ["public"]
"#,
            joetsu.display()
        ),
    )
    .unwrap();
    let store = tmp.path().join("moj.gpkg");
    let (ok, log) = ingest(tmp.path(), &store, &["--all"]);
    assert!(ok, "{log}");
    assert!(
        log.contains("joetsu: version 1: 1051 features stored (1051 read, 6 invalid: 0 repaired, 0 skipped, 6 kept)"),
        "{log}"
    );
    assert!(log.contains("chiba: version 1: 1 features stored"), "{log}");
    assert!(
        log.contains("joetsu_sheets: version 1: 104 features stored"),
        "{log}"
    );

    let joetsu_xml = unzip_xml(&joetsu);
    let n = assert_vertices_match_cs2cs(&store, "joetsu", &joetsu_xml, 6676);
    assert!(n > 10_000, "{n} vertices");
    assert_vertices_match_cs2cs(&store, "chiba", &unzip_xml(&chiba), 6677);

    let chiban = field_values(&store, "joetsu", "chiban");
    assert_eq!(chiban.len(), 1051);
    assert_eq!(chiban[0], "1024");
    let oaza = field_values(&store, "joetsu", "oaza");
    assert_eq!(oaza[0], "大字南新保");
    assert!(
        field_values(&store, "joetsu", "zone")
            .iter()
            .all(|z| z == "公共座標8系")
    );
    assert!(
        field_values(&store, "chiba", "zone")
            .iter()
            .all(|z| z == "公共座標9系")
    );
    // A parcel knows what kind of map it comes from (a 14条地図 here).
    let classes = field_values(&store, "joetsu", "map_class");
    assert!(
        classes
            .iter()
            .filter(|c| c.starts_with("法第14条1項地図"))
            .count()
            > 1000,
        "{classes:?}"
    );
    let kinds = field_values(&store, "joetsu_sheets", "map_kind");
    assert_eq!(kinds.len(), 104);
    assert!(kinds.iter().all(|k| k == "土地改良所在図"), "{kinds:?}");
    assert!(field_values(&store, "joetsu_sheets", "installed").contains(&"2002/02/22".to_string()));

    // Repaired, as the demo's parcels are.
    write("joetsu", &joetsu, r#"invalid_geometry = "repair""#);
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "joetsu"]);
    assert!(ok, "{log}");
    assert!(
        log.contains("joetsu: version 2: 1051 features stored (1051 read, 6 invalid: 6 repaired, 0 skipped, 0 kept)"),
        "{log}"
    );

    // Rejected by default: the six invalid rings are named, version 2 stays.
    std::fs::write(
        layers.join("joetsu.toml"),
        parcel_layer(
            "joetsu",
            &format!(r#"path = "{}", format = "mojxml""#, joetsu.display()),
            "",
        ),
    )
    .unwrap();
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "joetsu"]);
    assert!(!ok);
    assert_eq!(log.matches("invalid geometry").count(), 6, "{log}");
    assert_eq!(field_values(&store, "joetsu", "chiban").len(), 1051);
}

/// The sample city's parcels as MOJ XML, with its 任意座標系 sheet.
fn sample_city() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let samples = tmp.path().join("data-samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::copy(
        repo().join("data-samples/kashima_outline.geojson"),
        samples.join("kashima_outline.geojson"),
    )
    .unwrap();
    let out = chizu(tmp.path(), &["samples"]);
    assert!(out.status.success(), "{}", text(&out));
    layers_dir(tmp.path());
    (tmp, samples)
}

#[test]
fn arbitrary_sheets_are_refused_skipped_or_placed_from_control_points() {
    let (tmp, samples) = sample_city();
    let layers = tmp.path().join("layers");
    let zip = samples.join("parcels.zip");
    let source = format!(r#"path = "{}", format = "mojxml""#, zip.display());
    let store = tmp.path().join("arbitrary.gpkg");
    let write = |extra_source: &str| {
        std::fs::write(
            layers.join("kashima.toml"),
            parcel_layer(
                "kashima",
                &format!("{source}{extra_source}"),
                // Kept as they are, so that vertices compare one to one.
                r#"invalid_geometry = "keep""#,
            ),
        )
        .unwrap();
    };
    // The shapefile is the truth: the same parcels, in zone II.
    let truth = tmp.path().join("truth.gpkg");
    std::fs::write(
        layers.join("parcels.toml"),
        r#"id = "parcels"
title = { ja = "地番図 (Shapefile)" }
source = { path = "../data-samples/parcels.shp", format = "shapefile", crs = "EPSG:6670", encoding = "CP932" }
geometry = "polygon"
zoom = { min = 12, max = 22 }
invalid_geometry = "keep"
fields = [ { name = "chiban", type = "text", required = true } ]
[access]
read = ["public"]
"#,
    )
    .unwrap();

    write("");
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "kashima"]);
    assert!(!ok);
    assert!(
        log.contains("parcels.zip/41207-0002-01.xml")
            && log.contains("sheet `41207-0002-01` is in 任意座標系")
            && log.contains(" parcels: it cannot be placed"),
        "{log}"
    );
    let held: usize = log
        .split("and holds ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(held > 100, "{log}");

    write(r#", mojxml = { arbitrary = "skip" }"#);
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "kashima"]);
    assert!(ok, "{log}");
    assert!(
        log.contains(&format!(
            "sheet `41207-0002-01` in 任意座標系 skipped ({held} parcels)"
        )),
        "{log}"
    );
    let skipped_count = field_values(&store, "kashima", "chiban").len();

    write(
        r#", mojxml = { arbitrary = "control_points", control_points = "../data-samples/parcels_control.toml" }"#,
    );
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "kashima"]);
    assert!(ok, "{log}");
    assert!(
        log.contains("placed in EPSG:6670 by a Helmert fit to 4 control points"),
        "{log}"
    );
    let residuals: Vec<f64> = log
        .split("residuals: ")
        .nth(1)
        .unwrap()
        .split(", ")
        .map(|r| r.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(residuals.len(), 4);
    assert!(residuals.iter().all(|r| *r < 1.0), "{residuals:?} mm");
    let placed = stored_vertices(&store, "kashima");
    assert_eq!(
        field_values(&store, "kashima", "chiban").len(),
        skipped_count + held
    );

    // Every placed vertex is within 1 mm of the same parcel from the shapefile.
    let (ok, log) = ingest(tmp.path(), &truth, &["--layer", "parcels"]);
    assert!(ok, "{log}");
    let expected = stored_vertices(&truth, "parcels");
    assert_eq!(placed.len(), expected.len());
    for (p, e) in placed.iter().zip(&expected) {
        let dy = (p.1 - e.1) * 111_320.0;
        let dx = (p.0 - e.0) * 111_320.0 * e.1.to_radians().cos();
        assert!(dx.hypot(dy) < 0.001, "{p:?} vs {e:?}");
    }

    // A control point mistyped by a metre refuses the sheet, naming it.
    let control = std::fs::read_to_string(samples.join("parcels_control.toml")).unwrap();
    let k2 = control
        .lines()
        .find(|l| l.contains("name = \"K2\""))
        .unwrap();
    let zone_x: f64 = k2
        .split("zone = [")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let bad = control.replace(
        k2,
        &k2.replace(
            &format!("zone = [{zone_x}"),
            &format!("zone = [{}", zone_x + 1.0),
        ),
    );
    std::fs::write(samples.join("parcels_control.toml"), bad).unwrap();
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "kashima"]);
    assert!(!ok);
    assert!(
        log.contains(
            "sheet `41207-0002-01`: the Helmert fit to its control points leaves a residual of"
        ) && log.contains("max_residual_m = 0.05"),
        "{log}"
    );
}

#[test]
fn a_reingest_reports_parcels_added_removed_and_changed() {
    let (tmp, samples) = sample_city();
    let layers = tmp.path().join("layers");
    let zip = samples.join("parcels.zip");
    let store = tmp.path().join("changes.gpkg");
    let write = |path: &Path| {
        std::fs::write(
            layers.join("kashima.toml"),
            parcel_layer(
                "kashima",
                &format!(r#"path = "{}", format = "mojxml", mojxml = {{ arbitrary = "skip" }}"#, path.display()),
                "invalid_geometry = \"repair\"\nkey = [\"oaza_code\", \"chome_code\", \"koaza_code\", \"yobi_code\", \"chiban\"]",
            ),
        )
        .unwrap();
    };
    // This year's file: the first sheet of the sample.
    let out = std::process::Command::new("unzip")
        .args(["-p", zip.to_str().unwrap(), "41207-0001-01.xml"])
        .output()
        .unwrap();
    let sheet = String::from_utf8(out.stdout).unwrap();
    assert!(sheet.contains("公共座標2系"));
    let first = tmp.path().join("first.xml");
    std::fs::write(&first, &sheet).unwrap();
    write(&first);
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "kashima"]);
    assert!(ok, "{log}");
    assert!(!log.contains("changes from version"), "{log}");

    // The next year's file: one parcel gone, one split in two, one renumbered.
    let parcel = |n: usize| {
        let start = sheet.find(&format!("<筆 id=\"H{n:09}\">")).unwrap();
        let end = start + sheet[start..].find("</筆>").unwrap() + "</筆>".len();
        (start, end)
    };
    let chiban_of = |(s, e): (usize, usize)| {
        let p = &sheet[s..e];
        let a = p.find("<地番>").unwrap() + "<地番>".len();
        p[a..a + p[a..].find('<').unwrap()].to_string()
    };
    let (removed, split, renumbered) = (parcel(10), parcel(20), parcel(30));
    let (removed_no, split_no, renumbered_no) =
        (chiban_of(removed), chiban_of(split), chiban_of(renumbered));
    // The split parcel keeps its number on a part of its land (the first
    // three curves of its ring, closed by the fourth reversed: here a
    // triangle), and the new parcel takes the whole old shape.
    let split_text = &sheet[split.0..split.1];
    let surface_ref = split_text
        .split("<形状 idref=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let surface_start = sheet
        .find(&format!("<zmn:GM_Surface id=\"{surface_ref}\">"))
        .unwrap();
    let surface_end = surface_start
        + sheet[surface_start..].find("</zmn:GM_Surface>").unwrap()
        + "</zmn:GM_Surface>".len();
    let surface = &sheet[surface_start..surface_end];
    let new_surface = surface.replace(&format!("id=\"{surface_ref}\""), "id=\"F999999999\"");
    let new_parcel = split_text
        .replace(
            &split_text[..split_text.find('>').unwrap() + 1],
            "<筆 id=\"H999999999\">",
        )
        .replace(
            &format!("<地番>{split_no}</地番>"),
            &format!("<地番>{split_no}-99</地番>"),
        )
        .replace(&format!("idref=\"{surface_ref}\""), "idref=\"F999999999\"");
    let generators: Vec<&str> = surface
        .split("<zmn:GM_CompositeCurve.generator")
        .skip(1)
        .collect();
    assert!(generators.len() >= 4);
    let shrunk = surface
        .replace(
            &format!("<zmn:GM_CompositeCurve.generator{}", generators[1]),
            "",
        )
        .replace(
            &format!("<zmn:GM_CompositeCurve.generator{}", generators[2]),
            "",
        );
    let edited = format!(
        "{}{}{}{}{}",
        &sheet[..removed.0],
        &sheet[removed.1..split.0],
        split_text,
        &sheet[split.1..renumbered.0],
        &sheet[renumbered.0..renumbered.1].replace(
            &format!("<地番>{renumbered_no}</地番>"),
            &format!("<地番>{renumbered_no}-5</地番>")
        ),
    ) + &sheet[renumbered.1..];
    let edited = edited
        .replace(surface, &format!("{shrunk}\n{new_surface}"))
        .replace(
            "</筆>\n</主題属性>",
            &format!("</筆>\n{new_parcel}\n</主題属性>"),
        );
    let next = tmp.path().join("next.xml");
    std::fs::write(&next, edited).unwrap();
    write(&next);
    let (ok, log) = ingest(tmp.path(), &store, &["--layer", "kashima", "--dry-run"]);
    assert!(ok, "{log}");
    let key = |chiban: &str| format!("koaza_code=0000, yobi_code=00, chiban={chiban}");
    assert!(
        log.contains("kashima: changes from version 1 by oaza_code + chome_code + koaza_code + yobi_code + chiban: 2 added, 2 removed, 1 changed,"),
        "{log}"
    );
    for (what, chiban) in [
        ("removed", removed_no.clone()),
        ("removed", renumbered_no.clone()),
        ("added", format!("{renumbered_no}-5")),
        ("added", format!("{split_no}-99")),
        ("changed", split_no.clone()),
    ] {
        assert!(
            log.lines()
                .any(|l| l.trim_start().starts_with(&format!("{what}: "))
                    && l.ends_with(&key(&chiban))),
            "{what} {chiban}\n{log}"
        );
    }
    assert!(
        log.contains("dry run") && log.contains("nothing was written"),
        "{log}"
    );
    // The dry run stored nothing: the same report again, still from version 1.
    let (ok, again) = ingest(tmp.path(), &store, &["--layer", "kashima"]);
    assert!(ok, "{again}");
    assert!(again.contains("changes from version 1 by"), "{again}");
    assert!(again.contains("kashima: version 2:"), "{again}");
}

fn point_layer(id: &str, title: &str, source: &str, fields: &str) -> String {
    format!(
        r#"id = "{id}"
title = {{ ja = "{title}" }}
source = {{ {source} }}
geometry = "point"
zoom = {{ min = 10, max = 20 }}
fields = [ {fields} ]
[access]
read = ["public"]
"#
    )
}

/// Runs ogr2ogr with whitespace-separated arguments (`ESRI_Shapefile` for
/// the driver name with a space).
fn ogr2ogr(args: &str) {
    let args: Vec<String> = args
        .split_whitespace()
        .map(|a| a.replace("ESRI_Shapefile", "ESRI Shapefile"))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("ogr2ogr", &args);
}

fn feature_count(store: &Path, layer: &str) -> usize {
    let info = run("ogrinfo", &["-ro", "-so", store.to_str().unwrap(), layer]);
    info.lines()
        .find_map(|l| l.strip_prefix("Feature Count: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A little-endian dBase III table with one `F` field, as older GIS write 地積.
fn float_dbf(field: &str, values: &[&str]) -> Vec<u8> {
    let width = 20u8;
    let mut dbf = vec![0x03, 126, 1, 1];
    dbf.extend((values.len() as u32).to_le_bytes());
    dbf.extend((32u16 + 32 + 1).to_le_bytes());
    dbf.extend((1u16 + width as u16).to_le_bytes());
    dbf.extend([0u8; 20]);
    let mut name = [0u8; 11];
    name[..field.len()].copy_from_slice(field.as_bytes());
    dbf.extend(name);
    dbf.push(b'F');
    dbf.extend([0u8; 4]);
    dbf.extend([width, 2]);
    dbf.extend([0u8; 14]);
    dbf.push(0x0D);
    for v in values {
        dbf.push(b' ');
        dbf.extend(format!("{v:>20}").as_bytes());
    }
    dbf.push(0x1A);
    dbf
}

/// The rows of the issue's table: each refused naming the file, the feature
/// and the two CRSs (or the range), the stored version untouched.
#[test]
fn source_files_cannot_lie_about_where_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let layers = layers_dir(dir);
    let store = dir.join("checks.gpkg");
    let good = dir.join("good.geojson");
    std::fs::write(&good, r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"name":"鹿島"},"geometry":{"type":"Point","coordinates":[130.0989,33.1036]}},
      {"type":"Feature","properties":{"name":"祐徳"},"geometry":{"type":"Point","coordinates":[130.0766,33.0843]}}]}"#).unwrap();
    let layer = |file: &str, crs: &str, extra: &str| {
        std::fs::write(
            layers.join("points.toml"),
            point_layer(
                "points",
                "地点",
                &format!(
                    r#"path = "{file}", format = "{}", crs = "{crs}"{extra}"#,
                    format_of(file)
                ),
                r#"{ name = "name", type = "text" }"#,
            ),
        )
        .unwrap();
    };
    fn format_of(file: &str) -> &'static str {
        match file.rsplit('.').next() {
            Some("gpkg") => "geopackage",
            Some("shp") => "shapefile",
            _ => "geojson",
        }
    }
    layer("../good.geojson", "EPSG:4326", "");
    let (ok, log) = ingest(dir, &store, &["--layer", "points"]);
    assert!(ok, "{log}");
    let refused = |what: &str, needles: &[&str]| {
        let (ok, log) = ingest(dir, &store, &["--layer", "points"]);
        assert!(!ok, "{what}: {log}");
        for n in needles {
            assert!(log.contains(n), "{what}: `{n}` in\n{log}");
        }
        assert_eq!(
            feature_count(&store, "points"),
            2,
            "{what}: the stored version stays"
        );
    };

    // GeoJSON in EPSG:4326 with coordinates of 1e300, and lon 200 / lat 95.
    for (name, coordinates, shown) in [
        ("huge", "[1e300, 1e300]", "coordinate (1e300, 1e300)"),
        ("lon200", "[200, 33]", "coordinate (200.0, 33.0)"),
        ("lat95", "[130, 95]", "coordinate (130.0, 95.0)"),
    ] {
        std::fs::write(
            dir.join(format!("{name}.geojson")),
            format!(r#"{{"type":"FeatureCollection","features":[
              {{"type":"Feature","properties":{{"name":"a"}},"geometry":{{"type":"Point","coordinates":[130.1,33.1]}}}},
              {{"type":"Feature","properties":{{"name":"b"}},"geometry":{{"type":"Point","coordinates":{coordinates}}}}}]}}"#),
        )
        .unwrap();
        layer(&format!("../{name}.geojson"), "EPSG:4326", "");
        refused(
            name,
            &[
                &format!("{name}.geojson: feature 2:"),
                shown,
                "outside the area of use of EPSG:4326",
                "longitude -180..180, latitude -90..90",
            ],
        );
    }

    // A GeoPackage whose SRS is EPSG:3857, declared EPSG:4326.
    let merc = dir.join("merc.gpkg");
    ogr2ogr(&format!(
        "-f GPKG -t_srs EPSG:3857 -nln points {} {}",
        merc.display(),
        good.display()
    ));
    layer("../merc.gpkg", "EPSG:4326", "");
    refused(
        "gpkg srs",
        &["merc.gpkg", "crs = \"EPSG:4326\"", "its SRS EPSG:3857"],
    );

    // A FlatGeobuf whose header says EPSG:3857, declared EPSG:4326.
    let fgb = dir.join("merc.fgb");
    ogr2ogr(&format!(
        "-f FlatGeobuf -t_srs EPSG:3857 {} {}",
        fgb.display(),
        good.display()
    ));
    std::fs::write(
        layers.join("points.toml"),
        point_layer(
            "points",
            "地点",
            r#"path = "../merc.fgb", format = "flatgeobuf", crs = "EPSG:4326""#,
            r#"{ name = "name", type = "text" }"#,
        ),
    )
    .unwrap();
    refused(
        "fgb crs",
        &["merc.fgb", "crs = \"EPSG:4326\"", "its header (EPSG:3857)"],
    );

    // A Shapefile whose .prj says EPSG:2263 (New York, US feet), declared EPSG:6670.
    let ny = dir.join("ny.shp");
    ogr2ogr(&format!(
        "-f ESRI_Shapefile -lco ENCODING=UTF-8 -t_srs EPSG:2263 {} {}",
        ny.display(),
        good.display()
    ));
    layer("../ny.shp", "EPSG:6670", "");
    refused(
        "prj",
        &[
            "ny.shp",
            "crs = \"EPSG:6670\"",
            "its .prj (`NAD_1983_StatePlane_New_York_Long_Isl",
        ],
    );

    // A .prj known to be wrong (zone II coordinates labelled EPSG:2263):
    // refused, then accepted with crs_check = "warn", the warning reported.
    let zone = dir.join("zone.geojson");
    ogr2ogr(&format!(
        "-f GeoJSON -t_srs EPSG:6670 {} {}",
        zone.display(),
        good.display()
    ));
    let mislabelled = dir.join("mislabelled.shp");
    ogr2ogr(&format!(
        "-f ESRI_Shapefile -lco ENCODING=UTF-8 -a_srs EPSG:2263 {} {}",
        mislabelled.display(),
        zone.display()
    ));
    layer("../mislabelled.shp", "EPSG:6670", "");
    refused("mislabelled", &["mislabelled.shp", "crs_check = \"warn\""]);
    layer("../mislabelled.shp", "EPSG:6670", r#", crs_check = "warn""#);
    let (ok, log) = ingest(dir, &store, &["--layer", "points"]);
    assert!(ok, "{log}");
    assert!(
        log.contains("warning: ") && log.contains("mislabelled.shp") && log.contains("EPSG:6670"),
        "{log}"
    );
    let names = field_values(&store, "points", "name");
    assert_eq!(names, vec!["鹿島", "祐徳"]);

    // DBF `F` fields are read as written, not through f32.
    let floats = dir.join("floats.shp");
    ogr2ogr(&format!(
        "-f ESRI_Shapefile -lco ENCODING=UTF-8 -t_srs EPSG:6670 {} {}",
        floats.display(),
        good.display()
    ));
    std::fs::write(
        dir.join("floats.dbf"),
        float_dbf("CHISEKI", &["1623819823.81", "0.07"]),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("floats.cpg"));
    std::fs::write(
        layers.join("points.toml"),
        point_layer(
            "points",
            "地点",
            r#"path = "../floats.shp", format = "shapefile", crs = "EPSG:6670""#,
            r#"{ name = "chiseki", type = "float", source = "CHISEKI" }"#,
        ),
    )
    .unwrap();
    let (ok, log) = ingest(dir, &store, &["--layer", "points"]);
    assert!(ok, "{log}");
    assert_eq!(
        field_values(&store, "points", "chiseki"),
        vec!["1623819823.81", "0.07"]
    );

    // Two layers may share a title: the GeoPackage identifier is made unique,
    // the same whichever is written first (layers are ingested side by side).
    for id in ["first", "second"] {
        std::fs::write(
            layers.join(format!("{id}.toml")),
            point_layer(
                id,
                "同じ題名",
                r#"path = "../good.geojson", format = "geojson", crs = "EPSG:4326""#,
                r#"{ name = "name", type = "text" }"#,
            ),
        )
        .unwrap();
    }
    let identifiers = || {
        run(
            "ogrinfo",
            &[
                "-ro",
                "-q",
                "-sql",
                "SELECT table_name, identifier FROM gpkg_contents WHERE table_name IN ('first', 'second') ORDER BY table_name",
                store.to_str().unwrap(),
            ],
        )
    };
    let (ok, log) = ingest(dir, &store, &["--layer", "second"]);
    assert!(ok, "{log}");
    assert!(identifiers().contains("identifier (String) = 同じ題名\n"));
    let expected = ["first", "second"].map(|id| {
        let identifier = if id == "first" {
            "同じ題名".to_owned()
        } else {
            format!("同じ題名 ({id})")
        };
        format!("table_name (String) = {id}\n  identifier (String) = {identifier}\n")
    });
    for layers in [
        &["--layer", "first"][..],
        &["--layer", "second", "--layer", "first"],
    ] {
        let (ok, log) = ingest(dir, &store, layers);
        assert!(ok, "{log}");
        let contents = identifiers();
        for line in &expected {
            assert!(contents.contains(line.as_str()), "{layers:?}: {contents}");
        }
    }
}

/// A municipality's download can be a zip of zips: both real files in one,
/// in two zones, and the companion layers of the same file.
#[test]
fn a_zip_of_zips_and_the_companion_layers() {
    let moj = shared_data().join("moj").canonicalize().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let layers = layers_dir(tmp.path());
    let outer = tmp.path().join("prefecture.zip");
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    for p in sys.argv[2:]: z.write(p, p.rsplit('/', 1)[-1])",
            outer.to_str().unwrap(),
            moj.join("12103-0400-76.zip").to_str().unwrap(),
            moj.join("15222-1107-1553.zip").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let source = format!(r#"path = "{}", format = "mojxml""#, outer.display());
    std::fs::write(
        layers.join("both.toml"),
        parcel_layer("both", &source, r#"invalid_geometry = "keep""#),
    )
    .unwrap();
    for (id, features, geometry, fields) in [
        (
            "lines",
            "boundary_lines",
            "line",
            r#"{ name = "kind", type = "text", source = "種類" }, { name = "line_kind", type = "text", source = "線種別" }"#,
        ),
        (
            "points",
            "boundary_points",
            "point",
            r#"{ name = "point_no", type = "text", source = "点番名" }"#,
        ),
        (
            "marks",
            "control_points",
            "point",
            r#"{ name = "name", type = "text", source = "名称" }, { name = "mark_kind", type = "text", source = "基準点種別" }"#,
        ),
    ] {
        std::fs::write(
            layers.join(format!("{id}.toml")),
            format!(
                "id = \"{id}\"\ntitle = {{ ja = \"{id}\" }}\nsource = {{ {source}, mojxml = {{ features = \"{features}\" }} }}\n\
                 geometry = \"{geometry}\"\nzoom = {{ min = 12, max = 22 }}\nfields = [ {fields} ]\n[access]\nread = [\"staff\"]\n"
            ),
        )
        .unwrap();
    }
    let store = tmp.path().join("both.gpkg");
    let (ok, log) = ingest(tmp.path(), &store, &["--all"]);
    assert!(ok, "{log}");
    assert!(
        log.contains("both: version 1: 1052 features stored"),
        "{log}"
    );
    // 筆界線 and 仮行政界線 (11,853 + 6 in Joetsu, 4 in Chiba), 筆界点, 基準点.
    assert!(
        log.contains("lines: version 1: 11863 features stored"),
        "{log}"
    );
    assert!(
        log.contains("points: version 1: 5263 features stored"),
        "{log}"
    );
    assert!(
        log.contains("marks: version 1: 935 features stored"),
        "{log}"
    );
    // Each sheet keeps its own zone (reprojected from it, one layer).
    let zones = field_values(&store, "both", "zone");
    assert_eq!(zones.iter().filter(|z| *z == "公共座標9系").count(), 1);
    assert_eq!(zones.iter().filter(|z| *z == "公共座標8系").count(), 1051);
    let kinds = field_values(&store, "lines", "line_kind");
    assert_eq!(kinds.iter().filter(|k| *k == "仮大字界線").count(), 6);
    let marks = field_values(&store, "marks", "mark_kind");
    assert!(marks.iter().any(|k| k == "地籍図根三角点"), "{marks:?}");
}
