//! chizu's HTTP API. The only crate that knows HTTP: everything else is called
//! through the store, the index, the permission layer and the tile encoder.
//!
//! Every handler that produces output takes a [`caller::Ctx`] (the caller and
//! its view), so the permission decision is made once per request and no
//! output path can run without it.

mod auth;
mod caller;
pub mod crs;
mod error;
mod export;
mod lookup;
mod metrics;
mod ogc;
mod openapi;
mod state;
mod tiles;
mod web;

pub use caller::{Ctx, SESSION_COOKIE};
pub use error::ApiError;
pub use state::{AppState, CachedTile, ServerConfig};
pub use tiles::render as render_tile;
pub use web::{Background, style_for_view};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;

/// The whole API as one router.
pub fn router(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .route("/catalog", get(catalog))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/query/point", get(lookup::point))
        .route("/search", get(lookup::search))
        .route("/ogc", get(ogc::landing))
        .route("/ogc/", get(ogc::landing))
        .route("/ogc/conformance", get(ogc::conformance))
        .route("/ogc/api", get(openapi::api))
        .route("/ogc/collections", get(ogc::collections))
        .route("/ogc/collections/{id}", get(ogc::collection))
        .route("/ogc/collections/{id}/queryables", get(ogc::queryables))
        .route("/ogc/collections/{id}/items", get(ogc::items))
        .route("/ogc/collections/{id}/items/{fid}", get(ogc::item))
        .route("/tiles/{file}", get(tiles::tilejson))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(tiles::tile))
        .route("/styles/{file}", get(web::style))
        .route("/fonts/{stack}/{range}", get(web::glyphs))
        .route("/", get(web::public_page))
        .route("/staff", get(web::staff_page));
    let router = match &state.config.viewer_dir {
        // Revalidated on every load (304 when unchanged), so a new build is
        // picked up at once.
        Some(dir) => router.nest_service(
            "/assets",
            tower::ServiceBuilder::new()
                .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                ))
                .service(
                    tower_http::services::ServeDir::new(dir.join("assets")).precompressed_gzip(),
                ),
        ),
        None => router,
    };
    router
        .fallback(|| async { ApiError::not_found("no such resource") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Says the process is up. Nothing about the data: the count of layers would
/// tell the public that hidden ones exist.
async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Responses that depend on who is asking must not be stored by shared caches.
pub(crate) fn private_unless_anonymous(ctx: &Ctx, headers: &mut HeaderMap) {
    if !ctx.is_anonymous() {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=60"),
        );
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Encoding, Cookie, Authorization"),
    );
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

async fn catalog(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
) -> impl IntoResponse {
    let base = base_url(&state, &headers);
    let layers = state.layers();
    let list: Vec<_> = ctx
        .view
        .layers()
        .filter_map(|view| layers.get(&view.id).map(|index| (index, view)))
        .map(|(index, view)| {
            let meta = &index.meta;
            let c = &meta.config;
            let (count, bounds) = state.summary(index, view);
            serde_json::json!({
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "attribution": c.attribution,
                "geometry": c.geometry,
                "minzoom": c.zoom.min,
                "maxzoom": c.zoom.max,
                "bounds": bounds.map(|b| [b.min_x, b.min_y, b.max_x, b.max_y]),
                "version": meta.version,
                "feature_count": count,
                "exportable": view.can_export,
                "fields": view.fields.iter().map(|i| &c.fields[*i]).map(|f| {
                    let mut field = serde_json::json!({
                        "name": f.name,
                        "type": f.ty,
                        "title": f.title,
                        "searchable": f.searchable,
                    });
                    if !f.values.is_empty() {
                        field["values"] = serde_json::json!(f.values);
                    }
                    field
                }).collect::<Vec<_>>(),
                "tilejson": format!("{base}/tiles/{}.json", c.id),
                "tiles": format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", c.id),
            })
        })
        .collect();
    let mut response = Json(serde_json::json!({ "layers": list })).into_response();
    private_unless_anonymous(&ctx, response.headers_mut());
    response
}
