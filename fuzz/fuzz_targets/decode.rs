//! Arbitrary bytes → open, then verify and decode every tensor (with and without CRC checks,
//! so that damaged section contents reach the decoder). Output is allocated only for tensors
//! within a budget of elements, checked before allocating.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdq::format::{Encoding, SdqFile};

/// Largest tensor decoded (elements); larger ones are only verified.
const MAX_ELEMENTS: u64 = 1 << 22;
/// Largest total work (codes unpacked and synthesised) spent on one input.
const MAX_WORK: u64 = 1 << 24;

fn work(f: &SdqFile, t: &sdq::format::TensorInfo) -> u64 {
    let q = match &t.encoding {
        Encoding::SigmaDelta(q) => q,
        Encoding::BiasOf { weight } => match f.tensors().get(*weight).map(|w| &w.encoding) {
            Some(Encoding::SigmaDelta(q)) => q,
            _ => return t.elements,
        },
        Encoding::Raw { .. } => return t.elements,
    };
    // One FFT of length N per vector: about N·log2(N) per vector.
    let n = q.n();
    let log = 64 - n.leading_zeros() as u64;
    q.vector_count()
        .saturating_mul(n.saturating_mul(log))
        .max(t.elements)
}

fn run(mut f: SdqFile, checked: bool) {
    f.set_verify_checksums(checked);
    let verified = f.verify_all().is_ok();
    let mut budget = MAX_WORK;
    let names: Vec<(String, u64, u64)> = f
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), t.elements, work(&f, t)))
        .collect();
    for (name, elements, cost) in names {
        let _ = f.verify(&name);
        if elements > MAX_ELEMENTS || cost > budget {
            continue;
        }
        budget -= cost;
        let mut out = vec![0f32; elements as usize];
        let r = f.decode_into(&name, &mut out);
        if checked && verified {
            // A file that verifies decodes.
            r.expect("a verified file decodes");
        }
        // The wrong buffer length is refused, never written past.
        let mut short = vec![0f32; (elements as usize).saturating_sub(1)];
        if elements > 0 {
            assert!(f.decode_into(&name, &mut short).is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = SdqFile::from_bytes(data.to_vec()) {
        run(f, true);
    }
    if let Ok(f) = SdqFile::from_bytes(data.to_vec()) {
        run(f, false);
    }
});
