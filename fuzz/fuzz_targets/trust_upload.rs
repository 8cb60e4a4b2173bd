#![no_main]

#[path = "../checks/trust.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::upload(data));
