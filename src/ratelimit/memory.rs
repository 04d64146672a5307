//! The `memory` backend: one small lock-protected record per subject, in this process only.
//!
//! The subject map is read without a lock (an `ArcSwap` of an immutable map, replaced
//! whole when a subject is first seen, which happens once per configured key), so the only
//! lock a request takes is its own subject's, held for a few comparisons and additions.
//! Memory stays bounded: a subject holds only its current windows (a window that ended is
//! overwritten by the next one), and subjects idle since before today are dropped when the
//! next new subject is added.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use llm_gateway_compiler::acl::KeyLimits;

use super::{Admission, Counted as ReservationCounted, DAY_MS, Decision, MINUTE_MS, Reservation, Used};

#[derive(Default)]
pub(super) struct Memory {
    subjects: ArcSwap<HashMap<Box<str>, Arc<Counters>>>,
    /// Serialises adding subjects (readers never take it).
    adding: Mutex<()>,
}

#[derive(Default)]
pub(super) struct Counters(Mutex<Windows>);

/// A subject's current windows: the minute's requests and tokens, the UTC day's tokens.
#[derive(Debug, Default)]
struct Windows {
    minute: u64,
    requests: u64,
    minute_tokens: u64,
    day: u64,
    day_tokens: u64,
}

impl Windows {
    /// Starts fresh windows when the clock has entered new ones.
    fn roll(&mut self, minute: u64, day: u64) {
        if self.minute != minute {
            *self = Windows { minute, day: self.day, day_tokens: self.day_tokens, ..Windows::default() };
        }
        if self.day != day {
            self.day = day;
            self.day_tokens = 0;
        }
    }

    fn used(&self) -> Used {
        Used { requests: self.requests, minute_tokens: self.minute_tokens, day_tokens: self.day_tokens }
    }
}

impl Counters {
    /// A poisoned lock only means another thread panicked between two additions: the
    /// counts are still counts.
    fn lock(&self) -> MutexGuard<'_, Windows> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The windows a reservation's estimate went into (`None`: that limit is not configured).
pub(super) struct Counted {
    counters: Arc<Counters>,
    minute: Option<u64>,
    day: Option<u64>,
}

impl Counted {
    pub(super) fn settle(self, estimate: u64, actual: u64) {
        let correct = |count: &mut u64| {
            *count = if actual >= estimate {
                count.saturating_add(actual - estimate)
            } else {
                count.saturating_sub(estimate - actual)
            }
        };
        let mut w = self.counters.lock();
        // A window that has ended is gone: nothing reads it again.
        if self.minute == Some(w.minute) {
            correct(&mut w.minute_tokens);
        }
        if self.day == Some(w.day) {
            correct(&mut w.day_tokens);
        }
    }
}

impl Memory {
    pub(super) fn admit(&self, subject: &str, limits: &KeyLimits, estimate: u64, now_ms: u64) -> Decision {
        let counters = self.counters(subject, now_ms);
        let (minute, day) = (now_ms / MINUTE_MS, now_ms / DAY_MS);
        let used = {
            let mut w = counters.lock();
            w.roll(minute, day);
            let before = w.used();
            if let Some((kind, reset_ms)) = super::exhausted(limits, &before, now_ms) {
                drop(w);
                return Decision::Limited(super::refusal(limits, kind, reset_ms, &before, now_ms));
            }
            // Only configured windows count, as in Redis: a limit added by a reload starts
            // from zero in both backends.
            if limits.rpm.is_some() {
                w.requests += 1;
            }
            if limits.tpm.is_some() {
                w.minute_tokens = w.minute_tokens.saturating_add(estimate);
            }
            if limits.tokens_per_day.is_some() {
                w.day_tokens = w.day_tokens.saturating_add(estimate);
            }
            w.used()
        };
        let headers = super::headers::for_response(limits, &used, now_ms);
        let minute = limits.tpm.map(|_| minute);
        let day = limits.tokens_per_day.map(|_| day);
        let reservation = (minute.is_some() || day.is_some())
            .then(|| Reservation { estimate, counted: ReservationCounted::Memory(Counted { counters, minute, day }) });
        Decision::Allowed(Admission { headers, reservation })
    }

    fn counters(&self, subject: &str, now_ms: u64) -> Arc<Counters> {
        if let Some(c) = self.subjects.load().get(subject) {
            return c.clone();
        }
        let _adding = self.adding.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.subjects.load_full();
        if let Some(c) = current.get(subject) {
            return c.clone();
        }
        let today = now_ms / DAY_MS;
        let mut next: HashMap<Box<str>, Arc<Counters>> = current
            .iter()
            .filter(|(_, c)| Arc::strong_count(c) > 1 || c.lock().day >= today)
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        let c = Arc::<Counters>::default();
        next.insert(subject.into(), c.clone());
        self.subjects.store(Arc::new(next));
        c
    }

    #[cfg(test)]
    pub(super) fn subjects(&self) -> usize {
        self.subjects.load().len()
    }
}

#[cfg(test)]
impl super::Kind {
    /// Used by tests to read a window's count.
    pub(super) fn of(self, m: &Memory, subject: &str) -> u64 {
        let map = m.subjects.load();
        let Some(c) = map.get(subject) else { return 0 };
        self.used(&c.lock().used())
    }
}
