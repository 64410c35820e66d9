//! chizu's HTTP API. The only crate that knows HTTP: everything else is called
//! through the store, index and tile encoder.

mod error;
mod state;
mod tiles;

pub use error::ApiError;
pub use state::{AppState, ServerConfig};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

/// The whole API as one router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/catalog", get(catalog))
        .route("/tiles/{file}", get(tiles::tilejson))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(tiles::tile))
        .fallback(|| async { ApiError::not_found("no such resource") })
        .with_state(state)
}

async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let layers = state.layers();
    Json(serde_json::json!({
        "status": "ok",
        "layers": layers.len(),
    }))
}

/// The base URL the caller reached us by, for links in TileJSON and the catalog.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn catalog(State(state): State<Arc<AppState>>, headers: HeaderMap) -> impl IntoResponse {
    let base = base_url(&state, &headers);
    let layers = state.layers();
    let list: Vec<_> = layers
        .values()
        .map(|index| {
            let meta = &index.meta;
            let c = &meta.config;
            serde_json::json!({
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "attribution": c.attribution,
                "geometry": c.geometry,
                "minzoom": c.zoom.min,
                "maxzoom": c.zoom.max,
                "bounds": meta.bounds.map(|b| [b.min_x, b.min_y, b.max_x, b.max_y]),
                "version": meta.version,
                "feature_count": meta.feature_count,
                "fields": c.fields.iter().map(|f| serde_json::json!({
                    "name": f.name,
                    "type": f.ty,
                    "title": f.title,
                    "searchable": f.searchable,
                })).collect::<Vec<_>>(),
                "tilejson": format!("{base}/tiles/{}.json", c.id),
                "tiles": format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", c.id),
            })
        })
        .collect();
    Json(serde_json::json!({ "layers": list }))
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
