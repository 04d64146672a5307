//! Where every log line and every request's metrics go: queues (one per serving thread, so
//! no two threads share a lock or a cache line per request) that one writer thread drains,
//! so no request formats or writes its access line, updates shared counters, or waits on a
//! slow or full stderr.
//!
//! A request pushes its access record unformatted, other events push their formatted line
//! (through tracing's writer). The writer sleeps until a first line arrives, collects for up
//! to [`FLUSH_INTERVAL`] (less once [`HIGH_WATER`] lines wait in a queue), records the
//! batch's metrics, formats it and writes it with one `write`: a burst of thousands of
//! requests costs a few system calls, and lines are never torn or interleaved; across
//! serving threads they are written in the order of their timestamps. A queue past
//! [`CAPACITY`] drops new lines and counts them (`llm_gateway_log_lines_dropped_total`)
//! rather than making traffic wait (their metrics are recorded at once: metrics are never
//! lost). [`settle`] records what is queued before a scrape; [`close`] (at exit) writes
//! whatever is waiting, giving up after a deadline if stderr is stuck.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use crate::access_log::Record;
use crate::logging::LogFormat;
use crate::shard::PerShard;

/// The longest a line waits before it is written. Each write briefly takes a CPU from the
/// requests and wakes whoever reads stderr, so fewer, larger writes keep the latency tail
/// flat: on one CPU (with a 64 KB pipe, see [`PIPE_BYTES`]), 10 ms put the gateway's p99 at
/// 1.6–2.3× the floor's, 50 ms at 1.3–1.5× (2 ms: 4×; 100 ms: worse again). With the 1 MB
/// pipe, first-event p99 (medians of six runs): 5 ms 2.0×, 10 ms 1.8×, 20 ms 1.5×, and 50, 100
/// and 200 ms all 1.4×.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Lines waiting in a queue that make the writer write without waiting out the interval.
const HIGH_WATER: usize = 2048;
/// Lines waiting in a queue past which new ones are dropped: bounds memory while stderr is
/// blocked.
const CAPACITY: usize = 16 * 1024;
/// A batch buffer grown past this by a burst is given back once written. Above a busy
/// server's batch (50 ms at 50,000 requests a second is about 1 MB of lines), so a steady
/// load does not grow it afresh every round.
const KEEP_BYTES: usize = 4 << 20;

// Records are stored inline in the reused queue buffers, copied out of the request's box: that
// box is freed by the serving thread that made it, where one queued here would be freed by the
// writer, a free across threads per request.
#[allow(clippy::large_enum_variant)]
pub enum Line {
    /// A finished request's record: its metrics, and its line unless the level hides it.
    Access(Record),
    /// A line another event formatted (tracing's text or JSON), newline included, and when
    /// it was queued.
    Formatted { at: SystemTime, text: Vec<u8> },
}

impl Line {
    /// A formatted line (stamped when queued).
    pub fn formatted(text: Vec<u8>) -> Self {
        Line::Formatted { at: SystemTime::UNIX_EPOCH, text }
    }

    /// Stamps the line as it is queued (under its queue's lock): the writer relies on a line
    /// queued after it took a queue being stamped later than that (see [`write_loop`]).
    fn stamp(&mut self, now: SystemTime) {
        match self {
            Line::Access(record) => record.stamp(now),
            Line::Formatted { at, .. } => *at = now,
        }
    }

    fn meter(&mut self) {
        if let Line::Access(record) = self {
            record.meter();
        }
    }

    /// Whether there is a line to write (a record's is not when its level is filtered out).
    fn is_written(&self) -> bool {
        !matches!(self, Line::Access(record) if !record.writes_line())
    }

    /// Appends the line, if there is one, to `out`.
    fn append(&self, out: &mut Vec<u8>, sink: &Sink) {
        match self {
            Line::Access(record) if record.writes_line() => record.write_line(out, sink.format, sink.ansi),
            Line::Access(_) => {}
            Line::Formatted { text, .. } => out.extend_from_slice(text),
        }
    }

    /// When its event happened: what orders the lines of different serving threads.
    fn at(&self) -> SystemTime {
        match self {
            Line::Access(record) => record.finished(),
            Line::Formatted { at, .. } => *at,
        }
    }
}

struct Sink {
    format: LogFormat,
    ansi: bool,
    queues: PerShard<Mutex<Vec<Line>>>,
    writer: OnceLock<Thread>,
    /// The writer waits for a first line, so pushing one must wake it.
    idle: AtomicBool,
    /// The writer took lines whose metrics it has not recorded yet.
    metering: AtomicBool,
    closing: AtomicBool,
    closed: Mutex<bool>,
    /// [`close`] waits on it for the writer to finish.
    done: Condvar,
}

static SINK: OnceLock<Sink> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    fn wake(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }

    fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| lock(q).is_empty())
    }
}

/// Starts the writer (once per process, after [`crate::shard::set_count`]); until then,
/// records only have their metrics recorded.
pub fn install(format: LogFormat, ansi: bool) {
    let mut fresh = false;
    let sink = SINK.get_or_init(|| {
        fresh = true;
        Sink {
            format,
            ansi,
            queues: PerShard::new(Mutex::default),
            writer: OnceLock::new(),
            idle: AtomicBool::new(false),
            metering: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            closed: Mutex::new(false),
            done: Condvar::new(),
        }
    });
    if fresh {
        let spawned = std::thread::Builder::new().name("log-writer".into()).spawn(move || write_loop(sink));
        match spawned {
            Ok(handle) => {
                let _ = sink.writer.set(handle.thread().clone());
            }
            // `push` then writes each line itself.
            Err(_) => *lock(&sink.closed) = true,
        }
    }
}

/// Queues a line; never blocks on the output.
pub fn push(mut line: Line) {
    let Some(sink) = SINK.get() else {
        line.meter();
        return;
    };
    let mut queue = lock(sink.queues.get());
    line.stamp(SystemTime::now());
    // Checked under the lock: the writer's last round takes the queue after `closing` is set.
    if sink.writer.get().is_none() || sink.closing.load(Ordering::SeqCst) {
        drop(queue);
        // No writer (it could not start, or the process is exiting): done here.
        line.meter();
        let mut out = Vec::new();
        line.append(&mut out, sink);
        let _ = std::io::stderr().lock().write_all(&out);
        return;
    }
    if queue.len() >= CAPACITY {
        drop(queue);
        line.meter();
        if line.is_written() {
            crate::metrics::get().log_lines_dropped.inc();
        }
        return;
    }
    queue.push(line);
    let wake = queue.len() == HIGH_WATER;
    drop(queue);
    if wake || sink.idle.load(Ordering::SeqCst) {
        sink.wake();
    }
}

/// Records the metrics of every request that finished so far (a scrape calls it first).
pub fn settle() {
    let Some(sink) = SINK.get() else { return };
    for queue in sink.queues.iter() {
        // Metered outside the lock (a blocked stderr can leave thousands queued), then put
        // back in front of whatever was pushed meanwhile.
        let mut taken = std::mem::take(&mut *lock(queue));
        taken.iter_mut().for_each(Line::meter);
        let mut queue = lock(queue);
        taken.append(&mut queue);
        *queue = taken;
    }
    // Lines the writer took and is metering: that takes microseconds, never any I/O.
    let until = Instant::now() + Duration::from_millis(100);
    while sink.metering.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::yield_now();
    }
}

/// Writes what is queued and stops the writer, waiting at most `deadline` (stderr may be a
/// pipe nobody reads). Lines pushed afterwards are not written (their metrics still are).
pub fn close(deadline: Duration) {
    let Some(sink) = SINK.get() else { return };
    let until = Instant::now() + deadline;
    sink.closing.store(true, Ordering::SeqCst);
    sink.wake();
    let mut closed = lock(&sink.closed);
    while !*closed {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        closed = sink.done.wait_timeout(closed, left).unwrap_or_else(PoisonError::into_inner).0;
    }
}

/// A pipe buffer that holds a busy server's batch (about 1 MB at 50,000 requests a second and
/// [`FLUSH_INTERVAL`]). With a pipe's default 64 KB, one batch's `write` fills the pipe again
/// and again: each time the writer stops, the reader wakes, then the writer again, and on one
/// CPU each of those turns holds up a request. For the same reason the writer formats a batch
/// without yielding its CPU: each yield put one more request behind the batch. Measured on one
/// CPU, `Chat → local` whole-answer p99 against the floor's: 1.64–2.31× with a 64 KB pipe and a
/// yield every 256 lines, 1.43–1.60× with this pipe, 1.28–1.52× with this pipe and no yields
/// (1.27–1.31× with the access log off); the p99 of a saturated two-CPU server moved within
/// its run-to-run spread.
const PIPE_BYTES: usize = 1 << 20;

/// Grows stderr's buffer to [`PIPE_BYTES`] when stderr is a pipe (a container runtime's or a
/// supervisor's log collector). Above `/proc/sys/fs/pipe-max-size` (1 MB by default) an
/// unprivileged process is refused; the pipe then stays as it was.
fn enlarge_stderr_pipe() {
    let stderr = std::io::stderr();
    if rustix::pipe::fcntl_getpipe_size(&stderr).is_ok_and(|size| size < PIPE_BYTES) {
        let _ = rustix::pipe::fcntl_setpipe_size(&stderr, PIPE_BYTES);
    }
}

fn write_loop(sink: &Sink) {
    enlarge_stderr_pipe();
    // One batch per serving thread's queue, and last the lines held back from the round before.
    let held = sink.queues.iter().count();
    let mut batches: Vec<Vec<Line>> = (0..=held).map(|_| Vec::new()).collect();
    let mut keep: Vec<Line> = Vec::new();
    let mut order: Vec<(SystemTime, usize, usize)> = Vec::new();
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        sink.idle.store(true, Ordering::SeqCst);
        while !sink.closing.load(Ordering::SeqCst) && sink.is_empty() && batches[held].is_empty() {
            std::thread::park();
        }
        sink.idle.store(false, Ordering::SeqCst);
        if !sink.closing.load(Ordering::SeqCst) {
            // Collect a batch (a queue reaching its high-water mark cuts this short).
            std::thread::park_timeout(FLUSH_INTERVAL);
        }
        // Read before taking the queues: a line pushed before `closing` was set is in them.
        let last = sink.closing.load(Ordering::SeqCst);
        sink.metering.store(true, Ordering::SeqCst);
        // Taken under the first queue's lock: every line queued after a queue is taken is
        // stamped later than this.
        let mut cut = None;
        for (queue, batch) in sink.queues.iter().zip(&mut batches) {
            let mut queue = lock(queue);
            cut.get_or_insert_with(SystemTime::now);
            std::mem::swap(&mut *queue, batch);
        }
        batches[..held].iter_mut().flatten().for_each(Line::meter);
        sink.metering.store(false, Ordering::SeqCst);
        if batches.iter().all(Vec::is_empty) && last {
            *lock(&sink.closed) = true;
            sink.done.notify_all();
            return;
        }
        // Each queue is in order, but a thread's line can be queued while another thread's
        // later ones are being written. Merged by time, and holding back until the next round
        // the lines stamped after `cut` (a line still to be queued may be earlier than they),
        // lines are written in the order of their timestamps.
        let cut = if last { None } else { cut };
        let held_back = |at: SystemTime| cut.is_some_and(|cut| at >= cut);
        order.clear();
        for (batch_index, batch) in batches.iter().enumerate() {
            order.extend(batch.iter().enumerate().map(|(i, line)| (line.at(), batch_index, i)));
        }
        if batches.iter().filter(|b| !b.is_empty()).count() > 1 {
            order.sort_unstable();
        }
        let mut lines = 0;
        for &(at, batch_index, i) in &order {
            if held_back(at) {
                continue;
            }
            let line = &batches[batch_index][i];
            lines += u64::from(line.is_written());
            line.append(&mut out, sink);
        }
        for batch in &mut batches {
            keep.extend(batch.drain(..).filter(|line| held_back(line.at())));
        }
        std::mem::swap(&mut batches[held], &mut keep);
        if !out.is_empty() && std::io::stderr().lock().write_all(&out).is_err() {
            crate::metrics::get().log_lines_dropped.inc_by(lines);
        }
        out.clear();
        if out.capacity() > KEEP_BYTES {
            out.shrink_to(64 * 1024);
        }
        for batch in batches.iter_mut().chain([&mut keep]) {
            if batch.capacity() > HIGH_WATER {
                batch.shrink_to(HIGH_WATER);
            }
        }
        if order.capacity() > HIGH_WATER {
            order.shrink_to(HIGH_WATER);
        }
    }
}

/// tracing's writer: each event's formatted line becomes one queued [`Line::Formatted`].
pub struct Writer;

pub struct Buffered(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
    type Writer = Buffered;

    fn make_writer(&'a self) -> Buffered {
        Buffered(Vec::new())
    }
}

impl Write for Buffered {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            push(Line::formatted(std::mem::take(&mut self.0)));
        }
    }
}
