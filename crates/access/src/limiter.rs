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
        let delay = if failures < self.free {
            Duration::ZERO
        } else {
            let doublings = (failures - self.free).min(30);
            policy
                .first_delay
                .saturating_mul(1u32 << doublings)
                .min(policy.max_delay)
        };
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
