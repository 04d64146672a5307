//! Embeddings from a provider: OpenAI's `/v1/embeddings` (OpenAI, and every OpenAI-compatible
//! server: Ollama, vLLM, llama.cpp, SGLang), falling back to Ollama's own `/api/embed` when a
//! local server has no `/v1/embeddings`.

use http::StatusCode;
use llm_gateway_compiler::plan::ProviderKind;
use serde_json::{Value, json};

use crate::pool::Pool;
use crate::providers::Operation;
use crate::upstream::{call_json, status_error};

pub async fn embed(pool: &Pool, model: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
    let who = if pool.kind == ProviderKind::OpenAi { "openai" } else { "local" };
    let body = serde_json::to_vec(&json!({ "model": model, "input": texts })).expect("serializable");
    let (status, answer) = call_json(pool, Operation::Embeddings, body.clone()).await?;
    if status == StatusCode::NOT_FOUND && pool.kind == ProviderKind::Local {
        let (status, answer) = call_json(pool, Operation::OllamaEmbed, body).await?;
        let vectors =
            parse(who, status, &answer, |v| v["embeddings"].as_array().cloned().map(|a| a.into_iter().collect()))?;
        return counted(vectors, texts.len());
    }
    let vectors = parse(who, status, &answer, |v| {
        let mut data: Vec<(u64, Value)> = v["data"]
            .as_array()?
            .iter()
            .map(|d| Some((d["index"].as_u64()?, d["embedding"].clone())))
            .collect::<Option<_>>()?;
        data.sort_by_key(|(i, _)| *i);
        Some(data.into_iter().map(|(_, e)| e).collect())
    })?;
    counted(vectors, texts.len())
}

fn parse(
    who: &str,
    status: StatusCode,
    answer: &[u8],
    vectors: impl Fn(&Value) -> Option<Vec<Value>>,
) -> Result<Vec<Vec<f32>>, String> {
    if !status.is_success() {
        return Err(status_error(&format!("{who} embed error"), status, answer));
    }
    let bad = || format!("{who} embed answer is not a list of vectors");
    let value: Value = serde_json::from_slice(answer).map_err(|_| bad())?;
    vectors(&value)
        .ok_or_else(bad)?
        .iter()
        .map(|v| v.as_array().and_then(|xs| xs.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()).ok_or_else(bad))
        .collect()
}

fn counted(vectors: Vec<Vec<f32>>, wanted: usize) -> Result<Vec<Vec<f32>>, String> {
    if vectors.len() == wanted {
        Ok(vectors)
    } else {
        Err(format!("asked for {wanted} embeddings, got {}", vectors.len()))
    }
}
