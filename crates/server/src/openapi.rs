//! `/ogc/api`: the OpenAPI 3.0 document of exactly the routes served, with one
//! items path per collection the caller can see, listing only the properties it
//! can see (GDAL reads these to push property filters to the server).

use crate::caller::Ctx;
use crate::ogc::{CONFORMANCE, DEFAULT_LIMIT, MAX_LIMIT, properties_schema};
use crate::{AppState, base_url};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn op(summary: &str, params: Vec<Value>, media: &str) -> Value {
    json!({
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": { "description": "OK", "content": { media: {} } },
                "400": { "description": "Bad request", "content": { "application/problem+json": {} } },
                "404": { "description": "Not found (or not visible to the caller)", "content": { "application/problem+json": {} } }
            }
        }
    })
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description, "style": "form", "explode": false })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

pub async fn api(State(state): State<Arc<AppState>>, ctx: Ctx, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    let layers = ctx.layers();
    let visible: Vec<String> = ctx.view.layers().map(|v| v.id.clone()).collect();
    let common_items = || {
        vec![
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
                "items per page",
            ),
            query(
                "offset",
                json!({"type": "integer", "minimum": 0, "default": 0}),
                "items to skip",
            ),
            query(
                "bbox",
                json!({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6}),
                "minx,miny,maxx,maxy in bbox-crs (CRS84 by default)",
            ),
            query(
                "bbox-crs",
                json!({"type": "string", "format": "uri"}),
                "CRS of bbox",
            ),
            query(
                "crs",
                json!({"type": "string", "format": "uri"}),
                "CRS of the returned geometries",
            ),
            query(
                "properties",
                json!({"type": "array", "items": {"type": "string"}}),
                "properties to return",
            ),
            query(
                "filter",
                json!({"type": "string"}),
                "CQL2 filter; DWITHIN(geometry, POINT(lon lat), metres, meters) selects features near a point",
            ),
            query(
                "filter-lang",
                json!({"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}),
                "language of filter",
            ),
            query(
                "filter-crs",
                json!({"type": "string", "format": "uri"}),
                "CRS of geometry literals in filter",
            ),
        ]
    };
    let mut paths = Map::new();
    paths.insert("/".into(), op("Landing page", vec![], "application/json"));
    paths.insert(
        "/conformance".into(),
        op("Conformance classes", vec![], "application/json"),
    );
    paths.insert(
        "/api".into(),
        op(
            "This document",
            vec![],
            "application/vnd.oai.openapi+json;version=3.0",
        ),
    );
    paths.insert(
        "/collections".into(),
        op("Collections", vec![], "application/json"),
    );
    paths.insert(
        "/collections/{collectionId}".into(),
        op(
            "A collection",
            vec![path_param("collectionId")],
            "application/json",
        ),
    );
    paths.insert(
        "/collections/{collectionId}/queryables".into(),
        op(
            "Queryable properties",
            vec![path_param("collectionId")],
            "application/schema+json",
        ),
    );
    paths.insert(
        "/collections/{collectionId}/items/{featureId}".into(),
        op(
            "One feature",
            vec![
                path_param("collectionId"),
                path_param("featureId"),
                query("crs", json!({"type": "string"}), "CRS"),
            ],
            "application/geo+json",
        ),
    );
    let mut schemas = Map::new();
    for id in &visible {
        let (Some(index), Some(view)) = (layers.get(id), ctx.view.layer(id)) else {
            continue;
        };
        let props = properties_schema(&index.meta().config.fields, view);
        let mut params = common_items();
        for (name, schema) in &props {
            params.push(query(
                name,
                schema.clone(),
                "features whose property equals this value",
            ));
        }
        paths.insert(
            format!("/collections/{id}/items"),
            op(&format!("Features of {id}"), params, "application/geo+json"),
        );
        schemas.insert(
            format!("{id}_properties"),
            json!({ "type": "object", "properties": props }),
        );
    }
    let doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "chizu",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kashima City integrated GIS (OGC API - Features). What this document lists depends on who asks.",
            "license": { "name": "Apache-2.0" },
            "x-conformsTo": CONFORMANCE,
        },
        "servers": [{ "url": format!("{base}/ogc") }],
        "paths": paths,
        "components": { "schemas": schemas },
    });
    let mut r = Json(doc).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oai.openapi+json;version=3.0"),
    );
    crate::private_unless_anonymous(&ctx, r.headers_mut());
    r
}
