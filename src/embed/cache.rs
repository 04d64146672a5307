//! A small LRU cache with a time-to-live, keyed by SHA-256 of what was asked (as the Go
//! gateway's caches are), sized by the plan that uses it: a reload that changes the size or the
//! TTL starts it afresh.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llm_gateway_compiler::acl::{KeyHash, hash_key};
use llm_gateway_compiler::plan::CachePlan;
use lru::LruCache;

pub struct TtlLru<V> {
    inner: Mutex<Option<State<V>>>,
}

struct State<V> {
    ttl: Duration,
    entries: LruCache<KeyHash, (Instant, V)>,
}

/// Recent prompts' vectors.
pub static PROMPTS: TtlLru<Arc<[f32]>> = TtlLru::new();

/// The key of `text` asked of `scope` (a model, a classifier).
pub fn key(scope: &str, text: &str) -> KeyHash {
    hash_key(&format!("{scope}\0{text}"))
}

impl<V: Clone> Default for TtlLru<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> TtlLru<V> {
    pub const fn new() -> Self {
        Self { inner: Mutex::new(None) }
    }

    /// The entry for `key` unless it has expired; nothing when caching is off (`plan` is
    /// `None`).
    pub fn get(&self, plan: Option<&CachePlan>, key: &KeyHash) -> Option<V> {
        let plan = plan?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let state = sized(&mut inner, plan);
        match state.entries.get(key) {
            Some((at, v)) if at.elapsed() < state.ttl => Some(v.clone()),
            Some(_) => {
                state.entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, plan: Option<&CachePlan>, key: KeyHash, value: V) {
        let Some(plan) = plan else { return };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        sized(&mut inner, plan).entries.put(key, (Instant::now(), value));
    }
}

fn sized<'a, V>(inner: &'a mut Option<State<V>>, plan: &CachePlan) -> &'a mut State<V> {
    let size = NonZeroUsize::new(plan.size).unwrap_or(NonZeroUsize::MIN);
    if inner.as_ref().is_none_or(|s| s.ttl != plan.ttl || s.entries.cap() != size) {
        *inner = Some(State { ttl: plan.ttl, entries: LruCache::new(size) });
    }
    inner.as_mut().expect("just set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_with_ttl_and_resize() {
        let cache = TtlLru::<u32>::new();
        let plan = CachePlan { ttl: Duration::from_secs(60), size: 2 };
        let (a, b, c) = (key("m", "a"), key("m", "b"), key("m", "c"));
        assert_eq!(cache.get(None, &a), None);
        cache.put(None, a, 1);
        assert_eq!(cache.get(Some(&plan), &a), None, "off means nothing was stored");
        cache.put(Some(&plan), a, 1);
        cache.put(Some(&plan), b, 2);
        assert_eq!(cache.get(Some(&plan), &a), Some(1));
        cache.put(Some(&plan), c, 3);
        assert_eq!(cache.get(Some(&plan), &b), None, "the least recently used entry went");
        assert_eq!(cache.get(Some(&plan), &c), Some(3));
        let expired = CachePlan { ttl: Duration::ZERO, size: 2 };
        cache.put(Some(&expired), a, 1);
        assert_eq!(cache.get(Some(&expired), &a), None, "expired");
        assert_ne!(key("m", "a"), key("n", "a"), "scopes do not share entries");
    }
}
