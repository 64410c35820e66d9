//! Where accounts are kept: a SQLite file beside a GeoPackage store, or the
//! PostgreSQL database of a PostGIS store (shared by every instance).
//!
//! The account SQL is written once for both: `$n` parameters (SQLite reads
//! them too), `"user"` quoted (a keyword in PostgreSQL), integers for flags
//! and times. [`with_pool!`] runs the same statement on whichever pool it is.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, SqlitePool};
use std::borrow::Cow;
use std::str::FromStr;

#[derive(Clone)]
pub enum AccountsDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Evaluates `$body` with `$pool` bound to the SQLite or the PostgreSQL pool.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::AccountsDb::Sqlite($pool) => $body,
            $crate::db::AccountsDb::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The account schema's migrations in PostgreSQL. Versions 2000-2999 are the
/// accounts'; the layer store uses 1000-1999 in the same `_sqlx_migrations`
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
                2001,
                "accounts",
                include_str!("../migrations/postgres/2001_accounts.sql"),
            ),
            migration(
                2002,
                "login limits",
                include_str!("../migrations/postgres/2002_login_limits.sql"),
            ),
            migration(
                2003,
                "audit purpose",
                include_str!("../migrations/postgres/2003_audit_purpose.sql"),
            ),
        ]),
        ignore_missing: true,
        locking: true,
        no_tx: false,
    }
}

/// Connects to PostgreSQL and brings the account tables up to date.
pub(crate) async fn connect_postgres(url: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("chizu accounts");
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(30))
        .connect_with(options)
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}
