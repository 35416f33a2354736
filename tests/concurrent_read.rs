//! `SdqFile` is `Send + Sync`, and decoding from many threads at once — the same tensor and
//! different ones, from one mapped file — gives bit-identical results to one thread.

use std::sync::{Arc, Barrier};

use sdq::format::{DeltaPolicy, Dtype, SdqFile, SdqWriter, TensorPlan};
use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation, StepPolicy};

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SdqFile>();
};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) % 8192) as f32 / 4096.0 - 1.0
        })
        .collect()
}

/// Six tensors of different kinds: sigma-delta (tensor δ, per-vector δ, permuted, rows, with
/// bias), the bias, and a raw one; some sections zstd-compressed.
fn write_file(path: &std::path::Path) -> Vec<String> {
    let mut plan = Vec::new();
    let mut quantized = Vec::new();
    let cases: [(usize, usize, usize, u32, StepPolicy, Orientation, bool); 4] = [
        (
            64,
            40,
            256,
            1,
            StepPolicy::Tensor,
            Orientation::Columns,
            false,
        ),
        (
            48,
            30,
            200,
            4,
            StepPolicy::Coefficient,
            Orientation::Columns,
            true,
        ),
        (20, 33, 120, 3, StepPolicy::Vector, Orientation::Rows, false),
        (
            96,
            16,
            400,
            2,
            StepPolicy::Coefficient,
            Orientation::Columns,
            false,
        ),
    ];
    for (i, &(rows, cols, n, k, policy, o, bias)) in cases.iter().enumerate() {
        let w = values(rows * cols, i as u64 + 1);
        let b = values(rows, i as u64 + 100);
        let mut m = Matrix::new(&w, rows, cols).unwrap();
        if bias {
            m = m.with_bias(&b).unwrap();
        }
        let d = match o {
            Orientation::Columns => rows,
            Orientation::Rows => cols + usize::from(bias),
        };
        let mut fq =
            FrameQuantizer::new(FrameDescriptor::harmonic(n, d).unwrap(), k, policy).unwrap();
        if i == 3 {
            let order: Vec<u32> = (0..n as u32).map(|x| (x * 7) % n as u32).collect();
            fq = fq
                .with_order(Permutation::explicit(order, n).unwrap())
                .unwrap();
        }
        let q = fq.quantize(&m, o).unwrap();
        let name = format!("t{i}.weight");
        plan.push(TensorPlan::sigma_delta(
            &name,
            Dtype::F32,
            &[rows as u64, cols as u64],
            bias,
        ));
        if bias {
            plan.push(TensorPlan::bias_of(
                format!("t{i}.bias"),
                Dtype::F32,
                rows as u64,
                &name,
            ));
        }
        quantized.push((name, q, DeltaPolicy::from_step(policy)));
    }
    plan.push(TensorPlan::raw("raw", Dtype::F16, &[1000]));
    let mut w = SdqWriter::create(path, &plan, &[]).unwrap();
    w.set_zstd(Some(3)).unwrap();
    for (name, q, p) in &quantized {
        w.write_quantized(name, q, *p).unwrap();
    }
    let raw: Vec<u8> = (0..2000u32).map(|i| (i % 61) as u8).collect();
    w.write_raw("raw", &raw).unwrap();
    w.finish().unwrap();
    plan.iter().map(|p| p.name.clone()).collect()
}

#[test]
fn eight_threads_decode_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sdq");
    let names = write_file(&path);
    let file = Arc::new(SdqFile::open(&path).unwrap());
    file.verify_all().unwrap();
    // One thread: the reference.
    let reference: Vec<Vec<u32>> = names
        .iter()
        .map(|n| {
            file.decode(n)
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        })
        .collect();
    let reference = Arc::new(reference);
    let names = Arc::new(names);
    let threads = 8;
    let rounds = 25;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (file, names, reference, barrier) = (
                Arc::clone(&file),
                Arc::clone(&names),
                Arc::clone(&reference),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                let mut decoded = 0usize;
                for r in 0..rounds {
                    // Even threads all hammer the same tensor per round; odd threads walk the
                    // tensors at different offsets.
                    let i = if t % 2 == 0 {
                        r % names.len()
                    } else {
                        (r + t) % names.len()
                    };
                    let got = file.decode(&names[i]).unwrap();
                    assert!(
                        got.iter()
                            .map(|x| x.to_bits())
                            .eq(reference[i].iter().copied()),
                        "thread {t}, round {r}: {} differs from the single-thread decode",
                        names[i]
                    );
                    file.verify(&names[i]).unwrap();
                    decoded += got.len();
                }
                decoded
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    println!(
        "{threads} threads x {rounds} rounds over {} tensors: {total} values decoded, all bit-identical",
        names.len()
    );
}

#[test]
fn buffer_and_read_sources_agree_under_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sdq");
    let names = write_file(&path);
    let mapped = SdqFile::open(&path).unwrap();
    let read = Arc::new(SdqFile::open_read(&path).unwrap());
    let bytes = Arc::new(SdqFile::from_bytes(std::fs::read(&path).unwrap()).unwrap());
    let want: Vec<Vec<f32>> = names.iter().map(|n| mapped.decode(n).unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (read, bytes, names, want) = (&read, &bytes, &names, &want);
            s.spawn(move || {
                for (i, n) in names.iter().enumerate().skip(t % 3) {
                    let src: &SdqFile = if t % 2 == 0 { read } else { bytes };
                    let got = src.decode(n).unwrap();
                    assert!(got
                        .iter()
                        .zip(&want[i])
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            });
        }
    });
}
