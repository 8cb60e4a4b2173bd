#![no_main]

#[path = "../checks/lsc.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::pkcs10(data));
