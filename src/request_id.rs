//! Request ids: the client's `x-request-id` when it is usable (1 to 128 visible ASCII
//! characters), else a new one (32 hex digits). It goes back on every response
//! (`x-request-id`), into the access log line (`request_id`), into every error body the
//! gateway makes (see [`crate::error::ApiError::body_in`]) and to the upstream.
//!
//! Error bodies are made in many places (the pipeline, the queue, the relay while a stream is
//! being written), so the id is a task-local: [`scope`] sets it around a request's future, and
//! [`Scoped`] sets it again around each poll of a response body, which hyper polls outside the
//! request's future.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, SizeHint};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest client id kept.
pub const MAX_LEN: usize = 128;

/// An id, held as the header value it goes out as: putting it on the response and on the
/// upstream request takes a reference, not a copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    pub fn header(&self) -> &HeaderValue {
        &self.0
    }

    /// Always the whole id: it is made of visible ASCII only.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// A fixed id (tests).
    #[cfg(test)]
    pub fn fixed(id: &'static str) -> Self {
        Self(HeaderValue::from_static(id))
    }
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The client's id when it is usable, else a new one.
pub fn from_headers(headers: &HeaderMap) -> RequestId {
    match headers.get(HEADER).map(HeaderValue::as_bytes) {
        Some(id) if usable(id) => HeaderValue::from_bytes(id).map_or_else(|_| generate(), RequestId),
        _ => generate(),
    }
}

/// 1 to [`MAX_LEN`] visible ASCII characters (no space, no control character): safe in a log
/// line, a header and a JSON string.
pub fn usable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

thread_local! {
    /// A random key per thread and a counter: ids are 128 bits, unique per thread (the mix
    /// is a bijection of the counter) and unpredictable across threads and processes,
    /// without a system call per request.
    static NEXT: Cell<(u64, u64, u64)> = Cell::new(seed());
}

fn seed() -> (u64, u64, u64) {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: time and thread still make ids distinct enough for logs.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes[..16].copy_from_slice(&now.as_nanos().to_le_bytes());
    }
    let (a, b) = bytes.split_at(8);
    let key = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
    (key(a), key(b), 0)
}

/// splitmix64's finaliser: a bijection on u64 that mixes every bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A new id: 32 lowercase hex digits.
pub fn generate() -> RequestId {
    // One allocation, holding the digits and a reference count (a `Bytes` made from a `Vec`
    // would allocate again at its first clone). Hex digits are always a valid header value.
    let value = HeaderValue::from_maybe_shared(Bytes::from_owner(hex_digits()));
    RequestId(value.unwrap_or_else(|_| HeaderValue::from_static("0")))
}

/// [`hex_digits`] as a string.
pub fn unique_hex() -> String {
    String::from_utf8_lossy(&hex_digits()).into_owned()
}

/// 32 hex digits that do not repeat within the process and differ between processes (a
/// per-thread random key and a counter, mixed; no system call per id). Distinct, not secret.
fn hex_digits() -> [u8; 32] {
    let (a, b, n) = NEXT.with(|c| {
        let (a, b, n) = c.get();
        c.set((a, b, n.wrapping_add(1)));
        (a, b, n)
    });
    let mut hex = [0u8; 32];
    for (half, digits) in [mix(a ^ n), mix(b.wrapping_add(n))].into_iter().zip(hex.chunks_mut(16)) {
        for (shift, digit) in (0..16).rev().zip(digits) {
            *digit = b"0123456789abcdef"[(half >> (4 * shift) & 0xf) as usize];
        }
    }
    hex
}

/// The id of the request being handled, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(RequestId::clone).ok()
}

/// Runs `fut` with `id` as the current request id.
pub fn scope<F: Future>(id: RequestId, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, fut)
}

/// A response body polled with its request's id current (errors a relay writes into a
/// stream carry it).
pub struct Scoped<B> {
    inner: B,
    id: RequestId,
}

impl<B> Scoped<B> {
    pub fn new(inner: B, id: RequestId) -> Self {
        Self { inner, id }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Scoped<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let id = self.id.clone();
        CURRENT.sync_scope(id, || Pin::new(&mut self.inner).poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_safe() {
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(HEADER, HeaderValue::from_bytes(v).unwrap());
            from_headers(&h)
        };
        assert_eq!(with(b"req-123_abc").as_str(), "req-123_abc");
        assert_eq!(with(&[b'a'; MAX_LEN]).as_str(), "a".repeat(MAX_LEN));
        for bad in [&b"two words"[..], &[b'a'; MAX_LEN + 1], b"caf\xc3\xa9", b"tab\there"] {
            let id = with(bad);
            assert_eq!(id.as_str().len(), 32, "{bad:?} is replaced");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.as_str().len() == 32 && id.as_str().bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[tokio::test]
    async fn the_id_is_current_inside_its_scope_only() {
        assert_eq!(current(), None);
        let id = RequestId::fixed("r1");
        assert_eq!(scope(id.clone(), async { current() }).await, Some(id));
    }
}
