//! The permission layer end to end: nothing staff-only reaches the public through
//! any door, staff see what their roles grant, caches never cross views, and
//! authentication fails closed.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Field names and layer ids the public must never see.
const HIDDEN_NAMES: &[&str] = &[
    "water_pipes",
    "owner_name",
    "pressure_class",
    "diameter_mm",
    "material",
    "install_year",
    "surface",
    "last_inspected",
];

fn sql(store: &std::path::Path, query: &str) -> Vec<String> {
    let out = run(
        "ogrinfo",
        &["-ro", "-q", "-sql", query, store.to_str().unwrap()],
    );
    out.lines()
        .filter_map(|l| l.split_once(" = ").map(|(_, v)| v.trim().to_string()))
        .collect()
}

/// Every z/x/y at `z` over the city's bounds, every `step`-th in each direction.
fn tiles_over_city(z: u8, step: usize) -> Vec<(u8, u32, u32)> {
    let (_, x0, y0) = tile_of(130.037, 33.131, z);
    let (_, x1, y1) = tile_of(130.170, 32.985, z);
    let mut out = Vec::new();
    for x in (x0..=x1).step_by(step) {
        for y in (y0..=y1).step_by(step) {
            out.push((z, x, y));
        }
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

struct Walk {
    files: Vec<PathBuf>,
    bodies: Vec<Vec<u8>>,
}

/// Fetches every route a map client uses, as one caller; keeps every byte.
fn walk(
    server: &Server,
    headers: &[(&str, &str)],
    dir: &std::path::Path,
    tag: &str,
    layers: &str,
) -> Walk {
    let mut w = Walk {
        files: vec![],
        bodies: vec![],
    };
    for path in ["/catalog", "/health", "/auth/me"] {
        w.bodies.push(server.get_with(path, headers).body);
    }
    // (Asking for a hidden layer by name echoes that name back; that is checked apart.)
    for id in [
        "parcels",
        "roads",
        "zoning",
        "hazard",
        "boundary",
        "nosuchlayer",
    ] {
        w.bodies
            .push(server.get_with(&format!("/tiles/{id}.json"), headers).body);
    }
    let mut headers_gz = headers.to_vec();
    headers_gz.push(("Accept-Encoding", "gzip"));
    for (z, step) in [(10u8, 1usize), (12, 1), (14, 1), (16, 4)] {
        for (z, x, y) in tiles_over_city(z, step) {
            let r = server.get_with(&format!("/tiles/{layers}/{z}/{x}/{y}.mvt"), &headers_gz);
            assert!(
                r.status == 200 || r.status == 204,
                "{tag} {z}/{x}/{y}: {}",
                r.status
            );
            if r.status == 200 {
                let raw = gunzip(&r.body);
                let f = dir.join(format!("{tag}-{z}-{x}-{y}.mvt"));
                std::fs::write(&f, &raw).unwrap();
                w.files.push(f);
                w.bodies.push(raw);
            }
        }
    }
    w
}

/// Byte search through std's (optimised) substring search.
fn contains(hay: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(hay).contains(needle)
}

#[test]
fn the_public_cannot_reach_staff_data_through_any_door() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let staff = city.user_with_token("kato", &["staff"]);
    let water = city.user_with_token("mizuno", &["staff", "water"]);
    let store = city.store();
    let owners: BTreeSet<String> = sql(&store, "SELECT DISTINCT owner_name FROM parcels")
        .into_iter()
        .collect();
    let materials: BTreeSet<String> = sql(&store, "SELECT DISTINCT material FROM water_pipes")
        .into_iter()
        .collect();
    let drafts: BTreeSet<u64> = sql(
        &store,
        "SELECT fid + 0 AS id FROM hazard WHERE status = 'draft'",
    )
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert!(owners.len() > 50 && materials.contains("CIP") && !drafts.is_empty());

    let server = Server::start(&store);
    let tmp = tempfile::tempdir().unwrap();
    let public_layers = "parcels,roads,zoning,hazard,boundary";

    // As the public.
    let w = walk(&server, &[], tmp.path(), "anon", public_layers);
    for body in &w.bodies {
        let text = String::from_utf8_lossy(body);
        for name in HIDDEN_NAMES {
            assert!(
                !text.contains(name),
                "public output holds `{name}`: {}",
                &text[..text.len().min(300)]
            );
        }
        for owner in &owners {
            assert!(
                !text.contains(owner.as_str()),
                "public output holds owner {owner}"
            );
        }
    }
    let decoded = decode_with_python(&w.files);
    let mut hazard_ids = 0;
    for (_, tile) in decoded.as_object().unwrap() {
        for (layer, content) in tile.as_object().unwrap() {
            assert_ne!(layer, "water_pipes");
            for props in content["properties"].as_array().unwrap() {
                for key in props.as_object().unwrap().keys() {
                    assert!(!HIDDEN_NAMES.contains(&key.as_str()), "{layer}.{key}");
                }
                if layer == "hazard" {
                    assert_eq!(props["status"], "published");
                }
            }
            if layer == "hazard" {
                for id in content["ids"].as_array().unwrap() {
                    hazard_ids += 1;
                    assert!(
                        !drafts.contains(&id.as_u64().unwrap()),
                        "draft hazard {id} shown to the public"
                    );
                }
            }
        }
    }
    assert!(hazard_ids > 0);
    // A hidden layer answers exactly like a layer that does not exist.
    let hidden = server.get("/tiles/water_pipes.json");
    let missing = server.get("/tiles/nosuchlayer1.json");
    assert_eq!(hidden.status, 404);
    assert_eq!(
        String::from_utf8_lossy(&hidden.body).replace("water_pipes", "X"),
        String::from_utf8_lossy(&missing.body).replace("nosuchlayer1", "X")
    );
    for path in [
        "/tiles/water_pipes/14/14112/6593.mvt",
        "/tiles/parcels,water_pipes/14/14112/6593.mvt",
        "/tiles/water_pipes,parcels/10/882/412.mvt",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    // The catalog counts only published hazard areas.
    let catalog = server.get("/catalog").json();
    let hazard = catalog["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "hazard")
        .unwrap()
        .clone();
    let published = sql(
        &store,
        "SELECT COUNT(*) FROM hazard WHERE status = 'published'",
    )[0]
    .parse::<u64>()
    .unwrap();
    assert_eq!(hazard["feature_count"], published);

    // As staff: the same walk finds the owners and the pipes, but not the
    // water department's pressure classes.
    let bearer = format!("Bearer {staff}");
    let w = walk(
        &server,
        &[("Authorization", &bearer)],
        tmp.path(),
        "staff",
        &format!("{public_layers},water_pipes"),
    );
    let all: Vec<u8> = w.bodies.concat();
    assert!(
        owners.iter().any(|o| contains(&all, o)),
        "staff see owner names"
    );
    assert!(
        contains(&all, "owner_name") && contains(&all, "water_pipes") && contains(&all, "material")
    );
    assert!(
        !contains(&all, "pressure_class"),
        "pressure_class is for the water role only"
    );
    let decoded = decode_with_python(&w.files);
    let staff_drafts = decoded.as_object().unwrap().values().any(|t| {
        t.get("hazard").is_some_and(|h| {
            h["ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|id| drafts.contains(&id.as_u64().unwrap()))
        })
    });
    assert!(staff_drafts, "staff see draft hazard areas");
    let bearer = format!("Bearer {water}");
    let catalog = server
        .get_with("/catalog", &[("Authorization", &bearer)])
        .json();
    let pipes = catalog["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "water_pipes")
        .unwrap()
        .clone();
    assert!(
        pipes["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "pressure_class")
    );
}

#[test]
fn caches_never_cross_views() {
    let city = City::new();
    assert!(city.ingest(&["--layer", "parcels"]).status.success());
    let staff = city.user_with_token("kato", &["staff"]);
    let bearer = format!("Bearer {staff}");
    let server = Server::start(&city.store());
    let path = |t: (u8, u32, u32)| format!("/tiles/parcels/{}/{}/{}.mvt", t.0, t.1, t.2);
    // Two tiles with parcels, found by the public (whose fetches warm only its own cache entries).
    let tiles: Vec<_> = tiles_over_city(15, 1)
        .into_iter()
        .filter(|t| server.get_with(&path(*t), &[("Accept", "x/probe")]).status == 200)
        .take(2)
        .collect();
    let (a, b) = (tiles[0], tiles[1]);
    // Staff first, then the public.
    let s = server.get_with(&path(a), &[("Authorization", &bearer)]);
    assert_eq!(s.status, 200);
    assert!(contains(&s.body, "owner_name"));
    assert!(s.header("cache-control").unwrap().starts_with("private"));
    let p = server.get(&path(a));
    assert_eq!(p.status, 200);
    assert!(
        !contains(&p.body, "owner_name"),
        "a staff tile was served to the public from cache"
    );
    assert!(p.header("cache-control").unwrap().starts_with("public"));
    assert_ne!(s.header("etag"), p.header("etag"));
    // The public's ETag does not unlock the staff tile, and the reverse.
    let cross = server.get_with(
        &path(a),
        &[
            ("Authorization", &bearer),
            ("If-None-Match", p.header("etag").unwrap()),
        ],
    );
    assert_eq!(cross.status, 200);
    // The public first, then staff.
    let p = server.get(&path(b));
    assert!(!contains(&p.body, "owner_name"));
    let s = server.get_with(&path(b), &[("Authorization", &bearer)]);
    assert!(
        contains(&s.body, "owner_name"),
        "the public tile was served to staff from cache"
    );
}

#[test]
fn random_views_only_hold_readable_fields_and_rows() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let callers: Vec<(Vec<&str>, Option<String>)> = vec![
        (vec![], None),
        (vec!["staff"], Some(city.user_with_token("u1", &["staff"]))),
        (
            vec!["staff", "water"],
            Some(city.user_with_token("u2", &["staff", "water"])),
        ),
        (vec!["water"], Some(city.user_with_token("u3", &["water"]))),
        (
            vec!["planning"],
            Some(city.user_with_token("u4", &["planning"])),
        ),
        (vec!["admin"], Some(city.user_with_token("u5", &["admin"]))),
    ];
    // What each role may read, from the layer files themselves (an oracle
    // independent of the view code).
    let layers_dir = city.path().join("layers");
    let read_layer = |id: &str| -> toml::Value {
        toml::from_str(&std::fs::read_to_string(layers_dir.join(format!("{id}.toml"))).unwrap())
            .unwrap()
    };
    let allowed = |roles: &[&str], id: &str| -> Option<BTreeSet<String>> {
        let t = read_layer(id);
        let mut mine: Vec<&str> = roles.to_vec();
        mine.push("public");
        let has = |list: &toml::Value| {
            list.as_array()
                .unwrap()
                .iter()
                .any(|r| mine.contains(&r.as_str().unwrap()))
        };
        if !has(&t["access"]["read"]) {
            return None;
        }
        let restricted = t["access"]
            .get("fields")
            .and_then(|f| f.as_table())
            .cloned()
            .unwrap_or_default();
        Some(
            t["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .filter(|n| restricted.get(n).is_none_or(has))
                .collect(),
        )
    };
    let server = Server::start(&city.store());
    let tmp = tempfile::tempdir().unwrap();
    let ids = [
        "parcels",
        "roads",
        "zoning",
        "hazard",
        "boundary",
        "water_pipes",
    ];
    let mut rng: u64 = 0x5eed;
    let mut next = || {
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut checks = Vec::new();
    for i in 0..120 {
        let (roles, token) = &callers[(next() % callers.len() as u64) as usize];
        let mut chosen: Vec<&str> = ids.iter().copied().filter(|_| next() % 2 == 0).collect();
        if chosen.is_empty() {
            chosen.push(ids[(next() % ids.len() as u64) as usize]);
        }
        let z = [12u8, 13, 14, 15, 16][(next() % 5) as usize];
        let all = tiles_over_city(z, 1);
        let (z, x, y) = all[(next() % all.len() as u64) as usize];
        let bearer = token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("Authorization", b.as_str()))
            .collect();
        let r = server.get_with(
            &format!("/tiles/{}/{z}/{x}/{y}.mvt", chosen.join(",")),
            &headers,
        );
        let all_readable = chosen.iter().all(|id| allowed(roles, id).is_some());
        if !all_readable {
            assert_eq!(r.status, 404, "{roles:?} {chosen:?}");
            continue;
        }
        assert!(
            r.status == 200 || r.status == 204,
            "{roles:?} {chosen:?} {}",
            r.status
        );
        if r.status == 200 {
            let f = tmp.path().join(format!("{i}.mvt"));
            std::fs::write(&f, &r.body).unwrap();
            checks.push((f, roles.clone()));
        }
    }
    assert!(
        checks.len() > 20,
        "enough non-empty tiles to mean something: {}",
        checks.len()
    );
    let decoded = decode_with_python(&checks.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>());
    for (f, roles) in &checks {
        for (layer, content) in decoded[f.to_str().unwrap()].as_object().unwrap() {
            let fields = allowed(roles, layer).expect("only readable layers");
            for props in content["properties"].as_array().unwrap() {
                for key in props.as_object().unwrap().keys() {
                    assert!(fields.contains(key), "{roles:?} got {layer}.{key}");
                }
                if layer == "hazard" && !roles.contains(&"staff") {
                    assert_eq!(props["status"], "published", "{roles:?}");
                }
            }
        }
    }
}

#[test]
fn authentication_fails_closed() {
    let city = City::new();
    assert!(city.ingest(&["--layer", "boundary"]).status.success());
    let token = city.user_with_token("sato", &["staff"]);
    let store = city.store();
    let s = store.to_str().unwrap();
    let server = Server::start(&store);
    let json = [("Content-Type", "application/json")];
    let login = |user: &str, password: &str| {
        post(
            &format!("{}/auth/login", server.base),
            &json,
            &serde_json::json!({"username": user, "password": password}).to_string(),
        )
    };

    // Wrong password and unknown user: the same answer.
    let wrong = login("sato", "not the password");
    let unknown = login("nobody", "not the password");
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);

    // A good login: an HttpOnly, SameSite=Strict session cookie.
    let ok = login("sato", "sato-secret-password");
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let cookie = ok.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let me = server.get_with("/auth/me", &[("Cookie", &session)]).json();
    assert_eq!(me["user"], "sato");
    assert!(me["roles"].as_array().unwrap().iter().any(|r| r == "staff"));

    // A tampered cookie is an anonymous caller.
    let tampered = format!("{}0", session);
    let me = server.get_with("/auth/me", &[("Cookie", &tampered)]).json();
    assert_eq!(me["user"], serde_json::Value::Null);
    assert_eq!(me["roles"], serde_json::json!(["public"]));

    // Form login works too.
    let form = post(
        &format!("{}/auth/login", server.base),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "username=sato&password=sato-secret-password",
    );
    assert_eq!(form.status, 200);

    // Logout ends the session.
    let out = post(
        &format!("{}/auth/logout", server.base),
        &[("Cookie", &session)],
        "",
    );
    assert_eq!(out.status, 204);
    assert_eq!(
        server.get_with("/auth/me", &[("Cookie", &session)]).json()["user"],
        serde_json::Value::Null
    );

    // Tokens: good, garbage, expired, revoked.
    let bearer = format!("Bearer {token}");
    assert_eq!(
        server
            .get_with("/auth/me", &[("Authorization", &bearer)])
            .json()["user"],
        "sato"
    );
    assert_eq!(
        server
            .get_with("/catalog", &[("Authorization", "Bearer chizu_00")])
            .status,
        401
    );
    assert_eq!(
        server
            .get_with("/catalog", &[("Authorization", "Basic c2F0bzpw")])
            .status,
        401
    );
    let expired = run(
        chizu_bin(),
        &[
            "token",
            "create",
            "--user",
            "sato",
            "--expires",
            "0s",
            "--store",
            s,
        ],
    )
    .trim()
    .to_string();
    assert_eq!(
        server
            .get_with(
                "/auth/me",
                &[("Authorization", &format!("Bearer {expired}"))]
            )
            .status,
        401
    );
    let list = run(chizu_bin(), &["token", "list", "--store", s]);
    let first_id = list
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    run(chizu_bin(), &["token", "revoke", &first_id, "--store", s]);
    assert_eq!(
        server
            .get_with("/auth/me", &[("Authorization", &bearer)])
            .status,
        401
    );

    // A disabled user can neither log in nor use a session or token.
    let fresh = run(
        chizu_bin(),
        &["token", "create", "--user", "sato", "--store", s],
    )
    .trim()
    .to_string();
    let live = login("sato", "sato-secret-password");
    let session = live
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    run(chizu_bin(), &["user", "disable", "sato", "--store", s]);
    assert_eq!(
        server
            .get_with("/auth/me", &[("Authorization", &format!("Bearer {fresh}"))])
            .status,
        401
    );
    assert_eq!(
        server.get_with("/auth/me", &[("Cookie", &session)]).json()["user"],
        serde_json::Value::Null
    );
    assert_eq!(login("sato", "sato-secret-password").status, 401);

    // Guessing is throttled per user: after five failures even the right
    // password is refused for a while, with Retry-After.
    city.user_with_token("ito", &["staff"]);
    for _ in 0..5 {
        assert_eq!(login("ito", "guess guess guess").status, 401);
    }
    let limited = login("ito", "ito-secret-password");
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
}

#[test]
fn publish_writes_a_store_with_only_public_data_and_reads_are_audited() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let token = city.user_with_token("kato", &["staff"]);
    let store = city.store();
    let public = city.path().join("public.gpkg");
    let out = chizu(
        city.path(),
        &[
            "publish",
            "--role",
            "public",
            "--out",
            public.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // GDAL sees no staff layer, field or row in the published file.
    let p = public.to_str().unwrap();
    let info = run("ogrinfo", &["-ro", "-so", "-al", p]);
    assert!(!info.contains("water_pipes"));
    for name in HIDDEN_NAMES {
        assert!(!info.contains(&format!("{name}:")), "{name} in public.gpkg");
    }
    assert!(info.contains("Layer name: parcels") && info.contains("chiban: String"));
    assert_eq!(
        sql(
            &public,
            "SELECT COUNT(*) FROM hazard WHERE status <> 'published'"
        ),
        vec!["0"]
    );
    assert_eq!(
        sql(
            &public,
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE name LIKE 'chizu_users%' OR name LIKE 'chizu_tokens%'"
        ),
        vec!["0"]
    );
    // Not a byte of an owner name anywhere in the file.
    let owners = sql(&store, "SELECT DISTINCT owner_name FROM parcels");
    let bytes = std::fs::read(&public).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    // Every owner name is "surname given-name" with a space, which no public
    // value has: one scan per surname covers every owner.
    let surnames: BTreeSet<String> = owners
        .iter()
        .filter_map(|o| o.split_once(' '))
        .map(|(s, _)| format!("{s} "))
        .collect();
    assert!(surnames.len() > 5);
    for s in &surnames {
        assert!(!text.contains(s.as_str()), "{s}");
    }

    // Served, it is the same public map: same catalog layers, same tile bytes.
    let full = Server::start(&store);
    let published = Server::start(&public);
    let ids = |s: &Server| -> Vec<String> {
        s.get("/catalog").json()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&full), ids(&published));
    let dir = tempfile::tempdir().unwrap();
    for (z, x, y) in tiles_over_city(14, 2).into_iter().take(12) {
        let path = format!("/tiles/parcels,roads,zoning,boundary/{z}/{x}/{y}.mvt");
        assert_eq!(full.get(&path).body, published.get(&path).body, "{path}");
        // Hazard ids are numbered again in the published store (the gaps
        // would show where the drafts were): the same features otherwise.
        let path = format!("/tiles/hazard/{z}/{x}/{y}.mvt");
        let files: Vec<PathBuf> = [&full, &published]
            .iter()
            .enumerate()
            .map(|(i, server)| {
                let file = dir.path().join(format!("hazard-{z}-{x}-{y}-{i}.mvt"));
                std::fs::write(&file, server.get(&path).body).unwrap();
                file
            })
            .collect();
        let decoded = decode_with_python(&files);
        let without_ids = |file: &PathBuf| {
            let mut layer = decoded[file.to_str().unwrap()].clone();
            if let Some(hazard) = layer.get_mut("hazard") {
                hazard["ids"] = serde_json::Value::Null;
            }
            layer
        };
        assert_eq!(without_ids(&files[0]), without_ids(&files[1]), "{path}");
    }

    // Staff reading parcels (with owner names) is audited; the public is not.
    let bearer = format!("Bearer {token}");
    let (z, x, y) = tiles_over_city(15, 3)[10];
    let path = format!("/tiles/parcels/{z}/{x}/{y}.mvt");
    let mut found = 0;
    for (z, x, y) in tiles_over_city(15, 2) {
        let r = full.get_with(
            &format!("/tiles/parcels/{z}/{x}/{y}.mvt"),
            &[("Authorization", &bearer)],
        );
        if r.status == 200 {
            found += 1;
        }
        full.get(&format!("/tiles/parcels/{z}/{x}/{y}.mvt"));
        if found >= 3 {
            break;
        }
    }
    let _ = full.get(&path);
    assert_eq!(found, 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = run(
            chizu_bin(),
            &[
                "audit",
                "--store",
                store.to_str().unwrap(),
                "--user",
                "kato",
            ],
        );
        let rows: Vec<&str> = log.lines().skip(1).collect();
        if rows.len() >= 3 {
            assert!(
                rows.iter()
                    .all(|r| r.contains("\tkato\tparcels\ttile\ttile 15/")
                        && r.ends_with("\towner_name\t")),
                "{log}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit rows missing: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let everyone = run(chizu_bin(), &["audit", "--store", store.to_str().unwrap()]);
    assert_eq!(
        everyone.lines().count(),
        4,
        "only the three staff reads: {everyone}"
    );
}

#[test]
fn a_policy_change_applies_without_re_ingesting() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let store = city.store();
    let server = Server::start(&store);
    let count = |s: &Server| -> u64 {
        s.get("/catalog").json()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == "hazard")
            .unwrap()["feature_count"]
            .as_u64()
            .unwrap()
    };
    let published = count(&server);
    let all: u64 = sql(&store, "SELECT COUNT(*) AS n FROM hazard")[0]
        .parse()
        .unwrap();
    assert!(published < all);
    // The city decides to publish drafts too: drop the public row filter.
    let file = city.path().join("layers/hazard.toml");
    let layer_file = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        layer_file.replace("rows = { public = \"status = 'published'\" }", ""),
    )
    .unwrap();
    let out = chizu(city.path(), &["policy", "--store", store.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("hazard: policy applied as version 2"),
        "{}",
        text(&out)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while count(&server) != all {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not pick up the policy"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A schema change is refused: that needs an ingest.
    let text2 = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text2.replace(
            "{ name = \"rank\", type = \"integer\"",
            "{ name = \"rank\", type = \"float\"",
        ),
    )
    .unwrap();
    let out = chizu(city.path(), &["policy", "--store", store.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("chizu ingest --layer hazard"),
        "{}",
        text(&out)
    );
}
