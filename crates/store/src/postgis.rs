//! The scale-out backend: PostgreSQL with PostGIS 3, for any number of chizu
//! instances in front of one database.
//!
//! The catalog `chizu_layers` has one row per layer naming its current data
//! table `chizu_data.<id>_v<version>` (geometry in EPSG:4326, GiST index). An
//! ingest builds the next version's table and switches the catalog row to it in
//! one transaction, so readers see the old version or the new one, and a
//! failed or killed ingest leaves nothing behind. The previous version's
//! table stays until the next ingest (instances still on it keep serving). The
//! commit notifies `chizu_layers` listeners (every running instance). The view
//! `chizu.<id>` always shows the current version (for QGIS, GDAL and SQL).

use crate::{
    IndexedFeature, LayerReads, LayerSnapshot, LayerSource, LayerWrites, Pushdown, StoreError,
    StoredLayer, redact_url,
};
use chizu_core::label::LabelPoint;
use chizu_core::search::{Place, PlaceIndex, SearchIndex};
use chizu_core::{Bounds, Feature, FieldType, LayerConfig, Value};
use chizu_io::IngestReport;
use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

/// The channel every commit of a layer version or policy is announced on.
pub const CHANGES_CHANNEL: &str = "chizu_layers";

/// The schema migrations of the layer catalog. Versions 1000-1999 are the
/// store's; the account store uses 2000-2999 in the same `_sqlx_migrations`
/// table, so each set ignores the other's rows.
fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migration = |version: i64, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            Cow::Borrowed(sql),
            false,
        )
    };
    Migrator {
        migrations: Cow::Owned(vec![
            migration(
                1001,
                "layers",
                include_str!("../migrations/postgres/1001_layers.sql"),
            ),
            migration(
                1002,
                "layer views",
                include_str!("../migrations/postgres/1002_layer_views.sql"),
            ),
            migration(
                1003,
                "previous table",
                include_str!("../migrations/postgres/1003_previous_table.sql"),
            ),
        ]),
        ignore_missing: true,
        locking: true,
        no_tx: false,
    }
}

pub struct PgStore {
    url: String,
    pool: PgPool,
}

impl PgStore {
    /// Connects and brings the catalog's schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let redacted = redact_url(url);
        let fail = |message: String| StoreError::Database {
            path: redacted.clone(),
            message,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| fail(e.to_string()))?
            .application_name("chizu");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| fail(e.to_string()))?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| fail(format!("schema migration: {e}")))?;
        Ok(PgStore {
            url: redacted,
            pool,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn db(&self, e: sqlx::Error) -> StoreError {
        StoreError::Database {
            path: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// Runs `read` in one repeatable-read transaction (the catalog row and
    /// the rows of its data table belong to the same version). An ingest
    /// committing in between drops the table the catalog row named; the
    /// read then starts again on the new version.
    async fn consistent_read<T, F>(&self, id: &str, read: F) -> Result<T, StoreError>
    where
        F: for<'c> Fn(
                &'c mut PgConnection,
                StoredLayer,
                String,
            ) -> futures::future::BoxFuture<'c, Result<T, StoreError>>
            + Send
            + Sync,
        T: Send,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
            let mut tx = conn.begin().await.map_err(|e| self.db(e))?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
            let row = sqlx::query(LAYER_SELECT_ONE)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.db(e))?
                .ok_or_else(|| StoreError::UnknownLayer(id.to_string()))?;
            let meta = row_to_layer(&row).map_err(|e| self.decode(id, e))?;
            let table: String = row.try_get("data_table").map_err(|e| self.db(e))?;
            match read(&mut tx, meta, table).await {
                Err(StoreError::Database { message, .. })
                    if attempt < 5 && message.contains("does not exist") =>
                {
                    tracing::debug!(layer = id, "version replaced during a read; reading again");
                    continue;
                }
                other => {
                    let value = other?;
                    tx.commit().await.map_err(|e| self.db(e))?;
                    return Ok(value);
                }
            }
        }
    }

    /// A layer's catalog row.
    async fn layer_row(&self, id: &str) -> Result<PgRow, StoreError> {
        sqlx::query(LAYER_SELECT_ONE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db(e))?
            .ok_or_else(|| StoreError::UnknownLayer(id.to_string()))
    }

    fn decode(&self, id: &str, e: DecodeError) -> StoreError {
        match e {
            DecodeError::Sql(e) => self.db(e),
            DecodeError::Config(message) => StoreError::Corrupt {
                layer: id.to_string(),
                message,
            },
        }
    }
}

enum DecodeError {
    Sql(sqlx::Error),
    Config(String),
}

impl From<sqlx::Error> for DecodeError {
    fn from(e: sqlx::Error) -> Self {
        DecodeError::Sql(e)
    }
}

const LAYER_SELECT: &str = "SELECT * FROM chizu_layers";
const LAYER_SELECT_ONE: &str = "SELECT * FROM chizu_layers WHERE id = $1";

fn row_to_layer(row: &PgRow) -> Result<StoredLayer, DecodeError> {
    let config_json: String = row.try_get("config")?;
    let config: LayerConfig = serde_json::from_str(&config_json)
        .map_err(|e| DecodeError::Config(format!("layer configuration: {e}")))?;
    let bound = |name: &str| row.try_get::<Option<f64>, _>(name);
    let bounds = match (
        bound("min_x")?,
        bound("min_y")?,
        bound("max_x")?,
        bound("max_y")?,
    ) {
        (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) => Some(Bounds {
            min_x,
            min_y,
            max_x,
            max_y,
        }),
        _ => None,
    };
    let count = |name: &str| row.try_get::<i64, _>(name).map(|n| n as u64);
    Ok(StoredLayer {
        config,
        version: count("version")?,
        source_sha256: row.try_get("source_sha256")?,
        ingested_at: row.try_get("ingested_at")?,
        feature_count: count("feature_count")?,
        invalid_count: count("invalid_count")?,
        repaired_count: count("repaired_count")?,
        skipped_count: count("skipped_count")?,
        bounds,
    })
}

/// A PostgreSQL identifier, quoted.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The data table of a layer version, within PostgreSQL's 63-byte names.
fn data_table(id: &str, version: u64) -> String {
    let suffix = format!("_v{version}");
    if id.len() + suffix.len() <= 63 {
        return format!("{id}{suffix}");
    }
    // FNV-1a of the whole id keeps long ids that share a prefix apart.
    let hash = (id.bytes()).fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}_{:08x}{suffix}", &id[..40], hash as u32)
}

fn sql_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Text | FieldType::Date => "TEXT",
        FieldType::Integer => "BIGINT",
        FieldType::Float => "DOUBLE PRECISION",
        FieldType::Boolean => "BOOLEAN",
    }
}

/// Every feature row of a layer version, in the column order `decode_row` reads.
fn features_sql(meta: &StoredLayer, table: &str) -> String {
    let columns: String = (meta.config.fields.iter())
        .map(|f| format!(", {}", quote(&f.name)))
        .collect();
    format!(
        "SELECT fid, ST_AsBinary(geom){columns} FROM chizu_data.{} ORDER BY fid",
        quote(table)
    )
}

fn decode_row(meta: &StoredLayer, row: &PgRow) -> Result<Feature, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        layer: meta.config.id.clone(),
        message,
    };
    let fid: i64 = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
    let wkb: Option<Vec<u8>> = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
    // No geometry when the query did not ask for it (`Pushdown::skip_geometry`).
    let geometry = match wkb {
        Some(wkb) => {
            chizu_io::gpkg::decode_wkb(&wkb).map_err(|e| corrupt(format!("feature {fid}: {e}")))?
        }
        None => geo::Geometry::GeometryCollection(geo::GeometryCollection::default()),
    };
    let properties = crate::decode_properties(row, &meta.config.fields, 2)
        .map_err(|e| corrupt(format!("feature {fid} {e}")))?;
    Ok(Feature {
        id: fid as u64,
        geometry,
        properties,
    })
}

#[async_trait::async_trait]
impl LayerReads for PgStore {
    async fn layers(&self) -> Result<Vec<StoredLayer>, StoreError> {
        let rows = sqlx::query(&format!("{LAYER_SELECT} ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        (rows.iter())
            .map(|row| {
                let id: String = row.try_get("id").map_err(|e| self.db(e))?;
                row_to_layer(row).map_err(|e| self.decode(&id, e))
            })
            .collect()
    }

    async fn versions(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT id, version FROM chizu_layers")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        Ok(rows.into_iter().map(|(id, v)| (id, v as u64)).collect())
    }

    async fn layer(&self, id: &str) -> Result<StoredLayer, StoreError> {
        let row = self.layer_row(id).await?;
        row_to_layer(&row).map_err(|e| self.decode(id, e))
    }

    async fn load(&self, id: &str) -> Result<LayerSnapshot, StoreError> {
        let url = self.url.clone();
        self.consistent_read(id, move |conn, meta, table| {
            let url = url.clone();
            Box::pin(async move {
                let rows = sqlx::query(&features_sql(&meta, &table))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| StoreError::Database {
                        path: url,
                        message: e.to_string(),
                    })?;
                let features = (rows.iter())
                    .map(|row| decode_row(&meta, row))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(LayerSnapshot { meta, features })
            })
        })
        .await
    }

    async fn stream_features(
        &self,
        id: &str,
        sink: tokio::sync::mpsc::Sender<Feature>,
    ) -> Result<StoredLayer, StoreError> {
        let url = self.url.clone();
        self.consistent_read(id, move |conn, meta, table| {
            let (url, sink) = (url.clone(), sink.clone());
            Box::pin(async move {
                let db = |e: sqlx::Error| StoreError::Database {
                    path: url.clone(),
                    message: e.to_string(),
                };
                let sql = features_sql(&meta, &table);
                // Rows arrive as PostgreSQL sends them: memory stays flat.
                let mut rows = sqlx::query(&sql).fetch(&mut *conn);
                let mut sent = 0u64;
                while let Some(row) = rows.try_next().await.map_err(db)? {
                    if sink.send(decode_row(&meta, &row)?).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                tracing::debug!(layer = %meta.config.id, sent, "streamed");
                Ok(meta)
            })
        })
        .await
    }

    async fn watch(&self, changed: Arc<tokio::sync::Notify>) -> Result<bool, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        listener
            .listen(CHANGES_CHANNEL)
            .await
            .map_err(|e| self.db(e))?;
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => changed.notify_one(),
                    Err(e) => {
                        // The listener reconnects on the next `recv`; what was
                        // announced meanwhile is caught by reloading now.
                        tracing::warn!("lost the change notifications ({e}); reconnecting");
                        changed.notify_one();
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(true)
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    async fn open_source(&self, id: &str) -> Result<Option<Arc<dyn LayerSource>>, StoreError> {
        let row = self.layer_row(id).await?;
        let meta = row_to_layer(&row).map_err(|e| self.decode(id, e))?;
        let table: String = row.try_get("data_table").map_err(|e| self.db(e))?;
        let mut layer = PgLayer {
            meta,
            table,
            pool: self.pool.clone(),
            runtime: tokio::runtime::Handle::current(),
            url: self.url.clone(),
            search: SearchIndex::default(),
            search_ids: Vec::new(),
            labels: Vec::new(),
            places: PlaceIndex::default(),
        };
        layer.build_search().await?;
        layer.build_labels().await?;
        Ok(Some(Arc::new(layer)))
    }
}

/// A layer version served from PostgreSQL on each request: only its
/// metadata and the search index of its searchable fields are in memory.
/// Areas go to the GiST index (`geom && envelope`); the view's row filter,
/// the request's filter and the field selection are applied by the server
/// to the rows as they stream in, by the same code as for memory layers,
/// so both modes give the same answers.
pub struct PgLayer {
    meta: StoredLayer,
    table: String,
    pool: PgPool,
    runtime: tokio::runtime::Handle,
    url: String,
    search: SearchIndex,
    /// The feature id of each search position.
    search_ids: Vec<u64>,
    /// The label points of the layer's features, by id (ascending).
    labels: Vec<(u64, LabelPoint)>,
    places: PlaceIndex,
}

impl PgLayer {
    fn error(&self, e: sqlx::Error) -> StoreError {
        // The version was replaced and its table dropped meanwhile: the
        // server is about to load the new one.
        if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") {
            return StoreError::Replaced(self.meta.config.id.clone());
        }
        StoreError::Database {
            path: self.url.clone(),
            message: e.to_string(),
        }
    }

    /// Reads the searchable fields once, as the memory index does at load.
    async fn build_search(&mut self) -> Result<(), StoreError> {
        let config = &self.meta.config;
        let fields = &config.fields;
        // (field, column): a reading is indexed as a value of the field it reads.
        let searchable: Vec<(usize, usize)> = (0..fields.len())
            .filter(|i| fields[*i].searchable)
            .flat_map(|i| {
                let reading = fields[i]
                    .reading
                    .as_deref()
                    .and_then(|r| config.field_index(r));
                std::iter::once((i, i)).chain(reading.map(|r| (i, r)))
            })
            .collect();
        if searchable.is_empty() {
            return Ok(());
        }
        let columns: Vec<String> = (searchable.iter())
            .map(|(_, c)| quote(&fields[*c].name))
            .collect();
        let sql = format!(
            "SELECT fid, {} FROM chizu_data.{} ORDER BY fid",
            columns.join(", "),
            quote(&self.table)
        );
        let mut values: Vec<(u32, u32, String)> = Vec::new();
        let mut ids = Vec::new();
        {
            let mut rows = sqlx::query(&sql).fetch(&self.pool);
            while let Some(row) = rows.try_next().await.map_err(|e| self.error(e))? {
                let position = ids.len() as u32;
                ids.push(row.try_get::<i64, _>(0).map_err(|e| self.error(e))? as u64);
                for (column, (field, _)) in searchable.iter().enumerate() {
                    let text: Option<String> =
                        row.try_get(column + 1).map_err(|e| self.error(e))?;
                    if let Some(text) = text {
                        values.push((position, *field as u32, text));
                    }
                }
            }
        }
        self.search = SearchIndex::build(values.iter().map(|(p, f, t)| (*p, *f, t.as_str())));
        self.search_ids = ids;
        self.build_places().await
    }

    /// One row per place (distinct value of a `place` field) with its extent,
    /// computed by the database.
    async fn build_places(&mut self) -> Result<(), StoreError> {
        let mut places = Vec::new();
        for (i, def) in self.meta.config.fields.iter().enumerate() {
            if def.place.is_none() {
                continue;
            }
            let reading = (def.reading.as_deref())
                .filter(|r| self.meta.config.field_index(r).is_some())
                .map(quote)
                .unwrap_or_else(|| "NULL::text".into());
            let sql = format!(
                // Exact extents: ST_Extent reads the float4 boxes stored
                // with each geometry. The reading: the first one met, as in
                // memory (rows in fid order).
                "SELECT {c}, count(*), min(ST_XMin(geom)), min(ST_YMin(geom)), \
                 max(ST_XMax(geom)), max(ST_YMax(geom)), \
                 (array_agg({r} ORDER BY fid) FILTER (WHERE {r} IS NOT NULL AND {r} <> ''))[1] \
                 FROM chizu_data.{t} WHERE {c} IS NOT NULL GROUP BY {c}",
                c = quote(&def.name),
                r = reading,
                t = quote(&self.table)
            );
            let mut rows = sqlx::query(&sql).fetch(&self.pool);
            while let Some(row) = rows.try_next().await.map_err(|e| self.error(e))? {
                let get = |k: usize| row.try_get::<f64, _>(k);
                let (Ok(min_x), Ok(min_y), Ok(max_x), Ok(max_y)) = (get(2), get(3), get(4), get(5))
                else {
                    continue;
                };
                places.push(Place {
                    field: i as u32,
                    value: row.try_get(0).map_err(|e| self.error(e))?,
                    reading: row.try_get(6).map_err(|e| self.error(e))?,
                    bounds: Bounds {
                        min_x,
                        min_y,
                        max_x,
                        max_y,
                    },
                    features: row.try_get::<i64, _>(1).map_err(|e| self.error(e))? as u64,
                });
            }
        }
        self.places = PlaceIndex::of_places(places);
        Ok(())
    }

    /// Places the labels once per version, as the memory index does at load:
    /// a line name is labelled once, so the whole layer is looked at, but only
    /// the label points are kept.
    async fn build_labels(&mut self) -> Result<(), StoreError> {
        let config = &self.meta.config;
        let Some(field) = config.label.as_deref().and_then(|n| config.field_index(n)) else {
            return Ok(());
        };
        let push = Pushdown {
            columns: Some(vec![field]),
            ..Pushdown::default()
        };
        // Rows are placed as they stream in: only ids and points are kept.
        let mut placer = chizu_core::label::LabelPlacer::default();
        let mut ids = Vec::new();
        self.stream_async(Query::new(&push), &mut |f| {
            placer.push(&f.mercator, f.properties[field].as_text());
            ids.push(f.id);
            true
        })
        .await?;
        self.labels = (ids.into_iter().zip(placer.finish()))
            .filter_map(|(id, label)| Some((id, label?)))
            .collect();
        self.labels.sort_unstable_by_key(|(id, _)| *id);
        Ok(())
    }

    fn label_of(&self, id: u64) -> Option<LabelPoint> {
        let i = self.labels.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        Some(self.labels[i].1)
    }

    /// Runs one query and visits the rows as they arrive.
    fn stream(
        &self,
        query: Query,
        visit: &mut dyn FnMut(IndexedFeature) -> bool,
    ) -> Result<(), StoreError> {
        self.runtime
            .block_on(self.stream_async(query, &mut |mut f| {
                f.label = self.label_of(f.id).map(Box::new);
                visit(f)
            }))
    }

    async fn stream_async<F: FnMut(IndexedFeature) -> bool>(
        &self,
        query: Query,
        visit: &mut F,
    ) -> Result<(), StoreError> {
        let sql = query.sql(&self.meta.config, &self.table);
        {
            let mut statement = sqlx::query(&sql);
            for param in query.params {
                statement = match param {
                    Param::F64(v) => statement.bind(v),
                    Param::Bool(v) => statement.bind(v),
                    Param::Text(v) => statement.bind(v),
                    Param::F64s(v) => statement.bind(v),
                    Param::I64s(v) => statement.bind(v),
                    Param::Bools(v) => statement.bind(v),
                    Param::Texts(v) => statement.bind(v),
                };
            }
            let mut rows = statement.fetch(&self.pool);
            while let Some(row) = rows.try_next().await.map_err(|e| self.error(e))? {
                if !visit(IndexedFeature::from(decode_row(&self.meta, &row)?)) {
                    break;
                }
            }
            Ok(())
        }
    }

    fn in_envelope(
        &self,
        lonlat: Option<&Bounds>,
        push: &Pushdown,
        visit: &mut dyn FnMut(IndexedFeature) -> bool,
    ) -> Result<(), StoreError> {
        let mut query = Query::new(push);
        if let Some(b) = lonlat {
            let envelope = format!(
                "geom && ST_MakeEnvelope({}, {}, {}, {}, 4326)",
                query.param(Param::F64(b.min_x)),
                query.param(Param::F64(b.min_y)),
                query.param(Param::F64(b.max_x)),
                query.param(Param::F64(b.max_y)),
            );
            query.conditions.push(envelope);
        }
        query.push_conditions(push, &self.meta.config.fields);
        self.stream(query, visit)
    }
}

/// A bound parameter of a [`PgLayer`] query.
enum Param {
    F64(f64),
    Bool(bool),
    Text(String),
    F64s(Vec<f64>),
    I64s(Vec<i64>),
    Bools(Vec<bool>),
    Texts(Vec<String>),
}

/// One `SELECT` over a layer's data table: the columns the caller needs
/// (the others read as typed NULLs, so rows decode the same way), the
/// conditions ANDed, every value a bound parameter.
struct Query {
    skip_geometry: bool,
    columns: Option<Vec<usize>>,
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Query {
    fn new(push: &Pushdown) -> Query {
        Query {
            skip_geometry: push.skip_geometry,
            columns: push.columns.clone(),
            conditions: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter; returns its placeholder.
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn push_conditions(&mut self, push: &Pushdown, fields: &[chizu_core::FieldDef]) {
        use chizu_core::cql2::Pushed;
        for condition in &push.conditions {
            let field = match condition {
                Pushed::Compare { field, .. } | Pushed::In { field, .. } => *field,
                Pushed::IsNull { field } => *field,
            };
            let Some(def) = fields.get(field) else {
                continue;
            };
            let sql = self.condition(condition, def);
            self.conditions.push(sql);
        }
    }

    /// One pushed condition as SQL, comparing as chizu does: text byte-wise,
    /// numbers as f64.
    fn condition(
        &mut self,
        condition: &chizu_core::cql2::Pushed,
        def: &chizu_core::FieldDef,
    ) -> String {
        use chizu_core::cql2::{PushValue, Pushed};
        let column = quote(&def.name);
        let left = match def.ty {
            FieldType::Text | FieldType::Date => format!("{column} COLLATE \"C\""),
            FieldType::Integer | FieldType::Float => format!("CAST({column} AS float8)"),
            FieldType::Boolean => column.clone(),
        };
        match condition {
            Pushed::IsNull { .. } => format!("{column} IS NULL"),
            Pushed::Compare { op, value, .. } => {
                let op = op.symbol();
                let p = match value {
                    PushValue::Text(t) => self.param(Param::Text(t.clone())),
                    PushValue::Number(n) => self.param(Param::F64(*n)),
                    PushValue::Bool(b) => self.param(Param::Bool(*b)),
                };
                format!("{left} {op} {p}")
            }
            Pushed::In { values, .. } => {
                let mut texts = Vec::new();
                let mut numbers = Vec::new();
                let mut bools = Vec::new();
                for v in values {
                    match v {
                        PushValue::Text(t) => texts.push(t.clone()),
                        PushValue::Number(n) => numbers.push(*n),
                        PushValue::Bool(b) => bools.push(*b),
                    }
                }
                let p = match def.ty {
                    FieldType::Text | FieldType::Date => self.param(Param::Texts(texts)),
                    FieldType::Integer | FieldType::Float => self.param(Param::F64s(numbers)),
                    FieldType::Boolean => self.param(Param::Bools(bools)),
                };
                format!("{left} = ANY({p})")
            }
        }
    }

    fn sql(&self, config: &LayerConfig, table: &str) -> String {
        let columns: String = (config.fields.iter().enumerate())
            .map(|(i, f)| {
                if self.columns.as_ref().is_none_or(|c| c.contains(&i)) {
                    format!(", {}", quote(&f.name))
                } else {
                    // Never read: fields the caller may not see stay in the database.
                    format!(", NULL::{} AS {}", sql_type(f.ty), quote(&f.name))
                }
            })
            .collect();
        let condition = if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        };
        let geometry = if self.skip_geometry {
            "NULL::bytea"
        } else {
            "ST_AsBinary(geom)"
        };
        format!(
            "SELECT fid, {geometry}{columns} FROM chizu_data.{} {condition} ORDER BY fid",
            quote(table)
        )
    }
}

impl LayerSource for PgLayer {
    fn meta(&self) -> &StoredLayer {
        &self.meta
    }

    fn reads_database(&self) -> bool {
        true
    }

    fn in_mercator_box(
        &self,
        mercator: &Bounds,
        push: &Pushdown,
    ) -> Result<Vec<Cow<'_, IndexedFeature>>, StoreError> {
        use chizu_core::tile::mercator_to_lonlat;
        let (min_x, min_y) = mercator_to_lonlat(mercator.min_x, mercator.min_y);
        let (max_x, max_y) = mercator_to_lonlat(mercator.max_x, mercator.max_y);
        let lonlat = Bounds {
            min_x,
            min_y,
            max_x,
            max_y,
        };
        let mut out = Vec::new();
        self.in_envelope(Some(&lonlat), push, &mut |f| {
            out.push(Cow::Owned(f));
            true
        })?;
        Ok(out)
    }

    fn scan(
        &self,
        lonlat: Option<&Bounds>,
        push: &Pushdown,
        visit: &mut dyn FnMut(&IndexedFeature) -> bool,
    ) -> Result<(), StoreError> {
        self.in_envelope(lonlat, push, &mut |f| visit(&f))
    }

    fn feature(
        &self,
        id: u64,
        push: &Pushdown,
    ) -> Result<Option<Cow<'_, IndexedFeature>>, StoreError> {
        Ok(self.features(&[id], push)?.into_iter().next())
    }

    fn features(
        &self,
        ids: &[u64],
        push: &Pushdown,
    ) -> Result<Vec<Cow<'_, IndexedFeature>>, StoreError> {
        let ids: Vec<i64> = ids
            .iter()
            .filter_map(|id| i64::try_from(*id).ok())
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        let mut query = Query::new(push);
        let p = query.param(Param::I64s(ids));
        query.conditions.push(format!("fid = ANY({p})"));
        self.stream(query, &mut |f| {
            out.push(Cow::Owned(f));
            true
        })?;
        Ok(out)
    }

    fn places(&self) -> &PlaceIndex {
        &self.places
    }

    fn search_index(&self) -> &SearchIndex {
        &self.search
    }

    fn search_hit(
        &self,
        position: u32,
        push: &Pushdown,
    ) -> Result<Option<Cow<'_, IndexedFeature>>, StoreError> {
        match self.search_ids.get(position as usize) {
            Some(id) => self.feature(*id, push),
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl LayerWrites for PgStore {
    async fn replace_layer(
        &self,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        let mut tx = conn.begin().await.map_err(|e| self.db(e))?;
        // A dropped transaction rolls back: the new table never existed.
        let version = self
            .write_version(&mut tx, config, features, report, source_sha256)
            .await?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(version)
    }

    async fn update_config(&self, config: &LayerConfig) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.db(e))?;
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, config FROM chizu_layers WHERE id = $1 FOR UPDATE")
                .bind(&config.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.db(e))?;
        let (version, stored) = row.ok_or_else(|| StoreError::UnknownLayer(config.id.clone()))?;
        crate::check_same_schema(&stored, config)?;
        let json = config_json(config)?;
        sqlx::query("UPDATE chizu_layers SET config = $1, version = $2 WHERE id = $3")
            .bind(json)
            .bind(version + 1)
            .bind(&config.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        notify(&mut tx, &config.id).await.map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok((version + 1) as u64)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

fn config_json(config: &LayerConfig) -> Result<String, StoreError> {
    serde_json::to_string(config).map_err(|e| StoreError::Corrupt {
        layer: config.id.clone(),
        message: e.to_string(),
    })
}

async fn notify(conn: &mut PgConnection, id: &str) -> Result<(), sqlx::Error> {
    // Delivered when the transaction commits, and only then.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

impl PgStore {
    async fn write_version(
        &self,
        conn: &mut PgConnection,
        config: &LayerConfig,
        features: &[Feature],
        report: &IngestReport,
        source_sha256: &str,
    ) -> Result<u64, StoreError> {
        // Two ingests of one layer queue here instead of racing for the version.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('chizu layer ' || $1))")
            .bind(&config.id)
            .execute(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        let previous: Option<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT version, data_table, previous_table FROM chizu_layers WHERE id = $1",
        )
        .bind(&config.id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| self.db(e))?;
        let version = previous.as_ref().map_or(0, |p| p.0) as u64 + 1;
        let table = data_table(&config.id, version);
        create_table(conn, config, &table)
            .await
            .map_err(|e| self.db(e))?;
        let bounds = copy_features(conn, config, &table, features)
            .await
            .map_err(|e| self.db(e))?;
        let qualified = format!("chizu_data.{}", quote(&table));
        for sql in [
            format!("CREATE INDEX ON {qualified} USING gist (geom)"),
            format!("ANALYZE {qualified}"),
        ] {
            sqlx::query(&sql)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.db(e))?;
        }
        let bound = |v: f64| (!bounds.is_empty()).then_some(v);
        sqlx::query(
            "INSERT INTO chizu_layers VALUES ($1, $2, $3, $4, $5, $6, \
             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, \
             data_table = EXCLUDED.data_table, config = EXCLUDED.config, \
             source_path = EXCLUDED.source_path, source_sha256 = EXCLUDED.source_sha256, \
             ingested_at = EXCLUDED.ingested_at, feature_count = EXCLUDED.feature_count, \
             invalid_count = EXCLUDED.invalid_count, repaired_count = EXCLUDED.repaired_count, \
             skipped_count = EXCLUDED.skipped_count, min_x = EXCLUDED.min_x, \
             min_y = EXCLUDED.min_y, max_x = EXCLUDED.max_x, max_y = EXCLUDED.max_y",
        )
        .bind(&config.id)
        .bind(version as i64)
        .bind(&table)
        .bind(config_json(config)?)
        .bind(config.source.path.display().to_string())
        .bind(source_sha256)
        .bind(features.len() as i64)
        .bind(report.invalid.len() as i64)
        .bind(report.repaired as i64)
        .bind(report.skipped as i64)
        .bind(bound(bounds.min_x))
        .bind(bound(bounds.min_y))
        .bind(bound(bounds.max_x))
        .bind(bound(bounds.max_y))
        .execute(&mut *conn)
        .await
        .map_err(|e| self.db(e))?;
        // The stable view moves to the new table first: the old one then
        // has nothing depending on it.
        // Typed as the layer's multi-geometry, as in the GeoPackage, so that
        // GDAL and QGIS know the geometry type.
        let view = format!("chizu.{}", quote(&config.id));
        let columns: String = (config.fields.iter())
            .map(|f| format!(", {}", quote(&f.name)))
            .collect();
        let kind = config.geometry.ogc_name();
        let mut statements = vec![
            format!("DROP VIEW IF EXISTS {view}"),
            format!(
                "CREATE VIEW {view} AS SELECT fid, \
                 ST_Multi(geom)::geometry({kind}, 4326) AS geom{columns} FROM {qualified}"
            ),
        ];
        // The version before stays one more ingest, for instances that
        // have not switched yet; the one before that goes.
        if let Some((_, _, Some(oldest))) = &previous {
            statements.push(format!("DROP TABLE IF EXISTS chizu_data.{}", quote(oldest)));
        }
        for sql in statements {
            sqlx::query(&sql)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.db(e))?;
        }
        sqlx::query("UPDATE chizu_layers SET previous_table = $2 WHERE id = $1")
            .bind(&config.id)
            .bind(previous.map(|p| p.1))
            .execute(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        notify(conn, &config.id).await.map_err(|e| self.db(e))?;
        Ok(version)
    }
}

async fn create_table(
    conn: &mut PgConnection,
    config: &LayerConfig,
    table: &str,
) -> Result<(), sqlx::Error> {
    let columns: String = (config.fields.iter())
        .map(|f| format!(", {} {}", quote(&f.name), sql_type(f.ty)))
        .collect();
    let t = quote(table);
    // `raw_sql` would take both at once, but its future is not `Send`.
    for sql in [
        format!("DROP TABLE IF EXISTS chizu_data.{t}"),
        format!(
            "CREATE TABLE chizu_data.{t} (fid BIGINT PRIMARY KEY, \
             geom geometry(Geometry, 4326) NOT NULL{columns})"
        ),
    ] {
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes the rows with `COPY` (text format): an order of magnitude faster
/// than INSERTs. Geometries go as hex EWKB, which PostGIS reads directly.
/// Returns the layer's bounds.
async fn copy_features(
    conn: &mut PgConnection,
    config: &LayerConfig,
    table: &str,
    features: &[Feature],
) -> Result<Bounds, sqlx::Error> {
    let columns: String = (config.fields.iter())
        .map(|f| format!(", {}", quote(&f.name)))
        .collect();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY chizu_data.{} (fid, geom{columns}) FROM STDIN",
            quote(table)
        ))
        .await?;
    let mut bounds = Bounds::EMPTY;
    let mut buffer = String::with_capacity(1 << 20);
    for f in features {
        bounds.expand(&Bounds::of_geometry(&f.geometry));
        copy_line(&mut buffer, f);
        if buffer.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut buffer).into_bytes()).await?;
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.into_bytes()).await?;
    }
    copy.finish().await?;
    Ok(bounds)
}

/// One row of COPY's text format.
fn copy_line(out: &mut String, f: &Feature) {
    use std::fmt::Write;
    let _ = write!(out, "{}\t", f.id);
    out.push_str(&hex_ewkb(&f.geometry, chizu_io::STORAGE_EPSG));
    for value in &f.properties {
        out.push('\t');
        match value {
            Value::Null => out.push_str("\\N"),
            Value::Text(s) => copy_escape(out, s),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            // Rust prints the shortest text that reads back as the same f64.
            Value::Float(x) => {
                let _ = write!(out, "{x}");
            }
            Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        }
    }
    out.push('\n');
}

fn copy_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

/// Extended WKB with the SRID (what a `geometry(Geometry, 4326)` column
/// accepts), as hexadecimal text.
fn hex_ewkb(g: &geo::Geometry<f64>, srid: u32) -> String {
    use geozero::{CoordDimensions, ToWkb};
    let wkb = g.to_wkb(CoordDimensions::xy()).unwrap_or_default();
    let mut ewkb = Vec::with_capacity(wkb.len() + 4);
    if wkb.len() >= 5 {
        let little = wkb[0] == 1;
        let code: [u8; 4] = [wkb[1], wkb[2], wkb[3], wkb[4]];
        let code = if little {
            u32::from_le_bytes(code)
        } else {
            u32::from_be_bytes(code)
        } | 0x2000_0000;
        ewkb.push(wkb[0]);
        let (code, srid) = if little {
            (code.to_le_bytes(), srid.to_le_bytes())
        } else {
            (code.to_be_bytes(), srid.to_be_bytes())
        };
        ewkb.extend_from_slice(&code);
        ewkb.extend_from_slice(&srid);
        ewkb.extend_from_slice(&wkb[5..]);
    }
    let mut hex = String::with_capacity(ewkb.len() * 2);
    for b in ewkb {
        hex.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
        hex.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_tables_fit_postgres_names() {
        assert_eq!(data_table("parcels", 3), "parcels_v3");
        let long = "a".repeat(63);
        let other = format!("{}b", "a".repeat(62));
        let (t1, t2) = (data_table(&long, 12), data_table(&other, 12));
        assert!(t1.len() <= 63 && t2.len() <= 63 && t1 != t2, "{t1} {t2}");
    }

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let mut out = String::new();
        copy_escape(&mut out, "a\tb\\c\nd");
        assert_eq!(out, "a\\tb\\\\c\\nd");
    }

    #[test]
    fn ewkb_carries_the_srid() {
        let hex = hex_ewkb(&geo::Geometry::Point(geo::point!(x: 1.0, y: 2.0)), 4326);
        // little endian, Point | SRID flag, 4326
        assert!(hex.starts_with("0101000020E6100000"), "{hex}");
    }
}
