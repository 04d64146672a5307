//! Prometheus metrics, served at `GET /metrics` when `metrics.enabled`.
//!
//! Recorded once per request when its response is finished (the access log's moment), so
//! streams count their whole duration and the tokens their last chunk reported — by the log's
//! writer thread, off the request's path (`log_sink.rs`); a scrape first records whatever is
//! still queued. Label values
//! are bounded: `model` is a model the plan knows (routes, endpoint probes, Anthropic's list)
//! or `other`; `key` is a configured key name or `-`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use llm_gateway_compiler::Plan;
use llm_gateway_compiler::acl::KeyTable;

use crate::shard::PerShard;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub time_to_first_token: HistogramVec,
    pub tokens_prompt: IntCounterVec,
    pub tokens_completion: IntCounterVec,
    pub tokens_per_second: HistogramVec,
    pub routing_decisions: IntCounterVec,
    pub provider_errors: IntCounterVec,
    inflight: IntGauge,
    pub endpoint_healthy: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    config_info: IntGaugeVec,
    pub queue_wait: HistogramVec,
    pub queue_rejected: IntCounterVec,
    pub last_reload_success: Gauge,
    pub log_lines_dropped: IntCounter,
    pub fallbacks: IntCounterVec,
    pub retries: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub rate_limit_backend_errors: IntCounter,
    pub user_tokens: IntCounterVec,
}

/// LLM calls take from milliseconds (cached, tiny models) to minutes (long generations).
const DURATION_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];
const TTFT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const TPS_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 200.0, 500.0];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("unique metric");
    h
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let inflight = IntGauge::new("llm_gateway_requests_inflight", "Requests being served").expect("valid metric");
    r.register(Box::new(inflight.clone())).expect("unique metric");
    let endpoint_healthy = IntGaugeVec::new(
        Opts::new("llm_gateway_endpoint_healthy", "1 when the endpoint passes its health checks"),
        &["provider", "endpoint"],
    )
    .expect("valid metric");
    r.register(Box::new(endpoint_healthy.clone())).expect("unique metric");
    let log_lines_dropped = IntCounter::new(
        "llm_gateway_log_lines_dropped_total",
        "Log lines dropped because stderr could not take them fast enough",
    )
    .expect("valid metric");
    r.register(Box::new(log_lines_dropped.clone())).expect("unique metric");
    let rate_limit_backend_errors = IntCounter::new(
        "llm_gateway_rate_limit_backend_errors_total",
        "Rate-limit checks the backend (Redis) failed or was too slow to answer",
    )
    .expect("valid metric");
    r.register(Box::new(rate_limit_backend_errors.clone())).expect("unique metric");
    let last_reload_success = Gauge::new(
        "llm_gateway_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful config load",
    )
    .expect("valid metric");
    r.register(Box::new(last_reload_success.clone())).expect("unique metric");
    let build = IntGaugeVec::new(Opts::new("llm_gateway_build_info", "Build of the running gateway"), &["version"])
        .expect("valid metric");
    r.register(Box::new(build.clone())).expect("unique metric");
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    let config_info = IntGaugeVec::new(
        Opts::new("llm_gateway_config_info", "The config being served (first 12 hex digits of its SHA-256)"),
        &["sha256"],
    )
    .expect("valid metric");
    r.register(Box::new(config_info.clone())).expect("unique metric");
    let queue_depth = IntGaugeVec::new(Opts::new("llm_gateway_queue_depth", "Requests waiting for a slot"), &["scope"])
        .expect("valid metric");
    r.register(Box::new(queue_depth.clone())).expect("unique metric");
    Metrics {
        requests: counter(
            &r,
            "llm_gateway_requests_total",
            "Requests answered",
            &["provider", "model", "streaming", "status", "dialect"],
        ),
        duration: histogram(
            &r,
            "llm_gateway_request_duration_seconds",
            "Request duration, streams until their last byte",
            &["provider", "model"],
            DURATION_BUCKETS,
        ),
        time_to_first_token: histogram(
            &r,
            "llm_gateway_time_to_first_token_seconds",
            "Streams: time to the first body bytes",
            &["provider", "model"],
            TTFT_BUCKETS,
        ),
        tokens_prompt: counter(
            &r,
            "llm_gateway_tokens_prompt_total",
            "Prompt tokens reported by upstreams",
            &["provider", "model", "key"],
        ),
        tokens_completion: counter(
            &r,
            "llm_gateway_tokens_completion_total",
            "Completion tokens reported by upstreams",
            &["provider", "model", "key"],
        ),
        tokens_per_second: histogram(
            &r,
            "llm_gateway_tokens_per_second",
            "Completion tokens per second of each request",
            &["model", "key"],
            TPS_BUCKETS,
        ),
        routing_decisions: counter(
            &r,
            "llm_gateway_routing_decisions_total",
            "Routing decisions",
            &["method", "route"],
        ),
        provider_errors: counter(
            &r,
            "llm_gateway_provider_errors_total",
            "Upstream failures and error responses",
            &["provider", "error_type"],
        ),
        reloads: counter(&r, "llm_gateway_config_reloads_total", "Config reloads", &["result"]),
        queue_wait: histogram(
            &r,
            "llm_gateway_queue_wait_seconds",
            "Time requests waited for a slot",
            &["scope"],
            TTFT_BUCKETS,
        ),
        fallbacks: counter(
            &r,
            "llm_gateway_fallbacks_total",
            "Requests moved to a fallback model, by the model that failed, the fallback and why",
            &["from", "to", "reason"],
        ),
        retries: counter(
            &r,
            "llm_gateway_retries_total",
            "Tries of a model repeated after a failure",
            &["model", "reason"],
        ),
        rate_limited: counter(
            &r,
            "llm_gateway_rate_limited_total",
            "Requests refused by a key's rpm, tpm or tokens_per_day",
            &["key", "limit"],
        ),
        queue_rejected: counter(
            &r,
            "llm_gateway_queue_rejected_total",
            "Requests refused by a concurrency queue: full (429) or waited too long (503)",
            &["scope", "reason"],
        ),
        user_tokens: counter(
            &r,
            "llm_gateway_user_tokens_total",
            "Tokens used per user (a key's `user`, else the key's name), by kind (prompt or completion)",
            &["user", "kind"],
        ),
        rate_limit_backend_errors,
        queue_depth,
        config_info,
        inflight,
        endpoint_healthy,
        last_reload_success,
        log_lines_dropped,
        registry: r,
    }
});

pub fn get() -> &'static Metrics {
    &METRICS
}

/// Requests being served, counted by each serving thread on its own cache line (one shared
/// counter would bounce between cores twice a request) and summed into the gauge at a scrape.
/// A request counted up on one thread and down on another still sums right.
static INFLIGHT: LazyLock<PerShard<AtomicI64>> = LazyLock::new(|| PerShard::new(AtomicI64::default));

pub fn request_started() {
    INFLIGHT.get().fetch_add(1, Ordering::Relaxed);
}

pub fn request_finished() {
    INFLIGHT.get().fetch_sub(1, Ordering::Relaxed);
}

impl Metrics {
    /// Records which config is being served, after a start or a successful reload. Every
    /// limit of every key gets its refusal series now, at zero: a series born at its first
    /// count shows `rate()` no increase, so a key's first burst of refusals (all between two
    /// scrapes) would never fire `LLMGatewayRateLimited`.
    pub fn config_loaded(&self, plan: &Plan) {
        let hash_hex = plan.hash_hex();
        self.config_info.reset();
        self.config_info.with_label_values(&[&hash_hex[..12.min(hash_hex.len())]]).set(1);
        for key in plan.keys.iter().flat_map(KeyTable::entries) {
            for limit in crate::ratelimit::limit_names(&key.limits) {
                self.rate_limited.with_label_values(&[&key.name, limit]);
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.last_reload_success.set(now);
    }
}

/// The exposition text, counting every request finished so far (their records may still be
/// on their way to the log's writer).
pub fn render() -> Vec<u8> {
    crate::log_sink::settle();
    METRICS.inflight.set(INFLIGHT.iter().map(|n| n.load(Ordering::Relaxed)).sum());
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    out
}
