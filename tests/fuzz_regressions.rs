//! Replays every fuzz regression (tests/regressions/<target>/) and every seed
//! (fuzz/seeds/<target>/) through the fuzz targets' own checks (fuzz/harness.rs), so that a
//! crash found once stays fixed under plain `cargo test`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for dir in [root.join("tests/regressions"), root.join("fuzz/seeds")] {
        if let Ok(it) = std::fs::read_dir(dir.join(target)) {
            v.extend(
                it.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md")),
            );
        }
    }
    v.sort();
    v
}

fn replay(target: &str, check: impl Fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no inputs for {target}");
    let mut failed = Vec::new();
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        if std::panic::catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
            failed.push(p.display().to_string());
        }
    }
    println!("{target}: {} inputs replayed", files.len());
    assert!(failed.is_empty(), "{target}: failing inputs {failed:#?}");
}

#[test]
fn open() {
    replay("open", harness::open);
}

#[test]
fn decode() {
    replay("decode", harness::decode);
}

#[test]
fn roundtrip() {
    replay("roundtrip", harness::roundtrip);
}

#[test]
fn pack_input() {
    let dir = tempfile::tempdir().unwrap();
    replay("pack_input", |b| harness::pack_input(b, dir.path()));
}
