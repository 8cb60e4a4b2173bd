//! capf-wire's integration tests, in one binary: the shared vectors, properties, allocation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod no_alloc;
mod properties;
mod vectors;
