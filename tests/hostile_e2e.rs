//! What an attacker on the internet can send, sent to the real binary: every
//! answer is a 4xx problem+json (or the documented limit), and the server
//! still answers `/health` afterwards.

mod common;
use common::*;
use std::io::{Read, Write};
use std::sync::Arc;

fn assert_problem(r: &Response, status: u16, needle: &str, what: &str) {
    assert_eq!(
        r.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let body = r.json();
    assert_eq!(body["status"], status, "{what}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(needle), "{what}: {detail}");
}

fn assert_healthy(server: &Server) {
    let r = server.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

/// One city and one server for every check here (ingest is the slow part).
fn city_and_server(extra: &[&str]) -> (City, Server) {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start_with_args(&city.store(), extra, None);
    (city, server)
}

#[test]
fn hostile_requests_get_bounded_answers() {
    let (city, server) = city_and_server(&["--trusted-proxy", "127.0.0.1"]);
    filters_are_bounded(&server);
    errors_are_problem_details(&server);
    cors_is_off_except_for_configured_origins(&server, &city);
    queries_stop_at_their_budget(&city);
    search_uses_the_index(&server);
    logins_hold_under_concurrency(&city, &server);
    assert_healthy(&server);
}

fn filters_are_bounded(server: &Server) {
    let items =
        |layer: &str, query: &str| server.get(&format!("/ogc/collections/{layer}/items?{query}"));
    let deep = format!("{}chiban='1'{}", "(".repeat(2000), ")".repeat(2000));
    let r = items("parcels", &format!("filter={}", url_encode(&deep)));
    assert_problem(&r, 400, "nests deeper", "2,000 parentheses");
    let nots = format!("{}chiban='1'", "NOT ".repeat(2000));
    let r = items("parcels", &format!("filter={}", url_encode(&nots)));
    assert_problem(&r, 400, "nests deeper", "2,000 NOTs");
    let json = format!(
        "{}true{}",
        "{\"op\":\"not\",\"args\":[".repeat(200),
        "]}".repeat(200)
    );
    let r = items(
        "parcels",
        &format!("filter-lang=cql2-json&filter={}", url_encode(&json)),
    );
    assert_eq!(r.status, 400, "deep CQL2 JSON");
    assert_healthy(server);

    // LIKE in linear time: answered, with the same count as a plain scan would give.
    let like = "route_name LIKE '%%%%%%%%%%%%%%Z'";
    let r = items("roads", &format!("filter={}&limit=1", url_encode(like)));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["numberMatched"], 0);
    let r = items(
        "roads",
        &format!(
            "filter={}&limit=1",
            url_encode("route_name LIKE '%%%%%%%%%%号%'")
        ),
    );
    assert!(r.json()["numberMatched"].as_u64().unwrap() > 0);
    // The export of a layer the public may not export is refused before any scan.
    let r = items("roads", &format!("f=csv&filter={}", url_encode(like)));
    assert_problem(&r, 403, "not export", "export of roads");
    // An older GDAL's filter-lang is understood.
    let r = items("parcels", "filter-lang=cql-text&filter=chiban%3D%271-3%27");
    assert_eq!(r.status, 200);
    assert_healthy(server);
}

fn errors_are_problem_details(server: &Server) {
    let url = |p: &str| format!("{}{p}", server.base);
    let r = request("PUT", &url("/catalog"), &[], Some("x"));
    assert_problem(&r, 405, "", "PUT /catalog");
    assert!(r.header("allow").unwrap().contains("GET"));
    let r = request("DELETE", &url("/tiles/parcels/14/1/1.mvt"), &[], None);
    assert_problem(&r, 405, "", "DELETE a tile");
    let r = request("OPTIONS", &url("/catalog"), &[], None);
    assert_eq!(r.status, 204);
    let allow = r.header("allow").unwrap();
    assert!(allow.contains("GET") && !allow.contains("POST"), "{allow}");
    let r = request("OPTIONS", &url("/auth/login"), &[], None);
    assert!(r.header("allow").unwrap().contains("POST"));
    assert_problem(
        &server.get("/no/such/thing"),
        404,
        "no such resource",
        "unknown route",
    );
    let long = format!("/search?q={}", "1".repeat(20_000));
    assert_problem(&server.get(&long), 414, "longer than", "a 20 KB URL");
    // Past 64 KB the HTTP library answers by itself (414, no body); the server lives on.
    let huge = format!("/search?q={}", "1".repeat(100_000));
    assert_eq!(server.get(&huge).status, 414);
    assert_healthy(server);
    let big_header = "x".repeat(20_000);
    let r = server.get_with("/catalog", &[("x-padding", &big_header)]);
    assert_problem(&r, 431, "headers exceed", "a 20 KB header");
    let r = server.get("/tiles/%FF%FE/14/1/1.mvt");
    assert!(
        (400..500).contains(&r.status),
        "bad UTF-8 in the path: {}",
        r.status
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let r = server.get("/search?q=%FF%FE");
    assert_problem(&r, 400, "", "bad UTF-8 in the query");
    let r = server.get("/tiles/parcels/99/1/1.mvt");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // 20 KB: over the 16 KiB a login may be, and small enough that the
    // client has sent it all before the early answer arrives.
    let body = format!(
        "{{\"username\":\"a\",\"password\":\"{}\"}}",
        "x".repeat(20_000)
    );
    let r = post(
        &url("/auth/login"),
        &[("content-type", "application/json")],
        &body,
    );
    assert_problem(&r, 413, "", "a 20 KB login");
    assert_healthy(server);
}

fn cors_is_off_except_for_configured_origins(server: &Server, city: &City) {
    let preflight = |server: &Server, origin: &str| {
        request(
            "OPTIONS",
            &format!("{}/catalog", server.base),
            &[("origin", origin), ("access-control-request-method", "GET")],
            None,
        )
    };
    // Off by default: no other site may read the API from a browser.
    let r = preflight(server, "https://www.city.example.jp");
    assert!(r.header("access-control-allow-origin").is_none());
    let configured = Server::start_with_args(
        &city.store(),
        &["--cors-origin", "https://www.city.example.jp"],
        None,
    );
    let r = preflight(&configured, "https://www.city.example.jp");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://www.city.example.jp")
    );
    let r = preflight(&configured, "https://evil.example");
    assert!(r.header("access-control-allow-origin").is_none());
    let r = configured.get_with("/catalog", &[("origin", "https://evil.example")]);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = configured.get_with("/catalog", &[("origin", "https://www.city.example.jp")]);
    assert!(r.header("access-control-allow-origin").is_some());
}

fn queries_stop_at_their_budget(city: &City) {
    // A budget too small for any scan: every query that scans is refused.
    let server = Server::start_with_args(&city.store(), &["--query-budget", "0.000001"], None);
    let filter = url_encode("chiban LIKE '%1%'");
    let r = server.get(&format!("/ogc/collections/parcels/items?filter={filter}"));
    assert_problem(&r, 422, "narrow it", "a scan over its budget");
    let r = server.get("/search?q=1");
    assert_problem(&r, 422, "narrow it", "a search over its budget");
    assert_healthy(&server);
    // Tiles do not scan: they are answered as always.
    let (z, x, y) = tile_of(130.1, 33.1, 14);
    assert_eq!(
        server
            .get(&format!("/tiles/parcels/{z}/{x}/{y}.mvt"))
            .status,
        200
    );
}

fn search_uses_the_index(server: &Server) {
    let r = server.get("/search?q=1").json();
    assert_eq!(
        r["truncated"], true,
        "a one-digit query stops at the candidate cap"
    );
    assert_eq!(r["results"].as_array().unwrap().len(), 20);
    let r = server.get("/search?q=%EF%BC%91%EF%BC%8D%EF%BC%93").json(); // １－３
    assert!(r["results"][0]["label"].as_str().unwrap().contains("1-3"));
}

fn login(server: &Server, user: &str, password: &str, from: &str) -> Response {
    post(
        &format!("{}/auth/login", server.base),
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", from),
        ],
        &serde_json::json!({"username": user, "password": password}).to_string(),
    )
}

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn logins_hold_under_concurrency(city: &City, server: &Server) {
    let _ = city.user_with_token("kato", &["staff"]);
    let server_ref = Arc::new(server.base.clone());
    // `user` and `from` with `{i}` in them differ per request.
    let concurrent = |n: usize, user: &'static str, from: &'static str| -> Vec<u16> {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let base = server_ref.clone();
                std::thread::spawn(move || {
                    let name = user.replace("{i}", &i.to_string());
                    let from = from.replace("{i}", &(i % 250 + 1).to_string());
                    post(
                        &format!("{base}/auth/login"),
                        &[
                            ("content-type", "application/json"),
                            ("x-forwarded-for", &from),
                        ],
                        &serde_json::json!({"username": name, "password": "wrong password"})
                            .to_string(),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    // Forty guesses at once from one address: exactly five passwords are checked.
    let statuses = concurrent(40, "kato", "203.0.113.1");
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35);
    // A hundred unknown names from one address: twenty checks.
    let statuses = concurrent(100, "nobody{i}", "203.0.113.2");
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    // A hundred logins from a hundred addresses are all checked, one per core
    // at a time: memory stays bounded (argon2id holds 19 MiB a check).
    let before = vm_hwm_kb(server.pid());
    let statuses = concurrent(100, "user{i}", "192.0.2.{i}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        100,
        "{statuses:?}"
    );
    let grown_mb = (vm_hwm_kb(server.pid()) - before) / 1024;
    eprintln!("100 concurrent password checks: peak RSS grew by {grown_mb} MB");
    assert!(grown_mb < 64, "peak RSS grew by {grown_mb} MB");
    // The attacker waits; the owner, elsewhere, logs in.
    // (Its delay may have passed while the rounds above ran: then it gets one
    // more guess, and the next waits twice as long.)
    let r = login(server, "kato", "wrong password", "203.0.113.1");
    assert!([401, 429].contains(&r.status));
    let r = login(server, "kato", "wrong password", "203.0.113.1");
    assert_problem(&r, 429, "try again", "the attacker");
    assert!(r.header("retry-after").is_some());
    let r = login(server, "kato", "kato-secret-password", "198.51.100.7");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // A peer that is not a trusted proxy cannot choose its address: covered by
    // the unit tests of `client_addr`; here every request comes from the proxy.

    // Cross-site logins are refused before any password is checked.
    let post_from = |headers: &[(&str, &str)]| {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        post(
            &format!("{}/auth/login", server.base),
            &all,
            r#"{"username":"kato","password":"kato-secret-password"}"#,
        )
    };
    let r = post_from(&[("origin", "https://evil.example")]);
    assert_problem(&r, 403, "", "a login posted from another site");
    assert!(r.header("set-cookie").is_none());
    let r = post_from(&[("sec-fetch-site", "cross-site")]);
    assert_eq!(r.status, 403);
    let own = server.base.clone();
    let r = post_from(&[("origin", &own), ("x-forwarded-for", "198.51.100.7")]);
    assert_eq!(r.status, 200, "the server's own origin logs in");
    let r = request(
        "POST",
        &format!("{}/auth/logout", server.base),
        &[("origin", "https://evil.example")],
        Some(""),
    );
    assert_eq!(r.status, 403, "logout from another site");
}

#[test]
fn published_files_stand_alone_and_tell_nothing() {
    let city = City::new();
    let out = city.ingest(&["--all"]);
    assert!(out.status.success(), "{}", text(&out));
    // The sample GeoPackage is one file.
    assert!(city.path().join("data-samples/zoning.gpkg").exists());
    assert!(!city.path().join("data-samples/zoning.gpkg-wal").exists());
    let published = city.path().join("public.gpkg");
    let store = city.store();
    let out = chizu(
        city.path(),
        &[
            "publish",
            "--store",
            store.to_str().unwrap(),
            "--role",
            "public",
            "--out",
            published.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!city.path().join("public.gpkg-wal").exists());
    // Copied alone, the file holds every public layer in full.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("public.gpkg");
    std::fs::copy(&published, &copy).unwrap();
    let count = |file: &std::path::Path, sql: &str| -> u64 {
        let out = run(
            "ogrinfo",
            &["-ro", "-q", "-sql", sql, file.to_str().unwrap()],
        );
        out.lines()
            .find_map(|l| l.split_once(" = ").map(|(_, v)| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{sql}: {out}"))
    };
    for layer in ["parcels", "roads", "zoning", "boundary"] {
        let sql = format!("SELECT COUNT(*) AS n FROM {layer}");
        assert_eq!(count(&copy, &sql), count(&store, &sql), "{layer}");
    }
    // Hazard: only published rows, numbered 1..n without the gaps of the drafts.
    let n = count(&copy, "SELECT COUNT(*) AS n FROM hazard");
    assert_eq!(
        n,
        count(
            &store,
            "SELECT COUNT(*) AS n FROM hazard WHERE status = 'published'"
        )
    );
    assert!(n < count(&store, "SELECT COUNT(*) AS n FROM hazard"));
    assert_eq!(count(&copy, "SELECT MAX(fid) AS n FROM hazard"), n);
    // The stored hash is of what was published, not of the source file with its drafts.
    let hash = |file: &std::path::Path| {
        run(
            "ogrinfo",
            &[
                "-ro",
                "-q",
                "-sql",
                "SELECT source_sha256 FROM chizu_layers WHERE id = 'hazard'",
                file.to_str().unwrap(),
            ],
        )
    };
    let (public_hash, source_hash) = (hash(&copy), hash(&store));
    assert!(public_hash.contains("source_sha256"), "{public_hash}");
    assert_ne!(public_hash, source_hash);
}

/// CPU time (user + system, in seconds) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn a_query_stops_when_its_client_leaves() {
    let (_city, server) = city_and_server(&["--query-budget", "30"]);
    // A costly filter: the full DE-9IM matrix of every parcel against a
    // 600-vertex polygon around the whole city.
    let ring: Vec<String> = (0..=600)
        .map(|i| {
            let a = (i % 600) as f64 / 600.0 * std::f64::consts::TAU;
            format!("{:.5} {:.5}", 130.1 + 0.1 * a.cos(), 33.07 + 0.1 * a.sin())
        })
        .collect();
    let filter = format!("S_TOUCHES(geometry, POLYGON(({})))", ring.join(", "));
    let url = format!(
        "{}/ogc/collections/parcels/items?filter={}",
        server.base,
        url_encode(&filter)
    );
    let pid = server.pid();
    let before = cpu_seconds(pid);
    // The client leaves once the server has worked on its query for 0.3 s of
    // CPU (not after a fixed time: on a busy machine the query may not have
    // started by then), and closes its connection.
    let path = url.strip_prefix(&server.base).unwrap().to_string();
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut client = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        client,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while cpu_seconds(pid) - before < 0.3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the query did work at first"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    client.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(client.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the query is long enough for the client to give up"
    );
    drop(client);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t1 = cpu_seconds(pid);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let t2 = cpu_seconds(pid);
    eprintln!(
        "CPU: {:.2} s until the client left, {:.2} s in the 2 s after",
        t1 - before,
        t2 - t1
    );
    assert!(
        t2 - t1 < 0.5,
        "the query stopped: {:.2} s of CPU after the client left",
        t2 - t1
    );
    assert_healthy(&server);
}
