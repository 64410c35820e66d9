//! Users, sessions and API tokens, kept in the store's SQLite/GeoPackage file.
//! Passwords are argon2id hashes; session ids and tokens are 256-bit random
//! values of which only the SHA-256 is stored, so a copy of the file grants nothing.

use crate::db::{AccountsDb, with_pool};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS chizu_users (
  name TEXT PRIMARY KEY NOT NULL,
  password_hash TEXT NOT NULL,
  roles TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chizu_sessions (
  id_hash TEXT PRIMARY KEY NOT NULL,
  user TEXT NOT NULL REFERENCES chizu_users(name),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chizu_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  token_hash TEXT UNIQUE NOT NULL,
  user TEXT NOT NULL REFERENCES chizu_users(name),
  label TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);
"#;

/// How long a login session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("no user `{0}`")]
    NoUser(String),
    #[error("invalid user name `{0}`: use 1-64 letters, digits, `.`, `_` or `-`")]
    BadName(String),
    #[error("passwords must be at least 10 characters")]
    WeakPassword,
    #[error("no token {0}")]
    NoToken(i64),
    #[error("user database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("password hashing: {0}")]
    Hash(String),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    pub label: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked: bool,
}

#[derive(Clone)]
pub struct AuthDb {
    db: AccountsDb,
}

pub(crate) fn now() -> i64 {
    chizu_core::time::unix_now()
}

fn random_secret() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Argon2id with OWASP's minimum parameters (2025): 19 MiB of memory, two
/// passes, one lane; version 0x13.
fn argon2id() -> Argon2<'static> {
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// A hash of a password nobody has, verified against when the user does not
/// exist, so that unknown users and wrong passwords take the same time.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        argon2id()
            .hash_password(b"decoy password that no user has")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// The accounts file beside a map store: `city.gpkg` -> `city.accounts.sqlite`.
/// Users, sessions, tokens and the audit log live there, not in the map file
/// that planners open in QGIS.
pub fn accounts_path(store: &Path) -> PathBuf {
    store.with_extension("accounts.sqlite")
}

/// The tables an older chizu kept inside the map file, in the order they
/// are copied (users before what refers to them).
const ACCOUNT_TABLES: [&str; 4] = [
    "chizu_users",
    "chizu_sessions",
    "chizu_tokens",
    "chizu_audit",
];

impl AuthDb {
    /// Opens the accounts file beside the map store `store`, creating it
    /// (readable by its owner only) when missing, and moves any accounts an
    /// older chizu kept inside the map file into it.
    pub async fn open_beside(store: &Path) -> Result<AuthDb, AuthError> {
        let path = accounts_path(store);
        let created = !path.exists();
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        #[cfg(unix)]
        if created {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let db = AuthDb::new(pool).await?;
        if store.exists() {
            db.move_out_of(store).await?;
        }
        Ok(db)
    }

    /// Copies the account tables of an older map file into this one and
    /// drops them there. Idempotent: a copy interrupted half-way is finished
    /// by the next open.
    async fn move_out_of(&self, store: &Path) -> Result<(), AuthError> {
        let AccountsDb::Sqlite(pool) = &self.db else {
            return Ok(());
        };
        let mut conn = pool.acquire().await?;
        sqlx::query("ATTACH DATABASE ? AS map")
            .bind(store.to_string_lossy().to_string())
            .execute(&mut *conn)
            .await?;
        let present: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM map.sqlite_master WHERE type = 'table' AND name IN \
             ('chizu_users', 'chizu_sessions', 'chizu_tokens', 'chizu_audit')",
        )
        .fetch_all(&mut *conn)
        .await?;
        for table in ACCOUNT_TABLES
            .iter()
            .filter(|t| present.iter().any(|p| p == *t))
        {
            // By the older table's columns: newer ones (the audit log's
            // purpose) take their defaults.
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?, 'map')")
                    .bind(*table)
                    .fetch_all(&mut *conn)
                    .await?;
            let columns = columns
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", ");
            sqlx::query(&format!(
                "INSERT OR IGNORE INTO main.{table} ({columns}) SELECT {columns} FROM map.{table}"
            ))
            .execute(&mut *conn)
            .await?;
        }
        for table in ACCOUNT_TABLES
            .iter()
            .rev()
            .filter(|t| present.iter().any(|p| p == *t))
        {
            sqlx::query(&format!("DROP TABLE map.{table}"))
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("DETACH DATABASE map")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Uses (and prepares) a SQLite database for the account tables.
    pub async fn new(pool: SqlitePool) -> Result<AuthDb, AuthError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::raw_sql(crate::audit::SCHEMA).execute(&pool).await?;
        crate::audit::upgrade_sqlite(&pool).await?;
        Ok(AuthDb {
            db: AccountsDb::Sqlite(pool),
        })
    }

    /// Accounts in memory, gone when dropped (router tests, one-off tools).
    pub async fn in_memory() -> Result<AuthDb, AuthError> {
        // One connection: each connection to `sqlite::memory:` is a database of its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await?;
        AuthDb::new(pool).await
    }

    /// Uses (and migrates) the account tables of a PostgreSQL database.
    pub async fn connect_postgres(url: &str) -> Result<AuthDb, AuthError> {
        Ok(AuthDb {
            db: AccountsDb::Postgres(crate::db::connect_postgres(url).await?),
        })
    }

    /// The database the accounts are kept in.
    pub fn db(&self) -> &AccountsDb {
        &self.db
    }

    fn hash(password: &str) -> Result<String, AuthError> {
        if password.chars().count() < 10 {
            return Err(AuthError::WeakPassword);
        }
        argon2id()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hash(e.to_string()))
    }

    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        roles: &[String],
    ) -> Result<(), AuthError> {
        if !valid_name(name) {
            return Err(AuthError::BadName(name.to_string()));
        }
        let hash = Self::hash(password)?;
        let result = with_pool!(&self.db, pool => sqlx::query(
            "INSERT INTO chizu_users (name, password_hash, roles, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(&hash)
        .bind(roles.join(","))
        .bind(now())
        .execute(pool)
        .await
        .map(|_| ()));
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AuthError::UserExists(name.to_string()))
            }
            other => other.map_err(Into::into),
        }
    }

    /// Runs one statement on a user's row; `NoUser` when there is none.
    async fn update_user(&self, sql: &str, value: &str, name: &str) -> Result<(), AuthError> {
        let n = with_pool!(&self.db, pool => sqlx::query(sql)
            .bind(value)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected());
        if n == 0 {
            return Err(AuthError::NoUser(name.to_string()));
        }
        Ok(())
    }

    /// Ends every session of a user.
    async fn end_sessions(&self, name: &str) -> Result<(), AuthError> {
        with_pool!(&self.db, pool => sqlx::query("DELETE FROM chizu_sessions WHERE \"user\" = $1")
            .bind(name)
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Sets a new password; every session of the user ends.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        let hash = Self::hash(password)?;
        self.update_user(
            "UPDATE chizu_users SET password_hash = $1 WHERE name = $2",
            &hash,
            name,
        )
        .await?;
        self.end_sessions(name).await
    }

    pub async fn set_roles(&self, name: &str, roles: &[String]) -> Result<(), AuthError> {
        self.update_user(
            "UPDATE chizu_users SET roles = $1 WHERE name = $2",
            &roles.join(","),
            name,
        )
        .await
    }

    /// Disables a user: logins, sessions and tokens stop working at once.
    pub async fn disable(&self, name: &str) -> Result<(), AuthError> {
        self.update_user(
            "UPDATE chizu_users SET disabled = CAST($1 AS BIGINT) WHERE name = $2",
            "1",
            name,
        )
        .await?;
        self.end_sessions(name).await
    }

    pub async fn users(&self) -> Result<Vec<UserInfo>, AuthError> {
        let rows: Vec<(String, String, i64)> = with_pool!(&self.db, pool =>
            sqlx::query_as("SELECT name, roles, disabled FROM chizu_users ORDER BY name")
                .fetch_all(pool)
                .await?);
        Ok(rows
            .into_iter()
            .map(|(name, roles, disabled)| user_info(name, &roles, disabled))
            .collect())
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserInfo>, AuthError> {
        let row: Option<(String, String, i64)> = with_pool!(&self.db, pool =>
            sqlx::query_as("SELECT name, roles, disabled FROM chizu_users WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?);
        Ok(row.map(|(name, roles, disabled)| user_info(name, &roles, disabled)))
    }

    /// Checks a password. Unknown users, disabled users and wrong passwords all
    /// answer `None` after the same argon2 work.
    pub async fn verify(&self, name: &str, password: &str) -> Result<Option<UserInfo>, AuthError> {
        let row: Option<(String, String, String, i64)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT name, password_hash, roles, disabled FROM chizu_users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?);
        let stored = row.as_ref().map(|r| r.1.clone());
        let password = password.to_string();
        // On the hashing threads: one check per core at a time, so a burst
        // of logins queues instead of taking memory.
        let ok = crate::hashing::run(move || {
            // The parameters are read from the stored hash itself.
            let hash = stored.unwrap_or_else(|| decoy_hash().to_string());
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        Ok(match row {
            Some((name, _, roles, 0)) if ok => Some(user_info(name, &roles, 0)),
            _ => None,
        })
    }

    /// Starts a session; returns the secret for the cookie.
    pub async fn create_session(&self, user: &str) -> Result<String, AuthError> {
        let secret = random_secret()?;
        let now = now();
        with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM chizu_sessions WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("INSERT INTO chizu_sessions VALUES ($1, $2, $3, $4)")
                .bind(digest(&secret))
                .bind(user)
                .bind(now)
                .bind(now + SESSION_LIFETIME.as_secs() as i64)
                .execute(pool)
                .await
                .map(|_| ())?
        });
        Ok(secret)
    }

    pub async fn end_session(&self, secret: &str) -> Result<(), AuthError> {
        with_pool!(&self.db, pool => sqlx::query("DELETE FROM chizu_sessions WHERE id_hash = $1")
            .bind(digest(secret))
            .execute(pool)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// The user of a live session (not expired, user not disabled).
    pub async fn session_user(&self, secret: &str) -> Result<Option<UserInfo>, AuthError> {
        let row: Option<(String, String, i64)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT u.name, u.roles, u.disabled FROM chizu_sessions s JOIN chizu_users u ON u.name = s.\"user\" \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(digest(secret))
        .bind(now())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(name, roles, disabled)| user_info(name, &roles, disabled)))
    }

    /// Creates an API token; the secret is returned once and never stored.
    pub async fn create_token(
        &self,
        user: &str,
        lifetime: Duration,
        label: &str,
    ) -> Result<(i64, String), AuthError> {
        if self.user(user).await?.is_none() {
            return Err(AuthError::NoUser(user.to_string()));
        }
        let secret = format!("chizu_{}", random_secret()?);
        let now = now();
        let id: i64 = with_pool!(&self.db, pool => sqlx::query_scalar(
            "INSERT INTO chizu_tokens (token_hash, \"user\", label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(digest(&secret))
        .bind(user)
        .bind(label)
        .bind(now)
        .bind(now.saturating_add(lifetime.as_secs() as i64))
        .fetch_one(pool)
        .await?);
        Ok((id, secret))
    }

    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, AuthError> {
        let rows: Vec<(i64, String, String, i64, i64, i64)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT id, \"user\", label, created_at, expires_at, revoked FROM chizu_tokens \
             WHERE (CAST($1 AS TEXT) IS NULL OR \"user\" = $1) ORDER BY id",
        )
        .bind(user)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, user, label, created_at, expires_at, revoked)| TokenInfo {
                    id,
                    user,
                    label,
                    created_at,
                    expires_at,
                    revoked: revoked != 0,
                },
            )
            .collect())
    }

    pub async fn revoke_token(&self, id: i64) -> Result<(), AuthError> {
        let n = with_pool!(&self.db, pool => sqlx::query("UPDATE chizu_tokens SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        if n == 0 {
            return Err(AuthError::NoToken(id));
        }
        Ok(())
    }

    /// The user of a valid token (not expired, not revoked, user not disabled).
    pub async fn token_user(&self, secret: &str) -> Result<Option<UserInfo>, AuthError> {
        let row: Option<(String, String, i64)> = with_pool!(&self.db, pool => sqlx::query_as(
            "SELECT u.name, u.roles, u.disabled FROM chizu_tokens t JOIN chizu_users u ON u.name = t.\"user\" \
             WHERE t.token_hash = $1 AND t.revoked = 0 AND t.expires_at > $2 AND u.disabled = 0",
        )
        .bind(digest(secret))
        .bind(now())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(name, roles, disabled)| user_info(name, &roles, disabled)))
    }
}

fn user_info(name: String, roles: &str, disabled: i64) -> UserInfo {
    UserInfo {
        name,
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        disabled: disabled != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An accounts file from before the audit log had a purpose gains the
    /// column, and keeps its rows.
    #[tokio::test]
    async fn an_older_audit_log_gains_the_purpose_column() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("city.gpkg");
        let accounts = accounts_path(&map);
        let url = format!("sqlite://{}?mode=rwc", accounts.display());
        let pool = SqlitePool::connect(&url).await.unwrap();
        let old_schema = crate::audit::SCHEMA.replace(",\n  purpose TEXT NOT NULL DEFAULT ''", "");
        assert!(!old_schema.contains("purpose"));
        sqlx::raw_sql(&old_schema).execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO chizu_audit (at, user, layer, via, area, features, fields) VALUES (1, 'kato', 'parcels', 'tile', 'tile 15/1/2', 3, 'owner_name')")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let db = AuthDb::open_beside(&map).await.unwrap();
        let log = crate::audit::AuditLog::start(db.db().clone());
        log.record(crate::audit::AuditEvent {
            at: 2,
            user: "tanaka".into(),
            layer: "parcels".into(),
            via: "export".into(),
            area: "whole layer".into(),
            features: 10,
            fields: "owner_name".into(),
            purpose: "固定資産税の課税".into(),
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let events = loop {
            let events = log.events(None, None).await.unwrap();
            if events.len() == 2 || std::time::Instant::now() > deadline {
                break events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].purpose, "");
        assert_eq!(events[1].purpose, "固定資産税の課税");
    }

    #[tokio::test]
    async fn accounts_move_out_of_an_older_map_file() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("city.gpkg");
        // An older chizu: the account tables inside the map file.
        let url = format!("sqlite://{}?mode=rwc", map.display());
        let old = AuthDb::new(SqlitePool::connect(&url).await.unwrap())
            .await
            .unwrap();
        old.add_user("kato", "a long password", &["staff".into()])
            .await
            .unwrap();
        // Its audit log had no purpose column yet.
        let old_schema = crate::audit::SCHEMA.replace(",\n  purpose TEXT NOT NULL DEFAULT ''", "");
        with_pool!(old.db(), pool => {
            sqlx::raw_sql(&format!("DROP TABLE chizu_audit; {old_schema}"))
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO chizu_audit (at, user, layer, via, area, features, fields) VALUES (1, 'kato', 'parcels', 'tile', 'tile 15/1/2', 3, 'owner_name')")
                .execute(pool)
                .await
                .unwrap();
            pool.close().await
        });

        let db = AuthDb::open_beside(&map).await.unwrap();
        assert_eq!(db.user("kato").await.unwrap().unwrap().roles, vec!["staff"]);
        assert!(
            db.verify("kato", "a long password")
                .await
                .unwrap()
                .is_some()
        );
        assert!(accounts_path(&map).exists());
        let moved = crate::audit::AuditLog::start(db.db().clone())
            .events(None, None)
            .await
            .unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(
            (moved[0].user.as_str(), moved[0].purpose.as_str()),
            ("kato", "")
        );
        let map_pool = SqlitePool::connect(&url).await.unwrap();
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'chizu_%' AND type = 'table' AND name <> 'chizu_layers'",
        )
        .fetch_one(&map_pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "the map file keeps map data only");
        // Opening again finds nothing more to move and loses nothing.
        drop(db);
        let again = AuthDb::open_beside(&map).await.unwrap();
        assert!(again.user("kato").await.unwrap().is_some());
    }

    async fn db() -> (tempfile::TempDir, AuthDb) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let pool = SqlitePool::connect(&url).await.unwrap();
        (dir, AuthDb::new(pool).await.unwrap())
    }

    #[tokio::test]
    async fn passwords_sessions_and_tokens() {
        let (_d, db) = db().await;
        db.add_user("kato", "correct horse battery", &["staff".into()])
            .await
            .unwrap();
        assert!(matches!(
            db.add_user("kato", "another password", &[]).await,
            Err(AuthError::UserExists(_))
        ));
        assert!(matches!(
            db.add_user("x", "short", &[]).await,
            Err(AuthError::WeakPassword)
        ));
        assert!(matches!(
            db.add_user("a b", "long enough password", &[]).await,
            Err(AuthError::BadName(_))
        ));
        assert_eq!(
            db.verify("kato", "correct horse battery")
                .await
                .unwrap()
                .unwrap()
                .roles,
            vec!["staff"]
        );
        assert!(
            db.verify("kato", "wrong password!!")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            db.verify("nobody", "correct horse battery")
                .await
                .unwrap()
                .is_none()
        );

        let s = db.create_session("kato").await.unwrap();
        assert_eq!(db.session_user(&s).await.unwrap().unwrap().name, "kato");
        assert!(db.session_user(&format!("{s}0")).await.unwrap().is_none());

        let (id, token) = db
            .create_token("kato", Duration::from_secs(3600), "script")
            .await
            .unwrap();
        assert!(token.starts_with("chizu_"));
        assert_eq!(db.token_user(&token).await.unwrap().unwrap().name, "kato");
        db.revoke_token(id).await.unwrap();
        assert!(db.token_user(&token).await.unwrap().is_none());
        let (_, expired) = db
            .create_token("kato", Duration::from_secs(0), "")
            .await
            .unwrap();
        assert!(db.token_user(&expired).await.unwrap().is_none());

        let (_, live) = db
            .create_token("kato", Duration::from_secs(3600), "")
            .await
            .unwrap();
        db.disable("kato").await.unwrap();
        assert!(
            db.verify("kato", "correct horse battery")
                .await
                .unwrap()
                .is_none()
        );
        assert!(db.session_user(&s).await.unwrap().is_none());
        assert!(db.token_user(&live).await.unwrap().is_none());
    }
}
