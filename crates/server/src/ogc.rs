//! OGC API - Features under `/ogc`: Part 1 (core, GeoJSON, OpenAPI), Part 2 (CRS)
//! and Part 3 (filtering with CQL2 text and JSON, queryables). Every answer is
//! computed through the caller's view: hidden collections do not exist, hidden
//! fields are absent (and filtering on one fails exactly like an unknown field),
//! row filters are ANDed in, and reads of personal fields are audited.

use crate::caller::Ctx;
use crate::crs::{self, Crs};
use crate::selection::Selection;
use crate::{ApiError, AppState, base_url};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chizu_access::{AuditEvent, LayerView};
use chizu_core::{FieldDef, FieldType};
use chizu_store::{IndexedFeature, LayerSource};
use serde_json::{Map, json};
use std::sync::Arc;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;
const GEOJSON: &str = "application/geo+json";

pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
];

fn json_response(body: serde_json::Value, ctx: &Ctx, media: &'static str) -> Response {
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    crate::private_unless_anonymous(ctx, r.headers_mut());
    r
}

/// The format a landing or collections request asks for: `f=html` gets the
/// open data page (`/data`), which lists the same collections for people.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageFormat {
    #[serde(default)]
    f: Option<String>,
}

impl PageFormat {
    fn html(&self) -> bool {
        self.f.as_deref() == Some("html")
    }
}

pub async fn landing(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    format: Result<Query<PageFormat>, QueryRejection>,
) -> Result<Response, ApiError> {
    if format.is_ok_and(|Query(f)| f.html()) {
        return crate::data_page::page(State(state), ctx, headers).await;
    }
    let b = format!("{}/ogc", base_url(&state, &headers));
    Ok(json_response(
        json!({
            "title": "chizu",
            "description": "Kashima City integrated GIS: OGC API - Features and Tiles",
            "links": [
                {"href": format!("{b}"), "rel": "self", "type": "application/json", "title": "this document"},
                {"href": format!("{b}/api"), "rel": "service-desc", "type": "application/vnd.oai.openapi+json;version=3.0", "title": "the API definition"},
                {"href": format!("{b}/conformance"), "rel": "conformance", "type": "application/json", "title": "conformance classes"},
                {"href": format!("{b}/collections"), "rel": "data", "type": "application/json", "title": "collections"},
                {"href": format!("{b}/tiles"), "rel": crate::ogc_tiles::REL_TILESETS_VECTOR, "type": "application/json", "title": "vector tiles of every layer"},
                {"href": format!("{b}/tileMatrixSets"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes", "type": "application/json", "title": "tile matrix sets"},
                {"href": format!("{b}?f=html"), "rel": "alternate", "type": "text/html", "title": "this document as HTML (the open data page)"},
            ]
        }),
        &ctx,
        "application/json",
    ))
}

pub async fn conformance(ctx: Ctx) -> Response {
    let all: Vec<&str> = CONFORMANCE
        .iter()
        .chain(crate::ogc_tiles::CONFORMANCE)
        .copied()
        .collect();
    json_response(json!({ "conformsTo": all }), &ctx, "application/json")
}

async fn collection_json(
    state: &AppState,
    base: &str,
    index: &Arc<dyn LayerSource>,
    view: &LayerView,
) -> Result<serde_json::Value, ApiError> {
    let c = &index.meta().config;
    let (count, bounds) = state.summary(index, view).await?;
    let bbox = bounds.map(|b| vec![b.min_x, b.min_y, b.max_x, b.max_y]);
    let href = format!("{base}/collections/{}", c.id);
    Ok(json!({
        "id": c.id,
        "title": c.title.ja,
        "description": c.description.as_ref().map(|d| d.ja.clone()).unwrap_or_else(|| c.title.en_or_ja().to_string()),
        "itemType": "feature",
        "extent": { "spatial": { "bbox": bbox.map(|b| vec![b]).unwrap_or_default(), "crs": crs::CRS84 } },
        "crs": crs::supported().iter().map(|c| c.uri()).collect::<Vec<_>>(),
        "storageCrs": crs::CRS84,
        "numberOfFeatures": count,
        "links": [
            {"href": href, "rel": "self", "type": "application/json"},
            {"href": format!("{href}/items"), "rel": "items", "type": GEOJSON},
            {"href": format!("{href}/queryables"), "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables", "type": "application/schema+json"},
            {"href": format!("{href}/tiles"), "rel": crate::ogc_tiles::REL_TILESETS_VECTOR, "type": "application/json"},
            {"href": format!("{}/tiles/{}.json", base.trim_end_matches("/ogc"), c.id), "rel": "describedby", "type": "application/json", "title": "TileJSON"},
        ],
    }))
}

pub async fn collections(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    format: Result<Query<PageFormat>, QueryRejection>,
) -> Result<Response, ApiError> {
    if format.is_ok_and(|Query(f)| f.html()) {
        return crate::data_page::page(State(state), ctx, headers).await;
    }
    let base = format!("{}/ogc", base_url(&state, &headers));
    let mut list = Vec::new();
    for (index, view) in ctx.visible() {
        list.push(collection_json(&state, &base, index, view).await?);
    }
    Ok(json_response(
        json!({
            "links": [
                {"href": format!("{base}/collections"), "rel": "self", "type": "application/json"},
                {"href": format!("{base}/collections?f=html"), "rel": "alternate", "type": "text/html"},
            ],
            "collections": list,
            "crs": crs::supported().iter().map(|c| c.uri()).collect::<Vec<_>>(),
        }),
        &ctx,
        "application/json",
    ))
}

/// The layer and the caller's view of it, or the 404 of a layer that does not exist.
fn find(ctx: &Ctx, id: &str) -> Result<(Arc<dyn LayerSource>, LayerView), ApiError> {
    ctx.layer(id)
        .map(|(i, v)| (i.clone(), v.clone()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no collection `{}`",
                id.chars().take(64).collect::<String>()
            ))
        })
}

pub async fn collection(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (index, view) = find(&ctx, &id)?;
    let base = format!("{}/ogc", base_url(&state, &headers));
    Ok(json_response(
        collection_json(&state, &base, &index, &view).await?,
        &ctx,
        "application/json",
    ))
}

pub(crate) fn json_type(ty: FieldType) -> (&'static str, Option<&'static str>) {
    match ty {
        FieldType::Text => ("string", None),
        FieldType::Date => ("string", Some("date")),
        FieldType::Integer => ("integer", None),
        FieldType::Float => ("number", None),
        FieldType::Boolean => ("boolean", None),
    }
}

/// JSON Schema of the visible properties (queryables and the OpenAPI document).
pub fn properties_schema(fields: &[FieldDef], view: &LayerView) -> Map<String, serde_json::Value> {
    let mut props = Map::new();
    for i in &view.fields {
        let f = &fields[*i];
        let (ty, format) = json_type(f.ty);
        let mut p = json!({ "type": ty });
        if let Some(fmt) = format {
            p["format"] = json!(fmt);
        }
        if let Some(t) = &f.title {
            p["title"] = json!(t.ja);
            if let Some(en) = &t.en {
                p["description"] = json!(en);
            }
        }
        if !f.values.is_empty() {
            // The code list as a JSON Schema enum (integer codes as numbers).
            p["enum"] = f
                .values
                .keys()
                .map(|code| match code.parse::<i64>() {
                    Ok(n) if f.ty == chizu_core::FieldType::Integer => json!(n),
                    _ => json!(code),
                })
                .collect();
        }
        props.insert(f.name.clone(), p);
    }
    props
}

pub async fn queryables(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (index, view) = find(&ctx, &id)?;
    let c = &index.meta().config;
    let mut props = properties_schema(&c.fields, &view);
    props.insert(
        "geometry".into(),
        json!({ "format": format!("geometry-{}", match c.geometry { chizu_core::GeometryKind::Point => "multipoint", chizu_core::GeometryKind::Line => "multilinestring", chizu_core::GeometryKind::Polygon => "multipolygon" }) }),
    );
    let base = format!("{}/ogc", base_url(&state, &headers));
    Ok(json_response(
        json!({
            "$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": format!("{base}/collections/{id}/queryables"),
            "type": "object",
            "title": c.title.ja,
            "properties": props,
            "additionalProperties": false,
        }),
        &ctx,
        "application/schema+json",
    ))
}

fn feature_json(
    index: &dyn LayerSource,
    f: &IndexedFeature,
    props: &[usize],
    crs: Crs,
) -> Result<serde_json::Value, ApiError> {
    let c = &index.meta().config;
    let mut g = f.lonlat();
    crs.from_lonlat(&mut g)
        .map_err(|e| ApiError::internal("reprojection", e))?;
    let mut properties = Map::new();
    for i in props {
        properties.insert(c.fields[*i].name.clone(), f.properties[*i].to_json());
    }
    Ok(json!({
        "type": "Feature",
        "id": f.id,
        "geometry": geojson::Geometry::from(&g),
        "properties": properties,
    }))
}

/// Records a read of personal fields (those of `props` the view marks personal)
/// by a logged-in caller.
pub(crate) fn audit(
    state: &AppState,
    ctx: &Ctx,
    index: &dyn LayerSource,
    view: &LayerView,
    props: &[usize],
    area: String,
    n: usize,
) {
    let Some(user) = &ctx.caller.user else { return };
    let personal: Vec<&str> = view
        .personal
        .iter()
        .filter(|i| props.contains(i))
        .map(|i| index.meta().config.fields[*i].name.as_str())
        .collect();
    if personal.is_empty() || n == 0 {
        return;
    }
    state.audit.record(AuditEvent {
        at: 0,
        user: user.clone(),
        layer: index.meta().config.id.clone(),
        via: "query".into(),
        area,
        features: n as u64,
        fields: personal.join(","),
        purpose: String::new(),
    });
}

fn with_crs_header(mut r: Response, crs: Crs) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>", crs.uri())) {
        r.headers_mut().insert("content-crs", v);
    }
    r
}

pub async fn items(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (index, view) = find(&ctx, &id)?;
    let format = params
        .iter()
        .find(|(k, _)| k == "f")
        .map(|(_, v)| v.as_str())
        .unwrap_or("json");
    let export = match format {
        "json" => None,
        f => Some(chizu_io::export::ExportFormat::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!(
                "format `{}` is not offered (json; exports: gpkg, fgb, geojson, csv, shp)",
                f.chars().take(20).collect::<String>()
            ))
        })?),
    };
    if let Some(format) = export {
        // Authorisation before any work: a layer the caller may not export
        // costs it nothing but this answer.
        if !view.can_export {
            return Err(crate::export::forbidden(&id));
        }
        let has = |k: &str| params.iter().any(|(n, _)| n == k);
        let (limit, offset) = (has("limit"), has("offset"));
        let (index2, view2, params2) = (index.clone(), view.clone(), params.clone());
        // Parsing (PROJ for bbox-crs) off the async runtime; the rows are
        // read while the file is written.
        let selection = state
            .work
            .run(move |_| Selection::parse(&index2.meta().config, &view2, &params2))
            .await?;
        let skip = if offset { selection.offset } else { 0 };
        let take = if limit { selection.limit } else { usize::MAX };
        let area = ["bbox", "filter"]
            .iter()
            .filter_map(|k| {
                params
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(n, v)| format!("{n}={}", v.chars().take(200).collect::<String>()))
            })
            .collect::<Vec<_>>()
            .join(" ");
        return crate::export::respond(
            &state,
            &ctx,
            crate::export::ExportRequest {
                index: index.clone(),
                view: view.clone(),
                format,
                encoding: params
                    .iter()
                    .find(|(k, _)| k == "encoding")
                    .map(|(_, v)| v.clone()),
                selection,
                skip,
                take,
                // Bounded like every value a caller sends that is kept.
                purpose: params
                    .iter()
                    .find(|(k, _)| k == "purpose")
                    .map(|(_, v)| {
                        let kept = v.trim().chars().take(200);
                        kept.map(|c| if c.is_control() { ' ' } else { c }).collect()
                    })
                    .unwrap_or_default(),
                area: if area.is_empty() {
                    "whole layer".into()
                } else {
                    area
                },
            },
        )
        .await;
    }
    let base = format!("{}/ogc/collections/{id}/items", base_url(&state, &headers));
    let (index2, view2, state2) = (index.clone(), view.clone(), state.clone());
    // Planning (PROJ), matching and serialising are CPU work: off the async
    // runtime, within the request's budget.
    let (body, count, returned, crs) = state.work.run(move |budget| {
        let plan = Selection::parse(&index2.meta().config, &view2, &params)?;
        let meta = index2.meta();
        let key = (
            meta.config.id.clone(),
            meta.version,
            view2.fingerprint.clone(),
            Selection::key(&params),
        );
        let ids = match state2.selections.get(&key) {
            Some(ids) => ids,
            None => {
                let ids = Arc::new(plan.ids(index2.as_ref(), &view2, budget)?);
                state2.selections.insert(key, ids.clone());
                ids
            }
        };
        let matched = ids.len();
        let start = plan.offset.min(matched);
        let end = plan.offset.saturating_add(plan.limit).min(matched);
        let page = index2.features(&ids[start..end], plan.pushdown())?;
        let features = page
            .iter()
            .map(|f| feature_json(index2.as_ref(), f, &plan.properties, plan.crs))
            .collect::<Result<Vec<_>, _>>()?;
        let link = |offset: usize| {
            let mut q: Vec<(String, String)> = params.iter().filter(|(k, _)| k != "offset" && k != "limit").cloned().collect();
            q.push(("limit".into(), plan.limit.to_string()));
            q.push(("offset".into(), offset.to_string()));
            let query: String = q
                .iter()
                .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            format!("{base}?{query}")
        };
        let mut links = vec![json!({"href": link(plan.offset), "rel": "self", "type": GEOJSON})];
        if plan.offset + page.len() < matched {
            links.push(json!({"href": link(plan.offset + plan.limit), "rel": "next", "type": GEOJSON}));
        }
        if plan.offset > 0 {
            links.push(json!({"href": link(plan.offset.saturating_sub(plan.limit)), "rel": "prev", "type": GEOJSON}));
        }
        let body = json!({
            "type": "FeatureCollection",
            "numberMatched": matched,
            "numberReturned": features.len(),
            "timeStamp": timestamp(),
            "links": links,
            "features": features,
        });
        let props = plan.properties.clone();
        Ok((body, props, page.len(), plan.crs))
    })
    .await?;
    audit(
        &state,
        &ctx,
        index.as_ref(),
        &view,
        &count,
        format!("items of {id}"),
        returned,
    );
    Ok(with_crs_header(json_response(body, &ctx, GEOJSON), crs))
}

pub async fn item(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((id, fid)): Path<(String, String)>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (index, view) = find(&ctx, &id)?;
    let only_crs: Vec<(String, String)> = params
        .into_iter()
        .filter(|(k, _)| k == "crs" || k == "properties")
        .collect();
    let plan = Selection::parse(&index.meta().config, &view, &only_crs)?;
    let not_found = || {
        ApiError::not_found(format!(
            "no feature `{}` in `{id}`",
            fid.chars().take(32).collect::<String>()
        ))
    };
    let n: u64 = fid.parse().map_err(|_| not_found())?;
    let source = index.clone();
    let push = plan.pushdown().clone();
    let f = crate::work::background(move || {
        (source.feature(n, &push)).map(|f| f.map(|f| f.into_owned()))
    })
    .await
    .map_err(|e| ApiError::internal("reading a feature", e))??
    .filter(|f| view.admits(&f.properties))
    .ok_or_else(not_found)?;
    let mut body = feature_json(index.as_ref(), &f, &plan.properties, plan.crs)?;
    let base = format!("{}/ogc/collections/{id}", base_url(&state, &headers));
    body["links"] = json!([
        {"href": format!("{base}/items/{n}"), "rel": "self", "type": GEOJSON},
        {"href": base, "rel": "collection", "type": "application/json"},
    ]);
    audit(
        &state,
        &ctx,
        index.as_ref(),
        &view,
        &plan.properties,
        format!("feature {n}"),
        1,
    );
    Ok(with_crs_header(
        json_response(body, &ctx, GEOJSON),
        plan.crs,
    ))
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn timestamp() -> String {
    chizu_core::time::iso_datetime(chizu_core::time::unix_now())
}
