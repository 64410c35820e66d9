//! OGC API - Features, "what is here" and search end to end, checked with real
//! clients (GDAL's OAPIF driver, Python OWSLib) and against GDAL reading the
//! store directly.

mod common;
use common::*;

fn items(server: &Server, query: &str, headers: &[(&str, &str)]) -> Response {
    server.get_with(&format!("/ogc/collections/{query}"), headers)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn count_sql(store: &std::path::Path, table: &str, where_: &str) -> u64 {
    let out = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            &format!("SELECT COUNT(*) AS n FROM {table} WHERE {where_}"),
            store.to_str().unwrap(),
        ],
    );
    out.lines().find_map(sql_count).unwrap().parse().unwrap()
}

/// The extent of the rows GDAL selects, as [west, south, east, north].
fn extent_sql(store: &std::path::Path, table: &str, where_: &str) -> Vec<f64> {
    // The GeoPackage driver's and PostGIS's names for the same functions.
    let [x0, y0, x1, y1] = if on_postgres() {
        ["ST_XMin", "ST_YMin", "ST_XMax", "ST_YMax"]
    } else {
        ["ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY"]
    };
    let out = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            &format!(
                "SELECT min({x0}(geom)) AS w, min({y0}(geom)) AS s, max({x1}(geom)) AS e, \
                 max({y1}(geom)) AS n FROM {table} WHERE {where_}"
            ),
            store.to_str().unwrap(),
        ],
    );
    ["w", "s", "e", "n"]
        .iter()
        .map(|name| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name} (Real) = ")))
                .unwrap_or_else(|| panic!("no {name} in {out}"))
                .parse()
                .unwrap()
        })
        .collect()
}

/// Features GDAL finds with an exact spatial filter (GEOS), counted one by one
/// (the fast count of `-so` compares envelopes only). GDAL's PostgreSQL
/// driver filters by envelope only: there PostGIS's `ST_Intersects` (GEOS
/// too) counts.
fn spat_count(store: &std::path::Path, layer: &str, b: [f64; 4]) -> u64 {
    if on_postgres() {
        let envelope = format!(
            "ST_MakeEnvelope({}, {}, {}, {}, 4326)",
            b[0], b[1], b[2], b[3]
        );
        return count_sql(store, layer, &format!("ST_Intersects(geom, {envelope})"));
    }
    let args: Vec<String> = [
        "-ro",
        "-q",
        "-fields=NO",
        "-geom=NO",
        store.to_str().unwrap(),
        layer,
        "-spat",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(b.iter().map(|v| v.to_string()))
    .collect();
    let out = run(
        "ogrinfo",
        &args.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    out.lines().filter(|l| l.starts_with("OGRFeature")).count() as u64
}

fn matched(server: &Server, collection: &str, filter: &str, headers: &[(&str, &str)]) -> u64 {
    let r = items(
        server,
        &format!("{collection}/items?limit=1&filter={}", enc(filter)),
        headers,
    );
    assert_eq!(
        r.status,
        200,
        "{filter}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["numberMatched"].as_u64().unwrap()
}

#[test]
fn ogc_api_features_with_real_clients() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let store = city.store();
    let server = Server::start(&store);
    let ogc = format!("OAPIF:{}/ogc", server.base);

    // GDAL lists the public collections, and no other.
    let listing = run("ogrinfo", &["-ro", "-q", &ogc]);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["boundary", "hazard", "parcels", "roads", "zoning"],
        "{listing}"
    );

    // ogr2ogr pages through the whole parcels collection.
    let out = city.path().join("parcels-oapif.gpkg");
    run(
        "ogr2ogr",
        &["-f", "GPKG", out.to_str().unwrap(), &ogc, "parcels"],
    );
    let total = count_sql(&store, "parcels", "1 = 1");
    assert!(total >= 20_000);
    assert_eq!(count_sql(&out, "parcels", "1 = 1"), total);
    for (field, value) in [("chiban", "chiban"), ("oaza", "oaza")] {
        let a = run(
            "ogrinfo",
            &[
                "-ro",
                "-q",
                "-sql",
                &format!("SELECT {value} FROM parcels WHERE fid = 1"),
                store.to_str().unwrap(),
            ],
        );
        let b = run(
            "ogrinfo",
            &[
                "-ro",
                "-q",
                "-sql",
                &format!("SELECT {value} FROM parcels WHERE fid = 1"),
                out.to_str().unwrap(),
            ],
        );
        let pick = |t: &str| {
            t.lines()
                .find(|l| l.contains(&format!("{field} (String)")))
                .map(|l| l.trim().to_string())
        };
        assert_eq!(pick(&a), pick(&b), "{field}");
    }
    let schema = run("ogrinfo", &["-ro", "-so", out.to_str().unwrap(), "parcels"]);
    assert!(!schema.contains("owner_name"), "{schema}");

    // OWSLib: collections, a bbox page and a CQL2 filter.
    let chiban = "12-1";
    let py = std::process::Command::new("python3")
        .args([
            repo().join("tests/owslib_check.py").to_str().unwrap(),
            &format!("{}/ogc", server.base),
            "130.09,33.09,130.11,33.11",
            chiban,
        ])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py));
    let seen: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(
        seen["collections"],
        serde_json::json!(["boundary", "hazard", "parcels", "roads", "zoning"])
    );
    assert!(seen["bbox_returned"].as_u64().unwrap() > 0);
    let exact = spat_count(&store, "parcels", [130.09, 33.09, 130.11, 33.11]);
    assert_eq!(
        seen["bbox_matched"].as_u64().unwrap(),
        exact,
        "bbox agrees with GDAL's spatial filter"
    );
    let expected = count_sql(&store, "parcels", &format!("chiban = '{chiban}'"));
    let got = seen["filtered_chiban"].as_array().unwrap();
    assert_eq!(got.len() as u64, expected.min(100));
    assert!(got.iter().all(|c| c == chiban));
    assert!(
        !seen["queryables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == "owner_name")
    );

    // Paging: next links walk the whole (row-filtered) hazard collection once.
    let mut url = "/ogc/collections/hazard/items?limit=37".to_string();
    let mut ids = std::collections::BTreeSet::new();
    let mut matched_total;
    loop {
        let page = server.get(&url).json();
        matched_total = page["numberMatched"].as_u64().unwrap();
        for f in page["features"].as_array().unwrap() {
            assert!(ids.insert(f["id"].as_u64().unwrap()), "duplicate on paging");
            assert_eq!(f["properties"]["status"], "published");
        }
        match page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
        {
            Some(next) => {
                url = next["href"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&server.base)
                    .to_string()
            }
            None => break,
        }
    }
    assert_eq!(ids.len() as u64, matched_total);
    assert_eq!(
        matched_total,
        count_sql(&store, "hazard", "status = 'published'")
    );
}

#[test]
fn cql2_filters_agree_with_sql() {
    let city = City::new();
    assert!(
        city.ingest(&[
            "--layer",
            "parcels",
            "--layer",
            "water_pipes",
            "--layer",
            "hazard"
        ])
        .status
        .success()
    );
    let store = city.store();
    let token = city.user_with_token("mizuno", &["staff", "water"]);
    let bearer = format!("Bearer {token}");
    let staff = [("Authorization", bearer.as_str())];
    let server = Server::start(&store);
    for (cql, sql) in [
        ("area_m2 > 1000", "area_m2 > 1000"),
        ("area_m2 >= 1120 AND area_m2 <= 1120", "area_m2 = 1120"),
        ("area_m2 < 600", "area_m2 < 600"),
        ("chimoku = '宅地'", "chimoku = '宅地'"),
        ("chimoku <> '宅地'", "chimoku <> '宅地'"),
        ("NOT chimoku = '田'", "NOT chimoku = '田'"),
        ("chimoku IN ('田', '畑')", "chimoku IN ('田', '畑')"),
        ("chimoku NOT IN ('田', '畑')", "chimoku NOT IN ('田', '畑')"),
        ("chiban LIKE '12-%'", "chiban LIKE '12-%'"),
        ("chiban LIKE '1_-1'", "chiban LIKE '1_-1'"),
        ("area_m2 BETWEEN 500 AND 600", "area_m2 BETWEEN 500 AND 600"),
        ("aza IS NULL", "aza IS NULL"),
        ("aza IS NOT NULL", "aza IS NOT NULL"),
        (
            "chimoku = '田' OR (chimoku = '畑' AND area_m2 > 1000)",
            "chimoku = '田' OR (chimoku = '畑' AND area_m2 > 1000)",
        ),
        (
            "chiban = '1-3'' OR ''1''=''1'",
            "chiban = '1-3'' OR ''1''=''1'",
        ),
        (
            "chiban = '1-3; DROP TABLE parcels; --'",
            "chiban = '1-3; DROP TABLE parcels; --'",
        ),
    ] {
        assert_eq!(
            matched(&server, "parcels", cql, &[]),
            count_sql(&store, "parcels", sql),
            "{cql}"
        );
    }
    // The injection attempts changed nothing.
    assert!(count_sql(&store, "parcels", "1 = 1") > 20_000);
    // CQL2 JSON says the same as CQL2 text.
    let json_filter = r#"{"op":"and","args":[{"op":"=","args":[{"property":"chimoku"},"宅地"]},{"op":"<","args":[{"property":"area_m2"},600]}]}"#;
    let r = items(
        &server,
        &format!(
            "parcels/items?limit=1&filter-lang=cql2-json&filter={}",
            enc(json_filter)
        ),
        &[],
    );
    assert_eq!(
        r.json()["numberMatched"].as_u64().unwrap(),
        count_sql(&store, "parcels", "chimoku = '宅地' AND area_m2 < 600")
    );

    // Spatial: S_INTERSECTS and bbox agree with GDAL's spatial filter.
    let n = spat_count(&store, "parcels", [130.08, 33.08, 130.1, 33.1]);
    assert!(n > 0);
    assert_eq!(
        matched(
            &server,
            "parcels",
            "S_INTERSECTS(geometry, BBOX(130.08, 33.08, 130.1, 33.1))",
            &[]
        ),
        n
    );
    assert_eq!(
        matched(
            &server,
            "parcels",
            "S_INTERSECTS(geometry, POLYGON((130.08 33.08, 130.1 33.08, 130.1 33.1, 130.08 33.1, 130.08 33.08)))",
            &[]
        ),
        n
    );
    let r = items(
        &server,
        "parcels/items?limit=1&bbox=130.08,33.08,130.1,33.1",
        &[],
    );
    assert_eq!(r.json()["numberMatched"].as_u64().unwrap(), n);
    let within = matched(
        &server,
        "parcels",
        "S_WITHIN(geometry, BBOX(130.08, 33.08, 130.1, 33.1))",
        &[],
    );
    assert!(within > 0 && within < n, "within {within} of {n}");

    // The staff utility query: old cast-iron mains of 150 mm and more near a
    // point, checked against the pipes GDAL exports, measured independently.
    let export = city.path().join("pipes.geojson");
    run(
        "ogr2ogr",
        &[
            "-f",
            "GeoJSON",
            export.to_str().unwrap(),
            store.to_str().unwrap(),
            "water_pipes",
            "-where",
            "diameter_mm >= 150 AND material = 'CIP' AND install_year < 1980",
        ],
    );
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    let pipes = all["features"].as_array().unwrap();
    assert!(pipes.len() > 20);
    let first = &pipes[pipes.len() / 2]["geometry"]["coordinates"][0][0];
    let (lon, lat) = (
        first[0].as_f64().unwrap() + 0.0003,
        first[1].as_f64().unwrap(),
    );
    let metres = |p: &serde_json::Value| -> f64 {
        // Distance from (lon, lat) to the polyline, on a local plane, in metres.
        let k = lat.to_radians().cos();
        let to = |c: &serde_json::Value| {
            (
                (c[0].as_f64().unwrap() - lon).to_radians() * 6_371_008.8 * k,
                (c[1].as_f64().unwrap() - lat).to_radians() * 6_371_008.8,
            )
        };
        p["geometry"]["coordinates"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|line| {
                let pts: Vec<(f64, f64)> = line.as_array().unwrap().iter().map(to).collect();
                pts.windows(2)
                    .map(|w| {
                        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
                        let (dx, dy) = (x2 - x1, y2 - y1);
                        let t = (((-x1) * dx + (-y1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
                        ((x1 + t * dx).powi(2) + (y1 + t * dy).powi(2)).sqrt()
                    })
                    .collect::<Vec<_>>()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let expected = pipes.iter().filter(|p| metres(p) <= 50.0).count() as u64;
    assert!(expected > 0);
    let utility = format!(
        "diameter_mm >= 150 AND material = 'CIP' AND install_year < 1980 AND DWITHIN(geometry, POINT({lon} {lat}), 50, meters)"
    );
    assert_eq!(matched(&server, "water_pipes", &utility, &staff), expected);

    // Bad requests: clear 400s that point at the problem.
    for (query, needle) in [
        ("parcels/items?filter=chiban%20%3D%20%271-3", "character 9"),
        ("parcels/items?filter=chiban%20%3D%3D%201", "character"),
        ("parcels/items?filter=area_m2%20%3E", "value"),
        ("parcels/items?filter-lang=sql&filter=1", "filter-lang"),
        ("parcels/items?limit=0", "limit"),
        ("parcels/items?limit=abc", "limit"),
        ("parcels/items?offset=-1", "offset"),
        ("parcels/items?bbox=1,2,3", "bbox"),
        ("parcels/items?bbox=a,b,c,d", "bbox"),
        ("parcels/items?bbox=130.2,33.2,130.1,33.1", "lower corner"),
        ("parcels/items?bbox=0,-100,1,100", "latitudes"),
        ("parcels/items?crs=EPSG:2000", "unsupported crs"),
        (
            "parcels/items?bbox-crs=EPSG:9999&bbox=1,2,3,4",
            "unsupported bbox-crs",
        ),
        (
            "parcels/items?nosuchfield=1",
            "unknown property `nosuchfield`",
        ),
    ] {
        let r = items(&server, query, &[]);
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(needle), "{query}: {detail}");
    }
    // A huge limit is capped.
    let r = items(&server, "parcels/items?limit=1000000", &[]).json();
    assert_eq!(r["numberReturned"], 10_000);
    // A hidden field is answered exactly like an unknown one.
    let hidden = items(
        &server,
        &format!("parcels/items?filter={}", enc("owner_name = 'x'")),
        &[],
    );
    let unknown = items(
        &server,
        &format!("parcels/items?filter={}", enc("owner_nome = 'x'")),
        &[],
    );
    assert_eq!((hidden.status, unknown.status), (400, 400));
    assert_eq!(
        String::from_utf8_lossy(&hidden.body).replace("owner_name", "X"),
        String::from_utf8_lossy(&unknown.body).replace("owner_nome", "X")
    );
    let hidden = items(&server, "parcels/items?owner_name=x", &[]);
    assert_eq!(hidden.status, 400);
    // Hidden collections and rows do not exist.
    assert_eq!(items(&server, "water_pipes/items", &[]).status, 404);
    assert_eq!(items(&server, "water_pipes", &[]).status, 404);
    let draft = count_sql(&store, "hazard", "status = 'draft'");
    assert!(draft > 0);
    let draft_id = run(
        "ogrinfo",
        &[
            "-ro",
            "-q",
            "-sql",
            "SELECT fid + 0 AS n FROM hazard WHERE status = 'draft'",
            store.to_str().unwrap(),
        ],
    );
    let draft_id = draft_id.lines().find_map(sql_count).unwrap();
    assert_eq!(
        items(&server, &format!("hazard/items/{draft_id}"), &[]).status,
        404
    );
    assert_eq!(
        items(&server, &format!("hazard/items/{draft_id}"), &staff).status,
        200
    );
    let api = server.get("/ogc/api");
    let api_text = String::from_utf8_lossy(&api.body);
    assert!(
        api_text.contains("/collections/parcels/items")
            && !api_text.contains("owner_name")
            && !api_text.contains("water_pipes")
    );
}

#[test]
fn coordinates_in_the_city_crs_match_the_source_to_a_millimetre() {
    let city = City::new();
    assert!(city.ingest(&["--layer", "parcels"]).status.success());
    let server = Server::start(&city.store());
    let shp = city.path().join("data-samples/parcels.shp");
    for fid in [0u64, 4321, 17000] {
        // GDAL reads the source shapefile (EPSG:6670, easting then northing).
        let src = run(
            "ogrinfo",
            &[
                "-ro",
                "-q",
                shp.to_str().unwrap(),
                "parcels",
                "-fid",
                &fid.to_string(),
            ],
        );
        let wkt = src
            .lines()
            .find(|l| {
                l.trim_start().starts_with("MULTIPOLYGON") || l.trim_start().starts_with("POLYGON")
            })
            .unwrap();
        let nums: Vec<f64> = wkt
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|s| s.parse().ok())
            .collect();
        let item = server.get(&format!(
            "/ogc/collections/parcels/items/{}?crs=http://www.opengis.net/def/crs/EPSG/0/6670",
            fid + 1
        ));
        assert_eq!(
            item.header("content-crs"),
            Some("<http://www.opengis.net/def/crs/EPSG/0/6670>")
        );
        let json = item.json();
        let ring = json["geometry"]["coordinates"][0][0].as_array().unwrap();
        for (k, c) in ring.iter().enumerate() {
            // EPSG:6670's axis order is northing (X), easting (Y).
            let (north, east) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
            let (e, n) = (nums[2 * k], nums[2 * k + 1]);
            assert!(
                (east - e).abs() < 0.001 && (north - n).abs() < 0.001,
                "feature {fid} vertex {k}: {east},{north} vs {e},{n}"
            );
        }
    }
}

#[test]
fn what_is_here_and_search() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let store = city.store();
    let token = city.user_with_token("kato", &["staff"]);
    let bearer = format!("Bearer {token}");
    let server = Server::start(&store);
    // A parcel inside a zoning area, found with GDAL.
    let q = "SELECT p.fid + 0 AS n, p.chiban AS chiban FROM parcels p LIMIT 1 OFFSET 1500";
    let out = run(
        "ogrinfo",
        &["-ro", "-q", "-sql", q, store.to_str().unwrap()],
    );
    let fid: u64 = out.lines().find_map(sql_count).unwrap().parse().unwrap();
    let chiban = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("chiban (String) = "))
        .unwrap()
        .to_string();
    let item = server
        .get(&format!("/ogc/collections/parcels/items/{fid}"))
        .json();
    let ring = item["geometry"]["coordinates"][0][0].as_array().unwrap();
    let n = (ring.len() - 1) as f64;
    let (lon, lat) = ring[..ring.len() - 1].iter().fold((0.0, 0.0), |(x, y), c| {
        (
            x + c[0].as_f64().unwrap() / n,
            y + c[1].as_f64().unwrap() / n,
        )
    });
    let here = server
        .get(&format!("/query/point?lon={lon}&lat={lat}&zoom=18"))
        .json();
    let layers = here["layers"].as_array().unwrap();
    let parcels = layers
        .iter()
        .find(|l| l["id"] == "parcels")
        .expect("the parcel is here");
    assert_eq!(
        parcels["features"][0]["properties"]["chiban"],
        chiban.as_str()
    );
    assert!(
        parcels["features"][0]["properties"]
            .get("owner_name")
            .is_none()
    );
    assert!(layers.iter().any(|l| l["id"] == "boundary"));
    // Zoning at the point agrees with GDAL's spatial filter.
    let d = 1e-7;
    let zoning_count = spat_count(&store, "zoning", [lon - d, lat - d, lon + d, lat + d]) as usize;
    let zoning_here = layers
        .iter()
        .find(|l| l["id"] == "zoning")
        .map(|l| l["features"].as_array().unwrap().len())
        .unwrap_or(0);
    assert_eq!(zoning_here, zoning_count);
    if let Some(z) = layers.iter().find(|l| l["id"] == "zoning") {
        let p = &z["features"][0]["properties"];
        assert!(p["youto"].is_string() && p["kenpei_pct"].is_i64() && p["youseki_pct"].is_i64());
    }
    let staff_here = server
        .get_with(
            &format!("/query/point?lon={lon}&lat={lat}&zoom=18"),
            &[("Authorization", &bearer)],
        )
        .json();
    let staff_parcels = staff_here["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "parcels")
        .unwrap()
        .clone();
    assert!(staff_parcels["features"][0]["properties"]["owner_name"].is_string());
    assert_eq!(server.get("/query/point?lon=500&lat=33").status, 400);

    // Search: full-width digits and dashes find the lot number, exact first.
    let wide: String = chiban
        .chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            '-' => '－',
            c => c,
        })
        .collect();
    let found = server.get(&format!("/search?q={}", enc(&wide))).json();
    let results = found["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert_eq!(results[0]["properties"]["chiban"], chiban.as_str());
    assert_eq!(results[0]["exact"], true);
    let expected = count_sql(&store, "parcels", &format!("chiban = '{chiban}'"));
    assert_eq!(
        results.iter().filter(|r| r["exact"] == true).count() as u64,
        expected.min(20)
    );
    // Prefix matches come after exact ones.
    let prefix = server
        .get(&format!(
            "/search?q={}&limit=100",
            enc(&chiban[..chiban.len() - 1])
        ))
        .json();
    let flags: Vec<bool> = prefix["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["exact"].as_bool().unwrap())
        .collect();
    assert!(
        flags.windows(2).all(|w| w[0] || !w[1]),
        "exact matches first: {flags:?}"
    );
    // Lot numbers as people write them: 番, 番地, の, a district run into the
    // number, the optional 大字.
    let page = server
        .get("/ogc/collections/parcels/items?limit=200")
        .json();
    let lot = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["properties"])
        .find(|p| {
            p["chiban"]
                .as_str()
                .is_some_and(|c| c.matches('-').count() == 1)
                && p["oaza"].is_string()
        })
        .unwrap();
    let (lot_no, oaza) = (
        lot["chiban"].as_str().unwrap(),
        lot["oaza"].as_str().unwrap(),
    );
    let (a, b) = lot_no.split_once('-').unwrap();
    for q in [
        format!("{a}番{b}"),
        format!("{a}番地{b}"),
        format!("{a}の{b}"),
        format!("{oaza}{a}-{b}"),
        format!("大字{oaza} {a}番{b}"),
        format!("{oaza}{a}番地{b}"),
    ] {
        let found = server
            .get(&format!("/search?q={}&limit=100", enc(&q)))
            .json();
        assert!(
            found["results"].as_array().unwrap().iter().any(|r| {
                r["exact"] == true
                    && r["properties"]["chiban"] == lot_no
                    && r["properties"]["oaza"] == oaza
            }),
            "{q}: {found}"
        );
    }
    // A district is one result, with the extent of all its lots, found by
    // its name (大字 optional) or its reading in either kana.
    let district_lots = count_sql(&store, "parcels", "oaza = '高津原'");
    let extent = extent_sql(&store, "parcels", "oaza = '高津原'");
    for q in ["高津原", "大字高津原", "たかつはら", "タカツハラ", "タカツ"] {
        let found = server.get(&format!("/search?q={}", enc(q))).json();
        let first = &found["results"][0];
        assert_eq!(first["label"], "高津原", "{q}: {found}");
        assert_eq!(first["place"], true, "{q}");
        assert_eq!(first["reading"], "タカツハラ", "{q}");
        assert_eq!(first["kind"]["ja"], "大字", "{q}");
        assert_eq!(first["features"].as_u64(), Some(district_lots), "{q}");
        let bbox: Vec<String> = (first["bbox"].as_array().unwrap().iter())
            .map(|v| format!("{:.9}", v.as_f64().unwrap()))
            .collect();
        let expected: Vec<String> = extent.iter().map(|v| format!("{v:.9}")).collect();
        assert_eq!(
            bbox, expected,
            "{q}: the extent of every lot of the district"
        );
        assert!(
            (found["results"].as_array().unwrap().iter())
                .all(|r| r["place"] == true || r["properties"]["oaza"] != "高津原"),
            "{q}: the district's lots are in its one result, not listed one by one"
        );
    }
    // A road is one result for all its segments.
    let road = server
        .get(&format!("/search?q={}", enc("国道207号")))
        .json();
    let roads: Vec<&serde_json::Value> = (road["results"].as_array().unwrap().iter())
        .filter(|r| r["layer"] == "roads")
        .collect();
    assert_eq!(roads.len(), 1, "{road}");
    assert_eq!(
        roads[0]["features"].as_u64(),
        Some(count_sql(&store, "roads", "route_name = '国道207号'"))
    );
    assert!(roads[0]["features"].as_u64().unwrap() > 1);
    let body = String::from_utf8_lossy(&server.get(&format!("/search?q={}", enc("高津原"))).body)
        .into_owned();
    assert!(!body.contains("owner_name") && !body.contains("water_pipes"));
    assert_eq!(server.get("/search?q=").status, 400);
}

/// The ids of the collections a `/data` page lists, with whether each
/// offers downloads.
fn data_sections(html: &str) -> Vec<(String, bool)> {
    html.split("<section id=\"")
        .skip(1)
        .map(|s| {
            let id = s.split('"').next().unwrap().to_string();
            let body = s.split("</section>").next().unwrap();
            (
                id.clone(),
                body.contains(&format!("/ogc/collections/{id}/items?f=gpkg")),
            )
        })
        .collect()
}

#[test]
fn the_open_data_page_lists_what_the_caller_may_see_and_take() {
    let city = City::new();
    assert!(city.ingest(&["--all"]).status.success());
    let token = city.user_with_token("clerk", &["staff"]);
    let bearer = format!("Bearer {token}");
    let server = Server::start(&city.store());
    for (who, auth) in [
        ("public", vec![]),
        ("staff", vec![("Authorization", bearer.as_str())]),
    ] {
        let page = server.get_with("/data", &auth);
        assert_eq!(page.status, 200, "{who}");
        assert!(
            page.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let html = String::from_utf8(page.body.clone()).unwrap();
        assert!(!html.contains("<script"), "readable without script");
        let catalog = server.get_with("/catalog", &auth).json();
        let expected: Vec<(String, bool)> = catalog["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["id"].as_str().unwrap().to_string(),
                    l["exportable"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(data_sections(&html), expected, "{who}");
        // The OGC API's landing page and collections as HTML are this page.
        for path in ["/ogc?f=html", "/ogc/collections?f=html"] {
            let alt = server.get_with(path, &auth);
            assert!(alt.header("content-type").unwrap().starts_with("text/html"));
            let alt = String::from_utf8(alt.body).unwrap();
            assert_eq!(data_sections(&alt), expected, "{who} {path}");
        }
        for l in catalog["layers"].as_array().unwrap() {
            let count = format!("<dd>{}</dd>", l["feature_count"]);
            assert!(html.contains(&count), "{who}: {} {count}", l["id"]);
        }
        if who == "public" {
            assert!(
                !html.contains("water_pipes") && !html.contains("owner_name"),
                "{html}"
            );
            assert!(expected.iter().any(|(id, e)| id == "zoning" && *e));
            assert!(expected.iter().any(|(id, e)| id == "parcels" && !*e));
            assert!(html.contains("CC BY 4.0"));
        } else {
            assert!(html.contains("<section id=\"water_pipes\">"));
            assert!(html.contains("<code>owner_name</code>"));
        }
    }

    // The public's download link of the zoning in the city's zone is a
    // GeoPackage GDAL opens, with every zoning area.
    let html = String::from_utf8(server.get("/data").body).unwrap();
    let href = html
        .split("href=\"")
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|h| h.contains("/collections/zoning/items?f=gpkg&crs="))
        .unwrap();
    let path = &href[href.find("/ogc/").unwrap()..];
    let file = server.get(path);
    assert_eq!(file.status, 200, "{path}");
    let gpkg = city.path().join("zoning-download.gpkg");
    std::fs::write(&gpkg, &file.body).unwrap();
    let info = run("ogrinfo", &["-ro", "-so", "-al", gpkg.to_str().unwrap()]);
    let zoning = count_sql(&city.store(), "zoning", "1 = 1");
    assert!(info.contains(&format!("Feature Count: {zoning}")), "{info}");
    assert!(info.contains("ID[\"EPSG\",6670]"), "{info}");
}
