//! Spectral tetris frames and frame orderings (issue 8, items 2 and 3): construction, tightness,
//! sparse analysis/synthesis against the dense matrix, σ and σ₂ against direct dense sums, the
//! ordering heuristic (valid, never worse than the identity, a 2-opt local optimum), and
//! first-order ΣΔ through a tetris frame within the Theorem 3.1 bound.

use proptest::prelude::*;
use sdq::frame::ordering::{
    order_frame, path_variation, DenseVectors, FrameGeometry, HarmonicGeometry, OrderingOptions,
};
use sdq::frame::tetris::validate_tetris;
use sdq::frame::TetrisFrame;
use sdq::quant::bound::vector_bound;
use sdq::quant::second_order;
use sdq::quant::sigma_delta;
use sdq::quant::step::smallest_delta;
use sdq::{Alphabet, Error, HarmonicFrame, Permutation};

/// A deterministic generator of test values (SplitMix64 → uniform in [−1, 1)).
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

fn permutation(seed: u64, n: usize) -> Permutation {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let r = values(seed, n);
    for i in (1..n).rev() {
        let j = (((r[i] + 1.0) / 2.0) * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    Permutation::explicit(order, n).unwrap()
}

/// N from d and a ratio in [0, 1): N ∈ [2d, 2d + span·d], often non-integer redundancy.
fn size(d: usize, ratio: f64, span: usize) -> usize {
    2 * d + (ratio * (span * d) as f64) as usize
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Dense row of e_{pos+1}.
fn dense_row(f: &TetrisFrame, pos: usize) -> Vec<f64> {
    let mut e = vec![0.0; f.dim()];
    f.row(pos + 1, &mut e).unwrap();
    e
}

/// Direct dense σ(F, p), σ₂(F, p) and tail ‖f_{N−1} − 2f_N‖.
fn dense_variations(f: &TetrisFrame, p: &Permutation) -> (f64, f64, f64) {
    let n = f.frame_size();
    let rows: Vec<Vec<f64>> = (0..n).map(|k| dense_row(f, p.position(k))).collect();
    let comb = |terms: &[(f64, usize)]| {
        let mut v = vec![0.0; f.dim()];
        for &(c, k) in terms {
            for (o, x) in v.iter_mut().zip(&rows[k]) {
                *o += c * x;
            }
        }
        norm(&v)
    };
    let sigma = (1..n).map(|k| comb(&[(1.0, k - 1), (-1.0, k)])).sum();
    let sigma2 = (2..n)
        .map(|k| comb(&[(1.0, k - 2), (-2.0, k - 1), (1.0, k)]))
        .sum();
    let tail = comb(&[(1.0, n - 2), (-2.0, n - 1)]);
    (sigma, sigma2, tail)
}

/// Independent check that `p` is a 2-opt local optimum of the open path: no reversal of a
/// segment p[i..=j] (including prefixes and suffixes) shortens σ by more than `tol`.
fn assert_two_opt_optimal<G: FrameGeometry>(g: &G, p: &Permutation, tol: f64) {
    let n = g.frame_size();
    let o: Vec<usize> = (0..n).map(|k| p.position(k)).collect();
    for i in 0..n {
        for j in i + 1..n {
            // Reversing o[i..=j] replaces edges (o[i−1], o[i]) and (o[j], o[j+1]) by
            // (o[i−1], o[j]) and (o[i], o[j+1]); missing edges (at the ends) count 0.
            let before = if i > 0 {
                g.distance(o[i - 1], o[i])
            } else {
                0.0
            } + if j + 1 < n {
                g.distance(o[j], o[j + 1])
            } else {
                0.0
            };
            let after = if i > 0 {
                g.distance(o[i - 1], o[j])
            } else {
                0.0
            } + if j + 1 < n {
                g.distance(o[i], o[j + 1])
            } else {
                0.0
            };
            assert!(
                after >= before - tol,
                "reversing {i}..={j} gains {} (N = {n})",
                before - after
            );
        }
    }
}

#[test]
fn small_example_by_hand() {
    // tetris(5, 2): λ = 2.5: e1, e1, (½, √¾), (½, −√¾), e2.
    let f = TetrisFrame::new(5, 2).unwrap();
    let s = 0.75f64.sqrt();
    let want = [1.0, 0.0, 1.0, 0.0, 0.5, s, 0.5, -s, 0.0, 1.0];
    for (a, b) in f.dense().iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{a} vs {b}");
    }
    assert_eq!(f.block_count(), 1);
    // Integer redundancy: no blocks, N/d copies of each basis vector, σ = (d − 1)·√2.
    let f = TetrisFrame::new(12, 4).unwrap();
    assert_eq!(f.block_count(), 0);
    assert!((f.variation_identity() - 3.0 * 2f64.sqrt()).abs() < 1e-12);
    assert!(f.block_swapped_order().unwrap().is_identity());
}

#[test]
fn refuses_bad_sizes_with_typed_errors() {
    assert!(matches!(TetrisFrame::new(10, 0), Err(Error::Parameter(_))));
    for (n, d) in [(7, 4), (1, 1), (0, 3), (2047, 1024)] {
        assert!(
            matches!(TetrisFrame::new(n, d), Err(Error::Parameter(_))),
            "N = {n}, d = {d}"
        );
    }
    assert!(TetrisFrame::new(8, 4).is_ok());
    assert!(TetrisFrame::new(2, 1).is_ok());
    assert!(matches!(
        validate_tetris(1 << 30, 4),
        Err(Error::Limit {
            what: "frame size N",
            ..
        })
    ));
    assert!(matches!(
        validate_tetris(1 << 24, 1 << 23),
        Err(Error::Limit {
            what: "vector dimension d",
            ..
        })
    ));
    // Wrong buffer lengths are parameter errors, not panics.
    let f = TetrisFrame::new(9, 3).unwrap();
    let mut ws = f.workspace();
    let mut c = vec![0.0; 8];
    assert!(f.analyse(&[1.0, 2.0, 3.0], &mut c, &mut ws).is_err());
    let mut out = vec![0.0; 2];
    assert!(f.synthesise(&[0.0; 9], 1.0, &mut out, &mut ws).is_err());
    assert!(f.row(0, &mut [0.0; 3]).is_err());
    assert!(f.row(10, &mut [0.0; 3]).is_err());
    assert!(f.variation(&Permutation::Explicit(vec![0, 1])).is_err());
}

/// A large frame builds in O(N) and stays unit-norm (spot check, no dense matrix).
#[test]
fn large_frame_builds() {
    let (n, d) = (1 << 20, 100_003);
    let f = TetrisFrame::new(n, d).unwrap();
    assert_eq!(f.frame_size(), n);
    for pos in (0..n).step_by(997) {
        let v = f.vector(pos).unwrap();
        let nn: f64 = v.entries().map(|(_, x)| x * x).sum();
        assert!((nn - 1.0).abs() < 1e-12);
        assert!(v.entries().all(|(r, _)| r < d));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Unit norms (1e-12), at most two non-zeros per vector, tightness E·Eᵀ... i.e.
    /// S = Σ e_n e_nᵀ = (N/d)·I (1e-10), for integer and non-integer redundancy.
    #[test]
    fn unit_norm_tight_sparse(d in 1usize..40, ratio in 0.0f64..1.0) {
        let n = size(d, ratio, 6);
        let f = TetrisFrame::new(n, d).unwrap();
        let e = f.dense();
        let mut s = vec![0.0; d * d];
        for (pos, row) in e.chunks_exact(d).enumerate() {
            prop_assert!((norm(row) - 1.0).abs() < 1e-12, "vector {pos}");
            prop_assert!(row.iter().filter(|x| **x != 0.0).count() <= 2, "vector {pos}");
            let v = f.vector(pos).unwrap();
            prop_assert!(v.len <= 2);
            for a in 0..d { for b in 0..d { s[a * d + b] += row[a] * row[b]; } }
        }
        let lambda = n as f64 / d as f64;
        for a in 0..d { for b in 0..d {
            let want = if a == b { lambda } else { 0.0 };
            prop_assert!((s[a * d + b] - want).abs() < 1e-10, "S[{a},{b}] = {} (N = {n}, d = {d})", s[a * d + b]);
        } }
    }

    /// Sparse analysis and synthesis equal the dense products; (d/N)·synth(analyse(w)) = w.
    #[test]
    fn sparse_matches_dense_and_reconstructs(d in 1usize..200, ratio in 0.0f64..1.0, seed in any::<u64>()) {
        let n = size(d, ratio, 10);
        let f = TetrisFrame::new(n, d).unwrap();
        let mut ws = f.workspace();
        let w = values(seed, d);
        let (mut x, mut x_dense) = (vec![0.0; n], vec![0.0; n]);
        f.analyse(&w, &mut x, &mut ws).unwrap();
        f.analyse_dense(&w, &mut x_dense).unwrap();
        for (a, b) in x.iter().zip(&x_dense) { prop_assert!((a - b).abs() < 1e-14); }
        let a = values(seed ^ 1, n);
        let (mut y, mut y_dense) = (vec![0.0; d], vec![0.0; d]);
        f.synthesise(&a, 0.37, &mut y, &mut ws).unwrap();
        f.synthesise_dense(&a, 0.37, &mut y_dense).unwrap();
        for (p, q) in y.iter().zip(&y_dense) { prop_assert!((p - q).abs() < 1e-12 * (1.0 + q.abs())); }
        // The workspace path (input indexed by position) and its f32 variant agree.
        f.input(&mut ws).copy_from_slice(&a);
        let mut y2 = vec![0.0; d];
        f.synthesise_workspace(0.37, &mut y2, &mut ws).unwrap();
        prop_assert_eq!(&y2, &y);
        let mut y32 = vec![0.0f32; d];
        f.synthesise_workspace_f32(0.37, &mut y32, &mut ws).unwrap();
        for (p, q) in y32.iter().zip(&y) { prop_assert_eq!(*p, *q as f32); }
        // Reconstruction.
        let mut r = vec![0.0; d];
        f.synthesise(&x, d as f64 / n as f64, &mut r, &mut ws).unwrap();
        for (p, q) in r.iter().zip(&w) { prop_assert!((p - q).abs() < 1e-12, "{p} vs {q}"); }
    }

    /// σ(F, p), σ₂(F, p) and the tail, computed sparsely in O(N), equal direct dense sums, for
    /// the identity, the block-swapped order and random permutations.
    #[test]
    fn variations_match_dense(d in 1usize..30, ratio in 0.0f64..1.0, seed in any::<u64>()) {
        let n = size(d, ratio, 5);
        let f = TetrisFrame::new(n, d).unwrap();
        for p in [Permutation::Identity, f.block_swapped_order().unwrap(), permutation(seed, n)] {
            let (s, s2, t) = dense_variations(&f, &p);
            let sigma = f.variation(&p).unwrap();
            let (sigma2, tail) = f.variation2(&p).unwrap();
            prop_assert!((sigma - s).abs() < 1e-10 * (1.0 + s));
            prop_assert!((sigma2 - s2).abs() < 1e-10 * (1.0 + s2));
            prop_assert!((tail - t).abs() < 1e-12);
            prop_assert!((path_variation(&f, &p).unwrap() - s).abs() < 1e-10 * (1.0 + s));
        }
        prop_assert!((f.variation_identity() - f.variation(&Permutation::Identity).unwrap()).abs() < 1e-12);
        // Swapping the block columns never hurts.
        prop_assert!(f.variation(&f.block_swapped_order().unwrap()).unwrap() <= f.variation_identity() + 1e-12);
    }

    /// The heuristic returns a valid permutation, its σ is ≤ the identity's (and ≤ the
    /// block-swapped order's), it reports σ correctly, and its own ordering is a 2-opt local
    /// optimum, checked here over every segment reversal.
    #[test]
    fn ordering_heuristic_tetris(d in 1usize..25, ratio in 0.0f64..1.0) {
        let n = size(d, ratio, 4);
        let f = TetrisFrame::new(n, d).unwrap();
        let rep = order_frame(&f, &OrderingOptions::default()).unwrap();
        rep.permutation.validate(n).unwrap();
        let sigma = f.variation(&rep.permutation).unwrap();
        prop_assert!((sigma - rep.sigma).abs() < 1e-9);
        prop_assert!(rep.sigma <= rep.sigma_identity);
        prop_assert!((rep.sigma_identity - f.variation_identity()).abs() < 1e-9);
        prop_assert!(rep.sigma <= f.variation(&f.block_swapped_order().unwrap()).unwrap() + 1e-9);
        prop_assert!(rep.two_opt_optimal);
        prop_assert_eq!(rep.chose_identity, rep.permutation.is_identity());
        prop_assert!(rep.sigma <= rep.sigma_greedy_two_opt && rep.sigma <= rep.sigma_identity_two_opt);
        assert_two_opt_optimal(&f, &rep.permutation, 1e-9);
    }

    /// The same for general frames through dense vectors: random unit vectors, and harmonic
    /// frames (dense and through the Gram function, which must agree with each other).
    #[test]
    fn ordering_heuristic_dense(d in 1usize..8, n in 3usize..60, seed in any::<u64>()) {
        let mut data = values(seed, n * d);
        for row in data.chunks_exact_mut(d) {
            let r = norm(row).max(1e-9);
            row.iter_mut().for_each(|x| *x /= r);
        }
        let g = DenseVectors::new(data, d).unwrap();
        let rep = order_frame(&g, &OrderingOptions::default()).unwrap();
        rep.permutation.validate(n).unwrap();
        prop_assert!(rep.sigma <= rep.sigma_identity);
        prop_assert!((path_variation(&g, &rep.permutation).unwrap() - rep.sigma).abs() < 1e-9);
        prop_assert!(rep.two_opt_optimal);
        prop_assert!(rep.sigma_greedy_two_opt <= rep.sigma_greedy + 1e-12);
        assert_two_opt_optimal(&g, &rep.permutation, 1e-9);

        let nh = n.max(d + 1);
        let h = HarmonicFrame::new(nh, d).unwrap();
        let dense = DenseVectors::from_harmonic(&h).unwrap();
        let gram = HarmonicGeometry::new(&h).unwrap();
        for a in 0..nh { for b in 0..nh {
            prop_assert!((dense.distance(a, b) - gram.distance(a, b)).abs() < 1e-6);
        } }
        let rep = order_frame(&gram, &OrderingOptions::default()).unwrap();
        prop_assert!(rep.sigma <= rep.sigma_identity);
        assert_two_opt_optimal(&gram, &rep.permutation, 1e-9);
        let mut ws = h.workspace();
        let exact = rep.permutation.variation(&h, &mut ws).unwrap();
        prop_assert!((exact - rep.sigma).abs() < 1e-6 * (1.0 + exact));
    }

    /// First-order ΣΔ through a tetris frame: the state stays within δ/2 and every vector's error
    /// is within (δ·d / 2N)·(σ(F, p) + 1) (Theorem 3.1), for the identity, the heuristic's order
    /// and a random order, with δ the smallest certified step for the coefficients.
    #[test]
    fn sigma_delta_within_theorem_3_1(d in 1usize..64, ratio in 0.0f64..1.0, k in 1u32..5,
                                      seed in any::<u64>()) {
        let n = size(d, ratio, 14);
        let f = TetrisFrame::new(n, d).unwrap();
        let mut ws = f.workspace();
        let alphabet = Alphabet::new(k).unwrap();
        let heuristic = order_frame(&f, &OrderingOptions::default()).unwrap().permutation;
        for (i, order) in [Permutation::Identity, heuristic, permutation(seed ^ 5, n)].into_iter().enumerate() {
            let sigma = f.variation(&order).unwrap();
            let w = values(seed.wrapping_add(i as u64), d);
            let mut x = vec![0.0; n];
            f.analyse(&w, &mut x, &mut ws).unwrap();
            let max_x = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let delta = smallest_delta(max_x, k);
            let mut codes = vec![0u16; n];
            let max_u = sigma_delta::quantize(&x, &order, alphabet, delta, &mut codes);
            prop_assert!(max_u <= delta / 2.0 * (1.0 + 1e-12));
            // w̃ = (d/N)·Σ_k q_k e_{p(k)}: scatter the levels to their positions.
            let mut levels = vec![0.0; n];
            for (kk, &c) in codes.iter().enumerate() {
                levels[order.position(kk)] = alphabet.level(c) * delta;
            }
            let mut wt = vec![0.0; d];
            f.synthesise(&levels, d as f64 / n as f64, &mut wt, &mut ws).unwrap();
            let err = norm(&w.iter().zip(&wt).map(|(a, b)| a - b).collect::<Vec<_>>());
            let bound = vector_bound(delta, d, n, sigma);
            prop_assert!(err <= bound * (1.0 + 1e-9) + 1e-15, "error {err} > bound {bound} (N = {n}, d = {d})");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Second-order ΣΔ through a tetris frame (K ≥ 2): the state stays within δ/2 and the error is
    /// within (δ·d / 2N)·(σ₂(F, p) + ‖f_{N−1} − 2f_N‖ + 1), with σ₂ and the tail from
    /// [`TetrisFrame::variation2`].
    #[test]
    fn second_order_within_certificate(d in 1usize..48, ratio in 0.0f64..1.0, k in 2u32..5,
                                       seed in any::<u64>()) {
        let n = size(d, ratio, 14);
        let f = TetrisFrame::new(n, d).unwrap();
        let mut ws = f.workspace();
        let alphabet = Alphabet::new(k).unwrap();
        for (i, order) in [Permutation::Identity, f.block_swapped_order().unwrap(), permutation(seed ^ 9, n)]
            .into_iter()
            .enumerate()
        {
            let (sigma2, tail) = f.variation2(&order).unwrap();
            let w = values(seed.wrapping_add(7 + i as u64), d);
            let mut x = vec![0.0; n];
            f.analyse(&w, &mut x, &mut ws).unwrap();
            let max_x = x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let delta = second_order::smallest_delta(max_x, alphabet).unwrap();
            let mut codes = vec![0u16; n];
            let max_u = second_order::quantize(&x, &order, alphabet, delta, &mut codes);
            prop_assert!(max_u <= delta / 2.0 * (1.0 + 1e-9));
            let input = f.input(&mut ws);
            for (kk, &c) in codes.iter().enumerate() {
                input[order.position(kk)] = alphabet.level(c);
            }
            let mut wt = vec![0.0; d];
            f.synthesise_workspace(delta * d as f64 / n as f64, &mut wt, &mut ws).unwrap();
            let err = norm(&w.iter().zip(&wt).map(|(a, b)| a - b).collect::<Vec<_>>());
            let bound = second_order::vector_bound(delta, d, n, sigma2, tail);
            prop_assert!(err <= bound * (1.0 + 1e-9) + 1e-15, "error {err} > bound {bound} (N = {n}, d = {d})");
        }
    }
}

/// For harmonic frames the identity is already (close to) optimal: the heuristic keeps it or
/// improves σ by at most a little (reported, not asserted beyond ≤).
#[test]
fn harmonic_identity_is_kept_or_improved() {
    for (n, d) in [(128, 16), (257, 32), (1000, 64)] {
        let h = HarmonicFrame::new(n, d).unwrap();
        let rep = order_frame(
            &HarmonicGeometry::new(&h).unwrap(),
            &OrderingOptions::default(),
        )
        .unwrap();
        assert!(rep.sigma <= rep.sigma_identity);
        assert!((rep.sigma_identity - h.variation_identity()).abs() < 1e-6 * rep.sigma_identity);
    }
}

/// The ordering of large tetris frames (N ≈ 40 000, neighbour-list 2-opt only) stays fast and
/// clearly beats the closed-form block-swapped order, also at high redundancy (λ = 20.5, where
/// each basis vector has ~20 copies that must not crowd the neighbour lists).
#[test]
fn large_tetris_ordering_is_fast() {
    for (n, d) in [(40_000, 7_000), (41_000, 2_000)] {
        let f = TetrisFrame::new(n, d).unwrap();
        let start = std::time::Instant::now();
        let rep = order_frame(&f, &OrderingOptions::default()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        rep.permutation.validate(n).unwrap();
        let swapped = f.variation(&f.block_swapped_order().unwrap()).unwrap();
        assert!((f.variation(&rep.permutation).unwrap() - rep.sigma).abs() < 1e-6);
        assert!(
            rep.sigma <= 0.9 * swapped,
            "N = {n}, d = {d}: σ = {} against {swapped} block-swapped",
            rep.sigma
        );
        assert!(secs < 30.0, "ordering took {secs} s");
    }
}

/// The independent 2-opt check above can fail: a shuffled order of a tetris frame is not 2-opt
/// optimal.
#[test]
#[should_panic(expected = "gains")]
fn two_opt_check_rejects_a_shuffled_order() {
    let f = TetrisFrame::new(90, 20).unwrap();
    assert_two_opt_optimal(&f, &permutation(3, 90), 1e-9);
}
