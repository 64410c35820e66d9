//! FlatGeobuf reading and writing (through geozero).

use crate::{IoError, RawFeature};
use chizu_core::{Feature, FieldDef, FieldType, GeometryKind, Value};
use flatgeobuf::{
    ColumnType, FallibleStreamingIterator, FgbCrs, FgbReader, FgbWriter, FgbWriterOptions,
    GeometryType,
};
use geozero::{ColumnValue, FeatureProperties, PropertyProcessor, ToGeo};
use std::path::Path;

struct Collect<'a>(&'a mut Vec<(String, Value)>);

impl PropertyProcessor for Collect<'_> {
    fn property(&mut self, _i: usize, name: &str, v: &ColumnValue) -> geozero::error::Result<bool> {
        let value = match v {
            ColumnValue::Byte(x) => Value::Int(*x as i64),
            ColumnValue::UByte(x) => Value::Int(*x as i64),
            ColumnValue::Bool(x) => Value::Bool(*x),
            ColumnValue::Short(x) => Value::Int(*x as i64),
            ColumnValue::UShort(x) => Value::Int(*x as i64),
            ColumnValue::Int(x) => Value::Int(*x as i64),
            ColumnValue::UInt(x) => Value::Int(*x as i64),
            ColumnValue::Long(x) => Value::Int(*x),
            ColumnValue::ULong(x) => Value::Int(*x as i64),
            // Through the shortest decimal form, so 0.1f32 becomes 0.1, not 0.100000001.
            ColumnValue::Float(x) => Value::Float(x.to_string().parse().unwrap_or(*x as f64)),
            ColumnValue::Double(x) => Value::Float(*x),
            ColumnValue::String(s) | ColumnValue::Json(s) | ColumnValue::DateTime(s) => {
                Value::Text((*s).into())
            }
            ColumnValue::Binary(_) => Value::Null,
        };
        self.0.push((name.to_string(), value));
        Ok(false)
    }
}

pub fn read(
    path: &Path,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<(), IoError> {
    // The flatgeobuf crate trusts the offsets inside the file and can panic
    // on a damaged one (found by tests/fuzz_readers.rs): that is a damaged
    // file, named as such, not a crash.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_unguarded(path, visit)))
        .unwrap_or_else(|_| {
            Err(IoError::format(
                path,
                "the file is damaged: its FlatGeobuf structure is inconsistent",
            ))
        })
}

fn read_unguarded(
    path: &Path,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let file = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let fgb = FgbReader::open(&mut reader)
        .map_err(|e| IoError::format(path, format!("not a FlatGeobuf file: {e}")))?;
    let mut iter = fgb.select_all_seq().map_err(|e| IoError::format(path, e))?;
    let mut number = 0;
    while let Some(feature) = iter
        .next()
        .map_err(|e| IoError::feature(path, number + 1, e))?
    {
        number += 1;
        let geometry = feature
            .to_geo()
            .map_err(|e| IoError::feature(path, number, format!("geometry: {e}")))?;
        let mut attributes = Vec::new();
        feature
            .process_properties(&mut Collect(&mut attributes))
            .map_err(|e| IoError::feature(path, number, format!("properties: {e}")))?;
        visit(RawFeature {
            number,
            geometry: Some(geometry),
            attributes,
            crs: None,
        })?;
    }
    Ok(())
}

/// Writes a FlatGeobuf file with its packed Hilbert R-tree index.
pub fn write<'a>(
    path: &Path,
    name: &str,
    epsg: u32,
    kind: GeometryKind,
    fields: &[FieldDef],
    features: impl IntoIterator<Item = &'a Feature>,
) -> Result<(), IoError> {
    write_iter(path, name, epsg, kind, fields, features.into_iter(), true)
}

/// Like [`write`], taking features by value or by reference. The writer keeps
/// features in its own temporary file and only their boxes in memory.
pub fn write_iter<F: std::borrow::Borrow<Feature>>(
    path: &Path,
    name: &str,
    epsg: u32,
    kind: GeometryKind,
    fields: &[FieldDef],
    features: impl Iterator<Item = F>,
    spatial_index: bool,
) -> Result<(), IoError> {
    let geometry_type = match kind {
        GeometryKind::Point => GeometryType::MultiPoint,
        GeometryKind::Line => GeometryType::MultiLineString,
        GeometryKind::Polygon => GeometryType::MultiPolygon,
    };
    // With the index, features are stored in Hilbert order; without, in the order given.
    let options = FgbWriterOptions {
        write_index: spatial_index,
        promote_to_multi: true,
        crs: FgbCrs {
            code: epsg as i32,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut fgb = FgbWriter::create_with_options(name, geometry_type, options)
        .map_err(|e| IoError::format(path, e))?;
    for field in fields {
        let ty = match field.ty {
            FieldType::Text | FieldType::Date => ColumnType::String,
            FieldType::Integer => ColumnType::Long,
            FieldType::Float => ColumnType::Double,
            FieldType::Boolean => ColumnType::Bool,
        };
        fgb.add_column(&field.name, ty, |_, col| col.nullable = true);
    }
    for f in features {
        let f = f.borrow();
        fgb.add_feature_geom(f.geometry.clone(), |w| {
            for (i, (field, value)) in fields.iter().zip(&f.properties).enumerate() {
                let v = match value {
                    Value::Null => continue,
                    Value::Bool(b) => ColumnValue::Bool(*b),
                    Value::Int(x) => ColumnValue::Long(*x),
                    Value::Float(x) => ColumnValue::Double(*x),
                    Value::Text(s) => ColumnValue::String(s),
                };
                let _ = w.property(i, &field.name, &v);
            }
        })
        .map_err(|e| IoError::feature(path, f.id as usize, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| IoError::open(path, e))?;
    fgb.write(std::io::BufWriter::new(file))
        .map_err(|e| IoError::format(path, e))
}
