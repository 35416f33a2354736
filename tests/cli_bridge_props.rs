//! Property tests of the safetensors bridge: sdq's streaming writer produces files the
//! safetensors crate reads back exactly; the checkpoint reader never panics on damaged input;
//! the glob matcher agrees with a reference implementation.

use proptest::prelude::*;
use safetensors::tensor::SafeTensors;
use sdq::bridge::glob;
use sdq::bridge::safetensors::{Checkpoint, FloatOut, SafetensorsStreamWriter, TensorSpec};
use sdq::Dtype;

fn dtype() -> impl Strategy<Value = Dtype> {
    prop::sample::select(vec![
        Dtype::F32,
        Dtype::F16,
        Dtype::BF16,
        Dtype::F64,
        Dtype::I64,
        Dtype::U8,
        Dtype::Bool,
        Dtype::I32,
    ])
}

fn name() -> impl Strategy<Value = String> {
    // Any characters, control characters and quotes included.
    "[a-z\\.\"\\\\\u{1b}\n é_0-9]{1,12}"
        .prop_filter("not the metadata key", |s| s != "__metadata__")
}

/// A small reference matcher: recursive, exponential, obviously right.
fn reference(p: &[char], s: &[char]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (None, Some(_)) => false,
        (Some('*'), _) => reference(&p[1..], s) || (!s.is_empty() && reference(p, &s[1..])),
        (Some('?'), Some(_)) => reference(&p[1..], &s[1..]),
        (Some(c), Some(d)) if c == d => reference(&p[1..], &s[1..]),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn written_files_read_back_exactly(
        tensors in prop::collection::vec((name(), dtype(), prop::collection::vec(0u64..4, 0..3)), 0..6),
        metadata in prop::collection::vec(("[a-z\u{1b}\"]{1,6}", "[ -~\n\u{e9}]{0,12}"), 0..4),
    ) {
        let mut seen = std::collections::HashSet::new();
        let specs: Vec<TensorSpec> = tensors
            .into_iter()
            .filter(|(n, _, _)| seen.insert(n.clone()))
            .map(|(name, dtype, shape)| TensorSpec { name, dtype, shape })
            .collect();
        let mut keys = std::collections::HashSet::new();
        let metadata: Vec<(String, String)> =
            metadata.into_iter().filter(|(k, _)| keys.insert(k.clone())).collect();
        let mut w = SafetensorsStreamWriter::new(Vec::new(), "<mem>", &specs, &metadata).unwrap();
        let mut payloads = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let elements: u64 = s.shape.iter().product();
            if let Some(out) = FloatOut::from_dtype(s.dtype) {
                let v: Vec<f32> = (0..elements).map(|k| (k as f32 + i as f32) * 0.5).collect();
                w.write_f32(&s.name, &v, out).unwrap();
                payloads.push(None);
            } else {
                let b: Vec<u8> = (0..elements * s.dtype.size()).map(|k| (k % 2) as u8).collect();
                w.write_bytes(&s.name, &b).unwrap();
                payloads.push(Some(b));
            }
        }
        let bytes = w.finish().unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        prop_assert_eq!(n % 8, 0);
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        // Zero-size tensors share an offset; the crate orders ties arbitrarily.
        let mut got = meta.offset_keys();
        let mut want = names.clone();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
        let m = meta.metadata().clone().unwrap_or_default();
        prop_assert_eq!(m.len(), metadata.len());
        for (k, v) in &metadata {
            prop_assert_eq!(m.get(k), Some(v));
        }
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (s, p) in specs.iter().zip(&payloads) {
            let t = st.tensor(&s.name).unwrap();
            prop_assert_eq!(t.dtype().to_string(), s.dtype.name().to_string());
            let shape: Vec<u64> = t.shape().iter().map(|&x| x as u64).collect();
            prop_assert_eq!(&shape, &s.shape);
            if let Some(b) = p {
                prop_assert_eq!(t.data(), b.as_slice());
            }
        }
    }

    #[test]
    fn damaged_checkpoints_never_panic(
        flips in prop::collection::vec((0usize..400, any::<u8>()), 1..6),
        cut in 0usize..400,
    ) {
        let specs = [
            TensorSpec { name: "w".into(), dtype: Dtype::F32, shape: vec![4, 3] },
            TensorSpec { name: "b".into(), dtype: Dtype::I64, shape: vec![2] },
        ];
        let mut w = SafetensorsStreamWriter::new(Vec::new(), "<mem>", &specs, &[("k".into(), "v".into())]).unwrap();
        w.write_f32("w", &[1.0; 12], FloatOut::F32).unwrap();
        w.write_bytes("b", &[7; 16]).unwrap();
        let mut bytes = w.finish().unwrap();
        for (at, x) in flips {
            let len = bytes.len();
            bytes[at % len] ^= x;
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(ck) = Checkpoint::open(&p) {
            for t in ck.tensors() {
                let _ = ck.bytes(t);
                let _ = ck.to_f32(t);
            }
        }
    }

    #[test]
    fn glob_agrees_with_reference(p in "[ab*?.]{0,8}", s in "[ab.]{0,10}") {
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        prop_assert_eq!(glob::matches(&p, &s), reference(&pc, &sc), "{:?} {:?}", p, s);
    }
}

/// An input truncated by another process after it was opened gives an error naming the cause,
/// never SIGBUS (inputs are read, not mapped), and `pack` leaves no output behind.
#[test]
fn input_truncated_after_open_is_an_error_not_a_crash() {
    use sdq::bridge::pack::{self, PackOptions};
    use sdq::bridge::NoProgress;
    let specs = [
        TensorSpec {
            name: "w".into(),
            dtype: Dtype::F32,
            shape: vec![64, 32],
        },
        TensorSpec {
            name: "ids".into(),
            dtype: Dtype::I64,
            shape: vec![512],
        },
    ];
    let mut w = SafetensorsStreamWriter::new(Vec::new(), "<mem>", &specs, &[]).unwrap();
    let values: Vec<f32> = (0..64 * 32).map(|i| (i % 17) as f32 / 17.0).collect();
    w.write_f32("w", &values, FloatOut::F32).unwrap();
    w.write_bytes("ids", &[3; 512 * 8]).unwrap();
    let bytes = w.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let ck = Checkpoint::open(&p).unwrap();
    // Cut the file inside the first tensor's data, as a concurrent writer might.
    let cut = bytes.len() as u64 - 512 * 8 - 1000;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(cut)
        .unwrap();
    for t in ck.tensors() {
        let e = ck.bytes(t).unwrap_err().to_string();
        assert!(e.contains("ended before"), "{e}");
    }
    let e = ck.to_f32(ck.tensor("w").unwrap()).unwrap_err().to_string();
    assert!(e.contains("ended before the data of tensor \"w\""), "{e}");
    let out = dir.path().join("m.sdq");
    let e = pack::pack(&ck, &out, &PackOptions::default(), &mut NoProgress).unwrap_err();
    assert!(e.to_string().contains("ended before"), "{e}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "m.safetensors")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The phases a pack reports: (what, total, units advanced).
#[derive(Default)]
struct Recorder(Vec<(String, u64, u64)>);

impl sdq::bridge::Progress for Recorder {
    fn start(&mut self, what: &str, total: u64) {
        self.0.push((what.to_owned(), total, 0));
    }
    fn advance_by(&mut self, n: u64) {
        if let Some(p) = self.0.last_mut() {
            p.2 += n;
        }
    }
}

#[test]
fn pack_progress_counts_weights_not_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("m.safetensors");
    let big: Vec<u8> = (0..256 * 256)
        .flat_map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5).to_le_bytes())
        .collect();
    let small: Vec<u8> = [0.5f32; 4].iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = vec![
        (
            "big".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![256, 256], &big)
                .unwrap(),
        ),
        (
            "small".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &small).unwrap(),
        ),
    ];
    safetensors::tensor::serialize_to_file(views, None, &st).unwrap();
    let ck = Checkpoint::open(&st).unwrap();
    let mut rec = Recorder::default();
    sdq::bridge::pack::pack(
        &ck,
        &dir.path().join("m.sdq"),
        &sdq::bridge::pack::PackOptions::default(),
        &mut rec,
    )
    .unwrap();
    let phase = |w: &str| rec.0.iter().find(|p| p.0 == w).cloned().unwrap();
    assert_eq!(
        phase("measuring rate curves"),
        ("measuring rate curves".into(), 65536, 65536)
    );
    assert_eq!(phase("packing"), ("packing".into(), 65540, 65540));
}
