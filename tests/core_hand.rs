//! Tiny cases computed by hand (d = 2; N = 3 and 4; K = 1 and 2), with the codes written out.
//!
//! harmonic(3, 2): e_1 = (−½, √3/2), e_2 = (−½, −√3/2), e_3 = (1, 0).
//! harmonic(4, 2): e_1 = (0, 1), e_2 = (−1, 0), e_3 = (0, −1), e_4 = (1, 0).

use sdq::quant::sigma_delta;
use sdq::{Alphabet, FrameDescriptor, FrameQuantizer, HarmonicFrame, Matrix, Orientation};
use sdq::{Permutation, StepPolicy};

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn harmonic_3_2_coefficients_and_codes() {
    let f = HarmonicFrame::new(3, 2).unwrap();
    let mut ws = f.workspace();
    let mut x = [0.0; 3];
    f.analyse(&[1.0, 0.0], &mut x, &mut ws).unwrap();
    assert!(close(&x, &[-0.5, -0.5, 1.0], 1e-15), "{x:?}");

    // The exact coefficients (−½, −½, 1) put the ΣΔ input on a threshold twice: the midrise
    // quantizer sends an exact tie up. K = 1, δ = 2:
    // v = −½ → code 0 (q = −1), u = ½;  v = 0 → tie → code 1 (q = 1), u = −1;
    // v = 0 → tie → code 1, u = −1.
    let mut codes = [9u16; 3];
    let a1 = Alphabet::new(1).unwrap();
    let max_u = sigma_delta::quantize(
        &[-0.5, -0.5, 1.0],
        &Permutation::Identity,
        a1,
        2.0,
        &mut codes,
    );
    assert_eq!(codes, [0, 1, 1]);
    assert_eq!(max_u, 1.0); // = δ/2: the state stays in [−δ/2, δ/2]

    // K = 2, δ = 1: v = −½ → ⌊−½⌋ = −1 → code 1 (q = −½), u = 0; again code 1, u = 0;
    // v = 1 → ⌊1⌋ = 1 = K − 1 → code 3 (q = 3/2), u = −½.
    let a2 = Alphabet::new(2).unwrap();
    let max_u = sigma_delta::quantize(
        &[-0.5, -0.5, 1.0],
        &Permutation::Identity,
        a2,
        1.0,
        &mut codes,
    );
    assert_eq!(codes, [1, 1, 3]);
    assert_eq!(max_u, 0.5);

    // Reconstruction (d/N)·δ·Σ level·e_n: K = 2 gives (2/3)(−½e_1 − ½e_2 + 3/2·e_3) = (4/3, 0).
    let mut out = [0.0; 2];
    let levels: Vec<f64> = codes.iter().map(|&c| a2.level(c)).collect();
    f.synthesise(&levels, 2.0 / 3.0, &mut out, &mut ws).unwrap();
    assert!(close(&out, &[4.0 / 3.0, 0.0], 1e-15), "{out:?}");

    // σ(harmonic(3, 2), id) = 2·|e_1 − e_2| = 2√3.
    assert!((f.variation_identity() - 2.0 * 3f64.sqrt()).abs() < 1e-12);
}

#[test]
fn harmonic_4_2_k1_full_pipeline() {
    // w = (0.3, 0.2): x = (0.2, −0.3, −0.2, 0.3). K = 1, δ = 1:
    // v = 0.2 → 1, u = −0.3; v = −0.6 → 0, u = −0.1; v = −0.3 → 0, u = 0.2; v = 0.5 → 1, u = 0.
    let w = [0.3f32, 0.2];
    let m = Matrix::new(&w, 2, 1).unwrap(); // one column of d = 2
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(4, 2).unwrap(),
        1,
        StepPolicy::Explicit(1.0),
    )
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    assert_eq!(q.codes(), &[1, 0, 0, 1]);
    let mut rebuilt = [0.0f32; 2];
    q.reconstruct_into(Some(&mut rebuilt), None).unwrap();
    // (2/4)·(½)(e_1 − e_2 − e_3 + e_4) = (½, ½).
    assert!((rebuilt[0] - 0.5).abs() < 1e-6 && (rebuilt[1] - 0.5).abs() < 1e-6);
    // σ = 3·|e_1 − e_2| = 3√2, bound = (δ·d/2N)(σ + 1) = ¼(3√2 + 1).
    let bound = q.bound(0).unwrap();
    assert!((bound - 0.25 * (3.0 * 2f64.sqrt() + 1.0)).abs() < 1e-12);
    let err = q.measured_errors(&m).unwrap()[0];
    assert!((err - (0.2f64 * 0.2 + 0.3 * 0.3).sqrt()).abs() < 1e-6 && err <= bound);
}

#[test]
fn harmonic_4_2_k2_full_pipeline() {
    // w = (0.75, −0.25): x = (−0.25, −0.75, 0.25, 0.75). K = 2, δ = 0.625 (levels ±0.3125, ±0.9375):
    // v = −0.25 → 1, u = 0.0625; v = −0.6875 → 0, u = 0.25; v = 0.5 → 2, u = 0.1875;
    // v = 0.9375 → 3, u = 0.
    let w = [0.75f32, -0.25];
    let m = Matrix::new(&w, 2, 1).unwrap();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(4, 2).unwrap(),
        2,
        StepPolicy::Explicit(0.625),
    )
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    assert_eq!(q.codes(), &[1, 0, 2, 3]);
    let mut rebuilt = [0.0f32; 2];
    q.reconstruct_into(Some(&mut rebuilt), None).unwrap();
    // ½·(−0.3125e_1 − 0.9375e_2 + 0.3125e_3 + 0.9375e_4) = (0.9375, −0.3125).
    assert!((rebuilt[0] - 0.9375).abs() < 1e-6 && (rebuilt[1] + 0.3125).abs() < 1e-6);
    assert!(q.is_certified(0)); // max |x| = 0.75 ≤ (K − ½)δ = 0.9375
}

#[test]
fn tensor_policy_is_the_papers_rule() {
    // δ = ‖w‖/(K − ½) for the largest column: columns (3, 4) and (0, 1) → δ = 5/0.5 = 10 for K = 1.
    let w = [3.0f32, 0.0, 4.0, 1.0]; // [[3, 0], [4, 1]]: columns (3, 4) and (0, 1)
    let m = Matrix::new(&w, 2, 2).unwrap();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(5, 2).unwrap(),
        1,
        StepPolicy::Tensor,
    )
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    assert_eq!(q.deltas(), &sdq::Deltas::Tensor(10.0));
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(5, 2).unwrap(),
        3,
        StepPolicy::Vector,
    )
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    assert_eq!(q.deltas(), &sdq::Deltas::Vector(vec![2.0, 0.4])); // 5/2.5, 1/2.5
}

#[test]
fn invalid_parameters_are_typed_errors() {
    use sdq::Error;
    assert!(matches!(
        FrameDescriptor::harmonic(4, 4),
        Err(Error::Parameter(_))
    ));
    assert!(matches!(
        FrameDescriptor::harmonic(4, 0),
        Err(Error::Parameter(_))
    ));
    assert!(matches!(
        FrameDescriptor::harmonic(1 << 30, 8),
        Err(Error::Limit { .. })
    ));
    assert!(matches!(Alphabet::new(0), Err(Error::Parameter(_))));
    assert!(matches!(Alphabet::new(1 << 20), Err(Error::Limit { .. })));
    let frame = FrameDescriptor::harmonic(8, 2).unwrap();
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(FrameQuantizer::new(frame, 1, StepPolicy::Explicit(bad)).is_err());
    }
    assert!(Permutation::explicit(vec![0, 1, 1], 3).is_err());
    assert!(Permutation::explicit(vec![0, 3, 1], 3).is_err());
    assert!(Permutation::explicit(vec![0, 1], 3).is_err());
    assert_eq!(
        Permutation::explicit(vec![0, 1, 2], 3).unwrap(),
        Permutation::Identity
    );
    // Wrong orientation / dimension, non-finite input, bad shapes.
    let w = [1.0f32; 6];
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(8, 2).unwrap(),
        1,
        StepPolicy::Tensor,
    )
    .unwrap();
    assert!(q
        .quantize(&Matrix::new(&w, 3, 2).unwrap(), Orientation::Columns)
        .is_err());
    assert!(q
        .quantize(&Matrix::new(&w, 3, 2).unwrap(), Orientation::Rows)
        .is_ok());
    let nan = [1.0f32, f32::NAN, 0.0, 0.0];
    assert!(matches!(
        q.quantize(&Matrix::new(&nan, 2, 2).unwrap(), Orientation::Columns),
        Err(Error::Data(_))
    ));
    assert!(Matrix::new(&w, 4, 2).is_err());
    assert!(Matrix::new(&w, usize::MAX, 2).is_err());
    assert!(Matrix::new(&w, 3, 2).unwrap().with_bias(&[0.0; 2]).is_err());
}

#[test]
fn zero_vectors_decode_to_zero() {
    let w = [0.0f32; 8];
    let m = Matrix::new(&w, 4, 2).unwrap();
    for policy in [
        StepPolicy::Tensor,
        StepPolicy::Vector,
        StepPolicy::Coefficient,
    ] {
        let q = FrameQuantizer::new(FrameDescriptor::harmonic(9, 4).unwrap(), 1, policy)
            .unwrap()
            .quantize(&m, Orientation::Columns)
            .unwrap();
        let mut out = [1.0f32; 8];
        q.reconstruct_into(Some(&mut out), None).unwrap();
        assert_eq!(out, [0.0; 8]);
        assert_eq!(q.max_bound(), 0.0);
    }
}

#[test]
fn weights_near_f32_max_are_refused() {
    // ‖w̃‖ ≤ √d·(K − ½)·δ could pass f32::MAX: quantizing must fail, not write infinities.
    let w = [3.0e38f32, -2.9e38, 1.0, 0.0];
    let m = Matrix::new(&w, 4, 1).unwrap();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(8, 4).unwrap(),
        1,
        StepPolicy::Tensor,
    )
    .unwrap()
    .quantize(&m, Orientation::Columns);
    assert!(matches!(q, Err(sdq::Error::Data(_))), "{q:?}");
    // Ordinary magnitudes are fine.
    let w = [3.0f32, -2.9, 1.0, 0.0];
    let m = Matrix::new(&w, 4, 1).unwrap();
    assert!(FrameQuantizer::new(
        FrameDescriptor::harmonic(8, 4).unwrap(),
        1,
        StepPolicy::Tensor
    )
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .is_ok());
}
