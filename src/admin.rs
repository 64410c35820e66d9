//! Administration commands: users, tokens, the audit log, publishing.

use anyhow::{Context, Result, bail};
use chizu_access::{AuditLog, AuthDb, Caller, View};
use chizu_core::time::{days_from_civil, iso_date, iso_datetime as iso_time, unix_now};
use chizu_io::IngestReport;
use chizu_server::publish::ZoomRange;
use chizu_store::{GpkgStore, LayerWrites, StoreLocation};
use clap::Subcommand;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Set a new password (read from standard input); the user's sessions end.
    Passwd { name: String },
    /// Replace a user's roles.
    Roles {
        name: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List users and their roles.
    List,
    /// Disable a user: logins, sessions and tokens stop working.
    Disable { name: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is kept.
    Create {
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. 90d, 12h, 30m.
        #[arg(long, default_value = "90d")]
        expires: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id.
    Revoke { id: i64 },
}

/// The accounts of an existing store.
async fn open_auth(location: &StoreLocation) -> Result<AuthDb> {
    if let StoreLocation::Gpkg(path) = location
        && !path.exists()
    {
        bail!(
            "{}: no such store (run `chizu ingest` first)",
            path.display()
        );
    }
    crate::open_accounts(location).await
}

fn read_password() -> Result<String> {
    eprintln!("password (at least 10 characters), then Enter:");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn random_password() -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn check_roles(layers: &Path, roles: &[String]) -> Result<()> {
    let known = crate::load_roles(layers)?;
    for role in roles {
        if !known.contains(role) {
            bail!(
                "unknown role `{role}` (known: {})",
                known.roles.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

pub async fn user(command: UserCommand, store: &StoreLocation, layers: &Path) -> Result<()> {
    let auth = open_auth(store).await?;
    match command {
        UserCommand::Add { name, roles } => {
            check_roles(layers, &roles)?;
            auth.add_user(&name, &read_password()?, &roles).await?;
            println!("user {name} added with roles {}", roles.join(", "));
        }
        UserCommand::Passwd { name } => {
            auth.set_password(&name, &read_password()?).await?;
            println!("password of {name} changed; their sessions have ended");
        }
        UserCommand::Roles { name, roles } => {
            check_roles(layers, &roles)?;
            auth.set_roles(&name, &roles).await?;
            println!("{name} now has roles {}", roles.join(", "));
        }
        UserCommand::List => {
            for u in auth.users().await? {
                println!(
                    "{}\t{}\t{}",
                    u.name,
                    u.roles.join(","),
                    if u.disabled { "disabled" } else { "active" }
                );
            }
        }
        UserCommand::Disable { name } => {
            auth.disable(&name).await?;
            println!("user {name} disabled");
        }
    }
    Ok(())
}

pub async fn token(command: TokenCommand, store: &StoreLocation) -> Result<()> {
    let auth = open_auth(store).await?;
    match command {
        TokenCommand::Create {
            user,
            expires,
            label,
        } => {
            let lifetime = parse_span(&expires)?;
            let (id, secret) = auth.create_token(&user, lifetime, &label).await?;
            eprintln!("token {id} for {user}, valid for {expires}; it is shown only now:");
            println!("{secret}");
        }
        TokenCommand::List { user } => {
            for t in auth.tokens(user.as_deref()).await? {
                let state = if t.revoked {
                    "revoked"
                } else if t.expires_at <= unix_now() {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\texpires {}\t{state}",
                    t.id,
                    t.user,
                    t.label,
                    iso_date(t.expires_at)
                );
            }
        }
        TokenCommand::Revoke { id } => {
            auth.revoke_token(id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

pub async fn audit(
    store: &StoreLocation,
    user: Option<String>,
    since: Option<String>,
) -> Result<()> {
    let auth = open_auth(store).await?;
    let since = since.map(|s| parse_since(&s)).transpose()?;
    let log = AuditLog::start(auth.db().clone());
    println!("time\tuser\tlayer\tvia\tarea\tfeatures\tfields\tpurpose");
    for e in log.events(user.as_deref(), since).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            iso_time(e.at),
            e.user,
            e.layer,
            e.via,
            e.area,
            e.features,
            e.fields,
            e.purpose
        );
    }
    Ok(())
}

/// Copies what `roles` may see into a new store: the layers they read, only
/// the fields they read, only the rows their filters admit.
pub async fn publish(store: &StoreLocation, roles: Vec<String>, out: &Path) -> Result<()> {
    if out.exists() {
        bail!("{} exists; publish writes a new file", out.display());
    }
    let source = store.open(false).await?;
    let layers = source.layers().await?;
    let caller = Caller::roles(roles.clone());
    let view = View::for_caller(&caller, layers.iter().map(|l| &l.config));
    // Without a write-ahead log: the file is complete in itself, to be copied
    // to the internet-facing server as it is.
    let target = GpkgStore::open_with(out, true, false).await?;
    for layer_view in view.layers() {
        let snapshot = source.load(&layer_view.id).await?;
        let mut config = snapshot.meta.config.clone();
        // Ids are numbered again from 1, so that gaps cannot tell where the
        // rows the audience may not see were.
        let features: Vec<chizu_core::Feature> = snapshot
            .features
            .into_iter()
            .filter(|f| layer_view.admits(&f.properties))
            .enumerate()
            .map(|(n, mut f)| {
                f.id = n as u64 + 1;
                f.properties = layer_view
                    .fields
                    .iter()
                    .map(|i| std::mem::replace(&mut f.properties[*i], chizu_core::Value::Null))
                    .collect();
                f
            })
            .collect();
        config.fields = layer_view
            .fields
            .iter()
            .map(|i| config.fields[*i].clone())
            .collect();
        let visible: Vec<String> = config.fields.iter().map(|f| f.name.clone()).collect();
        config
            .access
            .fields
            .retain(|name, _| visible.contains(name));
        // The rows are already cut to what the audience sees.
        config.access.rows.clear();
        let report = IngestReport {
            read: features.len(),
            stored: features.len(),
            ..Default::default()
        };
        // The hash of the source file would fingerprint rows and fields the
        // audience may not see: the published layer carries the hash of what
        // was published instead.
        let published_sha256 = content_sha256(&features);
        target
            .replace_layer(&config, &features, &report, &published_sha256)
            .await?;
        println!(
            "{}: {} features, fields {}",
            config.id,
            features.len(),
            visible.join(", ")
        );
    }
    target.close().await;
    println!(
        "wrote {} for roles {}",
        out.display(),
        caller.roles.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// SHA-256 over the features as published: geometry and attribute values.
fn content_sha256(features: &[chizu_core::Feature]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for f in features {
        hash.update(chizu_core::cql2::wkt::to_wkt(&f.geometry).as_bytes());
        for v in &f.properties {
            hash.update(v.to_json().to_string().as_bytes());
            hash.update([0x1f]);
        }
        hash.update([0x1e]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `90d`, `12h`, `30m`, `45s`.
pub fn parse_span(s: &str) -> Result<Duration> {
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = number
        .parse()
        .with_context(|| format!("`{s}` is not a span like 90d, 12h or 30m"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        _ => bail!("`{s}` is not a span like 90d, 12h or 30m"),
    };
    Ok(Duration::from_secs(secs))
}

fn parse_since(s: &str) -> Result<i64> {
    if let Ok(span) = parse_span(s) {
        return Ok(unix_now() - span.as_secs() as i64);
    }
    let parts: Vec<i64> = s.split('-').filter_map(|p| p.parse().ok()).collect();
    match parts[..] {
        [y, m, d] if (1..=12).contains(&m) && (1..=31).contains(&d) => {
            Ok(days_from_civil(y, m, d) * 86_400)
        }
        _ => bail!("--since takes YYYY-MM-DD or a span like 7d"),
    }
}

/// `chizu export`: the same export code as the HTTP API, streaming from the
/// store without a server.
#[allow(clippy::too_many_arguments)]
pub async fn export(
    store: &StoreLocation,
    layer: &str,
    format: &str,
    crs: &str,
    bbox: Option<String>,
    filter: Option<String>,
    encoding: Option<String>,
    roles: Vec<String>,
    out: &Path,
) -> Result<()> {
    use chizu_io::export::{ExportFormat, ExportSpec, TextEncoding};
    let format = ExportFormat::parse(format)
        .with_context(|| format!("unknown format `{format}` (gpkg, fgb, geojson, csv, shp)"))?;
    let epsg = chizu_core::config::parse_epsg(crs)
        .with_context(|| format!("`{crs}` is not of the form EPSG:<code>"))?;
    chizu_io::crs::check_known(epsg)?;
    let store = store.open(false).await?;
    let meta = store.layer(layer).await?;
    let config = meta.config.clone();
    // Without --role, the machine's administrator sees the whole layer.
    let caller = if roles.is_empty() {
        let a = &config.access;
        let all = a
            .read
            .iter()
            .chain(&a.export)
            .chain(a.fields.values().flatten())
            .chain(a.rows.keys())
            .cloned();
        Caller::roles(all)
    } else {
        Caller::roles(roles.clone())
    };
    let view = View::for_caller(&caller, [&config]);
    let layer_view = view
        .layer(layer)
        .with_context(|| format!("roles {roles:?} cannot read `{layer}`"))?
        .clone();
    if !roles.is_empty() && !layer_view.can_export {
        bail!("roles {roles:?} may read `{layer}` but not export it");
    }
    // The same selection as the items and export endpoints, from the
    // arguments given as the same parameters.
    let params: Vec<(String, String)> = [("bbox", bbox), ("filter", filter)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect();
    let selection = chizu_server::Selection::parse(&config, &layer_view, &params)
        .map_err(|e| anyhow::anyhow!("{} (--bbox, --filter)", e.detail))?;
    let encoding = match (&encoding, format) {
        (Some(e), _) => TextEncoding::parse(e)
            .with_context(|| format!("unknown encoding `{e}` (cp932, utf-8)"))?,
        (None, ExportFormat::Shp) => TextEncoding::Cp932,
        (None, _) => TextEncoding::Utf8,
    };
    let spec = ExportSpec {
        layer: config.id.clone(),
        title: config.title.ja.clone(),
        kind: config.geometry,
        fields: layer_view
            .fields
            .iter()
            .map(|i| config.fields[*i].clone())
            .collect(),
        epsg,
        format,
        encoding,
    };
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1024);
    let reader = {
        let store = store.clone();
        let layer = layer.to_string();
        tokio::spawn(async move { store.stream_features(&layer, sender).await })
    };
    let bar = indicatif::ProgressBar::new(meta.feature_count);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} features ({per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let out_path = out.to_path_buf();
    let progress = bar.clone();
    let written = tokio::task::spawn_blocking(move || {
        let fields = layer_view.fields.clone();
        let mut features = std::iter::from_fn(|| receiver.blocking_recv())
            .filter(|f| selection.admits(&layer_view, &f.properties, || f.geometry.clone()))
            .map(|mut f| {
                f.properties = fields
                    .iter()
                    .map(|i| std::mem::replace(&mut f.properties[*i], chizu_core::Value::Null))
                    .collect();
                f
            });
        let cancel = std::sync::atomic::AtomicBool::new(false);
        chizu_io::export::export_file(&spec, &mut features, &out_path, &cancel, &mut |n| {
            progress.set_position(n)
        })
    })
    .await??;
    reader.await??;
    bar.finish_and_clear();
    println!(
        "{}: {} features written to {}",
        layer,
        written.features,
        out.display()
    );
    Ok(())
}

/// Processor time this process has used (user and system), in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn print_archive(
    plan: &chizu_server::publish::ArchivePlan,
    report: &chizu_server::publish::ArchiveReport,
    started: (std::time::Instant, f64),
) {
    let (wall, cpu) = (started.0.elapsed().as_secs_f64(), cpu_seconds() - started.1);
    println!(
        "layers {} at z{}-{}: {} tiles ({} empty left out), {:.1} MB gzipped",
        plan.layers.join(","),
        plan.minzoom,
        plan.maxzoom,
        report.tiles,
        report.empty,
        report.bytes as f64 / 1e6
    );
    for (z, n) in &report.per_zoom {
        println!("  z{z}: {n} tiles");
    }
    if report.dropped > 0 {
        println!("  the size budget left out {} features", report.dropped);
    }
    let rendered = (report.tiles + report.empty) as f64;
    println!(
        "  {wall:.1} s, {cpu:.1} CPU-s: {:.0} tiles per CPU-second",
        rendered / cpu.max(1e-3)
    );
}

pub async fn pmtiles(
    state: &std::sync::Arc<chizu_server::AppState>,
    out: &Path,
    zooms: ZoomRange,
    layers: Option<Vec<String>>,
) -> Result<()> {
    let started = (std::time::Instant::now(), cpu_seconds());
    let (plan, report) = chizu_server::publish::pmtiles(state, out, zooms, layers)
        .await
        .with_context(|| format!("{}: cannot write the archive", out.display()))?;
    println!("{}", out.display());
    print_archive(&plan, &report, started);
    Ok(())
}

pub async fn publish_site(
    state: &std::sync::Arc<chizu_server::AppState>,
    viewer: &Path,
    out: &Path,
    zooms: ZoomRange,
) -> Result<()> {
    let started = (std::time::Instant::now(), cpu_seconds());
    let report = chizu_server::publish::site(state, viewer, out, zooms)
        .await
        .with_context(|| format!("{}: cannot publish the site", out.display()))?;
    println!(
        "{}: {} files ({} glyph ranges); serve it with any static file server",
        out.display(),
        report.files,
        report.glyph_ranges
    );
    print_archive(&report.plan, &report.archive, started);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_spans() {
        assert_eq!(parse_span("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert!(parse_span("90x").is_err());
        assert!(parse_since("2026-13-01").is_err());
    }
}
