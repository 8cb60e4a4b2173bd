//! capf-session's integration tests, in one binary: the recorded sessions of the shared vectors
//! replayed byte-exact through both roles, an in-memory server/phone pair on simulated time for
//! every flow, the malformed vectors, and properties over arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "capf_session/csr.rs"]
mod csr;
#[path = "capf_session/flows.rs"]
mod flows;
#[path = "capf_session/harness.rs"]
mod harness;
#[path = "capf_session/malformed.rs"]
mod malformed;
#[path = "capf_session/properties.rs"]
mod properties;
#[path = "capf_session/recorded.rs"]
mod recorded;
#[path = "capf_session/vectors.rs"]
mod vectors;
