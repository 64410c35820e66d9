//! The PostgreSQL/PostGIS store: several stateless instances on one database,
//! ingests that are atomic even when killed, and answers identical to the
//! GeoPackage store's. Each test runs its own throwaway PostgreSQL cluster.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn login(server: &Server, user: &str, password: &str) -> String {
    let r = post(
        &format!("{}/auth/login", server.base),
        &[("Content-Type", "application/json")],
        &serde_json::json!({"username": user, "password": password}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cookie = r.header("set-cookie").unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// The values of property `name` in one layer of a tile, decoded by Python's
/// mapbox-vector-tile.
fn tile_property(body: &[u8], layer: &str, name: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.mvt");
    std::fs::write(&path, body).unwrap();
    let decoded = decode_with_python(std::slice::from_ref(&path));
    let key = path.to_str().unwrap();
    let properties = decoded[key][layer]["properties"].as_array().cloned();
    (properties.unwrap_or_default().iter())
        .map(|p| p[name].clone())
        .collect()
}

/// A small layer of its own, so that a test can write new versions of it.
fn write_notices(city: &City, title: &str) {
    let source = serde_json::json!({
        "type": "FeatureCollection",
        "features": [{
            "type": "Feature",
            "properties": {"title": title},
            "geometry": {"type": "Polygon", "coordinates": [[[130.09, 33.10], [130.11, 33.10], [130.11, 33.12], [130.09, 33.12], [130.09, 33.10]]]}
        }]
    });
    std::fs::write(
        city.path().join("data-samples/notices.geojson"),
        source.to_string(),
    )
    .unwrap();
    std::fs::write(
        city.path().join("layers/notices.toml"),
        r#"id = "notices"
title = { ja = "お知らせ", en = "Notices" }
source = { path = "../data-samples/notices.geojson", format = "geojson", crs = "EPSG:4326" }
geometry = "polygon"
zoom = { min = 8, max = 22 }
fields = [ { name = "title", type = "text" } ]
[access]
read = ["public"]
export = ["public"]
"#,
    )
    .unwrap();
}

#[test]
fn two_instances_share_sessions_and_versions() {
    let city = City::on_postgis();
    write_notices(&city, "first");
    let ingest = city.ingest(&["--layer", "notices", "--layer", "water_pipes"]);
    assert!(ingest.status.success(), "{}", text(&ingest));
    let store = city.store();
    let s = store.to_str().unwrap();
    let out = chizu_with_stdin(
        city.path(),
        &[
            "user", "add", "suzuki", "--role", "staff", "--role", "water", "--store", s,
        ],
        "suzuki-secret-password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    // Polling once a minute: what reaches B within two seconds was pushed.
    let slow_poll = ["--reload-interval", "60"];
    let a = Server::start_with_args(&store, &slow_poll, None);
    let b = Server::start_with_args(&store, &slow_poll, None);

    // A session started on A works on B.
    let session = login(&a, "suzuki", "suzuki-secret-password");
    let cookie = [("Cookie", session.as_str())];
    assert_eq!(b.get_with("/auth/me", &cookie).json()["user"], "suzuki");
    let pipes = "/ogc/collections/water_pipes/items?limit=1";
    assert_eq!(b.get_with(pipes, &cookie).status, 200);

    // Logout on A: B no longer knows the session, at once.
    let out = post(&format!("{}/auth/logout", a.base), &cookie, "");
    assert_eq!(out.status, 204);
    assert_eq!(
        b.get_with("/auth/me", &cookie).json()["user"],
        serde_json::Value::Null
    );
    assert_eq!(b.get_with(pipes, &cookie).status, 404);

    // Disabling the user (CLI) ends a session opened on B, on A too.
    let session = login(&b, "suzuki", "suzuki-secret-password");
    let cookie = [("Cookie", session.as_str())];
    assert_eq!(a.get_with(pipes, &cookie).status, 200);
    let out = chizu(city.path(), &["user", "disable", "suzuki", "--store", s]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(a.get_with(pipes, &cookie).status, 404);

    // A new version through the CLI: B serves it within two seconds, and no
    // tile of the old version is served after it.
    let (z, x, y) = tile_of(130.10, 33.11, 14);
    let tile = format!("/tiles/notices/{z}/{x}/{y}.mvt");
    let before = b.get(&tile);
    assert_eq!(tile_property(&before.body, "notices", "title"), ["first"]);
    write_notices(&city, "second");
    let ingest = city.ingest(&["--layer", "notices"]);
    assert!(ingest.status.success(), "{}", text(&ingest));
    let committed = Instant::now();
    let items = "/ogc/collections/notices/items";
    for (name, server) in [("B", &b), ("A", &a)] {
        let seen = loop {
            let title = server.get(items).json()["features"][0]["properties"]["title"].clone();
            if title == "second" {
                break committed.elapsed();
            }
            assert_eq!(title, "first", "the old version or the new");
            assert!(
                committed.elapsed() < Duration::from_secs(2),
                "{name} still serves the old version after 2 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        eprintln!(
            "instance {name} served the new version {seen:?} after the ingest command returned"
        );
    }
    for server in [&a, &b] {
        assert_eq!(
            tile_property(&server.get(&tile).body, "notices", "title"),
            ["second"]
        );
        let items = server.get("/ogc/collections/notices/items").json();
        assert_eq!(items["features"][0]["properties"]["title"], "second");
    }
}

/// `n` moments spread at random over `span` (a small deterministic
/// generator; the seed is printed).
fn moments(n: usize, seed: u64, span: Duration) -> Vec<Duration> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = (state.wrapping_mul(6364136223846793005)).wrapping_add(1442695040888963407);
            span.mul_f64((state >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

#[test]
fn killed_ingests_leave_the_old_version_and_no_tables() {
    let city = City::on_postgis();
    let pg = city.postgres.as_ref().unwrap();
    let started = Instant::now();
    let ingest = city.ingest(&["--layer", "parcels"]);
    assert!(ingest.status.success(), "{}", text(&ingest));
    // Kills land anywhere in an ingest: reading, writing, indexing, committing.
    let span = started.elapsed();
    let store = city.store();
    let server = Server::start(&store);
    let items = "/ogc/collections/parcels/items?limit=1";
    let expected = server.get(items).json()["numberMatched"].clone();
    let version = pg.psql("SELECT version FROM chizu_layers WHERE id = 'parcels'");

    // A reader that checks the served layer throughout.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, base, expected) = (stop.clone(), server.base.clone(), expected.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = get(&format!("{base}{items}"), &[]);
                assert_eq!(r.status, 200);
                assert_eq!(r.json()["numberMatched"], expected);
                reads += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            reads
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut completed = 0;
    for (round, after) in moments(20, seed, span).into_iter().enumerate() {
        let mut child = Command::new(chizu_bin())
            .args([
                "ingest",
                "--layer",
                "parcels",
                "--store",
                store.to_str().unwrap(),
            ])
            .current_dir(city.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        // SIGKILL: no destructor, no rollback from the client side.
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        eprintln!("round {round}: killed after {after:?} ({status})");
    }
    // The server dropped the killed ingests' connections; give PostgreSQL a
    // moment to notice and roll them back.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("every read saw the whole layer");
    eprintln!(
        "{reads} reads during the kills, {completed} ingests completed before their kill (seed {seed})"
    );

    // The data tables are the two the catalog names (the current version and
    // the one before, kept for instances not yet switched); versions only
    // grew by the ingests that completed.
    let tables = pg.psql(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'chizu_data'",
    );
    let named = pg.psql(
        "SELECT string_agg(t, ',' ORDER BY t) FROM chizu_layers, \
         unnest(ARRAY[data_table, previous_table]) AS t WHERE id = 'parcels' AND t IS NOT NULL",
    );
    assert_eq!(tables.trim(), named.trim(), "orphan tables left behind");
    let now: u64 = pg
        .psql("SELECT version FROM chizu_layers WHERE id = 'parcels'")
        .trim()
        .parse()
        .unwrap();
    let was: u64 = version.trim().parse().unwrap();
    // An ingest killed after its commit but before it exited counts as a
    // version too: at least the completed ones, at most one per round.
    assert!(
        now >= was + completed && now <= was + 20,
        "versions: {was} -> {now}, {completed} completed"
    );
    // And the layer still serves, whole.
    assert_eq!(server.get(items).json()["numberMatched"], expected);
    let after = city.ingest(&["--layer", "parcels"]);
    assert!(after.status.success(), "{}", text(&after));
}

/// GeoPackage in memory, PostGIS in memory and PostGIS served from the
/// database: the same answers, byte for byte, for the public and for staff.
#[test]
fn every_backend_and_mode_gives_the_same_answers() {
    let pg_city = City::on_postgis();
    let gpkg_city = City::on_gpkg();
    for city in [&pg_city, &gpkg_city] {
        let out = city.ingest(&["--all"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let pg_token = pg_city.user_with_token("kato", &["staff", "water", "planning"]);
    let gpkg_token = gpkg_city.user_with_token("kato", &["staff", "water", "planning"]);
    // A generous query budget: the tests run a debug build, two at a time,
    // and the budget is not what is compared here.
    let budget = ["--query-budget", "60"];
    let with = |mode: &'static str| [budget[0], budget[1], "--serve-layers", mode];
    let servers = [
        (
            Server::start_with_args(&gpkg_city.store(), &budget, None),
            gpkg_token,
        ),
        (
            Server::start_with_args(&pg_city.store(), &with("memory"), None),
            pg_token.clone(),
        ),
        (
            Server::start_with_args(&pg_city.store(), &with("database"), None),
            pg_token,
        ),
    ];
    let mut paths = Vec::new();
    for (lon, lat) in [(130.0994, 33.1028), (130.09, 33.11), (130.12, 33.09)] {
        for z in [12, 14, 16] {
            let (z, x, y) = tile_of(lon, lat, z);
            paths.push(format!(
                "/tiles/parcels,roads,zoning,hazard,boundary/{z}/{x}/{y}.mvt"
            ));
            paths.push(format!("/tiles/water_pipes,parcels/{z}/{x}/{y}.mvt"));
        }
    }
    let filter = "filter=chimoku%20%3D%20%27%E5%AE%85%E5%9C%B0%27";
    paths.extend([
        format!("/ogc/collections/parcels/items?limit=50&{filter}&bbox=130.08,33.09,130.12,33.12"),
        "/ogc/collections/parcels/items?limit=7&offset=20000".to_string(),
        "/ogc/collections/hazard/items?limit=20&crs=http://www.opengis.net/def/crs/EPSG/0/6670"
            .to_string(),
        "/ogc/collections/water_pipes/items?limit=5&filter=diameter_mm%20%3E%20200".to_string(),
        "/ogc/collections/parcels/items/1234".to_string(),
        "/ogc/collections/parcels".to_string(),
        "/query/point?lon=130.0994&lat=33.1028&zoom=17".to_string(),
        "/search?q=%E9%AB%98%E6%B4%A5%E5%8E%9F&limit=30".to_string(),
        "/ogc/collections/parcels/items?f=csv&bbox=130.09,33.10,130.10,33.11".to_string(),
        "/ogc/collections/roads/items?f=geojson&filter=road_class%20%3D%20%27national%27"
            .to_string(),
    ]);
    let mut compared = 0;
    for path in &paths {
        for staff in [false, true] {
            let answers: Vec<(Response, &str)> = (servers.iter())
                .map(|(server, token)| {
                    let bearer = format!("Bearer {token}");
                    let headers: Vec<(&str, &str)> = if staff {
                        vec![("Authorization", bearer.as_str())]
                    } else {
                        vec![]
                    };
                    (server.get_with(path, &headers), server.base.as_str())
                })
                .collect();
            // Links name each server's own address; item lists carry the time
            // they were answered.
            let normal = |(r, base): &(Response, &str)| -> Vec<u8> {
                match serde_json::from_slice::<serde_json::Value>(&r.body) {
                    Ok(mut v) => {
                        if v.get("timeStamp").is_some() {
                            v["timeStamp"] = serde_json::Value::Null;
                        }
                        v.to_string().replace(base, "").into_bytes()
                    }
                    _ => r.body.clone(),
                }
            };
            for other in &answers[1..] {
                assert_eq!(
                    answers[0].0.status, other.0.status,
                    "{path} (staff {staff})"
                );
                let (a, b) = (normal(&answers[0]), normal(other));
                assert!(
                    a == b,
                    "{path} (staff {staff}): the answers differ:\n{}\n{}",
                    String::from_utf8_lossy(&a)
                        .chars()
                        .take(600)
                        .collect::<String>(),
                    String::from_utf8_lossy(&b)
                        .chars()
                        .take(600)
                        .collect::<String>()
                );
            }
            let first = &answers[0].0;
            compared += usize::from(first.status == 200 && !first.body.is_empty());
        }
    }
    assert!(compared >= 40, "only {compared} non-empty answers compared");
    // Float fields keep every digit through PostgreSQL.
    let items = servers[2]
        .0
        .get("/ogc/collections/parcels/items?limit=1")
        .json();
    let area = &items["features"][0]["properties"]["area_m2"];
    assert!(area.as_f64().unwrap() > 0.0, "{items}");
}

#[test]
fn the_login_limiter_counts_across_instances() {
    let city = City::on_postgis();
    assert!(city.ingest(&["--layer", "boundary"]).status.success());
    let store = city.store();
    let out = chizu_with_stdin(
        city.path(),
        &[
            "user",
            "add",
            "kato",
            "--role",
            "staff",
            "--store",
            store.to_str().unwrap(),
        ],
        "kato-secret-password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let servers = [Server::start(&store), Server::start(&store)];
    let attempt = |server: &Server, password: &str| {
        post(
            &format!("{}/auth/login", server.base),
            &[("Content-Type", "application/json")],
            &serde_json::json!({"username": "kato", "password": password}).to_string(),
        )
    };
    // Five free guesses per user and address, spread over both instances.
    for i in 0..5 {
        assert_eq!(
            attempt(&servers[i % 2], "wrong guess").status,
            401,
            "guess {i}"
        );
    }
    // The sixth waits, whichever instance it goes to.
    for server in &servers {
        let r = attempt(server, "wrong guess");
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
    }
}

/// `VmHWM` (peak resident memory) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = (status.lines())
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// The ten-times sample city (about 257,000 parcels): served from the
/// database under a data-size limit that the same layers in memory exceed.
#[test]
fn a_database_layer_larger_than_the_memory_limit() {
    let city = City::on_postgis();
    let out = chizu(city.path(), &["samples", "--scale", "10"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let store = city.store();
    let token = city.user_with_token("kato", &["staff", "planning"]);
    // Private writable memory (heap and anonymous maps) the server may use:
    // about 490 MB hold these layers in memory; from the database the server
    // needs about 120 (150 at its peak).
    const LIMIT: &str = "--data=314572800"; // 300 MiB
    let serve = |mode: &str| {
        Command::new("prlimit")
            .args([
                LIMIT,
                "--",
                chizu_bin(),
                "serve",
                "--store",
                store.to_str().unwrap(),
            ])
            .args([
                "--bind",
                "127.0.0.1:0",
                "--serve-layers",
                mode,
                "--viewer",
                "/nonexistent",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("prlimit runs chizu")
    };

    // In memory the layers do not fit: the server never starts listening.
    let mut memory = serve("memory");
    let status = memory.wait().unwrap();
    let mut first = String::new();
    std::io::Read::read_to_string(memory.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert!(
        !status.success() && !first.contains("listening"),
        "{status} {first}"
    );

    // From the database they are served: tiles, items, a whole-layer export.
    let mut database = serve("database");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(database.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("chizu listening on ")
        .unwrap()
        .to_string();
    let pid = database.id();
    let (z, x, y) = tile_of(130.0994, 33.1028, 15);
    let tile = get(&format!("{base}/tiles/parcels/{z}/{x}/{y}.mvt"), &[]);
    assert_eq!(tile.status, 200);
    assert!(!tile_property(&tile.body, "parcels", "chiban").is_empty());
    let items = get(
        &format!("{base}/ogc/collections/parcels/items?limit=10&offset=250000"),
        &[],
    )
    .json();
    assert_eq!(items["features"].as_array().unwrap().len(), 10);
    let total = items["numberMatched"].as_u64().unwrap();
    assert!(total > 250_000, "{total}");

    let before = peak_rss(pid);
    let bearer = format!("Bearer {token}");
    let csv = get(
        &format!("{base}/ogc/collections/parcels/items?f=csv"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(csv.status, 200);
    let rows = csv.body.iter().filter(|b| **b == b'\n').count() as u64;
    assert_eq!(rows, total + 1, "a header and every parcel");
    let grown = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "export of {} MB: peak RSS {} MB before, grew by {} MB",
        csv.body.len() >> 20,
        before >> 20,
        grown >> 20
    );
    assert!(
        grown < 32 << 20 && grown * 4 < csv.body.len() as u64,
        "peak memory grew by {grown} bytes during a {} byte export",
        csv.body.len()
    );
    let _ = database.kill();
    let _ = database.wait();
}

/// A layer served from the database: the conditions of the view's row filter
/// and of the request's filter reach PostgreSQL as bound parameters, and a
/// field the caller may not see is never read (PostgreSQL's own statement log).
#[test]
fn the_database_is_asked_only_for_what_the_caller_may_see() {
    let city = City::on_postgis();
    let out = city.ingest(&["--layer", "parcels", "--layer", "hazard"]);
    assert!(out.status.success(), "{}", text(&out));
    let pg = city.postgres.as_ref().unwrap();
    let server = Server::start_with_args(&city.store(), &["--serve-layers", "database"], None);
    let filter = url_encode("chimoku = '宅地' AND area_m2 > 300");
    let items = server
        .get(&format!(
            "/ogc/collections/parcels/items?limit=5&filter={filter}"
        ))
        .json();
    assert!(items["numberMatched"].as_u64().unwrap() > 0);
    let (z, x, y) = tile_of(130.0994, 33.1028, 14);
    assert_eq!(
        server
            .get(&format!("/tiles/hazard,parcels/{z}/{x}/{y}.mvt"))
            .status,
        200
    );
    assert_eq!(
        server.get("/query/point?lon=130.0994&lat=33.1028").status,
        200
    );
    assert_eq!(server.get("/ogc/collections/parcels/items/5").status, 200);
    let search = server
        .get(&format!("/search?q={}", url_encode("高津原")))
        .json();
    assert!(search["matched"].as_u64().unwrap() > 0, "{search}");

    let log = pg.log();
    let reads: Vec<&str> = (log.lines())
        .filter(|l| l.contains("SELECT fid,") && l.contains("ORDER BY fid"))
        .collect();
    assert!(reads.len() >= 4, "{log}");
    for read in &reads {
        // owner_name (staff only) is never read: at most named as a NULL.
        let named = read.matches("\"owner_name\"").count();
        let as_null = read.matches("NULL::TEXT AS \"owner_name\"").count();
        assert_eq!(named, as_null, "{read}");
    }
    let asked = |fragment: &str| reads.iter().any(|r| r.contains(fragment));
    assert!(asked("\"chimoku\" COLLATE \"C\" = $"), "{reads:?}");
    assert!(asked("CAST(\"area_m2\" AS float8) > $"), "{reads:?}");
    // The public row filter of hazard areas, as a condition.
    assert!(asked("\"status\" COLLATE \"C\" = $"), "{reads:?}");
    // Literals are bound (PostgreSQL logs them as parameters), never written into SQL.
    assert!(!reads.iter().any(|r| r.contains("宅地")), "{reads:?}");
    assert!(log.contains("= '宅地'"), "the parameter reached PostgreSQL");
}
