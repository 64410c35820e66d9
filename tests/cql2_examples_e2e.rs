//! Every example of the OGC CQL2 1.0 standard (`../shared/data/cql2-examples`,
//! text and JSON) sent to the items endpoint of a layer whose schema has the
//! examples' properties: each answers 200, or 400 saying "unknown property"
//! (a name a chizu field cannot have, such as `eo:cloud_cover`, or a second
//! geometry such as `road`) or "unknown function" (the examples' made-up
//! `Foo`, `avg`, `Buffer`, and the array functions: chizu's fields hold no
//! arrays). None is a syntax error or an unsupported operator.

mod common;
use common::*;
use std::collections::BTreeMap;

/// A field type for an example property, from how the examples use it.
fn field_type(name: &str) -> &'static str {
    const DATES: &[&str] = &[
        "updated",
        "updated_at",
        "starts_at",
        "ends_at",
        "event_time",
        "touchdown",
        "built",
    ];
    const NUMBERS: &[&str] = &[
        "balance",
        "depth",
        "floors",
        "taxes",
        "vehicle_height",
        "bridge_clearance",
        "value",
        "foo",
        "category",
    ];
    if DATES.contains(&name) {
        "date"
    } else if NUMBERS.contains(&name) {
        "float"
    } else if name == "swimming_pool" {
        "boolean"
    } else {
        "text"
    }
}

fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn every_standard_example_is_answered() {
    let dir = shared_data().join("cql2-examples");
    let examples: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("examples.toml")).unwrap()).unwrap();
    let mut filters: Vec<(String, &str, String)> = Vec::new();
    for (name, example) in &examples {
        for (lang, key) in [("cql2-text", "cql2_text"), ("cql2-json", "cql2_json")] {
            filters.push((
                name.clone(),
                lang,
                example[key].as_str().unwrap().to_string(),
            ));
        }
    }
    for entry in std::fs::read_dir(dir.join("text")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        filters.push((
            name,
            "cql2-text",
            std::fs::read_to_string(entry.path()).unwrap(),
        ));
    }
    // The schema: every property the examples name that a field can be called.
    let mut fields: BTreeMap<String, &str> = BTreeMap::new();
    for (_, lang, text) in &filters {
        let parsed = if *lang == "cql2-text" {
            chizu_core::cql2::parse(text)
        } else {
            chizu_core::cql2::parse_json(text)
        };
        if let Ok(expr) = parsed {
            for p in expr.properties() {
                if valid_field_name(p) && !["road", "location", "footprint", "id"].contains(&p) {
                    fields.insert(p.to_string(), field_type(p));
                }
            }
        }
    }
    assert!(fields.len() > 20, "{fields:?}");

    let dir = tempfile::tempdir().unwrap();
    let value = |ty: &str, i: usize| match ty {
        "date" => serde_json::json!(format!("20{:02}-06-0{}", 10 + i, i + 1)),
        "float" => serde_json::json!(i as f64 * 7.5),
        "boolean" => serde_json::json!(i.is_multiple_of(2)),
        _ => serde_json::json!(["Toronto", "Smith brick", "Mike Jones"][i]),
    };
    let features: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            let props: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(name, ty)| (name.clone(), value(ty, i)))
                .collect();
            serde_json::json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [130.0 + i as f64 * 0.01, 33.1]},
                "properties": props,
            })
        })
        .collect();
    std::fs::write(
        dir.path().join("examples.geojson"),
        serde_json::json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
    .unwrap();
    let layers = dir.path().join("layers");
    std::fs::create_dir_all(&layers).unwrap();
    std::fs::copy(repo().join("layers/roles.toml"), layers.join("roles.toml")).unwrap();
    let field_list: Vec<String> = fields
        .iter()
        .map(|(name, ty)| format!("  {{ name = \"{name}\", type = \"{ty}\" }},"))
        .collect();
    std::fs::write(
        layers.join("examples.toml"),
        format!(
            r#"id = "examples"
title = {{ ja = "例", en = "Examples" }}
source = {{ path = "../examples.geojson", format = "geojson", crs = "EPSG:4326" }}
geometry = "point"
zoom = {{ min = 0, max = 22 }}
fields = [
{}
]
[access]
read = ["public"]
"#,
            field_list.join("\n")
        ),
    )
    .unwrap();
    let store = dir.path().join("examples.gpkg");
    let out = chizu(
        dir.path(),
        &["ingest", "--all", "--store", store.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let server = Server::start(&store);

    let (mut ok, mut unknown) = (0, 0);
    for (name, lang, filter) in &filters {
        let r = server.get(&format!(
            "/ogc/collections/examples/items?filter-lang={lang}&filter={}",
            url_encode(filter)
        ));
        match r.status {
            200 => {
                assert!(r.json()["numberMatched"].is_u64());
                ok += 1;
            }
            400 => {
                let detail = r.json()["detail"].as_str().unwrap().to_string();
                assert!(
                    detail.contains("unknown property") || detail.contains("unknown function"),
                    "{name} ({lang}): {filter}\n{detail}"
                );
                unknown += 1;
            }
            other => panic!("{name} ({lang}): {other}"),
        }
    }
    eprintln!("{ok} answered, {unknown} refused for a name");
    // Most of the standard's examples are answered outright.
    assert!(ok > unknown, "{ok} answered, {unknown} refused");

    // The answers are right, not only accepted: a few with known results.
    let matched = |filter: &str| -> u64 {
        let r = server.get(&format!(
            "/ogc/collections/examples/items?filter={}",
            url_encode(filter)
        ));
        assert_eq!(r.status, 200, "{filter}");
        r.json()["numberMatched"].as_u64().unwrap()
    };
    assert_eq!(matched("city='Toronto'"), 1);
    assert_eq!(matched("CASEI(city) = CASEI('TORONTO')"), 1);
    assert_eq!(matched("floors>5"), 2);
    assert_eq!(matched("T_AFTER(updated_at, DATE('2011-01-01'))"), 2);
    assert_eq!(
        matched("S_INTERSECTS(geometry,BBOX(129.99,33,130.015,34))"),
        2
    );
    assert_eq!(matched("owner LIKE '%Jones%'"), 1);
    assert_eq!(matched("balance-150.0 > 0"), 0);
    assert_eq!(matched("\"value\" > (\"foo\" + 10)"), 0);
}
