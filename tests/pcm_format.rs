//! pcm (encoding 3) through the library and the file: every vector within its certified bound
//! √(d/N)·½·‖δ‖, the decoder rebuilding exactly what the quantizer measured, the stored error
//! and norms agreeing with a fresh measurement, the rate control keeping its budget, and the
//! model-wide allocation beating equal bits on a matrix pair where it should.

mod common;
use common::values;

use proptest::prelude::*;
use sdq::codes::stream::Coding;
use sdq::format::{Dtype, Encoding, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::frame::FrameFamily;
use sdq::quant::pcm::{
    self, ErrorRecord, PcmOptions, PcmSynthesis, RateTarget, Rounding, StepPolicy, StepRule,
    StepType,
};
use sdq::{Matrix, Orientation};

/// Heavy-tailed values: a Student-t-like mix of the uniform test values and a few outliers.
fn heavy(n: usize, seed: u64) -> Vec<f32> {
    let u = values(n, seed);
    let v = values(n, seed ^ 0x55);
    u.iter()
        .zip(&v)
        .enumerate()
        .map(|(i, (&a, &b))| {
            let x = a / (0.05 + b.abs());
            if i % 97 == 0 {
                x * 20.0
            } else {
                x
            }
        })
        .collect()
}

fn write(q: &pcm::PcmTensor, rows: usize, cols: usize, bias: bool, zstd: bool) -> Vec<u8> {
    let mut plan = vec![TensorPlan::pcm(
        "w",
        Dtype::F32,
        &[rows as u64, cols as u64],
        bias,
    )];
    if bias {
        plan.push(TensorPlan::bias_of("b", Dtype::F32, rows as u64, "w"));
    }
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    if zstd {
        wr.set_zstd(Some(3)).unwrap();
    }
    wr.write_pcm("w", q).unwrap();
    wr.finish().unwrap().into_inner()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_vector_is_within_its_bound_through_the_file(
        rows in 1usize..12, cols in 1usize..40, seed in 0u64..1000,
        family in 0u8..3, signs in any::<bool>(), group in 0usize..7,
        rows_axis in any::<bool>(), bias in any::<bool>(), f32_steps in any::<bool>(),
        rans in any::<bool>(), tensor_rule in any::<bool>(), zstd in any::<bool>(),
        target in 0u8..3, heavy_tails in any::<bool>(), zero_sum in any::<bool>(),
        grid in 0u8..3,
    ) {
        let w = if heavy_tails { heavy(rows * cols, seed) } else { values(rows * cols, seed) };
        let b = values(rows, seed ^ 9);
        // Values on a grid (lattice steps may code them exactly): integers −3..=3 times 0.25,
        // or ternary rows with a scale of their own.
        let on_grid = |v: &[f32], width: usize| -> Vec<f32> {
            v.iter().enumerate().map(|(i, &x)| match grid {
                1 => (x * 35.0).round().clamp(-3.0, 3.0) * 0.25,
                _ => (x * 20.0).round().clamp(-1.0, 1.0) * (0.01 + (i / width.max(1)) as f32 * 0.37),
            }).collect()
        };
        let (w, b) = if grid == 0 { (w, b) } else { (on_grid(&w, cols), on_grid(&b, 1)) };
        let mut m = Matrix::new(&w, rows, cols).unwrap();
        if bias {
            m = m.with_bias(&b).unwrap();
        }
        let orientation = if rows_axis { Orientation::Rows } else { Orientation::Columns };
        let opts = PcmOptions {
            family: match family {
                0 => None,
                1 => Some(FrameFamily::Harmonic),
                _ => Some(FrameFamily::SpectralTetris),
            },
            frame_size: None,
            sign_seed: if signs { seed + 1 } else { 0 },
            group,
            rule: if tensor_rule { StepRule::Tensor } else { StepRule::Group },
            policy: StepPolicy::Certified,
            step_type: if f32_steps { StepType::F32 } else { StepType::F16 },
            coding: if rans { Coding::Rans } else { Coding::Fixed },
            target: match target {
                0 => RateTarget::BitsPerWeight(6.0),
                1 => RateTarget::RelativeError(0.05),
                _ => RateTarget::Scale(0.3),
            },
            record_bytes: 0,
            rounding: if zero_sum { Rounding::ZeroSum } else { Rounding::Nearest },
            // Kernel windows of 2 or 3 coefficients, or none.
            window: (seed % 4) as usize,
        };
        let q = pcm::quantize(&m, orientation, &opts).unwrap();
        let file = SdqFile::from_bytes(write(&q, rows, cols, bias, zstd)).unwrap();
        file.verify_all().unwrap();
        let Encoding::Pcm(info) = &file.tensor("w").unwrap().encoding else {
            panic!("not pcm")
        };
        prop_assert_eq!(info.k, q.k);
        prop_assert_eq!(info.error_norm, q.error_norm);
        let decoded = file.decode("w").unwrap();
        let decoded_bias = if bias { Some(file.decode("b").unwrap()) } else { None };
        let mt = match &decoded_bias {
            Some(db) => Matrix::new(&decoded, rows, cols).unwrap().with_bias(db).unwrap(),
            None => Matrix::new(&decoded, rows, cols).unwrap(),
        };
        let layout = m.layout(orientation);
        let (d, count) = (layout.vector_len(), layout.vector_count());
        let synth = PcmSynthesis::new(q.frame, d, q.sign_seed, q.group).unwrap();
        let groups = synth.groups();
        let steps = file.pcm_steps("w").unwrap();
        prop_assert_eq!(steps.len(), count * groups);
        let (mut wv, mut tv) = (vec![0.0; d], vec![0.0; d]);
        let (mut e2, mut w2) = (0.0, 0.0);
        for j in 0..count {
            m.load_vector(orientation, j, &mut wv).unwrap();
            mt.load_vector(orientation, j, &mut tv).unwrap();
            let err = norm(&wv.iter().zip(&tv).map(|(a, b)| a - b).collect::<Vec<_>>());
            let sj: Vec<f64> = steps[j * groups..(j + 1) * groups].iter().map(|&s| f64::from(s)).collect();
            let bound = synth.bound(&sj);
            prop_assert!(err <= bound * (1.0 + 1e-9) + 1.2e-7 * norm(&tv),
                "vector {} error {} bound {}", j, err, bound);
            prop_assert!(bound <= info.max_bound * (1.0 + 1e-12) + 1e-300);
            e2 += err * err;
            w2 += norm(&wv).powi(2);
        }
        // Lattice steps (α = 0) rebuild every value exactly.
        if q.alpha == 0.0 {
            prop_assert_eq!(&decoded, &w);
            prop_assert_eq!(info.error_norm, 0.0);
        }
        // The file's measured error is the decoder's (the writer measured the same rebuild).
        prop_assert!((e2.sqrt() - info.error_norm).abs() <= 1e-9 * (1.0 + info.error_norm));
        prop_assert!((w2.sqrt() - info.weight_norm).abs() <= 1e-9 * (1.0 + info.weight_norm));
    }
}

/// Least-squares steps with fixed-width codes: less error than certified steps at the same
/// budget on heavy-tailed weights, the budget kept, every code within ±K, and each vector's
/// recorded error at least its error after decoding the file.
#[test]
fn least_squares_steps_beat_certified_ones_and_record_their_errors() {
    let (rows, cols) = (48, 256);
    let w = heavy(rows * cols, 7);
    let m = Matrix::new(&w, rows, cols).unwrap();
    for b in [3.0, 4.0, 5.0] {
        let fixed = PcmOptions {
            target: RateTarget::BitsPerWeight(b),
            coding: Coding::Fixed,
            record_bytes: 200,
            ..PcmOptions::default()
        };
        let cert = pcm::quantize(&m, Orientation::Rows, &fixed).unwrap();
        let ls = pcm::quantize(
            &m,
            Orientation::Rows,
            &PcmOptions {
                policy: StepPolicy::LeastSquares,
                ..fixed
            },
        )
        .unwrap();
        assert!(
            ls.error_norm < 0.8 * cert.error_norm,
            "{b} bits: least squares {} vs certified {}",
            ls.error_norm,
            cert.error_norm
        );
        assert_eq!(ls.record, ErrorRecord::Weight);
        assert_eq!(ls.vector_errors.len(), rows);
        assert!((ls.k + 1).is_power_of_two(), "K = {}", ls.k);
        assert!(ls.codes.iter().all(|q| q.unsigned_abs() <= ls.k));
        let stored = 8.0 * (ls.section_bytes() + 200) as f64 / (rows * cols) as f64;
        assert!(stored <= b, "{b} bits asked, {stored} stored");
        let plan = [TensorPlan::pcm_recording(
            "w",
            Dtype::F32,
            &[rows as u64, cols as u64],
            false,
            ErrorRecord::Weight,
        )];
        let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
        wr.write_pcm("w", &ls).unwrap();
        let file = SdqFile::from_bytes(wr.finish().unwrap().into_inner()).unwrap();
        file.verify_all().unwrap();
        let recorded = file.pcm_errors("w").unwrap().unwrap().weight;
        let decoded = file.decode("w").unwrap();
        for (j, (wr, tr)) in w.chunks(cols).zip(decoded.chunks(cols)).enumerate() {
            let err = wr
                .iter()
                .zip(tr)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                err <= f64::from(recorded[j]) * (1.0 + 1e-6) + 1e-6,
                "vector {j}: {err} above its record {}",
                recorded[j]
            );
        }
    }
    // An error target is met; a step scale and entropy-coded codes are refused.
    let ls = |target, coding| {
        pcm::quantize(
            &m,
            Orientation::Rows,
            &PcmOptions {
                policy: StepPolicy::LeastSquares,
                target,
                coding,
                ..PcmOptions::default()
            },
        )
    };
    let q = ls(RateTarget::RelativeError(0.02), Coding::Fixed).unwrap();
    assert!(q.relative_error() <= 0.02);
    assert!(ls(RateTarget::Scale(0.5), Coding::Fixed).is_err());
    assert!(ls(RateTarget::BitsPerWeight(4.0), Coding::Rans).is_err());
}

#[test]
fn the_bit_budget_is_kept_and_spent() {
    let (rows, cols) = (64, 200);
    let w = heavy(rows * cols, 3);
    let m = Matrix::new(&w, rows, cols).unwrap();
    for (b, coding) in [
        (3.0, Coding::Rans),
        (4.5, Coding::Rans),
        (8.0, Coding::Rans),
        (6.0, Coding::Fixed),
    ] {
        let opts = PcmOptions {
            target: RateTarget::BitsPerWeight(b),
            coding,
            record_bytes: 200,
            ..PcmOptions::default()
        };
        let q = pcm::quantize(&m, Orientation::Rows, &opts).unwrap();
        let stored = 8.0 * (q.section_bytes() + 200) as f64 / (rows * cols) as f64;
        assert!(stored <= b, "{b} bits asked, {stored} stored");
        // The budget is spent: within the 1 % steps of the settling loop (rANS) or one code
        // bit of the fixed-width codes.
        let slack = if coding == Coding::Rans { 0.1 } else { 1.0 };
        assert!(stored > b - slack, "{b} bits asked, only {stored} stored");
    }
}

#[test]
fn more_bits_give_less_error_and_the_relative_target_holds() {
    let (rows, cols) = (32, 128);
    let w = heavy(rows * cols, 11);
    let m = Matrix::new(&w, rows, cols).unwrap();
    let mut last = f64::INFINITY;
    for b in [2.0, 3.0, 4.0, 6.0, 8.0] {
        let q = pcm::quantize(
            &m,
            Orientation::Rows,
            &PcmOptions {
                target: RateTarget::BitsPerWeight(b),
                ..PcmOptions::default()
            },
        )
        .unwrap();
        assert!(
            q.relative_error() < last,
            "{b} bits: {}",
            q.relative_error()
        );
        last = q.relative_error();
    }
    for e in [0.1, 0.01, 0.001] {
        let q = pcm::quantize(
            &m,
            Orientation::Rows,
            &PcmOptions {
                target: RateTarget::RelativeError(e),
                ..PcmOptions::default()
            },
        )
        .unwrap();
        assert!(
            q.relative_error() <= e * 1.02,
            "asked {e}, got {}",
            q.relative_error()
        );
        assert!(
            q.relative_error() > e / 4.0,
            "asked {e}, got {}",
            q.relative_error()
        );
    }
}

#[test]
fn rejects_bad_parameters_with_errors() {
    let w = values(20, 1);
    let m = Matrix::new(&w, 4, 5).unwrap();
    for target in [
        RateTarget::BitsPerWeight(0.0),
        RateTarget::BitsPerWeight(f64::NAN),
        RateTarget::RelativeError(-1.0),
        RateTarget::Scale(0.0),
    ] {
        let opts = PcmOptions {
            target,
            ..PcmOptions::default()
        };
        assert!(
            pcm::quantize(&m, Orientation::Rows, &opts).is_err(),
            "{target:?}"
        );
    }
    let opts = PcmOptions {
        family: None,
        frame_size: Some(6),
        ..PcmOptions::default()
    };
    assert!(pcm::quantize(&m, Orientation::Rows, &opts).is_err());
    let opts = PcmOptions {
        family: Some(FrameFamily::Harmonic),
        frame_size: Some(5),
        ..PcmOptions::default()
    };
    assert!(pcm::quantize(&m, Orientation::Rows, &opts).is_err());
}

/// Values on a grid (integers times a step, ternary rows with scales of their own) are rebuilt
/// exactly with lattice steps when a bit budget allows their exact cost, or when an error target
/// would cost rounding more; a frame, a budget below the exact cost, a loose error target or one
/// value off the grid falls back to rounding.
#[test]
fn values_on_a_grid_are_rebuilt_exactly_when_the_budget_allows() {
    let (rows, cols) = (64, 200);
    let ints: Vec<f32> = values(rows * cols, 4)
        .iter()
        .map(|&x| (x * 35.0).round().clamp(-3.0, 3.0))
        .collect();
    let ternary: Vec<f32> = values(rows * cols, 5)
        .iter()
        .enumerate()
        .map(|(i, &x)| (x * 20.0).round().clamp(-1.0, 1.0) * (0.013 + (i / cols) as f32 * 1e-3))
        .collect();
    for (w, f32_steps) in [(&ints, false), (&ternary, true)] {
        let m = Matrix::new(w, rows, cols).unwrap();
        let bits = |q: &pcm::PcmTensor| 8.0 * q.section_bytes() as f64 / (rows * cols) as f64;
        let at = |target| {
            let o = PcmOptions {
                target,
                ..PcmOptions::default()
            };
            pcm::quantize(&m, Orientation::Rows, &o).unwrap()
        };
        for target in [
            RateTarget::BitsPerWeight(5.0),
            RateTarget::RelativeError(0.001),
        ] {
            let q = at(target);
            assert_eq!(q.alpha, 0.0, "{target:?}: lattice steps");
            assert_eq!(q.error_norm, 0.0);
            assert_eq!(q.step_type == StepType::F32, f32_steps);
            let file = SdqFile::from_bytes(write(&q, rows, cols, false, false)).unwrap();
            assert_eq!(&file.decode("w").unwrap(), w);
            if let RateTarget::RelativeError(_) = target {
                let framed = pcm::quantize(
                    &m,
                    Orientation::Rows,
                    &PcmOptions {
                        target: RateTarget::BitsPerWeight(bits(&q)),
                        family: Some(FrameFamily::Harmonic),
                        ..PcmOptions::default()
                    },
                )
                .unwrap();
                assert!(framed.error_norm > 0.0, "a frame takes no lattice steps");
            }
        }
        // A loose error target is met for fewer bits by rounding; a budget below the exact
        // cost is met by rounding too.
        for target in [
            RateTarget::RelativeError(0.4),
            RateTarget::BitsPerWeight(0.8),
        ] {
            let q = at(target);
            assert!(q.alpha > 0.0 && q.error_norm > 0.0, "{target:?}");
            if let RateTarget::BitsPerWeight(b) = target {
                assert!(bits(&q) <= b);
            }
        }
    }
    // One value off the grid: rounded.
    let mut off = ints.clone();
    off[777] = 0.5001;
    let m = Matrix::new(&off, rows, cols).unwrap();
    let q = pcm::quantize(&m, Orientation::Rows, &PcmOptions::default()).unwrap();
    assert!(q.alpha > 0.0 && q.error_norm > 0.0);
}

#[test]
fn a_zero_matrix_is_rebuilt_exactly() {
    let w = vec![0.0f32; 60];
    let m = Matrix::new(&w, 6, 10).unwrap();
    let q = pcm::quantize(&m, Orientation::Rows, &PcmOptions::default()).unwrap();
    let file = SdqFile::from_bytes(write(&q, 6, 10, false, false)).unwrap();
    assert_eq!(file.decode("w").unwrap(), w);
    assert_eq!(q.error_norm, 0.0);
}
