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

/// Open findings (fuzz/known_issues/<target>/): each must still fail its target's checks. When a
/// fix makes one pass, this test fails: move the file to tests/regressions/<target>/ (where
/// `pack_input` above replays it) and update fuzz/known_issues/README.md and SECURITY.md.
#[test]
fn known_issues_still_fail() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/known_issues/pack_input");
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    // None open with an input at the moment (fuzz/known_issues/README.md).
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        let r =
            std::panic::catch_unwind(AssertUnwindSafe(|| harness::pack_input(&bytes, dir.path())));
        let Err(payload) = r else {
            panic!(
                "{} now passes the pack_input checks: the bug is fixed, move it to \
                 tests/regressions/pack_input/",
                p.display()
            );
        };
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        // uncertified_tiny_weights: the packed file declares 0 uncertified vectors, but
        // `verify_against` finds 3.
        assert!(
            msg.contains("vectors are not certified, the file declares"),
            "{} fails differently now: {msg}",
            p.display()
        );
    }
}
