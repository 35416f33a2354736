//! Fuzz target `roundtrip`: see `harness::roundtrip` (fuzz/harness.rs) for what it checks.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::roundtrip(data));
