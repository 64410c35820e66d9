//! The router in process against the in-memory store: a new version reaches
//! the server through the store's change notification, not the poll, and the
//! public never sees the staff layer or field.

use axum::body::Body;
use axum::http::Request;
use chizu_core::config::RoleSet;
use chizu_core::{Feature, LayerConfig, Value};
use chizu_server::{AppState, ServerConfig, router};
use chizu_store::{LayerWrites, MemoryStore};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn config(id: &str, toml: &str) -> LayerConfig {
    let roles = RoleSet::from_toml(
        Path::new("roles.toml"),
        "[roles]\npublic = ''\nstaff = ''\n",
    )
    .unwrap();
    LayerConfig::from_toml(Path::new(&format!("{id}.toml")), toml, &roles).unwrap()
}

const NOTICES: &str = r#"id = "notices"
title = { ja = "お知らせ", en = "Notices" }
source = { path = "x.geojson", format = "geojson", crs = "EPSG:4326" }
geometry = "point"
zoom = { min = 0, max = 22 }
fields = [ { name = "title", type = "text" }, { name = "author", type = "text" } ]
[access]
read = ["public"]
fields = { author = ["staff"] }
"#;

const PIPES: &str = r#"id = "pipes"
title = { ja = "管路", en = "Pipes" }
source = { path = "x.geojson", format = "geojson", crs = "EPSG:4326" }
geometry = "line"
zoom = { min = 0, max = 22 }
fields = [ { name = "diameter_mm", type = "integer" } ]
[access]
read = ["staff"]
"#;

fn notice(title: &str) -> Vec<Feature> {
    vec![Feature {
        id: 1,
        geometry: geo::Point::new(130.1, 33.1).into(),
        properties: vec![Value::Text(title.into()), Value::Text("Sato".into())],
    }]
}

async fn get_json(state: &Arc<AppState>, uri: &str) -> (u16, serde_json::Value) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn new_versions_arrive_by_notification_and_the_view_holds() {
    let store = Arc::new(MemoryStore::new());
    let (notices, pipes) = (config("notices", NOTICES), config("pipes", PIPES));
    let report = Default::default();
    store
        .replace_layer(&notices, &notice("first"), &report, "a")
        .await
        .unwrap();
    let pipe = Feature {
        id: 1,
        geometry: geo::LineString::from(vec![(130.1, 33.1), (130.2, 33.2)]).into(),
        properties: vec![Value::Int(150)],
    };
    store
        .replace_layer(&pipes, &[pipe], &report, "b")
        .await
        .unwrap();
    let config = ServerConfig {
        // An hour between polls: only the notification can be in time.
        reload_interval: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let auth = chizu_access::AuthDb::in_memory().await.unwrap();
    let state = AppState::new(store.clone(), auth, config).await.unwrap();
    let reloader = state.spawn_reloader();

    // The public sees the notice without its staff-only field, and no pipes.
    let (status, items) = get_json(&state, "/ogc/collections/notices/items").await;
    assert_eq!(status, 200);
    let properties = &items["features"][0]["properties"];
    assert_eq!(properties["title"], "first");
    assert!(properties.get("author").is_none(), "{properties}");
    assert_eq!(
        get_json(&state, "/ogc/collections/pipes/items").await.0,
        404
    );
    let (_, collections) = get_json(&state, "/ogc/collections").await;
    assert!(!collections.to_string().contains("pipes"), "{collections}");

    // A tile of the first version, cached.
    let tile = Request::get("/tiles/notices/10/882/412.mvt")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        router(state.clone()).oneshot(tile).await.unwrap().status(),
        200
    );
    let cached_versions = |state: &Arc<AppState>| -> Vec<u64> {
        (state.tile_cache.iter())
            .flat_map(|(k, _)| k.layers.iter().map(|(_, v, _)| *v).collect::<Vec<_>>())
            .collect()
    };
    state.tile_cache.run_pending_tasks().await;
    assert_eq!(cached_versions(&state), vec![1]);

    // A second version is served once the store announces it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .replace_layer(&notices, &notice("second"), &report, "c")
        .await
        .unwrap();
    let committed = Instant::now();
    loop {
        let (_, items) = get_json(&state, "/ogc/collections/notices/items").await;
        if items["features"][0]["properties"]["title"] == "second" {
            break;
        }
        assert!(committed.elapsed() < Duration::from_secs(1), "no reload");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And the tiles of the first version are gone from the cache.
    state.tile_cache.run_pending_tasks().await;
    assert!(
        !cached_versions(&state).contains(&1),
        "{:?}",
        cached_versions(&state)
    );
    reloader.abort();
}

/// The maps may be framed only by the origins the city names (its web
/// site); by default by none.
#[tokio::test]
async fn frame_ancestors_are_configurable_and_none_by_default() {
    let headers = |config: ServerConfig| async move {
        let store = Arc::new(MemoryStore::new());
        let auth = chizu_access::AuthDb::in_memory().await.unwrap();
        let state = AppState::new(store, auth, config).await.unwrap();
        let request = Request::get("/health").body(Body::empty()).unwrap();
        router(state)
            .oneshot(request)
            .await
            .unwrap()
            .headers()
            .clone()
    };
    let closed = headers(ServerConfig::default()).await;
    assert_eq!(closed["x-frame-options"], "DENY");
    let csp = closed["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");

    let open = headers(ServerConfig {
        frame_ancestors: vec![
            "https://www.city.kashima.saga.jp".into(),
            // Never reaches the header: not a plain origin.
            "https://evil.example; script-src *".into(),
        ],
        ..ServerConfig::default()
    })
    .await;
    assert!(open.get("x-frame-options").is_none());
    let csp = open["content-security-policy"].to_str().unwrap();
    assert!(
        csp.ends_with("frame-ancestors https://www.city.kashima.saga.jp"),
        "{csp}"
    );
    assert!(!csp.contains("evil"), "{csp}");
}

/// With a cache, a tile's gzip is made once and kept; without one, only a
/// client that asks gets it. Either way the gzip holds the very bytes of
/// the plain tile, and a client that does not ask never gets gzip.
#[tokio::test]
async fn tiles_are_gzipped_for_clients_that_ask_with_or_without_a_cache() {
    use std::io::Read;
    for cache_bytes in [0, 1 << 20] {
        let store = Arc::new(MemoryStore::new());
        store
            .replace_layer(
                &config("notices", NOTICES),
                &notice("first"),
                &Default::default(),
                "a",
            )
            .await
            .unwrap();
        let auth = chizu_access::AuthDb::in_memory().await.unwrap();
        let config = ServerConfig {
            tile_cache_bytes: cache_bytes,
            ..ServerConfig::default()
        };
        let state = AppState::new(store, auth, config).await.unwrap();
        let get = |gzip: bool| {
            let state = state.clone();
            async move {
                let mut request = Request::get("/tiles/notices/10/882/412.mvt");
                if gzip {
                    request = request.header("accept-encoding", "br, gzip");
                }
                let response = (router(state).oneshot(request.body(Body::empty()).unwrap()))
                    .await
                    .unwrap();
                let encoding = response.headers().get("content-encoding").cloned();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (encoding, body)
            }
        };
        let (encoding, plain) = get(false).await;
        assert!(encoding.is_none(), "cache {cache_bytes}");
        assert!(plain.len() > 10, "cache {cache_bytes}");
        let (encoding, gzipped) = get(true).await;
        assert_eq!(encoding.unwrap(), "gzip", "cache {cache_bytes}");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzipped[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain.to_vec(), "cache {cache_bytes}");
    }
}
