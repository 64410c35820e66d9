//! ESRI Shapefile reading and writing, with the text encoding Japanese data needs.
//!
//! Japanese municipal shapefiles usually carry Shift_JIS (CP932) attributes and
//! often say so nowhere: no `.cpg`, language driver byte 0. Decoding is strict,
//! so a CP932 DBF read as UTF-8 fails with a message that names the fix, instead
//! of turning 鹿島 into mojibake.

use crate::{IoError, RawFeature};
use chizu_core::{Feature, FieldDef, FieldType, Value};
use shapefile::dbase;
use std::io::Read;
use std::path::Path;

/// Where the encoding of a DBF came from; reported when decoding fails.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodingSource {
    Cpg,
    LanguageDriver,
    Declared,
    Default,
}

/// Decides the DBF's text encoding: `.cpg`, then the DBF language driver byte,
/// then what the layer file (or `--encoding`) declares, then UTF-8.
pub fn detect_encoding(
    shp: &Path,
    declared: Option<&str>,
) -> Result<(&'static encoding_rs::Encoding, EncodingSource), IoError> {
    let cpg = shp.with_extension("cpg");
    if let Ok(label) = std::fs::read_to_string(&cpg) {
        let label = label.trim().trim_start_matches('\u{feff}');
        return encoding_for(label)
            .map(|e| (e, EncodingSource::Cpg))
            .ok_or_else(|| IoError::format(&cpg, format!("unknown encoding `{label}`")));
    }
    let dbf = shp.with_extension("dbf");
    let mut header = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open(&dbf)
        && f.read_exact(&mut header).is_ok()
    {
        // Language driver ids for Japanese Shift_JIS (dBase / ArcGIS tables).
        if matches!(header[29], 0x13 | 0x7b) {
            return Ok((encoding_rs::SHIFT_JIS, EncodingSource::LanguageDriver));
        }
        if header[29] == 0x57 && declared.is_none() {
            return Ok((encoding_rs::WINDOWS_1252, EncodingSource::LanguageDriver));
        }
    }
    if let Some(label) = declared {
        return encoding_for(label)
            .map(|e| (e, EncodingSource::Declared))
            .ok_or_else(|| IoError::format(shp, format!("unknown encoding `{label}`")));
    }
    Ok((encoding_rs::UTF_8, EncodingSource::Default))
}

pub use chizu_core::config::encoding_for_label as encoding_for;

pub fn read(
    path: &Path,
    declared: Option<&str>,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let (encoding, origin) = detect_encoding(path, declared)?;
    let dbf_path = path.with_extension("dbf");
    let shapes = shapefile::ShapeReader::from_path(path)
        .map_err(|e| IoError::format(path, format!("not a readable shapefile: {e}")))?;
    let dbf_file = std::fs::File::open(&dbf_path).map_err(|e| IoError::open(&dbf_path, e))?;
    let table = dbase::ReaderBuilder::new()
        .with_encoding(dbase::encoding::EncodingRs::from(encoding))
        .build(std::io::BufReader::new(dbf_file))
        .map_err(|e| IoError::format(&dbf_path, format!("not a readable DBF: {e}")))?;
    let expected = table.header().num_records as usize;
    let field_order: Vec<String> = table
        .fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut floats = FloatColumns::new(
        &dbf_path,
        (
            table.header().offset_to_first_record,
            table.header().size_of_record,
        ),
        table.fields(),
    )?;
    let mut reader = shapefile::Reader::new(shapes, table);
    let mut number = 0;
    for item in reader.iter_shapes_and_records() {
        number += 1;
        let (shape, record) = item
            .map_err(|e| IoError::feature(path, number, format!("cannot read the record: {e}")))?;
        let geometry = match shape {
            shapefile::Shape::NullShape => None,
            shapefile::Shape::Polygon(p) => Some(polygon_from_rings(
                p.rings()
                    .iter()
                    .map(|r| r.points().iter().map(|pt| (pt.x, pt.y)).collect()),
            )),
            shapefile::Shape::PolygonZ(p) => Some(polygon_from_rings(
                p.rings()
                    .iter()
                    .map(|r| r.points().iter().map(|pt| (pt.x, pt.y)).collect()),
            )),
            shapefile::Shape::PolygonM(p) => Some(polygon_from_rings(
                p.rings()
                    .iter()
                    .map(|r| r.points().iter().map(|pt| (pt.x, pt.y)).collect()),
            )),
            shape => Some(
                geo::Geometry::<f64>::try_from(shape)
                    .map_err(|e| IoError::feature(path, number, format!("geometry: {e}")))?,
            ),
        };
        let mut values: std::collections::HashMap<String, dbase::FieldValue> =
            record.into_iter().collect();
        for (name, value) in floats.record(number - 1)? {
            values.insert(name, dbase::FieldValue::Numeric(value));
        }
        let mut attributes = Vec::with_capacity(field_order.len());
        for name in &field_order {
            let v = values.remove(name).map(field_value).unwrap_or(Value::Null);
            // encoding_rs decodes malformed bytes to U+FFFD: a DBF read in the wrong
            // encoding is caught here instead of being stored as mojibake.
            if matches!(&v, Value::Text(s) if s.contains('\u{FFFD}')) {
                return Err(IoError::field(
                    &dbf_path,
                    number,
                    name,
                    format!(
                        "text is not valid {} ({}). Japanese data is usually CP932 (Shift_JIS): \
                         set `encoding = \"CP932\"` in the layer's source, add a .cpg file, or pass --encoding CP932",
                        encoding.name(),
                        match origin {
                            EncodingSource::Cpg => "the .cpg file says so",
                            EncodingSource::LanguageDriver =>
                                "the DBF language driver byte says so",
                            EncodingSource::Declared => "as declared",
                            EncodingSource::Default => "nothing declared an encoding",
                        }
                    ),
                ));
            }
            attributes.push((name.clone(), v));
        }
        visit(RawFeature {
            number,
            geometry,
            attributes,
            crs: None,
        })?;
    }
    if number != expected {
        return Err(IoError::format(
            path,
            format!(
                "the .shp holds {number} shapes but the .dbf {expected} records: the shapefile is truncated or its parts do not belong together"
            ),
        ));
    }
    Ok(())
}

/// Builds polygons from shapefile rings the way GDAL does: clockwise rings (or
/// rings with no orientation, like bow-ties) are shells, counter-clockwise rings
/// are holes of the shell that contains them, and a hole inside no shell becomes
/// a shell of its own. Invalid rings are kept for validation to report.
fn polygon_from_rings(rings: impl Iterator<Item = Vec<(f64, f64)>>) -> geo::Geometry<f64> {
    use geo::{Contains, Polygon};
    let mut shells: Vec<(geo::LineString<f64>, Vec<geo::LineString<f64>>)> = Vec::new();
    let mut holes = Vec::new();
    for ring in rings {
        let ring = geo::LineString::from(ring);
        let signed = geo::Area::signed_area(&Polygon::new(ring.clone(), vec![]));
        if signed <= 0.0 {
            shells.push((ring, vec![]));
        } else {
            holes.push(ring);
        }
    }
    for hole in holes {
        let probe = hole.0.first().copied();
        let owner = probe.and_then(|c| {
            shells
                .iter()
                .position(|(shell, _)| Polygon::new(shell.clone(), vec![]).contains(&c))
        });
        match owner {
            Some(i) => shells[i].1.push(hole),
            None => shells.push((hole, vec![])),
        }
    }
    geo::MultiPolygon::new(
        shells
            .into_iter()
            .map(|(shell, holes)| Polygon::new(shell, holes))
            .collect(),
    )
    .into()
}

/// The DBF's `F` (float) fields read again from their text: the dbase crate
/// parses them as f32, which turns a 地積 of 1623819823.81 into 1623819800.
/// The text is what the file holds, so it is parsed as f64 here.
struct FloatColumns {
    file: Option<std::io::BufReader<std::fs::File>>,
    path: std::path::PathBuf,
    first_record: u64,
    record_size: u64,
    /// (name, offset in the record, width)
    columns: Vec<(String, u64, usize)>,
}

impl FloatColumns {
    fn new(
        dbf: &Path,
        (first_record, record_size): (u16, u16),
        fields: &[dbase::FieldInfo],
    ) -> Result<FloatColumns, IoError> {
        let mut columns = Vec::new();
        // Byte 0 of every record is the deletion flag.
        let mut offset = 1u64;
        for f in fields {
            if f.field_type() == dbase::FieldType::Float {
                columns.push((f.name().to_string(), offset, f.length() as usize));
            }
            offset += f.length() as u64;
        }
        let file = if columns.is_empty() {
            None
        } else {
            let f = std::fs::File::open(dbf).map_err(|e| IoError::open(dbf, e))?;
            Some(std::io::BufReader::new(f))
        };
        Ok(FloatColumns {
            file,
            path: dbf.to_path_buf(),
            first_record: first_record as u64,
            record_size: record_size as u64,
            columns,
        })
    }

    /// The `F` values of record `index` (0-based).
    fn record(&mut self, index: usize) -> Result<Vec<(String, Option<f64>)>, IoError> {
        use std::io::{Read, Seek, SeekFrom};
        let Some(file) = &mut self.file else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(self.columns.len());
        let start = self.first_record + index as u64 * self.record_size;
        for (name, offset, width) in &self.columns {
            let mut bytes = vec![0u8; *width];
            file.seek(SeekFrom::Start(start + offset))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| IoError::open(&self.path, e))?;
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
            let value = if text.is_empty() || text.chars().all(|c| c == '*') {
                None
            } else {
                Some(text.parse::<f64>().map_err(|_| {
                    IoError::field(
                        &self.path,
                        index + 1,
                        name,
                        format!("`{text}` is not a number"),
                    )
                })?)
            };
            out.push((name.clone(), value));
        }
        Ok(out)
    }
}

fn field_value(v: dbase::FieldValue) -> Value {
    use dbase::FieldValue as F;
    match v {
        F::Character(s) => s.map(|s| Value::Text(s.into())).unwrap_or(Value::Null),
        F::Memo(s) => Value::Text(s.into()),
        F::Numeric(n) => n.map(Value::Float).unwrap_or(Value::Null),
        F::Float(n) => n
            .map(|f| Value::Float(f.to_string().parse().unwrap_or(f as f64)))
            .unwrap_or(Value::Null),
        F::Logical(b) => b.map(Value::Bool).unwrap_or(Value::Null),
        F::Date(d) => d
            .map(|d| Value::Text(format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()).into()))
            .unwrap_or(Value::Null),
        F::Integer(i) => Value::Int(i as i64),
        F::Currency(f) | F::Double(f) => Value::Float(f),
        F::DateTime(dt) => Value::Text(
            format!(
                "{:04}-{:02}-{:02}",
                dt.date().year(),
                dt.date().month(),
                dt.date().day()
            )
            .into(),
        ),
    }
}

struct Row<'a> {
    fields: &'a [FieldDef],
    values: &'a [Value],
}

impl dbase::WritableRecord for Row<'_> {
    fn write_using<W: std::io::Write>(
        &self,
        writer: &mut dbase::FieldWriter<'_, W>,
    ) -> Result<(), dbase::FieldError> {
        for (field, value) in self.fields.iter().zip(self.values) {
            let v = match (field.ty, value) {
                (FieldType::Text, Value::Text(s)) => {
                    dbase::FieldValue::Character(Some(s.to_string()))
                }
                (FieldType::Text, Value::Null) => dbase::FieldValue::Character(None),
                (FieldType::Integer | FieldType::Float, Value::Int(i)) => {
                    dbase::FieldValue::Numeric(Some(*i as f64))
                }
                (FieldType::Integer | FieldType::Float, Value::Float(f)) => {
                    dbase::FieldValue::Numeric(Some(*f))
                }
                (FieldType::Integer | FieldType::Float, Value::Null) => {
                    dbase::FieldValue::Numeric(None)
                }
                (FieldType::Boolean, Value::Bool(b)) => dbase::FieldValue::Logical(Some(*b)),
                (FieldType::Boolean, Value::Null) => dbase::FieldValue::Logical(None),
                (FieldType::Date, Value::Text(s)) => {
                    let parts: Vec<u32> = s.split('-').filter_map(|p| p.parse().ok()).collect();
                    let date = match parts[..] {
                        [y, m, d] => dbase::Date::new(d, m, y).ok(),
                        _ => None,
                    };
                    dbase::FieldValue::Date(date)
                }
                (FieldType::Date, Value::Null) => dbase::FieldValue::Date(None),
                (_, other) => dbase::FieldValue::Character(Some(other.to_string())),
            };
            writer.write_next_field_value(&v)?;
        }
        Ok(())
    }
}

/// Writes `.shp .shx .dbf .prj .cpg`. Field names must already fit in 10 bytes.
pub fn write<'a>(
    path: &Path,
    epsg: u32,
    encoding: &'static encoding_rs::Encoding,
    fields: &[FieldDef],
    features: impl IntoIterator<Item = &'a Feature> + Clone,
) -> Result<(), IoError> {
    // encoding_rs would write unmappable characters as HTML entities: refuse them.
    let mut widths = vec![1usize; fields.len()];
    for f in features.clone() {
        for (i, (field, value)) in fields.iter().zip(&f.properties).enumerate() {
            if let Value::Text(s) = value {
                let (bytes, _, unmappable) = encoding.encode(s);
                if unmappable {
                    return Err(IoError::field(
                        path,
                        f.id as usize,
                        &field.name,
                        format!("{s:?} cannot be written in {}", encoding.name()),
                    ));
                }
                widths[i] = widths[i].max(bytes.len());
            }
        }
    }
    let mut writer = ShapefileWriter::create(path, epsg, encoding, fields, &widths)?;
    for f in features {
        writer.write(f)?;
    }
    writer.finish()
}

/// Writes a shapefile feature by feature; text columns have the given widths (bytes).
pub struct ShapefileWriter {
    path: std::path::PathBuf,
    epsg: u32,
    encoding: &'static encoding_rs::Encoding,
    fields: Vec<FieldDef>,
    writer: shapefile::Writer<std::io::BufWriter<std::fs::File>>,
}

impl ShapefileWriter {
    pub fn create(
        path: &Path,
        epsg: u32,
        encoding: &'static encoding_rs::Encoding,
        fields: &[FieldDef],
        widths: &[usize],
    ) -> Result<ShapefileWriter, IoError> {
        let mut builder =
            dbase::TableWriterBuilder::with_encoding(dbase::encoding::EncodingRs::from(encoding));
        for (i, field) in fields.iter().enumerate() {
            let name = dbase::FieldName::try_from(field.name.as_str())
                .map_err(|e| IoError::format(path, format!("field `{}`: {e}", field.name)))?;
            builder = match field.ty {
                FieldType::Text => builder.add_character_field(name, widths[i].clamp(1, 254) as u8),
                FieldType::Integer => builder.add_numeric_field(name, 18, 0),
                FieldType::Float => builder.add_numeric_field(name, 24, 6),
                FieldType::Boolean => builder.add_logical_field(name),
                FieldType::Date => builder.add_date_field(name),
            };
        }
        let shp_file = std::fs::File::create(path).map_err(|e| IoError::open(path, e))?;
        let shx_path = path.with_extension("shx");
        let shx_file = std::fs::File::create(&shx_path).map_err(|e| IoError::open(&shx_path, e))?;
        let dbf_path = path.with_extension("dbf");
        let dbf_file = std::fs::File::create(&dbf_path).map_err(|e| IoError::open(&dbf_path, e))?;
        let shapes = shapefile::ShapeWriter::with_shx(
            std::io::BufWriter::new(shp_file),
            std::io::BufWriter::new(shx_file),
        );
        let writer = shapefile::Writer::new(
            shapes,
            builder.build_with_dest(std::io::BufWriter::new(dbf_file)),
        );
        Ok(ShapefileWriter {
            path: path.to_path_buf(),
            epsg,
            encoding,
            fields: fields.to_vec(),
            writer,
        })
    }

    pub fn write(&mut self, f: &Feature) -> Result<(), IoError> {
        let path = self.path.as_path();
        let shape = shapefile::Shape::try_from(f.geometry.clone())
            .map_err(|e| IoError::feature(path, f.id as usize, format!("geometry: {e}")))?;
        let row = Row {
            fields: &self.fields,
            values: &f.properties,
        };
        let result = match shape {
            shapefile::Shape::Polygon(p) => self.writer.write_shape_and_record(&p, &row),
            shapefile::Shape::Polyline(p) => self.writer.write_shape_and_record(&p, &row),
            shapefile::Shape::Point(p) => self.writer.write_shape_and_record(&p, &row),
            shapefile::Shape::Multipoint(p) => self.writer.write_shape_and_record(&p, &row),
            other => {
                return Err(IoError::feature(
                    path,
                    f.id as usize,
                    format!("cannot write a {} shape", other.shapetype()),
                ));
            }
        };
        result.map_err(|e| IoError::feature(path, f.id as usize, e))
    }

    /// Flushes the files and writes `.prj` (ESRI WKT) and `.cpg`.
    pub fn finish(self) -> Result<(), IoError> {
        let ShapefileWriter {
            path,
            epsg,
            encoding,
            writer,
            ..
        } = self;
        drop(writer);
        let prj = path.with_extension("prj");
        let wkt = crate::crs::esri_wkt(epsg)?;
        std::fs::write(&prj, wkt).map_err(|e| IoError::open(&prj, e))?;
        let cpg = path.with_extension("cpg");
        let label = if encoding == encoding_rs::SHIFT_JIS {
            "CP932"
        } else {
            "UTF-8"
        };
        std::fs::write(&cpg, label).map_err(|e| IoError::open(&cpg, e))
    }
}
