#![no_main]

#[path = "../checks/device_auth.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::device_auth(data));
