//! OpenAI's Responses API (`POST /v1/responses`) as a client dialect served by a Chat
//! Completions upstream, statelessly: the client resends the whole conversation in `input`
//! (Codex does, with `store: false`); anything that needs server-side state is refused.
//!
//! - `request`: Responses request → Chat request.
//! - `response`: `chat.completion` → Response object, and what a Response repeats from the
//!   request (`Echo`).
//! - `stream`: Chat SSE → Responses SSE events.
//!
//! Chat errors are already shaped `{"error":{…}}`, as Responses errors are: they pass as is.

pub mod request;
pub mod response;
pub mod stream;
