//! The config file as written: a mirror of the YAML, every field optional, every value with
//! its span. Field docs become the JSON Schema's descriptions. Defaults are applied when the
//! plan is compiled, not here, so diagnostics can tell "absent" from "set to the default".

use crate::decode::{FromNode, OrderedMap, ProviderKey, SecretString, Spanned, StringMap, section, string_enum};

type S<T> = Spanned<T>;
type List<T> = Spanned<Vec<Spanned<T>>>;

/// A list of strings as written (`allowed_models`, …).
pub type ApiKeyList = List<String>;

section! {
    /// llm-gateway configuration (compatible with openziti/llm-gateway's config.yaml).
    Config {
        /// Address to listen on: `:8080` (all interfaces), `127.0.0.1:8080`, `[::1]:8080`. Default `:8080`.
        #[schemars(extend("default" = ":8080"))]
        listen: S<String>,
        /// Serve the gateway through a zrok share.
        zrok: S<Zrok>,
        /// Upstream providers. Models `gpt-*`, `o1-*`, `o3-*` go to `open_ai`, `claude-*` to `anthropic`, everything else to `local`.
        providers: S<Providers>,
        /// Prometheus metrics at `GET /metrics`.
        metrics: S<Metrics>,
        /// Request-content logging (prompts truncated to `max_content_length`).
        tracing: S<Tracing>,
        /// Virtual API keys for clients of the gateway.
        api_keys: S<ApiKeys>,
        /// Routing by route name or `auto`: heuristics, embeddings, classifier, default route.
        routing: S<Routing>,
        /// Upstream and shutdown timeouts (new in llm-gateway).
        timeouts: S<Timeouts>,
        /// Request limits (new in llm-gateway).
        limits: S<Limits>,
        /// Models to try, in order, when a model fails (see `retry.on`): model globs mapped to
        /// lists of models of any provider, e.g. `{"gpt-4o*": [claude-sonnet-4-5, "llama3.1:70b"]}`.
        /// The first glob that matches the model sent applies; a route's own `fallbacks` come first.
        fallbacks: S<OrderedMap<Vec<Spanned<String>>>>,
        /// Retries of a failed model before its fallbacks are tried.
        retry: S<Retry>,
        /// Where per-key `rpm`, `tpm` and `tokens_per_day` are counted.
        rate_limits: S<RateLimits>,
        /// What `/v1/*` paths the gateway does not know get: `reject` (404, the default) or
        /// `forward` (sent to the provider the body's `model` chooses, `local` without one).
        #[schemars(extend("default" = "reject"))]
        unknown_paths: S<UnknownPaths>,
    }
}

section! {
    Retry {
        /// Tries of one model before its fallbacks (1: no retry). Default 1.
        #[schemars(extend("default" = 1))]
        attempts: S<i64>,
        /// Milliseconds before the first retry; doubled each retry, with jitter. Default 250.
        #[schemars(extend("default" = 250))]
        backoff_ms: S<i64>,
        /// The longest wait between tries, in milliseconds, also for an upstream's `Retry-After`
        /// (a longer `Retry-After` moves on to the fallbacks at once). Default 5000.
        #[schemars(extend("default" = 5000))]
        max_backoff_ms: S<i64>,
        /// The failures that retry and fall back. Default all of them: `no_healthy_endpoint`,
        /// `connect`, `timeout`, `rate_limited` (429), `server_error` (5xx). Other 4xx never do.
        on: List<RetryOn>,
    }
}

string_enum! {
    /// A failure that retries and falls back (only before anything reached the client).
    RetryOn {
        /// Every endpoint of the provider is unhealthy (the fallbacks are tried without waiting).
        NoHealthyEndpoint = "no_healthy_endpoint",
        /// The connection failed or was reset before the answer's first byte.
        Connect = "connect",
        /// No answer within `timeouts.first_byte_seconds`.
        Timeout = "timeout",
        /// The upstream answered 429.
        RateLimited = "rate_limited",
        /// The upstream answered 500-599.
        ServerError = "server_error",
    }
}

string_enum! {
    /// What to do with a request when the rate-limit backend cannot be reached.
    OnBackendError {
        /// Serve it (the default: an outage of Redis is not an outage of the gateway).
        Allow = "allow",
        /// Refuse it with 503.
        Deny = "deny",
    }
}

string_enum! {
    /// What an unknown `/v1/*` path gets.
    UnknownPaths {
        Reject = "reject",
        Forward = "forward",
    }
}

section! {
    RateLimits {
        /// `memory` (each gateway counts alone; the default) or `redis://host:port/db`
        /// (`rediss://` for TLS; every gateway using the same Redis shares the counters).
        #[schemars(extend("default" = "memory"))]
        backend: S<SecretString>,
        /// `allow` (default) or `deny` requests when the backend fails or is slower than `timeout_ms`.
        #[schemars(extend("default" = "allow"))]
        on_backend_error: S<OnBackendError>,
        /// Milliseconds to wait for the backend before `on_backend_error` applies. Default 50.
        #[schemars(extend("default" = 50))]
        timeout_ms: S<i64>,
    }
}

section! {
    Timeouts {
        /// Seconds to establish an upstream connection (TCP and TLS). Default 10.
        #[schemars(extend("default" = 10))]
        connect_seconds: S<i64>,
        /// Seconds from sending a request to the upstream's response headers; for a
        /// non-streaming completion that is the whole generation. Default 600.
        #[schemars(extend("default" = 600))]
        first_byte_seconds: S<i64>,
        /// Seconds a response body may stay silent before the stream is ended with an error. Default 300.
        #[schemars(extend("default" = 300))]
        idle_stream_seconds: S<i64>,
        /// Seconds in-flight requests get to finish on shutdown. Default 30.
        #[schemars(extend("default" = 30))]
        drain_seconds: S<i64>,
        /// Seconds a client has to send a request's headers, from connecting or from the first byte of
        /// a later request (a silent connection is closed after it). Default 30.
        #[schemars(extend("default" = 30))]
        request_header_seconds: S<i64>,
        /// Seconds a client has to send a whole request body; slower gets 408. Default 60.
        #[schemars(extend("default" = 60))]
        request_body_seconds: S<i64>,
        /// Seconds an idle keep-alive connection (HTTP/1.1 or HTTP/2) stays open. Default 120.
        #[schemars(extend("default" = 120))]
        idle_connection_seconds: S<i64>,
        /// Seconds an idle upstream connection is kept for another request. Default 4 for
        /// `http://` endpoints (llama.cpp's server, vLLM and SGLang close theirs after 5), 90
        /// for `https://` ones and zrok shares.
        upstream_idle_seconds: S<i64>,
    }
}

section! {
    Limits {
        /// Largest accepted request body in bytes; larger gets 413. Default 33554432 (32 MiB).
        #[schemars(extend("default" = 33554432))]
        max_body_bytes: S<i64>,
        /// Client connections open at once. Past it, the connections that are waiting for a
        /// request (silent, idle keep-alive) are closed oldest first, so a flood of idle sockets
        /// cannot lock clients out. Default: half the process's file-descriptor limit (which
        /// `run` raises to its hard limit).
        max_connections: S<i64>,
        /// Largest single upstream event (an SSE event, or a whole answer the gateway must read
        /// to translate) in bytes; larger ends the response with an error. Default 16777216 (16 MiB).
        #[schemars(extend("default" = 16777216))]
        max_event_bytes: S<i64>,
        /// Requests the whole gateway sends upstream at once; more wait in a FIFO queue (streaming
        /// clients are told their position). Absent: no limit.
        max_concurrent: S<i64>,
        /// Requests one endpoint serves at once; more wait in a FIFO queue. Absent: no limit.
        max_concurrent_per_endpoint: S<i64>,
        /// Requests one virtual key may have served at once; more wait. Absent: no limit.
        max_concurrent_per_key: S<i64>,
        /// Requests that may wait in one queue; more get 429 with `Retry-After`. Default 100.
        #[schemars(extend("default" = 100))]
        max_queue: S<i64>,
        /// Seconds a request may wait in a queue before it gets 503. Default 60.
        #[schemars(extend("default" = 60))]
        queue_timeout_seconds: S<i64>,
    }
}

section! {
    Zrok {
        share: S<ZrokShare>,
    }
}

string_enum! {
    /// Who may reach a zrok share.
    ShareMode {
        /// Anyone with the share's frontend URL.
        Public = "public",
        /// Only zrok environments that create an access to the share.
        Private = "private",
    }
}

section! {
    ZrokShare {
        /// Serve through a zrok share (and also on TCP only when `--address` is given; `listen` is ignored then). Default false.
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        /// `private` (default) or `public`.
        #[schemars(extend("default" = "private"))]
        mode: S<ShareMode>,
        /// Token of an existing persistent (reserved) share; always private.
        token: S<SecretString>,
    }
}

section! {
    /// Written without a value (`providers:`), it names no provider, which is an error.
    Providers (null_is_default) {
        /// OpenAI or any OpenAI-compatible cloud API (`gpt-*`, `o1-*`, `o3-*`).
        open_ai: S<Provider>,
        /// Anthropic Messages API (`claude-*`), translated to and from the OpenAI format.
        anthropic: S<Provider>,
        /// Any OpenAI-compatible server (Ollama, vLLM, llama.cpp server, SGLang): every other model.
        local: S<Provider>,
    }
}

section! {
    /// One upstream provider: a single `base_url` (or `zrok_share_token`), or a pool of `endpoints`.
    /// Written without a value (`local:`), it is enabled with its defaults, like `local: {}`.
    Provider (null_is_default) {
        /// Bearer key sent upstream (`x-api-key` for Anthropic). Use `${VAR}`; an unset variable is a warning and a clear error at request time.
        api_key: S<ProviderKey>,
        /// Upstream base URL without `/v1` (a trailing `/v1` or `/` is removed). Defaults: `https://api.openai.com`, `https://api.anthropic.com`, `http://localhost:11434`.
        base_url: S<String>,
        /// Reach this provider through a private zrok access to this share.
        zrok_share_token: S<SecretString>,
        /// A pool of endpoints balanced by weighted round-robin with health checks and failover. Excludes `base_url`/`zrok_share_token`.
        endpoints: List<Endpoint>,
        /// Health checks of the endpoints.
        health_check: S<HealthCheck>,
    }
}

section! {
    Endpoint {
        /// Unique name, used in logs and metrics.
        name: S<String>,
        /// Base URL of this endpoint (exactly one of `base_url`, `zrok_share_token`).
        base_url: S<String>,
        /// zrok share to reach this endpoint through (exactly one of `base_url`, `zrok_share_token`).
        zrok_share_token: S<SecretString>,
        /// Relative share of traffic, at least 1. Default 1.
        #[schemars(extend("default" = 1))]
        weight: S<i64>,
    }
}

section! {
    HealthCheck {
        /// Seconds between probes. Default 30 (openziti/llm-gateway's documented value).
        #[schemars(extend("default" = 30))]
        interval_seconds: S<i64>,
        /// Seconds before a probe counts as failed. Default 5.
        #[schemars(extend("default" = 5))]
        timeout_seconds: S<i64>,
    }
}

section! {
    Metrics {
        /// Serve Prometheus metrics at `GET /metrics`. Default false.
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        /// Accepted for compatibility; metrics are served on the main listener.
        listen: S<String>,
    }
}

section! {
    Tracing {
        /// Log each chat request's messages (truncated). Default false.
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        /// Characters kept of each message in the log. Default 200.
        #[schemars(extend("default" = 200))]
        max_content_length: S<i64>,
    }
}

section! {
    ApiKeys {
        /// Require a key on `/v1/*`. Enabled with no keys is an error (openziti/llm-gateway silently opened the gateway).
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        keys: List<ApiKey>,
        /// A separate file of keys (`keys:` list, same fields), relative to this file; watched
        /// like the config and edited by `llm-gateway keys`.
        keys_file: S<String>,
    }
}

section! {
    /// A keys file: `keys:` entries as in `api_keys.keys`.
    KeysFile {
        keys: List<ApiKey>,
    }
}

section! {
    ApiKey {
        /// Unique name, used in logs and the `key` metric label.
        name: S<String>,
        /// The key clients send as `Authorization: Bearer <key>`. Make one with `llm-gateway genkey`; `${VAR}` works.
        key: S<SecretString>,
        /// Instead of `key`: its SHA-256 as 64 hex digits (`llm-gateway genkey --hash-only`),
        /// so the config holds nothing a client could use.
        key_sha256: S<String>,
        /// Globs of models this key may use (`*` also matches `/`). Empty or absent: all.
        allowed_models: List<String>,
        /// Globs of route names this key may use. Empty or absent: all.
        allowed_routes: List<String>,
        /// The person or team the key belongs to: several keys may share a user, and then
        /// metrics and the limits below count per user.
        user: S<String>,
        /// Requests per minute (per user when `user` is set). Over it: 429 with `Retry-After`.
        rpm: S<i64>,
        /// Tokens (prompt + completion) per minute.
        tpm: S<i64>,
        /// Tokens per day (UTC).
        tokens_per_day: S<i64>,
        /// Requests this key may have served at once (overrides `limits.max_concurrent_per_key`).
        max_concurrent: S<i64>,
    }
}

section! {
    Routing {
        /// Let clients name a model directly. When false, the cascade always runs. Default true.
        #[schemars(extend("default" = true))]
        allow_explicit_model: S<bool>,
        /// Route used when no layer decides. Default: the first route.
        default_route: S<String>,
        /// Client model names (globs: `*`, `?`, `[...]`) mapped to a route name, `auto`, or a
        /// model name, tried in file order before anything else; the first match wins. For
        /// agents that send fixed ids: `{"claude-*haiku*": fast, "claude-*": coder, "gpt-5*": coder}`.
        aliases: S<StringMap>,
        heuristics: S<Heuristics>,
        semantic: S<Semantic>,
        classifier: S<Classifier>,
        routes: List<Route>,
    }
}

section! {
    Heuristics {
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        /// Rules tried in order; the first that matches wins.
        rules: List<Rule>,
    }
}

section! {
    Rule {
        /// Conditions, all of which must hold. No conditions: matches every request.
        matches = "match": S<Match>,
        /// Route to take when the rule matches.
        route: S<String>,
    }
}

section! {
    Match {
        /// Any of these words or phrases in the user messages (case-insensitive, whole words at letter/digit edges).
        keywords: List<String>,
        /// Whether the request carries tool definitions.
        has_tools: S<bool>,
        /// Case-insensitive substring of a system message.
        system_prompt_contains: S<String>,
        /// The request's `max_tokens` is present and below this.
        max_tokens_lt: S<i64>,
        /// Total length in bytes of all message texts is below this.
        message_length_lt: S<i64>,
        /// None of these may appear in the user messages (only with `keywords`).
        exclude: List<String>,
    }
}

string_enum! {
    /// Where route embeddings come from.
    EmbedProvider {
        /// In-process embedding model (all-MiniLM-L6-v2, int8, on ONNX Runtime).
        Builtin = "builtin",
        /// The local provider (`/api/embed` or `/v1/embeddings`).
        Local = "local",
        /// The open_ai provider's `/v1/embeddings`.
        Openai = "openai",
    }
}

string_enum! {
    /// How a prompt's similarity to a route is scored.
    Comparison {
        /// Against the mean of the route's example vectors.
        Centroid = "centroid",
        /// The best single example.
        Max = "max",
        /// The mean of the similarities to each example.
        Average = "average",
    }
}

section! {
    Semantic {
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        /// `builtin` (default), `local` or `openai`.
        #[schemars(extend("default" = "builtin"))]
        provider: S<EmbedProvider>,
        /// Embedding model name.
        model: S<String>,
        /// Similarity at or above which a route is taken (0..=1). Omitted: derived from the
        /// routes' examples once they are embedded (half the 10th percentile of their
        /// leave-one-out scores against their own route).
        threshold: S<f64>,
        /// Similarity at or above which the classifier is asked (0..=1, at most `threshold`).
        /// Omitted: derived, half the derived `threshold`.
        ambiguous_threshold: S<f64>,
        #[schemars(extend("default" = "centroid"))]
        comparison: S<Comparison>,
        /// Cache recent prompts' vectors (on unless set to false; openziti/llm-gateway's default is off).
        #[schemars(extend("default" = true))]
        cache_embeddings: S<bool>,
        /// Seconds. Default 3600.
        #[schemars(extend("default" = 3600))]
        cache_ttl: S<i64>,
        #[schemars(extend("default" = 1000))]
        cache_size: S<i64>,
    }
}

string_enum! {
    /// Which provider answers classifier prompts.
    ClassifierProvider {
        Local = "local",
        Openai = "openai",
    }
}

section! {
    Classifier {
        #[schemars(extend("default" = false))]
        enabled: S<bool>,
        /// `local` or `openai`.
        provider: S<ClassifierProvider>,
        /// Chat model that classifies.
        model: S<String>,
        /// Milliseconds; 0 or absent: no own timeout.
        timeout_ms: S<i64>,
        /// Minimum confidence (0..=1) to accept the classifier's answer.
        confidence_threshold: S<f64>,
        #[schemars(extend("default" = false))]
        cache_results: S<bool>,
        #[schemars(extend("default" = 3600))]
        cache_ttl: S<i64>,
        #[schemars(extend("default" = 500))]
        cache_size: S<i64>,
    }
}

section! {
    Route {
        /// Unique route name; clients may also send it as the model.
        name: S<String>,
        /// Model requests on this route are sent to.
        model: S<String>,
        /// What the route is for (shown to the classifier).
        description: S<String>,
        /// Example prompts, embedded to recognise this route.
        examples: List<String>,
        /// Models to try, in order, when this route's model fails (before the top-level `fallbacks`).
        fallbacks: List<String>,
    }
}

/// Decodes a whole config tree.
pub fn decode(node: &crate::yaml::Node, cx: &mut crate::decode::Cx) -> Config {
    Config::from_node(node, cx).unwrap_or_default()
}
