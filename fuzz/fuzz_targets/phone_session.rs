#![no_main]

#[path = "../checks/session.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::phone(data));
