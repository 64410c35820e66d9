//! Fuzz-style tests of what anyone can put in a URL, through the whole
//! router in process (`tower::ServiceExt::oneshot`): tile coordinates and
//! layer lists, items parameters and filters, search and point queries. Every
//! answer is a response, never a panic, never a 5xx, and every error is
//! problem+json. `scripts/fuzz.sh` runs many more cases.

use axum::body::Body;
use axum::http::Request;
use chizu_core::config::RoleSet;
use chizu_core::{Feature, LayerConfig, Value};
use chizu_server::{AppState, ServerConfig, router};
use chizu_store::{LayerWrites, MemoryStore};
use proptest::prelude::*;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const LAYER: &str = r#"id = "parcels"
title = { ja = "地番図", en = "Parcels" }
source = { path = "x.geojson", format = "geojson", crs = "EPSG:4326" }
geometry = "polygon"
zoom = { min = 0, max = 22 }
fields = [
  { name = "chiban", type = "text", searchable = true },
  { name = "area_m2", type = "float" },
  { name = "owner_name", type = "text", personal = true },
]
[access]
read = ["public"]
fields = { owner_name = ["staff"] }
"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state = runtime.block_on(async {
            let store = MemoryStore::new();
            let roles = RoleSet::from_toml(
                Path::new("roles.toml"),
                "[roles]\npublic = ''\nstaff = ''\n",
            )
            .unwrap();
            let config = LayerConfig::from_toml(Path::new("parcels.toml"), LAYER, &roles).unwrap();
            let features: Vec<Feature> = (1..=50)
                .map(|i| {
                    let x = 130.0 + (i % 10) as f64 * 0.001;
                    let y = 33.0 + (i / 10) as f64 * 0.001;
                    Feature {
                        id: i,
                        geometry: geo::Rect::new((x, y), (x + 0.0009, y + 0.0009))
                            .to_polygon()
                            .into(),
                        properties: vec![
                            Value::Text(format!("{i}-1").into()),
                            Value::Float(i as f64),
                            Value::Text("owner".into()),
                        ],
                    }
                })
                .collect();
            store
                .replace_layer(&config, &features, &Default::default(), "x")
                .await
                .unwrap();
            let auth = chizu_access::AuthDb::in_memory().await.unwrap();
            AppState::new(Arc::new(store), auth, ServerConfig::default())
                .await
                .unwrap()
        });
        Fixture {
            runtime,
            state,
            _dir: dir,
        }
    })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends `GET uri` through the router; checks the answer's form.
fn check(uri: &str) -> Result<(), TestCaseError> {
    let f = fixture();
    let Ok(request) = Request::get(uri).body(Body::empty()) else {
        return Ok(()); // not a URI at all: the HTTP layer never passes it on
    };
    let response = f
        .runtime
        .block_on(router(f.state.clone()).oneshot(request))
        .unwrap();
    let status = response.status();
    prop_assert!(status.as_u16() < 500, "{uri}: {status}");
    if status.as_u16() >= 400 {
        let media = response.headers().get("content-type").cloned();
        prop_assert_eq!(
            media.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{}",
            uri
        );
    }
    Ok(())
}

fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}",
        "-?[0-9]{1,5}(\\.[0-9]{0,3})?",
        "[a-z,]{0,30}",
        "\\PC{0,12}",
        Just("parcels".to_string()),
        Just("parcels,parcels,parcels".to_string()),
    ]
}

proptest! {

    #[test]
    fn tile_routes(layers in part(), z in part(), x in part(), y in part(), ext in "(\\.mvt|\\.pbf|\\.json|)") {
        check(&format!("/tiles/{}/{}/{}/{}{ext}", encode(&layers), encode(&z), encode(&x), encode(&y)))?;
        check(&format!("/tiles/{}{ext}", encode(&layers)))?;
    }

    #[test]
    fn items_parameters(key in "(bbox|limit|offset|crs|bbox-crs|filter|filter-lang|properties|f|chiban)", value in part(), filter in "\\PC{0,60}") {
        check(&format!("/ogc/collections/parcels/items?{key}={}", encode(&value)))?;
        check(&format!("/ogc/collections/parcels/items?filter={}", encode(&filter)))?;
        check(&format!("/ogc/collections/parcels/items/{}", encode(&value)))?;
    }

    #[test]
    fn lookups(q in "\\PC{0,40}", lon in part(), lat in part(), zoom in part()) {
        check(&format!("/search?q={}&limit={}", encode(&q), encode(&zoom)))?;
        check(&format!("/query/point?lon={}&lat={}&zoom={}", encode(&lon), encode(&lat), encode(&zoom)))?;
    }
}
