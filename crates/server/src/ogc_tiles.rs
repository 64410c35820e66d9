//! OGC API - Tiles (Part 1: Core) beside OGC API - Features, for clients that
//! speak it (GDAL's OGCAPI driver, QGIS): the `WebMercatorQuad` tile matrix
//! set, vector tilesets per collection and for the whole dataset (every layer
//! the caller sees), and tiles as MVT, through the same view, cache and
//! encoder as `/tiles`. Tile paths are `{tileMatrix}/{tileRow}/{tileCol}`,
//! i.e. z/y/x.

use crate::caller::Ctx;
use crate::{ApiError, AppState, base_url};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chizu_core::{Bounds, TileCoord};
use serde_json::{Value, json};
use std::sync::Arc;

pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/dataset-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
];

const TMS: &str = "WebMercatorQuad";
const TMS_URI: &str = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad";
const REL_TILING_SCHEME: &str = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme";
pub const REL_TILESETS_VECTOR: &str = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector";
const MERCATOR_HALF: f64 = 20_037_508.342_789_244;

fn json_response(body: Value, ctx: &Ctx) -> Response {
    let mut r = Json(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    crate::private_unless_anonymous(ctx, r.headers_mut());
    r
}

/// The one tile matrix set: Web Mercator, 256-pixel tiles, z0-z22.
fn web_mercator_quad() -> Value {
    let matrices: Vec<Value> = (0..=chizu_core::tile::MAX_ZOOM as u32)
        .map(|z| {
            let n = 1u64 << z;
            let cell = 2.0 * MERCATOR_HALF / 256.0 / n as f64;
            json!({
                "id": z.to_string(),
                "identifier": z.to_string(),
                "topLeftCorner": [-MERCATOR_HALF, MERCATOR_HALF],
                // 0.28 mm pixels (OGC's standardized rendering pixel size).
                "scaleDenominator": cell / 0.000_28,
                "cellSize": cell,
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [-MERCATOR_HALF, MERCATOR_HALF],
                "tileWidth": 256, "tileHeight": 256,
                "matrixWidth": n, "matrixHeight": n,
            })
        })
        .collect();
    // TMS 2.0 (`id`, `crs`, `pointOfOrigin`) with the 1.0 names beside them
    // (`identifier`, `supportedCRS`, `topLeftCorner`, `boundingBox`): GDAL
    // before 3.7 reads only those.
    json!({
        "id": TMS,
        "title": "Google Maps Compatible for the World",
        "uri": TMS_URI,
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "type": "TileMatrixSetType",
        "identifier": TMS,
        "supportedCRS": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "boundingBox": {
            "type": "BoundingBoxType",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
            "lowerCorner": [-MERCATOR_HALF, -MERCATOR_HALF],
            "upperCorner": [MERCATOR_HALF, MERCATOR_HALF],
        },
        "orderedAxes": ["X", "Y"],
        "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        "tileMatrices": matrices,
    })
}

pub async fn tile_matrix_sets(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
) -> Response {
    let b = format!("{}/ogc", base_url(&state, &headers));
    json_response(
        json!({"tileMatrixSets": [{
            "id": TMS, "title": "Google Maps Compatible for the World", "uri": TMS_URI,
            "links": [{"href": format!("{b}/tileMatrixSets/{TMS}"), "rel": "self", "type": "application/json"}],
        }]}),
        &ctx,
    )
}

pub async fn tile_matrix_set(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    if id != TMS {
        return Err(ApiError::not_found(format!(
            "no tile matrix set `{id}`; there is {TMS}"
        )));
    }
    Ok(json_response(web_mercator_quad(), &ctx))
}

/// The layers a tileset holds: one collection, or every layer the caller sees.
fn layers_of(ctx: &Ctx, collection: Option<&str>) -> Result<Vec<String>, ApiError> {
    match collection {
        Some(id) => {
            ctx.layer(id).ok_or_else(|| ApiError::unknown_layer(id))?;
            Ok(vec![id.to_string()])
        }
        None => Ok(ctx
            .visible()
            .map(|(l, _)| l.meta().config.id.clone())
            .collect()),
    }
}

/// Where a tileset's URLs start: `/ogc/collections/{id}/tiles` or `/ogc/tiles`.
fn tiles_base(b: &str, collection: Option<&str>) -> String {
    match collection {
        Some(id) => format!("{b}/collections/{id}/tiles"),
        None => format!("{b}/tiles"),
    }
}

async fn tilesets(
    state: &Arc<AppState>,
    ctx: &Ctx,
    headers: &HeaderMap,
    collection: Option<&str>,
) -> Result<Response, ApiError> {
    layers_of(ctx, collection)?;
    let ogc = format!("{}/ogc", base_url(state, headers));
    let b = tiles_base(&ogc, collection);
    Ok(json_response(
        json!({"tilesets": [{
            "title": collection.unwrap_or("all layers"),
            "dataType": "vector",
            "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
            "tileMatrixSetURI": TMS_URI,
            "links": [
                {"href": format!("{b}/{TMS}"), "rel": "self", "type": "application/json"},
                {"href": format!("{ogc}/tileMatrixSets/{TMS}"), "rel": REL_TILING_SCHEME, "type": "application/json"},
            ],
        }]}),
        ctx,
    ))
}

async fn tileset(
    state: &Arc<AppState>,
    ctx: &Ctx,
    headers: &HeaderMap,
    collection: Option<&str>,
    tms: &str,
) -> Result<Response, ApiError> {
    if tms != TMS {
        return Err(ApiError::not_found(format!(
            "no tile matrix set `{tms}`; there is {TMS}"
        )));
    }
    let ids = layers_of(ctx, collection)?;
    let ogc = format!("{}/ogc", base_url(state, headers));
    let b = tiles_base(&ogc, collection);
    let mut bounds = Bounds::EMPTY;
    let (mut min_zoom, mut max_zoom) = (u8::MAX, 0);
    let mut layers = Vec::new();
    for id in &ids {
        let Some((index, view)) = ctx.layer(id) else {
            continue;
        };
        let c = &index.meta().config;
        if let (_, Some(b)) = state.summary(index, view).await? {
            bounds.expand(&b);
        }
        min_zoom = min_zoom.min(c.zoom.min);
        max_zoom = max_zoom.max(c.zoom.max);
        let properties: serde_json::Map<String, Value> =
            (view.fields.iter().map(|i| &c.fields[*i]))
                .map(|f| {
                    (
                        f.name.clone(),
                        json!({"type": crate::ogc::json_type(f.ty).0, "title": f.title.as_ref().map(|t| &t.ja)}),
                    )
                })
                .collect();
        layers.push(json!({
            "id": c.id, "title": c.title.ja, "dataType": "vector",
            "geometryDimension": match c.geometry { chizu_core::GeometryKind::Point => 0, chizu_core::GeometryKind::Line => 1, chizu_core::GeometryKind::Polygon => 2 },
            "minTileMatrix": c.zoom.min.to_string(), "maxTileMatrix": c.zoom.max.to_string(),
            "propertiesSchema": {"type": "object", "properties": properties},
        }));
    }
    if layers.is_empty() {
        (min_zoom, max_zoom) = (0, 0);
    }
    let limits: Vec<Value> = if bounds.is_empty() {
        Vec::new()
    } else {
        let m = chizu_store::mercator_box(&bounds);
        (min_zoom..=max_zoom)
            .map(|z| {
                let (a, c) = (TileCoord::containing(z, m.min_x, m.max_y), TileCoord::containing(z, m.max_x, m.min_y));
                json!({"tileMatrix": z.to_string(), "minTileRow": a.y(), "maxTileRow": c.y(), "minTileCol": a.x(), "maxTileCol": c.x()})
            })
            .collect()
    };
    let mut body = json!({
        "title": collection.unwrap_or("all layers"),
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "tileMatrixSetLimits": limits,
        "layers": layers,
        "links": [
            {"href": format!("{b}/{TMS}"), "rel": "self", "type": "application/json"},
            {"href": format!("{ogc}/tileMatrixSets/{TMS}"), "rel": REL_TILING_SCHEME, "type": "application/json"},
            {"href": format!("{b}/{TMS}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"), "rel": "item", "type": crate::tiles::MVT_MEDIA_TYPE, "templated": true},
        ],
    });
    if !bounds.is_empty() {
        body["boundingBox"] = json!({
            "lowerLeft": [bounds.min_x, bounds.min_y], "upperRight": [bounds.max_x, bounds.max_y],
            "crs": crate::crs::CRS84,
        });
    }
    Ok(json_response(body, ctx))
}

async fn tile(
    state: &Arc<AppState>,
    ctx: &Ctx,
    headers: &HeaderMap,
    collection: Option<&str>,
    (tms, z, row, col): (String, String, String, String),
) -> Result<Response, ApiError> {
    if tms != TMS {
        return Err(ApiError::not_found(format!(
            "no tile matrix set `{tms}`; there is {TMS}"
        )));
    }
    let parse = |s: &str| s.parse::<u32>().ok();
    let coord = match (parse(&z), parse(&col), parse(&row)) {
        (Some(z), Some(x), Some(y)) => {
            TileCoord::new(z, x, y).map_err(|e| ApiError::not_found(e.to_string()))?
        }
        _ => {
            return Err(ApiError::not_found(
                "tileMatrix, tileRow and tileCol are whole numbers",
            ));
        }
    };
    let ids = layers_of(ctx, collection)?;
    if ids.is_empty() {
        return Err(ApiError::not_found("no layers"));
    }
    crate::tiles::serve_tile(state, ctx, &ids.join(","), coord, headers).await
}

pub async fn dataset_tilesets(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    tilesets(&state, &ctx, &headers, None).await
}

pub async fn dataset_tileset(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(tms): Path<String>,
) -> Result<Response, ApiError> {
    tileset(&state, &ctx, &headers, None, &tms).await
}

pub async fn dataset_tile(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(path): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    tile(&state, &ctx, &headers, None, path).await
}

pub async fn collection_tilesets(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    tilesets(&state, &ctx, &headers, Some(&id)).await
}

pub async fn collection_tileset(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, tms)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    tileset(&state, &ctx, &headers, Some(&id), &tms).await
}

pub async fn collection_tile(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((id, tms, z, row, col)): Path<(String, String, String, String, String)>,
) -> Result<Response, ApiError> {
    tile(&state, &ctx, &headers, Some(&id), (tms, z, row, col)).await
}
