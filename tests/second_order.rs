//! Second-order ΣΔ (issue: beyond the paper, item 1): the state stays bounded under the stated
//! condition, every vector is within its certified bound, and σ₂ matches a direct computation.

use proptest::prelude::*;
use sdq::quant::second_order;
use sdq::{Alphabet, HarmonicFrame, Permutation};

fn values(seed: u64, len: usize) -> Vec<f64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn shuffled(seed: u64, n: usize) -> Permutation {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let r = values(seed, n);
    for i in (1..n).rev() {
        let j = (((r[i] + 1.0) / 2.0) * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    Permutation::explicit(order, n).unwrap()
}

/// Quantizes `w` with second-order ΣΔ at the smallest certified δ; returns (error, bound, max |u|, δ).
fn run(frame: &HarmonicFrame, order: &Permutation, k: u32, w: &[f64]) -> (f64, f64, f64, f64) {
    let (n, d) = (frame.frame_size(), frame.dim());
    let mut ws = frame.workspace();
    let mut x = vec![0.0; n];
    frame.analyse(w, &mut x, &mut ws).unwrap();
    let a = Alphabet::new(k).unwrap();
    let max_coeff = x.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    let delta = second_order::smallest_delta(max_coeff, a).unwrap();
    let mut codes = vec![0u16; n];
    let max_u = second_order::quantize(&x, order, a, delta, &mut codes);
    // Rebuild: scatter levels to frame positions, synthesise with scale δ·d/N.
    let mut levels = vec![0.0; n];
    for (step, &c) in codes.iter().enumerate() {
        levels[order.position(step)] = a.level(c);
    }
    let mut rebuilt = vec![0.0; d];
    frame
        .synthesise(&levels, delta * d as f64 / n as f64, &mut rebuilt, &mut ws)
        .unwrap();
    let err = w
        .iter()
        .zip(&rebuilt)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let (sigma2, tail) = order.variation2(frame, &mut ws).unwrap();
    (
        err,
        second_order::vector_bound(delta, d, n, sigma2, tail),
        max_u,
        delta,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn state_bounded_and_error_within_bound(d in 1usize..48, extra in 1usize..400, k in 2u32..8,
                                            seed in any::<u64>(), permute in any::<bool>()) {
        let n = d + extra;
        let frame = HarmonicFrame::new(n, d).unwrap();
        let order = if permute { shuffled(seed, n) } else { Permutation::Identity };
        let w = values(seed ^ 5, d);
        let (err, bound, max_u, delta) = run(&frame, &order, k, &w);
        prop_assert!(max_u <= 0.5 * delta * (1.0 + 1e-9), "max |u| {max_u} > δ/2 = {}", delta / 2.0);
        prop_assert!(err <= bound * (1.0 + 1e-6), "error {err} > bound {bound}");
    }

    #[test]
    fn second_variation_matches_direct_sum(d in 1usize..16, extra in 2usize..40, seed in any::<u64>(),
                                           permute in any::<bool>()) {
        let n = d + extra;
        let frame = HarmonicFrame::new(n, d).unwrap();
        let mut ws = frame.workspace();
        let order = if permute { shuffled(seed, n) } else { Permutation::Identity };
        let (sigma2, tail) = order.variation2(&frame, &mut ws).unwrap();
        let row = |k: usize| { let mut e = vec![0.0; d]; frame.row(order.position(k) + 1, &mut e).unwrap(); e };
        let mut direct = 0.0;
        for k in 0..n - 2 {
            let (a, b, c) = (row(k), row(k + 1), row(k + 2));
            direct += a.iter().zip(&b).zip(&c).map(|((a, b), c)| (a - 2.0 * b + c).powi(2)).sum::<f64>().sqrt();
        }
        let (a, b) = (row(n - 2), row(n - 1));
        let direct_tail = a.iter().zip(&b).map(|(a, b)| (a - 2.0 * b).powi(2)).sum::<f64>().sqrt();
        prop_assert!((sigma2 - direct).abs() < 1e-7 * (1.0 + direct), "{sigma2} vs {direct}");
        prop_assert!((tail - direct_tail).abs() < 1e-9 * (1.0 + direct_tail));
    }
}

#[test]
fn one_bit_second_order_is_refused() {
    assert!(second_order::stable_amplitude(Alphabet::new(1).unwrap()).is_err());
    assert!(second_order::smallest_delta(1.0, Alphabet::new(1).unwrap()).is_err());
    assert_eq!(
        second_order::stable_amplitude(Alphabet::new(2).unwrap()).unwrap(),
        0.5
    );
}
