//! Bulk loading of a GeoPackage's spatial index (`rtree_<table>_geom`).
//!
//! SQLite's R*Tree module has no bulk load: every row inserted into the
//! virtual table walks the tree (ChooseLeaf), may split nodes and rewrites
//! them; measured on the bench city, that was a third of the whole ingest's
//! CPU time. Since chizu writes whole tables, it packs the tree itself, as
//! GDAL (3.7+, `sqlite_rtree_bulk_load.c`) does: boxes sorted tile by tile
//! (Sort-Tile-Recursive) into full nodes, level by level, written straight
//! into the module's three shadow tables in the module's own format. The
//! tree stays an ordinary R*Tree: SQLite's `rtreecheck()` accepts it (tested)
//! and later edits (QGIS, GDAL, the spec's triggers) insert into it as usual.
//!
//! The format (SQLite's `rtree.c`): `<name>_node(nodeno, data)` holds one
//! blob per node, node 1 the root; a blob is a big-endian u16 depth (of the
//! tree, in the root only), a u16 cell count and the cells, each a
//! big-endian i64 (a row id in a leaf, a child node number above) and
//! big-endian f32 `minx, maxx, miny, maxy`. `<name>_rowid` maps each row id
//! to its leaf, `<name>_parent` each non-root node to its parent.

use chizu_core::Bounds;
use sqlx::SqliteConnection;

/// SQLite's rounding of a box into `f32` (`rtreeValueDown` / `rtreeValueUp`),
/// so that a bulk-loaded box is the very box an INSERT would have stored.
fn value_down(d: f64) -> f32 {
    const TOWARDS: f64 = 1.0 - 1.0 / 8_388_608.0;
    const AWAY: f64 = 1.0 + 1.0 / 8_388_608.0;
    let f = d as f32;
    if f64::from(f) > d {
        (d * if d < 0.0 { AWAY } else { TOWARDS }) as f32
    } else {
        f
    }
}

fn value_up(d: f64) -> f32 {
    const TOWARDS: f64 = 1.0 - 1.0 / 8_388_608.0;
    const AWAY: f64 = 1.0 + 1.0 / 8_388_608.0;
    let f = d as f32;
    if f64::from(f) < d {
        (d * if d < 0.0 { TOWARDS } else { AWAY }) as f32
    } else {
        f
    }
}

/// One cell: a row id (leaf) or a node number (above), and its box as
/// `[minx, maxx, miny, maxy]` (the module's column order).
type Cell = (i64, [f32; 4]);

/// A row's cell, its box rounded as SQLite rounds it.
pub fn cell(id: i64, b: &Bounds) -> Cell {
    (
        id,
        [
            value_down(b.min_x),
            value_up(b.max_x),
            value_down(b.min_y),
            value_up(b.max_y),
        ],
    )
}

/// What the packed tree puts in the shadow tables.
#[derive(Debug, Default)]
struct Packed {
    /// `(nodeno, blob)`; node 1 is the root.
    nodes: Vec<(i64, Vec<u8>)>,
    /// `(rowid, leaf nodeno)`.
    rowids: Vec<(i64, i64)>,
    /// `(nodeno, parent nodeno)`.
    parents: Vec<(i64, i64)>,
}

/// Packs `cells` into nodes of at most `capacity` cells, bottom up.
fn pack(mut level: Vec<Cell>, capacity: usize, node_size: usize) -> Packed {
    let mut packed = Packed::default();
    let mut next_node = 2;
    let mut depth = 0u16;
    loop {
        let leaves = depth == 0;
        if level.len() <= capacity {
            let root = 1;
            record_children(&mut packed, &level, root, leaves);
            packed
                .nodes
                .push((root, node_blob(depth, &level, node_size)));
            return packed;
        }
        sort_tile_recursive(&mut level, capacity);
        let mut above = Vec::with_capacity(level.len().div_ceil(capacity));
        for group in level.chunks(capacity) {
            let node = next_node;
            next_node += 1;
            record_children(&mut packed, group, node, leaves);
            packed.nodes.push((node, node_blob(0, group, node_size)));
            above.push((node, union(group)));
        }
        level = above;
        depth += 1;
    }
}

fn record_children(packed: &mut Packed, cells: &[Cell], node: i64, leaves: bool) {
    let pairs = cells.iter().map(|(id, _)| (*id, node));
    if leaves {
        packed.rowids.extend(pairs);
    } else {
        packed.parents.extend(pairs);
    }
}

fn union(cells: &[Cell]) -> [f32; 4] {
    let mut u = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for (_, b) in cells {
        u = [
            u[0].min(b[0]),
            u[1].max(b[1]),
            u[2].min(b[2]),
            u[3].max(b[3]),
        ];
    }
    u
}

/// Orders cells so that consecutive runs of `capacity` are compact: vertical
/// slices by centre x, each slice by centre y (Leutenegger et al., 1997).
fn sort_tile_recursive(cells: &mut [Cell], capacity: usize) {
    let centre_x = |c: &Cell| c.1[0] + c.1[1];
    let centre_y = |c: &Cell| c.1[2] + c.1[3];
    cells.sort_unstable_by(|a, b| centre_x(a).total_cmp(&centre_x(b)));
    let nodes = cells.len().div_ceil(capacity);
    let slices = (nodes as f64).sqrt().ceil() as usize;
    let per_slice = slices.max(1) * capacity;
    for slice in cells.chunks_mut(per_slice) {
        slice.sort_unstable_by(|a, b| centre_y(a).total_cmp(&centre_y(b)));
    }
}

fn node_blob(depth: u16, cells: &[Cell], node_size: usize) -> Vec<u8> {
    let mut blob = Vec::with_capacity(node_size);
    blob.extend_from_slice(&depth.to_be_bytes());
    blob.extend_from_slice(&(cells.len() as u16).to_be_bytes());
    for (id, b) in cells {
        blob.extend_from_slice(&id.to_be_bytes());
        for v in b {
            blob.extend_from_slice(&v.to_bits().to_be_bytes());
        }
    }
    blob.resize(node_size, 0);
    blob
}

/// Bytes of a 2-D cell: the id and four `f32`.
const CELL_BYTES: usize = 8 + 4 * 4;

/// Fills the (just created, empty) R-tree `rtree` with `cells`.
pub async fn fill(
    conn: &mut SqliteConnection,
    rtree: &str,
    cells: Vec<Cell>,
) -> Result<(), sqlx::Error> {
    if cells.is_empty() {
        return Ok(());
    }
    let shadow = |suffix: &str| crate::gpkg::quote(&format!("{rtree}_{suffix}"));
    // The module sized the empty root for this page size when it created the
    // table; every node must have that size.
    let node_size: i64 = sqlx::query_scalar(&format!(
        "SELECT length(data) FROM {} WHERE nodeno = 1",
        shadow("node")
    ))
    .fetch_one(&mut *conn)
    .await?;
    let node_size = node_size as usize;
    let capacity = (node_size - 4) / CELL_BYTES;
    let mut packed = pack(cells, capacity, node_size);
    // In key order, each table's B-tree is written by appending (measured:
    // the row ids in leaf order made their inserts the slowest part).
    packed.rowids.sort_unstable();
    packed.parents.sort_unstable();
    insert_rows(conn, &shadow("rowid"), &packed.rowids).await?;
    insert_rows(conn, &shadow("parent"), &packed.parents).await?;
    for batch in packed.nodes.chunks(64) {
        let sql = format!(
            "INSERT OR REPLACE INTO {} VALUES {}",
            shadow("node"),
            vec!["(?, ?)"; batch.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (node, blob) in batch {
            q = q.bind(*node).bind(blob.as_slice());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_rows(
    conn: &mut SqliteConnection,
    table: &str,
    rows: &[(i64, i64)],
) -> Result<(), sqlx::Error> {
    for batch in rows.chunks(4096) {
        let sql = format!(
            "INSERT INTO {table} VALUES {}",
            vec!["(?, ?)"; batch.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (a, b) in batch {
            q = q.bind(*a).bind(*b);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    fn boxes(n: usize) -> Vec<(i64, Bounds)> {
        let mut seed = 11u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (1..=n as i64)
            .map(|id| {
                let (x, y) = (130.0 + next() * 0.1, 33.0 + next() * 0.1);
                let (w, h) = (next() * 0.001, next() * 0.001);
                (
                    id,
                    Bounds {
                        min_x: x,
                        min_y: y,
                        max_x: x + w,
                        max_y: y + h,
                    },
                )
            })
            .collect()
    }

    async fn rtree_with(conn: &mut SqliteConnection, rows: &[(i64, Bounds)]) {
        sqlx::query("CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx, miny, maxy)")
            .execute(&mut *conn)
            .await
            .unwrap();
        let cells = rows.iter().map(|(id, b)| cell(*id, b)).collect();
        fill(conn, "r", cells).await.unwrap();
    }

    async fn check(conn: &mut SqliteConnection) -> String {
        sqlx::query_scalar("SELECT rtreecheck('r')")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    }

    /// SQLite's own checker accepts the packed tree, window queries answer
    /// what a scan of the boxes answers, and rows inserted afterwards (an
    /// edit in QGIS) go into the same tree.
    #[tokio::test]
    async fn a_packed_tree_is_an_rtree_sqlite_accepts_and_queries() {
        for n in [0, 1, 51, 52, 2_601, 20_000] {
            let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
            let rows = boxes(n);
            rtree_with(&mut conn, &rows).await;
            assert_eq!(check(&mut conn).await, "ok", "{n} rows");
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM r")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(count, n as i64);
            for (_, q) in boxes(40).iter().skip(n % 7) {
                let q = q.buffered(0.003);
                let mut found: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM r WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?",
                )
                .bind(q.min_x)
                .bind(q.max_x)
                .bind(q.min_y)
                .bind(q.max_y)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                found.sort_unstable();
                let scan: Vec<i64> = (rows.iter())
                    .filter(|(_, b)| {
                        b.max_x >= q.min_x
                            && b.min_x <= q.max_x
                            && b.max_y >= q.min_y
                            && b.min_y <= q.max_y
                    })
                    .map(|(id, _)| *id)
                    .collect();
                // f32 boxes may be a hair larger: everything a scan finds, and
                // nothing farther than an f32 step.
                assert!(scan.iter().all(|id| found.binary_search(id).is_ok()));
                let step = 1e-4; // degrees: f32 steps at 130-133 degrees are 8e-6
                let near = |b: &Bounds| {
                    b.max_x + step >= q.min_x
                        && b.min_x - step <= q.max_x
                        && b.max_y + step >= q.min_y
                        && b.min_y - step <= q.max_y
                };
                assert!(found.iter().all(|id| near(&rows[*id as usize - 1].1)));
            }
            for (id, b) in boxes(300) {
                sqlx::query("INSERT INTO r VALUES (?, ?, ?, ?, ?)")
                    .bind(id + 1_000_000)
                    .bind(b.min_x)
                    .bind(b.max_x)
                    .bind(b.min_y)
                    .bind(b.max_y)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            sqlx::query("DELETE FROM r WHERE id % 3 = 0")
                .execute(&mut conn)
                .await
                .unwrap();
            assert_eq!(check(&mut conn).await, "ok", "{n} rows, then edits");
        }
    }

    /// The stored boxes are the ones SQLite stores for the same INSERT.
    #[tokio::test]
    async fn boxes_are_rounded_as_sqlite_rounds_them() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let rows = boxes(60);
        sqlx::query("CREATE VIRTUAL TABLE s USING rtree(id, minx, maxx, miny, maxy)")
            .execute(&mut conn)
            .await
            .unwrap();
        for (id, b) in &rows {
            sqlx::query("INSERT INTO s VALUES (?, ?, ?, ?, ?)")
                .bind(id)
                .bind(-b.max_x)
                .bind(-b.min_x)
                .bind(b.min_y)
                .bind(b.max_y)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        // x negative, y positive: both of SQLite's rounding branches.
        let stored: Vec<(i64, f64, f64, f64, f64)> =
            sqlx::query_as("SELECT id, minx, maxx, miny, maxy FROM s ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        for ((id, b), (_, x0, x1, y0, y1)) in rows.iter().zip(&stored) {
            let mirrored = Bounds {
                min_x: -b.max_x,
                max_x: -b.min_x,
                ..*b
            };
            let sqlite = [*x0 as f32, *x1 as f32, *y0 as f32, *y1 as f32];
            assert_eq!(cell(*id, &mirrored).1, sqlite, "row {id}");
        }
    }
}
