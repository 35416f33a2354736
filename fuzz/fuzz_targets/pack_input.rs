//! Fuzz target `pack_input`: see `harness::pack_input` (fuzz/harness.rs) for what it checks.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "../harness.rs"]
mod harness;

static DIR: OnceLock<PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::pack_input(data, DIR.get_or_init(harness::scratch_dir))
});
