//! Decoding and the compressed-domain product do not depend on the number of threads: a 1-thread
//! pool and the default pool give bit-identical results (every orientation, with and without a
//! bias, 1-bit and 2-bit codes, identity and explicit orderings). Quantizing: tests/core_props.rs.
#![cfg(feature = "parallel")]

use sdq::format::{DeltaPolicy, Dtype, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation, StepPolicy};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * 0.1
        })
        .collect()
}

/// An in-memory file holding the weight "w" (rows × cols) and, if `bias`, its bias "b".
fn file(
    rows: usize,
    cols: usize,
    n: usize,
    k: u32,
    orientation: Orientation,
    bias: bool,
    permuted: bool,
) -> SdqFile {
    let w = values(rows * cols, (rows * 7 + cols) as u64);
    let b = values(rows, 3);
    let mut m = Matrix::new(&w, rows, cols).unwrap();
    if bias {
        m = m.with_bias(&b).unwrap();
    }
    let d = m.layout(orientation).vector_len();
    let mut fq = FrameQuantizer::new(
        FrameDescriptor::harmonic(n, d).unwrap(),
        k,
        StepPolicy::Coefficient,
    )
    .unwrap();
    if permuted {
        let order: Vec<u32> = (0..n as u32).rev().collect();
        fq = fq
            .with_order(Permutation::explicit(order, n).unwrap())
            .unwrap();
    }
    let q = fq.quantize(&m, orientation).unwrap();
    let mut plan = vec![TensorPlan::sigma_delta(
        "w",
        Dtype::F32,
        &[rows as u64, cols as u64],
        bias,
    )];
    if bias {
        plan.push(TensorPlan::bias_of("b", Dtype::F32, rows as u64, "w"));
    }
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
        .unwrap();
    SdqFile::from_bytes(wr.finish().unwrap().into_inner()).unwrap()
}

fn cases() -> Vec<SdqFile> {
    let mut v = Vec::new();
    for orientation in [Orientation::Columns, Orientation::Rows] {
        for bias in [false, true] {
            for (k, permuted) in [(1, false), (2, true)] {
                // ≥ 256 vectors either way, and a columns tensor wider than one decode block.
                v.push(file(300, 260, 700, k, orientation, bias, permuted));
            }
        }
    }
    v.push(file(17, 40_000, 40, 1, Orientation::Columns, true, false));
    v
}

#[test]
fn decode_is_thread_count_independent() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for f in cases() {
        for name in f.tensors().iter().map(|t| t.name.clone()) {
            let many = f.decode(&name).unwrap();
            let one = pool.install(|| f.decode(&name).unwrap());
            assert!(
                many.iter()
                    .map(|x| x.to_bits())
                    .eq(one.iter().map(|x| x.to_bits())),
                "{name} differs between 1 thread and {}",
                rayon::current_num_threads()
            );
        }
    }
}

#[test]
fn matvec_is_thread_count_independent() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for f in cases() {
        let t = f.tensor("w").unwrap();
        let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
        for batch in [1, 3] {
            let x = values(batch * cols, 11);
            let mut many = vec![0f32; batch * rows];
            let mut one = vec![0f32; batch * rows];
            f.matvec_batch("w", &x, batch, &mut many).unwrap();
            pool.install(|| f.matvec_batch("w", &x, batch, &mut one).unwrap());
            assert!(many
                .iter()
                .map(|x| x.to_bits())
                .eq(one.iter().map(|x| x.to_bits())));
        }
    }
}
