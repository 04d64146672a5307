//! Thread-per-core serving. `run` serves on N threads (`--worker-threads`, one per CPU by
//! default), each with its own single-threaded runtime: a client connection is handed to one
//! thread when it is accepted and lives there, and so do the upstream connections its
//! requests use (each thread has its own upstream connection pools, [`PerShard`]). Nothing
//! a request does then wakes another thread or bounces a cache line between cores, which a
//! work-stealing runtime does several times per request (measured: 0.64× a minimal proxy's
//! throughput on 2 cores with one shared runtime, 0.82–0.85× with a runtime per thread).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// Sets how many serving threads there are; before any [`PerShard`] is built.
pub fn set_count(n: usize) {
    COUNT.store(n.max(1), Ordering::Relaxed);
}

pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// Marks the current thread as serving thread `i` (the main thread is 0).
pub fn enter(i: usize) {
    INDEX.set(i);
}

/// One value per serving thread, each used from its own thread (other threads, such as
/// the blocking pool, use the first).
pub struct PerShard<T>(Box<[Own<T>]>);

/// A value on cache lines of its own: two threads' values side by side would share a line,
/// and each write by one thread would take it from the other (a log queue's lock taken and
/// released once a request: measured at most of that function's time on 2 cores). 128
/// bytes, because x86 fetches lines in adjacent pairs.
#[repr(align(128))]
struct Own<T>(T);

impl<T> PerShard<T> {
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        Self(std::iter::repeat_with(|| Own(make())).take(count()).collect())
    }

    pub fn get(&self) -> &T {
        let i = INDEX.get();
        &self.0[if i < self.0.len() { i } else { 0 }].0
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|own| &own.0)
    }
}
