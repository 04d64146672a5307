//! The workers behind [`super::Model`]. ONNX Runtime's `Run` must not be called on one session
//! from two threads at once (`ort` takes `&mut`), so each worker thread owns a session and takes
//! texts from a shared queue. The sessions share their weights (see `weights.rs`), so a worker
//! costs its session's bookkeeping and buffers, not another copy of the model.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use ort::environment::Environment;
use ort::ep::CPU;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::Tensor;

use super::table::Table;
use super::weights::Shared;
use super::wordpiece::WordPiece;

pub type Vector = Result<Vec<f32>, String>;

/// Where a job's vector goes: a blocking caller, or an async one, which may have gone.
pub enum Reply {
    Blocking(mpsc::SyncSender<Vector>),
    Async(tokio::sync::oneshot::Sender<Vector>),
}

impl Reply {
    /// Whether anyone still waits: a request whose client left is not embedded.
    fn wanted(&self) -> bool {
        match self {
            Self::Blocking(_) => true,
            Self::Async(tx) => !tx.is_closed(),
        }
    }

    fn send(self, vector: Vector) {
        match self {
            Self::Blocking(tx) => drop(tx.send(vector)),
            Self::Async(tx) => drop(tx.send(vector)),
        }
    }
}

pub struct Job {
    pub text: String,
    pub reply: Reply,
}

/// What every worker reads.
pub struct Model {
    pub tokenizer: WordPiece,
    pub table: Table,
}

/// One session per worker on the graph, all reading the same weights (the shared ones if it has
/// them).
pub fn sessions(
    environment: &Environment,
    graph: &Path,
    shared: Option<&Shared>,
    workers: usize,
) -> Result<Vec<Session>, String> {
    (0..workers.max(1)).map(|_| session(environment, graph, shared)).collect()
}

/// Starts a thread per session, taking jobs from a queue of at most `queued`; they stop when
/// the returned sender is dropped.
pub fn start(sessions: Vec<Session>, model: Model, queued: usize) -> Result<mpsc::SyncSender<Job>, String> {
    let model = Arc::new(model);
    let (jobs, queue) = mpsc::sync_channel::<Job>(queued);
    let queue = Arc::new(Mutex::new(queue));
    for (i, session) in sessions.into_iter().enumerate() {
        let worker = Worker { session, model: model.clone() };
        let queue = queue.clone();
        std::thread::Builder::new()
            .name(format!("embed-{i}"))
            .spawn(move || worker.serve(&queue))
            .map_err(|e| format!("cannot start an embedding thread: {e}"))?;
    }
    Ok(jobs)
}

/// A session with the options that keep memory down: no arena (it keeps the largest
/// activations it ever served, per session), no memory patterns (a plan cached per input
/// shape), one thread (a worker is the unit of parallelism), the shared weights, and no
/// prepacking. ONNX Runtime would otherwise keep a packed copy of the int8 weights beside the
/// ones it is given (10.4 MiB more; it can drop the originals only when it loaded them itself,
/// and then each session packs its own); unpacked, each run packs what it needs as it goes,
/// about 0.9 ms more per prompt (measured: p50 2.3 ms instead of 1.4 ms, 56 MB instead of 67).
fn session(environment: &Environment, graph: &Path, shared: Option<&Shared>) -> Result<Session, String> {
    let cannot =
        |e: &dyn std::fmt::Display| format!("cannot load the builtin embedding model {}: {e}", graph.display());
    let failed = |e: ort::Error<SessionBuilder>| cannot(&e);
    let mut builder = Session::builder(environment)
        .map_err(|e| cannot(&e))?
        .with_execution_providers([CPU::default().with_arena_allocator(false).build()])
        .map_err(failed)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(failed)?
        .with_intra_threads(1)
        .map_err(failed)?
        .with_inter_threads(1)
        .map_err(failed)?
        .with_memory_pattern(false)
        .map_err(failed)?
        .with_prepacking(false)
        .map_err(failed)?;
    for (name, tensor) in shared.map_or(&[][..], Vec::as_slice) {
        builder = builder.with_initializer(name, tensor.clone()).map_err(failed)?;
    }
    builder.commit_from_file(graph).map_err(|e| cannot(&e))
}

struct Worker {
    session: Session,
    model: Arc<Model>,
}

impl Worker {
    fn serve(mut self, queue: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            // The lock is held only while waiting, so one idle worker at a time waits on the queue.
            let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
            let Ok(Job { text, reply }) = job else { return };
            if !reply.wanted() {
                continue;
            }
            let vector = catch_unwind(AssertUnwindSafe(|| self.embed(&text)))
                .unwrap_or_else(|_| Err("the builtin embedder failed on this text".into()));
            reply.send(vector);
        }
    }

    /// Mean of the token states, normalised: sentence-transformers' pooling for this model.
    fn embed(&mut self, text: &str) -> Result<Vec<f32>, String> {
        let failed = |e: &dyn std::fmt::Display| format!("builtin embedding failed: {e}");
        let ids = self.model.tokenizer.encode(text);
        let (n, dims) = (ids.len(), self.model.table.dims());
        let embeddings = self.model.table.embed(&ids)?;
        let inputs = ort::inputs![
            "embeddings" => Tensor::from_array(([1, n, dims], embeddings)).map_err(|e| failed(&e))?,
            "attention_mask" => Tensor::from_array(([1, n], vec![1i64; n])).map_err(|e| failed(&e))?,
        ];
        let outputs = self.session.run(inputs).map_err(|e| failed(&e))?;
        let hidden = outputs.get("last_hidden_state").ok_or_else(|| failed(&"the graph has no last_hidden_state"))?;
        let (_, states) = hidden.try_extract_tensor::<f32>().map_err(|e| failed(&e))?;
        mean_unit(states, n).ok_or_else(|| failed(&"the graph returned no usable vector"))
    }
}

/// The normalised mean of `rows` equal rows laid end to end; `None` when there are none or
/// they sum to zero.
fn mean_unit(states: &[f32], rows: usize) -> Option<Vec<f32>> {
    if rows == 0 || states.is_empty() || !states.len().is_multiple_of(rows) {
        return None;
    }
    let mut sum = vec![0f32; states.len() / rows];
    for row in states.chunks_exact(sum.len()) {
        sum.iter_mut().zip(row).for_each(|(s, x)| *s += x);
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| sum.into_iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::{Reply, mean_unit};

    #[test]
    fn a_job_whose_async_caller_left_is_not_wanted() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = Reply::Async(tx);
        assert!(reply.wanted());
        drop(rx);
        assert!(!reply.wanted());
        let (tx, _rx) = std::sync::mpsc::sync_channel(1);
        assert!(Reply::Blocking(tx).wanted());
    }

    #[test]
    fn the_mean_of_the_rows_normalised() {
        let v = mean_unit(&[1.0, 0.0, 3.0, 4.0], 2).unwrap();
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!(v.iter().all(|x| (x - half).abs() < 1e-6), "{v:?}");
    }

    #[test]
    fn no_rows_or_a_zero_sum_is_no_vector() {
        assert_eq!(mean_unit(&[], 0), None);
        assert_eq!(mean_unit(&[1.0, 2.0, 3.0], 2), None);
        assert_eq!(mean_unit(&[1.0, -1.0], 2), None);
    }
}
