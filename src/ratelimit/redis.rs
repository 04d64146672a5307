//! The Redis backend: counters shared by every replica pointed at the same Redis.
//!
//! One admission is one atomic Lua script (`ADMIT`): it reads every window of the request's
//! limits, and only when none is exhausted adds to all of them, so two replicas can never
//! both take the last request of a window. Window keys are
//! `llm-gateway:rl:<subject>:<rpm|tpm|tpd>:<window>` (`<window>`: minutes or days since the
//! Unix epoch, from the gateway's clock) and expire by themselves a minute after their
//! window ends, so Redis holds only current windows.
//!
//! Connections: the gateway serves on one single-threaded runtime per CPU (`shard.rs`), and
//! a multiplexed connection's driver task lives on the runtime that opened it, so each
//! serving thread opens its own, lazily, from a task on its own runtime. After a failure the
//! thread waits a second before the next attempt, and never has two attempts in flight.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisError, Script};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use llm_gateway_compiler::acl::KeyLimits;
use tokio::runtime::Handle;

use super::{Admission, Counted as ReservationCounted, Decision, Kind, Reservation, Used};
use crate::shard::PerShard;

/// KEYS: one counter per window. ARGV, three per key: its limit, what this request adds,
/// and its time to live in ms. Replies `{admitted (1 or 0), count of each key}`: the counts
/// after adding when admitted, as they were when not (nothing is added then).
const ADMIT_LUA: &str = r"
local used = {}
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 1, #KEYS do
  if used[i] >= tonumber(ARGV[3 * i - 2]) then
    return {0, unpack(used)}
  end
end
for i = 1, #KEYS do
  used[i] = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
end
return {1, unpack(used)}
";

/// KEYS: the token windows a reservation counted its estimate in; ARGV[1]: real minus
/// estimate. A key that expired belongs to a window long over: it is not created again
/// (it would have no expiry).
const SETTLE_LUA: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[1])
  end
end
return 0
";

// `Script` sends EVALSHA and falls back to SCRIPT LOAD + EVALSHA when Redis does not know
// the script yet (a restart, a flush, a failover).
static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT_LUA));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_LUA));

/// How long past its window a key lives: room for replicas whose clocks lag a little, and
/// for settling right after a window ends.
const KEY_MARGIN_MS: u64 = 60_000;
/// Between a failed connection attempt and the next one on the same thread.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// A connection attempt runs in its own task (a request that stops waiting for it does not
/// cancel it), bounded by this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) struct Redis {
    client: Client,
    slots: PerShard<Arc<Slot>>,
}

/// One serving thread's connection.
#[derive(Default)]
struct Slot(Mutex<State>);

enum State {
    Idle {
        failed: Option<(Instant, Arc<str>)>,
    },
    /// An attempt in flight: requests arriving meanwhile wait for it (within their timeout).
    Connecting(Shared<BoxFuture<'static, ()>>),
    Ready {
        runtime: tokio::runtime::Id,
        /// Tells this connection from a newer one when a command on it fails.
        generation: u64,
        conn: MultiplexedConnection,
    },
}

impl Default for State {
    fn default() -> Self {
        State::Idle { failed: None }
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The token windows a reservation counted its estimate in, by key name.
pub(super) struct Counted {
    redis: Arc<Redis>,
    keys: Vec<String>,
    timeout: Duration,
}

impl Counted {
    /// Sends the correction from a task: this runs in a `Drop` and cannot wait.
    pub(super) fn settle(self, estimate: u64, actual: u64) {
        let Ok(handle) = Handle::try_current() else {
            super::backend_error("a token count was settled outside a runtime; it is not sent to Redis");
            return;
        };
        let delta = i128::from(actual) - i128::from(estimate);
        let delta = i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX });
        handle.spawn(async move {
            let Counted { redis, keys, timeout } = self;
            let sent = tokio::time::timeout(timeout, async {
                let (mut conn, generation) = redis.connection().await?;
                let mut call = SETTLE.prepare_invoke();
                call.key(&keys).arg(delta);
                call.invoke_async::<()>(&mut conn).await.map_err(|e| redis.failed(generation, &e))
            })
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(why)) => super::backend_error(&format!("settling tokens: {why}")),
                Err(_) => super::backend_error(&format!(
                    "settling tokens: Redis did not answer within {} ms",
                    timeout.as_millis()
                )),
            }
        });
    }
}

impl Redis {
    /// Checks the URL only; connections are opened by the threads that use them.
    pub(super) fn new(url: &str) -> Result<Redis, String> {
        // The client's error never holds the URL (which may hold a password).
        let client = Client::open(url).map_err(|e| format!("the Redis URL is not usable: {e}"))?;
        if url.starts_with("rediss://") {
            // The Redis client builds its TLS config with rustls' process-wide default
            // provider, which panics when none is installed and the build has several; the
            // gateway's TLS uses ring. An error only means one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Redis { client, slots: PerShard::new(Arc::default) })
    }

    /// Checks and counts one request in one round trip; `Err` is a backend failure.
    pub(super) async fn admit(
        self: &Arc<Self>,
        subject: &str,
        limits: &KeyLimits,
        estimate: u64,
        now_ms: u64,
        timeout: Duration,
    ) -> Result<Decision, String> {
        let windows: Vec<(Kind, u64, String)> =
            super::configured(limits).map(|(kind, limit)| (kind, limit, key(subject, kind, now_ms))).collect();
        let mut call = ADMIT.prepare_invoke();
        for (kind, limit, key) in &windows {
            let ttl_ms = kind.until_reset_ms(now_ms) + KEY_MARGIN_MS;
            call.key(key).arg(*limit).arg(kind.increment(estimate)).arg(ttl_ms);
        }
        let (mut conn, generation) = self.connection().await?;
        let reply: Vec<i64> = call.invoke_async(&mut conn).await.map_err(|e| self.failed(generation, &e))?;
        let (admitted, counts) = match reply.split_first() {
            Some((&admitted, counts)) if counts.len() == windows.len() => (admitted == 1, counts),
            _ => return Err(format!("unexpected reply from the rate-limit script: {reply:?}")),
        };
        let mut used = Used::default();
        for ((kind, _, _), &count) in windows.iter().zip(counts) {
            used.set(*kind, u64::try_from(count).unwrap_or(0));
        }
        if !admitted {
            // The script found one exhausted; the same rule names it here.
            let Some((kind, reset_ms)) = super::exhausted(limits, &used, now_ms) else {
                return Err(format!("the rate-limit script refused with counts {counts:?} under every limit"));
            };
            return Ok(Decision::Limited(super::refusal(limits, kind, reset_ms, &used, now_ms)));
        }
        let headers = super::headers::for_response(limits, &used, now_ms);
        let token_keys: Vec<String> =
            windows.into_iter().filter(|(kind, _, _)| *kind != Kind::Rpm).map(|(_, _, key)| key).collect();
        let reservation = (!token_keys.is_empty()).then(|| Reservation {
            estimate,
            counted: ReservationCounted::Redis(Counted { redis: self.clone(), keys: token_keys, timeout }),
        });
        Ok(Decision::Allowed(Admission { headers, reservation }))
    }

    /// This thread's connection, opening it if needed (at most one attempt in flight per
    /// thread, none within a second of a failed one).
    async fn connection(self: &Arc<Self>) -> Result<(MultiplexedConnection, u64), String> {
        let slot = self.slots.get().clone();
        let runtime = Handle::try_current().map_err(|_| "rate limits checked outside a runtime".to_owned())?.id();
        let attempt = {
            let mut state = slot.lock();
            match &*state {
                State::Ready { runtime: r, generation, conn } if *r == runtime => {
                    return Ok((conn.clone(), *generation));
                }
                State::Connecting(attempt) => attempt.clone(),
                State::Idle { failed: Some((at, why)) } if at.elapsed() < RECONNECT_BACKOFF => {
                    return Err(format!("{why} (next connection attempt within a second)"));
                }
                // Idle, or connected from another runtime (whose driver task may be gone).
                _ => {
                    let attempt = self.connect(slot.clone());
                    *state = State::Connecting(attempt.clone());
                    attempt
                }
            }
        };
        attempt.await;
        let mut state = slot.lock();
        match &*state {
            State::Ready { runtime: r, generation, conn } if *r == runtime => Ok((conn.clone(), *generation)),
            State::Ready { .. } => Err("the Redis connection belongs to another runtime".to_owned()),
            State::Idle { failed: Some((_, why)) } => Err(why.to_string()),
            State::Idle { failed: None } => Err("cannot connect to Redis".to_owned()),
            State::Connecting(_) => {
                // The attempt's task ended without a word: its runtime shut down.
                let why: Arc<str> = "the Redis connection attempt was cancelled".into();
                *state = State::Idle { failed: Some((Instant::now(), why.clone())) };
                Err(why.to_string())
            }
        }
    }

    /// Opens a connection from a task on the current runtime, which therefore drives it.
    fn connect(&self, slot: Arc<Slot>) -> Shared<BoxFuture<'static, ()>> {
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            // Each call is bounded by the caller's `timeout_ms` already.
            let config =
                AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT)).set_response_timeout(None);
            let opened =
                tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection_with_config(&config))
                    .await;
            let runtime = Handle::current().id();
            let mut state = slot.lock();
            *state = match opened {
                Ok(Ok(conn)) => State::Ready { runtime, generation: next_generation(), conn },
                Ok(Err(e)) => {
                    State::Idle { failed: Some((Instant::now(), format!("cannot connect to Redis: {e}").into())) }
                }
                Err(_) => State::Idle {
                    failed: Some((
                        Instant::now(),
                        format!("cannot connect to Redis within {} s", CONNECT_TIMEOUT.as_secs()).into(),
                    )),
                },
            };
        });
        task.map(|_| ()).boxed().shared()
    }

    /// Notes a failed command; drops the connection when it is broken, so the next request
    /// opens a new one (after the back-off). Returns the message to report.
    fn failed(&self, generation: u64, e: &RedisError) -> String {
        if e.is_connection_dropped() || e.is_io_error() || e.is_unrecoverable_error() {
            let slot = self.slots.get();
            let mut state = slot.lock();
            if matches!(&*state, State::Ready { generation: g, .. } if *g == generation) {
                *state = State::Idle { failed: Some((Instant::now(), format!("Redis connection lost: {e}").into())) };
            }
        }
        format!("Redis: {e}")
    }
}

fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The counter of `subject`'s `kind` window at `now_ms`.
pub(super) fn key(subject: &str, kind: Kind, now_ms: u64) -> String {
    let short = match kind {
        Kind::Rpm => "rpm",
        Kind::Tpm => "tpm",
        Kind::TokensPerDay => "tpd",
    };
    format!("llm-gateway:rl:{subject}:{short}:{}", kind.window(now_ms))
}
