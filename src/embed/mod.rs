//! Embeddings for semantic routing: which embedder a plan uses, the route examples' vectors
//! put into the plan once per load (re-embedding only texts not seen before with the same
//! model), and request prompts embedded off the async threads with an LRU cache.

#[cfg(feature = "builtin-embeddings")]
pub mod builtin;
pub mod cache;
pub mod calibration;
mod remote;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_gateway_compiler::centroids::{self, Vectors};
use llm_gateway_compiler::plan::{EmbedProvider, ProviderKind, RoutingPlan, SemanticPlan};

use crate::pool::Pool;

/// A provider's pools, by [`ProviderKind::index`], as [`crate::state::Live`] holds them.
pub type Pools = [Option<Arc<Pool>>; 3];

/// Bounds every embedding call to a provider (the Go gateway has none).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Embedder {
    #[cfg(feature = "builtin-embeddings")]
    Builtin(Arc<builtin::Model>),
    Remote {
        kind: ProviderKind,
        model: String,
    },
}

impl Embedder {
    /// The plan's embedder. The builtin model is loaded (blocking, once per process) on
    /// first use.
    pub fn for_plan(semantic: &SemanticPlan) -> Result<Self, String> {
        match semantic.provider.provider() {
            Some(kind) => Ok(Embedder::Remote { kind, model: semantic.model.clone().unwrap_or_default() }),
            #[cfg(feature = "builtin-embeddings")]
            None => builtin::shared().map(Embedder::Builtin),
            #[cfg(not(feature = "builtin-embeddings"))]
            None => Err("this llm-gateway was built without the builtin embedder \
                (cargo feature `builtin-embeddings`); use `routing.semantic.provider: local` or `openai`"
                .into()),
        }
    }

    pub fn model_id(&self) -> String {
        match self {
            #[cfg(feature = "builtin-embeddings")]
            Embedder::Builtin(_) => format!("builtin:{}", builtin::MODEL),
            Embedder::Remote { kind, model } => format!("{}:{model}", kind.config_name()),
        }
    }

    pub async fn embed(&self, pools: &Pools, texts: Vec<String>) -> Result<Vec<Vec<f32>>, String> {
        match self {
            #[cfg(feature = "builtin-embeddings")]
            Embedder::Builtin(model) => model.embed_async(texts).await,
            Embedder::Remote { kind, model } => {
                let pool = pools[kind.index()]
                    .as_deref()
                    .ok_or_else(|| format!("provider '{}' is not configured", kind.config_name()))?;
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                tokio::time::timeout(REMOTE_TIMEOUT, remote::embed(pool, model, &texts))
                    .await
                    .map_err(|_| format!("no embeddings within {} s", REMOTE_TIMEOUT.as_secs()))?
            }
        }
    }
}

/// What a load did: examples embedded now, and those reused from an earlier load.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Embedded {
    pub fresh: usize,
    pub reused: usize,
}

/// Vectors of examples already embedded, by model identity and text, for the next load.
static EXAMPLES: Mutex<Option<ExampleVectors>> = Mutex::new(None);

type ExampleVectors = HashMap<(String, String), Vec<f32>>;

/// Embeds the routes' examples (those not cached) and stores the vectors in the plan's
/// semantic layer. Does nothing when semantic routing is off.
pub async fn attach(routing: Option<&mut RoutingPlan>, pools: &Pools) -> Result<Embedded, String> {
    let Some(routing) = routing else { return Ok(Embedded::default()) };
    let Some(semantic) = routing.semantic.as_ref() else { return Ok(Embedded::default()) };
    let embedder = match semantic.provider {
        EmbedProvider::Builtin => {
            let semantic = semantic.clone();
            tokio::task::spawn_blocking(move || Embedder::for_plan(&semantic))
                .await
                .map_err(|e| format!("loading the embedder failed: {e}"))??
        }
        _ => Embedder::for_plan(semantic)?,
    };
    let id = embedder.model_id();
    let known = |cache: &Option<ExampleVectors>, text: &str| {
        cache.as_ref().is_some_and(|c| c.contains_key(&(id.clone(), text.to_owned())))
    };
    let mut done = Embedded::default();
    let mut fresh = HashMap::new();
    for route in &routing.routes {
        let missing: Vec<String> = {
            let cache = lock(&EXAMPLES);
            route.examples.iter().filter(|t| !known(&cache, t) && !fresh.contains_key(*t)).cloned().collect()
        };
        done.reused += route.examples.len() - missing.len();
        if missing.is_empty() {
            continue;
        }
        let vectors = embedder
            .embed(pools, missing.clone())
            .await
            .map_err(|e| format!("failed to embed exemplars for route '{}': {e}", route.name))?;
        done.fresh += missing.len();
        fresh.extend(missing.into_iter().zip(vectors));
    }
    let mut cache = lock(&EXAMPLES);
    let map = cache.get_or_insert_with(HashMap::new);
    map.extend(fresh.into_iter().map(|(text, v)| ((id.clone(), text), v)));
    let vectors = centroids::embed_routes(routing, &Cached { id: &id, map })?;
    // Keep only what this plan uses, so edits over a long run do not pile up.
    let used: HashSet<&String> = routing.routes.iter().flat_map(|r| &r.examples).collect();
    map.retain(|(model, text), _| *model == id && used.contains(text));
    if let Some(semantic) = routing.semantic.as_mut() {
        semantic.vectors = Some(vectors);
    }
    if let Some((threshold, ambiguous)) = calibration::derive(routing) {
        tracing::info!(
            "semantic routing: thresholds derived from the examples: threshold {threshold:.2}, ambiguous_threshold {ambiguous:.2}"
        );
    }
    Ok(done)
}

/// The compiler's view of the cache: every example is in it by the time it asks.
struct Cached<'a> {
    id: &'a str,
    map: &'a ExampleVectors,
}

impl centroids::Embedder for Cached<'_> {
    fn model_id(&self) -> String {
        self.id.to_owned()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        texts
            .iter()
            .map(|t| {
                self.map
                    .get(&(self.id.to_owned(), (*t).to_owned()))
                    .cloned()
                    .ok_or_else(|| format!("'{t}' was not embedded"))
            })
            .collect()
    }
}

/// A prompt's unit vector, from the cache when it was seen recently.
pub async fn prompt(semantic: &SemanticPlan, pools: &Pools, text: &str) -> Result<Arc<[f32]>, String> {
    let embedder = Embedder::for_plan(semantic)?;
    let id = embedder.model_id();
    let key = cache::key(&id, text);
    if let Some(v) = cache::PROMPTS.get(semantic.cache.as_ref(), &key) {
        return Ok(v);
    }
    let mut vectors = embedder.embed(pools, vec![text.to_owned()]).await?;
    let mut v = vectors.pop().ok_or("the embedder returned no vector")?;
    if !centroids::normalize(&mut v) {
        return Err("the embedder returned a zero vector".into());
    }
    let v: Arc<[f32]> = v.into();
    cache::PROMPTS.put(semantic.cache.as_ref(), key, v.clone());
    Ok(v)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The vectors of a plan whose semantic layer has been attached.
pub fn vectors(routing: &RoutingPlan) -> Option<(&SemanticPlan, &Vectors)> {
    let semantic = routing.semantic.as_ref()?;
    Some((semantic, semantic.vectors.as_ref()?))
}
