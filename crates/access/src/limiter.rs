//! Slows down password guessing: failures are counted per user name and per
//! client address in a sliding window; past a threshold, logins are refused
//! until the window has passed (whatever the password).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    window: Duration,
    per_user: u32,
    per_addr: u32,
    users: Mutex<HashMap<String, Vec<Instant>>>,
    addrs: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(Duration::from_secs(15 * 60), 5, 20)
    }
}

impl LoginLimiter {
    pub fn new(window: Duration, per_user: u32, per_addr: u32) -> Self {
        LoginLimiter {
            window,
            per_user,
            per_addr,
            users: Mutex::new(HashMap::new()),
            addrs: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` when this user or address must wait before trying again.
    pub fn check(&self, user: &str, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let wait = |list: Option<&Vec<Instant>>, limit: u32| -> Option<Duration> {
            let recent: Vec<&Instant> = list?
                .iter()
                .filter(|t| now.duration_since(**t) < self.window)
                .collect();
            (recent.len() as u32 >= limit)
                .then(|| self.window.saturating_sub(now.duration_since(*recent[0])))
        };
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        wait(users.get(&user.to_lowercase()), self.per_user)
            .or_else(|| wait(addrs.get(&addr), self.per_addr))
    }

    pub fn failed(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        let window = self.window;
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let list = users.entry(user.to_lowercase()).or_default();
        list.retain(|t| now.duration_since(*t) < window);
        list.push(now);
        let mut addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
        let list = addrs.entry(addr).or_default();
        list.retain(|t| now.duration_since(*t) < window);
        list.push(now);
        // Bound memory under a spray of user names.
        if users.len() > 100_000 {
            users.retain(|_, l| l.last().is_some_and(|t| now.duration_since(*t) < window));
        }
    }

    pub fn succeeded(&self, user: &str) {
        self.users
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&user.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_threshold_per_user_and_per_address() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 5);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check("kato", a).is_none());
            l.failed("kato", a);
        }
        assert!(l.check("kato", a).is_some());
        assert!(
            l.check("KATO", b).is_some(),
            "per user, whatever the address"
        );
        assert!(l.check("sato", b).is_none());
        l.failed("sato", a);
        l.failed("ito", a);
        assert!(
            l.check("endo", a).is_some(),
            "per address, whatever the user"
        );
    }
}
