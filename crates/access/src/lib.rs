//! The permission layer: who is calling ([`Caller`]), what they may see ([`View`]),
//! users, sessions and API tokens ([`AuthDb`]), login throttling and the audit log.
//!
//! The view is computed once per request by a pure function of the caller's roles
//! and the layer files, and travels as a value into every output path (catalog,
//! TileJSON, tiles, queries, exports). A path that has no view cannot produce
//! output, so no path can forget to filter.

mod audit;
mod auth;
mod db;
mod hashing;
mod limiter;
mod view;

pub use audit::{AuditEvent, AuditLog};
pub use auth::{AuthDb, AuthError, SESSION_LIFETIME, TokenInfo, UserInfo, accounts_path};
pub use db::AccountsDb;

/// [`SESSION_LIFETIME`] in seconds, for cookies.
pub const SESSION_LIFETIME_SECS: u64 = SESSION_LIFETIME.as_secs();
pub use limiter::{Limiter, LoginLimiter, SharedLimiter};
pub use view::{Caller, LayerView, View};
