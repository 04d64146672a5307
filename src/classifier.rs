//! The classifier layer: asks a chat model, through the provider's own pool, which route a
//! request belongs to, given the routes' names and descriptions. Any failure is an `Err` the
//! cascade logs and steps past.

use llm_gateway_compiler::plan::{ClassifierPlan, RouteId, RoutingPlan};
use serde::Deserialize;
use serde_json::json;

use crate::embed::Pools;
use crate::embed::cache::{TtlLru, key};
use crate::providers::Operation;
use crate::upstream::{call_json, status_error};

static ANSWERS: TtlLru<(RouteId, f64)> = TtlLru::new();

#[derive(Deserialize)]
struct Answer {
    category: String,
    confidence: f64,
}

/// The route the model chose and its confidence.
pub async fn classify(
    plan: &ClassifierPlan,
    routing: &RoutingPlan,
    pools: &Pools,
    text: &str,
) -> Result<(RouteId, f64), String> {
    let kind = plan.provider.provider();
    let cache_key = key(&format!("classifier:{}:{}", kind.config_name(), plan.model), text);
    if let Some(hit) = ANSWERS.get(plan.cache.as_ref(), &cache_key) {
        return Ok(hit);
    }
    let pool =
        pools[kind.index()].as_deref().ok_or_else(|| format!("provider '{}' is not configured", kind.config_name()))?;
    let body = json!({
        "model": plan.model,
        "messages": [{"role": "user", "content": prompt(routing, text)}],
        "stream": false,
    });
    let call = call_json(pool, Operation::Chat, serde_json::to_vec(&body).expect("serializable"));
    let (status, answer) = match plan.timeout {
        Some(t) => tokio::time::timeout(t, call).await.map_err(|_| format!("no answer within {} ms", t.as_millis()))?,
        None => call.await,
    }?;
    if !status.is_success() {
        return Err(status_error("classifier error", status, &answer));
    }
    let reply: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|_| "classifier answer is not JSON".to_owned())?;
    let content = reply["choices"][0]["message"]["content"].as_str().ok_or("classifier returned no choices")?;
    let chosen = parse(content, routing)?;
    ANSWERS.put(plan.cache.as_ref(), cache_key, chosen);
    Ok(chosen)
}

fn prompt(routing: &RoutingPlan, text: &str) -> String {
    let mut p = String::from("Classify the user's request into exactly one of these categories.\n\nCategories:\n");
    for r in &routing.routes {
        p.push_str(&format!("- {}: {}\n", r.name, r.description));
    }
    p.push_str("\nUser request:\n");
    p.push_str(text);
    p.push_str(
        "\n\nReply with JSON only, no other text: {\"category\": \"<category name>\", \"confidence\": <a number from 0 to 1>}",
    );
    p
}

/// The model's reply, trimmed and out of any Markdown fence, as `{category, confidence}`.
fn parse(content: &str, routing: &RoutingPlan) -> Result<(RouteId, f64), String> {
    let mut body = content.trim();
    if let Some(rest) = body.strip_prefix("```") {
        body = rest.strip_prefix("json").unwrap_or(rest);
        body = body.strip_suffix("```").unwrap_or(body).trim();
    }
    let answer: Answer =
        serde_json::from_str(body).map_err(|e| format!("failed to parse classifier output '{content}': {e}"))?;
    let id = routing
        .routes
        .iter()
        .position(|r| r.name.eq_ignore_ascii_case(answer.category.trim()))
        .ok_or_else(|| format!("classifier returned unknown category '{}'", answer.category))?;
    Ok((id, answer.confidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> RoutingPlan {
        let yaml = "providers:\n  local: {}\nrouting:\n  routes:\n    - {name: coding, model: a, description: Code}\n    - {name: Fast, model: b, description: Quick answers}\n";
        llm_gateway_compiler::compile(yaml, &std::collections::HashMap::<String, String>::new())
            .unwrap()
            .plan
            .routing
            .unwrap()
    }

    #[test]
    fn replies_plain_fenced_and_in_any_case() {
        let r = routing();
        assert_eq!(parse(r#"{"category": "coding", "confidence": 0.9}"#, &r), Ok((0, 0.9)));
        assert_eq!(parse("```json\n{\"category\": \"FAST\", \"confidence\": 0.75}\n```", &r), Ok((1, 0.75)));
        assert_eq!(parse(" ```\n{\"category\": \"fast\", \"confidence\": 1}\n``` ", &r), Ok((1, 1.0)));
        assert_eq!(
            parse(r#"{"category": "poetry", "confidence": 0.9}"#, &r),
            Err("classifier returned unknown category 'poetry'".into())
        );
        assert!(parse("I think it is coding", &r).unwrap_err().starts_with("failed to parse classifier output"));
    }

    #[test]
    fn the_prompt_lists_every_route() {
        let p = prompt(&routing(), "fix my loop");
        assert!(p.contains("- coding: Code\n- Fast: Quick answers\n"));
        assert!(p.contains("User request:\nfix my loop\n"));
    }
}
