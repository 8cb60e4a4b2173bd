#![no_main]

// The other role's half of the check is unused here.
#[allow(dead_code)]
#[path = "../checks/session.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::phone(data));
