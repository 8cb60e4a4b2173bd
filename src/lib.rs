#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use capf_admin as admin;
pub use capf_ca as ca;
pub use capf_ipmode as ipmode;
pub use capf_lsc as lsc;
pub use capf_phone as phone;
pub use capf_server as server;
pub use capf_session as session;
pub use capf_store as store;
pub use capf_trust as trust;
pub use capf_wire as wire;
