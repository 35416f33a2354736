//! Fuzz target `decode`: see `harness::decode` (fuzz/harness.rs) for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode(data));
