//! Static publishing (静的公開) for disaster traffic: the public map as files
//! any static host or CDN can serve when a typhoon brings a city's whole
//! population to it at once.
//!
//! The archive holds what the server answers an anonymous caller, by
//! construction: the public style's own composite source (its layers, in its
//! order, and its zoom range) rendered by the same function the tile route
//! uses, through the anonymous view. Drafts, staff layers and hidden fields
//! are outside that view, so they never enter a file. The style, catalog and
//! glyphs are fetched from the router itself, as an anonymous client would.

use crate::state::AppState;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use chizu_access::{Caller, LayerView};
use chizu_core::{Bounds, TileCoord};
use chizu_store::LayerSource;
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The archive's file name inside a published site.
pub const ARCHIVE_NAME: &str = "public.pmtiles";
/// More tiles than this is a mistake (a whole country at z16), not a city.
const MAX_TILES: usize = 4_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Plan(String),
    // Sources are not repeated in the messages: the CLI prints the chain.
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the PMTiles archive: {0}")]
    Archive(#[from] pmtiles::PmtError),
    #[error("{what}: the server answered {status}")]
    Fetch { what: String, status: StatusCode },
    #[error("rendering tile {coord}")]
    Render {
        coord: TileCoord,
        #[source]
        source: chizu_store::StoreError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The zooms an operator asked for; an end not given is the public style's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ZoomRange {
    pub min: Option<u8>,
    pub max: Option<u8>,
}

/// Which tiles an archive holds: the public style's composite source.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivePlan {
    /// Layer ids, in the source's order (the order of layers in each tile).
    pub layers: Vec<String>,
    pub minzoom: u8,
    pub maxzoom: u8,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct ArchiveReport {
    pub tiles: usize,
    /// Tiles with nothing in them (left out of the archive).
    pub empty: usize,
    pub bytes: u64,
    pub per_zoom: Vec<(u8, usize)>,
    /// Features the size budget left out, summed over the tiles.
    pub dropped: usize,
}

/// Answers `path` as the router answers an anonymous client on loopback.
pub async fn get_anonymous(state: &Arc<AppState>, path: &str) -> Result<Vec<u8>, PublishError> {
    use tower::ServiceExt;
    let request = Request::get(path)
        .header(header::HOST, "localhost")
        .extension(ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 0))))
        .body(Body::empty())
        .map_err(|e| PublishError::Plan(format!("{path}: {e}")))?;
    let response = crate::router(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    if !status.is_success() {
        return Err(PublishError::Fetch {
            what: path.to_string(),
            status,
        });
    }
    let body = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(|e| PublishError::Plan(format!("{path}: {e}")))?;
    Ok(body.to_vec())
}

async fn get_json(state: &Arc<AppState>, path: &str) -> Result<Value, PublishError> {
    let body = get_anonymous(state, path).await?;
    serde_json::from_slice(&body).map_err(|e| PublishError::Plan(format!("{path}: {e}")))
}

impl ArchivePlan {
    /// The composite source of a served style (`/tiles/a,b,c/{z}/{x}/{y}.mvt`),
    /// its zoom range narrowed to `zooms` when given.
    pub fn of_style(style: &Value, zooms: ZoomRange) -> Result<ArchivePlan, PublishError> {
        let sources = style.get("sources").and_then(Value::as_object);
        let (source, layers) = (sources.into_iter().flatten())
            .find_map(|(_, s)| {
                let url = s.get("tiles")?.get(0)?.as_str()?;
                let (_, rest) = url.split_once("/tiles/")?;
                let (list, _) = rest.split_once('/')?;
                Some((s, list.split(',').map(String::from).collect::<Vec<_>>()))
            })
            .ok_or_else(|| {
                PublishError::Plan("the public style has no chizu tile source".into())
            })?;
        let zoom = |key: &str, default: u8| {
            (source.get(key).and_then(Value::as_u64)).map_or(default, |z| z.min(22) as u8)
        };
        let (min, max) = (
            zooms.min.unwrap_or(zoom("minzoom", 0)),
            zooms.max.unwrap_or(zoom("maxzoom", 16)),
        );
        if min > max || max > 22 {
            return Err(PublishError::Plan(format!(
                "zooms {min}-{max}: the minimum must not exceed the maximum (at most 22)"
            )));
        }
        Ok(ArchivePlan {
            layers,
            minzoom: min,
            maxzoom: max,
        })
    }
}

/// The public style as an anonymous client gets it.
pub async fn public_style(state: &Arc<AppState>) -> Result<Value, PublishError> {
    get_json(state, "/styles/public.json").await
}

type Selected = Vec<(Arc<dyn LayerSource>, LayerView)>;

/// The plan's layers with the anonymous view, and the tiles of each zoom
/// that meet a layer's bounds (as that view sees them).
async fn tiles_to_render(
    state: &Arc<AppState>,
    plan: &ArchivePlan,
) -> Result<(Selected, Vec<Vec<TileCoord>>), PublishError> {
    let (layers, view) = state.layers_and_view(&Caller::anonymous());
    let mut selected = Selected::new();
    let mut boxes: Vec<(Bounds, u8, u8)> = Vec::new();
    for id in &plan.layers {
        let (Some(source), Some(layer_view)) = (layers.get(id), view.layer(id)) else {
            return Err(PublishError::Plan(format!("`{id}` is not a public layer")));
        };
        let (_, bounds) = (state.summary(source, layer_view).await)
            .map_err(|e| PublishError::Plan(format!("{id}: {}", e.detail)))?;
        let zoom = source.meta().config.zoom;
        if let Some(b) = bounds {
            boxes.push((b, zoom.min, zoom.max));
        }
        selected.push((source.clone(), layer_view.clone()));
    }
    let mut per_zoom = Vec::new();
    let mut total = 0;
    for z in plan.minzoom..=plan.maxzoom {
        let mut coords = BTreeSet::new();
        for (b, min, max) in &boxes {
            if z < *min || z > *max {
                continue;
            }
            let m = chizu_store::mercator_box(b);
            let (a, c) = (
                TileCoord::containing(z, m.min_x, m.max_y),
                TileCoord::containing(z, m.max_x, m.min_y),
            );
            for x in a.x()..=c.x() {
                for y in a.y()..=c.y() {
                    coords.insert((x, y));
                }
            }
            total += coords.len();
            if total > MAX_TILES {
                return Err(PublishError::Plan(format!(
                    "more than {MAX_TILES} tiles up to z{z}: choose a lower --maxzoom"
                )));
            }
        }
        let mut coords: Vec<TileCoord> = (coords.into_iter())
            .filter_map(|(x, y)| TileCoord::new(z as u32, x, y).ok())
            .collect();
        // The archive's order (Hilbert curve within a zoom): clustered.
        coords.sort_by_key(|c| tile_id(*c));
        per_zoom.push(coords);
    }
    Ok((selected, per_zoom))
}

fn tile_id(c: TileCoord) -> u64 {
    pmtiles::TileCoord::new(c.z(), c.x(), c.y())
        .map(|t| pmtiles::TileId::from(t).value())
        .unwrap_or(u64::MAX)
}

/// Renders the plan's tiles (all cores, in order) and writes them, gzipped,
/// as a PMTiles v3 archive at `out`, with `metadata` (TileJSON-like).
pub async fn write_pmtiles(
    state: &Arc<AppState>,
    plan: &ArchivePlan,
    metadata: &Value,
    out: &Path,
) -> Result<ArchiveReport, PublishError> {
    let (selected, per_zoom) = tiles_to_render(state, plan).await?;
    let bounds = lonlat_bounds(metadata);
    let file = std::fs::File::create(out).map_err(io(out))?;
    let mut writer = pmtiles::PmTilesWriter::new(pmtiles::TileType::Mvt)
        .precompressed(pmtiles::Compression::Gzip)
        .min_zoom(plan.minzoom)
        .max_zoom(plan.maxzoom)
        .bounds(bounds[0], bounds[1], bounds[2], bounds[3])
        .center((bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0)
        .center_zoom(plan.minzoom.max(plan.maxzoom.saturating_sub(2)))
        .metadata(metadata.to_string())
        .create(std::io::BufWriter::new(file))?;
    let selected = Arc::new(selected);
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    let mut report = ArchiveReport::default();
    for coords in per_zoom {
        let Some(z) = coords.first().map(|c| c.z()) else {
            continue;
        };
        let mut written = 0;
        let mut rendered = futures::stream::iter(coords)
            .map(|coord| {
                let selected = selected.clone();
                crate::work::background(move || render_gzipped(coord, &selected))
            })
            .buffered(parallel);
        while let Some(result) = rendered.next().await {
            let (coord, gzipped, dropped) =
                result.map_err(|e| PublishError::Plan(format!("rendering: {e}")))??;
            report.dropped += dropped;
            match gzipped {
                Some(bytes) => {
                    let at = pmtiles::TileCoord::new(coord.z(), coord.x(), coord.y())?;
                    writer.add_tile(at, &bytes)?;
                    report.tiles += 1;
                    report.bytes += bytes.len() as u64;
                    written += 1;
                }
                None => report.empty += 1,
            }
        }
        report.per_zoom.push((z, written));
    }
    writer.finalize()?;
    Ok(report)
}

type Rendered = (TileCoord, Option<Vec<u8>>, usize);

/// One tile as the tile route renders it, gzipped for the archive (at the
/// default level: written once, read by everyone).
fn render_gzipped(coord: TileCoord, selected: &Selected) -> Result<Rendered, PublishError> {
    let tile = crate::tiles::render(coord, selected, false, chizu_tiles::Threads::One)
        .map_err(|source| PublishError::Render { coord, source })?;
    let g = tile.generalised;
    let dropped = g.dropped_small + g.dropped_for_budget;
    if tile.raw.is_empty() {
        return Ok((coord, None, dropped));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&tile.raw);
    Ok((coord, Some(gz.finish().unwrap_or_default()), dropped))
}

fn lonlat_bounds(metadata: &Value) -> [f64; 4] {
    let b = metadata.get("bounds").and_then(Value::as_array);
    let v: Vec<f64> = (b.into_iter().flatten())
        .filter_map(Value::as_f64)
        .collect();
    match v[..] {
        [a, b, c, d] => [a, b, c, d],
        _ => [-180.0, -85.051_128_779_806_59, 180.0, 85.051_128_779_806_59],
    }
}

/// The archive's metadata: TileJSON fields of the composite source (its
/// layers with their public fields, zooms, bounds, attribution).
pub fn archive_metadata(plan: &ArchivePlan, catalog: &Value) -> Result<Value, PublishError> {
    let entries = catalog.get("layers").and_then(Value::as_array);
    let of = |id: &str| (entries.into_iter().flatten()).find(|l| l["id"] == id);
    let mut bounds = Bounds::EMPTY;
    let mut vector_layers = Vec::new();
    let mut attribution = Vec::new();
    for id in &plan.layers {
        let layer =
            of(id).ok_or_else(|| PublishError::Plan(format!("`{id}` is not in the catalog")))?;
        if let Some([a, b, c, d]) = layer["bounds"].as_array().and_then(|b| {
            let v: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
            <[f64; 4]>::try_from(v).ok()
        }) {
            bounds.expand(&Bounds {
                min_x: a,
                min_y: b,
                max_x: c,
                max_y: d,
            });
        }
        if let Some(a) = layer["attribution"].as_str()
            && !attribution.contains(&a)
        {
            attribution.push(a);
        }
        let fields: serde_json::Map<String, Value> =
            (layer["fields"].as_array().into_iter().flatten())
                .filter_map(|f| Some((f["name"].as_str()?.to_string(), f["type"].clone())))
                .collect();
        vector_layers.push(json!({
            "id": id, "fields": fields,
            "minzoom": layer["minzoom"], "maxzoom": layer["maxzoom"],
            "description": layer["title"]["en"].as_str().or(layer["title"]["ja"].as_str()),
        }));
    }
    let bounds = if bounds.is_empty() {
        vec![-180.0, -85.051_128_779_806_59, 180.0, 85.051_128_779_806_59]
    } else {
        vec![bounds.min_x, bounds.min_y, bounds.max_x, bounds.max_y]
    };
    Ok(json!({
        "name": "chizu public map",
        "format": "pbf",
        "type": "overlay",
        "generator": format!("chizu {}", env!("CARGO_PKG_VERSION")),
        "attribution": attribution.join(" | "),
        "minzoom": plan.minzoom,
        "maxzoom": plan.maxzoom,
        "bounds": bounds,
        "vector_layers": vector_layers,
    }))
}

/// `chizu pmtiles`: the public archive alone; `layers`, when given, instead
/// of the style's (each must be public).
pub async fn pmtiles(
    state: &Arc<AppState>,
    out: &Path,
    zooms: ZoomRange,
    layers: Option<Vec<String>>,
) -> Result<(ArchivePlan, ArchiveReport), PublishError> {
    let style = public_style(state).await?;
    let mut plan = ArchivePlan::of_style(&style, zooms)?;
    if let Some(layers) = layers {
        plan.layers = layers;
    }
    let catalog = get_json(state, "/catalog").await?;
    let metadata = archive_metadata(&plan, &catalog)?;
    let report = write_pmtiles(state, &plan, &metadata, out).await?;
    Ok((plan, report))
}

/// What `chizu publish-site` wrote.
#[derive(Debug, Clone)]
pub struct SiteReport {
    pub plan: ArchivePlan,
    pub archive: ArchiveReport,
    pub glyph_ranges: usize,
    pub files: usize,
}

/// `chizu publish-site`: the public viewer, its style (reading the archive
/// through MapLibre's `pmtiles://` protocol), the catalog, the glyph ranges
/// the labels use and the archive, in `out` (which must be new or empty), to
/// be served as plain files.
pub async fn site(
    state: &Arc<AppState>,
    viewer: &Path,
    out: &Path,
    zooms: ZoomRange,
) -> Result<SiteReport, PublishError> {
    let occupied = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        return Err(PublishError::Plan(format!(
            "{} is not empty: publish-site writes a new site",
            out.display()
        )));
    }
    let mut files = copy_viewer(viewer, out)?;
    let style = public_style(state).await?;
    let plan = ArchivePlan::of_style(&style, zooms)?;
    let catalog = get_json(state, "/catalog").await?;
    let metadata = archive_metadata(&plan, &catalog)?;
    let archive = write_pmtiles(state, &plan, &metadata, &out.join(ARCHIVE_NAME)).await?;
    let glyph_ranges = write_glyphs(state, &style, &plan, out).await?;
    write_file(
        &out.join("styles/public.json"),
        &static_style(style)?.to_string(),
    )?;
    write_file(&out.join("catalog.json"), &catalog.to_string())?;
    files += 3 + glyph_ranges;
    Ok(SiteReport {
        plan,
        archive,
        glyph_ranges,
        files,
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), PublishError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// The public page (told where its archive is) and the assets it loads;
/// not the staff page, nor its script.
fn copy_viewer(viewer: &Path, out: &Path) -> Result<usize, PublishError> {
    let page = viewer.join("index.html");
    let html = std::fs::read_to_string(&page).map_err(io(&page))?;
    let marker = "<meta charset=\"utf-8\">";
    if !html.contains(marker) {
        return Err(PublishError::Plan(format!(
            "{}: not the chizu viewer",
            page.display()
        )));
    }
    let tag = format!("{marker}\n  <meta name=\"chizu-archive\" content=\"{ARCHIVE_NAME}\">");
    // Paths relative to the page, so the site works under any prefix.
    let html = html
        .replacen(marker, &tag, 1)
        .replace("\"/assets/", "\"assets/");
    write_file(&out.join("index.html"), &html)?;
    let mut files = 1;
    let mut dirs = vec![PathBuf::from("assets")];
    while let Some(dir) = dirs.pop() {
        let from = viewer.join(&dir);
        for entry in std::fs::read_dir(&from).map_err(io(&from))? {
            let entry = entry.map_err(io(&from))?;
            let name = PathBuf::from(entry.file_name());
            let rel = dir.join(&name);
            if entry.path().is_dir() {
                dirs.push(rel);
                continue;
            }
            if name.to_string_lossy().starts_with("staff.") {
                continue;
            }
            let to = out.join(&rel);
            std::fs::create_dir_all(to.parent().unwrap_or(out)).map_err(io(&to))?;
            std::fs::copy(entry.path(), &to).map_err(io(&to))?;
            files += 1;
        }
    }
    Ok(files)
}

/// The served style, reading its tiles from the archive and its glyphs from
/// files beside the page (the page makes both addresses absolute).
fn static_style(mut style: Value) -> Result<Value, PublishError> {
    let sources = (style.get_mut("sources").and_then(Value::as_object_mut))
        .ok_or_else(|| PublishError::Plan("the public style has no sources".into()))?;
    for source in sources.values_mut() {
        let chizu = (source
            .get("tiles")
            .and_then(|t| t.get(0))
            .and_then(Value::as_str))
        .is_some_and(|url| url.contains("/tiles/"));
        if chizu {
            let attribution = source.get("attribution").cloned();
            *source = json!({"type": "vector", "url": format!("pmtiles://{ARCHIVE_NAME}")});
            if let Some(a) = attribution {
                source["attribution"] = a;
            }
        }
    }
    style["glyphs"] = json!("fonts/{fontstack}/{range}.pbf");
    Ok(style)
}

/// Every glyph range the labels can need: the characters of the public
/// text fields of the archive's layers (and ASCII), in each font stack the
/// style names.
async fn write_glyphs(
    state: &Arc<AppState>,
    style: &Value,
    plan: &ArchivePlan,
    out: &Path,
) -> Result<usize, PublishError> {
    let stacks: BTreeSet<String> = (style["layers"].as_array().into_iter().flatten())
        .filter_map(|l| l["layout"]["text-font"].as_array())
        .map(|fonts| {
            (fonts.iter().filter_map(Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let ranges = text_ranges(state, plan).await?;
    let mut written = 0;
    for stack in &stacks {
        for start in &ranges {
            let range = format!("{start}-{}", start + 255);
            let path = format!("/fonts/{}/{range}.pbf", percent(stack));
            let body = get_anonymous(state, &path).await?;
            write_file_bytes(
                &out.join("fonts").join(stack).join(format!("{range}.pbf")),
                &body,
            )?;
            written += 1;
        }
    }
    Ok(written)
}

fn write_file_bytes(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, bytes).map_err(io(path))
}

fn percent(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The first code points of the 256-wide ranges that hold a character of a
/// public text value of the plan's layers, or of printable ASCII.
async fn text_ranges(
    state: &Arc<AppState>,
    plan: &ArchivePlan,
) -> Result<BTreeSet<u32>, PublishError> {
    let (layers, view) = state.layers_and_view(&Caller::anonymous());
    let mut selected = Vec::new();
    for id in &plan.layers {
        if let (Some(source), Some(v)) = (layers.get(id), view.layer(id)) {
            selected.push((source.clone(), v.clone()));
        }
    }
    crate::work::background(move || {
        let mut ranges = BTreeSet::from([0u32]);
        for (source, view) in &selected {
            let push = crate::selection::view_pushdown(&source.meta().config, view);
            source
                .scan(None, &push, &mut |f| {
                    if view.admits(&f.properties) {
                        for i in &view.fields {
                            if let Some(text) = f.properties[*i].as_text() {
                                ranges.extend(text.chars().map(|c| (c as u32).min(0xffff) & !0xff));
                            }
                        }
                    }
                    true
                })
                .map_err(|e| PublishError::Plan(format!("{}: {e}", source.meta().config.id)))?;
        }
        Ok(ranges)
    })
    .await
    .map_err(|e| PublishError::Plan(format!("reading label texts: {e}")))?
}
