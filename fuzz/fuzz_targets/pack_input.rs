//! Arbitrary bytes as a safetensors checkpoint → `sdq pack`'s library path (Checkpoint::open,
//! bridge::pack::pack) → the packed file must open, verify, unpack, and meet every certified
//! bound against the original (bridge::verify::verify_against).
//!
//! Input layout: byte 0 selects the pack options, the rest is the file. The checkpoint API
//! takes a path, so the bytes are written to a per-process scratch directory (on /dev/shm when
//! it exists, so the writer's fsyncs cost nothing).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sdq::bridge::pack::{self, DeltaChoice, FrameRule, PackOptions};
use sdq::bridge::safetensors::Checkpoint;
use sdq::bridge::{unpack, verify, NoProgress};
use sdq::{Orientation, SdqFile};

/// Largest number of elements quantized per input (quantizing is the expensive part).
const MAX_QUANTIZED_ELEMENTS: u64 = 1 << 16;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("sdq-fuzz-pack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

fn options(b: u8) -> PackOptions {
    PackOptions {
        frame: match b & 3 {
            0 => FrameRule::BitsPerWeight(4.0),
            1 => FrameRule::Redundancy(1.5),
            2 => FrameRule::FrameSize(64),
            _ => FrameRule::BitsPerWeight(2.0),
        },
        levels: if b & 4 != 0 { 3 } else { 1 },
        delta: match (b >> 3) & 3 {
            0 => DeltaChoice::Coefficient,
            1 => DeltaChoice::Tensor,
            2 => DeltaChoice::Uniform,
            _ => DeltaChoice::Value(0.25),
        },
        orientation: if b & 32 != 0 {
            Orientation::Rows
        } else {
            Orientation::Columns
        },
        bias: b & 64 != 0,
        min_dim: 1,
        zstd: (b & 128 != 0).then_some(3),
        ..PackOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&opt, file)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let input = dir.join("in.safetensors");
    let output = dir.join("out.sdq");
    let _ = std::fs::remove_file(&output);
    std::fs::write(&input, file).expect("write scratch input");
    let Ok(ck) = Checkpoint::open(&input) else {
        return;
    };
    let quantizable: u64 = ck
        .tensors()
        .iter()
        .filter(|t| t.dtype.is_quantizable_float() && t.shape.len() >= 2)
        .map(|t| t.elements)
        .fold(0u64, u64::saturating_add);
    if quantizable > MAX_QUANTIZED_ELEMENTS {
        return;
    }
    let opts = options(opt);
    let Ok(_summary) = pack::pack(&ck, &output, &opts, &mut NoProgress) else {
        return;
    };
    let f = SdqFile::open(&output).expect("a packed file opens");
    f.verify_all().expect("a packed file verifies");
    let report = verify::verify_against(&f, &output, &ck, &mut NoProgress)
        .expect("verify against the original runs");
    assert!(
        report.ok(),
        "packed file breaks a bound or differs: {report:?}"
    );
    unpack::unpack_to(
        &f,
        Vec::new(),
        &output,
        &[],
        unpack::OutDtype::F32,
        &mut NoProgress,
    )
    .expect("a packed file unpacks");
    // No temporary file left beside the output.
    for e in std::fs::read_dir(dir).expect("list scratch").flatten() {
        let name = e.file_name();
        assert!(
            !name.to_string_lossy().ends_with(".tmp"),
            "temporary file left: {name:?}"
        );
    }
});
