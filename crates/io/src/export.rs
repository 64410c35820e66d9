//! Export: a layer's features (already cut to the caller's view) written as
//! GeoPackage, FlatGeobuf, GeoJSON, CSV or a zipped Shapefile, in WGS 84 or any
//! EPSG CRS. Features stream through: one at a time is reprojected and written,
//! so memory does not grow with the layer (binary formats go through a file).

use crate::{IoError, crs::Reprojector};
use chizu_core::{Feature, FieldDef, GeometryKind, Value};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Gpkg,
    Fgb,
    Geojson,
    Csv,
    Shp,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<ExportFormat> {
        Some(match s.to_ascii_lowercase().as_str() {
            "gpkg" | "geopackage" => ExportFormat::Gpkg,
            "fgb" | "flatgeobuf" => ExportFormat::Fgb,
            "geojson" => ExportFormat::Geojson,
            "csv" => ExportFormat::Csv,
            "shp" | "shapefile" => ExportFormat::Shp,
            _ => return None,
        })
    }

    pub fn extension(&self) -> &'static str {
        match self {
            ExportFormat::Gpkg => "gpkg",
            ExportFormat::Fgb => "fgb",
            ExportFormat::Geojson => "geojson",
            ExportFormat::Csv => "csv",
            ExportFormat::Shp => "zip",
        }
    }

    pub fn media_type(&self) -> &'static str {
        match self {
            ExportFormat::Gpkg => "application/geopackage+sqlite3",
            ExportFormat::Fgb => "application/flatgeobuf",
            ExportFormat::Geojson => "application/geo+json",
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Shp => "application/zip",
        }
    }

    /// Text formats are written straight into the response; the others need a
    /// seekable file first.
    pub fn streams(&self) -> bool {
        matches!(self, ExportFormat::Geojson | ExportFormat::Csv)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Cp932,
}

impl TextEncoding {
    pub fn parse(s: &str) -> Option<TextEncoding> {
        match s.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(TextEncoding::Utf8),
            "cp932" | "shift_jis" | "sjis" | "windows-31j" => Some(TextEncoding::Cp932),
            _ => None,
        }
    }
    fn encoding(&self) -> &'static encoding_rs::Encoding {
        match self {
            TextEncoding::Utf8 => encoding_rs::UTF_8,
            TextEncoding::Cp932 => encoding_rs::SHIFT_JIS,
        }
    }
}

/// What to write. Geometries arrive in longitude/latitude (EPSG:4326).
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub layer: String,
    pub title: String,
    pub kind: GeometryKind,
    /// The fields of the features' `properties`, in order.
    pub fields: Vec<FieldDef>,
    /// Output CRS; 4326 writes longitude/latitude.
    pub epsg: u32,
    pub format: ExportFormat,
    /// CSV and Shapefile text encoding (CSV UTF-8 gets a BOM for Excel).
    pub encoding: TextEncoding,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportStats {
    pub features: u64,
}

/// The largest .shp or .dbf the format can address (32-bit offsets in 16-bit words: 2 GiB).
pub const SHAPEFILE_LIMIT: u64 = (1 << 31) - 1;

/// Exports to a writer (GeoJSON and CSV only).
pub fn export_stream(
    spec: &ExportSpec,
    features: &mut dyn Iterator<Item = Feature>,
    out: &mut dyn Write,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportStats, IoError> {
    let name = Path::new(&spec.layer);
    let io = |e: std::io::Error| IoError::Open {
        path: name.to_path_buf(),
        source: e,
    };
    let reproject = Reprojector::new(4326, spec.epsg)?;
    let mut stats = ExportStats::default();
    match spec.format {
        ExportFormat::Geojson => {
            write!(
                out,
                "{{\"type\":\"FeatureCollection\",\"name\":{}",
                serde_json::json!(spec.layer)
            )
            .map_err(io)?;
            if spec.epsg != 4326 {
                // RFC 7946 knows only WGS 84; GDAL and QGIS read this (older) member.
                write!(out, ",\"crs\":{{\"type\":\"name\",\"properties\":{{\"name\":\"urn:ogc:def:crs:EPSG::{}\"}}}}", spec.epsg).map_err(io)?;
            }
            out.write_all(b",\"features\":[\n").map_err(io)?;
            for mut f in features {
                check(cancel)?;
                reproject.geometry(&mut f.geometry)?;
                if stats.features > 0 {
                    out.write_all(b",\n").map_err(io)?;
                }
                serde_json::to_writer(
                    &mut *out,
                    &crate::geojson_io::feature_json(&spec.fields, &f),
                )
                .map_err(|e| io(e.into()))?;
                stats.features += 1;
                tick(&stats, progress);
            }
            out.write_all(b"\n]}\n").map_err(io)?;
        }
        ExportFormat::Csv => {
            let encode = |s: &str, field: &str, id: u64| -> Result<Vec<u8>, IoError> {
                let (bytes, _, unmappable) = spec.encoding.encoding().encode(s);
                if unmappable {
                    return Err(IoError::field(
                        name,
                        id as usize,
                        field,
                        format!(
                            "{s:?} cannot be written in {}",
                            spec.encoding.encoding().name()
                        ),
                    ));
                }
                Ok(bytes.into_owned())
            };
            if spec.encoding == TextEncoding::Utf8 {
                out.write_all(b"\xEF\xBB\xBF").map_err(io)?;
            }
            let header: Vec<String> = std::iter::once("WKT".to_string())
                .chain(spec.fields.iter().map(|f| csv_quote(&f.name)))
                .collect();
            out.write_all(header.join(",").as_bytes()).map_err(io)?;
            out.write_all(b"\r\n").map_err(io)?;
            for mut f in features {
                check(cancel)?;
                reproject.geometry(&mut f.geometry)?;
                let mut line = csv_quote(&chizu_core::cql2::wkt::to_wkt(&f.geometry));
                for v in &f.properties {
                    line.push(',');
                    match v {
                        Value::Null => {}
                        Value::Text(s) => line.push_str(&csv_quote(s)),
                        other => line.push_str(&other.to_json().to_string()),
                    }
                }
                line.push_str("\r\n");
                out.write_all(&encode(&line, "", f.id)?).map_err(io)?;
                stats.features += 1;
                tick(&stats, progress);
            }
        }
        other => {
            return Err(IoError::format(
                name,
                format!("{other:?} is written to a file, not a stream"),
            ));
        }
    }
    out.flush().map_err(io)?;
    Ok(stats)
}

/// Exports to a file at `path` (every format; Shapefile as a zip). On error no
/// file is left behind: a half-written export must not pass for a whole one.
pub fn export_file(
    spec: &ExportSpec,
    features: &mut (dyn Iterator<Item = Feature> + Send),
    path: &Path,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ExportStats, IoError> {
    let result = write_file(spec, features, path, cancel, progress);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn write_file(
    spec: &ExportSpec,
    features: &mut (dyn Iterator<Item = Feature> + Send),
    path: &Path,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ExportStats, IoError> {
    let reproject = || Reprojector::new(4326, spec.epsg);
    match spec.format {
        ExportFormat::Geojson | ExportFormat::Csv => {
            let file = std::fs::File::create(path).map_err(|e| IoError::open(path, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
            export_stream(spec, features, &mut out, cancel, progress)
        }
        ExportFormat::Fgb => {
            let reproject = reproject()?;
            let mut stats = ExportStats::default();
            let mut err = None;
            let iter = until_error(features, cancel, &mut err, |f| {
                reproject.geometry(&mut f.geometry)?;
                stats.features += 1;
                tick(&stats, progress);
                Ok(())
            });
            crate::fgb::write_iter(
                path,
                &spec.layer,
                spec.epsg,
                spec.kind,
                &spec.fields,
                iter,
                true,
            )?;
            check(cancel)?;
            if let Some(e) = err {
                return Err(e);
            }
            Ok(stats)
        }
        ExportFormat::Gpkg => {
            let _ = std::fs::remove_file(path);
            let reproject = reproject()?;
            // SQLite (through sqlx) runs on a runtime of its own in another thread;
            // features reach it through a bounded channel, so that the input
            // iterator (which may block on its own source) stays in this thread.
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Feature>(1024);
            let spec2 = spec.clone();
            std::thread::scope(|scope| {
                let writer = scope.spawn(move || {
                    crate::gpkg::run_async(move || async move {
                        use sqlx::Connection;
                        let pool = crate::gpkg::open_pool_with(path, true, false).await?;
                        let db = |e| IoError::Database {
                            path: path.to_path_buf(),
                            message: format!("{e}"),
                        };
                        let mut conn = pool.acquire().await.map_err(db)?;
                        let mut tx = conn.begin().await.map_err(db)?;
                        let table = crate::gpkg::TableSpec {
                            table: &spec2.layer,
                            title: &spec2.title,
                            description: "",
                            srs_id: spec2.epsg,
                            kind: spec2.kind,
                            fields: &spec2.fields,
                        };
                        let mut writer = crate::gpkg::TableWriter::begin(&mut tx, &table).await?;
                        while let Ok(f) = receiver.recv() {
                            writer.insert(&mut tx, &f).await?;
                        }
                        writer.finish(&mut tx).await?;
                        tx.commit().await.map_err(db)?;
                        drop(conn);
                        pool.close().await;
                        Ok(())
                    })
                });
                let mut stats = ExportStats::default();
                let mut result = Ok(());
                for mut f in features {
                    if let Err(e) = check(cancel).and_then(|_| reproject.geometry(&mut f.geometry))
                    {
                        result = Err(e);
                        break;
                    }
                    if sender.send(f).is_err() {
                        break; // the writer stopped: its error is below
                    }
                    stats.features += 1;
                    tick(&stats, progress);
                }
                drop(sender);
                let written = writer
                    .join()
                    .unwrap_or_else(|_| Err(IoError::format(path, "the GeoPackage writer failed")));
                result.and(written).map(|_| stats)
            })
        }
        ExportFormat::Shp => shapefile_zip(spec, features, path, cancel, progress),
    }
}

/// Passes features through `each` (reprojection, checks) and ends the stream at
/// the first error, kept in `err`, or at cancellation. Writers that pull from an
/// iterator cannot return an error themselves; the caller checks `err` after.
fn until_error<'a>(
    features: &'a mut (dyn Iterator<Item = Feature> + Send),
    cancel: &'a AtomicBool,
    err: &'a mut Option<IoError>,
    mut each: impl FnMut(&mut Feature) -> Result<(), IoError> + 'a,
) -> impl Iterator<Item = Feature> + 'a {
    features.map_while(move |mut f| {
        if err.is_some() || cancel.load(Ordering::Relaxed) {
            return None;
        }
        match each(&mut f) {
            Ok(()) => Some(f),
            Err(e) => {
                *err = Some(e);
                None
            }
        }
    })
}

fn check(cancel: &AtomicBool) -> Result<(), IoError> {
    if cancel.load(Ordering::Relaxed) {
        return Err(IoError::format(
            Path::new("export"),
            "cancelled: the client went away",
        ));
    }
    Ok(())
}

fn tick(stats: &ExportStats, progress: &mut dyn FnMut(u64)) {
    if stats.features.is_multiple_of(1000) {
        progress(stats.features);
    }
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// DBF field names are at most 10 bytes: cut, and number the ones that collide.
pub fn short_field_names(fields: &[FieldDef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(fields.len());
    for f in fields {
        let mut candidate: String = f.name.chars().take(10).collect();
        let mut n = 1;
        while out.iter().any(|o| o.eq_ignore_ascii_case(&candidate)) {
            let suffix = format!("_{n}");
            candidate = format!(
                "{}{suffix}",
                f.name.chars().take(10 - suffix.len()).collect::<String>()
            );
            n += 1;
        }
        out.push(candidate);
    }
    out
}

/// Two passes over the features: the first sizes the DBF text columns (so that
/// no value is cut), the second writes. Then `.shp .shx .dbf .prj .cpg` and the
/// field-name mapping go into one zip.
fn shapefile_zip(
    spec: &ExportSpec,
    features: &mut (dyn Iterator<Item = Feature> + Send),
    path: &Path,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ExportStats, IoError> {
    let dir = tempfile::tempdir().map_err(|e| IoError::open(path, e))?;
    let short = short_field_names(&spec.fields);
    let mut fields = spec.fields.clone();
    for (f, s) in fields.iter_mut().zip(&short) {
        f.name = s.clone();
    }
    // The features are needed twice; keep them on disk, not in memory.
    let spool = dir.path().join("spool.fgb");
    let reproject = Reprojector::new(4326, spec.epsg)?;
    let mut widths = vec![1usize; fields.len()];
    let mut stats = ExportStats::default();
    let mut err = None;
    let encoding = spec.encoding.encoding();
    let iter = until_error(features, cancel, &mut err, |f| {
        reproject.geometry(&mut f.geometry)?;
        for (i, v) in f.properties.iter().enumerate() {
            if let Value::Text(s) = v {
                let (bytes, _, unmappable) = encoding.encode(s);
                if unmappable {
                    return Err(IoError::field(
                        Path::new(&spec.layer),
                        f.id as usize,
                        &spec.fields[i].name,
                        format!(
                            "{s:?} cannot be written in {}; export with encoding=utf-8",
                            encoding.name()
                        ),
                    ));
                }
                widths[i] = widths[i].max(bytes.len());
            }
        }
        stats.features += 1;
        tick(&stats, progress);
        Ok(())
    });
    crate::fgb::write_iter(&spool, "spool", spec.epsg, spec.kind, &fields, iter, false)?;
    check(cancel)?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some((i, w)) = widths.iter().enumerate().find(|(_, w)| **w > 254) {
        return Err(IoError::format(
            Path::new(&spec.layer),
            format!(
                "field `{}` has values of {w} bytes; a DBF holds at most 254",
                spec.fields[i].name
            ),
        ));
    }
    let shp = dir.path().join(format!("{}.shp", spec.layer));
    let mut writer =
        crate::shp::ShapefileWriter::create(&shp, spec.epsg, encoding, &fields, &widths)?;
    crate::fgb::read(&spool, &mut |raw| {
        check(cancel)?;
        // Back from the spool in the same order, with the same values.
        let properties = fields
            .iter()
            .map(|f| raw.attribute(&f.name).cloned().unwrap_or(Value::Null))
            .collect();
        let geometry = raw
            .geometry
            .ok_or_else(|| IoError::feature(&spool, raw.number, "lost its geometry"))?;
        writer.write(&Feature {
            id: raw.number as u64,
            geometry,
            properties,
        })
    })?;
    writer.finish()?;
    for ext in ["shp", "dbf"] {
        let size = std::fs::metadata(shp.with_extension(ext))
            .map(|m| m.len())
            .unwrap_or(0);
        if size > SHAPEFILE_LIMIT {
            return Err(IoError::format(
                Path::new(&spec.layer),
                format!(
                    "the .{ext} would be {size} bytes, over the 2 GB limit of the Shapefile format: export a smaller area, or use GeoPackage or FlatGeobuf"
                ),
            ));
        }
    }
    let mapping: String = spec
        .fields
        .iter()
        .zip(&short)
        .map(|(f, s)| {
            format!(
                "{}\t{}\t{}\r\n",
                s,
                f.name,
                f.title.as_ref().map(|t| t.ja.as_str()).unwrap_or("")
            )
        })
        .collect();
    let file = std::fs::File::create(path).map_err(|e| IoError::open(path, e))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let zerr = |e: zip::result::ZipError| IoError::format(path, e);
    for ext in ["shp", "shx", "dbf", "prj", "cpg"] {
        let part = shp.with_extension(ext);
        zip.start_file(format!("{}.{ext}", spec.layer), options)
            .map_err(zerr)?;
        let mut f = std::fs::File::open(&part).map_err(|e| IoError::open(&part, e))?;
        std::io::copy(&mut f, &mut zip).map_err(|e| IoError::open(path, e))?;
    }
    zip.start_file(format!("{}_fields.txt", spec.layer), options)
        .map_err(zerr)?;
    zip.write_all(format!("short\tfield\ttitle\r\n{mapping}").as_bytes())
        .map_err(|e| IoError::open(path, e))?;
    zip.finish().map_err(zerr)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chizu_core::FieldType;

    fn field(name: &str) -> FieldDef {
        FieldDef::new(name, FieldType::Text)
    }

    #[test]
    fn field_names_are_cut_without_collisions() {
        let names = short_field_names(&[
            field("last_inspected"),
            field("last_inspector"),
            field("chiban"),
            field("last_inspe"),
        ]);
        assert_eq!(names, ["last_inspe", "last_ins_1", "chiban", "last_ins_2"]);
        assert!(names.iter().all(|n| n.len() <= 10));
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
