//! The gateway's own small requests to a provider (embeddings and classifier prompts): JSON
//! in, the whole JSON answer out, over the pool's endpoints with the same failover rule as
//! client traffic (move on only when no response has started). Callers bound the time.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::{EndpointTransport, Pool};

/// The status and body of the first endpoint that answered.
pub async fn post_json(pool: &Pool, path: &str, body: Vec<u8>) -> Result<(StatusCode, Bytes), String> {
    let body = Bytes::from(body);
    let credential = pool.credential.header()?;
    let mut last = format!("provider '{}' has no endpoints", pool.kind.config_name());
    for index in pool.attempt_order() {
        let endpoint = &pool.endpoints[index];
        let EndpointTransport::Http(target) = &endpoint.transport else {
            last = format!("endpoint '{}' is reached through zrok, which was not started", endpoint.name);
            continue;
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", target.base))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, concat!("llm-gateway/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if let Some((name, value)) = &credential {
            req.headers_mut().insert(name, value.clone());
        }
        match target.client.request(req).await {
            Ok(resp) => {
                let status = resp.status();
                return match resp.into_body().collect().await {
                    Ok(body) => Ok((status, body.to_bytes())),
                    Err(e) => Err(format!("endpoint '{}' broke off its answer: {e}", endpoint.name)),
                };
            }
            Err(e) => last = format!("endpoint '{}' failed: {e:?}", endpoint.name),
        }
        pool.set_healthy(index, false);
    }
    Err(last)
}

/// `<what> <status>: <the answer's first 500 bytes>`, as the anchor words provider errors.
pub fn status_error(what: &str, status: StatusCode, answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(500)]);
    format!("{what} {}: {text}", status.as_u16())
}
