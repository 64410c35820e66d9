//! CPU work for a request, off the async runtime and within bounds: a time
//! budget, a cap on how many such jobs run at once, and cancellation when the
//! client goes away (its handler future is dropped).

use crate::ApiError;
use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What one job may spend. Long loops call [`Budget::check`] every few
/// hundred items.
pub struct Budget {
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
}

impl Budget {
    /// No deadline, only cancellation (a whole-layer export may take its
    /// time, but stops when its client leaves).
    pub fn until_cancelled(cancelled: Arc<AtomicBool>) -> Budget {
        Budget {
            deadline: Instant::now() + Duration::from_secs(365 * 86_400),
            cancelled,
        }
    }

    pub fn check(&self) -> Result<(), ApiError> {
        if self.cancelled.load(Ordering::Relaxed) {
            // Nobody reads this answer: the client is gone.
            return Err(ApiError {
                status: StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                title: "Client Closed Request",
                code: None,
                detail: "the client went away".into(),
            });
        }
        if Instant::now() > self.deadline {
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                title: "Unprocessable Content",
                code: None,
                detail: "the query needs more work than one request may take; \
                         narrow it with bbox or a simpler filter"
                    .into(),
            });
        }
        Ok(())
    }

    /// Checks every `every` steps of a loop (cheap in between).
    pub fn check_every(&self, step: usize, every: usize) -> Result<(), ApiError> {
        if step.is_multiple_of(every) {
            self.check()
        } else {
            Ok(())
        }
    }
}

/// Sets the flag when dropped unless disarmed: the handler was dropped before
/// the job finished, so the job should stop.
struct CancelOnDrop(Option<Arc<AtomicBool>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Limits on query work, shared by every request.
pub struct WorkLimits {
    /// Wall-clock time one job may take.
    pub budget: Duration,
    /// Jobs running at once; more wait (up to `queue_wait`), then get a 503.
    slots: tokio::sync::Semaphore,
    queue_wait: Duration,
}

impl WorkLimits {
    pub fn new(budget: Duration, concurrent: usize) -> WorkLimits {
        WorkLimits {
            budget,
            slots: tokio::sync::Semaphore::new(concurrent.max(1)),
            queue_wait: Duration::from_secs(5),
        }
    }

    /// Runs `job` on the blocking pool within the budget.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Budget) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _slot = tokio::time::timeout(self.queue_wait, self.slots.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(busy)?;
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut guard = CancelOnDrop(Some(cancelled.clone()));
        let budget = Budget {
            deadline: Instant::now() + self.budget,
            cancelled,
        };
        let result = background(move || job(&budget))
            .await
            .map_err(|e| ApiError::internal("query worker", e))?;
        guard.0 = None;
        result
    }
}

/// Runs CPU work on the blocking pool, below the threads that serve cached
/// tiles and pages (see `chizu_core::priority`): tile rendering, exports,
/// glyphs, indexing and queries all go through here.
pub fn background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(move || {
        chizu_core::priority::lower_this_thread();
        work()
    })
}

pub fn busy() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        title: "Service Unavailable",
        code: None,
        detail: "the server is busy; try again in a moment".into(),
    }
}
