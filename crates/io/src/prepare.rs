//! The ingest pipeline: read a layer's source, check and reproject every geometry,
//! coerce every attribute to the schema. Nothing is written here: a layer that
//! fails to prepare never reaches the store, so the previous version stays.

use crate::crs::AreaOfUse;
use crate::{IoError, RawFeature, ReadOptions, Reprojector, read_source, validate};
use chizu_core::{Bounds, Feature, InvalidGeometryPolicy, LayerConfig, Value};
use geo::{Geometry, MultiLineString, MultiPoint, MultiPolygon};
use std::collections::HashMap;
use std::fmt;

/// The CRS chizu stores layers in: WGS 84 longitude/latitude, as QGIS expects a
/// GeoPackage to be readable anywhere. f64 degrees keep ~1 nm, so any output CRS
/// (EPSG:6670 for the city) round-trips to well under a millimetre.
pub const STORAGE_EPSG: u32 = 4326;

/// How many problems are listed before the rest are only counted.
const MAX_LISTED_ERRORS: usize = 20;

/// A layer ready to be stored: features in [`STORAGE_EPSG`], ids 1..=n in source order.
#[derive(Debug)]
pub struct PreparedLayer {
    pub features: Vec<Feature>,
    pub report: IngestReport,
}

#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    pub read: usize,
    pub stored: usize,
    /// (feature number, reason) for every invalid geometry found.
    pub invalid: Vec<(usize, String)>,
    pub repaired: usize,
    pub skipped: usize,
    pub kept_invalid: usize,
    /// In [`STORAGE_EPSG`].
    pub bounds: Option<Bounds>,
    /// What the reader noted: CRS contradictions allowed by `crs_check =
    /// "warn"`, sheets placed from control points, sheets skipped.
    pub warnings: Vec<String>,
    /// 任意座標系 sheets left out, and the parcels they held.
    pub skipped_sheets: usize,
    pub skipped_parcels: usize,
}

/// One reprojector per source CRS met (a MOJ XML file can hold sheets of
/// several zones), each with the CRS's area of use.
struct Reprojectors {
    layer_epsg: u32,
    by_epsg: HashMap<u32, (Reprojector, Option<AreaOfUse>)>,
}

impl Reprojectors {
    fn get(&mut self, epsg: Option<u32>) -> Result<&(Reprojector, Option<AreaOfUse>), IoError> {
        let epsg = epsg.unwrap_or(self.layer_epsg);
        Ok(match self.by_epsg.entry(epsg) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let reprojector = Reprojector::new(epsg, STORAGE_EPSG)?;
                slot.insert((reprojector, crate::crs::area_of_use(epsg)))
            }
        })
    }
}

/// Everything that stopped a layer from being prepared.
#[derive(Debug)]
pub struct IngestError {
    pub layer: String,
    pub errors: Vec<IoError>,
    pub unlisted: usize,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer `{}` was not ingested:", self.layer)?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        if self.unlisted > 0 {
            write!(f, "\n  ... and {} more problems", self.unlisted)?;
        }
        Ok(())
    }
}

impl std::error::Error for IngestError {}

impl IngestError {
    fn single(layer: &str, e: IoError) -> Self {
        IngestError {
            layer: layer.to_string(),
            errors: vec![e],
            unlisted: 0,
        }
    }
}

/// Reads, validates, reprojects and coerces a layer's source.
/// `progress` is called with the number of features read so far.
pub fn prepare_layer(
    config: &LayerConfig,
    options: &ReadOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<PreparedLayer, IngestError> {
    let mut reprojectors = Reprojectors {
        layer_epsg: config.source.epsg(),
        by_epsg: HashMap::new(),
    };
    if config.source.epsg() != 0 {
        reprojectors
            .get(None)
            .map_err(|e| IngestError::single(&config.id, e))?;
    }
    let path = config.source.path.clone();
    let mut features = Vec::new();
    let mut report = IngestReport::default();
    let mut errors = Vec::new();
    let mut unlisted = 0;
    let mut bounds = Bounds::EMPTY;

    let mut on_feature = |raw: RawFeature| -> Result<(), IoError> {
        report.read += 1;
        if report.read % 1000 == 0 {
            progress(report.read);
        }
        match convert(config, &mut reprojectors, &path, raw, &mut report) {
            Ok(Some(feature)) => {
                bounds.expand(&Bounds::of_geometry(&feature.geometry));
                features.push(feature);
            }
            Ok(None) => {}
            Err(e) => {
                if errors.len() < MAX_LISTED_ERRORS {
                    errors.push(e);
                } else {
                    unlisted += 1;
                }
            }
        }
        Ok(())
    };
    let read_result = read_source(&config.source, options, &mut on_feature);
    progress(report.read);
    match read_result {
        Ok(notes) => {
            report.warnings = notes.warnings;
            report.skipped_sheets = notes.skipped_sheets;
            report.skipped_parcels = notes.skipped_parcels;
        }
        Err(e) => errors.insert(0, e),
    }
    if report.read == 0 && errors.is_empty() {
        errors.push(IoError::format(&path, "holds no features"));
    }
    if !errors.is_empty() {
        return Err(IngestError {
            layer: config.id.clone(),
            errors,
            unlisted,
        });
    }
    for (i, f) in features.iter_mut().enumerate() {
        f.id = i as u64 + 1;
    }
    report.stored = features.len();
    report.bounds = (!bounds.is_empty()).then_some(bounds);
    Ok(PreparedLayer { features, report })
}

fn convert(
    config: &LayerConfig,
    reprojectors: &mut Reprojectors,
    path: &std::path::Path,
    raw: RawFeature,
    report: &mut IngestReport,
) -> Result<Option<Feature>, IoError> {
    let number = raw.number;
    let Some(mut geometry) = raw.geometry.clone() else {
        return Err(IoError::feature(path, number, "has no geometry"));
    };
    if !config.geometry.accepts(&geometry) {
        return Err(IoError::feature(
            path,
            number,
            format!(
                "geometry is a {} but layer `{}` holds {} geometries",
                geometry_name(&geometry),
                config.id,
                config.geometry
            ),
        ));
    }
    if let Some(reason) = validate::problem(&geometry) {
        report.invalid.push((number, reason.clone()));
        match config.invalid_geometry {
            InvalidGeometryPolicy::Reject => {
                return Err(IoError::feature(
                    path,
                    number,
                    format!(
                        "invalid geometry: {reason} (the layer file says invalid_geometry = \"reject\"; \"repair\", \"skip\" or \"keep\" are the alternatives)"
                    ),
                ));
            }
            InvalidGeometryPolicy::Skip => {
                report.skipped += 1;
                return Ok(None);
            }
            InvalidGeometryPolicy::Keep => report.kept_invalid += 1,
            InvalidGeometryPolicy::Repair => {
                geometry = validate::repair(&geometry).map_err(|why| {
                    IoError::feature(
                        path,
                        number,
                        format!("invalid geometry ({reason}) cannot be repaired: {why}"),
                    )
                })?;
                report.repaired += 1;
            }
        }
    }
    let (reprojector, area) = reprojectors
        .get(raw.crs)
        .map_err(|e| IoError::feature(path, number, e))?;
    reprojector
        .geometry(&mut geometry)
        .map_err(|e| IoError::feature(path, number, e))?;
    if let Some(area) = area {
        check_area(&geometry, area, reprojector.from_epsg())
            .map_err(|e| IoError::feature(path, number, e))?;
    }
    let geometry = to_multi(geometry);

    let mut properties = Vec::with_capacity(config.fields.len());
    for field in &config.fields {
        let source_name = field.source_name();
        let value = raw
            .attribute(source_name)
            .or_else(|| {
                raw.attributes
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(source_name))
                    .map(|(_, v)| v)
            })
            .cloned()
            .unwrap_or(Value::Null);
        let value = value
            .coerce(field.ty)
            .map_err(|e| IoError::field(path, number, &field.name, e))?;
        if field.required && value.is_null() {
            return Err(IoError::field(
                path,
                number,
                &field.name,
                if raw.attribute(source_name).is_none() {
                    format!("required, but the source has no attribute `{source_name}`")
                } else {
                    "required, but empty".to_string()
                },
            ));
        }
        properties.push(value);
    }
    Ok(Some(Feature {
        id: number as u64,
        geometry,
        properties,
    }))
}

/// Fails when a coordinate (in longitude/latitude) lies outside the source
/// CRS's area of use: the coordinates are not in the CRS the layer file says.
fn check_area(g: &Geometry<f64>, area: &AreaOfUse, epsg: u32) -> Result<(), String> {
    use geo::CoordsIter;
    match g.coords_iter().find(|c| !area.admits(c.x, c.y)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "coordinate ({:?}, {:?}) in longitude/latitude lies outside the area of use of EPSG:{epsg}{} ({area}, with a margin of {}°): \
             the coordinates are not in the CRS the layer file says",
            c.x,
            c.y,
            crate::crs::name(epsg)
                .map(|n| format!(" `{n}`"))
                .unwrap_or_default(),
            AreaOfUse::MARGIN_DEGREES
        )),
    }
}

/// Stores every geometry as its multi-part kind, so a layer has one column type.
pub fn to_multi(g: Geometry<f64>) -> Geometry<f64> {
    match g {
        Geometry::Point(p) => MultiPoint::new(vec![p]).into(),
        Geometry::LineString(l) => MultiLineString::new(vec![l]).into(),
        Geometry::Line(l) => MultiLineString::new(vec![l.into()]).into(),
        Geometry::Polygon(p) => MultiPolygon::new(vec![p]).into(),
        Geometry::Rect(r) => MultiPolygon::new(vec![r.to_polygon()]).into(),
        Geometry::Triangle(t) => MultiPolygon::new(vec![t.to_polygon()]).into(),
        other => other,
    }
}

pub fn geometry_name(g: &Geometry<f64>) -> &'static str {
    match g {
        Geometry::Point(_) => "Point",
        Geometry::Line(_) => "Line",
        Geometry::LineString(_) => "LineString",
        Geometry::Polygon(_) => "Polygon",
        Geometry::MultiPoint(_) => "MultiPoint",
        Geometry::MultiLineString(_) => "MultiLineString",
        Geometry::MultiPolygon(_) => "MultiPolygon",
        Geometry::GeometryCollection(_) => "GeometryCollection",
        Geometry::Rect(_) => "Rect",
        Geometry::Triangle(_) => "Triangle",
    }
}
