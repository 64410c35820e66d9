//! Password checks on a fixed set of threads, one per core.
//!
//! Each argon2id check holds 19 MiB while it runs. On the runtime's blocking
//! pool, a burst of logins ran dozens at once (RSS grew by 1.9 GB for 100
//! concurrent logins). Here the same few threads do every check, one at a
//! time each: hashing never holds more than cores × 19 MiB, and a burst
//! waits its turn in the queue. (That the blocks go back to the kernel after
//! each check is the binary's allocator setting, see `src/main.rs`.)
//! The threads run at a lower priority than the ones serving the map.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

fn workers() -> &'static Sender<Job> {
    static QUEUE: OnceLock<Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..n {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("chizu-argon2-{i}"))
                .spawn(move || {
                    chizu_core::priority::lower_this_thread();
                    loop {
                        // The lock is held only to take the next job.
                        let job = match receiver.lock() {
                            Ok(r) => r.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("could not start a password-hashing thread: {e}");
            }
        }
        sender
    })
}

/// Runs `check` on a hashing thread; `None` if the threads are gone.
pub async fn run<T: Send + 'static>(check: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    workers()
        .send(Box::new(move || {
            let _ = tx.send(check());
        }))
        .ok()?;
    rx.await.ok()
}
