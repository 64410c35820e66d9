//! GeoJSON reading and writing.
//!
//! Cities hand over GeoJSON in their plane rectangular zone as often as in WGS84,
//! so the reader takes coordinates as they are (the layer file states the CRS) and
//! the writer can add the legacy `crs` member that GDAL and QGIS honour.

use crate::{IoError, RawFeature};
use chizu_core::{Feature, FieldDef, Value};
use geo::Geometry;
use std::io::Write;
use std::path::Path;

pub fn read(
    path: &Path,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let file = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
    let doc: serde_json::Value = serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| IoError::format(path, format!("not valid JSON: {e}")))?;
    let features = match doc.get("type").and_then(|t| t.as_str()) {
        Some("FeatureCollection") => doc
            .get("features")
            .and_then(|f| f.as_array())
            .ok_or_else(|| IoError::format(path, "FeatureCollection without a `features` array"))?
            .iter()
            .collect::<Vec<_>>(),
        Some("Feature") => vec![&doc],
        other => {
            return Err(IoError::format(
                path,
                format!("expected a FeatureCollection or a Feature, found type {other:?}"),
            ));
        }
    };
    for (i, value) in features.into_iter().enumerate() {
        let number = i + 1;
        let feature: geojson::Feature = serde_json::from_value(value.clone())
            .map_err(|e| IoError::feature(path, number, format!("not a GeoJSON feature: {e}")))?;
        let geometry = match feature.geometry {
            None => None,
            Some(g) => Some(
                Geometry::<f64>::try_from(g)
                    .map_err(|e| IoError::feature(path, number, format!("geometry: {e}")))?,
            ),
        };
        let attributes = feature
            .properties
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect();
        visit(RawFeature {
            number,
            geometry,
            attributes,
            crs: None,
        })?;
    }
    Ok(())
}

pub fn json_to_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.into()),
        other => Value::Text(other.to_string().into()),
    }
}

/// Writes a FeatureCollection. With `legacy_crs`, the pre-RFC 7946 `crs` member names
/// the (non-WGS84) CRS of the coordinates so that GDAL and QGIS place them right.
pub fn write<'a>(
    path: &Path,
    name: &str,
    legacy_crs: Option<u32>,
    fields: &[FieldDef],
    features: impl IntoIterator<Item = &'a Feature>,
) -> Result<(), IoError> {
    let file = std::fs::File::create(path).map_err(|e| IoError::open(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let io = |e: std::io::Error| IoError::open(path, e);
    write!(
        out,
        "{{\"type\":\"FeatureCollection\",\"name\":{}",
        serde_json::json!(name)
    )
    .map_err(io)?;
    if let Some(code) = legacy_crs {
        write!(
            out,
            ",\"crs\":{{\"type\":\"name\",\"properties\":{{\"name\":\"urn:ogc:def:crs:EPSG::{code}\"}}}}"
        )
        .map_err(io)?;
    }
    out.write_all(b",\"features\":[\n").map_err(io)?;
    for (i, f) in features.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",\n").map_err(io)?;
        }
        serde_json::to_writer(&mut out, &feature_json(fields, f))
            .map_err(|e| IoError::format(path, e))?;
    }
    out.write_all(b"\n]}\n").map_err(io)?;
    out.flush().map_err(io)
}

/// One feature as a GeoJSON object, properties in schema order.
pub fn feature_json(fields: &[FieldDef], f: &Feature) -> serde_json::Value {
    let mut props = serde_json::Map::new();
    for (field, value) in fields.iter().zip(&f.properties) {
        props.insert(field.name.clone(), value.to_json());
    }
    serde_json::json!({
        "type": "Feature",
        "id": f.id,
        "geometry": geojson::Geometry::from(&f.geometry),
        "properties": props,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chizu_core::FieldType;

    #[test]
    fn round_trip_keeps_geometry_and_japanese_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.geojson");
        let fields = vec![FieldDef::new("route", FieldType::Text)];
        let f = Feature {
            id: 1,
            geometry: geo::wkt!(LINESTRING(-84000.5 11000.25, -83990.0 11010.0)).into(),
            properties: vec![Value::Text("国道207号".into())],
        };
        write(&path, "roads", Some(6670), &fields, [&f]).unwrap();
        let mut seen = vec![];
        read(&path, &mut |r| {
            seen.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].geometry.as_ref(), Some(&f.geometry));
        assert_eq!(
            seen[0].attribute("route"),
            Some(&Value::Text("国道207号".into()))
        );
    }

    #[test]
    fn broken_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.geojson");
        std::fs::write(&path, "{\"type\":\"FeatureCollection\",\"features\":[").unwrap();
        let e = read(&path, &mut |_| Ok(())).unwrap_err().to_string();
        assert!(e.contains("bad.geojson") && e.contains("JSON"), "{e}");
    }
}
