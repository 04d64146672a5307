//! How bytes reach an upstream: pooled HTTP(S) over TCP or through a zrok access.

pub mod http;
pub mod zrok;
