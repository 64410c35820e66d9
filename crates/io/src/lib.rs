//! Reading and writing the files a city has, and turning them into chizu features.
//!
//! Every reader streams [`RawFeature`]s into a visitor, so a reader never decides
//! what happens to a feature: the ingest pipeline ([`prepare`]) reprojects,
//! validates and coerces; the sample generator writes; tests inspect.

pub mod crs;
pub mod export;
pub mod fgb;
pub mod geojson_io;
pub mod gpkg;
pub mod prepare;
pub mod shp;
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

/// Streams every feature of `source` into `visit`, in file order.
pub fn read_source(
    source: &SourceConfig,
    options: &ReadOptions,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let path = source.path.as_path();
    if !path.exists() {
        return Err(IoError::open(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    match source.format {
        SourceFormat::Geojson => geojson_io::read(path, visit),
        SourceFormat::Flatgeobuf => fgb::read(path, visit),
        SourceFormat::Shapefile => {
            let declared = source
                .encoding
                .as_deref()
                .or(options.fallback_encoding.as_deref());
            shp::read(path, declared, visit)
        }
        SourceFormat::Geopackage => gpkg::read_blocking(path, source.table.as_deref(), visit),
    }
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
