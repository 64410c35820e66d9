//! Static publishing: `chizu pmtiles` and `chizu publish-site` on the sample
//! city. The archive, read by the Protomaps Python reader, holds exactly what
//! the server answers an anonymous caller, tile for tile, and nothing of the
//! staff layers or hidden fields; the site, served by nginx, shows the public
//! map in Chromium from the archive alone.

mod common;
use common::*;
use geozero::mvt::{Message, Tile};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn web_args() -> Vec<String> {
    let repo = repo();
    vec![
        "--viewer".into(),
        repo.join("viewer/dist").display().to_string(),
        "--styles".into(),
        repo.join("styles").display().to_string(),
    ]
}

fn chizu_ok(dir: &Path, args: &[&str]) -> String {
    let out = chizu(dir, args);
    assert!(out.status.success(), "chizu {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_archive(path: &Path) -> Value {
    let script = repo().join("tests/pmtiles_tiles.py");
    serde_json::from_str(&run(
        "python3",
        &[script.to_str().unwrap(), path.to_str().unwrap()],
    ))
    .expect("the reader prints JSON")
}

#[test]
fn the_archive_is_what_anonymous_callers_get_tile_for_tile() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let store = city.store();
    let mut args = vec![
        "pmtiles",
        "--store",
        store.to_str().unwrap(),
        "--out",
        "public.pmtiles",
    ];
    let web = web_args();
    args.extend(web.iter().map(String::as_str));
    let printed = chizu_ok(city.path(), &args);
    assert!(printed.contains("tiles per CPU-second"), "{printed}");
    let archive = read_archive(&city.path().join("public.pmtiles"));
    assert_eq!(archive["spec_version"], 3);
    assert_eq!(archive["tile_type"], "TileType.MVT");
    assert_eq!(archive["tile_compression"], "Compression.GZIP");
    assert_eq!(archive["clustered"], true);

    // The public style's source: its layers, in its order, and its zooms.
    let server = Server::start_with_args(&store, &[], None);
    let style = server.get("/styles/public.json").json();
    let source = style["sources"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| {
            s["tiles"][0]
                .as_str()
                .is_some_and(|u| u.contains("/tiles/"))
        })
        .expect("a chizu source");
    let url = source["tiles"][0].as_str().unwrap();
    let layers = url
        .split("/tiles/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let ids: Vec<&str> = (archive["metadata"]["vector_layers"]
        .as_array()
        .unwrap()
        .iter())
    .map(|l| l["id"].as_str().unwrap())
    .collect();
    assert_eq!(ids.join(","), layers);
    assert!(
        !ids.contains(&"water_pipes"),
        "a staff layer entered the archive"
    );
    assert_eq!(archive["min_zoom"], source["minzoom"]);
    assert_eq!(archive["max_zoom"], source["maxzoom"]);

    // Every tile equal to the server's anonymous answer, byte for byte.
    let tiles = archive["tiles"].as_array().unwrap();
    assert!(tiles.len() > 200, "{} tiles", tiles.len());
    let mut held: BTreeMap<(u8, u32, u32), String> = BTreeMap::new();
    for t in tiles {
        let (z, x, y) = (
            t[0].as_u64().unwrap() as u8,
            t[1].as_u64().unwrap() as u32,
            t[2].as_u64().unwrap() as u32,
        );
        held.insert((z, x, y), t[3].as_str().unwrap().to_string());
    }
    for ((z, x, y), digest) in &held {
        let r = server.get(&format!("/tiles/{layers}/{z}/{x}/{y}.mvt"));
        assert_eq!(r.status, 200, "{z}/{x}/{y}");
        assert_eq!(
            &format!("{:x}", Sha256::digest(&r.body)),
            digest,
            "{z}/{x}/{y} differs"
        );
    }
    // And every tile the server has in the archive's range at z14 is in it.
    let (_, x0, y0) = tile_of(129.95, 33.2, 14);
    let (_, x1, y1) = tile_of(130.25, 32.9, 14);
    for x in x0..=x1 {
        for y in y0..=y1 {
            let r = server.get(&format!("/tiles/{layers}/14/{x}/{y}.mvt"));
            assert_eq!(
                r.status == 200,
                held.contains_key(&(14, x, y)),
                "14/{x}/{y}: {}",
                r.status
            );
        }
    }
    // Nothing the public may not read: no hidden field in any lot tile.
    let catalog = server.get("/catalog").json();
    let public_fields: Vec<String> = (catalog["layers"].as_array().unwrap().iter())
        .find(|l| l["id"] == "parcels")
        .map(|l| {
            l["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap();
    let tiles_with_lots = (held.keys().filter(|k| k.0 == 16).step_by(7))
        .map(|(z, x, y)| server.get(&format!("/tiles/{layers}/{z}/{x}/{y}.mvt")).body)
        .map(|body| Tile::decode(&*body).unwrap())
        .filter(|tile| tile.layers.iter().any(|l| l.name == "parcels"))
        .take(10)
        .collect::<Vec<_>>();
    assert_eq!(tiles_with_lots.len(), 10);
    let lots =
        (tiles_with_lots.iter()).flat_map(|t| t.layers.iter().filter(|l| l.name == "parcels"));
    for layer in lots {
        for key in &layer.keys {
            assert!(
                public_fields.contains(key) || key == "chizu:angle",
                "{key} in the archive"
            );
        }
    }
}

struct Nginx {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx serving `root` as plain files on a free loopback port.
    fn serve(root: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let user = if run("id", &["-u"]).trim() == "0" {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{}}\nhttp {{\n include /etc/nginx/mime.types;\n access_log {d}/access.log;\n\
             client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
            d = dir.path().display(),
            root = root.display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args([
                "-c",
                path.to_str().unwrap(),
                "-e",
                dir.path().join("error.log").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx runs (apt-get install nginx-light)");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Nginx {
            child,
            base,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_static_site_shows_the_public_map_from_the_archive() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let store = city.store();
    let mut args = vec![
        "publish-site",
        "--store",
        store.to_str().unwrap(),
        "--out",
        "site",
    ];
    let web = web_args();
    args.extend(web.iter().map(String::as_str));
    chizu_ok(city.path(), &args);
    let site = city.path().join("site");
    for file in [
        "index.html",
        "public.pmtiles",
        "styles/public.json",
        "catalog.json",
        "assets/vendor/pmtiles.js",
    ] {
        assert!(site.join(file).exists(), "{file} missing");
    }
    assert!(!site.join("staff.html").exists() && !site.join("assets/staff.js").exists());
    let catalog: Value =
        serde_json::from_slice(&std::fs::read(site.join("catalog.json")).unwrap()).unwrap();
    assert!(!catalog.to_string().contains("water_pipes"));

    // A lot to click: a large one, at its interior point, with its number.
    let server = Server::start(&store);
    let page = server
        .get("/ogc/collections/parcels/items?limit=300")
        .json();
    let lot = (page["features"].as_array().unwrap().iter())
        .max_by(|a, b| {
            let area = |f: &Value| f["properties"]["area_m2"].as_f64().unwrap_or(0.0);
            area(a).total_cmp(&area(b))
        })
        .unwrap();
    let exterior = match lot["geometry"]["type"].as_str() {
        Some("MultiPolygon") => &lot["geometry"]["coordinates"][0][0],
        _ => &lot["geometry"]["coordinates"][0],
    };
    let ring: geo::LineString<f64> = (exterior.as_array().unwrap().iter())
        .filter_map(|c| Some((c[0].as_f64()?, c[1].as_f64()?)))
        .collect();
    let inside = geo::InteriorPoint::interior_point(&geo::Polygon::new(ring, vec![])).unwrap();

    let nginx = Nginx::serve(&site);
    let artifacts = repo().join("target/browser-artifacts");
    let facts = json!({
        "base": nginx.base,
        "artifacts": artifacts,
        "parcel": {"lon": inside.x(), "lat": inside.y(), "chiban": lot["properties"]["chiban"]},
    });
    let out = Command::new("node")
        .arg(repo().join("viewer/tests/static-site.mjs"))
        .env("CHIZU_FACTS", facts.to_string())
        .current_dir(repo().join("viewer"))
        .output()
        .expect("node runs (install nodejs)");
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("{}"),
    )
    .unwrap();
    assert_eq!(report["popup_chiban"], lot["properties"]["chiban"]);
    assert!(report["archive_requests"].as_u64().unwrap() > 0);
}
