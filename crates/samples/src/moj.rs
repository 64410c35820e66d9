//! The synthetic parcels as the Ministry of Justice would publish them: map
//! XML (地図XML) sheets in a zip, with the topology of the real files (each
//! vertex a GM_Point, each boundary edge a GM_Curve shared by the parcels on
//! both sides, rings listing curves) and a sheet frame (図郭) per sheet.
//!
//! The last district's parcels are drawn in a second sheet in 任意座標系
//! (local coordinates: the zone coordinates turned and shifted by a known
//! similarity), with a control point file that places it back, as older
//! maps of a real city are.

use chizu_core::{Feature, Value};
use chizu_io::IoError;
use geo::{BoundingRect, Coord, Geometry};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// The 任意座標系 sheet's local frame: zone = shift + rotate(local).
const LOCAL_ROTATION: f64 = 0.25;
const LOCAL_SHIFT: (f64, f64) = (-14_000.0, -42_000.0);

/// The 任意座標系 sheet; the zone sheets are `41207-0001-NN`, one per
/// district (大字) but the last. Names sort in the parcels' order.
pub const LOCAL_SHEET: &str = "41207-0002-01";

/// Zone (X north, Y east) to the local sheet's (X, Y): the inverse of the
/// similarity the control points describe.
fn to_local(x: f64, y: f64) -> (f64, f64) {
    let (dx, dy) = (x - LOCAL_SHIFT.0, y - LOCAL_SHIFT.1);
    let (s, c) = LOCAL_ROTATION.sin_cos();
    (c * dx + s * dy, -s * dx + c * dy)
}

/// Writes `parcels.zip` (a sheet per district, the last one in 任意座標系)
/// and `parcels_control.toml` into `out`. `parcels` are in EPSG:6670 with
/// the sample's fields (chiban, oaza, aza, ...), grouped by district;
/// `districts` names the 大字 in their order.
pub fn write(out: &Path, parcels: &[Feature], districts: &[&str]) -> Result<(), IoError> {
    let code = |name: &str| districts.iter().position(|d| *d == name).unwrap_or(0) + 1;
    let of = |district: &str| -> Vec<&Feature> {
        parcels
            .iter()
            .filter(|f| f.properties.get(1) == Some(&Value::Text(district.to_string().into())))
            .collect()
    };
    let mut sheets = Vec::new();
    let mut local = Vec::new();
    for (i, district) in districts.iter().enumerate() {
        if i + 1 == districts.len() {
            local = of(district);
            sheets.push((
                LOCAL_SHEET.to_string(),
                sheet_xml(LOCAL_SHEET, "任意座標系", &local, &code, true),
            ));
        } else {
            let name = format!("41207-0001-{:02}", i + 1);
            let xml = sheet_xml(&name, "公共座標2系", &of(district), &code, false);
            sheets.push((name, xml));
        }
    }
    let path = out.join("parcels.zip");
    let file = std::fs::File::create(&path).map_err(|e| IoError::Open {
        path: path.clone(),
        source: e,
    })?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let fail = |e: &dyn std::fmt::Display| IoError::Format {
        path: path.clone(),
        message: e.to_string(),
    };
    for (name, xml) in sheets {
        zip.start_file(format!("{name}.xml"), options)
            .map_err(|e| fail(&e))?;
        zip.write_all(xml.as_bytes()).map_err(|e| fail(&e))?;
    }
    zip.finish().map_err(|e| fail(&e))?;
    let control = out.join("parcels_control.toml");
    std::fs::write(&control, control_points(&local)).map_err(|e| IoError::Open {
        path: control,
        source: e,
    })?;
    Ok(())
}

/// Writes `parcel_ledger.csv`: the city's own register of the same parcels
/// (大字名, 地番 → 大字名カナ, 地目, 地積, 所有者), in CP932 as Excel writes it.
pub fn write_ledger(out: &Path, parcels: &[Feature]) -> Result<(), IoError> {
    let mut text = String::from("大字名,地番,大字名カナ,地目,地積,所有者\r\n");
    for f in parcels {
        let cell = |i: usize| match f.properties.get(i) {
            Some(Value::Text(t)) => csv_cell(t),
            Some(Value::Float(x)) => format!("{x}"),
            Some(Value::Int(x)) => format!("{x}"),
            _ => String::new(),
        };
        let reading = match f.properties.get(1) {
            Some(Value::Text(oaza)) => crate::names::oaza_kana(oaza),
            _ => "",
        };
        let _ = write!(
            text,
            "{},{},{},{},{},{}\r\n",
            cell(1),
            cell(0),
            reading,
            cell(3),
            cell(4),
            cell(5)
        );
    }
    let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
    let path = out.join("parcel_ledger.csv");
    std::fs::write(&path, bytes).map_err(|e| IoError::Open { path, source: e })
}

fn csv_cell(t: &str) -> String {
    if t.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t.to_string()
    }
}

/// Four marks at the corners of the local sheet's extent, in both frames.
fn control_points(parcels: &[&Feature]) -> String {
    let mut text = format!(
        "# Control points (基準点) of the 任意座標系 sheet: [X, Y] with X northing,\n\
         # in the sheet's local coordinates and in JGD2011 zone II (EPSG:6670).\n\
         [[sheet]]\nmap = \"{LOCAL_SHEET}\"\ncrs = \"EPSG:6670\"\nmethod = \"helmert\"\nmax_residual_m = 0.05\npoints = [\n"
    );
    let bounds = parcels
        .iter()
        .filter_map(|f| f.geometry.bounding_rect())
        .reduce(|a, b| {
            geo::Rect::new(
                Coord {
                    x: a.min().x.min(b.min().x),
                    y: a.min().y.min(b.min().y),
                },
                Coord {
                    x: a.max().x.max(b.max().x),
                    y: a.max().y.max(b.max().y),
                },
            )
        });
    if let Some(b) = bounds {
        let corners = [
            (b.min().x, b.min().y),
            (b.max().x, b.min().y),
            (b.max().x, b.max().y),
            (b.min().x, b.max().y),
        ];
        for (i, (east, north)) in corners.into_iter().enumerate() {
            let (lx, ly) = to_local(north, east);
            let _ = writeln!(
                text,
                "  {{ name = \"K{}\", local = [{lx}, {ly}], zone = [{north}, {east}] }},",
                i + 1
            );
        }
    }
    text.push_str("]\n");
    text
}

/// One sheet's XML. Vertices become GM_Points, edges GM_Curves shared
/// between the parcels on either side.
fn sheet_xml(
    name: &str,
    crs: &str,
    parcels: &[&Feature],
    district_code: &dyn Fn(&str) -> usize,
    local: bool,
) -> String {
    let project = |c: &Coord<f64>| -> (f64, f64) {
        if local {
            to_local(c.y, c.x)
        } else {
            (c.y, c.x)
        }
    };
    let mut points: HashMap<(u64, u64), usize> = HashMap::new();
    let mut point_xml = String::new();
    let mut curves: HashMap<(usize, usize), usize> = HashMap::new();
    let mut curve_xml = String::new();
    let mut surface_xml = String::new();
    let mut subject_xml = String::new();
    let mut point_id = |c: &Coord<f64>, xml: &mut String| -> usize {
        let (x, y) = project(c);
        let next = points.len() + 1;
        *points.entry((x.to_bits(), y.to_bits())).or_insert_with(|| {
            let _ = writeln!(
                xml,
                "<zmn:GM_Point id=\"P{next:09}\"><zmn:GM_Point.position><zmn:DirectPosition><zmn:X>{x}</zmn:X><zmn:Y>{y}</zmn:Y></zmn:DirectPosition></zmn:GM_Point.position></zmn:GM_Point>"
            );
            next
        })
    };
    for (n, f) in parcels.iter().enumerate() {
        let Geometry::MultiPolygon(mp) = &f.geometry else {
            continue;
        };
        let Some(polygon) = mp.0.first() else {
            continue;
        };
        // Clockwise, as the Shapefile stores shells: both sample files then
        // hold every parcel vertex for vertex in the same order. (The
        // shapefile crate orients a multipolygon's shells twice, with this
        // sum; a bow-tie's is rounding noise, so it is done twice here too.)
        let mut ring = polygon.exterior().0.clone();
        for _ in 0..2 {
            let turn: f64 = ring
                .windows(2)
                .map(|p| (p[1].x - p[0].x) * (p[1].y + p[0].y))
                .sum();
            if turn < 0.0 {
                ring.reverse();
            }
        }
        let ids: Vec<usize> = ring.iter().map(|c| point_id(c, &mut point_xml)).collect();
        let mut generators = String::new();
        for pair in ids.windows(2) {
            let key = (pair[0].min(pair[1]), pair[0].max(pair[1]));
            let next = curves.len() + 1;
            let id = *curves.entry(key).or_insert_with(|| {
                let _ = writeln!(
                    curve_xml,
                    "<zmn:GM_Curve id=\"C{next:09}\"><zmn:GM_OrientablePrimitive.orientation>+</zmn:GM_OrientablePrimitive.orientation><zmn:GM_Curve.segment><zmn:GM_LineString><zmn:GM_LineString.controlPoint>\
                     <zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref=\"P{:09}\"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>\
                     <zmn:GM_PointArray.column><zmn:GM_Position.indirect><zmn:GM_PointRef.point idref=\"P{:09}\"/></zmn:GM_Position.indirect></zmn:GM_PointArray.column>\
                     </zmn:GM_LineString.controlPoint></zmn:GM_LineString></zmn:GM_Curve.segment></zmn:GM_Curve>",
                    pair[0], pair[1]
                );
                next
            });
            let _ = write!(
                generators,
                "<zmn:GM_CompositeCurve.generator idref=\"C{id:09}\"/>"
            );
        }
        let _ = writeln!(
            surface_xml,
            "<zmn:GM_Surface id=\"F{:09}\"><zmn:GM_Surface.patch><zmn:GM_Polygon><zmn:GM_Polygon.boundary><zmn:GM_SurfaceBoundary><zmn:GM_SurfaceBoundary.exterior><zmn:GM_Ring>{generators}</zmn:GM_Ring></zmn:GM_SurfaceBoundary.exterior></zmn:GM_SurfaceBoundary></zmn:GM_Polygon.boundary></zmn:GM_Polygon></zmn:GM_Surface.patch></zmn:GM_Surface>",
            n + 1
        );
        let text = |i: usize| match f.properties.get(i) {
            Some(Value::Text(t)) => escape(t),
            _ => String::new(),
        };
        let oaza = text(1);
        let _ = writeln!(
            subject_xml,
            "<筆 id=\"H{:09}\"><大字コード>{:03}</大字コード><丁目コード>000</丁目コード><小字コード>0000</小字コード><予備コード>00</予備コード><大字名>{oaza}</大字名><小字名>{}</小字名><地番>{}</地番><形状 idref=\"F{:09}\"/><精度区分>{}</精度区分><座標値種別>{}</座標値種別></筆>",
            n + 1,
            district_code(&oaza),
            text(2),
            text(0),
            n + 1,
            if local { "乙二" } else { "甲二" },
            if local {
                "図上測量"
            } else {
                "測量成果"
            },
        );
    }
    let frame = frame_xml(name, parcels, &project, local);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <地図 xmlns=\"http://www.moj.go.jp/MINJI/tizuxml\" xmlns:zmn=\"http://www.moj.go.jp/MINJI/tizuzumen\">\n\
         <version>ver1.0</version><地図名>{name}</地図名><市区町村コード>41207</市区町村コード><市区町村名>鹿島市</市区町村名>\
         <座標系>{crs}</座標系><測地系判別>測量</測地系判別>\n<空間属性>\n{point_xml}{curve_xml}{surface_xml}</空間属性>\n\
         <主題属性>\n{subject_xml}</主題属性>\n{frame}</地図>\n"
    )
}

/// The sheet frame (図郭): the parcels' extent, listing every parcel. (The
/// Ministry's files put it beside 主題属性, directly under the root.)
fn frame_xml(
    name: &str,
    parcels: &[&Feature],
    project: &dyn Fn(&Coord<f64>) -> (f64, f64),
    local: bool,
) -> String {
    let (mut min_x, mut min_y, mut max_x, mut max_y) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for f in parcels {
        if let Some(r) = f.geometry.bounding_rect() {
            for c in [
                r.min(),
                r.max(),
                Coord {
                    x: r.min().x,
                    y: r.max().y,
                },
                Coord {
                    x: r.max().x,
                    y: r.min().y,
                },
            ] {
                let (x, y) = project(&c);
                (min_x, min_y, max_x, max_y) =
                    (min_x.min(x), min_y.min(y), max_x.max(x), max_y.max(y));
            }
        }
    }
    let corner =
        |tag: &str, x: f64, y: f64| format!("<{tag}><zmn:X>{x}</zmn:X><zmn:Y>{y}</zmn:Y></{tag}>");
    let refs: String = (1..=parcels.len())
        .map(|n| format!("<筆参照 idref=\"H{n:09}\"/>"))
        .collect();
    let (kind, class) = if local {
        ("旧土地台帳附属地図", "地図に準ずる図面")
    } else {
        ("法務局作成地図", "法第14条1項地図")
    };
    format!(
        "<図郭><地図番号>{name}</地図番号><縮尺分母>{}</縮尺分母><方位不明フラグ>false</方位不明フラグ>{}{}{}{}\
         <地図種類>{kind}</地図種類><地図分類>{class}</地図分類><地図材質>{}</地図材質>\
         <備付地図年月日><年>2021</年><月>4</月><日>1</日></備付地図年月日>\
         <分割図葉><測図年月><年>2019</年><月>11</月></測図年月></分割図葉>{refs}</図郭>\n",
        if local { 600 } else { 500 },
        corner("左下座標", min_x, min_y),
        corner("左上座標", max_x, min_y),
        corner("右下座標", min_x, max_y),
        corner("右上座標", max_x, max_y),
        if local { "和紙" } else { "P-F" },
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_frame_is_a_similarity_of_the_zone() {
        let (a, b) = (to_local(0.0, 0.0), to_local(100.0, 0.0));
        assert!(((b.0 - a.0).hypot(b.1 - a.1) - 100.0).abs() < 1e-9);
    }
}
