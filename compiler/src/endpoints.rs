//! Listen address, zrok share and providers → endpoint transport specs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use crate::decode::{Cx, Spanned};
use crate::plan::{ApiKey, EndpointSpec, HealthCheck, ListenAddr, ProviderKind, ProviderPlan, Transport, ZrokShare};
use crate::raw::{self, ShareMode};
use crate::secret::Secret;

const DEFAULT_INTERVAL: u64 = 30;
const DEFAULT_TIMEOUT: u64 = 5;

/// A present, non-empty string field (the Go gateway's samples write `""` for "use the default").
pub fn non_empty(field: &Option<Spanned<String>>) -> Option<&Spanned<String>> {
    field.as_ref().filter(|s| !s.value.is_empty())
}

fn non_empty_secret(field: &Option<Spanned<crate::decode::SecretString>>) -> Option<Spanned<Secret>> {
    field.as_ref().filter(|s| !s.value.0.is_empty()).map(|s| Spanned { value: s.value.0.clone(), span: s.span.clone() })
}

pub fn listen(cx: &mut Cx, field: &Option<Spanned<String>>) -> ListenAddr {
    let fallback = ListenAddr { host: None, port: 8080 };
    let Some(text) = non_empty(field) else {
        return fallback;
    };
    cx.at("listen", |cx| match parse_listen(&text.value) {
        Ok(addr) => addr,
        Err(why) => {
            cx.error_help(
                text.span.clone(),
                format!("invalid listen address `{}`: {why}", text.value),
                "write `:8080` (all interfaces), `127.0.0.1:8080` or `[::1]:8080`",
            );
            fallback
        }
    })
}

/// Parses `:port`, `host:port` and `[ipv6]:port`, as Go's `net.Listen` accepts them.
pub fn parse_listen(text: &str) -> Result<ListenAddr, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or("missing `]:port` after an IPv6 address")?;
        h.parse::<std::net::Ipv6Addr>().map_err(|_| format!("`{h}` is not an IPv6 address"))?;
        (Some(h.to_owned()), p)
    } else {
        let (h, p) = text.rsplit_once(':').ok_or("missing port")?;
        if h.contains(':') {
            return Err("IPv6 addresses need brackets".into());
        }
        let host = match h {
            "" => None,
            h if h.parse::<IpAddr>().is_ok() || valid_hostname(h) => Some(h.to_owned()),
            h => return Err(format!("`{h}` is not a host name or IP address")),
        };
        (host, p)
    };
    let port = port.parse::<u16>().map_err(|_| format!("`{port}` is not a port number (0-65535)"))?;
    Ok(ListenAddr { host, port })
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub fn zrok_share(cx: &mut Cx, zrok: Option<&raw::Zrok>) -> Option<ZrokShare> {
    let share = zrok?.share.as_ref()?;
    let mode = share.mode.as_ref().map(|m| m.value).unwrap_or(ShareMode::Private);
    let token = non_empty_secret(&share.token);
    if let (Some(_), Some(m)) = (&token, &share.mode)
        && m.value == ShareMode::Public
    {
        cx.at("zrok.share.mode", |cx| {
            cx.error_help(
                m.span.clone(),
                "a persistent share `token` is always private; `mode: public` cannot apply",
                "remove `mode: public`, or remove `token` to create an ephemeral public share",
            )
        });
    }
    let enabled = share.enabled.as_ref().is_some_and(|e| e.value);
    enabled.then(|| ZrokShare { mode, token: token.map(|t| t.value) })
}

/// Validates a base URL and normalises it: no trailing `/` and no trailing `/v1`, because
/// the gateway appends `/v1/...` itself.
pub fn base_url(cx: &mut Cx, path: &str, field: &Spanned<String>) -> Option<Url> {
    // Messages quote the URL without its userinfo: they reach logs.
    let text = &*crate::mask::mask_urls(field.value.as_str());
    let fail = |cx: &mut Cx, why: String| {
        cx.at(path, |cx| cx.error_help(field.span.clone(), why, "write a full URL such as `http://10.0.0.1:11434`"));
        None
    };
    let mut url = match Url::parse(field.value.as_str()) {
        Ok(u) => u,
        Err(e) => return fail(cx, format!("invalid URL `{text}`: {e}")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        let scheme = url.scheme().to_owned();
        return fail(cx, format!("unsupported scheme `{scheme}` in `{text}`: use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return fail(cx, format!("URL `{text}` has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return fail(cx, format!("URL `{text}` must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return fail(cx, "credentials in a base URL would be logged; use `api_key`".into());
    }
    let trimmed = url.path().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_owned();
    url.set_path(&trimmed);
    Some(url)
}

pub fn providers(cx: &mut Cx, raw: Option<&raw::Providers>) -> [Option<ProviderPlan>; 3] {
    let Some(raw) = raw else {
        return [None, None, None];
    };
    let sections = [&raw.open_ai, &raw.anthropic, &raw.local];
    let mut out: [Option<ProviderPlan>; 3] = [None, None, None];
    for kind in ProviderKind::ALL {
        if let Some(section) = sections[kind.index()] {
            out[kind.index()] = Some(provider(cx, kind, section));
        }
    }
    out
}

/// A provider with every default, as `local: {}` would give (`span`: what asked for it).
pub fn default_provider(cx: &mut Cx, kind: ProviderKind, span: std::ops::Range<usize>) -> ProviderPlan {
    provider(cx, kind, &Spanned { value: raw::Provider::default(), span })
}

fn provider(cx: &mut Cx, kind: ProviderKind, raw: &Spanned<raw::Provider>) -> ProviderPlan {
    let prefix = format!("providers.{}", kind.config_name());
    let api_key = match &raw.api_key {
        Some(k) if !k.value.unset.is_empty() => ApiKey::Unset { vars: k.value.unset.clone() },
        Some(k) if !k.value.value.is_empty() => ApiKey::Set(k.value.value.clone()),
        _ => ApiKey::None,
    };
    if api_key == ApiKey::None && kind != ProviderKind::Local {
        cx.at(&prefix, |cx| {
            cx.warn(
                raw.span.clone(),
                format!("provider `{kind}` has no `api_key`; requests are sent without credentials"),
                Some(format!("add `api_key: \"${{{}_API_KEY}}\"`", kind.label().to_uppercase())),
            )
        });
    }
    let endpoints = match &raw.endpoints {
        Some(list) => {
            for (name, field) in [
                ("base_url", raw.base_url.as_ref().map(|f| f.span.clone())),
                ("zrok_share_token", raw.zrok_share_token.as_ref().map(|f| f.span.clone())),
            ] {
                if let Some(span) = field {
                    cx.at(&format!("{prefix}.{name}"), |cx| {
                        cx.error_help(
                            span,
                            format!("`{name}` and `endpoints` together"),
                            "give each endpoint its own `base_url` or `zrok_share_token`, and remove this one",
                        )
                    });
                }
            }
            pool(cx, &prefix, list)
        }
        None => single(cx, kind, &prefix, raw).into_iter().collect(),
    };
    ProviderPlan { kind, api_key, endpoints, health_check: health_check(cx, &prefix, raw.health_check.as_ref()) }
}

fn single(cx: &mut Cx, kind: ProviderKind, prefix: &str, raw: &raw::Provider) -> Option<EndpointSpec> {
    let url = match non_empty(&raw.base_url) {
        Some(field) => base_url(cx, &format!("{prefix}.base_url"), field)?,
        None => Url::parse(kind.default_base_url()).ok()?,
    };
    let transport = match non_empty_secret(&raw.zrok_share_token) {
        Some(token) => Transport::Zrok { share_token: token.value, base_url: non_empty(&raw.base_url).map(|_| url) },
        None => Transport::Http { base_url: url },
    };
    Some(EndpointSpec { name: kind.config_name().to_owned(), weight: 1, transport })
}

fn pool(cx: &mut Cx, prefix: &str, list: &Spanned<Vec<Spanned<raw::Endpoint>>>) -> Vec<EndpointSpec> {
    if list.value.is_empty() {
        cx.at(&format!("{prefix}.endpoints"), |cx| {
            cx.error_help(list.span.clone(), "`endpoints` is empty", "list at least one endpoint, or use `base_url`")
        });
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, ep) in list.value.iter().enumerate() {
        let path = format!("{prefix}.endpoints[{i}]");
        let name = match non_empty(&ep.name) {
            Some(n) => {
                if let Some(first) = seen.insert(n.value.clone(), i) {
                    cx.at(&format!("{path}.name"), |cx| {
                        cx.error(
                            n.span.clone(),
                            format!("duplicate endpoint name `{}` (also endpoints[{first}])", n.value),
                        )
                    });
                }
                n.value.clone()
            }
            None => {
                cx.at(&path, |cx| {
                    cx.error_help(
                        ep.span.clone(),
                        "endpoint has no `name`",
                        "add `name: gpu-box-1`: names appear in logs and metrics",
                    )
                });
                String::new()
            }
        };
        let weight = match &ep.weight {
            Some(w) if w.value < 1 || w.value > i64::from(u32::MAX) => {
                cx.at(&format!("{path}.weight"), |cx| {
                    cx.error_help(
                        w.span.clone(),
                        format!("weight {} is out of range", w.value),
                        "use a whole number from 1 up",
                    )
                });
                1
            }
            Some(w) => w.value as u32,
            None => 1,
        };
        let url = non_empty(&ep.base_url);
        let token = non_empty_secret(&ep.zrok_share_token);
        let transport = match (url, token) {
            (Some(u), None) => {
                base_url(cx, &format!("{path}.base_url"), u).map(|base_url| Transport::Http { base_url })
            }
            (None, Some(t)) => Some(Transport::Zrok { share_token: t.value, base_url: None }),
            (Some(_), Some(_)) => {
                cx.at(&path, |cx| {
                    cx.error_help(
                        ep.span.clone(),
                        "endpoint has both `base_url` and `zrok_share_token`",
                        "keep exactly one: the URL to reach it directly, or the zrok share",
                    )
                });
                None
            }
            (None, None) => {
                cx.at(&path, |cx| {
                    cx.error_help(
                        ep.span.clone(),
                        "endpoint has neither `base_url` nor `zrok_share_token`",
                        "add `base_url: http://host:port` (openziti/llm-gateway silently used localhost)",
                    )
                });
                None
            }
        };
        if let Some(transport) = transport {
            out.push(EndpointSpec { name, weight, transport });
        }
    }
    out
}

/// A whole number in `1..=max` (seconds, bytes, entries), or the default when absent.
pub fn bounded(cx: &mut Cx, path: &str, field: &Option<Spanned<i64>>, default: u64, max: u64) -> u64 {
    match field {
        None => default,
        Some(f) if f.value >= 1 && f.value as u64 <= max => f.value as u64,
        Some(f) => {
            cx.at(path, |cx| {
                cx.error_help(
                    f.span.clone(),
                    format!("{} is out of range", f.value),
                    format!("use a whole number from 1 to {max}"),
                )
            });
            default
        }
    }
}

fn health_check(cx: &mut Cx, prefix: &str, raw: Option<&Spanned<raw::HealthCheck>>) -> HealthCheck {
    let day = 86_400;
    let (interval, timeout) = match raw {
        None => (DEFAULT_INTERVAL, DEFAULT_TIMEOUT),
        Some(h) => {
            let interval = bounded(
                cx,
                &format!("{prefix}.health_check.interval_seconds"),
                &h.interval_seconds,
                DEFAULT_INTERVAL,
                day,
            );
            let timeout = bounded(
                cx,
                &format!("{prefix}.health_check.timeout_seconds"),
                &h.timeout_seconds,
                DEFAULT_TIMEOUT,
                day,
            );
            if let Some(t) = &h.timeout_seconds
                && timeout > interval
            {
                cx.at(&format!("{prefix}.health_check.timeout_seconds"), |cx| {
                    cx.warn(
                        t.span.clone(),
                        format!("timeout ({timeout}s) is longer than the interval ({interval}s)"),
                        Some("a probe may still be running when the next is due".into()),
                    )
                });
            }
            (interval, timeout)
        }
    };
    HealthCheck { interval: Duration::from_secs(interval), timeout: Duration::from_secs(timeout) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen(":8080").unwrap(), ListenAddr { host: None, port: 8080 });
        assert_eq!(parse_listen("127.0.0.1:0").unwrap().host.as_deref(), Some("127.0.0.1"));
        assert_eq!(parse_listen("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert_eq!(parse_listen("localhost:80").unwrap().to_string(), "localhost:80");
        for bad in ["8080", ":http", ":70000", "::1:80", "bad host:1", "[zz]:1", "[::1]"] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
