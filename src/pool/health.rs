//! Active health checks: every endpoint probed concurrently (`GET /v1/models`, falling back
//! to Ollama's `GET /api/tags`), a first round before traffic is accepted, exponential
//! backoff with jitter for failing endpoints, and a staggered re-check after the host slept.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{EndpointTransport, Pool};

/// Backoff never grows past this many intervals.
const MAX_BACKOFF: u32 = 10;
/// Re-checks after a sleep are spread over this window, so waking does not probe every
/// endpoint at the same instant.
const STAGGER_WINDOW: Duration = Duration::from_secs(2);
/// Boot time running ahead of monotonic time by more than this means the host slept.
const SLEEP_GAP: Duration = Duration::from_secs(5);

/// Whether a pool is probed: its adapter names probe paths (OpenAI-compatible upstreams).
pub fn probed(pool: &Pool) -> bool {
    !crate::providers::adapter(pool.kind).probes().is_empty()
}

/// Delay until the next probe after `failures` consecutive failures: 1×, 2×, 4× … the
/// interval, capped at 10×, scaled by `jitter` (drawn from 0.9..=1.1).
pub fn next_delay(interval: Duration, failures: u32, jitter: f64) -> Duration {
    let factor = match failures {
        0 => 1,
        n => 1u32.checked_shl(n - 1).unwrap_or(u32::MAX).min(MAX_BACKOFF),
    };
    interval.mul_f64(f64::from(factor) * jitter.clamp(0.9, 1.1))
}

/// The first re-probe after a failed first probe comes this soon, then twice as late each
/// time until the delay reaches the interval: a backend that starts a moment after the
/// gateway is seen within about a second, not an interval later.
const WARMUP_FIRST: Duration = Duration::from_secs(1);

/// The delay before warm-up re-probe number `attempt` (0-based) of an endpoint that has not
/// answered yet: 1 s, 2 s, 4 s … while shorter than the interval; `None` after (the
/// endpoint then follows [`next_delay`]).
pub fn warmup_delay(interval: Duration, attempt: u32) -> Option<Duration> {
    let d = WARMUP_FIRST.checked_mul(1u32.checked_shl(attempt)?)?;
    (d < interval).then_some(d)
}

/// Probes one endpoint with the adapter's probes, in order; `Some(models)` when one answered.
pub async fn probe(pool: &Pool, index: usize) -> Option<Vec<String>> {
    probe_why(pool, index).await.ok()
}

/// Like [`probe`], with why the endpoint did not answer (the last probe's reason, in plain
/// words: no URL, no client `Debug` text).
pub async fn probe_why(pool: &Pool, index: usize) -> Result<Vec<String>, String> {
    let EndpointTransport::Http(target) = &pool.endpoints[index].transport else {
        return Err("zrok was not started in this process".into());
    };
    let ask = |probe: &'static crate::providers::Probe| async move {
        let uri = format!("{}{}", target.base, probe.path)
            .parse()
            .map_err(|_| format!("{} is not a valid URL path", probe.path))?;
        let req = crate::upstream::request(pool, index, Method::GET, uri, Bytes::new(), false, None)
            .map_err(|e| e.message)?;
        let resp = target.client().request(req).await.map_err(|e| crate::transport::http::describe(&e))?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!("GET {} answered {}", probe.path, resp.status().as_u16()));
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| crate::transport::http::cause(&e).unwrap_or_else(|| "the answer broke off".to_owned()))?;
        let v = serde_json::from_slice::<Value>(&body.to_bytes()).unwrap_or_default();
        Ok(v.get(probe.list)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| m.get(probe.field)?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    };
    let first_answer = async {
        let mut why = "no probe".to_owned();
        for p in crate::providers::adapter(pool.kind).probes() {
            match ask(p).await {
                Ok(models) => return Ok(models),
                Err(e) => why = e,
            }
        }
        Err(why)
    };
    match tokio::time::timeout(pool.health_check.timeout, first_answer).await {
        Ok(found) => found,
        Err(_) => {
            debug!(endpoint = %pool.endpoints[index].name, "health probe timed out");
            Err(format!("no answer within {} s", pool.health_check.timeout.as_secs_f64()))
        }
    }
}

async fn probe_and_record(pool: &Pool, index: usize) -> bool {
    match probe_why(pool, index).await {
        Ok(models) => {
            pool.endpoints[index].set_models(models);
            pool.set_healthy(index, true);
            true
        }
        Err(why) => {
            pool.set_unhealthy_because(index, &why);
            false
        }
    }
}

/// One concurrent round over every endpoint; runs before the server accepts traffic, so
/// the first requests never go to an endpoint that is already down. Bounded by the probe timeout.
pub async fn first_round(pool: &Pool) {
    if !probed(pool) {
        return;
    }
    let all: Vec<usize> = (0..pool.endpoints.len()).collect();
    probe_some(pool, &all).await;
    let healthy = pool.health().iter().filter(|(_, h)| *h).count();
    info!(provider = pool.kind.label(), "{healthy} of {} endpoint(s) healthy", pool.endpoints.len());
}

/// Probes the given endpoints of a pool concurrently (the new endpoints after a reload).
pub async fn probe_some(pool: &Pool, indices: &[usize]) {
    if probed(pool) {
        futures_util::future::join_all(indices.iter().map(|&i| probe_and_record(pool, i))).await;
    }
}

/// Where elapsed time including suspend comes from: CLOCK_BOOTTIME, read from /proc/uptime
/// (tokio's clock, CLOCK_MONOTONIC, stops while the host sleeps). Tests substitute their own.
pub type BootClock = Arc<dyn Fn() -> Option<Duration> + Send + Sync>;

pub fn boot_clock() -> BootClock {
    Arc::new(|| {
        let text = std::fs::read_to_string("/proc/uptime").ok()?;
        let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_secs_f64(secs))
    })
}

/// Probes endpoint `index` of the pool and records the result; true when healthy.
type Probe = Arc<dyn Fn(Arc<Pool>, usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The background checkers of every pool of a plan.
pub fn spawn_all(live: &crate::state::Live, boot: &BootClock) -> Vec<JoinHandle<()>> {
    live.pools.iter().flatten().filter_map(|p| spawn(p.clone(), boot.clone())).collect()
}

/// The background checker of one pool.
pub fn spawn(pool: Arc<Pool>, boot: BootClock) -> Option<JoinHandle<()>> {
    let probe: Probe = Arc::new(|pool, i| Box::pin(async move { probe_and_record(&pool, i).await }));
    probed(&pool).then(|| tokio::spawn(run(pool, boot, probe)))
}

async fn run(pool: Arc<Pool>, boot: BootClock, probe: Probe) {
    let interval = pool.health_check.interval;
    let n = pool.endpoints.len();
    let mut rng = Jitter::seeded(&pool);
    let mut failures = vec![0u32; n];
    // Endpoints whose first probe failed are warming up: re-probed soon (see [`warmup_delay`]).
    let mut warming: Vec<Option<u32>> =
        pool.endpoints.iter().map(|e| (!e.is_healthy() && warmup_delay(interval, 0).is_some()).then_some(0)).collect();
    let start = Instant::now();
    let mut due: Vec<Instant> = (0..n)
        .map(|i| match warming[i].and_then(|k| warmup_delay(interval, k)) {
            Some(d) => start + d,
            None => start + next_delay(interval, 0, rng.next()),
        })
        .collect();
    let mut last = (Instant::now(), boot());
    loop {
        let Some(&wake) = due.iter().min() else { return };
        tokio::time::sleep_until(wake).await;
        let now = (Instant::now(), boot());
        if slept(last, now) {
            info!(
                provider = pool.kind.label(),
                "host was asleep; re-checking {n} endpoint(s) over {} s",
                STAGGER_WINDOW.as_secs()
            );
            for (i, d) in due.iter_mut().enumerate() {
                *d = now.0 + STAGGER_WINDOW.mul_f64(i as f64 / n as f64);
            }
            last = now;
            continue;
        }
        last = now;
        let ready: Vec<usize> = (0..n).filter(|&i| due[i] <= now.0).collect();
        let results = futures_util::future::join_all(ready.iter().map(|&i| probe(pool.clone(), i))).await;
        for (&i, ok) in ready.iter().zip(results) {
            let soon = match (ok, warming[i]) {
                (false, Some(k)) => warmup_delay(interval, k + 1).inspect(|_| warming[i] = Some(k + 1)),
                _ => None,
            };
            if let Some(d) = soon {
                due[i] = Instant::now() + d;
                continue;
            }
            // Warm-up over (it answered, or the delays reached the interval): the usual backoff.
            failures[i] = match (ok, warming[i].take()) {
                (true, _) => 0,
                (false, Some(_)) => 1,
                (false, None) => failures[i].saturating_add(1),
            };
            due[i] = Instant::now() + next_delay(interval, failures[i], rng.next());
        }
    }
}

/// True when boot time advanced more than monotonic time between two readings by over
/// [`SLEEP_GAP`]: the host was suspended in between.
pub fn slept(before: (Instant, Option<Duration>), after: (Instant, Option<Duration>)) -> bool {
    match (before.1, after.1) {
        (Some(b0), Some(b1)) => {
            let boot = b1.saturating_sub(b0);
            let mono = after.0.saturating_duration_since(before.0);
            boot.saturating_sub(mono) > SLEEP_GAP
        }
        _ => false,
    }
}

/// A tiny xorshift generator for backoff jitter (no need for cryptographic randomness).
struct Jitter(u64);

impl Jitter {
    fn seeded(pool: &Pool) -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        let name =
            pool.endpoints.iter().flat_map(|e| e.name.bytes()).fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        Self((nanos ^ name) | 1)
    }

    /// A factor in 0.9..=1.1.
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        0.9 + 0.2 * (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_intervals() {
        let i = Duration::from_secs(30);
        let got: Vec<u64> = (0..7).map(|f| next_delay(i, f, 1.0).as_secs()).collect();
        assert_eq!(got, [30, 30, 60, 120, 240, 300, 300]);
        assert_eq!(next_delay(i, u32::MAX, 1.0), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let i = Duration::from_secs(30);
        assert_eq!(next_delay(i, 1, 0.5), Duration::from_secs(27));
        assert_eq!(next_delay(i, 1, 2.0), Duration::from_secs(33));
        let mut j = Jitter(0x9e3779b97f4a7c15);
        for _ in 0..10_000 {
            let x = j.next();
            assert!((0.9..=1.1).contains(&x), "{x}");
        }
    }

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn pool(n: usize) -> Arc<Pool> {
        let eps: String =
            (0..n).map(|i| format!("      - name: e{i}\n        base_url: http://127.0.0.1:{}\n", 1000 + i)).collect();
        let yaml =
            format!("providers:\n  local:\n    endpoints:\n{eps}    health_check:\n      interval_seconds: 30\n");
        let plan =
            llm_gateway_compiler::compile(&yaml, &std::collections::HashMap::<String, String>::new()).unwrap().plan;
        Arc::new(Pool::new(
            plan.provider(llm_gateway_compiler::plan::ProviderKind::Local).unwrap(),
            Duration::from_secs(1),
        ))
    }

    type Calls = Arc<Mutex<Vec<(usize, Duration)>>>;

    /// A scripted probe: endpoint i answers `script[i][k]` on its k-th probe (then healthy);
    /// every call is recorded with the (paused) time since `t0`.
    fn scripted(script: Vec<Vec<bool>>, t0: Instant, calls: Calls) -> Probe {
        let counts = Arc::new(Mutex::new(vec![0usize; script.len()]));
        Arc::new(move |pool: Arc<Pool>, i| {
            let k = {
                let mut c = counts.lock().unwrap();
                c[i] += 1;
                c[i] - 1
            };
            let ok = script[i].get(k).copied().unwrap_or(true);
            calls.lock().unwrap().push((i, Instant::now() - t0));
            pool.set_healthy(i, ok);
            Box::pin(async move { ok })
        })
    }

    fn times(calls: &Calls, i: usize) -> Vec<f64> {
        calls.lock().unwrap().iter().filter(|c| c.0 == i).map(|c| c.1.as_secs_f64()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failing_endpoints_back_off_with_jitter_then_recover() {
        let p = pool(2);
        let t0 = Instant::now();
        let calls: Calls = Arc::default();
        let boot: BootClock = Arc::new(|| None);
        let probe = scripted(vec![vec![], vec![false, false, false]], t0, calls.clone());
        let task = tokio::spawn(run(p.clone(), boot, probe));
        tokio::time::sleep(Duration::from_secs(700)).await;
        task.abort();
        // Healthy e0: every 30 s ± 10 %.
        let healthy = times(&calls, 0);
        for w in healthy.windows(2) {
            assert!((27.0..=33.0).contains(&(w[1] - w[0])), "{healthy:?}");
        }
        // e1 fails its first three probes: after each failure the next probe waits 1×, 2×, 4×
        // the interval (± 10 %), then it is healthy again and probed every interval.
        let sick = times(&calls, 1);
        let gaps: Vec<f64> = std::iter::once(sick[0]).chain(sick.windows(2).map(|w| w[1] - w[0])).collect();
        for (gap, want) in gaps.iter().zip([30.0, 30.0, 60.0, 120.0, 30.0, 30.0]) {
            assert!((want * 0.9..=want * 1.1).contains(gap), "gaps {gaps:?}");
        }
        assert!(p.endpoints[1].is_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_whose_first_probe_failed_is_re_probed_within_seconds() {
        let p = pool(2);
        // e1's first probe (before serving) failed: the backend was not up yet.
        p.set_healthy(1, false);
        let t0 = Instant::now();
        let calls: Calls = Arc::default();
        let boot: BootClock = Arc::new(|| None);
        let probe = scripted(vec![vec![], vec![false, false, true]], t0, calls.clone());
        let task = tokio::spawn(run(p.clone(), boot, probe));
        tokio::time::sleep(Duration::from_secs(100)).await;
        task.abort();
        // Warm-up: 1 s, then 2 s later, then 4 s later (healthy), then the interval.
        let sick = times(&calls, 1);
        let gaps: Vec<f64> = std::iter::once(sick[0]).chain(sick.windows(2).map(|w| w[1] - w[0])).collect();
        assert_eq!(&gaps[..3], [1.0, 2.0, 4.0], "{gaps:?}");
        assert!((27.0..=33.0).contains(&gaps[3]), "{gaps:?}");
        assert!(p.endpoints[1].is_healthy());
        // The healthy endpoint keeps its interval.
        assert!((27.0..=33.0).contains(&times(&calls, 0)[0]));
    }

    #[test]
    fn warm_up_delays_double_until_the_interval() {
        let i = Duration::from_secs(30);
        let got: Vec<Option<u64>> = (0..6).map(|k| warmup_delay(i, k).map(|d| d.as_secs())).collect();
        assert_eq!(got, [Some(1), Some(2), Some(4), Some(8), Some(16), None]);
        assert_eq!(warmup_delay(Duration::from_secs(1), 0), None, "an interval of 1 s needs no warm-up");
        assert_eq!(warmup_delay(i, 64), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_sleep_triggers_a_staggered_recheck_of_every_endpoint() {
        let p = pool(4);
        let t0 = Instant::now();
        let calls: Calls = Arc::default();
        let boot_secs = Arc::new(AtomicU64::new(1000));
        let reading = boot_secs.clone();
        // Boot time follows the paused clock, plus whatever the test adds (the sleep).
        let boot: BootClock =
            Arc::new(move || Some(Duration::from_secs(reading.load(Ordering::SeqCst)) + (Instant::now() - t0)));
        let task = tokio::spawn(run(p.clone(), boot, scripted(vec![vec![]; 4], t0, calls.clone())));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(calls.lock().unwrap().is_empty(), "nothing due before the first interval");
        boot_secs.fetch_add(3600, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(20)).await;
        task.abort();
        let all = calls.lock().unwrap().clone();
        // The wake-up at ~30 s notices the hour of suspend: every endpoint is re-checked within
        // the stagger window, at distinct times, instead of on its old schedule.
        let first: Vec<f64> = (0..4).map(|i| times(&calls, i)[0]).collect();
        let wake = first[0];
        assert!((27.0..=33.0).contains(&wake), "{all:?}");
        for (i, t) in first.iter().enumerate() {
            let expected = wake + STAGGER_WINDOW.as_secs_f64() * i as f64 / 4.0;
            assert!((t - expected).abs() < 1e-6, "endpoint {i} at {t}, expected {expected}: {all:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_is_a_boot_clock_jump_beyond_monotonic_time() {
        let t0 = Instant::now();
        tokio::time::advance(Duration::from_secs(30)).await;
        let t1 = Instant::now();
        let b = |s: u64| Some(Duration::from_secs(s));
        assert!(!slept((t0, b(100)), (t1, b(130))), "no gap");
        assert!(!slept((t0, b(100)), (t1, b(134))), "small drift is not sleep");
        assert!(slept((t0, b(100)), (t1, b(3700))), "an hour of suspend");
        assert!(!slept((t0, None), (t1, b(3700))), "no boot clock: no detection");
    }
}
