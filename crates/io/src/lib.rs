//! Reading and writing the files a city has, and turning them into chizu features.
//!
//! Every reader streams [`RawFeature`]s into a visitor, so a reader never decides
//! what happens to a feature: the ingest pipeline ([`prepare`]) reprojects,
//! validates and coerces; the sample generator writes; tests inspect.

pub mod changes;
pub mod control;
pub mod crs;
pub mod export;
pub mod fgb;
pub mod geojson_io;
pub mod gpkg;
mod gpkg_rtree;
pub mod join;
pub mod mojxml;
pub mod prepare;
pub mod shp;
pub mod source_crs;
pub mod validate;

use chizu_core::{SourceConfig, SourceFormat, Value};
use geo::Geometry;
use std::path::{Path, PathBuf};

pub use crs::Reprojector;
pub use prepare::{IngestError, IngestReport, PreparedLayer, STORAGE_EPSG, prepare_layer};

/// A feature as it comes out of a source file, before chizu gives it a schema.
#[derive(Debug, Clone)]
pub struct RawFeature {
    /// 1-based position in the source file, used in every error message.
    pub number: usize,
    pub geometry: Option<Geometry<f64>>,
    pub attributes: Vec<(String, Value)>,
    /// The EPSG code of this feature's coordinates, when the file says it
    /// per feature (each MOJ XML sheet names its zone); `None`: the layer's.
    pub crs: Option<u32>,
}

/// What reading a source has to say beside its features.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadNotes {
    /// For the ingest report: contradictions allowed by `crs_check = "warn"`,
    /// sheets placed from control points (with their residuals), sheets skipped.
    pub warnings: Vec<String>,
    /// 任意座標系 sheets left out (`arbitrary = "skip"`), and their parcels.
    pub skipped_sheets: usize,
    pub skipped_parcels: usize,
}

impl RawFeature {
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// What went wrong reading or writing a file. Every variant names the file, and
/// the feature and field where there is one, so a city's GIS team can fix the data.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}: feature {feature}: {message}")]
    Feature {
        path: PathBuf,
        feature: usize,
        message: String,
    },
    #[error("{path}: feature {feature}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        feature: usize,
        field: String,
        message: String,
    },
    #[error("coordinate reference system {crs}: {message}")]
    Crs { crs: String, message: String },
    #[error("{path}: database: {message}")]
    Database { path: PathBuf, message: String },
}

impl IoError {
    pub(crate) fn format(path: &Path, message: impl ToString) -> Self {
        IoError::Format {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
    pub(crate) fn feature(path: &Path, feature: usize, message: impl ToString) -> Self {
        IoError::Feature {
            path: path.to_path_buf(),
            feature,
            message: message.to_string(),
        }
    }
    pub(crate) fn field(
        path: &Path,
        feature: usize,
        field: impl ToString,
        message: impl ToString,
    ) -> Self {
        IoError::Field {
            path: path.to_path_buf(),
            feature,
            field: field.to_string(),
            message: message.to_string(),
        }
    }
    pub(crate) fn open(path: &Path, source: std::io::Error) -> Self {
        IoError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Options a caller can give on top of the layer file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Shapefile text encoding used when neither the `.cpg`, the DBF header nor the layer file says.
    pub fallback_encoding: Option<String>,
}

/// Streams every feature of `source` into `visit`, in file order, after
/// holding the layer file's `crs` against the CRS the file states.
pub fn read_source(
    source: &SourceConfig,
    options: &ReadOptions,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<ReadNotes, IoError> {
    let path = source.path.as_path();
    if !path.exists() {
        return Err(IoError::open(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    let mut notes = ReadNotes::default();
    let mut ledger = source.join.as_ref().map(join::Ledger::read).transpose()?;
    let mut joined = |mut raw: RawFeature| -> Result<(), IoError> {
        if let Some(ledger) = &mut ledger {
            ledger.apply(&mut raw);
        }
        visit(raw)
    };
    let visit = &mut joined;
    if let Some(stated) = source_crs::stated(source)? {
        notes
            .warnings
            .extend(source_crs::check(source, source.epsg(), &stated)?);
    }
    match source.format {
        SourceFormat::Geojson => geojson_io::read(path, visit)?,
        SourceFormat::Flatgeobuf => fgb::read(path, visit)?,
        SourceFormat::Shapefile => {
            let declared = source
                .encoding
                .as_deref()
                .or(options.fallback_encoding.as_deref());
            shp::read(path, declared, visit)?
        }
        SourceFormat::Geopackage => gpkg::read_blocking(path, source.table.as_deref(), visit)?,
        SourceFormat::Mojxml => {
            let moj = source.mojxml.clone().unwrap_or_default();
            let warn_only = source.crs_check == chizu_core::CrsCheck::Warn;
            let read = mojxml::read(path, &moj, &source.crs, warn_only, visit)?;
            notes.warnings.extend(read.warnings);
            notes.skipped_sheets += read.skipped_sheets;
            notes.skipped_parcels += read.skipped_parcels;
        }
    }
    notes
        .warnings
        .extend(ledger.as_ref().and_then(join::Ledger::unmatched));
    Ok(notes)
}

/// Hex SHA-256 of a file (of every part of a shapefile), recorded with each layer version.
pub fn source_hash(source: &SourceConfig) -> Result<String, IoError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut parts = vec![source.path.clone()];
    if source.format == SourceFormat::Shapefile {
        for ext in ["shx", "dbf", "cpg", "prj"] {
            let p = source.path.with_extension(ext);
            if p.exists() {
                parts.push(p);
            }
        }
    }
    if let Some(points) = source
        .mojxml
        .as_ref()
        .and_then(|m| m.control_points.clone())
    {
        parts.push(points);
    }
    let mut buf = vec![0u8; 1 << 16];
    for part in parts {
        let mut file = std::fs::File::open(&part).map_err(|e| IoError::open(&part, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| IoError::open(&part, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}
