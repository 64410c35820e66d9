//! What a browser needs besides data: MapLibre styles filtered to the caller
//! (`/styles/{name}.json`), label glyphs (`/fonts/{stack}/{range}.pbf`), the
//! two map pages (`/` and `/staff`) with their assets, and the security
//! headers every response carries.
//!
//! Style templates live in the styles directory and are ordinary MapLibre
//! styles with three placeholders the server fills in per request:
//! - a vector source with `"url": "chizu:layers"` becomes this server's
//!   composite tile URL for the layers that the style's layers use *and* the
//!   caller may read, with their attribution, zoom range and bounds;
//! - a raster source with `"url": "chizu:background"` becomes the configured
//!   background tiles (`--background-tiles`), or is removed with its layers
//!   when none is configured (the default: no request leaves the city's server);
//! - a `glyphs` URL starting with `/` gets this server's base URL.
//!
//! A style layer is removed when its source layer is not readable by the
//! caller or when any of its expressions reads a field the caller may not see,
//! so neither the layer id nor the field name reaches the browser; the list of
//! layers that answer clicks (`metadata."chizu:popup-order"`) is cut the same way.

use crate::caller::Ctx;
use crate::state::{AppState, CachedTile, Layers};
use crate::{ApiError, base_url};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chizu_access::View;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A raster layer under the city's data (e.g. GSI 地理院タイル, chiriin tiles).
#[derive(Debug, Clone)]
pub struct Background {
    /// What the layer list calls it (淡色地図, 標準地図, 写真...).
    pub name: String,
    /// Tile URL template with `{z}`, `{x}` and `{y}`.
    pub url: String,
    pub attribution: String,
}

impl Background {
    /// `scheme://host[:port]` of the tile URL, for the Content-Security-Policy.
    pub fn origin(&self) -> Option<String> {
        plain_origin(&self.url)
    }
}

/// `scheme://host[:port]` of an http(s) URL whose host is plain (letters,
/// digits, `.`, `-`, a port, an IPv6 literal): nothing else can reach a
/// Content-Security-Policy, so no value can widen or break it.
pub fn plain_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let plain_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    (matches!(scheme, "http" | "https") && plain_host).then(|| format!("{scheme}://{host}"))
}

pub async fn style(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = file
        .strip_suffix(".json")
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .ok_or_else(|| ApiError::not_found("no such style"))?;
    let path = state.config.styles_dir.join(format!("{name}.json"));
    let template = template(&state, name, &path).await?;
    let style = style_for_view(
        Value::clone(&template),
        &ctx.view,
        ctx.layers(),
        &base_url(&state, &headers),
        &state.config.background,
    )
    .map_err(|e| ApiError::internal(&format!("style {}", path.display()), e))?;
    let mut response = axum::Json(style).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    crate::private_unless_anonymous(&ctx, response.headers_mut());
    Ok(response)
}

/// A style template, parsed once and again only when its file changes (a
/// city edits styles while the server runs).
async fn template(
    state: &AppState,
    name: &str,
    path: &std::path::Path,
) -> Result<Arc<Value>, ApiError> {
    let modified = match tokio::fs::metadata(path).await {
        Ok(meta) => meta.modified().ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no style `{name}`")));
        }
        Err(e) => return Err(ApiError::internal("reading a style", e)),
    };
    if let Some((at, template)) = state.style_templates.get(name)
        && modified.is_some()
        && at == modified
    {
        return Ok(template);
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| ApiError::internal("reading a style", e))?;
    let template: Arc<Value> = Arc::new(
        serde_json::from_str(&text)
            .map_err(|e| ApiError::internal(&format!("style {}", path.display()), e))?,
    );
    state
        .style_templates
        .insert(name.to_string(), (modified, template.clone()));
    Ok(template)
}

/// Fills a style template in for one caller. Errors name what is wrong with
/// the template (they are the operator's, never the caller's).
pub fn style_for_view(
    mut style: Value,
    view: &View,
    layers: &Layers,
    base: &str,
    backgrounds: &[Background],
) -> Result<Value, String> {
    let obj = style.as_object_mut().ok_or("a style is a JSON object")?;
    let mut sources = match obj.remove("sources") {
        Some(Value::Object(m)) => m,
        _ => return Err("the style has no `sources` object".into()),
    };
    let mut style_layers = match obj.remove("layers") {
        Some(Value::Array(a)) => a,
        _ => return Err("the style has no `layers` array".into()),
    };

    // Which sources are chizu's, and which are the background.
    let placeholder = |s: &Value, what: &str| s.get("url").and_then(Value::as_str) == Some(what);
    let chizu_sources: BTreeSet<String> = sources
        .iter()
        .filter(|(_, s)| placeholder(s, "chizu:layers"))
        .map(|(k, _)| k.clone())
        .collect();
    let background_sources: BTreeSet<String> = sources
        .iter()
        .filter(|(_, s)| placeholder(s, "chizu:background"))
        .map(|(k, _)| k.clone())
        .collect();

    // Keep the style layers this caller may see.
    style_layers.retain(|layer| {
        let source = layer.get("source").and_then(Value::as_str).unwrap_or("");
        if background_sources.contains(source) {
            return !backgrounds.is_empty();
        }
        if !chizu_sources.contains(source) {
            return true;
        }
        let Some(id) = layer.get("source-layer").and_then(Value::as_str) else {
            return false;
        };
        let (Some(index), Some(lv)) = (layers.get(id), view.layer(id)) else {
            return false;
        };
        let fields = &index.meta().config.fields;
        let mut used = BTreeSet::new();
        fields_read(layer, &mut used);
        // chizu's own tile properties (a line label's angle) are no field.
        used.iter().all(|name| {
            *name == chizu_tiles::LABEL_ANGLE_KEY
                || fields
                    .iter()
                    .position(|f| f.name == *name)
                    .is_some_and(|i| lv.fields.contains(&i))
        })
    });

    // Fill in chizu sources with the layers that remain.
    for name in &chizu_sources {
        let ids: Vec<&str> = {
            let mut seen = Vec::new();
            for l in &style_layers {
                if l.get("source").and_then(Value::as_str) == Some(name)
                    && let Some(id) = l.get("source-layer").and_then(Value::as_str)
                    && !seen.contains(&id)
                {
                    seen.push(id);
                }
            }
            seen
        };
        if ids.is_empty() {
            sources.remove(name);
            continue;
        }
        let source = sources
            .get_mut(name)
            .and_then(Value::as_object_mut)
            .ok_or("a source is a JSON object")?;
        source.remove("url");
        let configs: Vec<_> = ids
            .iter()
            .filter_map(|id| layers.get(*id))
            .map(|l| &l.meta().config)
            .collect();
        let mut attribution: Vec<&str> = Vec::new();
        for c in &configs {
            if let Some(a) = c.attribution.as_deref()
                && !attribution.contains(&a)
            {
                attribution.push(a);
            }
        }
        let minzoom = configs.iter().map(|c| c.zoom.min).min().unwrap_or(0);
        source.insert("type".into(), json!("vector"));
        source.insert(
            "tiles".into(),
            json!([format!(
                "{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt",
                ids.join(",")
            )]),
        );
        source.insert("minzoom".into(), json!(minzoom));
        if !source.contains_key("maxzoom") {
            let maxzoom = configs.iter().map(|c| c.zoom.max).max().unwrap_or(22);
            source.insert("maxzoom".into(), json!(maxzoom));
        }
        source.insert("attribution".into(), json!(attribution.join(" | ")));
    }

    for name in &background_sources {
        let Some(template) = sources.remove(name) else {
            continue;
        };
        fill_backgrounds(
            name,
            &template,
            backgrounds,
            &mut sources,
            &mut style_layers,
        )?;
    }

    // Layers of sources that were dropped go too (MapLibre rejects them).
    style_layers.retain(|l| match l.get("source").and_then(Value::as_str) {
        Some(s) => sources.contains_key(s),
        None => true,
    });

    // The click order names layers: keep only those the caller reads.
    if let Some(Value::Array(order)) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("chizu:popup-order"))
    {
        order.retain(|id| id.as_str().is_some_and(|id| view.layer(id).is_some()));
    }
    if let Some(Value::String(glyphs)) = obj.get_mut("glyphs")
        && glyphs.starts_with('/')
    {
        *glyphs = format!("{base}{glyphs}");
    }
    obj.insert("sources".into(), Value::Object(sources));
    obj.insert("layers".into(), Value::Array(style_layers));
    Ok(style)
}

/// Puts the configured backgrounds in place of one placeholder source: the
/// first keeps the source's name, the others get `{name}-2`, `{name}-3`...
/// with copies of its layers, hidden. Each layer says which background it
/// draws (`chizu:background` in its metadata): the maps offer the choice.
fn fill_backgrounds(
    name: &str,
    template: &Value,
    backgrounds: &[Background],
    sources: &mut serde_json::Map<String, Value>,
    style_layers: &mut Vec<Value>,
) -> Result<(), String> {
    let uses = |l: &Value| l.get("source").and_then(Value::as_str) == Some(name);
    let Some(at) = style_layers.iter().position(uses) else {
        return Ok(());
    };
    let originals: Vec<Value> = style_layers.iter().filter(|l| uses(l)).cloned().collect();
    style_layers.retain(|l| !uses(l));
    let mut inserted = Vec::new();
    for (i, bg) in backgrounds.iter().enumerate() {
        let source_name = if i == 0 {
            name.to_string()
        } else {
            format!("{name}-{}", i + 1)
        };
        let mut source = template
            .as_object()
            .ok_or("a source is a JSON object")?
            .clone();
        source.remove("url");
        source.insert("tiles".into(), json!([bg.url]));
        source.insert("attribution".into(), json!(bg.attribution));
        sources.insert(source_name.clone(), Value::Object(source));
        for layer in &originals {
            let mut layer = layer.clone();
            let l = layer.as_object_mut().ok_or("a layer is a JSON object")?;
            if i > 0 {
                let id = l.get("id").and_then(Value::as_str).unwrap_or("background");
                l.insert("id".into(), json!(format!("{id}-{}", i + 1)));
                let layout = l.entry("layout").or_insert_with(|| json!({}));
                layout["visibility"] = json!("none");
            }
            l.insert("source".into(), json!(source_name));
            let metadata = l.entry("metadata").or_insert_with(|| json!({}));
            metadata["chizu:background"] = json!(bg.name);
            inserted.push(layer);
        }
    }
    style_layers.splice(at..at, inserted);
    Ok(())
}

/// The feature properties a style layer reads: `["get", name]`, `["has",
/// name]` and `["!has", name]` anywhere in its filter, layout or paint.
fn fields_read(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => {
            if let [Value::String(op), Value::String(name), ..] = items.as_slice()
                && matches!(op.as_str(), "get" | "has" | "!has")
            {
                out.insert(name.clone());
            }
            for item in items {
                fields_read(item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                // Legacy "{field}" tokens in text fields read properties too.
                if key == "text-field"
                    && let Value::String(s) = item
                {
                    let mut rest = s.as_str();
                    while let Some(open) = rest.find('{') {
                        let Some(close) = rest[open..].find('}') else {
                            break;
                        };
                        out.insert(rest[open + 1..open + close].to_string());
                        rest = &rest[open + close + 1..];
                    }
                }
                if key != "metadata" {
                    fields_read(item, out);
                }
            }
        }
        _ => {}
    }
}

/// `/fonts/{fontstack}/{start}-{end}.pbf`: SDF glyphs for labels, public.
pub async fn glyphs(
    State(state): State<Arc<AppState>>,
    Path((stack, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = file
        .strip_suffix(".pbf")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some((start, end)) = range else {
        return Err(ApiError::not_found("glyph ranges look like 0-255.pbf"));
    };
    if stack.len() > 256 {
        return Err(ApiError::bad_request("the font stack name is too long"));
    }
    if !chizu_tiles::glyphs::is_range(start, end) {
        return Err(ApiError::not_found(
            "a glyph range is 256 code points from a multiple of 256, below U+10000",
        ));
    }
    let fonts = state.config.fonts.clone();
    let resolved = fonts.resolve(&stack);
    let rendered = state
        .glyph_cache
        .try_get_with((resolved.clone(), start), async move {
            crate::work::background(move || {
                fonts
                    .render_range(&resolved, start, end)
                    .map(|pbf| Arc::new(CachedTile::of_bytes(pbf)))
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })
        .await
        .map_err(|e| ApiError::internal("glyphs", e))?;
    Ok(crate::tiles::respond(
        &rendered,
        &headers,
        "application/x-protobuf",
        "public, max-age=86400",
    ))
}

/// The public map.
pub async fn public_page(State(state): State<Arc<AppState>>) -> Response {
    page(&state, "index.html").await
}

/// The staff map. The page itself is public (it holds a login form); what it
/// shows after login comes from the API through the caller's view.
pub async fn staff_page(State(state): State<Arc<AppState>>) -> Response {
    page(&state, "staff.html").await
}

fn viewer_missing() -> Response {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Service Unavailable",
        code: None,
        detail: "the web viewer is not built: run `npm --prefix viewer ci && npm --prefix viewer run build` and start chizu with --viewer viewer/dist".into(),
    }
    .into_response()
}

async fn page(state: &AppState, file: &str) -> Response {
    let Some(dir) = &state.config.viewer_dir else {
        return viewer_missing();
    };
    match tokio::fs::read(dir.join(file)).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => viewer_missing(),
        Err(e) => ApiError::internal("reading the viewer", e).into_response(),
    }
}

/// Headers on every response: no sniffing, no framing, a strict
/// Content-Security-Policy (no inline script or style, connections to this
/// server and the configured background only), and a same-origin referrer.
pub async fn security_headers(
    State(state): State<Arc<AppState>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // X-Frame-Options cannot name origins: with frame ancestors configured,
    // the Content-Security-Policy alone says who may embed the pages.
    if state.config.frame_ancestors.is_empty() {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    response
}

/// The Content-Security-Policy for this configuration.
pub fn content_security_policy(backgrounds: &[Background], frame_ancestors: &[String]) -> String {
    let origins: BTreeSet<String> = backgrounds.iter().filter_map(Background::origin).collect();
    let extra: String = origins.iter().map(|o| format!(" {o}")).collect();
    let ancestors: Vec<String> = frame_ancestors
        .iter()
        .filter_map(|a| plain_origin(a))
        .collect();
    let ancestors = if ancestors.is_empty() {
        "'none'".to_string()
    } else {
        ancestors.join(" ")
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data: blob:{extra}; connect-src 'self'{extra}; \
         worker-src 'self'; child-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chizu_access::Caller;
    use chizu_core::{LayerConfig, RoleSet};
    use chizu_store::{LayerIndex, LayerSnapshot, StoredLayer};
    use std::path::Path;

    /// The repository's own layer files, as empty layers.
    fn layers() -> Layers {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../layers");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let roles = RoleSet::from_toml(&dir.join("roles.toml"), &read("roles.toml")).unwrap();
        [
            "parcels",
            "roads",
            "zoning",
            "hazard",
            "boundary",
            "water_pipes",
        ]
        .iter()
        .map(|id| {
            let file = dir.join(format!("{id}.toml"));
            let config =
                LayerConfig::from_toml(&file, &read(&format!("{id}.toml")), &roles).unwrap();
            let meta = StoredLayer {
                config,
                version: 1,
                source_sha256: String::new(),
                ingested_at: String::new(),
                feature_count: 0,
                invalid_count: 0,
                repaired_count: 0,
                skipped_count: 0,
                bounds: None,
            };
            let index = LayerIndex::build(LayerSnapshot {
                meta,
                features: Vec::new(),
            });
            let source: Arc<dyn chizu_store::LayerSource> = Arc::new(index);
            (id.to_string(), source)
        })
        .collect()
    }

    fn template(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../styles/{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn view(layers: &Layers, roles: &[&str]) -> View {
        let caller = if roles.is_empty() {
            Caller::anonymous()
        } else {
            Caller::user("someone", roles.iter().map(|r| r.to_string()))
        };
        View::for_caller(&caller, layers.values().map(|l| &l.meta().config))
    }

    fn source_layers(style: &Value) -> BTreeSet<String> {
        style["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["source-layer"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn the_staff_style_shows_the_public_only_public_layers() {
        let layers = layers();
        let style = style_for_view(
            template("staff"),
            &view(&layers, &[]),
            &layers,
            "http://city",
            &[],
        )
        .unwrap();
        let text = style.to_string();
        for hidden in [
            "water_pipes",
            "diameter_mm",
            "pressure_class",
            "owner_name",
            "chizu:layers",
            "chizu:background",
        ] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
        assert_eq!(
            source_layers(&style),
            ["boundary", "hazard", "parcels", "roads", "zoning"]
                .map(String::from)
                .into()
        );
        assert_eq!(
            style["sources"]["chizu"]["tiles"][0],
            "http://city/tiles/boundary,zoning,hazard,parcels,roads/{z}/{x}/{y}.mvt"
        );
        assert_eq!(style["glyphs"], "http://city/fonts/{fontstack}/{range}.pbf");
        // No background unless configured: no request leaves the server.
        assert!(style["sources"].get("background").is_none());
        assert!(
            style["layers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["id"] != "background-tiles")
        );
    }

    #[test]
    fn staff_get_the_pipes_and_a_configured_background() {
        let layers = layers();
        let background = Background {
            name: "淡色地図".into(),
            url: "https://tiles.example.jp/pale/{z}/{x}/{y}.png".into(),
            attribution: "地理院タイル".into(),
        };
        let photo = Background {
            name: "写真".into(),
            url: "https://photos.example.jp/ortho/{z}/{x}/{y}.jpg".into(),
            attribution: "地理院タイル".into(),
        };
        let style = style_for_view(
            template("staff"),
            &view(&layers, &["staff", "water"]),
            &layers,
            "http://city",
            &[background.clone(), photo.clone()],
        )
        .unwrap();
        assert!(source_layers(&style).contains("water_pipes"));
        let tiles = style["sources"]["chizu"]["tiles"][0].as_str().unwrap();
        assert!(tiles.contains("water_pipes"), "{tiles}");
        assert!(
            style["sources"]["chizu"]["attribution"]
                .as_str()
                .unwrap()
                .contains("上下水道課")
        );
        assert_eq!(style["sources"]["background"]["tiles"][0], background.url);
        // The second background: its own source, its layer hidden until chosen.
        assert_eq!(style["sources"]["background-2"]["tiles"][0], photo.url);
        let layers = style["layers"].as_array().unwrap();
        let chosen: Vec<(&Value, &Value)> = (layers.iter())
            .filter(|l| l["metadata"]["chizu:background"].is_string())
            .map(|l| {
                (
                    &l["metadata"]["chizu:background"],
                    &l["layout"]["visibility"],
                )
            })
            .collect();
        assert_eq!(
            chosen,
            [
                (&json!("淡色地図"), &Value::Null),
                (&json!("写真"), &json!("none"))
            ]
        );
        let policy = content_security_policy(&[background.clone(), photo], &[]);
        assert_eq!(policy.matches("https://tiles.example.jp").count(), 2);
        assert_eq!(policy.matches("https://photos.example.jp").count(), 2);
    }

    #[test]
    fn only_plain_background_origins_reach_the_policy() {
        let origin = |url: &str| {
            Background {
                name: String::new(),
                url: url.into(),
                attribution: String::new(),
            }
            .origin()
        };
        assert_eq!(
            origin("https://cyberjapandata.gsi.go.jp/xyz/pale/{z}/{x}/{y}.png").as_deref(),
            Some("https://cyberjapandata.gsi.go.jp")
        );
        assert_eq!(
            origin("http://10.0.0.5:8081/{z}/{x}/{y}.png").as_deref(),
            Some("http://10.0.0.5:8081")
        );
        for bad in [
            "https://a.example;script-src */{z}/{x}/{y}",
            "https://a.example 'unsafe-inline'/{z}",
            "file:///tiles/{z}/{x}/{y}.png",
            "tiles/{z}/{x}/{y}.png",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_layer_reading_a_hidden_field_is_removed() {
        let layers = layers();
        let template = json!({
            "version": 8,
            "sources": { "c": { "type": "vector", "url": "chizu:layers" } },
            "layers": [
                { "id": "owners", "type": "symbol", "source": "c", "source-layer": "parcels",
                  "layout": { "text-field": ["get", "owner_name"] } },
                { "id": "owners-legacy", "type": "symbol", "source": "c", "source-layer": "parcels",
                  "layout": { "text-field": "{owner_name}" } },
                { "id": "lots", "type": "symbol", "source": "c", "source-layer": "parcels",
                  "layout": { "text-field": ["get", "chiban"] } }
            ]
        });
        let public =
            style_for_view(template.clone(), &view(&layers, &[]), &layers, "", &[]).unwrap();
        let ids: Vec<_> = public["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!("lots")]);
        let staff = style_for_view(template, &view(&layers, &["staff"]), &layers, "", &[]).unwrap();
        assert_eq!(staff["layers"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_style_without_visible_layers_drops_its_source() {
        let layers = layers();
        let template = json!({
            "version": 8,
            "sources": { "c": { "type": "vector", "url": "chizu:layers" } },
            "layers": [ { "id": "pipes", "type": "line", "source": "c", "source-layer": "water_pipes" } ]
        });
        let style = style_for_view(template, &view(&layers, &[]), &layers, "", &[]).unwrap();
        assert_eq!(style["sources"], json!({}));
        assert_eq!(style["layers"], json!([]));
    }
}
