//! `chizu`: the command line. Thin wiring over the library crates.

use anyhow::{Context, Result, bail};
use futures::StreamExt;

/// jemalloc, not glibc's malloc: tiles are built on the blocking pool and
/// their buffers freed on the runtime's threads, and glibc's arenas then
/// contend for their locks. Measured on the bench city's uncached composite
/// tiles: a fifth of the time went to futex waits inside malloc and another
/// tenth to malloc itself; with jemalloc the composite lists serve 1.8-2.2x
/// the tiles per second. (mimalloc was as fast but kept 1 GB under load.)
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// While the server loads its layers, freed pages go back to the system at
/// once (the rows and scratch of one layer do not stay resident while the
/// next loads: the peak on the bench city is 124 MB instead of 131-141);
/// from then on within a second, by a background thread
/// ([`settle_allocator`]): at once would cost two thirds of the uncached
/// tile throughput, jemalloc's default of ten seconds would leave a burst
/// of large tiles resident.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0\0";

/// Freed pages decay over a second from now on (see [`malloc_conf`]).
fn settle_allocator() {
    const DECAY_MS: isize = 1000;
    // SAFETY: the names are jemalloc's documented controls, NUL-terminated,
    // and take an ssize_t; a failure leaves the decay as it was.
    unsafe {
        let arenas: u32 = tikv_jemalloc_ctl::raw::read(b"arenas.narenas\0").unwrap_or(0);
        for i in 0..arenas {
            let name = format!("arena.{i}.dirty_decay_ms\0");
            let _ = tikv_jemalloc_ctl::raw::write(name.as_bytes(), DECAY_MS);
        }
        let _ = tikv_jemalloc_ctl::raw::write(b"arenas.dirty_decay_ms\0", DECAY_MS);
    }
}

mod admin;

use chizu_access::AuthDb;
use chizu_core::{LayerConfig, RoleSet};
use chizu_io::ReadOptions;
use chizu_server::{AppState, ServerConfig};
use chizu_store::{Store, StoreLocation};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "chizu",
    version,
    about = "chizu (地図): a city's integrated GIS server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the synthetic Kashima sample city (deterministic).
    Samples {
        /// Where to write the files.
        #[arg(long, default_value = "data-samples")]
        out: PathBuf,
        /// The real city outline the town is laid out in.
        #[arg(long, default_value = "data-samples/kashima_outline.geojson")]
        outline: PathBuf,
        /// 1 gives ~20,000 parcels; 10 gives ~200,000 (for benchmarks).
        #[arg(long, default_value_t = 1)]
        scale: u32,
    },
    /// Read layers from their source files into the store (atomically, per layer).
    Ingest {
        /// Layer files directory (holds `roles.toml` and one `<id>.toml` per layer).
        #[arg(long, default_value = "layers")]
        layers: PathBuf,
        /// Ingest only this layer (repeatable).
        #[arg(long = "layer")]
        only: Vec<String>,
        /// Ingest every layer in the directory.
        #[arg(long)]
        all: bool,
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
        store: StoreLocation,
        /// Shapefile text encoding when neither the file nor the layer file says (e.g. CP932).
        #[arg(long)]
        encoding: Option<String>,
        /// Read, check and report (with the changes against the stored
        /// version, for layers with a `key`), but store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply changed layer files (access, titles, zooms, tiling) to ingested layers
    /// without re-reading their sources; running servers pick the change up.
    Policy {
        #[arg(long, default_value = "layers")]
        layers: PathBuf,
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
        store: StoreLocation,
    },
    /// Serve tiles, TileJSON and the catalog from a store.
    Serve {
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
        store: StoreLocation,
        #[arg(long, env = "CHIZU_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// The URL clients use to reach this server (for links), if behind a proxy.
        #[arg(long, env = "CHIZU_PUBLIC_URL")]
        public_url: Option<String>,
        /// Mark session cookies Secure (set this when clients reach chizu over HTTPS).
        #[arg(long, env = "CHIZU_SECURE_COOKIES")]
        secure_cookies: bool,
        #[command(flatten)]
        web: WebArgs,
    },
    /// Manage users (passwords are read from standard input).
    User {
        #[command(subcommand)]
        command: admin::UserCommand,
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg", global = true)]
        store: StoreLocation,
        /// Layer files directory; its roles.toml lists the roles users may have.
        #[arg(long, default_value = "layers", global = true)]
        layers: PathBuf,
    },
    /// Manage API tokens for scripts (`Authorization: Bearer ...`).
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg", global = true)]
        store: StoreLocation,
    },
    /// Print the audit log of personal-data reads.
    Audit {
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
        store: StoreLocation,
        /// Only this user's reads.
        #[arg(long)]
        user: Option<String>,
        /// Only reads since a date (YYYY-MM-DD, UTC) or a span ago (e.g. 7d, 12h).
        #[arg(long)]
        since: Option<String>,
    },
    /// Write a store holding only what the given roles may see (layers, fields, rows),
    /// for the internet-facing server.
    Publish {
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
        store: StoreLocation,
        /// The roles of the audience (`public` is always included).
        #[arg(long = "role", default_value = "public")]
        roles: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the public map's tiles as one PMTiles v3 archive: what the server
    /// answers anonymous callers (the public style's layers and zooms), for
    /// static hosting. Drafts, staff layers and hidden fields never enter it.
    Pmtiles {
        /// The audience: only `public` (an archive's files are readable by
        /// anyone who has their address).
        #[arg(long = "role", default_value = "public")]
        roles: Vec<String>,
        /// The layers of each tile, in order (default: the public style's
        /// tile source); each must be public.
        #[arg(long, value_delimiter = ',')]
        layers: Option<Vec<String>>,
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Write the public map as a static site (viewer, style, glyphs, catalog
    /// and PMTiles archive) for any static host or CDN.
    PublishSite {
        #[command(flatten)]
        archive: ArchiveArgs,
    },
    /// Export a layer (all of it, or an area, filtered) for QGIS, CAD or Excel.
    Export {
        #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
        store: StoreLocation,
        #[arg(long)]
        layer: String,
        /// gpkg, fgb, geojson, csv or shp (a zip)
        #[arg(long)]
        format: String,
        /// Output CRS, e.g. EPSG:6670 (Kashima's plane rectangular zone II).
        #[arg(long, default_value = "EPSG:4326")]
        crs: String,
        /// minlon,minlat,maxlon,maxlat
        #[arg(long)]
        bbox: Option<String>,
        /// A CQL2-text filter, e.g. "chimoku = '宅地'".
        #[arg(long)]
        filter: Option<String>,
        /// cp932 or utf-8 (shapefile and CSV text)
        #[arg(long)]
        encoding: Option<String>,
        /// Export what these roles see (default: the whole layer).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate the samples if missing, ingest them once, and serve on 127.0.0.1:8080.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        #[arg(long, default_value = "chizu-demo.gpkg")]
        store: StoreLocation,
        #[command(flatten)]
        web: WebArgs,
    },
}

/// What the public archive and the static site are made from and where they go.
#[derive(clap::Args)]
struct ArchiveArgs {
    #[arg(long, env = "CHIZU_STORE", default_value = "chizu.gpkg")]
    store: StoreLocation,
    /// The archive file (`pmtiles`) or a new or empty directory (`publish-site`).
    #[arg(long)]
    out: PathBuf,
    /// Zoom range (default: the public style's tile source).
    #[arg(long)]
    minzoom: Option<u8>,
    #[arg(long)]
    maxzoom: Option<u8>,
    #[command(flatten)]
    web: WebArgs,
}

impl ArchiveArgs {
    fn zooms(&self) -> chizu_server::publish::ZoomRange {
        chizu_server::publish::ZoomRange {
            min: self.minzoom,
            max: self.maxzoom,
        }
    }
}

/// What the web maps need: the built viewer, style templates, label fonts
/// and an optional background.
#[derive(clap::Args)]
struct WebArgs {
    /// The built web viewer (`npm --prefix viewer run build`); pages are off when missing.
    #[arg(long, env = "CHIZU_VIEWER", default_value = "viewer/dist")]
    viewer: PathBuf,
    /// MapLibre style templates.
    #[arg(long, env = "CHIZU_STYLES", default_value = "styles")]
    styles: PathBuf,
    /// Font files or directories for map labels (comma-separated). Default:
    /// Debian's Noto Sans CJK (fonts-noto-cjk).
    #[arg(long, env = "CHIZU_FONTS", value_delimiter = ',')]
    fonts: Vec<PathBuf>,
    /// Raster tiles under the city's layers, e.g.
    /// https://cyberjapandata.gsi.go.jp/xyz/pale/{z}/{x}/{y}.png (off by default).
    /// Repeat it, as `NAME=URL`, to let people choose (淡色地図=.../pale/...,
    /// 写真=.../seamlessphoto/...): the first is shown at first.
    #[arg(long, env = "CHIZU_BACKGROUND_TILES", value_delimiter = ' ')]
    background_tiles: Vec<String>,
    /// Attribution shown for the background tiles.
    #[arg(
        long,
        env = "CHIZU_BACKGROUND_ATTRIBUTION",
        default_value = "地理院タイル (GSI Tiles)"
    )]
    background_attribution: String,
    /// Reverse proxies (addresses or networks, comma-separated) whose
    /// X-Forwarded-For names the client; from anyone else it is ignored.
    #[arg(long, env = "CHIZU_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxy: Vec<chizu_server::IpNet>,
    /// Origins allowed to call the API from other web sites (CORS); none by default.
    #[arg(long, env = "CHIZU_CORS_ORIGINS", value_delimiter = ',')]
    cors_origin: Vec<String>,
    /// Origins whose pages may embed the maps in a frame, e.g. the city's
    /// web site https://www.city.kashima.saga.jp (comma-separated); none by default.
    #[arg(long, env = "CHIZU_FRAME_ANCESTORS", value_delimiter = ',')]
    frame_ancestor: Vec<String>,
    /// Seconds of work one query (filter, point query, search) may take.
    #[arg(long, env = "CHIZU_QUERY_BUDGET", default_value_t = 5.0)]
    query_budget: f64,
    /// Requests in flight from one client address.
    #[arg(long, env = "CHIZU_PER_CLIENT", default_value_t = 64)]
    per_client: usize,
    /// Seconds between checks for new layer versions. With a PostgreSQL
    /// store, changes are also pushed (LISTEN/NOTIFY) as they commit.
    #[arg(long, env = "CHIZU_RELOAD_INTERVAL", default_value_t = 2.0)]
    reload_interval: f64,
    /// Serve every layer from `memory` or from the `database` (PostgreSQL
    /// stores), whatever the layer files' `serve` says.
    #[arg(long, env = "CHIZU_SERVE_LAYERS", value_parser = parse_serve_mode)]
    serve_layers: Option<chizu_core::ServeMode>,
    /// Memory for cached tiles, in MiB (0: every tile is rendered anew, as
    /// benchmarks of rendering need).
    #[arg(long, env = "CHIZU_TILE_CACHE_MB", default_value_t = 256)]
    tile_cache_mb: u64,
}

fn parse_serve_mode(s: &str) -> Result<chizu_core::ServeMode, String> {
    match s {
        "memory" => Ok(chizu_core::ServeMode::Memory),
        "database" => Ok(chizu_core::ServeMode::Database),
        "auto" => Ok(chizu_core::ServeMode::Auto),
        _ => Err("memory, database or auto".into()),
    }
}

/// Whether an origin would not make a valid header value.
fn axum_origin_invalid(origin: &str) -> bool {
    origin.chars().any(|c| c.is_whitespace() || c.is_control())
}

const DEFAULT_FONTS: [&str; 2] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
];

impl WebArgs {
    fn apply(&self, config: ServerConfig) -> Result<ServerConfig> {
        let fonts = if self.fonts.is_empty() {
            let present: Vec<PathBuf> = DEFAULT_FONTS
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect();
            if present.is_empty() {
                tracing::warn!(
                    "no label fonts: install fonts-noto-cjk or pass --fonts; maps will show no labels"
                );
            }
            present
        } else {
            self.fonts.clone()
        };
        let fonts = chizu_tiles::glyphs::FontLibrary::load(&fonts)?;
        tracing::info!(fonts = ?fonts, "label fonts loaded");
        let viewer_dir = if self.viewer.join("index.html").exists() {
            Some(self.viewer.clone())
        } else {
            tracing::warn!(
                "no web viewer at {}: build it with `npm --prefix viewer ci && npm --prefix viewer run build`",
                self.viewer.display()
            );
            None
        };
        let background: Vec<chizu_server::Background> = (self.background_tiles.iter())
            .filter(|value| !value.is_empty())
            .enumerate()
            .map(|(i, value)| {
                // NAME=URL, or a URL alone (its name is then its position).
                let (name, url) = match value.split_once('=') {
                    Some((name, url)) if !name.contains('/') => (name.to_string(), url.to_string()),
                    _ => (format!("背景地図 {}", i + 1), value.clone()),
                };
                chizu_server::Background {
                    name,
                    url,
                    attribution: self.background_attribution.clone(),
                }
            })
            .collect();
        for bg in &background {
            let url = &bg.url;
            if !(url.contains("{z}") && url.contains("{x}") && url.contains("{y}")) {
                anyhow::bail!("--background-tiles needs {{z}}, {{x}} and {{y}} in the URL: {url}");
            }
            if bg.origin().is_none() {
                anyhow::bail!(
                    "--background-tiles must be an http(s) URL with a plain host name: {url}"
                );
            }
        }
        for origin in &self.cors_origin {
            let valid = origin.starts_with("http://") || origin.starts_with("https://");
            if !valid || origin.ends_with('/') || axum_origin_invalid(origin) {
                anyhow::bail!(
                    "--cors-origin takes origins such as https://www.city.example.jp: {origin}"
                );
            }
        }
        for origin in &self.frame_ancestor {
            if chizu_server::plain_origin(origin).as_deref() != Some(origin.as_str()) {
                anyhow::bail!(
                    "--frame-ancestor takes origins such as https://www.city.example.jp: {origin}"
                );
            }
        }
        if !(self.query_budget > 0.0 && self.query_budget <= 600.0) {
            anyhow::bail!("--query-budget is seconds between 0 and 600");
        }
        if !(self.reload_interval >= 0.1 && self.reload_interval <= 86_400.0) {
            anyhow::bail!("--reload-interval is seconds between 0.1 and 86400");
        }
        let limits = chizu_server::RequestLimits {
            trusted_proxies: self.trusted_proxy.clone(),
            cors_origins: self.cors_origin.clone(),
            query_budget: std::time::Duration::from_secs_f64(self.query_budget),
            per_client: self.per_client.max(1),
            ..config.limits.clone()
        };
        Ok(ServerConfig {
            viewer_dir,
            styles_dir: self.styles.clone(),
            fonts: Arc::new(fonts),
            background,
            limits,
            reload_interval: std::time::Duration::from_secs_f64(self.reload_interval),
            serve_mode: self.serve_layers,
            tile_cache_bytes: self.tile_cache_mb.saturating_mul(1 << 20),
            frame_ancestors: self.frame_ancestor.clone(),
            ..config
        })
    }
}

/// Large allocations straight from the kernel and straight back.
///
/// glibc raises its mmap threshold each time a large block is freed, after
/// which blocks of that size come from the per-thread arenas and stay there:
/// every argon2id check (19 MiB, over-aligned) then left 17-19 MiB behind,
/// and RSS grew by 360 MB over 25 logins. A fixed threshold of 1 MiB keeps
/// such blocks (password checks, big tiles, exports, index builds) mapped
/// only while they are used; smaller allocations are not affected.
fn return_large_blocks_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

fn main() -> std::process::ExitCode {
    return_large_blocks_to_the_kernel();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, never a backtrace: it names the file, feature and field.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        settle_allocator();
    }
    match cli.command {
        Command::Samples {
            out,
            outline,
            scale,
        } => {
            let counts =
                tokio::task::spawn_blocking(move || chizu_samples::generate(&outline, &out, scale))
                    .await??;
            println!(
                "wrote {} parcels, {} roads, {} zoning areas, {} pipes, {} hazard areas",
                counts.parcels, counts.roads, counts.zoning, counts.water_pipes, counts.hazard
            );
            Ok(())
        }
        Command::Ingest {
            layers,
            only,
            all,
            store,
            encoding,
            dry_run,
        } => {
            if only.is_empty() && !all {
                bail!("name layers with --layer ID, or pass --all");
            }
            let configs = load_layers(&layers)?;
            let selected: Vec<LayerConfig> = if all {
                configs
            } else {
                let mut out = Vec::new();
                for id in &only {
                    match configs.iter().find(|c| &c.id == id) {
                        Some(c) => out.push(c.clone()),
                        None => bail!("no layer `{id}` in {}", layers.display()),
                    }
                }
                out
            };
            let store = store.open(true).await?;
            let options = ReadOptions {
                fallback_encoding: encoding,
            };
            // Layers are read, validated and reprojected side by side (one a
            // core), while one at a time writes: a store has one writer, and
            // each layer's rows go in as one transaction. Unordered: while a
            // big layer is read, the small ones after it are read and written
            // (the bench city: 0.9 s instead of 1.0).
            let writer = tokio::sync::Mutex::new(());
            let progress = indicatif::MultiProgress::new();
            let side_by_side = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            let results: Vec<Result<()>> = futures::stream::iter(&selected)
                .map(|config| {
                    let bar = progress.add(indicatif::ProgressBar::new_spinner());
                    ingest_one(&*store, config, &options, dry_run, (&writer, bar))
                })
                .buffer_unordered(side_by_side)
                .collect()
                .await;
            let mut failed = 0;
            for e in results.into_iter().filter_map(Result::err) {
                eprintln!("error: {e:#}");
                failed += 1;
            }
            store.close().await;
            if failed > 0 {
                bail!(
                    "{failed} of {} layers failed; their previous versions are still served",
                    selected.len()
                );
            }
            Ok(())
        }
        Command::Serve {
            store,
            bind,
            public_url,
            secure_cookies,
            web,
        } => {
            let config = web.apply(ServerConfig {
                public_url,
                secure_cookies,
                ..ServerConfig::default()
            })?;
            serve(store, bind, config, None).await
        }
        Command::Policy { layers, store } => {
            let configs = load_layers(&layers)?;
            let store = store.open(false).await?;
            let present = store.versions().await?;
            for config in configs.iter().filter(|c| present.contains_key(&c.id)) {
                let version = store.update_config(config).await?;
                println!("{}: policy applied as version {version}", config.id);
            }
            Ok(())
        }
        Command::User {
            command,
            store,
            layers,
        } => admin::user(command, &store, &layers).await,
        Command::Token { command, store } => admin::token(command, &store).await,
        Command::Audit { store, user, since } => admin::audit(&store, user, since).await,
        Command::Publish { store, roles, out } => admin::publish(&store, roles, &out).await,
        Command::Pmtiles {
            roles,
            layers,
            archive,
        } => {
            if roles.iter().any(|r| r != chizu_core::config::PUBLIC_ROLE) {
                anyhow::bail!(
                    "an archive is for the public only (--role public): its files are \
                     readable by anyone who has their address"
                );
            }
            let zooms = archive.zooms();
            let state = offline_state(archive.store, archive.web).await?;
            admin::pmtiles(&state, &archive.out, zooms, layers).await
        }
        Command::PublishSite { archive } => {
            let (viewer, zooms) = (archive.web.viewer.clone(), archive.zooms());
            let state = offline_state(archive.store, archive.web).await?;
            admin::publish_site(&state, &viewer, &archive.out, zooms).await
        }
        Command::Export {
            store,
            layer,
            format,
            crs,
            bbox,
            filter,
            encoding,
            roles,
            out,
        } => {
            admin::export(
                &store, &layer, &format, &crs, bbox, filter, encoding, roles, &out,
            )
            .await
        }
        Command::Demo { bind, store, web } => demo(bind, store, web).await,
    }
}

/// Reads `roles.toml` and every other `*.toml` in `dir` as a layer file.
pub(crate) fn load_roles(dir: &Path) -> Result<RoleSet> {
    let roles_path = dir.join("roles.toml");
    let roles_text = std::fs::read_to_string(&roles_path)
        .with_context(|| format!("{}: cannot read the role list", roles_path.display()))?;
    Ok(RoleSet::from_toml(&roles_path, &roles_text)?)
}

fn load_layers(dir: &Path) -> Result<Vec<LayerConfig>> {
    let roles_path = dir.join("roles.toml");
    let roles_text = std::fs::read_to_string(&roles_path)
        .with_context(|| format!("{}: cannot read the role list", roles_path.display()))?;
    let roles = RoleSet::from_toml(&roles_path, &roles_text)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read the layers directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name().is_some_and(|n| n != "roles.toml")
        })
        .collect();
    files.sort();
    let mut configs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
        configs.push(LayerConfig::from_toml(&file, &text, &roles)?);
    }
    Ok(configs)
}

async fn ingest_one(
    store: &dyn Store,
    config: &LayerConfig,
    options: &ReadOptions,
    dry_run: bool,
    (writer, bar): (&tokio::sync::Mutex<()>, indicatif::ProgressBar),
) -> Result<()> {
    let started = std::time::Instant::now();
    let bar = bar.with_message(format!("{}: reading", config.id));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} features ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let (cfg, opts, progress) = (config.clone(), options.clone(), bar.clone());
    let prepared = tokio::task::spawn_blocking(move || {
        let hash = chizu_io::source_hash(&cfg.source);
        let prepared =
            chizu_io::prepare_layer(&cfg, &opts, &mut |n| progress.set_position(n as u64));
        (hash, prepared)
    })
    .await?;
    bar.finish_and_clear();
    let (hash, prepared) = prepared;
    let prepared = prepared?;
    let hash = hash?;
    for (number, reason) in prepared.report.invalid.iter().take(10) {
        eprintln!(
            "warning: {}: feature {number}: invalid geometry: {reason} ({:?})",
            config.source.path.display(),
            config.invalid_geometry
        );
    }
    if prepared.report.invalid.len() > 10 {
        eprintln!(
            "warning: ... {} invalid geometries in all",
            prepared.report.invalid.len()
        );
    }
    for warning in &prepared.report.warnings {
        eprintln!("warning: {warning}");
    }
    let _writing = writer.lock().await;
    if let Some((previous, changes)) = changes_since(store, config, &prepared.features).await? {
        println!("{}: changes from version {previous} {changes}", config.id);
    }
    let r = &prepared.report;
    if dry_run {
        println!(
            "{}: dry run: {} features would be stored ({} read, {} invalid, {} sheets skipped); nothing was written",
            config.id,
            r.stored,
            r.read,
            r.invalid.len(),
            r.skipped_sheets
        );
        return Ok(());
    }
    let version = store
        .replace_layer(config, &prepared.features, &prepared.report, &hash)
        .await?;
    println!(
        "{}: version {version}: {} features stored ({} read, {} invalid: {} repaired, {} skipped, {} kept) in {:.1}s",
        config.id,
        r.stored,
        r.read,
        r.invalid.len(),
        r.repaired,
        r.skipped,
        r.kept_invalid,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What the prepared features change from the stored version, for a
/// layer with a `key` that has been ingested before.
async fn changes_since(
    store: &dyn Store,
    config: &LayerConfig,
    features: &[chizu_core::Feature],
) -> Result<Option<(u64, chizu_io::changes::ChangeReport)>> {
    use chizu_io::changes::Fingerprints;
    if config.key.is_empty() {
        return Ok(None);
    }
    let Some(stored) = store
        .layers()
        .await?
        .into_iter()
        .find(|l| l.config.id == config.id)
    else {
        return Ok(None);
    };
    let (sender, mut receiver) = tokio::sync::mpsc::channel(4096);
    let old_fields = stored.config.fields.clone();
    let collect = async {
        let mut old = Fingerprints::default();
        while let Some(f) = receiver.recv().await {
            old.add(&config.key, &old_fields, &config.fields, &f);
        }
        old
    };
    let (read, old) = tokio::join!(store.stream_features(&config.id, sender), collect);
    let read = read?;
    let mut new = Fingerprints::default();
    for f in features {
        new.add(&config.key, &config.fields, &config.fields, f);
    }
    Ok(Some((read.version, old.compare(new, &config.key))))
}

/// Opens the accounts that go with a store: the file beside a GeoPackage,
/// or the tables of the same PostgreSQL database.
pub(crate) async fn open_accounts(location: &StoreLocation) -> Result<AuthDb> {
    Ok(match location {
        StoreLocation::Gpkg(path) => AuthDb::open_beside(path).await?,
        StoreLocation::Postgres(url) => AuthDb::connect_postgres(url).await?,
    })
}

async fn serve(
    location: StoreLocation,
    bind: SocketAddr,
    config: ServerConfig,
    banner: Option<String>,
) -> Result<()> {
    let store = location.open(false).await?;
    let auth = open_accounts(&location).await?;
    let state = AppState::new(store, auth, config).await?;
    release_freed_memory();
    settle_allocator();
    state.spawn_reloader();
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port.
    println!("chizu listening on http://{addr}");
    if let Some(b) = banner {
        println!("{b}");
    }
    chizu_server::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Hands the memory freed while the layers loaded (rows, WKB, per-layer
/// scratch) back to the system: glibc keeps freed heap pages for reuse, so
/// without this the server's resident size stays at its loading peak.
fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The server's state without a listener, for commands that render what it
/// would serve (archives, static sites).
async fn offline_state(location: StoreLocation, web: WebArgs) -> Result<Arc<AppState>> {
    let config = web.apply(ServerConfig::default())?;
    let store = location.open(false).await?;
    let auth = open_accounts(&location).await?;
    Ok(AppState::new(store, auth, config).await?)
}

/// Ctrl-C or SIGTERM (what a service manager or an orchestrator sends):
/// the server stops accepting and finishes the requests in flight.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

async fn demo(bind: SocketAddr, location: StoreLocation, web: WebArgs) -> Result<()> {
    let config = web.apply(ServerConfig::default())?;
    let samples = Path::new("data-samples");
    if chizu_samples::FILES
        .iter()
        .any(|f| !samples.join(f).exists())
    {
        println!("generating the sample city in {} ...", samples.display());
        let counts = tokio::task::spawn_blocking(|| {
            chizu_samples::generate(
                Path::new("data-samples/kashima_outline.geojson"),
                Path::new("data-samples"),
                1,
            )
        })
        .await??;
        println!("  {counts:?}");
    }
    let store = location.open(true).await?;
    let present = store.versions().await?;
    let configs = load_layers(Path::new("layers"))?;
    let writer = tokio::sync::Mutex::new(());
    for config in configs.iter().filter(|c| !present.contains_key(&c.id)) {
        let bar = indicatif::ProgressBar::new_spinner();
        ingest_one(
            &*store,
            config,
            &ReadOptions::default(),
            false,
            (&writer, bar),
        )
        .await?;
    }
    store.close().await;
    // A staff login for the demo, with a fresh password each start.
    let auth = open_accounts(&location).await?;
    let password = admin::random_password()?;
    let demo_roles = vec![
        "staff".to_string(),
        "water".to_string(),
        "planning".to_string(),
    ];
    match auth.add_user("demo-staff", &password, &demo_roles).await {
        Err(chizu_access::AuthError::UserExists(_)) => {
            auth.set_password("demo-staff", &password).await?;
            auth.set_roles("demo-staff", &demo_roles).await?;
        }
        other => other?,
    }
    let port = bind.port();
    let banner = format!(
        "  public map: http://127.0.0.1:{port}/\n  staff map:  http://127.0.0.1:{port}/staff\n  catalog:  http://127.0.0.1:{port}/catalog\n  TileJSON: http://127.0.0.1:{port}/tiles/parcels.json\n  a tile:   http://127.0.0.1:{port}/tiles/parcels,roads,zoning,hazard,boundary/15/28225/13192.mvt\n  staff login (on the staff map, or POST /auth/login): user demo-staff, password {password}"
    );
    serve(location, bind, config, Some(banner)).await
}
