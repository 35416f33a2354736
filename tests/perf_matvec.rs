//! The compressed-domain product `SdqFile::matvec`/`matvec_batch` against decode-then-multiply
//! (in f64), for both orientations, with and without a bias, K = 1 and K = 3, identity and
//! explicit orderings, per-vector and tensor δ; and its argument checks.

mod common;
use common::values;

use sdq::format::{DeltaPolicy, Dtype, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation, StepPolicy};

#[allow(clippy::too_many_arguments)]
fn check(
    rows: usize,
    cols: usize,
    n: usize,
    k: u32,
    orientation: Orientation,
    bias: bool,
    permuted: bool,
    policy: StepPolicy,
) {
    let w = values(rows * cols, (rows * 13 + cols) as u64);
    let b = values(rows, 5);
    let mut m = Matrix::new(&w, rows, cols).unwrap();
    if bias {
        m = m.with_bias(&b).unwrap();
    }
    let d = m.layout(orientation).vector_len();
    let mut fq = FrameQuantizer::new(FrameDescriptor::harmonic(n, d).unwrap(), k, policy).unwrap();
    if permuted {
        let order: Vec<u32> = (0..n as u32)
            .step_by(2)
            .chain((1..n as u32).step_by(2))
            .collect();
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
    wr.write_quantized("w", &q, DeltaPolicy::from_step(policy))
        .unwrap();
    let f = SdqFile::from_bytes(wr.finish().unwrap().into_inner()).unwrap();
    let wt = f.decode("w").unwrap();
    for batch in [1usize, 2, 8] {
        let x = values(batch * cols, 99 + batch as u64);
        let mut y = vec![0f32; batch * rows];
        if batch == 1 {
            f.matvec("w", &x, &mut y).unwrap();
        } else {
            f.matvec_batch("w", &x, batch, &mut y).unwrap();
        }
        for bi in 0..batch {
            let xb = &x[bi * cols..(bi + 1) * cols];
            for i in 0..rows {
                let row = &wt[i * cols..(i + 1) * cols];
                let want: f64 = row
                    .iter()
                    .zip(xb)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let scale: f64 = row
                    .iter()
                    .zip(xb)
                    .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                    .sum();
                let got = f64::from(y[bi * rows + i]);
                // The decoded weights are rounded to f32 once (relative 2^-24 each); the product
                // itself is exact up to f64 rounding and one final f32 rounding.
                let tol = 1e-6 * scale + 1e-6 * want.abs() + 1e-12;
                assert!(
                    (got - want).abs() <= tol,
                    "{orientation:?} bias {bias} k {k} permuted {permuted} batch {batch}: y[{bi}][{i}] = {got}, decode-then-multiply {want} (tol {tol})"
                );
            }
        }
    }
}

#[test]
fn matvec_matches_decode_then_multiply() {
    for orientation in [Orientation::Columns, Orientation::Rows] {
        for bias in [false, true] {
            check(
                40,
                33,
                100,
                1,
                orientation,
                bias,
                false,
                StepPolicy::Coefficient,
            );
            check(21, 50, 180, 3, orientation, bias, true, StepPolicy::Vector);
            check(
                64,
                48,
                2100,
                1,
                orientation,
                bias,
                false,
                StepPolicy::Tensor,
            );
        }
    }
    // Odd d (the constant coordinate), an N not a multiple of 8 and wider than one band.
    check(
        31,
        7,
        3001,
        1,
        Orientation::Columns,
        false,
        true,
        StepPolicy::Coefficient,
    );
    check(
        5,
        31,
        1003,
        2,
        Orientation::Rows,
        true,
        false,
        StepPolicy::Coefficient,
    );
}

#[test]
fn matvec_checks_its_arguments() {
    let w = values(8 * 6, 1);
    let m = Matrix::new(&w, 8, 6).unwrap();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(40, 8).unwrap(),
        1,
        StepPolicy::Coefficient,
    )
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    let plan = [
        TensorPlan::sigma_delta("w", Dtype::F32, &[8, 6], false),
        TensorPlan::raw("r", Dtype::F32, &[2, 2]),
    ];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
        .unwrap();
    wr.write_raw("r", &[0u8; 16]).unwrap();
    let f = SdqFile::from_bytes(wr.finish().unwrap().into_inner()).unwrap();
    let mut y = vec![0f32; 8];
    assert!(f.matvec("w", &[0.0; 5], &mut y).is_err());
    assert!(f.matvec("w", &[0.0; 6], &mut y[..7]).is_err());
    assert!(f.matvec("r", &[0.0; 2], &mut y[..2]).is_err());
    assert!(f.matvec("nope", &[0.0; 6], &mut y).is_err());
    assert!(f.matvec_batch("w", &[], 0, &mut []).is_ok());
    f.matvec("w", &[0.0; 6], &mut y).unwrap();
    assert!(y.iter().all(|&v| v == 0.0));
}
