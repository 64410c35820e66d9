//! `/query/point` ("what is here") and `/search` (lot numbers and place names),
//! both through the caller's view.

use crate::caller::Ctx;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chizu_access::LayerView;
use chizu_core::tile::lonlat_to_mercator;
use chizu_core::{Bounds, GeometryKind, Value};
use chizu_store::{IndexedFeature, LayerIndex};
use geo::{BoundingRect, Contains, Point};
use serde::Deserialize;
use serde_json::{Map, json};
use std::sync::Arc;

#[derive(Deserialize)]
pub struct PointQuery {
    lon: f64,
    lat: f64,
    #[serde(default = "default_zoom")]
    zoom: f64,
}

fn default_zoom() -> f64 {
    16.0
}

/// Pixels around the point that still count as a hit on a line or a point
/// (a finger on a phone is ~7 CSS pixels).
const TOLERANCE_PX: f64 = 7.0;

fn properties(
    index: &LayerIndex,
    view: &LayerView,
    f: &IndexedFeature,
) -> Map<String, serde_json::Value> {
    let c = &index.meta.config;
    view.fields
        .iter()
        .map(|i| (c.fields[*i].name.clone(), f.properties[*i].to_json()))
        .collect()
}

fn audit(
    state: &AppState,
    ctx: &Ctx,
    index: &LayerIndex,
    view: &LayerView,
    area: String,
    n: usize,
) {
    crate::ogc::audit(state, ctx, index, view, &view.fields, area, n);
}

/// Every visible feature at a point: polygons that contain it, lines and points
/// within a few pixels at the given zoom. For a parcel this answers the
/// resident's question at once: the lot, its zoning and its hazards.
pub async fn point(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    q: Result<Query<PointQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !(q.lon.is_finite()
        && q.lat.is_finite()
        && (-180.0..=180.0).contains(&q.lon)
        && (-85.0..=85.0).contains(&q.lat))
    {
        return Err(ApiError::bad_request(
            "lon must be within -180..180 and lat within -85..85",
        ));
    }
    if !(0.0..=24.0).contains(&q.zoom) {
        return Err(ApiError::bad_request("zoom must be within 0..24"));
    }
    let layers = state.layers();
    let here = Point::new(q.lon, q.lat);
    // Metres per pixel of MapLibre's 512-pixel tiles at this zoom and latitude.
    let tolerance_m = TOLERANCE_PX * 78_271.517 * q.lat.to_radians().cos() / 2f64.powf(q.zoom);
    let (mx, my) = lonlat_to_mercator(q.lon, q.lat);
    let margin = TOLERANCE_PX * 78_271.517 / 2f64.powf(q.zoom);
    let mut out = Vec::new();
    for view in ctx.view.layers() {
        let Some(index) = layers.get(&view.id) else {
            continue;
        };
        let c = &index.meta.config;
        let hits: Vec<&IndexedFeature> = index
            .query(&Bounds {
                min_x: mx - margin,
                min_y: my - margin,
                max_x: mx + margin,
                max_y: my + margin,
            })
            .into_iter()
            .filter(|f| view.admits(&f.properties))
            .filter(|f| match c.geometry {
                GeometryKind::Polygon => f.lonlat.contains(&here),
                _ => chizu_core::cql2::distance_m(here.0, &f.lonlat) <= tolerance_m,
            })
            .take(50)
            .collect();
        if hits.is_empty() {
            continue;
        }
        audit(
            &state,
            &ctx,
            index,
            view,
            format!("point {} {}", q.lon, q.lat),
            hits.len(),
        );
        out.push(json!({
            "id": c.id,
            "title": c.title,
            "fields": view.fields.iter().map(|i| &c.fields[*i]).map(|f| {
                let mut field = json!({"name": f.name, "title": f.title});
                if !f.values.is_empty() {
                    field["values"] = json!(f.values);
                }
                field
            }).collect::<Vec<_>>(),
            "features": hits.iter().map(|f| json!({"id": f.id, "properties": properties(index, view, f)})).collect::<Vec<_>>(),
        }));
    }
    let mut r = Json(json!({ "lon": q.lon, "lat": q.lat, "layers": out })).into_response();
    crate::private_unless_anonymous(&ctx, r.headers_mut());
    Ok(r)
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: String,
    #[serde(default = "default_search_limit")]
    limit: usize,
}

fn default_search_limit() -> usize {
    20
}

/// Folds the ways people type lot numbers: full-width digits and letters,
/// the many dashes of Japanese text (－ ー ‐ − ― ‑), and surrounding spaces.
pub fn normalize(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
            | '\u{2212}' | '\u{30FC}' | '\u{FF70}' => '-',
            c => c,
        })
        .map(|c| if c == '\u{FF0D}' { '-' } else { c })
        .collect::<String>()
        .to_lowercase()
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = normalize(&q.q);
    let tokens: Vec<&str> = query.split_whitespace().collect();
    if tokens.is_empty() || query.chars().count() > 100 {
        return Err(ApiError::bad_request("q must hold 1 to 100 characters"));
    }
    let limit = q.limit.clamp(1, 100);
    let layers = state.layers();
    // (exact tokens, layer order, id) ranks exact matches first.
    let mut found: Vec<(usize, usize, serde_json::Value)> = Vec::new();
    for (order, view) in ctx.view.layers().enumerate() {
        let Some(index) = layers.get(&view.id) else {
            continue;
        };
        let c = &index.meta.config;
        let searchable: Vec<usize> = view
            .fields
            .iter()
            .copied()
            .filter(|i| c.fields[*i].searchable)
            .collect();
        if searchable.is_empty() {
            continue;
        }
        let mut hits = 0;
        for f in index.features.iter().filter(|f| view.admits(&f.properties)) {
            let values: Vec<String> = searchable
                .iter()
                .filter_map(|i| match &f.properties[*i] {
                    Value::Text(s) => Some(normalize(s)),
                    _ => None,
                })
                .collect();
            let mut exact = 0;
            let all = tokens.iter().all(|t| {
                if values.iter().any(|v| v == t) {
                    exact += 1;
                    true
                } else {
                    values.iter().any(|v| v.starts_with(t))
                }
            });
            if !all {
                continue;
            }
            hits += 1;
            let label: Vec<String> = searchable
                .iter()
                .filter_map(|i| f.properties[*i].as_text().map(str::to_string))
                .filter(|s| !s.is_empty())
                .collect();
            let bbox = f
                .lonlat
                .bounding_rect()
                .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
            found.push((
                tokens.len() - exact,
                order,
                json!({
                    "layer": c.id,
                    "layer_title": c.title,
                    "id": f.id,
                    "label": label.join(" "),
                    "exact": exact == tokens.len(),
                    "bbox": bbox,
                    "center": bbox.map(|b| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]),
                    "properties": properties(index, view, f),
                }),
            ));
        }
        audit(
            &state,
            &ctx,
            index,
            view,
            format!("search {}", q.q.chars().take(50).collect::<String>()),
            hits.min(limit),
        );
    }
    found.sort_by_key(|a| (a.0, a.1));
    let total = found.len();
    let results: Vec<_> = found.into_iter().take(limit).map(|(_, _, v)| v).collect();
    let mut r = Json(json!({ "q": q.q, "matched": total, "results": results })).into_response();
    crate::private_unless_anonymous(&ctx, r.headers_mut());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn full_width_and_dashes_fold() {
        assert_eq!(normalize("１２３４－５"), "1234-5");
        assert_eq!(normalize(" １２３４ー５ "), "1234-5");
        assert_eq!(normalize("1234‐5"), "1234-5");
        assert_eq!(normalize("高津原　１２"), "高津原 12");
    }
}
