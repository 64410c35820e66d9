//! `/data`: the open data page (オープンデータ). Plain HTML in Japanese and
//! English that needs no script to read: every collection the caller may
//! see, with its title, description, attribution, licence, update date,
//! feature count and fields, and download links in every export format for
//! the collections the caller may export. Built from the caller's view like
//! every other door, so the public page lists only public data.

use crate::caller::Ctx;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chizu_access::LayerView;
use chizu_core::LayerConfig;
use chizu_store::LayerSource;
use std::fmt::Write as _;
use std::sync::Arc;

/// (query value, label) of the export formats offered.
const FORMATS: &[(&str, &str)] = &[
    ("gpkg", "GeoPackage"),
    ("shp", "Shapefile (zip)"),
    ("csv", "CSV (WKT)"),
    ("geojson", "GeoJSON"),
    ("fgb", "FlatGeobuf"),
];

/// The city's zone for downloads beside WGS 84 (what CAD and 台帳 systems use).
const CITY_CRS: u32 = 6670;

pub async fn page(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = crate::base_url(&state, &headers);
    let mut sections = String::new();
    let mut count = 0;
    for (index, view) in ctx.visible() {
        let (features, _) = state.summary(index, view).await?;
        sections.push_str(&section(&base, index.as_ref(), view, features));
        count += 1;
    }
    let html = format!(
        "<!doctype html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>オープンデータ / Open data</title>\n</head>\n<body>\n\
         <h1>オープンデータ <small lang=\"en\">Open data</small></h1>\n\
         <p>公開している {count} 件のデータの一覧です。ダウンロードの形式と座標系を選べます。\
         <span lang=\"en\">The {count} collections you may see; downloads in several formats, \
         in WGS 84 or JGD2011 zone II (EPSG:{CITY_CRS}).</span></p>\n\
         <p><a href=\"{base}/\">地図 / Map</a> · <a href=\"{base}/ogc\">OGC API - Features</a></p>\n\
         {sections}</body>\n</html>\n"
    );
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response();
    crate::private_unless_anonymous(&ctx, response.headers_mut());
    Ok(response)
}

fn section(base: &str, index: &dyn LayerSource, view: &LayerView, features: u64) -> String {
    let meta = index.meta();
    let c = &meta.config;
    let mut out = format!(
        "<section id=\"{id}\">\n<h2>{ja} <small lang=\"en\">{en}</small></h2>\n",
        id = esc(&c.id),
        ja = esc(&c.title.ja),
        en = esc(c.title.en_or_ja()),
    );
    if let Some(d) = &c.description {
        let _ = writeln!(
            out,
            "<p>{} <span lang=\"en\">{}</span></p>",
            esc(&d.ja),
            esc(d.en_or_ja())
        );
    }
    let _ = writeln!(out, "<dl>");
    let mut term = |ja: &str, en: &str, value: String| {
        let _ = writeln!(out, "<dt>{ja} / {en}</dt><dd>{value}</dd>");
    };
    term("件数", "Features", features.to_string());
    // The date of the current version: when it was ingested.
    term(
        "更新日",
        "Updated",
        esc(meta.ingested_at.get(..10).unwrap_or("")),
    );
    if let Some(a) = &c.attribution {
        term("出典", "Source", esc(a));
    }
    term(
        "利用条件",
        "Licence",
        esc(c
            .license
            .as_deref()
            .unwrap_or("お問い合わせください / Ask the city")),
    );
    term("項目", "Fields", fields(c, view));
    let _ = writeln!(out, "</dl>");
    out.push_str(&downloads(base, &c.id, view.can_export));
    out.push_str("</section>\n");
    out
}

fn fields(c: &LayerConfig, view: &LayerView) -> String {
    let items: String = view
        .fields
        .iter()
        .map(|i| &c.fields[*i])
        .map(|f| {
            let title = f
                .title
                .as_ref()
                .map(|t| format!("{} / {}", esc(&t.ja), esc(t.en_or_ja())))
                .unwrap_or_else(|| esc(&f.name));
            format!("<li><code>{}</code> {title} ({})</li>", esc(&f.name), f.ty)
        })
        .collect();
    format!("<ul>{items}</ul>")
}

fn downloads(base: &str, id: &str, allowed: bool) -> String {
    if !allowed {
        return "<p>このデータはダウンロードできません。<span lang=\"en\">This collection is not offered for download.</span></p>\n".into();
    }
    let mut out = String::from("<p>ダウンロード / Download:</p>\n<ul class=\"downloads\">\n");
    for (format, label) in FORMATS {
        let href = format!("{base}/ogc/collections/{}/items?f={format}", esc(id));
        let _ = writeln!(
            out,
            "<li>{label}: <a href=\"{href}\">WGS 84</a> · \
             <a href=\"{href}&amp;crs=http://www.opengis.net/def/crs/EPSG/0/{CITY_CRS}\">EPSG:{CITY_CRS}</a></li>"
        );
    }
    out.push_str("</ul>\n");
    out
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(
            super::esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
