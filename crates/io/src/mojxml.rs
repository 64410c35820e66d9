//! The Ministry of Justice map XML (地図XML, namespace
//! `http://www.moj.go.jp/MINJI/tizuxml`): the registry offices' parcel maps
//! (登記所備付地図) as the Ministry publishes them, one zip per municipality
//! holding XMLs or zips of XMLs.
//!
//! Each XML (a sheet group, 地図名) declares its coordinate system once: one
//! of the 19 public zones (公共座標1-19系, here JGD2011 EPSG:6669-6687) or
//! 任意座標系, local coordinates that need control points to be placed.
//! Geometry is topological: points (GM_Point), curves between them
//! (GM_Curve, by value or by `idref`) and surfaces whose rings list curves.
//! X is northing and Y easting. The subject part (主題属性) then lists the
//! parcels (筆), boundary lines (筆界線), boundary points (筆界点), control
//! points (基準点) and map sheet frames (図郭), each pointing at its shape.
//!
//! The reader streams (quick-xml): one XML is held at a time, its shared
//! points and curves in maps, so memory does not grow with the number of
//! sheets. Parcels are emitted at the end of their XML, when the sheet
//! frames that list them (and say whether they come from a 14条地図) are known.

use crate::control::{ControlPointFile, Fitted};
use crate::{IoError, RawFeature, ReadNotes};
use chizu_core::config::parse_epsg;
use chizu_core::{ArbitrarySheets, MojFeatures, MojxmlOptions, Value};
use geo::{Coord, Geometry, LineString, Point, Polygon};
use quick_xml::events::{BytesStart, Event};
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek};
use std::path::Path;

/// Deeper nesting than the schema's ~12 levels is not a MOJ XML file.
const MAX_DEPTH: usize = 64;
/// A zip inside a zip is read into memory: bounded.
const MAX_INNER_ZIP: u64 = 2 << 30;

/// What the layer asked for, and the state shared by every sheet of a file.
pub struct MojReader<'a> {
    options: MojxmlOptions,
    /// The layer file's `crs`, when it gives one.
    declared: Option<u32>,
    warn_only: bool,
    control: Option<ControlPointFile>,
    visit: &'a mut dyn FnMut(RawFeature) -> Result<(), IoError>,
    emitted: usize,
    notes: ReadNotes,
}

/// Reads `path` (an XML, a zip of XMLs or a zip of zips).
pub fn read(
    path: &Path,
    options: &MojxmlOptions,
    declared_crs: &str,
    warn_only: bool,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<ReadNotes, IoError> {
    let control = match &options.control_points {
        Some(file) if options.arbitrary == ArbitrarySheets::ControlPoints => Some(
            ControlPointFile::read(file)
                .map_err(|e| IoError::format(file, format!("control point file: {e}")))?,
        ),
        _ => None,
    };
    let mut reader = MojReader {
        options: options.clone(),
        declared: parse_epsg(declared_crs),
        warn_only,
        control,
        visit,
        emitted: 0,
        notes: ReadNotes::default(),
    };
    let file = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
    let mut file = std::io::BufReader::new(file);
    if is_zip(&mut file).map_err(|e| IoError::open(path, e))? {
        reader.zip(path, file)?;
    } else {
        reader.xml(path, file)?;
    }
    Ok(reader.notes)
}

fn is_zip<R: BufRead>(r: &mut R) -> std::io::Result<bool> {
    Ok(r.fill_buf()?.starts_with(b"PK\x03\x04"))
}

impl MojReader<'_> {
    /// Every `.xml` and `.zip` entry of a zip, in name order.
    fn zip<R: Read + Seek>(&mut self, label: &Path, source: R) -> Result<(), IoError> {
        let mut archive = zip::ZipArchive::new(source)
            .map_err(|e| IoError::format(label, format!("not a readable zip: {e}")))?;
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        let mut sheets = 0;
        for name in names {
            let lower = name.to_ascii_lowercase();
            let inner = label.join(&name);
            if lower.ends_with(".xml") {
                let entry = archive
                    .by_name(&name)
                    .map_err(|e| IoError::format(&inner, e))?;
                self.xml(&inner, std::io::BufReader::new(entry))?;
                sheets += 1;
            } else if lower.ends_with(".zip") {
                let mut entry = archive
                    .by_name(&name)
                    .map_err(|e| IoError::format(&inner, e))?;
                if entry.size() > MAX_INNER_ZIP {
                    return Err(IoError::format(&inner, "inner zip larger than 2 GiB"));
                }
                // The declared size is the file's word: trust it only so far.
                let mut bytes = Vec::with_capacity(entry.size().min(64 << 20) as usize);
                (&mut entry)
                    .take(MAX_INNER_ZIP)
                    .read_to_end(&mut bytes)
                    .map_err(|e| IoError::format(&inner, e))?;
                drop(entry);
                self.zip(&inner, std::io::Cursor::new(bytes))?;
                sheets += 1;
            }
        }
        if sheets == 0 {
            return Err(IoError::format(label, "holds no .xml or .zip file"));
        }
        Ok(())
    }

    fn xml<R: BufRead>(&mut self, label: &Path, source: R) -> Result<(), IoError> {
        let sheet = Sheet::parse(label, source)?;
        self.sheet(label, sheet)
    }

    /// Places a parsed sheet and emits its features of the layer's kind.
    fn sheet(&mut self, label: &Path, sheet: Sheet) -> Result<(), IoError> {
        let Some(placement) = self.placement(label, &sheet)? else {
            return Ok(());
        };
        let header = sheet.header_attributes();
        let features = sheet.features(self.options.features, &placement, label)?;
        for (geometry, mut attributes) in features {
            attributes.extend(header.iter().cloned());
            self.emitted += 1;
            (self.visit)(RawFeature {
                number: self.emitted,
                geometry,
                attributes,
                crs: Some(placement.epsg),
            })?;
        }
        Ok(())
    }

    /// Where the sheet's coordinates go: its zone, or a fitted transformation
    /// for a 任意座標系 sheet. `None`: the sheet is skipped.
    fn placement(&mut self, label: &Path, sheet: &Sheet) -> Result<Option<Placement>, IoError> {
        let name = &sheet.header.map_name;
        if let Some(epsg) = zone_epsg(&sheet.header.crs) {
            if let Some(declared) = self.declared.filter(|d| *d != epsg) {
                let message = format!(
                    "sheet `{name}` declares {} (EPSG:{epsg}) but the layer file says crs = \"EPSG:{declared}\"",
                    sheet.header.crs
                );
                if !self.warn_only {
                    return Err(IoError::format(label, message));
                }
                self.notes.warnings.push(format!(
                    "{}: {message}; the sheet's own zone is used",
                    label.display()
                ));
            }
            return Ok(Some(Placement { epsg, fitted: None }));
        }
        if sheet.header.crs != "任意座標系" {
            return Err(IoError::format(
                label,
                format!("sheet `{name}`: unknown 座標系 `{}`", sheet.header.crs),
            ));
        }
        let parcels = sheet.parcel_count;
        match self.options.arbitrary {
            ArbitrarySheets::Refuse => Err(IoError::format(
                label,
                format!(
                    "sheet `{name}` is in 任意座標系 (arbitrary local coordinates) and holds {parcels} parcels: \
                     it cannot be placed on the earth by itself. The layer file can skip such sheets \
                     (mojxml.arbitrary = \"skip\") or place them from control points \
                     (mojxml.arbitrary = \"control_points\" with mojxml.control_points = \"<file>\")"
                ),
            )),
            ArbitrarySheets::Skip => {
                self.notes.skipped_sheets += 1;
                self.notes.skipped_parcels += parcels;
                self.notes.warnings.push(format!(
                    "{}: sheet `{name}` in 任意座標系 skipped ({parcels} parcels)",
                    label.display()
                ));
                Ok(None)
            }
            ArbitrarySheets::ControlPoints => self.fit(label, name, parcels).map(Some),
        }
    }

    fn fit(&mut self, label: &Path, name: &str, parcels: usize) -> Result<Placement, IoError> {
        let file = self.options.control_points.clone().unwrap_or_default();
        let control = self
            .control
            .as_ref()
            .and_then(|c| c.for_sheet(name))
            .ok_or_else(|| {
                IoError::format(
                    label,
                    format!(
                        "sheet `{name}` is in 任意座標系 ({parcels} parcels) and {} has no control points for it",
                        file.display()
                    ),
                )
            })?;
        let epsg = parse_epsg(&control.crs).ok_or_else(|| {
            IoError::format(
                &file,
                format!("sheet `{name}`: crs `{}` is not EPSG:<code>", control.crs),
            )
        })?;
        let fitted = crate::control::fit(control.method, &control.points)
            .map_err(|e| IoError::format(&file, format!("sheet `{name}`: {e}")))?;
        if fitted.max_residual() > control.max_residual_m {
            return Err(IoError::format(
                label,
                format!(
                    "sheet `{name}`: the {} fit to its control points leaves a residual of {:.1} mm, \
                     more than max_residual_m = {} ({}): check the points in {}",
                    fitted.method,
                    fitted.max_residual() * 1000.0,
                    control.max_residual_m,
                    fitted.residual_list(),
                    file.display()
                ),
            ));
        }
        self.notes.warnings.push(format!(
            "{}: sheet `{name}` in 任意座標系 placed in EPSG:{epsg} by a {} fit to {} control points (residuals: {})",
            label.display(),
            fitted.method,
            control.points.len(),
            fitted.residual_list()
        ));
        Ok(Placement {
            epsg,
            fitted: Some(fitted),
        })
    }
}

/// 公共座標N系 → JGD2011 / Japan Plane Rectangular CS N (EPSG:6668 + N).
pub fn zone_epsg(name: &str) -> Option<u32> {
    let digits: String = name
        .strip_prefix("公共座標")?
        .strip_suffix('系')?
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            c => c,
        })
        .collect();
    let zone: u32 = digits.parse().ok()?;
    (1..=19).contains(&zone).then_some(6668 + zone)
}

/// How a sheet's (X, Y) become stored coordinates (x = easting, y = northing).
struct Placement {
    epsg: u32,
    fitted: Option<Fitted>,
}

impl Placement {
    fn coord(&self, (x, y): (f64, f64)) -> Coord<f64> {
        let (x, y) = match &self.fitted {
            Some(f) => f.apply(x, y),
            None => (x, y),
        };
        Coord { x: y, y: x }
    }
}

#[derive(Debug, Default)]
struct Header {
    map_name: String,
    city_code: String,
    city_name: String,
    crs: String,
    datum: String,
}

/// A position of a curve: by value, or a reference to a GM_Point.
enum Position {
    Direct(f64, f64),
    Ref(Box<str>),
}

/// A surface's rings as lists of curve ids; the first is the exterior.
type Rings = Vec<Vec<Box<str>>>;

/// One element of the subject part (筆, 図郭, ...): its id, the text of its
/// descendants by path (`地番`, `左下座標/X`, `筆界未定構成筆[0]/地番`) and its
/// references (`形状`, `筆参照`).
#[derive(Debug, Default)]
struct Record {
    id: String,
    texts: Vec<(String, String)>,
    refs: Vec<(String, String)>,
}

impl Record {
    fn text(&self, path: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.as_str())
    }
    fn shape(&self) -> Option<&str> {
        self.refs
            .iter()
            .find(|(p, _)| p == "形状")
            .map(|(_, r)| r.as_str())
    }
}

#[derive(Default)]
struct Sheet {
    header: Header,
    points: HashMap<Box<str>, (f64, f64)>,
    curves: HashMap<Box<str>, Vec<Position>>,
    surfaces: HashMap<Box<str>, Rings>,
    records: HashMap<&'static str, Vec<Record>>,
    parcel_count: usize,
}

/// The subject elements chizu reads.
const SUBJECTS: &[&str] = &["筆", "図郭", "筆界線", "仮行政界線", "筆界点", "基準点"];

/// Parser state inside 空間属性.
#[derive(Default)]
struct Spatial {
    point: Option<(Box<str>, Option<f64>, Option<f64>)>,
    curve: Option<(Box<str>, Vec<Position>)>,
    direct: (Option<f64>, Option<f64>),
    surface: Option<(Box<str>, Rings)>,
}

/// The subject element being read: its kind, its depth (the path length
/// while inside it) and what it holds so far.
struct OpenRecord {
    kind: &'static str,
    depth: usize,
    record: Record,
    /// 筆界未定構成筆 elements seen so far.
    constituents: usize,
}

/// One XML document being parsed into a [`Sheet`].
struct Parser<'a> {
    label: &'a Path,
    sheet: Sheet,
    /// Local names of the open elements, root first.
    path: Vec<String>,
    spatial: Spatial,
    open: Option<OpenRecord>,
}

impl Sheet {
    fn parse<R: BufRead>(label: &Path, source: R) -> Result<Sheet, IoError> {
        let mut xml = quick_xml::Reader::from_reader(source);
        xml.config_mut().trim_text(true);
        let mut parser = Parser {
            label,
            sheet: Sheet::default(),
            path: Vec::new(),
            spatial: Spatial::default(),
            open: None,
        };
        let mut text = String::new();
        let mut buf = Vec::new();
        let bad = |message: String| IoError::format(label, message);
        loop {
            let event = xml.read_event_into(&mut buf).map_err(|e| {
                bad(format!(
                    "not well-formed XML near byte {}: {e}",
                    xml.buffer_position()
                ))
            })?;
            match event {
                Event::Start(e) => {
                    parser.start(&e)?;
                    text.clear();
                }
                Event::Empty(e) => {
                    parser.start(&e)?;
                    parser.end("")?;
                }
                Event::Text(t) => {
                    let t = t.unescape().map_err(|e| {
                        bad(format!("bad text near byte {}: {e}", xml.buffer_position()))
                    })?;
                    text.push_str(&t);
                }
                Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
                Event::End(_) => {
                    let value = std::mem::take(&mut text);
                    parser.end(value.trim())?;
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if let Some(open) = parser.path.last() {
            return Err(bad(format!(
                "the file ends inside <{open}>: it is cut short"
            )));
        }
        if parser.sheet.header.crs.is_empty() {
            return Err(bad("not a MOJ map XML: it has no <座標系>".into()));
        }
        Ok(parser.sheet)
    }
}

impl Parser<'_> {
    fn error(&self, message: impl ToString) -> IoError {
        IoError::format(self.label, message)
    }

    /// An element opens: `path` does not hold it yet.
    fn start(&mut self, e: &BytesStart) -> Result<(), IoError> {
        let name = local(e);
        if self.path.is_empty() && name != "地図" {
            return Err(self.error(format!(
                "not a MOJ map XML: the root element is <{name}>, not <地図>"
            )));
        }
        if self.path.len() >= MAX_DEPTH {
            return Err(self.error(format!("elements nested deeper than {MAX_DEPTH}")));
        }
        let id = attribute(e, "id", self.label)?;
        let idref = attribute(e, "idref", self.label)?;
        // Subject elements sit in 主題属性; the files put 図郭 beside it,
        // directly under the root.
        let at_subject_level = match self.path.len() {
            1 => name == "図郭",
            2 => self.path[1] == "主題属性",
            _ => false,
        };
        if self.open.is_some() {
            self.start_in_record(&name, idref);
        } else if at_subject_level {
            self.open_record(&name, id);
        } else if self.path.get(1).is_some_and(|s| s == "空間属性") {
            self.start_spatial(&name, id, idref)?;
        }
        self.path.push(name);
        Ok(())
    }

    fn start_spatial(
        &mut self,
        name: &str,
        id: Option<String>,
        idref: Option<String>,
    ) -> Result<(), IoError> {
        let s = &mut self.spatial;
        let needs_id = |id: Option<String>| {
            id.map(Into::into)
                .ok_or_else(|| IoError::format(self.label, format!("a <{name}> without an id")))
        };
        match name {
            "GM_Point" => s.point = Some((needs_id(id)?, None, None)),
            "GM_Curve" if self.path.len() == 2 => s.curve = Some((needs_id(id)?, Vec::new())),
            "GM_Position.direct" => s.direct = (None, None),
            "GM_PointRef.point" => {
                if let (Some((_, positions)), Some(id)) = (&mut s.curve, idref) {
                    positions.push(Position::Ref(id.into()));
                }
            }
            "GM_Surface" => s.surface = Some((needs_id(id)?, Vec::new())),
            "GM_Ring" => {
                if let Some((_, rings)) = &mut s.surface {
                    rings.push(Vec::new());
                }
            }
            "GM_CompositeCurve.generator" => {
                if let (Some((_, rings)), Some(id)) = (&mut s.surface, idref) {
                    match rings.last_mut() {
                        Some(ring) => ring.push(id.into()),
                        None => return Err(self.error("a curve reference outside a ring")),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn open_record(&mut self, name: &str, id: Option<String>) {
        if name == "筆" {
            self.sheet.parcel_count += 1;
        }
        if let Some(kind) = SUBJECTS.iter().find(|s| **s == name) {
            self.open = Some(OpenRecord {
                kind,
                depth: self.path.len() + 1,
                record: Record {
                    id: id.unwrap_or_default(),
                    ..Record::default()
                },
                constituents: 0,
            });
        }
    }

    fn start_in_record(&mut self, name: &str, idref: Option<String>) {
        let Some(open) = &mut self.open else { return };
        if name == "筆界未定構成筆" && self.path.len() == open.depth {
            open.constituents += 1;
        }
        if let Some(id) = idref {
            let key = record_key(&self.path, open, name);
            open.record.refs.push((key, id));
        }
    }

    /// The innermost element closes: `path` still holds it.
    fn end(&mut self, text: &str) -> Result<(), IoError> {
        let result = if self.open.is_some() {
            self.end_subject(text);
            Ok(())
        } else if self.path.len() == 2 {
            let field = self.path[1].clone();
            self.header(&field, text);
            Ok(())
        } else if self.path.get(1).is_some_and(|s| s == "空間属性") {
            self.end_spatial(text)
        } else {
            Ok(())
        };
        self.path.pop();
        result
    }

    fn header(&mut self, field: &str, text: &str) {
        let h = &mut self.sheet.header;
        let slot = match field {
            "地図名" => &mut h.map_name,
            "市区町村コード" => &mut h.city_code,
            "市区町村名" => &mut h.city_name,
            "座標系" => &mut h.crs,
            "測地系判別" => &mut h.datum,
            _ => return,
        };
        *slot = text.to_string();
    }

    fn end_spatial(&mut self, text: &str) -> Result<(), IoError> {
        let name = self.path.last().map(String::as_str).unwrap_or_default();
        let s = &mut self.spatial;
        match name {
            "X" | "Y" => {
                let v = text
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        IoError::format(self.label, format!("<{name}>: `{text}` is not a number"))
                    })?;
                let in_point = self.path.iter().any(|p| p == "GM_Point");
                let target = match &mut s.point {
                    Some((_, x, y)) if in_point => (x, y),
                    _ => (&mut s.direct.0, &mut s.direct.1),
                };
                *(if name == "X" { target.0 } else { target.1 }) = Some(v);
            }
            "GM_Point" => match s.point.take() {
                Some((id, Some(x), Some(y))) => {
                    self.sheet.points.insert(id, (x, y));
                }
                _ => return Err(self.error("a GM_Point without X and Y")),
            },
            "GM_Position.direct" => match (&mut s.curve, s.direct) {
                (Some((_, positions)), (Some(x), Some(y))) => {
                    positions.push(Position::Direct(x, y))
                }
                _ => return Err(self.error("a GM_Position.direct without X and Y")),
            },
            "GM_Curve" if self.path.len() == 3 => {
                if let Some((id, positions)) = s.curve.take() {
                    self.sheet.curves.insert(id, positions);
                }
            }
            "GM_Surface" => {
                if let Some((id, rings)) = s.surface.take() {
                    self.sheet.surfaces.insert(id, rings);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end_subject(&mut self, text: &str) {
        let Some(open) = &mut self.open else { return };
        if self.path.len() == open.depth {
            let open = self.open.take().expect("matched above");
            self.sheet
                .records
                .entry(open.kind)
                .or_default()
                .push(open.record);
        } else if !text.is_empty() {
            let (parents, name) = self.path.split_at(self.path.len() - 1);
            let key = record_key(parents, open, &name[0]);
            open.record.texts.push((key, text.to_string()));
        }
    }
}

/// The key of element `name` (below `parents`) inside the open record:
/// `地番`, `左下座標/X`, `筆界未定構成筆[0]/地番`.
fn record_key(parents: &[String], open: &OpenRecord, name: &str) -> String {
    let mut parts: Vec<String> = parents.iter().skip(open.depth).cloned().collect();
    parts.push(name.to_string());
    if parts[0] == "筆界未定構成筆" {
        parts[0] = format!("筆界未定構成筆[{}]", open.constituents.saturating_sub(1));
    }
    parts.join("/")
}

fn attribute(e: &BytesStart, key: &str, label: &Path) -> Result<Option<String>, IoError> {
    let bad = |err: String| IoError::format(label, format!("attribute `{key}`: {err}"));
    match e
        .try_get_attribute(key)
        .map_err(|err| bad(err.to_string()))?
    {
        Some(a) => a
            .unescape_value()
            .map(|v| Some(v.into_owned()))
            .map_err(|err| bad(err.to_string())),
        None => Ok(None),
    }
}

fn local(e: &BytesStart) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

pub(crate) type Built = (Option<Geometry<f64>>, Vec<(String, Value)>);

impl Sheet {
    fn header_attributes(&self) -> Vec<(String, Value)> {
        let h = &self.header;
        [
            ("地図名", &h.map_name),
            ("市区町村コード", &h.city_code),
            ("市区町村名", &h.city_name),
            ("座標系", &h.crs),
            ("測地系判別", &h.datum),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), text_value(v)))
        .collect()
    }

    fn features(
        &self,
        kind: MojFeatures,
        place: &Placement,
        label: &Path,
    ) -> Result<Vec<Built>, IoError> {
        let records = |k: &str| self.records.get(k).map(Vec::as_slice).unwrap_or(&[]);
        match kind {
            MojFeatures::Parcels => self.parcels(place, label),
            MojFeatures::Sheets => records("図郭")
                .iter()
                .map(|r| Ok(self.frame(r, place)))
                .collect(),
            MojFeatures::BoundaryLines => records("筆界線")
                .iter()
                .map(|r| (r, "筆界線"))
                .chain(records("仮行政界線").iter().map(|r| (r, "仮行政界線")))
                .map(|(r, class)| {
                    let line = self.curve_line(r.shape(), place, label)?;
                    Ok((
                        line.map(Geometry::LineString),
                        vec![
                            ("種類".to_string(), Value::Text(class.into())),
                            (
                                "線種別".to_string(),
                                text_value(r.text("線種別").unwrap_or("")),
                            ),
                        ],
                    ))
                })
                .collect(),
            MojFeatures::BoundaryPoints => records("筆界点")
                .iter()
                .map(|r| {
                    Ok((
                        self.point(r.shape(), place, label)?,
                        vec![(
                            "点番名".to_string(),
                            text_value(r.text("点番名").unwrap_or("")),
                        )],
                    ))
                })
                .collect(),
            MojFeatures::ControlPoints => records("基準点")
                .iter()
                .map(|r| {
                    let attributes = ["名称", "基準点種別", "埋標区分"]
                        .iter()
                        .map(|k| (k.to_string(), text_value(r.text(k).unwrap_or(""))))
                        .collect();
                    Ok((self.point(r.shape(), place, label)?, attributes))
                })
                .collect(),
        }
    }

    fn parcels(&self, place: &Placement, label: &Path) -> Result<Vec<Built>, IoError> {
        // Which sheet frames (図郭) list each parcel.
        let mut frames: HashMap<&str, Vec<&Record>> = HashMap::new();
        for frame in self.records.get("図郭").map(Vec::as_slice).unwrap_or(&[]) {
            for (_, id) in frame.refs.iter().filter(|(p, _)| p == "筆参照") {
                frames.entry(id.as_str()).or_default().push(frame);
            }
        }
        let parcels = self.records.get("筆").map(Vec::as_slice).unwrap_or(&[]);
        parcels
            .iter()
            .map(|r| {
                let geometry = match r.shape() {
                    Some(id) => Some(Geometry::Polygon(self.surface(id, place, label)?)),
                    None => None,
                };
                let listed = frames.get(r.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                Ok((geometry, parcel_attributes(r, listed)))
            })
            .collect()
    }

    fn position(&self, p: &Position, label: &Path) -> Result<(f64, f64), IoError> {
        match p {
            Position::Direct(x, y) => Ok((*x, *y)),
            Position::Ref(id) => self.points.get(id).copied().ok_or_else(|| {
                IoError::format(label, format!("curve point `{id}` is not defined"))
            }),
        }
    }

    fn curve(&self, id: &str, place: &Placement, label: &Path) -> Result<Vec<Coord<f64>>, IoError> {
        let positions = self
            .curves
            .get(id)
            .ok_or_else(|| IoError::format(label, format!("curve `{id}` is not defined")))?;
        positions
            .iter()
            .map(|p| self.position(p, label).map(|xy| place.coord(xy)))
            .collect()
    }

    fn curve_line(
        &self,
        id: Option<&str>,
        place: &Placement,
        label: &Path,
    ) -> Result<Option<LineString<f64>>, IoError> {
        id.map(|id| self.curve(id, place, label).map(LineString::new))
            .transpose()
    }

    fn point(
        &self,
        id: Option<&str>,
        place: &Placement,
        label: &Path,
    ) -> Result<Option<Geometry<f64>>, IoError> {
        let Some(id) = id else { return Ok(None) };
        let xy = self
            .points
            .get(id)
            .ok_or_else(|| IoError::format(label, format!("point `{id}` is not defined")))?;
        Ok(Some(Geometry::Point(Point(place.coord(*xy)))))
    }

    /// A surface's rings, each chained from its curves: a curve continues the
    /// ring from its start or, drawn the other way, from its end.
    fn surface(&self, id: &str, place: &Placement, label: &Path) -> Result<Polygon<f64>, IoError> {
        let rings = self
            .surfaces
            .get(id)
            .ok_or_else(|| IoError::format(label, format!("surface `{id}` is not defined")))?;
        let mut built = Vec::with_capacity(rings.len());
        for ring in rings {
            let mut coords: Vec<Coord<f64>> = Vec::new();
            for curve_id in ring {
                let curve = self.curve(curve_id, place, label)?;
                chain(&mut coords, curve);
            }
            if let Some(first) = coords.first().copied()
                && coords.last() != Some(&first)
            {
                coords.push(first);
            }
            built.push(LineString::new(coords));
        }
        let mut rings = built.into_iter();
        let exterior = rings
            .next()
            .ok_or_else(|| IoError::format(label, format!("surface `{id}` has no ring")))?;
        Ok(Polygon::new(exterior, rings.collect()))
    }

    fn frame(&self, r: &Record, place: &Placement) -> Built {
        let corner = |name: &str| -> Option<Coord<f64>> {
            let x = r.text(&format!("{name}/X"))?.parse().ok()?;
            let y = r.text(&format!("{name}/Y"))?.parse().ok()?;
            Some(place.coord((x, y)))
        };
        let corners: Option<Vec<Coord<f64>>> =
            ["左下座標", "右下座標", "右上座標", "左上座標", "左下座標"]
                .iter()
                .map(|c| corner(c))
                .collect();
        let geometry = corners.map(|c| Geometry::Polygon(Polygon::new(LineString::new(c), vec![])));
        let date = |prefix: &str| -> Value {
            let part = |p: &str| {
                r.text(&format!("{prefix}/{p}"))
                    .and_then(|t| t.parse::<u32>().ok())
            };
            match (part("年"), part("月"), part("日")) {
                (Some(y), Some(m), Some(d)) => Value::Text(format!("{y:04}-{m:02}-{d:02}").into()),
                (Some(y), Some(m), None) => Value::Text(format!("{y:04}-{m:02}").into()),
                (Some(y), None, None) => Value::Text(format!("{y:04}").into()),
                _ => Value::Null,
            }
        };
        let mut attributes: Vec<(String, Value)> = ["地図番号", "地図種類", "地図分類", "地図材質"]
            .iter()
            .map(|k| (k.to_string(), text_value(r.text(k).unwrap_or(""))))
            .collect();
        attributes.push((
            "縮尺分母".into(),
            r.text("縮尺分母")
                .and_then(|t| t.parse::<i64>().ok())
                .map(Value::Int)
                .unwrap_or(Value::Null),
        ));
        attributes.push((
            "方位不明".into(),
            r.text("方位不明フラグ")
                .map(|t| Value::Bool(t == "true"))
                .unwrap_or(Value::Null),
        ));
        attributes.push(("備付地図年月日".into(), date("備付地図年月日")));
        attributes.push(("地図作成年月日".into(), date("地図作成年月日")));
        attributes.push(("測図年月".into(), date("分割図葉/測図年月")));
        attributes.push(("調査年月".into(), date("分割図葉/調査年月")));
        let parcels = r.refs.iter().filter(|(p, _)| p == "筆参照").count();
        attributes.push(("筆数".into(), Value::Int(parcels as i64)));
        (geometry, attributes)
    }
}

/// Appends `curve` to a ring being chained.
fn chain(coords: &mut Vec<Coord<f64>>, mut curve: Vec<Coord<f64>>) {
    if curve.is_empty() {
        return;
    }
    let Some(&last) = coords.last() else {
        coords.extend(curve);
        return;
    };
    let (start, end) = (curve[0], curve[curve.len() - 1]);
    if last == start {
        coords.extend(curve.into_iter().skip(1));
    } else if last == end {
        curve.reverse();
        coords.extend(curve.into_iter().skip(1));
    } else if coords.len() >= 2 && (coords[0] == start || coords[0] == end) {
        // The first curve ran the other way round.
        coords.reverse();
        chain(coords, curve);
    } else {
        coords.extend(curve);
    }
}

/// The attributes of a parcel (筆), with its mark: 地区外 and 別図 parcels
/// (placeholders for land drawn elsewhere) and 筆界未定 parcels (boundary
/// undetermined between the lots listed) are kept and marked.
fn parcel_attributes(r: &Record, frames: &[&Record]) -> Vec<(String, Value)> {
    let mut attributes = vec![("筆ID".to_string(), text_value(&r.id))];
    for key in [
        "大字コード",
        "丁目コード",
        "小字コード",
        "予備コード",
        "大字名",
        "丁目名",
        "小字名",
        "予備名",
        "地番",
        "精度区分",
        "座標値種別",
    ] {
        attributes.push((key.to_string(), text_value(r.text(key).unwrap_or(""))));
    }
    let mut constituents = Vec::new();
    for n in 0.. {
        let prefix = format!("筆界未定構成筆[{n}]/");
        let part = |k: &str| r.text(&format!("{prefix}{k}")).unwrap_or("");
        let chiban = part("地番");
        let any = r.texts.iter().any(|(p, _)| p.starts_with(&prefix));
        if !any {
            break;
        }
        let place: String = ["大字名", "丁目名", "小字名"]
            .iter()
            .map(|k| part(k))
            .collect();
        constituents.push(format!(
            "{place}{}{chiban}",
            if place.is_empty() { "" } else { " " }
        ));
    }
    let chiban = r.text("地番").unwrap_or("");
    let mark = if chiban.contains("地区外") {
        "地区外"
    } else if chiban.contains("別図") {
        "別図"
    } else if !constituents.is_empty() {
        "筆界未定"
    } else {
        ""
    };
    attributes.push((
        "筆界未定構成筆".into(),
        text_value(&constituents.join("、")),
    ));
    attributes.push(("区分".into(), text_value(mark)));
    let joined = |k: &str| {
        let mut values: Vec<&str> = frames.iter().filter_map(|f| f.text(k)).collect();
        values.dedup();
        text_value(&values.join("、"))
    };
    attributes.push(("地図番号".into(), joined("地図番号")));
    attributes.push(("地図種類".into(), joined("地図種類")));
    attributes.push(("地図分類".into(), joined("地図分類")));
    attributes
}

fn text_value(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Text(s.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_map_to_jgd2011() {
        assert_eq!(zone_epsg("公共座標1系"), Some(6669));
        assert_eq!(zone_epsg("公共座標2系"), Some(6670));
        assert_eq!(zone_epsg("公共座標８系"), Some(6676));
        assert_eq!(zone_epsg("公共座標19系"), Some(6687));
        assert_eq!(zone_epsg("公共座標20系"), None);
        assert_eq!(zone_epsg("任意座標系"), None);
    }

    /// A sheet with a parcel with a hole, a 筆界未定 parcel and a 地区外 one.
    const SHEET: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<地図 xmlns="http://www.moj.go.jp/MINJI/tizuxml" xmlns:zmn="http://www.moj.go.jp/MINJI/tizuzumen">
<地図名>test</地図名><市区町村コード>41207</市区町村コード><市区町村名>鹿島市</市区町村名><座標系>公共座標2系</座標系>
<空間属性>
<zmn:GM_Point id="P1"><zmn:GM_Point.position><zmn:DirectPosition><zmn:X>0</zmn:X><zmn:Y>0</zmn:Y></zmn:DirectPosition></zmn:GM_Point.position></zmn:GM_Point>
<zmn:GM_Point id="P2"><zmn:GM_Point.position><zmn:DirectPosition><zmn:X>0</zmn:X><zmn:Y>10</zmn:Y></zmn:DirectPosition></zmn:GM_Point.position></zmn:GM_Point>
<zmn:GM_Point id="P3"><zmn:GM_Point.position><zmn:DirectPosition><zmn:X>10</zmn:X><zmn:Y>10</zmn:Y></zmn:DirectPosition></zmn:GM_Point.position></zmn:GM_Point>
<zmn:GM_Point id="P4"><zmn:GM_Point.position><zmn:DirectPosition><zmn:X>10</zmn:X><zmn:Y>0</zmn:Y></zmn:DirectPosition></zmn:GM_Point.position></zmn:GM_Point>
<zmn:GM_Curve id="C1"><zmn:GM_Curve.segment><zmn:GM_LineString><zmn:GM_LineString.controlPoint>
<zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref="P1"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref="P2"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.direct><zmn:X>10</zmn:X><zmn:Y>10</zmn:Y></zmn:GM_Position.direct></zmn:GM_PointArray.column>
</zmn:GM_LineString.controlPoint></zmn:GM_LineString></zmn:GM_Curve.segment></zmn:GM_Curve>
<zmn:GM_Curve id="C2"><zmn:GM_Curve.segment><zmn:GM_LineString><zmn:GM_LineString.controlPoint>
<zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref="P1"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref="P4"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref="P3"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>
</zmn:GM_LineString.controlPoint></zmn:GM_LineString></zmn:GM_Curve.segment></zmn:GM_Curve>
<zmn:GM_Curve id="C3"><zmn:GM_Curve.segment><zmn:GM_LineString><zmn:GM_LineString.controlPoint>
<zmn:GM_PointArray.column><zmn:GM_Position.direct><zmn:X>2</zmn:X><zmn:Y>2</zmn:Y></zmn:GM_Position.direct></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.direct><zmn:X>2</zmn:X><zmn:Y>4</zmn:Y></zmn:GM_Position.direct></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.direct><zmn:X>4</zmn:X><zmn:Y>4</zmn:Y></zmn:GM_Position.direct></zmn:GM_PointArray.column>
<zmn:GM_PointArray.column><zmn:GM_Position.direct><zmn:X>2</zmn:X><zmn:Y>2</zmn:Y></zmn:GM_Position.direct></zmn:GM_PointArray.column>
</zmn:GM_LineString.controlPoint></zmn:GM_LineString></zmn:GM_Curve.segment></zmn:GM_Curve>
<zmn:GM_Surface id="F1"><zmn:GM_Surface.patch><zmn:GM_Polygon><zmn:GM_Polygon.boundary><zmn:GM_SurfaceBoundary>
<zmn:GM_SurfaceBoundary.exterior><zmn:GM_Ring><zmn:GM_CompositeCurve.generator idref="C1"/><zmn:GM_CompositeCurve.generator idref="C2"/></zmn:GM_Ring></zmn:GM_SurfaceBoundary.exterior>
<zmn:GM_SurfaceBoundary.interior><zmn:GM_Ring><zmn:GM_CompositeCurve.generator idref="C3"/></zmn:GM_Ring></zmn:GM_SurfaceBoundary.interior>
</zmn:GM_SurfaceBoundary></zmn:GM_Polygon.boundary></zmn:GM_Polygon></zmn:GM_Surface.patch></zmn:GM_Surface>
</空間属性>
<主題属性>
<筆 id="H1"><大字コード>001</大字コード><大字名>大字高津原</大字名><地番>12-3</地番><形状 idref="F1"/><精度区分>甲二</精度区分></筆>
<筆 id="H2"><大字コード>001</大字コード><大字名>大字高津原</大字名><地番>13+14</地番><形状 idref="F1"/>
<筆界未定構成筆><大字名>大字高津原</大字名><地番>13</地番></筆界未定構成筆>
<筆界未定構成筆><大字名>大字高津原</大字名><地番>14</地番></筆界未定構成筆></筆>
<筆 id="H3"><大字コード>001</大字コード><地番>地区外</地番><形状 idref="F1"/></筆>
</主題属性>
<図郭><地図番号>A-1</地図番号><縮尺分母>500</縮尺分母><地図種類>法務局作成地図</地図種類><地図分類>法第14条1項地図</地図分類>
<左下座標><zmn:X>0</zmn:X><zmn:Y>0</zmn:Y></左下座標><右下座標><zmn:X>0</zmn:X><zmn:Y>10</zmn:Y></右下座標>
<右上座標><zmn:X>10</zmn:X><zmn:Y>10</zmn:Y></右上座標><左上座標><zmn:X>10</zmn:X><zmn:Y>0</zmn:Y></左上座標>
<備付地図年月日><年>2021</年><月>4</月><日>1</日></備付地図年月日><筆参照 idref="H1"/><筆参照 idref="H3"/></図郭>
</地図>"#;

    fn read_str(xml: &str, features: MojFeatures) -> Result<Vec<RawFeature>, IoError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheet.xml");
        std::fs::write(&path, xml).unwrap();
        let mut out = Vec::new();
        let options = MojxmlOptions {
            features,
            ..MojxmlOptions::default()
        };
        read(&path, &options, "", false, &mut |f| {
            out.push(f);
            Ok(())
        })?;
        Ok(out)
    }

    fn text<'a>(f: &'a RawFeature, name: &str) -> Option<&'a str> {
        f.attribute(name).and_then(Value::as_text)
    }

    #[test]
    fn parcels_holes_marks_and_frames() {
        let parcels = read_str(SHEET, MojFeatures::Parcels).unwrap();
        assert_eq!(parcels.len(), 3);
        let Some(Geometry::Polygon(p)) = &parcels[0].geometry else {
            panic!("{:?}", parcels[0].geometry)
        };
        // X is northing: (X 0, Y 10) is x = 10, y = 0. C2 runs the other way.
        let ring: Vec<(f64, f64)> = p.exterior().0.iter().map(|c| (c.x, c.y)).collect();
        assert_eq!(
            ring,
            vec![(0., 0.), (10., 0.), (10., 10.), (0., 10.), (0., 0.)]
        );
        assert_eq!(p.interiors().len(), 1);
        assert_eq!(parcels[0].crs, Some(6670));
        assert_eq!(text(&parcels[0], "筆ID"), Some("H1"));
        assert_eq!(text(&parcels[0], "地番"), Some("12-3"));
        assert_eq!(text(&parcels[0], "地図分類"), Some("法第14条1項地図"));
        assert_eq!(text(&parcels[0], "区分"), None);
        assert_eq!(text(&parcels[1], "区分"), Some("筆界未定"));
        assert_eq!(
            text(&parcels[1], "筆界未定構成筆"),
            Some("大字高津原 13、大字高津原 14")
        );
        assert_eq!(text(&parcels[1], "地図番号"), None);
        assert_eq!(text(&parcels[2], "区分"), Some("地区外"));
        assert_eq!(text(&parcels[2], "市区町村名"), Some("鹿島市"));
        let frames = read_str(SHEET, MojFeatures::Sheets).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(text(&frames[0], "備付地図年月日"), Some("2021-04-01"));
        assert_eq!(frames[0].attribute("筆数"), Some(&Value::Int(2)));
        assert!(matches!(frames[0].geometry, Some(Geometry::Polygon(_))));
    }

    #[test]
    fn damaged_files_are_named_not_panics() {
        let cases = [
            (
                SHEET.replace("idref=\"P4\"", "idref=\"P9\""),
                "`P9` is not defined",
            ),
            (
                SHEET.replace(
                    "<zmn:X>10</zmn:X><zmn:Y>0</zmn:Y></zmn:DirectPosition>",
                    "<zmn:X>ten</zmn:X><zmn:Y>0</zmn:Y></zmn:DirectPosition>",
                ),
                "`ten` is not a number",
            ),
            (
                SHEET.replace(
                    "<座標系>公共座標2系</座標系>",
                    "<座標系>公共座標42系</座標系>",
                ),
                "unknown 座標系",
            ),
            (
                SHEET.replace("<座標系>公共座標2系</座標系>", ""),
                "no <座標系>",
            ),
            (
                SHEET
                    .replace("<地図 xmlns", "<map xmlns")
                    .replace("</地図>", "</map>"),
                "root element is <map>",
            ),
            (SHEET[..SHEET.len() / 2].to_string(), ""),
            ("no xml at all".to_string(), ""),
        ];
        for (xml, needle) in cases {
            let e = read_str(&xml, MojFeatures::Parcels)
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_else(|| panic!("accepted: {needle}"));
            assert!(e.contains("sheet.xml") && e.contains(needle), "{e}");
        }
        let deep = format!("<地図>{}{}</地図>", "<a>".repeat(100), "</a>".repeat(100));
        assert!(
            read_str(&deep, MojFeatures::Parcels)
                .unwrap_err()
                .to_string()
                .contains("deeper")
        );
    }

    #[test]
    fn rings_chain_curves_drawn_either_way() {
        let c = |x: f64, y: f64| Coord { x, y };
        let mut ring = Vec::new();
        chain(&mut ring, vec![c(0., 0.), c(1., 0.)]);
        chain(&mut ring, vec![c(1., 1.), c(1., 0.)]);
        chain(&mut ring, vec![c(1., 1.), c(0., 1.)]);
        chain(&mut ring, vec![c(0., 1.), c(0., 0.)]);
        assert_eq!(
            ring,
            vec![c(0., 0.), c(1., 0.), c(1., 1.), c(0., 1.), c(0., 0.)]
        );
        let mut reversed_first = Vec::new();
        chain(&mut reversed_first, vec![c(1., 0.), c(0., 0.)]);
        chain(&mut reversed_first, vec![c(0., 0.), c(0., 1.)]);
        assert_eq!(reversed_first, vec![c(1., 0.), c(0., 0.), c(0., 1.)]);
    }
}
