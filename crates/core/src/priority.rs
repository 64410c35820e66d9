//! Work that anyone can ask for runs below the work that serves the map.
//!
//! Password checks and query scans are CPU-heavy and can be requested by any
//! caller; cached tiles, styles and pages are cheap and are what residents
//! need during a flood of requests. The threads that do the heavy work lower
//! their own scheduling priority to nice 19: under contention the kernel
//! weighs a serving thread 68 times as much as each of them (1024 : 15), so
//! even a dozen busy heavy threads take a sixth of a core from the serving
//! ones, while an idle machine still runs the heavy work at full speed.
//! (At nice 10 the weight is 1024 : 110, and ten busy heavy threads took more
//! than a serving thread: measured with `scripts/hostile-load.sh`.)

/// Lowers the calling thread's priority (Linux: per-thread nice 19). Once
/// per thread; a failure only means the thread keeps its priority.
pub fn lower_this_thread() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority and gettid only read their integer arguments; on
    // Linux, PRIO_PROCESS with a thread id applies to that one thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}
