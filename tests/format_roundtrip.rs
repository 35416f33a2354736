//! Round trips through the .sdq container: writer → reader (buffer, map, reads) → decode.

use proptest::prelude::*;
use sdq::format::{
    header, DeltaPolicy, Dtype, Encoding, SdqFile, SdqStreamWriter, SdqWriter, TensorPlan,
};
use sdq::{
    Error, FormatError, FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation,
    QuantizedTensor, StepPolicy,
};

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
            ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32 * 0.1
        })
        .collect()
}

struct Case {
    rows: usize,
    cols: usize,
    n: usize,
    k: u32,
    orientation: Orientation,
    bias: bool,
    policy: StepPolicy,
    permuted: bool,
}

fn quantize(c: &Case, w: &[f32], b: &[f32]) -> QuantizedTensor {
    let mut m = Matrix::new(w, c.rows, c.cols).unwrap();
    if c.bias {
        m = m.with_bias(b).unwrap();
    }
    let d = m.layout(c.orientation).vector_len();
    let mut fq =
        FrameQuantizer::new(FrameDescriptor::harmonic(c.n, d).unwrap(), c.k, c.policy).unwrap();
    if c.permuted {
        // A fixed non-identity ordering: even positions first, then odd ones.
        let order: Vec<u32> = (0..c.n as u32)
            .step_by(2)
            .chain((1..c.n as u32).step_by(2))
            .collect();
        fq = fq
            .with_order(Permutation::explicit(order, c.n).unwrap())
            .unwrap();
    }
    fq.quantize(&m, c.orientation).unwrap()
}

fn write(c: &Case, q: &QuantizedTensor, zstd: bool) -> Vec<u8> {
    let mut plan = vec![
        TensorPlan::raw("first", Dtype::I64, &[3]),
        TensorPlan::sigma_delta("w", Dtype::F32, &[c.rows as u64, c.cols as u64], c.bias),
    ];
    if c.bias {
        plan.push(TensorPlan::bias_of("b", Dtype::F32, c.rows as u64, "w"));
    }
    plan.push(TensorPlan::raw("last", Dtype::F16, &[2, 2]));
    let meta = vec![("k".to_string(), "v".to_string())];
    let mut wr = SdqStreamWriter::in_memory(&plan, &meta).unwrap();
    wr.set_zstd(zstd.then_some(3)).unwrap();
    let first: Vec<u8> = [1i64, -2, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    wr.write_raw("first", &first).unwrap();
    wr.write_quantized("w", q, DeltaPolicy::from_step(c.policy))
        .unwrap();
    wr.write_raw("last", &[0, 0x3C, 0, 0xC0, 0, 0, 0, 0x7C])
        .unwrap();
    wr.finish().unwrap().into_inner()
}

fn check(c: &Case, zstd: bool) {
    let w = gaussian(c.rows * c.cols, (c.rows * 31 + c.cols) as u64);
    let b = gaussian(c.rows, 7);
    let q = quantize(c, &w, &b);
    let bytes = write(c, &q, zstd);
    let f = SdqFile::from_bytes(bytes).unwrap();
    f.verify_all().unwrap();
    let mut want_w = vec![0f32; c.rows * c.cols];
    let mut want_b = vec![0f32; c.rows];
    q.reconstruct_into(Some(&mut want_w), c.bias.then_some(&mut want_b[..]))
        .unwrap();
    assert_eq!(f.decode("w").unwrap(), want_w, "weights differ");
    if c.bias {
        assert_eq!(f.decode("b").unwrap(), want_b, "bias differs");
    }
    assert_eq!(f.decode("first").unwrap(), vec![1.0, -2.0, 3.0]);
    let last = f.decode("last").unwrap();
    assert_eq!(&last[..3], &[1.0, -2.0, 0.0]);
    assert!(last[3].is_infinite());
    assert_eq!(
        f.raw_bytes("last").unwrap().as_ref(),
        &[0, 0x3C, 0, 0xC0, 0, 0, 0, 0x7C]
    );
    let t = f.tensor("w").unwrap();
    let Encoding::SigmaDelta(info) = &t.encoding else {
        panic!("w is not sigma-delta")
    };
    assert_eq!(info.k, c.k);
    assert_eq!(info.permutation.is_some(), c.permuted);
    assert_eq!(info.deltas.is_some(), c.policy.per_vector());
    assert_eq!(info.max_bound, q.max_bound());
    let r = f.report();
    assert_eq!(
        r.overhead_bytes + r.tensors.iter().map(|t| t.stored_bytes).sum::<u64>(),
        r.total_bytes
    );
}

#[test]
fn round_trips() {
    use Orientation::*;
    let cases = [
        (Columns, false, StepPolicy::Tensor, false, 1),
        (Columns, true, StepPolicy::Coefficient, false, 4),
        (Rows, true, StepPolicy::Vector, true, 3),
        (Rows, false, StepPolicy::Explicit(0.05), true, 2),
        (Columns, true, StepPolicy::Coefficient, true, 1),
    ];
    for (orientation, bias, policy, permuted, k) in cases {
        let c = Case {
            rows: 12,
            cols: 9,
            n: 40,
            k,
            orientation,
            bias,
            policy,
            permuted,
        };
        check(&c, false);
        if cfg!(feature = "zstd") {
            check(&c, true);
        }
    }
}

#[test]
fn sdq_file_is_send_and_sync() {
    fn assert<T: Send + Sync>() {}
    assert::<SdqFile>();
}

#[test]
fn file_writer_map_and_reads_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sdq");
    let c = Case {
        rows: 16,
        cols: 5,
        n: 50,
        k: 2,
        orientation: Orientation::Columns,
        bias: true,
        policy: StepPolicy::Coefficient,
        permuted: false,
    };
    let w = gaussian(80, 1);
    let b = gaussian(16, 2);
    let q = quantize(&c, &w, &b);
    let plan = [
        TensorPlan::sigma_delta("w", Dtype::BF16, &[16, 5], true),
        TensorPlan::bias_of("b", Dtype::BF16, 16, "w"),
        TensorPlan::raw("z", Dtype::U8, &[0]),
    ];
    let mut wr = SdqWriter::create(&path, &plan, &[]).unwrap();
    wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
        .unwrap();
    wr.write_raw("z", &[]).unwrap();
    wr.finish().unwrap();
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let mapped = SdqFile::open(&path).unwrap();
    let read = SdqFile::open_read(&path).unwrap();
    let buf = SdqFile::from_bytes(std::fs::read(&path).unwrap()).unwrap();
    for name in ["w", "b", "z"] {
        let a = mapped.decode(name).unwrap();
        assert_eq!(a, read.decode(name).unwrap());
        assert_eq!(a, buf.decode(name).unwrap());
    }
    read.verify_all().unwrap();
    assert_eq!(mapped.tensors(), read.tensors());
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sdq");
    {
        let plan = [TensorPlan::raw("a", Dtype::U8, &[4])];
        let _w = SdqWriter::create(&path, &plan, &[]).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A writer that never wrote its tensors refuses to finish and leaves nothing either.
    let plan = [TensorPlan::raw("a", Dtype::U8, &[4])];
    let w = SdqWriter::create(&path, &plan, &[]).unwrap();
    assert!(w.finish().is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn writer_rejects_bad_plans_and_order() {
    let p = |n: &str| TensorPlan::raw(n, Dtype::U8, &[1]);
    assert!(SdqStreamWriter::in_memory(&[p("a"), p("a")], &[]).is_err());
    assert!(SdqStreamWriter::in_memory(&[p("")], &[]).is_err());
    let meta = vec![("k".to_string(), "1".to_string()); 2];
    assert!(SdqStreamWriter::in_memory(&[p("a")], &meta).is_err());
    // Bias of a weight planned without bias.
    let plan = [
        TensorPlan::sigma_delta("w", Dtype::F32, &[4, 4], false),
        TensorPlan::bias_of("b", Dtype::F32, 4, "w"),
    ];
    assert!(SdqStreamWriter::in_memory(&plan, &[]).is_err());
    // A weight planned with a bias that nobody names.
    let plan = [TensorPlan::sigma_delta("w", Dtype::F32, &[4, 4], true)];
    assert!(SdqStreamWriter::in_memory(&plan, &[]).is_err());
    let mut w = SdqStreamWriter::in_memory(&[p("a"), p("b")], &[]).unwrap();
    assert!(w.write_raw("b", &[1]).is_err());
    assert!(w.write_raw("a", &[1, 2]).is_err());
    w.write_raw("a", &[1]).unwrap();
    w.write_raw("b", &[2]).unwrap();
    assert!(w.write_raw("c", &[2]).is_err());
    let f = SdqFile::from_bytes(w.finish().unwrap().into_inner()).unwrap();
    assert_eq!(f.decode("b").unwrap(), vec![2.0]);
}

#[test]
fn empty_file_has_no_padding() {
    let w = SdqStreamWriter::in_memory(&[], &[]).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    assert_eq!(bytes.len(), 64 + 8);
    let f = SdqFile::from_bytes(bytes).unwrap();
    assert!(f.tensors().is_empty());
}

#[test]
fn decode_checks_buffer_and_names() {
    let mut w = SdqStreamWriter::in_memory(&[TensorPlan::raw("a", Dtype::F32, &[2])], &[]).unwrap();
    w.write_raw("a", &[0; 8]).unwrap();
    let f = SdqFile::from_bytes(w.finish().unwrap().into_inner()).unwrap();
    assert!(matches!(f.decode("nope"), Err(Error::NoSuchTensor(_))));
    assert!(matches!(
        f.decode_into("a", &mut [0.0; 3]),
        Err(Error::Parameter(_))
    ));
}

fn small_valid_file() -> Vec<u8> {
    let c = Case {
        rows: 6,
        cols: 3,
        n: 11,
        k: 3,
        orientation: Orientation::Rows,
        bias: true,
        policy: StepPolicy::Coefficient,
        permuted: true,
    };
    let w = gaussian(18, 3);
    let b = gaussian(6, 4);
    let q = quantize(&c, &w, &b);
    write(&c, &q, true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Damage anywhere never panics; a successfully opened damaged file decodes or fails
    /// cleanly, and every single-byte change is detected by open or verify.
    #[test]
    fn damage_is_detected_without_panic(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut bytes = small_valid_file();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        match SdqFile::from_bytes(bytes) {
            Err(_) => {}
            Ok(f) => {
                let verified = f.verify_all();
                for t in f.tensors() {
                    let _ = f.decode(&t.name);
                }
                prop_assert!(verified.is_err(), "byte {} ^ {:#x} went undetected", i, xor);
            }
        }
    }

    /// Arbitrary bytes (with the magic, so the parser goes deeper) never panic.
    #[test]
    fn arbitrary_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = sdq::format::layout::MAGIC.to_vec();
        bytes.extend_from_slice(&tail);
        let _ = header::parse(&bytes);
    }
}

#[test]
fn truncation_anywhere_is_an_error() {
    let bytes = small_valid_file();
    for len in 0..bytes.len() {
        let r = SdqFile::from_bytes(bytes[..len].to_vec());
        assert!(
            matches!(
                r,
                Err(Error::Format(
                    FormatError::TooShort { .. } | FormatError::FileLength { .. }
                ))
            ),
            "truncated to {len}"
        );
    }
}

#[test]
fn sigma_delta_records_keep_the_measured_norms_in_version_2() {
    let c = Case {
        rows: 5,
        cols: 7,
        n: 9,
        k: 4,
        orientation: Orientation::Rows,
        bias: false,
        policy: StepPolicy::Coefficient,
        permuted: false,
    };
    let q = quantize(&c, &gaussian(35, 3), &[]);
    let tag = DeltaPolicy::from_step(c.policy);
    let measured = [TensorPlan::sigma_delta_measured(
        "w",
        Dtype::F32,
        &[5, 7],
        false,
    )];
    let plain = [TensorPlan::sigma_delta("w", Dtype::F32, &[5, 7], false)];
    // Each plan takes its own call, and only finite norms ≥ 0.
    let mut w = SdqStreamWriter::in_memory(&measured, &[]).unwrap();
    assert!(w.write_quantized("w", &q, tag).is_err());
    assert!(w
        .write_quantized_measured("w", &q, tag, f64::NAN, 1.0)
        .is_err());
    assert!(w.write_quantized_measured("w", &q, tag, 0.5, -1.0).is_err());
    w.write_quantized_measured("w", &q, tag, 0.5, 4.0).unwrap();
    let v2 = w.finish().unwrap().into_inner();
    let mut w = SdqStreamWriter::in_memory(&plain, &[]).unwrap();
    assert!(w.write_quantized_measured("w", &q, tag, 0.5, 4.0).is_err());
    w.write_quantized("w", &q, tag).unwrap();
    let v1 = w.finish().unwrap().into_inner();
    // 16 more record bytes; the same codes and the same decoded weights.
    let (f2, f1) = (
        SdqFile::from_bytes(v2).unwrap(),
        SdqFile::from_bytes(v1).unwrap(),
    );
    assert_eq!(f2.tensors()[0].record_len, f1.tensors()[0].record_len + 16);
    assert_eq!(f2.decode("w").unwrap(), f1.decode("w").unwrap());
    let info = |f: &SdqFile| match &f.tensors()[0].encoding {
        Encoding::SigmaDelta(s) => (s.scheme_version, s.norms, s.relative_error()),
        e => panic!("{e:?}"),
    };
    assert_eq!(info(&f2), (2, Some((0.5, 4.0)), Some(0.125)));
    assert_eq!(info(&f1), (1, None, None));
}
