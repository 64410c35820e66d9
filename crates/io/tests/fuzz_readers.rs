//! Fuzz-style tests of the four readers: a valid file of each format,
//! damaged at random (bytes changed, cut short), read back. Every outcome
//! is an answer (features or an error naming the file), never a panic.
//! `scripts/fuzz.sh` runs many more cases; proptest keeps any failing input
//! in `proptest-regressions/` so that it is tried again on every run.

use chizu_core::config::{FieldDef, FieldType, SourceConfig, SourceFormat};
use chizu_core::{Feature, GeometryKind, Value};
use chizu_io::{ReadOptions, read_source};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("chiban", FieldType::Text),
        FieldDef::new("area", FieldType::Float),
    ]
}

fn features() -> Vec<Feature> {
    (1..=4)
        .map(|i| {
            let x = 130.0 + i as f64 * 0.001;
            Feature {
                id: i,
                geometry: geo::Rect::new((x, 33.0), (x + 0.0005, 33.0005))
                    .to_polygon()
                    .into(),
                properties: vec![
                    Value::Text(format!("{i}-1 鹿島").into()),
                    Value::Float(i as f64 * 12.5),
                ],
            }
        })
        .collect()
}

/// One valid file per format, written by chizu's own writers.
fn originals(dir: &Path) -> Vec<(SourceFormat, PathBuf)> {
    let (f, feats) = (fields(), features());
    let geojson = dir.join("a.geojson");
    chizu_io::geojson_io::write(&geojson, "a", None, &f, &feats).unwrap();
    let fgb = dir.join("a.fgb");
    chizu_io::fgb::write(&fgb, "a", 4326, GeometryKind::Polygon, &f, &feats).unwrap();
    let shp = dir.join("a.shp");
    chizu_io::shp::write(&shp, 4326, encoding_rs::SHIFT_JIS, &f, &feats).unwrap();
    let gpkg = dir.join("a.gpkg");
    let spec = chizu_io::gpkg::TableSpec {
        table: "a",
        title: "a",
        description: "",
        srs_id: 4326,
        kind: GeometryKind::Polygon,
        fields: &f,
    };
    chizu_io::gpkg::write_file(&gpkg, &spec, &feats).unwrap();
    vec![
        (SourceFormat::Geojson, geojson),
        (SourceFormat::Flatgeobuf, fgb),
        (SourceFormat::Shapefile, shp.with_extension("dbf")),
        (SourceFormat::Shapefile, shp),
        (SourceFormat::Geopackage, gpkg),
    ]
}

/// Reads a (damaged) copy; the outcome does not matter, only that there is one.
fn read(format: SourceFormat, path: &Path) -> Result<usize, String> {
    let shp = if path.extension().is_some_and(|e| e == "dbf") {
        path.with_extension("shp")
    } else {
        path.to_path_buf()
    };
    let source = SourceConfig {
        path: if format == SourceFormat::Shapefile {
            shp
        } else {
            path.to_path_buf()
        },
        format,
        crs: "EPSG:4326".into(),
        crs_check: Default::default(),
        encoding: None,
        table: None,
        mojxml: None,
        join: None,
    };
    let mut n = 0;
    read_source(&source, &ReadOptions::default(), &mut |_| {
        n += 1;
        Ok(())
    })
    .map(|_| n)
    .map_err(|e| e.to_string())
}

/// The directory of the originals and each format's file in it.
type Written = (PathBuf, Vec<(SourceFormat, PathBuf)>);

fn written_once() -> &'static Written {
    static ONCE: std::sync::OnceLock<(tempfile::TempDir, Written)> = std::sync::OnceLock::new();
    &ONCE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let files = originals(dir.path());
            let path = dir.path().to_path_buf();
            (dir, (path, files))
        })
        .1
}

#[test]
fn the_originals_read() {
    let dir = tempfile::tempdir().unwrap();
    for (format, path) in originals(dir.path()) {
        assert_eq!(read(format, &path), Ok(4), "{}", path.display());
    }
}

proptest! {

    #[test]
    fn damaged_files_are_errors_not_panics(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        // The originals are written once; each case damages a copy.
        let (source_dir, files) = written_once();
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(source_dir).unwrap().flatten() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let (format, original) = &files[which];
        let path = &dir.path().join(original.file_name().unwrap());
        let mut bytes = std::fs::read(path).unwrap();
        for (at, byte) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        std::fs::write(path, &bytes).unwrap();
        let _ = read(*format, path);
    }
}
