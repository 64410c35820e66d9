//! What the web maps are built on, over HTTP: styles filtered per caller, label
//! glyphs (checked against fontTools' reading of the same font), the pages and
//! the security headers every response carries.

mod common;
use common::*;
use std::collections::BTreeMap;

const FONT: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

/// The element of a JSON array whose `key` is `value`.
fn find_by<'a>(array: &'a serde_json::Value, key: &str, value: &str) -> &'a serde_json::Value {
    array
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {array}"))
}

fn city_server(extra: &[&str]) -> (City, Server) {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start_with_args(&city.store(), extra, None);
    (city, server)
}

/// Reads protobuf fields: (field number, varint value or bytes).
fn fields(mut buf: &[u8]) -> Vec<(u64, Result<u64, Vec<u8>>)> {
    fn varint(buf: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = buf[0];
            *buf = &buf[1..];
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        match key & 7 {
            0 => out.push((key >> 3, Ok(varint(&mut buf)))),
            2 => {
                let len = varint(&mut buf) as usize;
                out.push((key >> 3, Err(buf[..len].to_vec())));
                buf = &buf[len..];
            }
            wire => panic!("unexpected wire type {wire}"),
        }
    }
    out
}

#[derive(Debug)]
struct Glyph {
    width: u64,
    height: u64,
    advance: u64,
    top: i64,
    bitmap: Vec<u8>,
}

fn decode_glyphs(pbf: &[u8]) -> (String, String, BTreeMap<u64, Glyph>) {
    let stacks = fields(pbf);
    assert_eq!(stacks.len(), 1, "one font stack");
    let Err(stack) = &stacks[0].1 else {
        panic!("a stack is a message")
    };
    let (mut name, mut range, mut out) = (String::new(), String::new(), BTreeMap::new());
    for (field, value) in fields(stack) {
        match (field, value) {
            (1, Err(b)) => name = String::from_utf8(b).unwrap(),
            (2, Err(b)) => range = String::from_utf8(b).unwrap(),
            (3, Err(b)) => {
                let mut g = Glyph {
                    width: 0,
                    height: 0,
                    advance: 0,
                    top: 0,
                    bitmap: Vec::new(),
                };
                let mut id = 0;
                for (f, v) in fields(&b) {
                    match (f, v) {
                        (1, Ok(v)) => id = v,
                        (2, Err(b)) => g.bitmap = b,
                        (3, Ok(v)) => g.width = v,
                        (4, Ok(v)) => g.height = v,
                        (6, Ok(v)) => g.top = ((v >> 1) as i64) ^ -((v & 1) as i64),
                        (7, Ok(v)) => g.advance = v,
                        _ => {}
                    }
                }
                out.insert(id, g);
            }
            other => panic!("unexpected field {other:?}"),
        }
    }
    (name, range, out)
}

/// (advance, top, width) at 24 px to the em, computed with fontTools from the
/// font file the way FreeType-based glyph tools (fontnik, Martin) measure:
/// `top` is the bitmap's top above the baseline less the ascender, both
/// rounded up to whole pixels.
fn font_tools_metrics(chars: &str) -> BTreeMap<u64, (u64, i64, u64)> {
    let script = format!(
        r#"
import math
from fontTools.ttLib import TTCollection
from fontTools.pens.boundsPen import BoundsPen
for font in TTCollection("{FONT}").fonts:
    names = font["name"]
    family = names.getDebugName(16) or names.getDebugName(1)
    style = names.getDebugName(17) or names.getDebugName(2)
    if f"{{family}} {{style}}" == "Noto Sans CJK JP Regular":
        cmap, upem, glyph_set = font.getBestCmap(), font["head"].unitsPerEm, font.getGlyphSet()
        px = 24 / upem
        ascender = math.ceil(font["hhea"].ascent * px)
        for ch in {chars:?}:
            pen = BoundsPen(glyph_set)
            glyph_set[cmap[ord(ch)]].draw(pen)
            x0, _, x1, y1 = pen.bounds
            advance = round(font["hmtx"][cmap[ord(ch)]][0] * px)
            width = math.ceil(x1 * px) - math.floor(x0 * px)
            print(ord(ch), advance, math.ceil(y1 * px) - ascender, width)
        break
"#
    );
    run("python3", &["-c", &script])
        .lines()
        .map(|l| {
            let v: Vec<i64> = l.split(' ').map(|n| n.parse().unwrap()).collect();
            (v[0] as u64, (v[1] as u64, v[2], v[3] as u64))
        })
        .collect()
}

#[test]
fn glyphs_match_the_font() {
    let (_city, server) = city_server(&[]);
    let stack = "Noto Sans CJK JP Regular";
    let r = server.get(&format!("/fonts/{}/0-255.pbf", stack.replace(' ', "%20")));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert!(r.header("cache-control").unwrap().contains("public"));
    let (name, range, glyphs) = decode_glyphs(&r.body);
    assert_eq!((name.as_str(), range.as_str()), (stack, "0-255"));

    let chars = "0123456789-ABCxyz";
    let want = font_tools_metrics(chars);
    assert_eq!(want.len(), chars.len(), "fontTools found the face");
    for (code, (advance, top, width)) in &want {
        let g = &glyphs[code];
        assert_eq!(
            (g.advance, g.top, g.width),
            (*advance, *top, *width),
            "advance, top and width of U+{code:04X}"
        );
        assert_eq!(
            g.bitmap.len() as u64,
            (g.width + 6) * (g.height + 6),
            "bitmap size"
        );
        // A distance field: the ink is inside (>= 192), the border fades out.
        assert!(g.bitmap.iter().any(|v| *v >= 192), "U+{code:04X} has ink");
        assert!(g.bitmap[0] < 120, "U+{code:04X} corner is outside");
    }
    let space = &glyphs[&32];
    assert!(space.bitmap.is_empty() && space.advance > 0);

    // Kanji come from the same font (chiban labels with 大字 names).
    let r = server.get(&format!(
        "/fonts/{}/22272-22527.pbf",
        stack.replace(' ', "%20")
    ));
    let (_, _, kanji) = decode_glyphs(&r.body);
    assert_eq!(kanji[&0x5730].advance, 24, "地 is one em wide");

    // An unknown font falls back to the first loaded (Noto's first face is the
    // JP one): the same glyphs, under the name of the face that drew them.
    let r = server.get("/fonts/Nonexistent%20Sans/0-255.pbf");
    assert_eq!(r.status, 200);
    let (fallback_name, _, fallback) = decode_glyphs(&r.body);
    assert_eq!(fallback_name, stack);
    assert_eq!(fallback[&49].bitmap, glyphs[&49].bitmap);
    // A bad range is a 404 problem.
    for bad in [
        "/fonts/x/1-256.pbf",
        "/fonts/x/0-511.pbf",
        "/fonts/x/65536-65791.pbf",
        "/fonts/x/a-b.pbf",
    ] {
        let r = server.get(bad);
        assert_eq!(r.status, 404, "{bad}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}

#[test]
fn styles_pages_and_headers() {
    let (city, server) = city_server(&[]);
    let token = city.user_with_token("style-staff", &["staff", "water"]);
    let auth = format!("Bearer {token}");
    qgis_reads_the_served_styles(&city, &server, &auth);

    let public = server.get("/styles/staff.json");
    assert_eq!(public.status, 200);
    let text = String::from_utf8(public.body.clone()).unwrap();
    for hidden in [
        "water_pipes",
        "diameter_mm",
        "owner_name",
        "chizu:layers",
        "chizu:background",
    ] {
        assert!(!text.contains(hidden), "{hidden} in the anonymous style");
    }
    let style = public.json();
    let tiles = style["sources"]["chizu"]["tiles"][0].as_str().unwrap();
    assert_eq!(
        tiles,
        format!(
            "{}/tiles/boundary,zoning,hazard,parcels,roads/{{z}}/{{x}}/{{y}}.mvt",
            server.base
        )
    );
    // The tile URL in the style works for this caller.
    let (z, x, y) = tile_of(130.0902, 33.1138, 15);
    let tile = server.get(&format!(
        "/tiles/boundary,zoning,hazard,parcels,roads/{z}/{x}/{y}.mvt"
    ));
    assert_eq!(tile.status, 200);

    let staff = get(
        &format!("{}/styles/staff.json", server.base),
        &[("Authorization", &auth)],
    );
    assert_eq!(staff.status, 200);
    assert!(staff.header("cache-control").unwrap().contains("private"));
    let staff = staff.json();
    assert!(
        staff["sources"]["chizu"]["tiles"][0]
            .as_str()
            .unwrap()
            .contains("water_pipes")
    );
    assert!(
        staff["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["source-layer"] == "water_pipes")
    );

    // Code lists reach the forms: queryables as a JSON Schema enum, the
    // catalog with labels.
    let queryables = get(
        &format!("{}/ogc/collections/water_pipes/queryables", server.base),
        &[("Authorization", &auth)],
    )
    .json();
    let codes = &queryables["properties"]["material"]["enum"];
    assert_eq!(codes.as_array().unwrap().len(), 8, "{codes}");
    assert!(
        codes
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("DIP"))
    );
    let catalog = server.get("/catalog").json();
    let hazard = find_by(&catalog["layers"], "id", "hazard");
    let kind = find_by(&hazard["fields"], "name", "hazard_type");
    assert_eq!(kind["values"]["flood"]["ja"], "洪水");

    for bad in [
        "/styles/nope.json",
        "/styles/..%2Fpublic.json",
        "/styles/public",
        "/styles/.json",
    ] {
        let r = server.get(bad);
        assert_eq!(r.status, 404, "{bad}");
    }

    // The pages: each loads its own code only.
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(page.body.clone()).unwrap();
    assert!(html.contains("/assets/public.js") && !html.contains("staff.js"));
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    let staff_page = String::from_utf8(server.get("/staff").body).unwrap();
    assert!(staff_page.contains("/assets/staff.js"));
    let asset = server.get("/assets/common.js");
    assert_eq!(asset.status, 200);
    assert!(asset.header("content-type").unwrap().contains("javascript"));
    assert_eq!(asset.header("cache-control"), Some("no-cache"));
    assert_eq!(
        server
            .get("/assets/vendor/maplibre-gl-csp-worker.js")
            .status,
        200
    );
    assert_eq!(server.get("/assets/../Cargo.toml").status, 404);

    // Security headers on pages, assets, API answers and errors alike.
    for path in ["/", "/staff", "/assets/public.js", "/catalog", "/nope"] {
        let r = server.get(path);
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("CSP on {path}"));
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{path}: {csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("connect-src 'self';"),
            "{csp}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
}

#[test]
fn background_tiles_are_opt_in_and_allowed_by_the_policy() {
    let url = "https://cyberjapandata.gsi.go.jp/xyz/pale/{z}/{x}/{y}.png";
    let photo = "https://cyberjapandata.gsi.go.jp/xyz/seamlessphoto/{z}/{x}/{y}.jpg";
    let choice = format!("写真={photo}");
    let (_city, server) = city_server(&["--background-tiles", url, "--background-tiles", &choice]);
    let style = server.get("/styles/public.json").json();
    assert_eq!(style["sources"]["background"]["tiles"][0], url);
    // A second background map to choose from: hidden until chosen.
    assert_eq!(style["sources"]["background-2"]["tiles"][0], photo);
    let second = (style["layers"].as_array().unwrap().iter())
        .find(|l| l["source"] == "background-2")
        .expect("the photo's layer");
    assert_eq!(second["metadata"]["chizu:background"], "写真");
    assert_eq!(second["layout"]["visibility"], "none");
    assert!(
        style["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["source"] == "background")
    );
    let csp = server
        .get("/")
        .header("content-security-policy")
        .unwrap()
        .to_string();
    assert!(
        csp.contains("connect-src 'self' https://cyberjapandata.gsi.go.jp;"),
        "{csp}"
    );

    // Without the viewer the pages say how to build it; the API still works.
    let (_city, server) = city_server(&["--viewer", "/nonexistent"]);
    let r = server.get("/");
    assert_eq!(r.status, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("npm"));
    assert_eq!(server.get("/catalog").status, 200);
}

#[test]
fn edited_styles_are_served_without_a_restart() {
    let styles = tempfile::tempdir().unwrap();
    let file = styles.path().join("public.json");
    std::fs::copy(repo().join("styles/public.json"), &file).unwrap();
    let dir = styles.path().to_str().unwrap().to_string();
    let (_city, server) = city_server(&["--styles", &dir]);
    let colour = |server: &Server| {
        let style = server.get("/styles/public.json").json();
        find_by(&style["layers"], "id", "background")["paint"]["background-color"].clone()
    };
    assert_eq!(colour(&server), "#f4f1ea");
    let edited = std::fs::read_to_string(&file)
        .unwrap()
        .replace("#f4f1ea", "#eeeeee");
    // Each edit gets a later modification time, whatever the file system's
    // clock resolution.
    let edit = |text: &str, seconds: u64| {
        std::fs::write(&file, text).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
        let handle = std::fs::File::options().write(true).open(&file).unwrap();
        handle.set_modified(later).unwrap();
    };
    edit(&edited, 5);
    assert_eq!(colour(&server), "#eeeeee");
    // A broken edit is the operator's error: a 500 problem without details, logged.
    edit("{ not json", 10);
    let r = server.get("/styles/public.json");
    assert_eq!(r.status, 500);
    assert!(
        !String::from_utf8_lossy(&r.body).contains(&dir),
        "no paths in errors"
    );
}

#[test]
fn metrics_are_for_admins_only() {
    let (city, server) = city_server(&[]);
    let admin = format!("Bearer {}", city.user_with_token("ops", &["admin"]));
    let staff = format!("Bearer {}", city.user_with_token("clerk", &["staff"]));
    // Some traffic to count: a tile twice (one render, one cache hit), a 404.
    let (z, x, y) = tile_of(130.0902, 33.1138, 15);
    for _ in 0..2 {
        assert_eq!(
            server
                .get(&format!("/tiles/parcels/{z}/{x}/{y}.mvt"))
                .status,
            200
        );
    }
    assert_eq!(server.get("/nope").status, 404);

    // To anyone but an admin, /metrics is what an unknown path is.
    let unknown = server.get("/no-such-thing");
    for auth in [None, Some(staff.as_str())] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let r = get(&format!("{}/metrics", server.base), &headers);
        assert_eq!((r.status, &r.body), (404, &unknown.body));
    }

    let r = get(
        &format!("{}/metrics", server.base),
        &[("Authorization", &admin)],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    // Parsed by the Prometheus project's own Python client.
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
        out[key] = s.value
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let samples: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(samples["chizu_tiles_served_total"], 2.0, "{samples}");
    assert_eq!(samples["chizu_tiles_rendered_total"], 1.0, "{samples}");
    assert_eq!(
        samples["chizu_http_requests_total|kind=tiles|status=2xx"],
        2.0
    );
    assert!(
        samples["chizu_http_requests_total|kind=other|status=4xx"]
            .as_f64()
            .unwrap()
            >= 2.0
    );
    assert_eq!(
        samples["chizu_http_request_duration_seconds_count|kind=tiles"],
        2.0
    );
    assert_eq!(samples["chizu_layer_version|layer=water_pipes"], 1.0);
    assert!(
        samples["chizu_layer_features|layer=parcels"]
            .as_f64()
            .unwrap()
            > 20_000.0
    );
    assert!(samples["chizu_tile_cache_bytes"].as_f64().unwrap() > 0.0);
}

/// The styles as served (public anonymously, staff with a staff token) load
/// in QGIS's own converter (3.22, Debian's python3-qgis) without a warning:
/// every drawing layer becomes a renderer style, zoning and hazard colours
/// stay data-defined by their codes, lot numbers and road names become labels.
fn qgis_reads_the_served_styles(city: &City, server: &Server, auth: &str) {
    let public = city.path().join("public-style.json");
    let staff = city.path().join("staff-style.json");
    std::fs::write(&public, server.get("/styles/public.json").body).unwrap();
    std::fs::write(
        &staff,
        server
            .get_with("/styles/staff.json", &[("Authorization", auth)])
            .body,
    )
    .unwrap();
    let script = repo().join("tests/qgis_style_check.py");
    let out = run(
        "/usr/bin/python3",
        &[
            script.to_str().unwrap(),
            public.to_str().unwrap(),
            staff.to_str().unwrap(),
        ],
    );
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(
        report["qgis"].as_str().unwrap().starts_with("3."),
        "{report}"
    );
    for (file, served) in [(&public, "public"), (&staff, "staff")] {
        let converted = &report[file.to_str().unwrap()];
        assert_eq!(converted["result"], 0, "{served}: {converted}");
        assert_eq!(converted["warnings"], serde_json::json!([]), "{served}");
        let style: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let names = |key: &str| -> Vec<String> {
            (converted[key].as_array().unwrap().iter())
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        };
        let (drawn, labels) = (names("styles"), names("labels"));
        for layer in style["layers"].as_array().unwrap() {
            let id = layer["id"].as_str().unwrap().to_string();
            let converted_as = if layer["type"] == "symbol" {
                &labels
            } else {
                &drawn
            };
            assert!(converted_as.contains(&id), "{served}: QGIS dropped {id}");
        }
        let colour = |name: &str| -> String {
            (converted["styles"].as_array().unwrap().iter())
                .find(|s| s["name"] == name)
                .and_then(|s| s["colour"].as_str())
                .unwrap_or_else(|| panic!("{served}: {name} has no data-defined colour"))
                .to_string()
        };
        assert!(
            colour("zoning-fill").contains("IN ('準工業地域') THEN '#b58ad1'"),
            "{served}: {}",
            colour("zoning-fill")
        );
        assert!(colour("hazard-flood-fill").contains("IN (4) THEN '#1d4f9c'"));
        let label = (converted["labels"].as_array().unwrap().iter())
            .find(|l| l["name"] == "parcels-chiban")
            .unwrap();
        assert_eq!(label["field"], "\"chiban\"");
    }
}
