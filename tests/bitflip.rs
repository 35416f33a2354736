//! Every single-byte change to a valid file is detected (spec §2: every byte is in the preamble,
//! the header, a section or zero padding, each covered by a CRC or a validation rule; version 1
//! declares no ignored bytes). For each fixture, each byte is changed in turn by three masks
//! (low bit, high bit, all bits); the change must be refused by `open` or by `verify_all`. The
//! table of which rule caught how many changes is printed (`cargo test --test bitflip --
//! --nocapture`), and no change may be accepted — in particular none with different output.

use std::collections::BTreeMap;

use sdq::{Error, SdqFile};

const MASKS: [u8; 3] = [0x01, 0x80, 0xFF];

/// The spec rule an error names ("R10", …; R52 for a section CRC).
fn rule(e: &Error) -> String {
    match e {
        Error::Format(f) => f.to_string().split(':').next().unwrap_or("?").to_string(),
        Error::Checksum { .. } => "R52".to_string(),
        other => format!("other: {other}"),
    }
}

fn decode_all(f: &SdqFile) -> Vec<Vec<u32>> {
    f.tensors()
        .iter()
        .map(|t| {
            f.decode(&t.name)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        })
        .collect()
}

#[derive(Default)]
struct Table {
    on_open: BTreeMap<String, usize>,
    on_verify: BTreeMap<String, usize>,
    accepted_same: Vec<(usize, u8)>,
    accepted_different: Vec<(usize, u8)>,
}

fn flips(fixture: &str) -> Table {
    let path = format!("{}/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let good = std::fs::read(&path).unwrap();
    let original = decode_all(&SdqFile::from_bytes(good.clone()).unwrap());
    let mut t = Table::default();
    for at in 0..good.len() {
        for mask in MASKS {
            let mut bytes = good.clone();
            bytes[at] ^= mask;
            match SdqFile::from_bytes(bytes) {
                Err(e) => *t.on_open.entry(rule(&e)).or_default() += 1,
                Ok(f) => match f.verify_all() {
                    Err(e) => *t.on_verify.entry(rule(&e)).or_default() += 1,
                    Ok(()) => {
                        if decode_all(&f) == original {
                            t.accepted_same.push((at, mask));
                        } else {
                            t.accepted_different.push((at, mask));
                        }
                    }
                },
            }
        }
    }
    let total = good.len() * MASKS.len();
    println!(
        "\n{fixture}: {} bytes x {} masks = {total} changed files",
        good.len(),
        MASKS.len()
    );
    println!("  {:<28} {:>6}", "caught on open by", "count");
    for (r, n) in &t.on_open {
        println!("  {r:<28} {n:>6}");
    }
    println!("  {:<28} {:>6}", "caught by verify_all by", "");
    for (r, n) in &t.on_verify {
        println!("  {r:<28} {n:>6}");
    }
    println!(
        "  {:<28} {:>6}\n  {:<28} {:>6}",
        "accepted, same output",
        t.accepted_same.len(),
        "accepted, different output",
        t.accepted_different.len()
    );
    let caught: usize = t.on_open.values().chain(t.on_verify.values()).sum();
    assert_eq!(
        caught + t.accepted_same.len() + t.accepted_different.len(),
        total
    );
    t
}

fn check(fixture: &str) {
    let t = flips(fixture);
    assert!(
        t.accepted_different.is_empty(),
        "{fixture}: changes silently accepted with different output at (offset, mask) {:?}",
        t.accepted_different
    );
    // Version 1 declares no ignored bytes, so nothing may be accepted at all.
    assert!(
        t.accepted_same.is_empty(),
        "{fixture}: changes accepted (same output) at (offset, mask) {:?}",
        t.accepted_same
    );
}

#[test]
fn worked_example_every_byte() {
    check("worked_example.sdq");
}

#[test]
fn mixed_every_byte() {
    check("mixed.sdq");
}

#[test]
fn k4_vector_delta_every_byte() {
    check("k4_vector_delta.sdq");
}
