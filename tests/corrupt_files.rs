//! The corrupt-file matrix: each case damages a valid file in one way (recomputing the CRCs that
//! would otherwise catch it first, so that the deeper rule is the one that fails) and asserts the
//! exact error variant. No case may panic.
//!
//! With `SDQ_REGENERATE_FIXTURES=1` the damaged files are also written to `tests/corrupt/`; the
//! committed ones are checked to fail in the same way.

use std::path::Path;

use sdq::format::{DeltaPolicy, Dtype, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::{
    Error, FileKind, FileLimit, FormatError as F, FrameDescriptor, FrameQuantizer, Matrix,
    Orientation, Permutation, StepPolicy,
};

// ---------------------------------------------------------------------------------------------
// Valid base files.

fn inputs(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) % 8192) as f32 / 4096.0 - 1.0
        })
        .collect()
}

/// metadata k1, k2; `a` raw F32 [4, 4]; `w` sigma-delta F32 [6, 5], columns, bias, K = 3,
/// coefficient δ, permuted, harmonic(16, 6); `b` bias-of `w`; `z` raw U8 [100] zeros.
fn base(zstd: bool) -> Vec<u8> {
    let w = inputs(30, 1);
    let b = inputs(6, 2);
    let m = Matrix::new(&w, 6, 5).unwrap().with_bias(&b).unwrap();
    let order: Vec<u32> = (0..16u32).map(|i| (i * 5) % 16).collect();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(16, 6).unwrap(),
        3,
        StepPolicy::Coefficient,
    )
    .unwrap()
    .with_order(Permutation::explicit(order, 16).unwrap())
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    let plan = [
        TensorPlan::raw("a", Dtype::F32, &[4, 4]),
        TensorPlan::sigma_delta("w", Dtype::F32, &[6, 5], true),
        TensorPlan::bias_of("b", Dtype::F32, 6, "w"),
        TensorPlan::raw("z", Dtype::U8, &[100]),
    ];
    let meta = vec![
        ("k1".to_string(), "x".to_string()),
        ("k2".to_string(), "y".to_string()),
    ];
    let mut wr = SdqStreamWriter::in_memory(&plan, &meta).unwrap();
    if zstd {
        wr.set_zstd(Some(3)).unwrap();
    }
    let a: Vec<u8> = inputs(16, 3).iter().flat_map(|x| x.to_le_bytes()).collect();
    wr.write_raw("a", &a).unwrap();
    wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
        .unwrap();
    wr.write_raw("z", &[0; 100]).unwrap();
    wr.finish().unwrap().into_inner()
}

/// One sigma-delta tensor `t` F32 [3, 5], columns, harmonic(7, 3), K = 1, tensor δ: 35 code
/// bits, so the last code byte has 5 unused bits.
fn base_tensor_delta() -> Vec<u8> {
    let w = inputs(15, 4);
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(7, 3).unwrap(),
        1,
        StepPolicy::Tensor,
    )
    .unwrap()
    .quantize(&Matrix::new(&w, 3, 5).unwrap(), Orientation::Columns)
    .unwrap();
    let plan = [TensorPlan::sigma_delta("t", Dtype::F32, &[3, 5], false)];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_quantized("t", &q, DeltaPolicy::Tensor).unwrap();
    wr.finish().unwrap().into_inner()
}

/// One sigma-delta tensor `s` F32 [4, 6], rows, harmonic(7, 6), K = 2, per-vector δ, in a
/// version-2 record (the writer's measured ‖W − W̃‖_F and ‖W‖_F after the slots).
fn base_sd_norms() -> Vec<u8> {
    let w = inputs(24, 6);
    let m = Matrix::new(&w, 4, 6).unwrap();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(7, 6).unwrap(),
        2,
        StepPolicy::Coefficient,
    )
    .unwrap()
    .quantize(&m, Orientation::Rows)
    .unwrap();
    let plan = [TensorPlan::sigma_delta_measured(
        "s",
        Dtype::F32,
        &[4, 6],
        false,
    )];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_quantized_measured("s", &q, DeltaPolicy::Coefficient, 0.25, 2.0)
        .unwrap();
    wr.finish().unwrap().into_inner()
}

/// Two weights quantized with their biases: `w0`, `b0` (bias-of 0), `w1`, `b1` (bias-of 2).
fn two_biases() -> Vec<u8> {
    let plan = [
        TensorPlan::sigma_delta("w0", Dtype::F32, &[4, 3], true),
        TensorPlan::bias_of("b0", Dtype::F32, 4, "w0"),
        TensorPlan::sigma_delta("w1", Dtype::F32, &[4, 3], true),
        TensorPlan::bias_of("b1", Dtype::F32, 4, "w1"),
    ];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    for (i, name) in ["w0", "w1"].iter().enumerate() {
        let w = inputs(12, 10 + i as u64);
        let b = inputs(4, 20 + i as u64);
        let m = Matrix::new(&w, 4, 3).unwrap().with_bias(&b).unwrap();
        let q = FrameQuantizer::new(
            FrameDescriptor::harmonic(8, 4).unwrap(),
            1,
            StepPolicy::Tensor,
        )
        .unwrap()
        .quantize(&m, Orientation::Columns)
        .unwrap();
        wr.write_quantized(name, &q, DeltaPolicy::Tensor).unwrap();
    }
    wr.finish().unwrap().into_inner()
}

/// pcm, built by hand so the codes are known: `p` F32 [3, 5], rows, no frame, K = 3, steps
/// f16 0.5 (one per vector), fixed-width codes (3 bits); `r` F32 [4, 8], rows, harmonic(9, 8),
/// sign flips, group 3, rANS codes, steps f32; `c` F32 [4, 6], rows, quantized with error
/// feedback through a Gram matrix (version 2: recorded weight and output errors).
fn base_pcm() -> Vec<u8> {
    use sdq::codes::stream::{self, Coding};
    use sdq::quant::gram::Gram;
    use sdq::quant::pcm::{self, ErrorRecord, PcmFrame, PcmOptions, RateTarget, StepType};
    use sdq::quant::tensor::MatrixLayout;
    let codes: Vec<i32> = vec![-3, -2, -1, 0, 1, 2, 3, 0, 0, 1, -1, 2, -2, 3, -3];
    let p = pcm::PcmTensor {
        layout: MatrixLayout {
            rows: 3,
            cols: 5,
            has_bias: false,
            orientation: Orientation::Rows,
        },
        frame: PcmFrame::Identity,
        sign_seed: 0,
        group: 5,
        step_type: StepType::F16,
        coding: Coding::Fixed,
        k: 3,
        steps: vec![0.5; 3],
        codes_section: stream::encode(&codes, 5, 3, Coding::Fixed).unwrap(),
        codes,
        max_bound: 0.5 * 0.5 * 5f64.sqrt(),
        error_norm: 0.0,
        weight_norm: 1.0,
        max_vector_error: 0.0,
        alpha: 1.0,
        record: ErrorRecord::APriori,
        vector_errors: Vec::new(),
        output_errors: Vec::new(),
        output_relative_error: None,
    };
    let w = inputs(32, 9);
    let r = pcm::quantize(
        &Matrix::new(&w, 4, 8).unwrap(),
        Orientation::Rows,
        &PcmOptions {
            family: Some(sdq::frame::FrameFamily::Harmonic),
            sign_seed: 7,
            group: 3,
            step_type: StepType::F32,
            coding: Coding::Rans,
            target: RateTarget::Scale(0.05),
            ..PcmOptions::default()
        },
    )
    .unwrap();
    let x = inputs(60, 11);
    let mut h = vec![0.0f64; 36];
    for s in x.chunks(6) {
        for i in 0..6 {
            for j in 0..6 {
                h[i * 6 + j] += f64::from(s[i] * s[j]) / 10.0;
            }
        }
    }
    let wc = inputs(24, 13);
    let c = pcm::quantize_calibrated(
        &Matrix::new(&wc, 4, 6).unwrap(),
        Orientation::Rows,
        &PcmOptions {
            target: RateTarget::Scale(0.3),
            ..PcmOptions::default()
        },
        &Gram::full(6, h).unwrap(),
        &pcm::FeedbackOptions::default(),
    )
    .unwrap();
    let plan = [
        TensorPlan::pcm("p", Dtype::F32, &[3, 5], false),
        TensorPlan::pcm("r", Dtype::F32, &[4, 8], false),
        TensorPlan::pcm_recording(
            "c",
            Dtype::F32,
            &[4, 6],
            false,
            ErrorRecord::WeightAndOutput,
        ),
    ];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_pcm("p", &p).unwrap();
    wr.write_pcm("r", &r).unwrap();
    wr.write_pcm("c", &c).unwrap();
    wr.finish().unwrap().into_inner()
}

fn base_empty() -> Vec<u8> {
    SdqStreamWriter::in_memory(&[], &[])
        .unwrap()
        .finish()
        .unwrap()
        .into_inner()
}

// ---------------------------------------------------------------------------------------------
// Finding and patching fields.

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Field offsets of one tensor record.
#[derive(Clone, Copy)]
struct Rec {
    name: usize,
    dtype: usize,
    rank: usize,
    dims: usize,
    encoding: usize,
    body: usize,
}

impl Rec {
    /// Offset of a section descriptor: slot 0 of a raw body, or codes/deltas/permutation (0/1/2)
    /// of a sigma-delta body.
    fn slot(&self, b: &[u8], i: usize) -> usize {
        match b[self.encoding] {
            0 => self.body,
            // pcm: codes, steps, then (version 2) the errors slot after the error_kind byte.
            3 if i < 2 => self.body + 54 + 29 * i,
            3 => self.body + 113,
            _ => self.body + 52 + 29 * i,
        }
    }
}

/// Offsets of metadata keys and of the tensor records of a valid file.
fn walk(b: &[u8]) -> (Vec<usize>, Vec<Rec>) {
    let mut at = 64;
    let tensors = get_u32(b, at) as usize;
    let meta = get_u32(b, at + 4) as usize;
    at += 8;
    let mut keys = Vec::new();
    for _ in 0..meta {
        keys.push(at);
        at += 4 + get_u32(b, at) as usize;
        at += 4 + get_u32(b, at) as usize;
    }
    let mut recs = Vec::new();
    for _ in 0..tensors {
        let name_len = get_u32(b, at) as usize;
        let dtype = at + 4 + name_len;
        let rank = b[dtype + 1] as usize;
        let encoding = dtype + 2 + 8 * rank;
        let body = encoding + 1;
        recs.push(Rec {
            name: at + 4,
            dtype,
            rank: dtype + 1,
            dims: dtype + 2,
            encoding,
            body,
        });
        at = body
            + match b[encoding] {
                0 => 29,
                1 if b[body + 1] == 2 => 155,
                1 => 139,
                3 if b[body] == 2 => 142,
                3 => 112,
                _ => 4,
            };
    }
    (keys, recs)
}

/// Recomputes the CRC of the section whose descriptor is at `desc`.
fn fix_section_crc(b: &mut [u8], desc: usize) {
    let off = get_u64(b, desc) as usize;
    let len = get_u64(b, desc + 8) as usize;
    let crc = crc32fast::hash(&b[off..off + len]);
    put_u32(b, desc + 25, crc);
}

/// Makes file_len, the header CRC and the preamble CRC agree with the bytes.
fn fix(b: &mut [u8]) {
    let len = b.len() as u64;
    put_u64(b, 28, len);
    let hl = get_u64(b, 16) as usize;
    if hl.checked_add(64).is_some_and(|e| e <= b.len()) {
        let crc = crc32fast::hash(&b[64..64 + hl]);
        put_u32(b, 24, crc);
    }
    let crc = crc32fast::hash(&b[..60]);
    put_u32(b, 60, crc);
}

/// Applies `patch` to a copy of `base` and fixes the CRCs.
fn patched(base: &[u8], patch: impl FnOnce(&mut Vec<u8>, &[Rec], &[usize])) -> Vec<u8> {
    let mut b = base.to_vec();
    let (keys, recs) = walk(&b);
    patch(&mut b, &recs, &keys);
    fix(&mut b);
    b
}

// ---------------------------------------------------------------------------------------------
// The matrix.

/// Opens the bytes, then verifies and decodes every tensor; returns the first error.
fn first_error(bytes: Vec<u8>) -> Option<Error> {
    let f = match SdqFile::from_bytes(bytes) {
        Ok(f) => f,
        Err(e) => return Some(e),
    };
    let names: Vec<String> = f.tensors().iter().map(|t| t.name.clone()).collect();
    for n in &names {
        if let Err(e) = f.decode(n) {
            return Some(e);
        }
    }
    f.verify_all().err()
}

type Check = fn(&Error) -> bool;

macro_rules! fmt_err {
    ($p:pat) => {
        (|e: &Error| matches!(e, Error::Format($p))) as Check
    };
}

#[allow(clippy::vec_init_then_push)] // one push per case reads best
fn cases() -> Vec<(&'static str, Vec<u8>, Check)> {
    let a = base(false);
    let t = base_tensor_delta();
    let e = base_empty();
    // Index of records in `a`: 0 = a (raw), 1 = w (sigma-delta), 2 = b (bias-of), 3 = z (raw).
    let mut v: Vec<(&'static str, Vec<u8>, Check)> = Vec::new();

    // --- Not an .sdq file, or damaged on the way (R1–R3).
    v.push(("empty", vec![], fmt_err!(F::TooShort { len: 0 })));
    v.push((
        "truncated_preamble",
        a[..40].to_vec(),
        fmt_err!(F::TooShort { len: 40 }),
    ));
    v.push((
        "bad_magic",
        [&[0u8, 1, 2, 3, 0xF0, 0xF1, 0xF2, 0xF3][..], &a[8..]].concat(),
        fmt_err!(F::NotSdq {
            looks_like: FileKind::Unknown
        }),
    ));
    v.push((
        "git_lfs_pointer",
        b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n".to_vec(),
        fmt_err!(F::NotSdq { looks_like: FileKind::GitLfsPointer }),
    ));
    v.push((
        "text_file",
        b"These are not the weights you are looking for.\nJust some notes.\n".to_vec(),
        fmt_err!(F::NotSdq {
            looks_like: FileKind::Text
        }),
    ));
    v.push((
        "html_page",
        b"\n<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n".to_vec(),
        fmt_err!(F::NotSdq { looks_like: FileKind::Html }),
    ));
    // Model files of other formats, as a user might hand them to sdq (spec §3.1).
    macro_rules! looks_like {
        ($kind:ident) => {
            fmt_err!(F::NotSdq {
                looks_like: FileKind::$kind
            })
        };
    }
    let others: [(&'static str, &[u8], Check); 7] = [
        (
            "gguf_file",
            b"GGUF\x03\x00\x00\x00\x02\x00\x00\x00",
            looks_like!(Gguf),
        ),
        (
            "zip_archive",
            b"PK\x03\x04\x14\x00archive/data.pkl",
            looks_like!(Zip),
        ),
        (
            "python_pickle",
            b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
            looks_like!(Pickle),
        ),
        (
            "onnx_model",
            b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x00",
            looks_like!(Onnx),
        ),
        (
            "tflite_model",
            b"\x1c\x00\x00\x00TFL3\x14\x00\x20\x00",
            looks_like!(TfLite),
        ),
        (
            "hdf5_file",
            b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00",
            looks_like!(Hdf5),
        ),
        (
            "npy_array",
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', ",
            looks_like!(Npy),
        ),
    ];
    for (name, bytes, check) in others {
        let mut bytes = bytes.to_vec();
        bytes.resize(96, 0);
        v.push((name, bytes, check));
    }
    // A safetensors header of 640 bytes starts 80 02, like a pickle: still safetensors.
    let mut header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_vec();
    header.resize(640, b' ');
    v.push((
        "safetensors_header_640",
        [&640u64.to_le_bytes()[..], &header, &[0, 0, 0x80, 0x3F]].concat(),
        looks_like!(Safetensors),
    ));
    let json = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    v.push((
        "safetensors_file",
        [
            &(json.len() as u64).to_le_bytes()[..],
            json,
            &[0, 0, 0x80, 0x3F],
        ]
        .concat(),
        fmt_err!(F::NotSdq {
            looks_like: FileKind::Safetensors
        }),
    ));
    let mut crlf = Vec::new();
    let mut i = 0;
    while i < a.len() {
        if a[i] == 0x0D && a.get(i + 1) == Some(&0x0A) {
            i += 1;
        }
        crlf.push(a[i]);
        i += 1;
    }
    v.push(("crlf_to_lf", crlf, fmt_err!(F::MangledMagic { .. })));
    let mut seven = a.clone();
    seven[0] &= 0x7F;
    v.push(("seven_bit", seven, fmt_err!(F::MangledMagic { .. })));

    // --- Preamble (R4–R10).
    v.push((
        "future_major",
        patched(&a, |b, _, _| b[8] = 2),
        fmt_err!(F::UnsupportedVersion { major: 2, minor: 0 }),
    ));
    v.push((
        "unknown_flags",
        patched(&a, |b, _, _| b[12] = 1),
        fmt_err!(F::UnknownFlags { flags: 1 }),
    ));
    v.push((
        "reserved_nonzero",
        patched(&a, |b, _, _| b[40] = 9),
        fmt_err!(F::ReservedNonzero { offset: 40 }),
    ));
    let mut pcrc = a.clone();
    pcrc[30] ^= 1; // file_len changed, CRC not recomputed
    v.push(("preamble_crc", pcrc, fmt_err!(F::PreambleChecksum { .. })));
    let mut hcrc = a.clone();
    hcrc[70] ^= 0x10; // inside the header; only the preamble CRC is fixed
    let crc = crc32fast::hash(&hcrc[..60]);
    put_u32(&mut hcrc, 60, crc);
    v.push(("header_crc", hcrc, fmt_err!(F::HeaderChecksum { .. })));
    v.push((
        "truncated_header",
        a[..100].to_vec(),
        fmt_err!(F::FileLength { actual: 100, .. }),
    ));
    v.push((
        "truncated_data",
        a[..a.len() - 10].to_vec(),
        fmt_err!(F::FileLength { .. }),
    ));
    v.push((
        "trailing_bytes_unrecorded",
        [&a[..], b"xyz"].concat(),
        fmt_err!(F::FileLength { .. }),
    ));
    v.push((
        "header_len_past_end",
        patched(&a, |b, _, _| put_u64(b, 16, 1 << 20)),
        fmt_err!(F::HeaderPastEnd { .. }),
    ));
    v.push((
        "header_len_over_limit",
        patched(&a, |b, _, _| put_u64(b, 16, u64::MAX - 10)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::HeaderLen,
            ..
        }),
    ));

    // --- Header structure (R11–R21).
    v.push((
        "tensor_count_over_limit",
        patched(&a, |b, _, _| put_u32(b, 64, u32::MAX)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::TensorCount,
            ..
        }),
    ));
    v.push((
        "tensor_count_past_end",
        patched(&a, |b, _, _| put_u32(b, 64, 999_999)),
        fmt_err!(F::CountPastEnd { what: "tensor", .. }),
    ));
    v.push((
        "metadata_count_past_end",
        patched(&a, |b, _, _| put_u32(b, 68, 60_000)),
        fmt_err!(F::CountPastEnd {
            what: "metadata",
            ..
        }),
    ));
    v.push((
        "metadata_count_over_limit",
        patched(&a, |b, _, _| put_u32(b, 68, 70_000)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::MetadataCount,
            ..
        }),
    ));
    v.push((
        "name_length_past_end",
        patched(&a, |b, r, _| put_u32(b, r[3].name - 4, 1000)),
        fmt_err!(F::HeaderTruncated { .. }),
    ));
    v.push((
        "name_over_limit",
        patched(&a, |b, r, _| put_u32(b, r[0].name - 4, 5000)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::NameLen,
            ..
        }),
    ));
    v.push((
        "rank_over_8",
        patched(&a, |b, r, _| b[r[0].rank] = 9),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::Rank,
            ..
        }),
    ));
    v.push((
        "dims_overflow_u64",
        patched(&a, |b, r, _| {
            put_u64(b, r[0].dims, 1 << 33);
            put_u64(b, r[0].dims + 8, 1 << 33);
        }),
        fmt_err!(F::ShapeOverflow { .. }),
    ));
    v.push((
        "elements_over_limit",
        patched(&a, |b, r, _| {
            put_u64(b, r[0].dims, 1 << 21);
            put_u64(b, r[0].dims + 8, 1 << 21);
        }),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::ElementCount,
            ..
        }),
    ));
    v.push((
        "duplicate_names",
        patched(&a, |b, r, _| b[r[2].name] = b'a'),
        fmt_err!(F::DuplicateName { .. }),
    ));
    v.push((
        "duplicate_metadata_keys",
        patched(&a, |b, _, k| b[k[1] + 5] = b'1'),
        fmt_err!(F::DuplicateKey { .. }),
    ));
    v.push((
        "invalid_utf8_name",
        patched(&a, |b, r, _| b[r[1].name] = 0xFF),
        fmt_err!(F::InvalidUtf8 {
            what: "tensor name",
            ..
        }),
    ));
    v.push((
        "unknown_dtype",
        patched(&a, |b, r, _| b[r[0].dtype] = 15),
        fmt_err!(F::UnknownDtype { id: 15, .. }),
    ));
    v.push((
        "unknown_encoding",
        patched(&a, |b, r, _| b[r[0].encoding] = 7),
        fmt_err!(F::UnknownEncoding { id: 7, .. }),
    ));
    v.push((
        "header_trailing_bytes",
        {
            let mut b = e.clone();
            b.extend_from_slice(&[0, 0, 0, 0]);
            put_u64(&mut b, 16, 12);
            fix(&mut b);
            b
        },
        fmt_err!(F::HeaderTrailingBytes { count: 4 }),
    ));

    // --- Sigma-delta records (R22–R32, R53).
    let sd = |off: usize| move |r: &[Rec]| r[1].body + off;
    v.push((
        "unknown_scheme",
        patched(&a, |b, r, _| b[sd(0)(r)] = 3),
        fmt_err!(F::UnknownScheme { id: 3, .. }),
    ));
    v.push((
        "second_order_with_one_level",
        patched(&t, |b, r, _| b[r[0].body] = 2),
        fmt_err!(F::SchemeLevels { k: 1, .. }),
    ));
    v.push((
        "tetris_frame_too_small",
        // tetris(5, 3): a spectral tetris frame needs N ≥ 2d = 6.
        patched(&t, |b, r, _| {
            b[r[0].body + 2] = 2;
            put_u32(b, r[0].body + 3, 5);
        }),
        fmt_err!(F::FrameTooSmall {
            family: "spectral-tetris",
            n: 5,
            min: 6,
            ..
        }),
    ));
    v.push((
        "unsupported_scheme_version",
        patched(&a, |b, r, _| b[sd(1)(r)] = 3),
        fmt_err!(F::UnsupportedSchemeVersion { version: 3, .. }),
    ));
    // Version 2 appends error_norm (body offset 139) and weight_norm (147).
    let n = base_sd_norms();
    v.push((
        "sd_error_norm_nan",
        patched(&n, |b, r, _| {
            put_u64(b, r[0].body + 139, f64::NAN.to_bits())
        }),
        fmt_err!(F::InvalidCertificate {
            field: "error_norm",
            ..
        }),
    ));
    v.push((
        "sd_weight_norm_negative",
        patched(&n, |b, r, _| {
            put_u64(b, r[0].body + 147, (-1.0f64).to_bits())
        }),
        fmt_err!(F::InvalidCertificate {
            field: "weight_norm",
            ..
        }),
    ));
    v.push((
        "unknown_frame_family",
        patched(&a, |b, r, _| b[sd(2)(r)] = 9),
        fmt_err!(F::UnknownFrameFamily { id: 9, .. }),
    ));
    v.push((
        "bad_orientation",
        patched(&a, |b, r, _| b[sd(11)(r)] = 2),
        fmt_err!(F::BadFieldValue {
            field: "orientation",
            ..
        }),
    ));
    v.push((
        "quantized_integer_dtype",
        patched(&a, |b, r, _| b[r[1].dtype] = 8),
        fmt_err!(F::NotQuantizable { .. }),
    ));
    v.push((
        "n_not_above_d",
        patched(&a, |b, r, _| put_u32(b, sd(3)(r), 6)),
        fmt_err!(F::FrameTooSmall { n: 6, d: 6, .. }),
    ));
    v.push((
        "d_mismatch",
        patched(&a, |b, r, _| put_u32(b, sd(7)(r), 7)),
        fmt_err!(F::DimensionMismatch {
            stored: 7,
            expected: 6,
            ..
        }),
    ));
    v.push((
        "redundancy_over_limit",
        // harmonic(3073, 3): N above 1024·d, refused before the frame is built.
        patched(&t, |b, r, _| put_u32(b, r[0].body + 3, 3073)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::Redundancy,
            value: 3073,
            limit: 3072,
        }),
    ));
    v.push((
        "k_zero",
        patched(&a, |b, r, _| put_u32(b, sd(13)(r), 0)),
        fmt_err!(F::ZeroLevels { .. }),
    ));
    v.push((
        "k_over_limit",
        patched(&a, |b, r, _| put_u32(b, sd(13)(r), 40_000)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::Levels,
            ..
        }),
    ));
    v.push((
        "bits_mismatch",
        patched(&a, |b, r, _| b[sd(17)(r)] = 4),
        fmt_err!(F::BitsMismatch {
            bits: 4,
            k: 3,
            expected: 3,
            ..
        }),
    ));
    v.push((
        "nan_tensor_delta",
        patched(&t, |b, r, _| {
            b[r[0].body + 20..r[0].body + 28].copy_from_slice(&f64::NAN.to_le_bytes())
        }),
        fmt_err!(F::InvalidDelta { vector: None, .. }),
    ));
    v.push((
        "delta_field_in_vector_mode",
        patched(&a, |b, r, _| {
            b[sd(20)(r)..sd(28)(r)].copy_from_slice(&1.0f64.to_le_bytes())
        }),
        fmt_err!(F::InvalidDelta { vector: None, .. }),
    ));
    v.push((
        "negative_sigma",
        patched(&a, |b, r, _| {
            b[sd(28)(r)..sd(36)(r)].copy_from_slice(&(-1.0f64).to_le_bytes())
        }),
        fmt_err!(F::InvalidCertificate { field: "sigma", .. }),
    ));

    // --- Sections (R33–R42).
    v.push((
        "unknown_compression",
        patched(&a, |b, r, _| {
            let s = r[0].slot(b, 0);
            b[s + 24] = 5;
        }),
        fmt_err!(F::UnknownCompression { id: 5, .. }),
    ));
    v.push((
        "deltas_slot_missing",
        patched(&a, |b, r, _| {
            let s = r[1].slot(b, 1);
            b[s..s + 29].fill(0);
        }),
        fmt_err!(F::SlotPresence {
            section: "deltas",
            ..
        }),
    ));
    v.push((
        "decoded_len_vs_shape",
        patched(&a, |b, r, _| {
            let s = r[0].slot(b, 0);
            put_u64(b, s + 8, 68);
            put_u64(b, s + 16, 68);
        }),
        fmt_err!(F::DecodedLenMismatch {
            declared: 68,
            expected: 64,
            ..
        }),
    ));
    v.push((
        "stored_len_vs_decoded_len",
        patched(&a, |b, r, _| {
            let s = r[0].slot(b, 0);
            put_u64(b, s + 8, 60);
        }),
        fmt_err!(F::StoredLenMismatch {
            stored: 60,
            decoded: 64,
            ..
        }),
    ));
    v.push((
        "unaligned_section",
        patched(&a, |b, r, _| {
            let s = r[3].slot(b, 0);
            let o = get_u64(b, s);
            put_u64(b, s, o + 8);
        }),
        fmt_err!(F::UnalignedSection { .. }),
    ));
    v.push((
        "overlapping_sections",
        patched(&a, |b, r, _| {
            let s = r[3].slot(b, 0);
            let o = get_u64(b, s);
            put_u64(b, s, o - 64);
        }),
        fmt_err!(F::SectionOverlap { .. }),
    ));
    v.push((
        "section_hole",
        patched(&a, |b, r, _| {
            let s = r[3].slot(b, 0);
            let o = get_u64(b, s);
            put_u64(b, s, o + 64);
        }),
        fmt_err!(F::SectionGap { .. }),
    ));
    v.push((
        "section_past_end",
        patched(&a, |b, r, _| {
            // `z` is the last section; flagged compressed, its stored_len is free to grow.
            let s = r[3].slot(b, 0);
            b[s + 24] = 1;
            let l = get_u64(b, s + 8);
            put_u64(b, s + 8, l + 100);
        }),
        fmt_err!(F::SectionPastEnd { .. }),
    ));
    v.push((
        "trailing_bytes",
        {
            let mut b = a.clone();
            b.extend_from_slice(&[0; 64]);
            fix(&mut b);
            b
        },
        fmt_err!(F::TrailingData { .. }),
    ));
    v.push((
        "nonzero_padding",
        {
            let mut b = a.clone();
            let hl = get_u64(&b, 16) as usize;
            assert!((64 + hl) % 64 != 0, "no padding after the header");
            b[64 + hl] = 1;
            b
        },
        fmt_err!(F::NonzeroPadding { .. }),
    ));

    // --- Bias links (R43–R46).
    v.push((
        "bias_of_raw_tensor",
        patched(&a, |b, r, _| put_u32(b, r[2].body, 0)),
        fmt_err!(F::BiasTargetInvalid { .. }),
    ));
    v.push((
        "bias_of_out_of_range",
        patched(&a, |b, r, _| put_u32(b, r[2].body, 99)),
        fmt_err!(F::BiasTargetOutOfRange {
            index: 99,
            count: 4,
            ..
        }),
    ));
    v.push((
        "bias_wrong_shape",
        patched(&a, |b, r, _| put_u64(b, r[2].dims, 5)),
        fmt_err!(F::BiasShape { rows: 6, .. }),
    ));
    v.push((
        "bias_referenced_twice",
        patched(&two_biases(), |b, r, _| put_u32(b, r[3].body, 0)),
        fmt_err!(F::BiasReferences { count: 2, .. }),
    ));

    // --- Section contents, found when decoding or verifying (R47–R52).
    v.push((
        "section_crc_mismatch",
        {
            let mut b = a.clone();
            let (_, r) = walk(&b);
            let o = get_u64(&b, r[0].slot(&b, 0)) as usize;
            b[o + 3] ^= 0x40;
            b
        },
        |e| matches!(e, Error::Checksum { what: "data", .. }),
    ));
    v.push((
        "permutation_repeat",
        patched(&a, |b, r, _| {
            let s = r[1].slot(b, 2);
            let o = get_u64(b, s) as usize;
            let first = get_u32(b, o);
            put_u32(b, o + 4, first);
            fix_section_crc(b, s);
        }),
        fmt_err!(F::InvalidPermutation {
            index: 1,
            problem: "repeated",
            ..
        }),
    ));
    v.push((
        "permutation_out_of_range",
        patched(&a, |b, r, _| {
            let s = r[1].slot(b, 2);
            let o = get_u64(b, s) as usize;
            put_u32(b, o + 8, 16);
            fix_section_crc(b, s);
        }),
        fmt_err!(F::InvalidPermutation {
            index: 2,
            problem: "outside 0..N",
            ..
        }),
    ));
    v.push((
        "permutation_identity",
        patched(&a, |b, r, _| {
            let s = r[1].slot(b, 2);
            let o = get_u64(b, s) as usize;
            for k in 0..16 {
                put_u32(b, o + 4 * k, k as u32);
            }
            fix_section_crc(b, s);
        }),
        fmt_err!(F::InvalidPermutation { .. }),
    ));
    v.push((
        "code_out_of_range_k3",
        patched(&a, |b, r, _| {
            let s = r[1].slot(b, 0);
            let o = get_u64(b, s) as usize;
            b[o] |= 0b111; // code 0 of vector 0 becomes 7 ≥ 2K = 6
            fix_section_crc(b, s);
        }),
        fmt_err!(F::CodeOutOfRange {
            vector: 0,
            code: 7,
            levels: 6,
            ..
        }),
    ));
    v.push((
        "code_padding_nonzero",
        patched(&t, |b, r, _| {
            let s = r[0].slot(b, 0);
            let o = get_u64(b, s) as usize;
            let len = get_u64(b, s + 8) as usize;
            b[o + len - 1] |= 0x80;
            fix_section_crc(b, s);
        }),
        fmt_err!(F::CodePaddingNonzero { .. }),
    ));
    v.push((
        "nan_vector_delta",
        patched(&a, |b, r, _| {
            let s = r[1].slot(b, 1);
            let o = get_u64(b, s) as usize;
            b[o + 16..o + 24].copy_from_slice(&f64::NAN.to_le_bytes());
            fix_section_crc(b, s);
        }),
        fmt_err!(F::InvalidDelta {
            vector: Some(2),
            ..
        }),
    ));
    // The compression flag set on plain bytes: not a zstd frame, or no zstd in this build.
    v.push((
        "compression_flag_on_plain_bytes",
        patched(&a, |b, r, _| {
            let s = r[3].slot(b, 0);
            b[s + 24] = 1;
        }),
        if cfg!(feature = "zstd") {
            fmt_err!(F::Decompression {
                problem: "is not a valid zstd stream",
                ..
            })
        } else {
            fmt_err!(F::UnsupportedCompression { .. })
        },
    ));
    #[cfg(feature = "zstd")]
    {
        let z = base(true);
        // Replace the last section (z, 100 zero bytes) by a zstd frame of 2000 zero bytes.
        let bomb = |n: usize| {
            let mut b = z.clone();
            let (_, r) = walk(&b);
            let s = r[3].slot(&b, 0);
            let o = get_u64(&b, s) as usize;
            let frame = zstd::bulk::compress(&vec![0u8; n], 3).unwrap();
            b.truncate(o);
            b.extend_from_slice(&frame);
            put_u64(&mut b, s + 8, frame.len() as u64);
            b[s + 24] = 1;
            fix_section_crc(&mut b, s);
            fix(&mut b);
            b
        };
        v.push((
            "zstd_inflates_past_declared",
            bomb(2000),
            fmt_err!(F::Decompression {
                problem: "inflates past its declared size",
                ..
            }),
        ));
        v.push((
            "zstd_bytes_after_frame",
            {
                let mut b = z.clone();
                let (_, r) = walk(&b);
                let s = r[3].slot(&b, 0);
                let l = get_u64(&b, s + 8);
                put_u64(&mut b, s + 8, l + 3);
                b.extend_from_slice(&[1, 2, 3]);
                fix_section_crc(&mut b, s);
                fix(&mut b);
                b
            },
            fmt_err!(F::Decompression {
                problem: "has bytes after its one zstd frame",
                ..
            }),
        ));
        v.push((
            "zstd_falls_short",
            bomb(50),
            fmt_err!(F::Decompression {
                problem: "decompresses to fewer bytes than declared",
                ..
            }),
        ));
    }
    v
}

/// The pcm cases (R23–R25, R28, R32, R34, R35, R11, R54–R58). Records: 0 = p (fixed), 1 = r
/// (rANS), 2 = c (version 2, recorded errors).
fn pcm_cases(v: &mut Vec<(&'static str, Vec<u8>, Check)>) {
    let p = base_pcm();
    let body = |r: &[Rec], i: usize| r[i].body;
    v.push((
        "pcm_scheme_version_3",
        patched(&p, |b, r, _| b[body(r, 2)] = 3),
        fmt_err!(F::UnsupportedSchemeVersion { version: 3, .. }),
    ));
    v.push((
        "pcm_bad_error_kind",
        patched(&p, |b, r, _| b[body(r, 2) + 112] = 3),
        fmt_err!(F::BadFieldValue {
            field: "error_kind",
            value: 3,
            ..
        }),
    ));
    v.push((
        "pcm_errors_len",
        patched(&p, |b, r, _| b[body(r, 2) + 112] = 1),
        fmt_err!(F::DecodedLenMismatch {
            section: "errors",
            ..
        }),
    ));
    v.push((
        "pcm_errors_absent",
        patched(&p, |b, r, _| {
            let desc = r[2].slot(b, 2);
            b[desc..desc + 29].fill(0);
        }),
        fmt_err!(F::SlotPresence {
            section: "errors",
            ..
        }),
    ));
    v.push((
        "pcm_recorded_error_nan",
        patched(&p, |b, r, _| {
            let desc = r[2].slot(b, 2);
            let off = get_u64(b, desc) as usize;
            b[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::InvalidRecordedError {
            vector: 0,
            what: "weight error",
            ..
        }),
    ));
    v.push((
        "pcm_recorded_output_error_negative",
        patched(&p, |b, r, _| {
            // Vector 1's output error: after the 4 weight errors.
            let desc = r[2].slot(b, 2);
            let off = get_u64(b, desc) as usize + 4 * 5;
            b[off..off + 4].copy_from_slice(&(-1.0f32).to_le_bytes());
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::InvalidRecordedError {
            vector: 1,
            what: "output error",
            ..
        }),
    ));
    v.push((
        "pcm_unknown_family",
        patched(&p, |b, r, _| b[body(r, 0) + 1] = 7),
        fmt_err!(F::UnknownFrameFamily { id: 7, .. }),
    ));
    v.push((
        "pcm_identity_n_not_d",
        patched(&p, |b, r, _| put_u32(b, body(r, 0) + 2, 6)),
        fmt_err!(F::FrameTooSmall { n: 6, d: 5, .. }),
    ));
    v.push((
        "pcm_group_zero",
        patched(&p, |b, r, _| put_u32(b, body(r, 0) + 24, 0)),
        fmt_err!(F::BadGroup { group: 0, .. }),
    ));
    v.push((
        "pcm_group_over_n",
        patched(&p, |b, r, _| put_u32(b, body(r, 0) + 24, 6)),
        fmt_err!(F::BadGroup { group: 6, n: 5, .. }),
    ));
    v.push((
        "pcm_bad_step_type",
        patched(&p, |b, r, _| b[body(r, 0) + 28] = 6),
        fmt_err!(F::BadFieldValue {
            field: "step_type",
            value: 6,
            ..
        }),
    ));
    v.push((
        "pcm_bad_coding",
        patched(&p, |b, r, _| b[body(r, 0) + 29] = 2),
        fmt_err!(F::BadFieldValue {
            field: "coding",
            value: 2,
            ..
        }),
    ));
    v.push((
        "pcm_k_over_limit",
        patched(&p, |b, r, _| put_u32(b, body(r, 0) + 12, 40_000)),
        fmt_err!(F::LimitExceeded {
            what: FileLimit::Levels,
            ..
        }),
    ));
    v.push((
        "pcm_steps_len",
        patched(&p, |b, r, _| b[body(r, 0) + 28] = 9),
        fmt_err!(F::DecodedLenMismatch {
            section: "steps",
            ..
        }),
    ));
    v.push((
        "pcm_error_norm_nan",
        patched(&p, |b, r, _| {
            put_u64(b, body(r, 0) + 38, f64::NAN.to_bits())
        }),
        fmt_err!(F::InvalidCertificate {
            field: "error_norm",
            ..
        }),
    ));
    v.push((
        "pcm_step_nan",
        patched(&p, |b, r, _| {
            let desc = r[0].slot(b, 1);
            let off = get_u64(b, desc) as usize;
            b[off..off + 2].copy_from_slice(&0x7E00u16.to_le_bytes());
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::InvalidStep { vector: 0, .. }),
    ));
    v.push((
        "pcm_fixed_code_out_of_range",
        patched(&p, |b, r, _| {
            // The first 3-bit code holds q + K = 0; 7 is above 2K = 6.
            let desc = r[0].slot(b, 0);
            let off = get_u64(b, desc) as usize;
            b[off] |= 0b111;
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::PcmCodeOutOfRange {
            vector: 0,
            code: 4,
            k: 3,
            ..
        }),
    ));
    v.push((
        "pcm_rans_code_out_of_range",
        patched(&p, |b, r, _| {
            let k = get_u32(b, body(r, 1) + 12);
            put_u32(b, body(r, 1) + 12, k - 1);
        }),
        fmt_err!(F::PcmCodeOutOfRange { .. }),
    ));
    v.push((
        "pcm_rans_model_sum",
        patched(&p, |b, r, _| {
            // Byte 0 is s, bytes 1-2 the symbol count, byte 3 starts the first frequency.
            let desc = r[1].slot(b, 0);
            let off = get_u64(b, desc) as usize;
            b[off + 3] ^= 1;
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::CodeStream { .. }),
    ));
    v.push((
        "pcm_rans_chunk_past_end",
        patched(&p, |b, r, _| {
            let desc = r[1].slot(b, 0);
            let off = get_u64(b, desc) as usize;
            let (_, model) = sdq::codes::rans::Model::read(&b[off + 1..]).unwrap();
            let table = off + 1 + model + 4;
            put_u32(b, table, 1 << 30);
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::CodeStream { .. }),
    ));
    v.push((
        "pcm_rans_chunk_vectors_over_limit",
        patched(&p, |b, r, _| {
            // N = 9 allows 7281 vectors per chunk at most; a huge V would size huge buffers.
            let desc = r[1].slot(b, 0);
            let off = get_u64(b, desc) as usize;
            let (_, model) = sdq::codes::rans::Model::read(&b[off + 1..]).unwrap();
            put_u32(b, off + 1 + model, u32::MAX);
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::CodeStream { .. }),
    ));
    v.push((
        "pcm_rans_block_damaged",
        patched(&p, |b, r, _| {
            let desc = r[1].slot(b, 0);
            let off = get_u64(b, desc) as usize;
            let (_, model) = sdq::codes::rans::Model::read(&b[off + 1..]).unwrap();
            let first_block = off + 1 + model + 4 + 4;
            // The block's initial state: any change breaks the exact-decoding checks.
            b[first_block] ^= 0x55;
            b[first_block + 1] ^= 0x0F;
            fix_section_crc(b, desc);
        }),
        fmt_err!(F::CodeStream { .. } | F::PcmCodeOutOfRange { .. }),
    ));
}

#[test]
fn every_corruption_is_rejected_with_its_own_error() {
    let mut cases = cases();
    pcm_cases(&mut cases);
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corrupt");
    let regenerate = std::env::var_os("SDQ_REGENERATE_FIXTURES").is_some_and(|v| v == "1");
    let mut names = std::collections::HashSet::new();
    for (name, bytes, check) in cases {
        assert!(names.insert(name), "two cases named {name}");
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.sdq")), &bytes).unwrap();
        }
        let committed = dir.join(format!("{name}.sdq"));
        let mut inputs = vec![("generated", bytes)];
        if let Ok(b) = std::fs::read(&committed) {
            inputs.push(("committed", b));
        }
        for (which, bytes) in inputs {
            let err = first_error(bytes);
            match &err {
                Some(e) if check(e) => {
                    // Every message names its rule in plain words.
                    assert!(!e.to_string().is_empty());
                }
                _ => panic!("{which} case {name}: unexpected result {err:?}"),
            }
        }
    }
}

#[test]
fn the_bases_are_valid() {
    for b in [
        base(false),
        base(cfg!(feature = "zstd")),
        base_tensor_delta(),
        base_empty(),
        two_biases(),
        base_pcm(),
        base_sd_norms(),
    ] {
        assert!(first_error(b).is_none());
    }
}

#[test]
fn messages_say_what_the_file_looks_like() {
    let e = first_error(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n".to_vec(),
    )
    .unwrap();
    assert!(e.to_string().contains("Git LFS pointer"), "{e}");
    let e = first_error(base(false)[..100].to_vec()).unwrap();
    assert!(e.to_string().contains("truncated"), "{e}");
}

/// Reading through the read-based path and the map reports the same errors as the buffer.
#[test]
fn file_paths_agree_with_buffers() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, check) in cases().into_iter().take(25) {
        let p = dir.path().join(format!("{name}.sdq"));
        std::fs::write(&p, &bytes).unwrap();
        for r in [SdqFile::open(&p), SdqFile::open_read(&p)] {
            match r {
                Err(e) => assert!(check(&e), "{name}: {e:?}"),
                Ok(f) => {
                    let err = f
                        .tensors()
                        .iter()
                        .find_map(|t| f.decode(&t.name).err())
                        .or_else(|| f.verify_all().err());
                    assert!(err.as_ref().is_some_and(check), "{name}: {err:?}");
                }
            }
        }
    }
}
