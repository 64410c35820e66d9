//! GeoPackage 1.3: the binary geometry encoding, the core tables, the R-tree
//! extension, and reading/writing feature tables through sqlx (SQLite).
//!
//! geozero's own GeoPackage encoder writes srs_id 0 and no envelope, which QGIS
//! and the R-tree triggers need, so blobs are written here.

use crate::{IoError, RawFeature};
use chizu_core::{Bounds, Feature, FieldDef, FieldType, GeometryKind, Value};
use geo::Geometry;
use geozero::{CoordDimensions, ToGeo, ToWkb};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Column, Connection, Row, SqliteConnection, SqlitePool, TypeInfo, ValueRef};
use std::path::Path;
use std::str::FromStr;

/// `application_id` of a GeoPackage ("GPKG").
pub const APPLICATION_ID: i32 = 0x4750_4B47;
/// `user_version` of GeoPackage 1.3.
pub const USER_VERSION: i32 = 10300;

/// Encodes a geometry as a GeoPackage binary blob: header, srs id, XY envelope, WKB.
pub fn encode_blob(g: &Geometry<f64>, srs_id: i32) -> Vec<u8> {
    let b = Bounds::of_geometry(g);
    let empty = b.is_empty();
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"GP");
    out.push(0); // version 1
    // bit 0: little endian; bits 1-3: envelope [minx, maxx, miny, maxy]; bit 4: empty.
    let flags: u8 = 0b0000_0001 | if empty { 0b0001_0000 } else { 0b0000_0010 };
    out.push(flags);
    out.extend_from_slice(&srs_id.to_le_bytes());
    if !empty {
        for v in [b.min_x, b.max_x, b.min_y, b.max_y] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    // Writing WKB to a Vec cannot fail for finite geo geometries.
    out.extend(g.to_wkb(CoordDimensions::xy()).unwrap_or_default());
    out
}

/// Decodes a GeoPackage binary blob (any envelope kind, either byte order).
pub fn decode_blob(blob: &[u8]) -> Result<Geometry<f64>, String> {
    if blob.len() < 8 || &blob[0..2] != b"GP" {
        return Err("not a GeoPackage geometry blob".into());
    }
    let flags = blob[3];
    let envelope_len = match (flags >> 1) & 0b111 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        n => return Err(format!("invalid envelope indicator {n}")),
    };
    let start = 8 + envelope_len;
    if blob.len() < start {
        return Err("truncated GeoPackage geometry blob".into());
    }
    decode_wkb(&blob[start..])
}

/// Decodes plain (ISO or extended) WKB, checked first as [`check_wkb`] says.
pub fn decode_wkb(wkb: &[u8]) -> Result<Geometry<f64>, String> {
    check_wkb(wkb, 0)?;
    geozero::wkb::Wkb(wkb)
        .to_geo()
        .map_err(|e| format!("invalid WKB: {e}"))
}

/// Walks a WKB geometry without allocating and checks that every count
/// fits in the bytes that follow: geozero reserves memory for the counts it
/// reads, and a damaged blob claiming billions of rings made it abort the
/// process (found by `tests/fuzz_readers.rs`). Returns the bytes used.
fn check_wkb(wkb: &[u8], depth: usize) -> Result<usize, String> {
    let damaged = || "damaged WKB: its counts do not fit its length".to_string();
    if depth > 8 {
        return Err("WKB nests too deep".into());
    }
    let little = match wkb.first() {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(damaged()),
    };
    let u32_at = |at: usize| -> Result<usize, String> {
        let b: [u8; 4] = wkb
            .get(at..at + 4)
            .ok_or_else(damaged)?
            .try_into()
            .map_err(|_| damaged())?;
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    let code = u32_at(1)?;
    // ISO codes (1000s for Z, 2000s for M, 3000s for ZM) and EWKB flags.
    let dims = match (code & 0xffff) / 1000 {
        0 => 2,
        1 | 2 => 3,
        _ => 4,
    } + usize::from(code & 0x8000_0000 != 0)
        + usize::from(code & 0x4000_0000 != 0);
    let point = 8 * dims.min(4);
    let mut at = 5 + if code & 0x2000_0000 != 0 { 4 } else { 0 };
    // A count, checked against the bytes left at `at` (each item at least `each` bytes).
    let count = |at: usize, each: usize| -> Result<usize, String> {
        let n = u32_at(at)?;
        if n.saturating_mul(each) > wkb.len().saturating_sub(at + 4) {
            return Err(damaged());
        }
        Ok(n)
    };
    match (code & 0xffff) % 1000 {
        1 => at += point,
        2 => at += 4 + count(at, point)? * point,
        3 => {
            let rings = count(at, 4)?;
            at += 4;
            for _ in 0..rings {
                at += 4 + count(at, point)? * point;
            }
        }
        4..=7 => {
            let parts = count(at, 5)?;
            at += 4;
            for _ in 0..parts {
                at += check_wkb(wkb.get(at..).ok_or_else(damaged)?, depth + 1)?;
            }
        }
        _ => return Err(format!("unsupported WKB geometry type {code}")),
    }
    if at > wkb.len() {
        return Err(damaged());
    }
    Ok(at)
}

/// Opens (creating if missing) a GeoPackage for reading and writing.
pub async fn open_pool(path: &Path, create: bool) -> Result<SqlitePool, IoError> {
    open_pool_with(path, create, true).await
}

/// Opens a GeoPackage; `wal: false` keeps it one self-contained file (exports).
pub async fn open_pool_with(path: &Path, create: bool, wal: bool) -> Result<SqlitePool, IoError> {
    let db = |e: sqlx::Error| IoError::Database {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(db)?
        .create_if_missing(create)
        // WAL: readers keep reading the previous version while an ingest writes the next.
        .journal_mode(if wal {
            SqliteJournalMode::Wal
        } else {
            SqliteJournalMode::Delete
        })
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(std::time::Duration::from_secs(30))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(if wal { 4 } else { 1 })
        .connect_with(options)
        .await
        .map_err(db)?;
    init_schema(&pool).await.map_err(db)?;
    Ok(pool)
}

/// Creates the GeoPackage core tables when they are missing.
pub async fn init_schema(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(&format!("PRAGMA application_id = {APPLICATION_ID}"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("PRAGMA user_version = {USER_VERSION}"))
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(CORE_SCHEMA).execute(&mut *conn).await?;
    // In WAL mode the header (application_id) reaches the file only at a
    // checkpoint, and GDAL reads it from the file before opening SQLite:
    // "bad application_id=0x00000000" while a server holds the store open.
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

const CORE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
CREATE TABLE IF NOT EXISTS gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES
  ('Undefined cartesian SRS', -1, 'NONE', -1, 'undefined', 'undefined cartesian coordinate reference system'),
  ('Undefined geographic SRS', 0, 'NONE', 0, 'undefined', 'undefined geographic coordinate reference system'),
  ('WGS 84 geodetic', 4326, 'EPSG', 4326,
   'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]',
   'longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid');
"#;

/// Registers `EPSG:code` in `gpkg_spatial_ref_sys` (definition from PROJ).
pub async fn ensure_srs(conn: &mut SqliteConnection, code: u32) -> Result<(), IoError> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT srs_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?")
            .bind(code as i64)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error(Path::new("geopackage"), e))?;
    if exists.is_some() {
        return Ok(());
    }
    let wkt = crate::crs::wkt(code)?;
    let name = crate::crs::name(code).unwrap_or_else(|| format!("EPSG:{code}"));
    sqlx::query("INSERT INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, organization_coordsys_id, definition) VALUES (?, ?, 'EPSG', ?, ?)")
        .bind(name)
        .bind(code as i64)
        .bind(code as i64)
        .bind(wkt)
        .execute(&mut *conn)
        .await
        .map_err(|e| db_error(Path::new("geopackage"), e))?;
    Ok(())
}

fn db_error(path: &Path, e: sqlx::Error) -> IoError {
    IoError::Database {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// gpkg_contents.identifier is UNIQUE, layer titles need not be. Of the
/// tables sharing a title, the one whose name sorts first has the title
/// alone and the others have their table name beside it, whichever was
/// written first: layers are ingested side by side, so the order of
/// writes is not the order of the layer list, and a name must not depend
/// on it.
async fn unique_identifier(
    conn: &mut SqliteConnection,
    title: &str,
    table: &str,
) -> Result<String, sqlx::Error> {
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT table_name FROM gpkg_contents WHERE identifier = ? AND table_name <> ?",
    )
    .bind(title)
    .bind(table)
    .fetch_optional(&mut *conn)
    .await?;
    match holder {
        Some(holder) if holder.as_str() < table => Ok(format!("{title} ({table})")),
        Some(holder) => {
            sqlx::query("UPDATE gpkg_contents SET identifier = ? WHERE table_name = ?")
                .bind(format!("{title} ({holder})"))
                .bind(&holder)
                .execute(&mut *conn)
                .await?;
            Ok(title.to_owned())
        }
        None => Ok(title.to_owned()),
    }
}

/// Quotes an SQL identifier. Layer and field names are validated identifiers
/// already; quoting keeps that from being the only defence.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn sql_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Text => "TEXT",
        FieldType::Integer => "INTEGER",
        FieldType::Float => "DOUBLE",
        FieldType::Boolean => "BOOLEAN",
        FieldType::Date => "DATE",
    }
}

/// What describes one feature table in `gpkg_contents`.
pub struct TableSpec<'a> {
    pub table: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub srs_id: u32,
    pub kind: GeometryKind,
    pub fields: &'a [FieldDef],
}

/// Drops a feature table with its R-tree and its rows in the gpkg_* tables.
pub async fn drop_table(conn: &mut SqliteConnection, table: &str) -> Result<(), sqlx::Error> {
    let rtree = format!("rtree_{table}_geom");
    sqlx::query(&format!("DROP TABLE IF EXISTS {}", quote(&rtree)))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS {}", quote(table)))
        .execute(&mut *conn)
        .await?;
    for meta in ["gpkg_extensions", "gpkg_geometry_columns", "gpkg_contents"] {
        sqlx::query(&format!("DELETE FROM {meta} WHERE table_name = ?"))
            .bind(table)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes a complete feature table (replacing one of the same name) on `conn`,
/// which the caller normally holds inside a transaction. Geometries must already be
/// in `spec.srs_id`. Returns the table's bounds.
pub async fn write_table(
    conn: &mut SqliteConnection,
    spec: &TableSpec<'_>,
    features: &[Feature],
) -> Result<Bounds, IoError> {
    let mut writer = TableWriter::begin(conn, spec).await?;
    let db = |e| db_error(Path::new(spec.table), e);
    let mut batches = features.chunks(BATCH_ROWS);
    let mut next = batches.next().map(|rows| writer.statement(rows));
    while let Some(statement) = next.take() {
        let (sql, args) = statement.map_err(db)?;
        let insert = sqlx::query_with(&sql, args).execute(&mut *conn);
        // While SQLite's thread inserts this batch, this one encodes the
        // next (join! polls the insert first: it is sent before the work).
        let encode_next = async { batches.next().map(|rows| writer.statement(rows)) };
        let (inserted, encoded) = tokio::join!(insert, encode_next);
        inserted.map_err(db)?;
        next = encoded;
    }
    writer.finish(conn).await
}

type Statement<'q> = (String, sqlx::sqlite::SqliteArguments<'q>);

/// Writes one feature table row by row, so that a caller can stream features in.
pub struct TableWriter {
    table: String,
    title: String,
    description: String,
    srs_id: u32,
    kind: GeometryKind,
    columns: String,
    params_per_row: usize,
    rtree: String,
    pending: Vec<Feature>,
    bounds: Bounds,
    /// Every row's box, packed into the R-tree at the end (see `gpkg_rtree`).
    cells: Vec<(i64, [f32; 4])>,
}

/// Rows per INSERT: each statement is a round trip to SQLite's worker thread,
/// so rows travel in batches (well under SQLite's 32,766 bound parameters).
const BATCH_ROWS: usize = 256;

impl TableWriter {
    /// Registers the srs and creates the (empty) table and its R-tree.
    pub async fn begin(
        conn: &mut SqliteConnection,
        spec: &TableSpec<'_>,
    ) -> Result<TableWriter, IoError> {
        let path = Path::new(spec.table);
        let db = |e| db_error(path, e);
        ensure_srs(conn, spec.srs_id).await?;
        drop_table(conn, spec.table).await.map_err(db)?;
        let t = quote(spec.table);
        let mut columns = String::new();
        for f in spec.fields {
            columns.push_str(&format!(", {} {}", quote(&f.name), sql_type(f.ty)));
        }
        sqlx::query(&format!(
            "CREATE TABLE {t} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom {}{columns})",
            spec.kind.ogc_name()
        ))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        let rtree = format!("rtree_{}_geom", spec.table);
        sqlx::query(&format!(
            "CREATE VIRTUAL TABLE {} USING rtree(id, minx, maxx, miny, maxy)",
            quote(&rtree)
        ))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        let columns = format!(
            "{t} (fid, geom{})",
            spec.fields
                .iter()
                .map(|f| format!(", {}", quote(&f.name)))
                .collect::<String>()
        );
        Ok(TableWriter {
            table: spec.table.to_string(),
            title: spec.title.to_string(),
            description: spec.description.to_string(),
            srs_id: spec.srs_id,
            kind: spec.kind,
            columns,
            params_per_row: spec.fields.len() + 2,
            rtree,
            pending: Vec::with_capacity(BATCH_ROWS),
            bounds: Bounds::EMPTY,
            cells: Vec::new(),
        })
    }

    pub async fn insert(
        &mut self,
        conn: &mut SqliteConnection,
        f: &Feature,
    ) -> Result<(), IoError> {
        self.pending.push(f.clone());
        if self.pending.len() >= BATCH_ROWS {
            self.flush(conn).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut SqliteConnection) -> Result<(), IoError> {
        let rows = std::mem::take(&mut self.pending);
        self.write_rows(conn, &rows).await
    }

    /// One INSERT of `rows` (at most `BATCH_ROWS`).
    async fn write_rows(
        &mut self,
        conn: &mut SqliteConnection,
        rows: &[Feature],
    ) -> Result<(), IoError> {
        if rows.is_empty() {
            return Ok(());
        }
        let table = self.table.clone();
        let db = |e| db_error(Path::new(&table), e);
        let (sql, args) = self.statement(rows).map_err(db)?;
        sqlx::query_with(&sql, args)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// The INSERT of `rows` and its arguments (geometries encoded); their
    /// boxes are kept for the R-tree and the table's bounds.
    fn statement<'q>(&mut self, rows: &'q [Feature]) -> Result<Statement<'q>, sqlx::Error> {
        use sqlx::Arguments;
        let row = format!("({})", vec!["?"; self.params_per_row].join(", "));
        let sql = format!(
            "INSERT INTO {} VALUES {}",
            self.columns,
            vec![row; rows.len()].join(", ")
        );
        let mut args = sqlx::sqlite::SqliteArguments::default();
        for f in rows {
            args.add(f.id as i64).map_err(sqlx::Error::Encode)?;
            args.add(encode_blob(&f.geometry, self.srs_id as i32))
                .map_err(sqlx::Error::Encode)?;
            for v in &f.properties {
                match v {
                    Value::Null => args.add(None::<String>),
                    Value::Bool(b) => args.add(*b),
                    Value::Int(i) => args.add(*i),
                    Value::Float(x) => args.add(*x),
                    Value::Text(s) => args.add(s.as_str()),
                }
                .map_err(sqlx::Error::Encode)?;
            }
            let b = Bounds::of_geometry(&f.geometry);
            if !b.is_empty() {
                self.bounds.expand(&b);
                self.cells.push(crate::gpkg_rtree::cell(f.id as i64, &b));
            }
        }
        Ok((sql, args))
    }

    /// Registers the table in gpkg_contents (with its bounds), its geometry
    /// column, the R-tree extension and its triggers.
    pub async fn finish(mut self, conn: &mut SqliteConnection) -> Result<Bounds, IoError> {
        self.flush(conn).await?;
        let path = Path::new(&self.table);
        let db = |e| db_error(path, e);
        let cells = std::mem::take(&mut self.cells);
        crate::gpkg_rtree::fill(conn, &self.rtree, cells)
            .await
            .map_err(db)?;
        let bounds = self.bounds;
        let (min_x, min_y, max_x, max_y) = if bounds.is_empty() {
            (None, None, None, None)
        } else {
            (
                Some(bounds.min_x),
                Some(bounds.min_y),
                Some(bounds.max_x),
                Some(bounds.max_y),
            )
        };
        let identifier = unique_identifier(conn, &self.title, &self.table)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)")
            .bind(&self.table)
            .bind(&identifier)
            .bind(&self.description)
            .bind(min_x)
            .bind(min_y)
            .bind(max_x)
            .bind(max_y)
            .bind(self.srs_id as i64)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)")
            .bind(&self.table)
            .bind(self.kind.ogc_name())
            .bind(self.srs_id as i64)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        sqlx::query("INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', 'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')")
            .bind(&self.table)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        // The spec's triggers keep the R-tree right when QGIS or GDAL edit the table.
        // They call GeoPackage SQL functions (ST_MinX, ...) that those tools provide;
        // chizu itself never edits rows in place, it replaces whole tables.
        for statement in rtree_triggers(&self.table) {
            sqlx::query(&statement)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        Ok(bounds)
    }
}

fn rtree_triggers(table: &str) -> Vec<String> {
    let t = quote(table);
    let r = quote(&format!("rtree_{table}_geom"));
    let name = |suffix: &str| quote(&format!("rtree_{table}_geom_{suffix}"));
    let values = "VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom))";
    let all = format!(
        "CREATE TRIGGER {insert} AFTER INSERT ON {t} WHEN (new.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom)) \
         BEGIN INSERT OR REPLACE INTO {r} {values}; END;
         CREATE TRIGGER {update1} AFTER UPDATE OF geom ON {t} WHEN OLD.fid = NEW.fid AND (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom)) \
         BEGIN INSERT OR REPLACE INTO {r} {values}; END;
         CREATE TRIGGER {update2} AFTER UPDATE OF geom ON {t} WHEN OLD.fid = NEW.fid AND (NEW.geom ISNULL OR ST_IsEmpty(NEW.geom)) \
         BEGIN DELETE FROM {r} WHERE id = OLD.fid; END;
         CREATE TRIGGER {update3} AFTER UPDATE ON {t} WHEN OLD.fid != NEW.fid AND (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom)) \
         BEGIN DELETE FROM {r} WHERE id = OLD.fid; INSERT OR REPLACE INTO {r} {values}; END;
         CREATE TRIGGER {update4} AFTER UPDATE ON {t} WHEN OLD.fid != NEW.fid AND (NEW.geom ISNULL OR ST_IsEmpty(NEW.geom)) \
         BEGIN DELETE FROM {r} WHERE id IN (OLD.fid, NEW.fid); END;
         CREATE TRIGGER {delete} AFTER DELETE ON {t} WHEN old.geom NOT NULL \
         BEGIN DELETE FROM {r} WHERE id = OLD.fid; END;",
        insert = name("insert"),
        update1 = name("update1"),
        update2 = name("update2"),
        update3 = name("update3"),
        update4 = name("update4"),
        delete = name("delete"),
    );
    all.split("END;")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s} END;"))
        .collect()
}

/// Writes a single-table GeoPackage file (as a city would hand one over),
/// complete in its one file (no write-ahead log beside it).
pub fn write_file(path: &Path, spec: &TableSpec<'_>, features: &[Feature]) -> Result<(), IoError> {
    run_async(move || async move {
        let pool = open_pool_with(path, true, false).await?;
        let mut conn = pool.acquire().await.map_err(|e| db_error(path, e))?;
        let mut tx = conn.begin().await.map_err(|e| db_error(path, e))?;
        write_table(&mut tx, spec, features).await?;
        tx.commit().await.map_err(|e| db_error(path, e))?;
        drop(conn);
        pool.close().await;
        Ok(())
    })
}

/// Runs a future to completion on a private runtime in its own thread, so that
/// synchronous callers work whether or not they are inside a tokio runtime.
pub fn run_async<T: Send, F: std::future::Future<Output = Result<T, IoError>>>(
    make: impl FnOnce() -> F + Send,
) -> Result<T, IoError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| IoError::format(Path::new("runtime"), e))?
                .block_on(make())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(IoError::format(
                Path::new("runtime"),
                "reader thread failed",
            ))
        })
    })
}

/// Reads every feature of a GeoPackage feature table (the only one, or `table`).
pub fn read_blocking(
    path: &Path,
    table: Option<&str>,
    visit: &mut dyn FnMut(RawFeature) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let features = run_async(|| read_all(path, table))?;
    for f in features {
        visit(f)?;
    }
    Ok(())
}

/// The SRS of a feature table (of the only one when `table` is `None`), as
/// the GeoPackage states it; `None` for the undefined SRSs (0, -1).
pub fn table_srs(
    path: &Path,
    table: Option<&str>,
) -> Result<Option<crate::source_crs::FileCrs>, IoError> {
    run_async(|| async move {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| db_error(path, e))?
            .read_only(true);
        let Ok(mut conn) = SqliteConnection::connect_with(&options).await else {
            // The reader names an unreadable file.
            return Ok(None);
        };
        let rows: Vec<(String, String, i64, String, String)> = sqlx::query_as(
            "SELECT g.table_name, s.organization, s.organization_coordsys_id, s.definition, s.srs_name \
             FROM gpkg_geometry_columns g JOIN gpkg_spatial_ref_sys s ON s.srs_id = g.srs_id \
             WHERE g.srs_id > 0 ORDER BY g.table_name",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        let row = match table {
            Some(t) => rows.into_iter().find(|r| r.0 == t),
            None if rows.len() == 1 => rows.into_iter().next(),
            None => None,
        };
        Ok(row.map(|(_, org, code, definition, name)| {
            if org.eq_ignore_ascii_case("EPSG") && code > 0 {
                crate::source_crs::FileCrs {
                    label: format!("its SRS EPSG:{code} (`{name}`)"),
                    definition: format!("EPSG:{code}"),
                }
            } else {
                crate::source_crs::FileCrs {
                    label: format!("its SRS `{name}` ({org}:{code})"),
                    definition,
                }
            }
        }))
    })
}

async fn read_all(path: &Path, table: Option<&str>) -> Result<Vec<RawFeature>, IoError> {
    let db = |e| db_error(path, e);
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(db)?
        .read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| IoError::format(path, format!("not a readable GeoPackage: {e}")))?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name, g.column_name FROM gpkg_contents c JOIN gpkg_geometry_columns g USING (table_name) WHERE c.data_type = 'features' ORDER BY c.table_name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| IoError::format(path, format!("not a GeoPackage (no gpkg_contents): {e}")))?;
    let (table, geom_col) = match table {
        Some(name) => tables
            .into_iter()
            .find(|(t, _)| t == name)
            .ok_or_else(|| IoError::format(path, format!("no feature table `{name}`")))?,
        None => match tables.len() {
            1 => tables.into_iter().next().unwrap_or_default(),
            0 => return Err(IoError::format(path, "holds no feature table")),
            _ => {
                return Err(IoError::format(
                    path,
                    format!(
                        "holds several feature tables ({}): name one with `table` in the layer's source",
                        tables
                            .iter()
                            .map(|(t, _)| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        },
    };
    let rows = sqlx::query(&format!("SELECT * FROM {}", quote(&table)))
        .fetch_all(&mut conn)
        .await
        .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let number = i + 1;
        let mut geometry = None;
        let mut attributes = Vec::new();
        for (c, column) in row.columns().iter().enumerate() {
            let name = column.name();
            let raw = row.try_get_raw(c).map_err(db)?;
            if name == geom_col {
                if !raw.is_null() {
                    let blob: Vec<u8> = row.try_get(c).map_err(db)?;
                    geometry =
                        Some(decode_blob(&blob).map_err(|e| {
                            IoError::feature(path, number, format!("geometry: {e}"))
                        })?);
                }
                continue;
            }
            let value = if raw.is_null() {
                Value::Null
            } else {
                match raw.type_info().name() {
                    "INTEGER" => Value::Int(row.try_get(c).map_err(db)?),
                    "REAL" => Value::Float(row.try_get(c).map_err(db)?),
                    "TEXT" => Value::Text(row.try_get::<&str, _>(c).map_err(db)?.into()),
                    _ => Value::Null,
                }
            };
            attributes.push((name.to_string(), value));
        }
        out.push(RawFeature {
            number,
            geometry,
            attributes,
            crs: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_do_not_fit_are_refused_before_decoding() {
        let g: Geometry<f64> = geo::wkt!(MULTIPOLYGON(((0. 0., 2. 0., 2. 3., 0. 0.)))).into();
        let blob = encode_blob(&g, 4326);
        assert_eq!(decode_blob(&blob).unwrap(), g);
        // Each count in turn claims 2^31 items: an error, not a 16 GiB allocation.
        let wkb_start = blob.len() - (1 + 4 + 4 + 1 + 4 + 4 + 4 + 4 * 16);
        for offset in [5, 14, 18] {
            let mut damaged = blob.clone();
            damaged[wkb_start + offset..wkb_start + offset + 4]
                .copy_from_slice(&0x8000_0000u32.to_le_bytes());
            let e = decode_blob(&damaged).unwrap_err();
            assert!(e.contains("damaged WKB"), "offset {offset}: {e}");
        }
        assert!(decode_blob(&blob[..blob.len() - 3]).is_err());
    }

    #[test]
    fn blob_round_trip_with_envelope() {
        let g: Geometry<f64> = geo::wkt!(MULTIPOLYGON(((0. 0., 2. 0., 2. 3., 0. 0.)))).into();
        let blob = encode_blob(&g, 4326);
        assert_eq!(&blob[0..2], b"GP");
        assert_eq!(i32::from_le_bytes(blob[4..8].try_into().unwrap()), 4326);
        let max_x = f64::from_le_bytes(blob[16..24].try_into().unwrap());
        assert_eq!(max_x, 2.0);
        assert_eq!(decode_blob(&blob).unwrap(), g);
        assert!(decode_blob(b"XX").is_err());
    }
}
