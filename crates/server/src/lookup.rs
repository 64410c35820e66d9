//! `/query/point` ("what is here") and `/search` (lot numbers and place names),
//! both through the caller's view.

use crate::caller::Ctx;
use crate::work::Budget;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chizu_access::LayerView;
use chizu_core::search::normalize;
use chizu_core::tile::lonlat_to_mercator;
use chizu_core::{Bounds, GeometryKind};
use chizu_store::{IndexedFeature, LayerSource};
use geo::{Contains, Point};
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
    index: &dyn LayerSource,
    view: &LayerView,
    f: &IndexedFeature,
) -> Map<String, serde_json::Value> {
    let c = &index.meta().config;
    view.fields
        .iter()
        .map(|i| (c.fields[*i].name.clone(), f.properties[*i].to_json()))
        .collect()
}

fn audit(
    state: &AppState,
    ctx: &Ctx,
    index: &dyn LayerSource,
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
    let visible = ctx.visible_owned();
    let (lon, lat, zoom) = (q.lon, q.lat, q.zoom);
    let (out, audits) = state
        .work
        .run(move |budget| point_hits(&visible, lon, lat, zoom, budget))
        .await?;
    for (index, view, n) in audits {
        audit(
            &state,
            &ctx,
            index.as_ref(),
            &view,
            format!("point {lon} {lat}"),
            n,
        );
    }
    let mut r = Json(json!({ "lon": q.lon, "lat": q.lat, "layers": out })).into_response();
    crate::private_unless_anonymous(&ctx, r.headers_mut());
    Ok(r)
}

/// Per layer that answered: (layer, its view, number of features), for the audit log.
type Audits = Vec<(Arc<dyn LayerSource>, LayerView, usize)>;

/// The work of `/query/point`, off the async runtime.
fn point_hits(
    visible: &[(Arc<dyn LayerSource>, LayerView)],
    lon: f64,
    lat: f64,
    zoom: f64,
    budget: &Budget,
) -> Result<(Vec<serde_json::Value>, Audits), ApiError> {
    let here = Point::new(lon, lat);
    // Metres per pixel of MapLibre's 512-pixel tiles at this zoom and latitude.
    let tolerance_m = TOLERANCE_PX * 78_271.517 * lat.to_radians().cos() / 2f64.powf(zoom);
    let (mx, my) = lonlat_to_mercator(lon, lat);
    let margin = TOLERANCE_PX * 78_271.517 / 2f64.powf(zoom);
    let mut out = Vec::new();
    let mut audits = Vec::new();
    for (index, view) in visible {
        let c = &index.meta().config;
        let candidates = index.in_mercator_box(
            &Bounds {
                min_x: mx - margin,
                min_y: my - margin,
                max_x: mx + margin,
                max_y: my + margin,
            },
            &crate::selection::view_pushdown(c, view),
        )?;
        let mut hits: Vec<&IndexedFeature> = Vec::new();
        for (step, f) in candidates.iter().enumerate() {
            budget.check_every(step, 64)?;
            let hit = view.admits(&f.properties)
                && match c.geometry {
                    GeometryKind::Polygon => f.lonlat().contains(&here),
                    _ => chizu_core::cql2::distance_m(here.0, &f.lonlat()) <= tolerance_m,
                };
            if hit {
                hits.push(f);
                if hits.len() == 50 {
                    break;
                }
            }
        }
        if hits.is_empty() {
            continue;
        }
        audits.push((index.clone(), view.clone(), hits.len()));
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
            "features": hits.iter().map(|f| json!({"id": f.id, "properties": properties(index.as_ref(), view, f)})).collect::<Vec<_>>(),
        }));
    }
    Ok((out, audits))
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

/// Most index entries one search looks at per layer: a one-character query
/// matches thousands of lots, and the page shows twenty.
const MAX_CANDIDATES: usize = 2_000;

pub async fn search(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let query = normalize(&q.q);
    if query.split_whitespace().next().is_none() || query.chars().count() > 100 {
        return Err(ApiError::bad_request("q must hold 1 to 100 characters"));
    }
    let limit = q.limit.clamp(1, 100);
    let visible = ctx.visible_owned();
    let (found, truncated, audits) = state
        .work
        .run(move |budget| search_hits(&visible, &query, budget))
        .await?;
    for (index, view, n) in audits {
        let area = format!("search {}", q.q.chars().take(50).collect::<String>());
        audit(&state, &ctx, index.as_ref(), &view, area, n.min(limit));
    }
    let total = found.len();
    let results: Vec<_> = found.into_iter().take(limit).map(|(_, _, v)| v).collect();
    let mut r = Json(json!({
        "q": q.q,
        "matched": total,
        "truncated": truncated,
        "results": results,
    }))
    .into_response();
    crate::private_unless_anonymous(&ctx, r.headers_mut());
    Ok(r)
}

/// (rank, layer order, result) of every hit, the rank being the tokens not
/// matched exactly and then places before features; whether a layer had more
/// candidates than were looked at; the audit list.
type SearchHits = (Vec<((usize, u8), usize, serde_json::Value)>, bool, Audits);

/// Most places one search lists per layer.
const MAX_PLACES: usize = 20;

/// The work of `/search`: per layer, the places (districts, roads) whose name
/// starts with the query, then a prefix walk of the search index on the
/// rarest token, the other tokens checked on those candidates only. A
/// feature found only through a place's name is left to that place's one
/// result (a road's 48 segments are one road).
fn search_hits(
    visible: &[(Arc<dyn LayerSource>, LayerView)],
    query: &str,
    budget: &Budget,
) -> Result<SearchHits, ApiError> {
    let tokens = chizu_core::search::query_tokens(query);
    if tokens.is_empty() {
        return Ok((Vec::new(), false, Vec::new()));
    }
    let mut found = Vec::new();
    let mut truncated = false;
    let mut audits = Vec::new();
    for (order, (index, view)) in visible.iter().enumerate() {
        let c = &index.meta().config;
        let searchable: Vec<usize> = (view.fields.iter().copied())
            .filter(|i| c.fields[*i].searchable)
            .collect();
        if searchable.is_empty() {
            continue;
        }
        // (field, field of its reading) where the caller may read both.
        let readings: Vec<(usize, usize)> = (searchable.iter())
            .filter_map(|i| {
                let r = c.field_index(c.fields[*i].reading.as_deref()?)?;
                view.fields.contains(&r).then_some((*i, r))
            })
            .collect();
        let placed = place_hits(index.as_ref(), view, &searchable, query, order, &mut found);
        let search = index.search_index();
        let primary = (tokens.iter().copied())
            .min_by_key(|t| search.prefix_count(t))
            .unwrap_or_default();
        let push = crate::selection::view_pushdown(c, view);
        let mut seen = std::collections::HashSet::new();
        let mut hits = 0;
        for (step, hit) in search.prefix(primary).enumerate() {
            budget.check_every(step, 256)?;
            if step >= MAX_CANDIDATES {
                truncated = true;
                break;
            }
            if !searchable.contains(&(hit.field as usize)) || !seen.insert(hit.feature) {
                continue;
            }
            let Some(f) = index.search_hit(hit.feature, &push)? else {
                continue;
            };
            if !view.admits(&f.properties) {
                continue;
            }
            let Some((exact, beyond_places)) =
                token_matches(&f, &searchable, &readings, &placed, &tokens)
            else {
                continue;
            };
            if !beyond_places {
                continue;
            }
            hits += 1;
            let result = result_json(index.as_ref(), view, &f, &searchable, exact == tokens.len());
            found.push(((tokens.len() - exact, 1), order, result));
        }
        if hits > 0 {
            audits.push((index.clone(), view.clone(), hits));
        }
    }
    found.sort_by_key(|a| (a.0, a.1));
    Ok((found, truncated, audits))
}

/// The layer's places matching the whole query, as results; returns the
/// fields they came from. Only for callers who see every row of the layer:
/// an extent over rows a row filter hides would tell of them.
fn place_hits(
    index: &dyn LayerSource,
    view: &LayerView,
    searchable: &[usize],
    query: &str,
    order: usize,
    found: &mut Vec<((usize, u8), usize, serde_json::Value)>,
) -> Vec<usize> {
    let mut fields = Vec::new();
    if view.rows.is_some() {
        return fields;
    }
    let c = &index.meta().config;
    let compact = chizu_core::search::compact(query);
    for (place, exact) in index.places().lookup(&compact, MAX_PLACES) {
        let field = place.field as usize;
        let Some(def) = c.fields.get(field).filter(|_| searchable.contains(&field)) else {
            continue;
        };
        let Some(kind) = def.place.as_ref() else {
            continue;
        };
        // A reading the caller may not read neither finds nor shows a place.
        let reading_visible = (def.reading.as_deref())
            .and_then(|r| c.field_index(r))
            .is_some_and(|r| view.fields.contains(&r));
        let by_name = chizu_core::search::compact(&normalize(&place.value)).starts_with(&compact);
        if !by_name && !reading_visible {
            continue;
        }
        if !fields.contains(&field) {
            fields.push(field);
        }
        let b = place.bounds;
        let result = json!({
            "layer": c.id,
            "layer_title": c.title,
            "kind": kind,
            "place": true,
            "label": place.value,
            "reading": place.reading.as_ref().filter(|_| reading_visible),
            "exact": exact,
            "features": place.features,
            "bbox": [b.min_x, b.min_y, b.max_x, b.max_y],
            "center": [(b.min_x + b.max_x) / 2.0, (b.min_y + b.max_y) / 2.0],
        });
        found.push(((usize::from(!exact), 0), order, result));
    }
    fields
}

/// Whether every token starts (or is) a searchable value of `f`: how many
/// are exact, and whether one matched outside the fields `placed` answered.
fn token_matches(
    f: &IndexedFeature,
    searchable: &[usize],
    readings: &[(usize, usize)],
    placed: &[usize],
    tokens: &[&str],
) -> Option<(usize, bool)> {
    let values: Vec<(usize, String)> = (searchable.iter().map(|i| (*i, *i)))
        .chain(readings.iter().copied())
        .filter_map(|(field, column)| Some((field, normalize(f.properties[column].as_text()?))))
        .collect();
    let mut exact = 0;
    let mut beyond_places = placed.is_empty();
    for t in tokens {
        let matched = (values.iter().find(|(_, v)| v == t))
            .inspect(|_| exact += 1)
            .or_else(|| values.iter().find(|(_, v)| v.starts_with(t)))?;
        beyond_places |= !placed.contains(&matched.0);
    }
    Some((exact, beyond_places))
}

fn result_json(
    index: &dyn LayerSource,
    view: &LayerView,
    f: &IndexedFeature,
    searchable: &[usize],
    exact: bool,
) -> serde_json::Value {
    let c = &index.meta().config;
    let label: Vec<&str> = (searchable.iter())
        .filter_map(|i| f.properties[*i].as_text())
        .filter(|s| !s.is_empty())
        .collect();
    let b = f.lonlat_bounds();
    let bbox = (!b.is_empty()).then_some([b.min_x, b.min_y, b.max_x, b.max_y]);
    json!({
        "layer": c.id,
        "layer_title": c.title,
        "kind": c.title,
        "id": f.id,
        "label": label.join(" "),
        "exact": exact,
        "bbox": bbox,
        "center": bbox.map(|b| [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]),
        "properties": properties(index, view, f),
    })
}
