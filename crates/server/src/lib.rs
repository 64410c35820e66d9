//! chizu's HTTP API. The only crate that knows HTTP: everything else is called
//! through the store, the index, the permission layer and the tile encoder.
//!
//! Every handler that produces output takes a [`caller::Ctx`] (the caller and
//! its view), so the permission decision is made once per request and no
//! output path can run without it.

mod auth;
mod caller;
pub mod crs;
mod data_page;
mod error;
mod export;
mod limits;
mod lookup;
mod metrics;
mod ogc;
mod ogc_tiles;
mod openapi;
pub mod publish;
mod selection;
mod state;
mod tiles;
mod web;
mod work;

pub use caller::{Ctx, SESSION_COOKIE};
pub use error::ApiError;
pub use limits::{ClientAddr, IpNet, RequestLimits};
pub use selection::Selection;
pub use state::{AppState, CachedTile, ServerConfig};
pub use tiles::render as render_tile;
pub use web::plain_origin;
pub use web::{Background, style_for_view};
pub use work::Budget;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;

/// The whole API as one router.
pub fn router(state: Arc<AppState>) -> Router {
    let router = Router::new()
        .route("/health", reads(health))
        .route("/ready", reads(ready))
        .route("/metrics", reads(metrics::metrics))
        .route("/catalog", reads(catalog))
        .route("/data", reads(data_page::page))
        .route("/auth/login", posts(auth::login))
        .route("/auth/logout", posts(auth::logout))
        .route("/auth/me", reads(auth::me))
        .route("/query/point", reads(lookup::point))
        .route("/search", reads(lookup::search))
        .route("/ogc", reads(ogc::landing))
        .route("/ogc/", reads(ogc::landing))
        .route("/ogc/conformance", reads(ogc::conformance))
        .route("/ogc/api", reads(openapi::api))
        .route("/ogc/collections", reads(ogc::collections))
        .route("/ogc/collections/{id}", reads(ogc::collection))
        .route("/ogc/collections/{id}/queryables", reads(ogc::queryables))
        .route("/ogc/collections/{id}/items", reads(ogc::items))
        .route("/ogc/collections/{id}/items/{fid}", reads(ogc::item))
        .route("/ogc/tileMatrixSets", reads(ogc_tiles::tile_matrix_sets))
        .route(
            "/ogc/tileMatrixSets/{id}",
            reads(ogc_tiles::tile_matrix_set),
        )
        .route("/ogc/tiles", reads(ogc_tiles::dataset_tilesets))
        .route("/ogc/tiles/{tms}", reads(ogc_tiles::dataset_tileset))
        .route(
            "/ogc/tiles/{tms}/{z}/{row}/{col}",
            reads(ogc_tiles::dataset_tile),
        )
        .route(
            "/ogc/collections/{id}/tiles",
            reads(ogc_tiles::collection_tilesets),
        )
        .route(
            "/ogc/collections/{id}/tiles/{tms}",
            reads(ogc_tiles::collection_tileset),
        )
        .route(
            "/ogc/collections/{id}/tiles/{tms}/{z}/{row}/{col}",
            reads(ogc_tiles::collection_tile),
        )
        .route("/tiles/{file}", reads(tiles::tilejson))
        .route("/tiles/{layers}/{z}/{x}/{y}", reads(tiles::tile))
        .route("/styles/{file}", reads(web::style))
        .route("/fonts/{stack}/{range}", reads(web::glyphs))
        .route("/", reads(web::public_page))
        .route("/staff", reads(web::staff_page));
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
    let limits = &state.config.limits;
    let cors = (!limits.cors_origins.is_empty()).then(|| {
        let origins: Vec<HeaderValue> = (limits.cors_origins.iter())
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD])
            .max_age(std::time::Duration::from_secs(3600))
    });
    // Logins and logouts from other sites are refused (Sec-Fetch-Site, Origin).
    let mut csrf = tower_http::csrf::CsrfLayer::new();
    if let Some(url) = &state.config.public_url
        && let Ok(with_origin) = csrf.clone().add_trusted_origin(url.trim_end_matches('/'))
    {
        csrf = with_origin;
    }
    // Innermost first: each `layer` wraps everything above it.
    router
        .fallback(|| async { ApiError::not_found("no such resource") })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.timeout,
        ))
        .layer(csrf)
        .layer(tower::util::option_layer(cors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web::security_headers,
        ))
        .with_state(state)
}

/// A resource read with GET (and HEAD); OPTIONS says so.
fn reads<H: axum::handler::Handler<T, Arc<AppState>>, T: 'static>(
    handler: H,
) -> axum::routing::MethodRouter<Arc<AppState>> {
    get(handler).options(allow("GET, HEAD, OPTIONS"))
}

/// A resource that takes POST; OPTIONS says so.
fn posts<H: axum::handler::Handler<T, Arc<AppState>>, T: 'static>(
    handler: H,
) -> axum::routing::MethodRouter<Arc<AppState>> {
    post(handler).options(allow("POST, OPTIONS"))
}

/// The answer to `OPTIONS`: which methods the resource has.
fn allow(
    methods: &'static str,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    move || {
        std::future::ready(
            (
                axum::http::StatusCode::NO_CONTENT,
                [(header::ALLOW, methods)],
            )
                .into_response(),
        )
    }
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let draining = state.clone();
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    // Requests in flight finish; `/ready` says 503 from the signal on.
    .with_graceful_shutdown(async move {
        shutdown.await;
        draining
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    })
    .await
}

/// For load balancers: 200 while this instance serves and its store
/// answers; 503 once it is shutting down (SIGTERM) or when the store does
/// not answer. Nothing about the data.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let unavailable = |status: &str| {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": status })),
        )
            .into_response()
    };
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return unavailable("draining");
    }
    match state.store.versions().await {
        Ok(_) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!("readiness: the store does not answer: {e}");
            unavailable("store unavailable")
        }
    }
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
) -> Result<Response, ApiError> {
    let base = base_url(&state, &headers);
    let mut list = Vec::new();
    for (index, view) in ctx.visible() {
        let meta = index.meta();
        let c = &meta.config;
        let (count, bounds) = state.summary(index, view).await?;
        list.push(serde_json::json!({
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "attribution": c.attribution,
                "geometry": c.geometry,
                "minzoom": c.zoom.min,
                "maxzoom": c.zoom.max,
                "bounds": bounds.map(|b| [b.min_x, b.min_y, b.max_x, b.max_y]),
                "version": meta.version,
                // The data date (データ時点) maps show: when this version was ingested.
                "updated": meta.ingested_at,
                "feature_count": count,
                "exportable": view.can_export,
                "fields": view.fields.iter().map(|i| &c.fields[*i]).map(|f| {
                    let mut field = serde_json::json!({
                        "name": f.name,
                        "type": f.ty,
                        "title": f.title,
                        "searchable": f.searchable,
                    });
                    if f.personal {
                        // Only ever sent with a field the caller may read.
                        field["personal"] = serde_json::json!(true);
                    }
                    if !f.values.is_empty() {
                        field["values"] = serde_json::json!(f.values);
                    }
                    field
                }).collect::<Vec<_>>(),
                "tilejson": format!("{base}/tiles/{}.json", c.id),
                "tiles": format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", c.id),
        }));
    }
    let mut response = Json(serde_json::json!({ "layers": list })).into_response();
    private_unless_anonymous(&ctx, response.headers_mut());
    Ok(response)
}
