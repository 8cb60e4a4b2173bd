#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod core;
mod error;
mod phone;
mod server;
mod types;

pub use capf_wire::KeyRequest;
pub use error::{Error, Outcome, State};
pub use phone::{PHONE_VERSION, PhoneConfig, PhoneEvent, PhoneSession};
pub use server::{
    DEFAULT_MAX_REQUESTS_IN_PROGRESS, MESSAGE_HEAD_LEN, SERVER_VERSION, ServerConfig, ServerEvent,
    ServerSession,
};
pub use types::{Authentication, Certificate, Decision, Timeouts};
