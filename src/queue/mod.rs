//! Concurrency limits with a FIFO queue whose positions are observable, so streaming
//! clients can be told where they stand (`: queue position 3`).
//!
//! A [`Gate`] admits up to `limit` requests; later ones take a numbered ticket and are
//! admitted strictly in ticket order. A ticket dropped while waiting (the client left) is
//! skipped; a permit dropped frees its slot. Every change bumps a watch channel that waiting
//! tickets listen to.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

mod wait;

pub(crate) use wait::streaming;
pub use wait::{admit, hold};

pub struct Gate {
    limit: AtomicUsize,
    max_queue: AtomicUsize,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    active: usize,
    /// The oldest ticket still waiting (or the next to be handed out when none waits).
    head: u64,
    /// The next ticket number to hand out.
    tail: u64,
    /// Tickets at or after `head` whose holders left.
    left: BTreeSet<u64>,
}

impl State {
    fn waiting(&self) -> usize {
        (self.tail - self.head) as usize - self.left.len()
    }

    /// Moves `head` past tickets whose holders left.
    fn skip_left(&mut self) {
        while self.left.remove(&self.head) {
            self.head += 1;
        }
    }
}

/// The queue is full: the caller should answer 429.
#[derive(Debug)]
pub struct Full;

/// A slot; dropping it frees the slot for the next in line.
pub struct Permit {
    gate: Arc<Gate>,
}

/// A place in the queue.
pub struct Ticket {
    gate: Arc<Gate>,
    number: u64,
    seen: watch::Receiver<u64>,
    admitted: bool,
}

impl Gate {
    pub fn new(limit: usize, max_queue: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicUsize::new(limit),
            max_queue: AtomicUsize::new(max_queue),
            state: Mutex::default(),
            changed: watch::channel(0).0,
        })
    }

    /// New limits (a reload); waiting tickets re-check at once.
    pub fn set_limits(&self, limit: usize, max_queue: usize) {
        self.limit.store(limit, Ordering::Relaxed);
        self.max_queue.store(max_queue, Ordering::Relaxed);
        self.notify();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A slot now, or a ticket to wait with, or [`Full`].
    pub fn enter(self: &Arc<Self>) -> Result<Result<Permit, Ticket>, Full> {
        let mut s = self.lock();
        if s.waiting() == 0 && s.active < self.limit.load(Ordering::Relaxed) {
            s.active += 1;
            return Ok(Ok(Permit { gate: self.clone() }));
        }
        if s.waiting() >= self.max_queue.load(Ordering::Relaxed) {
            return Err(Full);
        }
        let number = s.tail;
        s.tail += 1;
        drop(s);
        Ok(Err(Ticket { gate: self.clone(), number, seen: self.changed.subscribe(), admitted: false }))
    }

    /// Requests waiting in this queue.
    pub fn depth(&self) -> usize {
        self.lock().waiting()
    }
}

impl Ticket {
    /// 1 when next in line.
    pub fn position(&self) -> usize {
        let s = self.gate.lock();
        (self.number - s.head) as usize - s.left.range(..self.number).count() + 1
    }

    /// The permit, if this ticket is first in line and a slot is free.
    pub fn try_admit(&mut self) -> Option<Permit> {
        let mut s = self.gate.lock();
        if s.head != self.number || s.active >= self.gate.limit.load(Ordering::Relaxed) {
            return None;
        }
        s.head += 1;
        s.skip_left();
        s.active += 1;
        drop(s);
        self.admitted = true;
        // The next in line moved up.
        self.gate.notify();
        Some(Permit { gate: self.gate.clone() })
    }

    /// Waits until something in the queue changed.
    pub async fn changed(&mut self) {
        let _ = self.seen.changed().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        let mut s = self.gate.lock();
        s.left.insert(self.number);
        s.skip_left();
        drop(s);
        self.gate.notify();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.lock().active -= 1;
        self.gate.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(g: &Arc<Gate>) -> Ticket {
        match g.enter() {
            Ok(Err(t)) => t,
            _ => panic!("expected to queue"),
        }
    }

    #[test]
    fn admits_up_to_the_limit_then_queues_in_order() {
        let g = Gate::new(1, 10);
        let first = g.enter().unwrap().ok().unwrap();
        let mut t: Vec<Ticket> = (0..4).map(|_| ticket(&g)).collect();
        assert_eq!(t.iter().map(Ticket::position).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!(t[1].try_admit().is_none(), "not first in line");
        assert!(t[0].try_admit().is_none(), "no free slot");
        drop(first);
        let p = t[0].try_admit().expect("first in line, slot free");
        assert_eq!(t[1..].iter().map(Ticket::position).collect::<Vec<_>>(), [1, 2, 3]);
        drop(p);
        assert_eq!(g.depth(), 3);
    }

    #[test]
    fn a_ticket_that_leaves_frees_its_place() {
        let g = Gate::new(1, 10);
        let busy = g.enter().unwrap().ok().unwrap();
        let a = ticket(&g);
        let b = ticket(&g);
        let mut c = ticket(&g);
        drop(b);
        assert_eq!(c.position(), 2);
        drop(a);
        assert_eq!(c.position(), 1);
        drop(busy);
        let _slot = c.try_admit().expect("first in line, slot free");
        assert_eq!(g.depth(), 0);
        assert!(g.enter().unwrap().is_err(), "the admitted ticket holds the only slot");
    }

    #[test]
    fn a_full_queue_refuses() {
        let g = Gate::new(1, 2);
        let _busy = g.enter().unwrap().ok().unwrap();
        let _a = ticket(&g);
        let _b = ticket(&g);
        assert!(g.enter().is_err());
    }

    #[tokio::test]
    async fn waiters_hear_about_changes() {
        let g = Gate::new(1, 10);
        let busy = g.enter().unwrap().ok().unwrap();
        let mut t = ticket(&g);
        let waiter = tokio::spawn(async move {
            loop {
                if let Some(p) = t.try_admit() {
                    return p;
                }
                t.changed().await;
            }
        });
        tokio::task::yield_now().await;
        drop(busy);
        let _p = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    }
}
