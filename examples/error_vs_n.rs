//! Quantizes a random 300×784 matrix (784 column vectors of d = 300, Gaussian entries with
//! standard deviation 1/√784 like a freshly initialised layer) with harmonic(N, 300), K = 1, for
//! N = 1000…7000, and prints the measured error of every vector against its Theorem 3.1 bound.
//!
//! Run: `cargo run --release --example error_vs_n`

use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, StepPolicy};

fn gaussian(seed: u64, len: usize, std: f64) -> Vec<f32> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| {
            let (u1, u2) = (next().max(1e-300), next());
            (std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

fn main() -> sdq::Result<()> {
    let (rows, cols) = (300, 784);
    let w = gaussian(2024, rows * cols, 1.0 / (cols as f64).sqrt());
    let matrix = Matrix::new(&w, rows, cols)?;
    println!("W: {rows}x{cols} Gaussian (std 1/sqrt(784)), columns quantized (d = {rows}, m = {cols}), K = 1");
    println!(
        "{:>11} {:>5} {:>7} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "delta", "N", "bits/w", "mean err", "max err", "bound", "max e/b", "certified"
    );
    for policy in [StepPolicy::Tensor, StepPolicy::Coefficient] {
        for n in (1000..=7000).step_by(1000) {
            let q = FrameQuantizer::new(FrameDescriptor::harmonic(n, rows)?, 1, policy)?
                .quantize(&matrix, Orientation::Columns)?;
            let errors = q.measured_errors(&matrix)?;
            let mean = errors.iter().sum::<f64>() / errors.len() as f64;
            let max = errors.iter().copied().fold(0.0, f64::max);
            let worst_ratio = errors
                .iter()
                .enumerate()
                .map(|(j, e)| q.bound(j).map_or(f64::INFINITY, |b| e / b))
                .fold(0.0, f64::max);
            let certified = errors.len() - q.uncertified_count();
            println!(
                "{:>11} {:>5} {:>7.2} {:>10.5} {:>10.5} {:>10.4} {:>10.5} {:>5}/{}",
                policy.name(),
                n,
                n as f64 / rows as f64,
                mean,
                max,
                q.max_bound(),
                worst_ratio,
                certified,
                errors.len()
            );
        }
    }
    println!(
        "(for scale: the mean column norm is about {:.3})",
        (rows as f64 / cols as f64).sqrt()
    );
    Ok(())
}
