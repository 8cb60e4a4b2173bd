#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use capf_ipmode as ipmode;
pub use capf_lsc as lsc;
pub use capf_trust as trust;
pub use capf_wire as wire;
