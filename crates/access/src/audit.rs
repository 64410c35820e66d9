//! The audit log of personal-data reads: append-only, written off the request
//! path by a background task so that tiles are never slowed by it.

use crate::db::{AccountsDb, with_pool};
use serde::Serialize;
use tokio::sync::mpsc;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS chizu_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  user TEXT NOT NULL,
  layer TEXT NOT NULL,
  via TEXT NOT NULL,
  area TEXT NOT NULL,
  features INTEGER NOT NULL,
  fields TEXT NOT NULL,
  purpose TEXT NOT NULL DEFAULT ''
);
CREATE TRIGGER IF NOT EXISTS chizu_audit_no_update BEFORE UPDATE ON chizu_audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS chizu_audit_no_delete BEFORE DELETE ON chizu_audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// One read of personal data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEvent {
    /// Unix seconds.
    pub at: i64,
    pub user: String,
    pub layer: String,
    /// How it was read: "tile", "query", "export".
    pub via: String,
    /// The tile (z/x/y) or area read.
    pub area: String,
    pub features: u64,
    /// The personal fields included.
    pub fields: String,
    /// Why the data was taken out, as the staff member said when exporting
    /// (利用目的); empty for map and query reads.
    #[serde(default)]
    pub purpose: String,
}

/// Adds the `purpose` column to an accounts file made before it existed.
pub(crate) async fn upgrade_sqlite(pool: &sqlx::SqlitePool) -> Result<(), sqlx::Error> {
    let columns: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM pragma_table_info('chizu_audit')")
            .fetch_all(pool)
            .await?;
    if !columns.iter().any(|(c,)| c == "purpose") {
        sqlx::query("ALTER TABLE chizu_audit ADD COLUMN purpose TEXT NOT NULL DEFAULT ''")
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::UnboundedSender<AuditEvent>,
    db: AccountsDb,
}

impl AuditLog {
    /// Starts the writer task. Events are batched into one transaction per burst.
    pub fn start(db: AccountsDb) -> AuditLog {
        let (sender, mut receiver) = mpsc::unbounded_channel::<AuditEvent>();
        let writer = db.clone();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = receiver.try_recv() {
                    batch.push(more);
                    if batch.len() >= 1000 {
                        break;
                    }
                }
                if let Err(e) = write(&writer, &batch).await {
                    tracing::error!("audit log: {} events not written: {e}", batch.len());
                }
            }
        });
        AuditLog { sender, db }
    }

    pub fn record(&self, mut event: AuditEvent) {
        if event.at == 0 {
            event.at = crate::auth::now();
        }
        if self.sender.send(event).is_err() {
            tracing::error!("audit log writer has stopped");
        }
    }

    /// Events, oldest first, optionally of one user and since a time (Unix seconds).
    pub async fn events(
        &self,
        user: Option<&str>,
        since: Option<i64>,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        read(&self.db, user, since).await
    }
}

async fn write(db: &AccountsDb, batch: &[AuditEvent]) -> Result<(), sqlx::Error> {
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        for e in batch {
            sqlx::query(
                "INSERT INTO chizu_audit (at, \"user\", layer, via, area, features, fields, purpose) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(e.at)
            .bind(&e.user)
            .bind(&e.layer)
            .bind(&e.via)
            .bind(&e.area)
            .bind(e.features as i64)
            .bind(&e.fields)
            .bind(&e.purpose)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })
}

pub async fn read(
    db: &AccountsDb,
    user: Option<&str>,
    since: Option<i64>,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    type Row = (i64, String, String, String, String, i64, String, String);
    let rows: Vec<Row> = with_pool!(db, pool => sqlx::query_as(
        "SELECT at, \"user\", layer, via, area, features, fields, purpose FROM chizu_audit \
         WHERE (CAST($1 AS TEXT) IS NULL OR \"user\" = $1) AND (CAST($2 AS BIGINT) IS NULL OR at >= $2) ORDER BY id",
    )
    .bind(user)
    .bind(since)
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(
            |(at, user, layer, via, area, features, fields, purpose)| AuditEvent {
                at,
                user,
                layer,
                via,
                area,
                features: features as u64,
                fields,
                purpose,
            },
        )
        .collect())
}
