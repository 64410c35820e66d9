//! A source file's own word on its coordinate reference system — a
//! Shapefile's `.prj`, a GeoPackage table's SRS, a FlatGeobuf header — held
//! against the layer file's `crs`. A contradiction is an error naming both
//! (or, with `crs_check = "warn"`, a warning in the report): a Shapefile in
//! New York feet declared as Saga's zone must not land off the coast of Chiba.

use crate::{IoError, gpkg};
use chizu_core::{CrsCheck, SourceConfig, SourceFormat};
use proj::Proj;
use std::path::Path;

/// The CRS a file states, as PROJ can read it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCrs {
    /// Where it was found and what it is called, for messages:
    /// "the .prj (`NAD83 / New York Long Island (ftUS)`)".
    pub label: String,
    /// `EPSG:<code>` or a WKT string.
    pub definition: String,
}

/// Two CRSs that put the same coordinates more than this far apart (in
/// degrees, ~1 m) are different.
const SAME_PLACE_DEGREES: f64 = 1e-5;

/// What the file says its CRS is, when it says.
pub fn stated(source: &SourceConfig) -> Result<Option<FileCrs>, IoError> {
    let path = source.path.as_path();
    match source.format {
        SourceFormat::Shapefile => Ok(prj(path)),
        SourceFormat::Geopackage => gpkg::table_srs(path, source.table.as_deref()),
        SourceFormat::Flatgeobuf => flatgeobuf(path),
        SourceFormat::Geojson | SourceFormat::Mojxml => Ok(None),
    }
}

fn prj(shp: &Path) -> Option<FileCrs> {
    let text = std::fs::read_to_string(shp.with_extension("prj")).ok()?;
    let text = text.trim().trim_start_matches('\u{feff}').to_string();
    (!text.is_empty()).then(|| FileCrs {
        label: format!("its .prj (`{}`)", wkt_name(&text)),
        definition: text,
    })
}

fn flatgeobuf(path: &Path) -> Result<Option<FileCrs>, IoError> {
    let file = std::fs::File::open(path).map_err(|e| IoError::open(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let Ok(fgb) = flatgeobuf::FgbReader::open(&mut reader) else {
        // The reader names a damaged file when it reads it.
        return Ok(None);
    };
    let header = fgb.header();
    let Some(crs) = header.crs() else {
        return Ok(None);
    };
    let org = crs.org().unwrap_or("EPSG");
    if crs.code() > 0 && org.eq_ignore_ascii_case("EPSG") {
        return Ok(Some(FileCrs {
            label: format!("its header (EPSG:{})", crs.code()),
            definition: format!("EPSG:{}", crs.code()),
        }));
    }
    Ok(crs
        .wkt()
        .filter(|w| !w.trim().is_empty())
        .map(|wkt| FileCrs {
            label: format!("its header (`{}`)", wkt_name(wkt)),
            definition: wkt.to_string(),
        }))
}

/// The name a WKT gives its CRS (its first quoted string).
pub fn wkt_name(wkt: &str) -> &str {
    wkt.split('"').nth(1).unwrap_or("unnamed")
}

/// Holds `declared` (an EPSG code) against what the file states. `Ok(Some)`
/// is a warning for the report (a contradiction under `CrsCheck::Warn`, or a
/// stated CRS PROJ cannot read).
pub fn check(
    source: &SourceConfig,
    declared: u32,
    stated: &FileCrs,
) -> Result<Option<String>, IoError> {
    let path = source.path.as_path();
    if stated
        .definition
        .eq_ignore_ascii_case(&format!("EPSG:{declared}"))
    {
        return Ok(None);
    }
    let same = match same_place(declared, &stated.definition) {
        Ok(same) => same,
        Err(why) => {
            return Ok(Some(format!(
                "{}: {} cannot be read ({why}); the layer file's crs = \"EPSG:{declared}\" is used unchecked",
                path.display(),
                stated.label
            )));
        }
    };
    if same {
        return Ok(None);
    }
    let message = format!(
        "the layer file says crs = \"EPSG:{declared}\" but the file states {}: they place the same coordinates in different places. \
         Fix the layer file's crs, or say crs_check = \"warn\" if the file's CRS is known to be wrong",
        stated.label
    );
    match source.crs_check {
        CrsCheck::Error => Err(IoError::format(path, message)),
        CrsCheck::Warn => Ok(Some(format!("{}: {message}", path.display()))),
    }
}

/// Whether coordinates in `declared` and in `stated` mean the same places:
/// three points of the declared CRS's area of use, written in declared
/// coordinates, are read back as `stated` coordinates and compared.
fn same_place(declared: u32, stated: &str) -> Result<bool, String> {
    let declared_def = format!("EPSG:{declared}");
    let area = crate::crs::area_of_use(declared).ok_or("the declared CRS has no area of use")?;
    let to_declared =
        Proj::new_known_crs("EPSG:4326", &declared_def, None).map_err(|e| e.to_string())?;
    let from_stated = Proj::new_known_crs(stated, "EPSG:4326", None).map_err(|e| e.to_string())?;
    let (cx, cy) = (
        (area.west + area.east) / 2.0,
        (area.south + area.north) / 2.0,
    );
    let probes = [
        (cx, cy),
        ((cx + area.west) / 2.0, (cy + area.south) / 2.0),
        ((cx + area.east) / 2.0, (cy + area.north) / 2.0),
    ];
    for (lon, lat) in probes {
        let Ok(xy) = to_declared.convert((lon, lat)) else {
            continue;
        };
        match from_stated.convert(xy) {
            Ok((x, y))
                if (x - lon).abs() < SAME_PLACE_DEGREES && (y - lat).abs() < SAME_PLACE_DEGREES => {
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_definitions_agree_and_different_ones_do_not() {
        assert!(same_place(6670, "EPSG:6670").unwrap());
        // JGD2000 and JGD2011 zones share their parameters.
        assert!(same_place(6670, "EPSG:2444").unwrap());
        assert!(!same_place(6670, "EPSG:2263").unwrap());
        assert!(!same_place(4326, "EPSG:3857").unwrap());
        assert!(!same_place(6670, "EPSG:6676").unwrap());
    }
}
