//! Measurement (not a check): how well zstd compresses packed 1-bit code sections of a random
//! Gaussian 300×784 matrix in harmonic(2000, 300), for the tensor and coefficient δ policies.
//! Run with `cargo test --release --test format_zstd -- --ignored --nocapture`.

use sdq::format::bitpack;
use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, StepPolicy};

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (a, b) = (u(), u());
            ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
        })
        .collect()
}

#[test]
#[ignore = "measurement; prints numbers"]
#[cfg(feature = "zstd")]
fn zstd_on_one_bit_codes() {
    let (rows, cols, n) = (300, 784, 2000);
    let w = gaussian(rows * cols, 42);
    let m = Matrix::new(&w, rows, cols).unwrap();
    for orientation in [Orientation::Columns, Orientation::Rows] {
        let d = m.layout(orientation).vector_len();
        if n <= d {
            continue;
        }
        for policy in [StepPolicy::Tensor, StepPolicy::Coefficient] {
            let q = FrameQuantizer::new(FrameDescriptor::harmonic(n, d).unwrap(), 1, policy)
                .unwrap()
                .quantize(&m, orientation)
                .unwrap();
            let mut packed =
                vec![0u8; bitpack::packed_len(q.codes().len() as u64, 1).unwrap() as usize];
            bitpack::pack(q.codes(), 1, &mut packed).unwrap();
            let ones =
                q.codes().iter().filter(|&&c| c == 1).count() as f64 / q.codes().len() as f64;
            for level in [3, 19] {
                let c = zstd::bulk::compress(&packed, level).unwrap();
                println!(
                    "{:<7} d={d:<4} m={:<4} policy={:<11} level {level:>2}: {} -> {} bytes, ratio {:.2}x (fraction of 1 codes {ones:.3})",
                    orientation.name(),
                    q.layout().vector_count(),
                    policy.name(),
                    packed.len(),
                    c.len(),
                    packed.len() as f64 / c.len() as f64
                );
            }
        }
    }
}
