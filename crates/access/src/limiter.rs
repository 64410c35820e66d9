//! Slows down password guessing without locking owners out ("soft lockout",
//! OWASP ASVS 2.2.1).
//!
//! Failures are counted per (user name, client address), per user name and
//! per client address. Each counter allows some attempts freely; past that,
//! every further attempt must wait twice as long as the one before (1 s,
//! 2 s, 4 s, ... up to 15 minutes). A counter forgets 15 minutes after its
//! last failure, and a successful login clears the user's counters.
//!
//! An attempt is *reserved* before the password is checked: the slot is taken
//! under the lock, so forty concurrent guesses get exactly as many checks as
//! one after the other would (five per user and address).
//!
//! An attacker guessing from one address slows down only the pair of that
//! address and user name: the owner logging in from elsewhere is not held up
//! until the per-user counter, which allows twenty, passes its own threshold.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct LimiterPolicy {
    /// Attempts per (user, address) before delays start.
    pub free_per_pair: u32,
    /// Attempts per user name, from all addresses.
    pub free_per_user: u32,
    /// Attempts per address, for all user names.
    pub free_per_addr: u32,
    /// The first delay; each further failure doubles it.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How long a counter remembers its last failure.
    pub window: Duration,
}

impl LimiterPolicy {
    /// How long the next attempt must wait after `failures` failures of a
    /// counter that allows `free` attempts.
    fn delay_after(&self, failures: u32, free: u32) -> Duration {
        if failures < free {
            return Duration::ZERO;
        }
        let doublings = (failures - free).min(30);
        (self.first_delay.saturating_mul(1u32 << doublings)).min(self.max_delay)
    }
}

impl Default for LimiterPolicy {
    fn default() -> Self {
        LimiterPolicy {
            free_per_pair: 5,
            free_per_user: 20,
            free_per_addr: 20,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    next_allowed: Instant,
}

/// Most records each table keeps; past it, the ones not holding anybody up go.
const MAX_RECORDS: usize = 100_000;

struct Table<K> {
    free: u32,
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Table {
            free,
            records: HashMap::new(),
        }
    }

    fn live(&self, key: &K, now: Instant, window: Duration) -> Option<Record> {
        self.records
            .get(key)
            .copied()
            .filter(|r| now.duration_since(r.last) < window)
    }

    /// How long `key` must still wait.
    fn wait(&self, key: &K, now: Instant, window: Duration) -> Option<Duration> {
        let r = self.live(key, now, window)?;
        (r.next_allowed > now).then(|| r.next_allowed - now)
    }

    fn count(&mut self, key: K, now: Instant, policy: &LimiterPolicy) {
        let failures = self
            .live(&key, now, policy.window)
            .map_or(0, |r| r.failures)
            + 1;
        let delay = policy.delay_after(failures, self.free);
        self.records.insert(
            key,
            Record {
                failures,
                last: now,
                next_allowed: now + delay,
            },
        );
        if self.records.len() > MAX_RECORDS {
            self.records
                .retain(|_, r| now.duration_since(r.last) < policy.window && r.next_allowed > now);
        }
    }
}

struct Tables {
    pairs: Table<(String, IpAddr)>,
    users: Table<String>,
    addrs: Table<IpAddr>,
}

pub struct LoginLimiter {
    policy: LimiterPolicy,
    tables: Mutex<Tables>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(LimiterPolicy::default())
    }
}

impl LoginLimiter {
    pub fn new(policy: LimiterPolicy) -> Self {
        LoginLimiter {
            tables: Mutex::new(Tables {
                pairs: Table::new(policy.free_per_pair),
                users: Table::new(policy.free_per_user),
                addrs: Table::new(policy.free_per_addr),
            }),
            policy,
        }
    }

    /// Reserves one attempt for `user` from `addr`, counted as a failure until
    /// [`succeeded`](Self::succeeded) says otherwise; `Err(wait)` when the
    /// attempt must wait (nothing is counted then).
    pub fn reserve(&self, user: &str, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let user = user.to_lowercase();
        let pair = (user.clone(), addr);
        let window = self.policy.window;
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let wait = [
            t.pairs.wait(&pair, now, window),
            t.users.wait(&user, now, window),
            t.addrs.wait(&addr, now, window),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        t.pairs.count(pair, now, &self.policy);
        t.users.count(user, now, &self.policy);
        t.addrs.count(addr, now, &self.policy);
        Ok(())
    }

    /// The password was right: the user's counters start again. The
    /// address keeps its count (an attacker with an account of its own must
    /// not be able to reset it).
    pub fn succeeded(&self, user: &str, addr: IpAddr) {
        let user = user.to_lowercase();
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.pairs.records.remove(&(user.clone(), addr));
        t.users.records.remove(&user);
    }
}

/// The login limiter of a deployment: in this process (one instance on a
/// GeoPackage store) or in PostgreSQL, shared by every instance, with the same
/// rules.
pub enum Limiter {
    Local(LoginLimiter),
    Shared(SharedLimiter),
}

impl Limiter {
    /// The limiter that goes with the accounts: shared when they are in PostgreSQL.
    pub fn for_accounts(db: &crate::AccountsDb) -> Limiter {
        match db {
            crate::AccountsDb::Sqlite(_) => Limiter::Local(LoginLimiter::default()),
            crate::AccountsDb::Postgres(pool) => Limiter::Shared(SharedLimiter {
                policy: LimiterPolicy::default(),
                pool: pool.clone(),
            }),
        }
    }

    /// As [`LoginLimiter::reserve`].
    pub async fn reserve(
        &self,
        user: &str,
        addr: IpAddr,
    ) -> Result<Result<(), Duration>, sqlx::Error> {
        match self {
            Limiter::Local(l) => Ok(l.reserve(user, addr)),
            Limiter::Shared(l) => l.reserve(user, addr).await,
        }
    }

    /// As [`LoginLimiter::succeeded`].
    pub async fn succeeded(&self, user: &str, addr: IpAddr) -> Result<(), sqlx::Error> {
        match self {
            Limiter::Local(l) => {
                l.succeeded(user, addr);
                Ok(())
            }
            Limiter::Shared(l) => l.succeeded(user, addr).await,
        }
    }
}

/// The limiter's counters in PostgreSQL (`chizu_login_limits`). One attempt
/// locks its three rows (in one order, so concurrent logins cannot deadlock)
/// and counts them within one transaction: concurrent guesses through any
/// number of instances get exactly the free attempts. Times are the
/// database's clock, so the instances' clocks need not agree.
pub struct SharedLimiter {
    policy: LimiterPolicy,
    pool: sqlx::PgPool,
}

impl SharedLimiter {
    /// (kind, key, free attempts), in the order rows are locked.
    fn counters(&self, user: &str, addr: IpAddr) -> [(&'static str, String, u32); 3] {
        let user = user.to_lowercase();
        [
            ("addr", addr.to_string(), self.policy.free_per_addr),
            ("pair", format!("{user} {addr}"), self.policy.free_per_pair),
            ("user", user, self.policy.free_per_user),
        ]
    }

    async fn reserve(&self, user: &str, addr: IpAddr) -> Result<Result<(), Duration>, sqlx::Error> {
        let counters = self.counters(user, addr);
        let window = self.policy.window.as_millis() as i64;
        let mut tx = self.pool.begin().await?;
        let now: i64 =
            sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                .fetch_one(&mut *tx)
                .await?;
        let mut rows = Vec::with_capacity(3);
        for (kind, key, _) in &counters {
            sqlx::query(
                "INSERT INTO chizu_login_limits VALUES ($1, $2, 0, 0, 0) ON CONFLICT DO NOTHING",
            )
            .bind(kind)
            .bind(key)
            .execute(&mut *tx)
            .await?;
            let row: (i64, i64, i64) = sqlx::query_as(
                "SELECT failures, last_ms, next_allowed_ms FROM chizu_login_limits \
                 WHERE kind = $1 AND key = $2 FOR UPDATE",
            )
            .bind(kind)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            // A counter forgets its failures `window` after the last one.
            let live = now - row.1 < window;
            rows.push(if live { row } else { (0, 0, 0) });
        }
        let wait = (rows.iter()).map(|r| r.2 - now).max().unwrap_or(0);
        if wait > 0 {
            tx.commit().await?;
            return Ok(Err(Duration::from_millis(wait as u64)));
        }
        for ((kind, key, free), (failures, _, _)) in counters.iter().zip(&rows) {
            let failures = (*failures as u32).saturating_add(1);
            let delay = self.policy.delay_after(failures, *free).as_millis() as i64;
            sqlx::query(
                "UPDATE chizu_login_limits SET failures = $3, last_ms = $4, next_allowed_ms = $5 \
                 WHERE kind = $1 AND key = $2",
            )
            .bind(kind)
            .bind(key)
            .bind(failures as i64)
            .bind(now)
            .bind(now + delay)
            .execute(&mut *tx)
            .await?;
        }
        // Counters nobody has failed on for a window hold nobody up.
        sqlx::query("DELETE FROM chizu_login_limits WHERE last_ms < $1 AND next_allowed_ms < $2")
            .bind(now - window)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn succeeded(&self, user: &str, addr: IpAddr) -> Result<(), sqlx::Error> {
        let [_, (_, pair, _), (_, user, _)] = self.counters(user, addr);
        sqlx::query(
            "DELETE FROM chizu_login_limits WHERE (kind = 'pair' AND key = $1) OR (kind = 'user' AND key = $2)",
        )
        .bind(pair)
        .bind(user)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LimiterPolicy {
        LimiterPolicy {
            free_per_pair: 3,
            free_per_user: 6,
            free_per_addr: 5,
            ..LimiterPolicy::default()
        }
    }

    #[test]
    fn delays_start_after_the_free_attempts_and_double() {
        let l = LoginLimiter::new(policy());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.reserve("kato", a).is_ok());
        }
        let wait = l.reserve("KATO", a).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
    }

    #[test]
    fn the_owner_elsewhere_is_not_locked_out() {
        let l = LoginLimiter::new(policy());
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let owner: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            l.reserve("kato", attacker).unwrap();
        }
        assert!(l.reserve("kato", attacker).is_err());
        assert!(
            l.reserve("kato", owner).is_ok(),
            "another address still gets in"
        );
        l.succeeded("kato", owner);
        assert!(l.reserve("kato", owner).is_ok());
    }

    #[test]
    fn one_address_spraying_user_names_is_slowed() {
        let l = LoginLimiter::new(policy());
        let a: IpAddr = "10.0.0.3".parse().unwrap();
        for i in 0..5 {
            assert!(l.reserve(&format!("user{i}"), a).is_ok());
        }
        assert!(l.reserve("someone-else", a).is_err());
    }

    #[test]
    fn concurrent_attempts_get_exactly_the_free_ones() {
        let l = std::sync::Arc::new(LoginLimiter::new(LimiterPolicy::default()));
        let a: IpAddr = "10.0.0.4".parse().unwrap();
        let allowed: usize = (0..40)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || l.reserve("kato", a).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap() as usize)
            .sum();
        assert_eq!(allowed, 5);
    }
}
