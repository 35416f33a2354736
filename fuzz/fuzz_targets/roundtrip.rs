//! Arbitrary small tensors and options → quantize → write in memory → open → verify → decode.
//! The file must decode to exactly what the quantizer reconstructs, and every certified vector
//! must be within its Theorem 3.1 bound: in f64 within bound·(1 + 1e-6); after the decoder's
//! rounding to f32, within that plus the f32 rounding of the output (‖w̃‖·2^-24 + a subnormal
//! allowance), which the bound does not cover (it is a statement about the real-valued w̃).
#![no_main]

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use sdq::format::{DeltaPolicy, Dtype, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation, StepPolicy};

#[derive(Debug)]
struct Case {
    rows: usize,
    cols: usize,
    n: usize,
    k: u32,
    policy: StepPolicy,
    orientation: Orientation,
    order: Option<Vec<u32>>,
    bias: Option<Vec<f32>>,
    w: Vec<f32>,
    zstd: Option<i32>,
    dtype: Dtype,
}

fn value(u: &mut Unstructured) -> AResult<f32> {
    // Mostly ordinary magnitudes, sometimes arbitrary bit patterns (huge, tiny, subnormal).
    Ok(if u.ratio(1, 8)? {
        let x = f32::from_bits(u.arbitrary()?);
        if x.is_finite() {
            x
        } else {
            0.0
        }
    } else {
        f32::from(u.arbitrary::<i16>()?) / 4096.0
    })
}

fn case(u: &mut Unstructured) -> AResult<Case> {
    let rows = u.int_in_range(1..=24usize)?;
    let cols = u.int_in_range(1..=12usize)?;
    let orientation = if u.arbitrary()? {
        Orientation::Rows
    } else {
        Orientation::Columns
    };
    let has_bias = u.arbitrary::<bool>()?;
    let d = match orientation {
        Orientation::Columns => rows,
        Orientation::Rows => cols + usize::from(has_bias),
    };
    let n = d + u.int_in_range(1..=200usize)?;
    let k = match u.int_in_range(0..=3u8)? {
        0 => 1,
        1 => u.int_in_range(1..=8u32)?,
        2 => u.int_in_range(1..=300u32)?,
        _ => u.int_in_range(1..=(1u32 << 15))?,
    };
    let policy = match u.int_in_range(0..=3u8)? {
        0 => StepPolicy::Tensor,
        1 => StepPolicy::Vector,
        2 => StepPolicy::Coefficient,
        _ => StepPolicy::Explicit(f64::from(u.int_in_range(1..=1000u32)?) / 256.0),
    };
    let order = if u.ratio(1, 3)? {
        // A Fisher–Yates shuffle driven by the input.
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = u.int_in_range(0..=i)?;
            p.swap(i, j);
        }
        Some(p)
    } else {
        None
    };
    let w = (0..rows * cols).map(|_| value(u)).collect::<AResult<_>>()?;
    let bias = if has_bias {
        Some((0..rows).map(|_| value(u)).collect::<AResult<_>>()?)
    } else {
        None
    };
    let zstd = if u.arbitrary()? {
        Some(u.int_in_range(1..=5)?)
    } else {
        None
    };
    let dtype = *u.choose(&[Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64])?;
    Ok(Case {
        rows,
        cols,
        n,
        k,
        policy,
        orientation,
        order,
        bias,
        w,
        zstd,
        dtype,
    })
}

fn policy_tag(p: StepPolicy) -> DeltaPolicy {
    DeltaPolicy::from_step(p)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(c) = case(&mut u) else { return };
    let d = match c.orientation {
        Orientation::Columns => c.rows,
        Orientation::Rows => c.cols + usize::from(c.bias.is_some()),
    };
    let mut m = Matrix::new(&c.w, c.rows, c.cols).expect("shape is valid");
    if let Some(b) = &c.bias {
        m = m.with_bias(b).expect("bias length is rows");
    }
    let mut fq = FrameQuantizer::new(
        FrameDescriptor::harmonic(c.n, d).expect("N > d"),
        c.k,
        c.policy,
    )
    .expect("valid quantizer");
    if let Some(o) = c.order.clone() {
        fq = fq
            .with_order(Permutation::explicit(o, c.n).expect("a shuffle is a permutation"))
            .expect("order fits the frame");
    }
    let q = fq
        .quantize(&m, c.orientation)
        .expect("finite weights quantize");

    // Write in memory.
    let shape = [c.rows as u64, c.cols as u64];
    let mut plan = vec![TensorPlan::sigma_delta(
        "w",
        c.dtype,
        &shape,
        c.bias.is_some(),
    )];
    if c.bias.is_some() {
        plan.push(TensorPlan::bias_of("b", c.dtype, c.rows as u64, "w"));
    }
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).expect("valid plan");
    wr.set_zstd(c.zstd).expect("zstd is built in");
    wr.write_quantized("w", &q, policy_tag(c.policy))
        .expect("write");
    let bytes = wr.finish().expect("finish").into_inner();

    // Open, verify, decode.
    let f = SdqFile::from_bytes(bytes).expect("a written file opens");
    f.verify_all().expect("a written file verifies");
    let got_w = f.decode("w").expect("decode w");
    let got_b = c.bias.as_ref().map(|_| f.decode("b").expect("decode b"));
    let mut want_w = vec![0f32; c.rows * c.cols];
    let mut want_b = vec![0f32; c.rows];
    q.reconstruct_into(Some(&mut want_w), c.bias.as_ref().map(|_| &mut want_b[..]))
        .expect("reconstruct");
    assert!(
        got_w
            .iter()
            .zip(&want_w)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "file decode differs from the quantizer's reconstruction"
    );
    if let Some(gb) = &got_b {
        assert!(
            gb.iter()
                .zip(&want_b)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "bias decode differs"
        );
    }

    // Every certified vector within its bound.
    let errors = q.measured_errors(&m).expect("errors");
    let at = |i: usize, col: usize, src: &[f32], bias: Option<&[f32]>| -> f64 {
        if col < c.cols {
            f64::from(src[i * c.cols + col])
        } else {
            f64::from(bias.map_or(0.0, |b| b[i]))
        }
    };
    for (j, err) in errors.iter().enumerate() {
        let Some(bound) = q.bound(j) else { continue };
        assert!(
            *err <= bound * (1.0 + 1e-6),
            "vector {j}: f64 error {err} > bound {bound} ({c:?})"
        );
        // The same vector, as decoded from the file (f32).
        let (mut e2, mut norm2) = (0.0f64, 0.0f64);
        for i in 0..d {
            let (row, col) = match c.orientation {
                Orientation::Columns => (i, j),
                Orientation::Rows => (j, i),
            };
            let orig = at(row, col, &c.w, c.bias.as_deref());
            let dec = at(row, col, &got_w, got_b.as_deref());
            e2 += (orig - dec) * (orig - dec);
            norm2 += dec * dec;
        }
        let allowance = norm2.sqrt() * f64::from(f32::EPSILON) / 2.0
            + (d as f64).sqrt() * f64::from(f32::from_bits(1));
        assert!(
            e2.sqrt() <= bound * (1.0 + 1e-6) + allowance,
            "vector {j}: decoded error {} > bound {bound} + f32 rounding {allowance}",
            e2.sqrt()
        );
    }
});
