//! `/tiles/{layer}.json` (TileJSON 3.0.0) and `/tiles/{layers}/{z}/{x}/{y}.mvt`,
//! both through the caller's view.

use crate::caller::Ctx;
use crate::state::{AppState, CachedTile, Generalised, TileKey};
use crate::{ApiError, base_url};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chizu_access::{AuditEvent, LayerView};
use chizu_core::{FieldType, TileCoord};
use chizu_store::{LayerSource, StoreError, tile_box};
use chizu_tiles::{LayerSpec, TileFeature};
use std::io::Write;
use std::sync::Arc;

pub(crate) const MVT_MEDIA_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// At most this many layers in one composite tile request.
const MAX_COMPOSITE: usize = 16;

pub async fn tilejson(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(id) = file.strip_suffix(".json") else {
        return Err(ApiError::not_found("no such resource"));
    };
    let (index, view) = ctx.layer(id).ok_or_else(|| ApiError::unknown_layer(id))?;
    let meta = index.meta();
    let c = &meta.config;
    let base = base_url(&state, &headers);
    let fields: serde_json::Map<String, serde_json::Value> = view
        .fields
        .iter()
        .map(|i| &c.fields[*i])
        .map(|f| {
            let ty = match f.ty {
                FieldType::Integer | FieldType::Float => "Number",
                FieldType::Boolean => "Boolean",
                FieldType::Text | FieldType::Date => "String",
            };
            (f.name.clone(), serde_json::Value::String(ty.into()))
        })
        .collect();
    let (_, bounds) = state.summary(index, view).await?;
    let bounds = bounds
        .map(|b| vec![b.min_x, b.min_y, b.max_x, b.max_y])
        .unwrap_or_else(|| vec![-180.0, -85.051_128_779_806_59, 180.0, 85.051_128_779_806_59]);
    let center_zoom = c.zoom.min.max(c.zoom.min.saturating_add(2).min(c.zoom.max));
    let body = serde_json::json!({
        "tilejson": "3.0.0",
        "name": c.title.ja,
        "description": c.title.en_or_ja(),
        "version": format!("{}.0.0", meta.version),
        "attribution": c.attribution,
        "scheme": "xyz",
        "tiles": [format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt", c.id)],
        "minzoom": c.zoom.min,
        "maxzoom": c.zoom.max,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0, center_zoom],
        "vector_layers": [{
            "id": c.id,
            "description": c.title.en_or_ja(),
            "minzoom": c.zoom.min,
            "maxzoom": c.zoom.max,
            "fields": fields,
        }],
    });
    let mut response = Json(body).into_response();
    crate::private_unless_anonymous(&ctx, response.headers_mut());
    Ok(response)
}

pub async fn tile(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((names, z, x, y_file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // axum matches one parameter per segment, so `{y}.mvt` arrives whole.
    let y = y_file
        .strip_suffix(".mvt")
        .or_else(|| y_file.strip_suffix(".pbf"))
        .ok_or_else(|| ApiError::not_found("tiles end in .mvt"))?;
    let parse = |s: &str| s.parse::<u32>().ok();
    let coord = match (parse(&z), parse(&x), parse(y)) {
        (Some(z), Some(x), Some(y)) => {
            TileCoord::new(z, x, y).map_err(|e| ApiError::not_found(e.to_string()))?
        }
        _ => return Err(ApiError::not_found("z, x and y must be whole numbers")),
    };
    serve_tile(&state, &ctx, &names, coord, &headers).await
}

/// A tile of the layers named (comma-separated) as the caller sees them,
/// from the cache or rendered: shared by `/tiles` and OGC API - Tiles.
pub(crate) async fn serve_tile(
    state: &Arc<AppState>,
    ctx: &Ctx,
    names: &str,
    coord: TileCoord,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let ids: Vec<&str> = names.split(',').collect();
    if ids.len() > MAX_COMPOSITE {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_COMPOSITE} layers in one tile"
        )));
    }
    let mut selected: Vec<(Arc<dyn LayerSource>, LayerView)> = Vec::with_capacity(ids.len());
    for id in &ids {
        // A layer outside the view gets the very answer of a layer that does not exist.
        let (index, view) = ctx.layer(id).ok_or_else(|| ApiError::unknown_layer(id))?;
        if selected.iter().any(|(s, _)| s.meta().config.id == *id) {
            return Err(ApiError::bad_request(format!(
                "layer `{id}` is named twice"
            )));
        }
        selected.push((index.clone(), view.clone()));
    }
    let key = TileKey {
        layers: selected
            .iter()
            .map(|(l, v)| {
                (
                    l.meta().config.id.clone(),
                    l.meta().version,
                    v.fingerprint.clone(),
                )
            })
            .collect(),
        z: coord.z(),
        x: coord.x(),
        y: coord.y(),
    };
    let for_render = selected.clone();
    let rendering = state.clone();
    // The gzip is made once and kept with the tile when there is a cache to
    // keep it in; without one, only for a client that asks for it (it was
    // a sixth of an uncached tile's time).
    let gzip = state.config.tile_cache_bytes > 0 || accepts_gzip(headers);
    let tile = state
        .tile_cache
        .try_get_with(key, async move {
            // Closed only when the server is: then the request ends busy.
            let _slot =
                (rendering.render_slots.acquire().await).map_err(|_| crate::work::busy())?;
            // Alone, a tile takes every core; among others, one.
            let slots = rendering.config.limits.render_slots.max(1);
            let threads = if rendering.render_slots.available_permits() + 1 >= slots {
                chizu_tiles::Threads::All
            } else {
                chizu_tiles::Threads::One
            };
            rendering
                .metrics
                .tiles_rendered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match crate::work::background(move || render(coord, &for_render, gzip, threads)).await {
                Ok(Ok(tile)) => {
                    record_generalised(&rendering, coord, &tile.generalised);
                    Ok(tile)
                }
                Ok(Err(e)) => Err(ApiError::from(e)),
                Err(e) => Err(ApiError::internal("tile rendering", e)),
            }
        })
        .await
        .map_err(|e| e.as_ref().clone())?;
    state
        .metrics
        .tiles_served
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    audit(state, ctx, &selected, &tile, coord);
    let mut response = respond(&tile, headers, MVT_MEDIA_TYPE, "public, max-age=60");
    crate::private_unless_anonymous(ctx, response.headers_mut());
    Ok(response)
}

/// Counts what the size budget left out, and says so in the log.
fn record_generalised(state: &AppState, coord: TileCoord, g: &Generalised) {
    use std::sync::atomic::Ordering::Relaxed;
    if *g == Generalised::default() {
        return;
    }
    let m = &state.metrics;
    m.tile_features_dropped_small
        .fetch_add(g.dropped_small as u64, Relaxed);
    m.tile_features_dropped_budget
        .fetch_add(g.dropped_for_budget as u64, Relaxed);
    tracing::debug!(
        tile = %coord,
        under_a_pixel = g.dropped_small,
        under_a_pixel_m2 = g.dropped_small_area,
        smallest = g.dropped_for_budget,
        simplification_passes = g.extra_simplification_passes,
        "tile generalised to stay within its size budget"
    );
}

/// Records reads of personal fields by logged-in callers (cache hits included:
/// the read is what is audited, not the rendering).
fn audit(
    state: &AppState,
    ctx: &Ctx,
    selected: &[(Arc<dyn LayerSource>, LayerView)],
    tile: &CachedTile,
    coord: TileCoord,
) {
    let Some(user) = &ctx.caller.user else { return };
    for (i, (index, view)) in selected.iter().enumerate() {
        let features = tile.layer_features.get(i).copied().unwrap_or(0);
        if view.personal.is_empty() || features == 0 {
            continue;
        }
        let c = &index.meta().config;
        state.audit.record(AuditEvent {
            at: 0,
            user: user.clone(),
            layer: c.id.clone(),
            via: "tile".into(),
            area: format!("tile {coord}"),
            features: features as u64,
            fields: view
                .personal
                .iter()
                .map(|f| c.fields[*f].name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            purpose: String::new(),
        });
    }
}

/// Cuts, encodes and compresses one tile for one view. CPU-bound (and, for a
/// layer served from the database, a query): runs on the blocking pool.
pub fn render(
    coord: TileCoord,
    layers: &[(Arc<dyn LayerSource>, LayerView)],
    gzip: bool,
    threads: chizu_tiles::Threads,
) -> Result<Arc<CachedTile>, StoreError> {
    // The features of each layer in its zoom range, admitted by the view.
    let mut found = Vec::with_capacity(layers.len());
    for (layer, view) in layers {
        let c = &layer.meta().config;
        if !c.zoom.contains(coord.z()) {
            continue;
        }
        let push = crate::selection::view_pushdown(c, view);
        let mut features = layer.in_mercator_box(&tile_box(coord, c.tiles.buffer), &push)?;
        features.retain(|f| view.admits(&f.properties));
        let generalised = layer.generalised(coord.z());
        found.push((layer, view, features, generalised));
    }
    let inputs: Vec<(LayerSpec<'_>, Vec<TileFeature<'_>>)> = (found.iter())
        .map(|(layer, view, features, generalised)| {
            let c = &layer.meta().config;
            let spec = LayerSpec {
                name: &c.id,
                fields: (view.fields.iter())
                    .map(|i| (c.fields[*i].name.as_str(), *i))
                    .filter(|(name, _)| c.tiles.field_at_zoom(name, coord.z()))
                    .collect(),
                options: &c.tiles,
                // Labels only where the caller may read the labelled field.
                label: (c.label.as_deref())
                    .and_then(|name| c.field_index(name))
                    .filter(|i| view.fields.contains(i))
                    .map(|i| (c.fields[i].name.as_str(), i)),
            };
            let features = (features.iter())
                .map(|f| TileFeature {
                    id: f.id,
                    geometry: &f.mercator,
                    properties: &f.properties,
                    label: f.label.as_deref().copied(),
                    simplified: generalised.as_ref().and_then(|g| g.get(&f.id)),
                })
                .collect();
            (spec, features)
        })
        .collect();
    let (raw, stats) = chizu_tiles::encode_tile_on(coord, &inputs, threads);
    // Per requested layer, in request order (layers outside their zoom range: 0).
    let mut counts = stats.iter().map(|s| s.features);
    let layer_features = layers
        .iter()
        .map(|(l, _)| {
            if l.meta().config.zoom.contains(coord.z()) {
                counts.next().unwrap_or(0)
            } else {
                0
            }
        })
        .collect();
    Ok(Arc::new(CachedTile {
        layer_features,
        generalised: Generalised::of(&stats),
        ..CachedTile::encoded(raw, gzip)
    }))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")))
}

pub(crate) fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 2),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

/// Answers with cached bytes: 204 when empty, 304 when the client has them,
/// gzip when accepted.
pub(crate) fn respond(
    tile: &CachedTile,
    headers: &HeaderMap,
    media_type: &'static str,
    cache_control: &'static str,
) -> Response {
    let etag = HeaderValue::from_str(&tile.etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let cache_control = HeaderValue::from_static(cache_control);
    if tile.raw.is_empty() {
        return (
            StatusCode::NO_CONTENT,
            [(header::CACHE_CONTROL, cache_control)],
        )
            .into_response();
    }
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == tile.etag || t.trim() == "*")
        });
    if not_modified {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response();
    }
    // A tile rendered for an identity client (no cache) may have no gzip:
    // identity is always a valid answer.
    let mut response = if accepts_gzip(headers) && !tile.gzip.is_empty() {
        (
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            tile.gzip.clone(),
        )
            .into_response()
    } else {
        tile.raw.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, cache_control);
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}
