//! Where the setup scripts put downloaded assets (the embedding model, ONNX Runtime,
//! libziti): `LLM_GATEWAY_CACHE`, else `$XDG_CACHE_HOME/llm-gateway`, else
//! `~/.cache/llm-gateway`, as `scripts/lib/assets.sh` decides.

use std::path::PathBuf;

pub fn cache_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("LLM_GATEWAY_CACHE").unwrap_or_else(|| {
        var("XDG_CACHE_HOME").unwrap_or_else(|| var("HOME").unwrap_or_default().join(".cache")).join("llm-gateway")
    })
}
