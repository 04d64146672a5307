//! How bytes reach an upstream: pooled HTTP(S) now; zrok accesses later.

pub mod http;
