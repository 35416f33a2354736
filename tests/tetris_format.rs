//! Spectral tetris frames (frame family 2) through the quantizer and the file: every certified
//! vector is within its bound for either scheme and any ordering (the natural one, or the
//! greedy + 2-opt one, which is never worse); the file records the family and the ordering; the
//! reader decodes what the quantizer rebuilt, and verification passes.

mod common;
use common::values;

use proptest::prelude::*;
use sdq::format::{DeltaPolicy, Dtype, Encoding, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::frame::{FrameFamily, OrderingOptions};
use sdq::quant::Scheme;
use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, StepPolicy};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tetris_packs_decodes_and_stays_within_its_bound(
        rows in 1usize..16, cols in 1usize..10, extra in 0usize..60, k in 1u32..6,
        pol in 0u8..3, columns in any::<bool>(), bias in any::<bool>(), second in any::<bool>(),
        reorder in any::<bool>(), zstd in any::<bool>(), seed in any::<u64>(),
    ) {
        let w = values(rows * cols, seed);
        let b = values(rows, seed ^ 1);
        let mut m = Matrix::new(&w, rows, cols).unwrap();
        if bias {
            m = m.with_bias(&b).unwrap();
        }
        let orientation = if columns { Orientation::Columns } else { Orientation::Rows };
        let d = m.layout(orientation).vector_len();
        let n = 2 * d + extra;
        let policy = [StepPolicy::Tensor, StepPolicy::Vector, StepPolicy::Coefficient][pol as usize];
        let scheme = if second && k >= 2 { Scheme::SecondOrder } else { Scheme::FirstOrder };
        let mut fq = FrameQuantizer::new(FrameDescriptor::spectral_tetris(n, d).unwrap(), k, policy)
            .unwrap()
            .with_scheme(scheme)
            .unwrap();
        if reorder {
            let report = fq.frame().order(&OrderingOptions::default()).unwrap();
            prop_assert!(report.sigma <= report.sigma_identity + 1e-12);
            fq = fq.with_order(report.permutation).unwrap();
        }
        let q = fq.quantize(&m, orientation).unwrap();
        prop_assert_eq!(q.uncertified_count(), 0);
        let errors = q.measured_errors(&m).unwrap();
        for (j, e) in errors.iter().enumerate() {
            let bound = q.bound(j).unwrap();
            prop_assert!(*e <= bound * (1.0 + 1e-9) + 1e-12, "vector {}: {} > {}", j, e, bound);
        }

        let mut plan = vec![TensorPlan::sigma_delta("w", Dtype::F32, &[rows as u64, cols as u64], bias)];
        if bias {
            plan.push(TensorPlan::bias_of("b", Dtype::F32, rows as u64, "w"));
        }
        let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
        if zstd {
            wr.set_zstd(Some(3)).unwrap();
        }
        wr.write_quantized("w", &q, DeltaPolicy::from_step(policy)).unwrap();
        let f = SdqFile::from_bytes(wr.finish().unwrap().into_inner()).unwrap();
        let Encoding::SigmaDelta(info) = &f.tensor("w").unwrap().encoding else {
            panic!("w is not sigma-delta");
        };
        prop_assert_eq!(info.frame.family(), FrameFamily::SpectralTetris);
        prop_assert_eq!(info.scheme, scheme);
        prop_assert_eq!(info.permutation.is_some(), !q.order().is_identity());
        let mut expected = vec![0f32; rows * cols];
        let mut expected_b = vec![0f32; rows];
        q.reconstruct_into(Some(&mut expected), bias.then_some(&mut expected_b[..])).unwrap();
        for (a, e) in f.decode("w").unwrap().iter().zip(&expected) {
            prop_assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "{} vs {}", a, e);
        }
        if bias {
            for (a, e) in f.decode("b").unwrap().iter().zip(&expected_b) {
                prop_assert!((a - e).abs() <= 1e-5 * (1.0 + e.abs()), "{} vs {}", a, e);
            }
        }
        f.verify_all().unwrap();
    }
}

#[test]
fn tetris_needs_twice_the_dimension() {
    let err = FrameDescriptor::spectral_tetris(15, 8).unwrap_err();
    assert!(err.to_string().contains("at least twice"), "{err}");
    assert!(FrameDescriptor::spectral_tetris(16, 8).is_ok());
}

/// The compressed-domain product works the same for tetris frames: y = W̃·x from the codes equals
/// decoding W̃ and multiplying, for both orientations and a computed ordering.
#[test]
fn matvec_from_tetris_codes_matches_decode_then_multiply() {
    let (rows, cols) = (24usize, 17usize);
    let w = values(rows * cols, 5);
    let m = Matrix::new(&w, rows, cols).unwrap();
    let x = values(cols * 3, 6);
    for orientation in [Orientation::Columns, Orientation::Rows] {
        let d = m.layout(orientation).vector_len();
        let n = 2 * d + 7;
        let fq = FrameQuantizer::new(
            FrameDescriptor::spectral_tetris(n, d).unwrap(),
            2,
            StepPolicy::Coefficient,
        )
        .unwrap();
        let order = fq.frame().order(&OrderingOptions::default()).unwrap();
        assert!(!order.permutation.is_identity(), "N/d is not an integer");
        let q = fq
            .with_order(order.permutation)
            .unwrap()
            .quantize(&m, orientation)
            .unwrap();
        let plan = [TensorPlan::sigma_delta(
            "w",
            Dtype::F32,
            &[rows as u64, cols as u64],
            false,
        )];
        let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
        wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
            .unwrap();
        let f = SdqFile::from_bytes(wr.finish().unwrap().into_inner()).unwrap();
        let wt = f.decode("w").unwrap();
        let mut y = vec![0f32; rows * 3];
        f.matvec_batch("w", &x, 3, &mut y).unwrap();
        for b in 0..3 {
            for i in 0..rows {
                let want: f64 = (0..cols)
                    .map(|j| f64::from(wt[i * cols + j]) * f64::from(x[b * cols + j]))
                    .sum();
                let got = f64::from(y[b * rows + i]);
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{orientation:?} batch {b} row {i}: {got} vs {want}"
                );
            }
        }
    }
}
