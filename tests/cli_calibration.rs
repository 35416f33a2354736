//! `sdq pack --calibration`: error feedback through each layer's Gram matrix lowers the error the
//! layer's inputs see at the same stored bits; the file records measured errors that `verify`
//! re-checks; bad calibration files are refused with one line naming the tensor.

mod cli_common;

use std::path::{Path, PathBuf};

use cli_common::*;
use safetensors::tensor::{Dtype, SafeTensors};

/// Correlated inputs: a few strong directions plus weak noise (what real activations look like).
fn inputs(samples: usize, dim: usize, seed: u64) -> Vec<Vec<f64>> {
    let basis: Vec<Vec<f32>> = (0..6).map(|k| values(dim, seed + k, 1.0)).collect();
    let coef = values(samples * 6, seed + 100, 3.0);
    let noise = values(samples * dim, seed + 200, 0.05);
    (0..samples)
        .map(|s| {
            (0..dim)
                .map(|i| {
                    (0..6)
                        .map(|k| f64::from(coef[s * 6 + k] * basis[k][i]))
                        .sum::<f64>()
                        + f64::from(noise[s * dim + i])
                })
                .collect()
        })
        .collect()
}

fn gram(xs: &[Vec<f64>]) -> Vec<f64> {
    let d = xs[0].len();
    let mut h = vec![0.0; d * d];
    for x in xs {
        for i in 0..d {
            for j in 0..d {
                h[i * d + j] += x[i] * x[j] / xs.len() as f64;
            }
        }
    }
    h
}

fn f32_bytes(v: impl IntoIterator<Item = f64>) -> Vec<u8> {
    v.into_iter()
        .flat_map(|x| (x as f32).to_le_bytes())
        .collect()
}

struct Setup {
    model: PathBuf,
    gram: PathBuf,
    /// Held-out inputs of a.weight (not those of the Gram matrix).
    held_out: Vec<Vec<f64>>,
}

/// a.weight [128, 256] and b.weight [96, 128] covered (b by a diagonal), c.weight [128, 128] not.
fn setup(dir: &Path) -> Setup {
    let model = dir.join("model.safetensors");
    write(
        &model,
        &[
            f32_tensor("a.weight", &[128, 256], 1),
            f32_tensor("b.weight", &[96, 128], 2),
            f32_tensor("c.weight", &[128, 128], 3),
        ],
        &[],
    );
    let xa = inputs(2000, 256, 10);
    let xb = inputs(500, 128, 20);
    let diag: Vec<f64> = (0..128)
        .map(|i| xb.iter().map(|x| x[i] * x[i]).sum::<f64>() / xb.len() as f64)
        .collect();
    let gram_path = dir.join("gram.safetensors");
    write(
        &gram_path,
        &[
            T {
                name: "a.weight".into(),
                dtype: Dtype::F32,
                shape: vec![256, 256],
                bytes: f32_bytes(gram(&xa)),
            },
            T {
                name: "b.weight".into(),
                dtype: Dtype::F32,
                shape: vec![128],
                bytes: f32_bytes(diag),
            },
        ],
        &[],
    );
    // Same distribution (same basis seeds), other draws.
    let mut held_out = inputs(2300, 256, 10);
    held_out.drain(..2000);
    Setup {
        model,
        gram: gram_path,
        held_out,
    }
}

fn tensor(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// ‖(W − W̃)X‖ / ‖WX‖ over the held-out inputs X, for W [rows, cols].
fn output_error(w: &[f32], wt: &[f32], cols: usize, xs: &[Vec<f64>]) -> f64 {
    let (mut e2, mut w2) = (0.0, 0.0);
    for (row, trow) in w.chunks(cols).zip(wt.chunks(cols)) {
        for x in xs {
            let y: f64 = row.iter().zip(x).map(|(a, b)| f64::from(*a) * b).sum();
            let yt: f64 = trow.iter().zip(x).map(|(a, b)| f64::from(*a) * b).sum();
            e2 += (y - yt) * (y - yt);
            w2 += y * y;
        }
    }
    (e2 / w2).sqrt()
}

#[test]
fn calibration_lowers_the_held_out_output_error_at_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let (free, cal) = (dir.path().join("free.sdq"), dir.path().join("cal.sdq"));
    assert_ok(&run_p(&[
        &"pack",
        &s.model,
        &"-o",
        &free,
        &"--bits-per-weight",
        &"3",
        &"--same-bits",
    ]));
    let out = assert_ok(&run_p(&[
        &"pack",
        &s.model,
        &"-o",
        &cal,
        &"--bits-per-weight",
        &"3",
        &"--same-bits",
        &"--calibration",
        &s.gram,
    ]));
    assert!(out.contains("calibrated 2 tensors"), "{out}");

    // info: which tensors record measured errors.
    let j: serde_json::Value =
        serde_json::from_str(&assert_ok(&run_p(&[&"info", &cal, &"--json"]))).unwrap();
    let quant = |name: &str, key: &str| {
        j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["quantization"][key]
            .clone()
    };
    assert_eq!(quant("a.weight", "bound"), "recorded (calibrated)");
    assert_eq!(quant("b.weight", "bound"), "recorded (calibrated)");
    assert_eq!(quant("c.weight", "bound"), "certified");
    // Without --frame-family, the calibrated tensors take the harmonic frame (N = d + 1, sign
    // seed 1); the data-free one none.
    assert_eq!(quant("a.weight", "frame"), "harmonic");
    assert_eq!(quant("a.weight", "n"), 257);
    assert_eq!(quant("a.weight", "sign_seed"), 1);
    assert_eq!(quant("b.weight", "frame"), "harmonic");
    assert_eq!(quant("c.weight", "frame"), "identity");
    // With one, every tensor takes it.
    let plain = dir.path().join("plain.sdq");
    assert_ok(&run_p(&[
        &"pack",
        &s.model,
        &"-o",
        &plain,
        &"--bits-per-weight",
        &"3",
        &"--calibration",
        &s.gram,
        &"--frame-family",
        &"identity",
    ]));
    let jp: serde_json::Value =
        serde_json::from_str(&assert_ok(&run_p(&[&"info", &plain, &"--json"]))).unwrap();
    assert!(jp["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["quantization"]["frame"] == "identity"));

    // verify re-checks the recorded weight and output errors.
    let v = assert_ok(&run_p(&[
        &"verify",
        &cal,
        &"--against",
        &s.model,
        &"--calibration",
        &s.gram,
    ]));
    assert!(v.contains("verify: OK"), "{v}");

    // Same stored bits (within the budget), less error on inputs the Gram matrix never saw.
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
    assert!(
        size(&cal) <= size(&free) * 1.02,
        "{} vs {}",
        size(&cal),
        size(&free)
    );
    let (uf, uc) = (dir.path().join("f.st"), dir.path().join("c.st"));
    assert_ok(&run_p(&[&"unpack", &free, &"-o", &uf]));
    assert_ok(&run_p(&[&"unpack", &cal, &"-o", &uc]));
    let w = tensor(&s.model, "a.weight");
    let ef = output_error(&w, &tensor(&uf, "a.weight"), 256, &s.held_out);
    let ec = output_error(&w, &tensor(&uc, "a.weight"), 256, &s.held_out);
    assert!(ec < 0.7 * ef, "calibrated {ec} vs data-free {ef}");
    // The uncovered tensor is packed data-free: the same codes either way.
    assert_eq!(tensor(&uf, "c.weight"), tensor(&uc, "c.weight"));
}

/// A file whose recorded errors understate the real ones fails `verify --against` (weight
/// errors), and with `--calibration` (output errors).
#[test]
fn understated_recorded_errors_fail_verify() {
    use sdq::bridge::calibration::Calibration;
    use sdq::bridge::safetensors::Checkpoint;
    use sdq::bridge::{verify, NoProgress};
    use sdq::format::{SdqWriter, TensorPlan};
    use sdq::quant::pcm::{self, ErrorRecord, PcmOptions, RateTarget};
    use sdq::quant::{Matrix, Orientation};

    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let w = tensor(&s.model, "a.weight");
    let cal = Calibration::open(&s.gram).unwrap();
    let g = cal.gram("a.weight").unwrap().unwrap();
    let q = pcm::quantize_calibrated(
        &Matrix::new(&w, 128, 256).unwrap(),
        Orientation::Rows,
        &PcmOptions {
            target: RateTarget::BitsPerWeight(3.0),
            ..PcmOptions::default()
        },
        &g,
        &pcm::FeedbackOptions::default(),
    )
    .unwrap();
    let ck = Checkpoint::open(&s.model).unwrap();
    let check = |q: &pcm::PcmTensor, with_gram: bool| {
        let path = dir.path().join("t.sdq");
        let plan = [TensorPlan::pcm_recording(
            "a.weight",
            sdq::format::Dtype::F32,
            &[128, 256],
            false,
            ErrorRecord::WeightAndOutput,
        )];
        let mut wr = SdqWriter::create(&path, &plan, &[]).unwrap();
        wr.write_pcm("a.weight", q).unwrap();
        wr.finish().unwrap();
        let f = sdq::SdqFile::open(&path).unwrap();
        let r = verify::verify_against(
            &f,
            &path,
            &ck,
            0.5,
            with_gram.then_some(&cal),
            &mut NoProgress,
        )
        .unwrap();
        let t = r
            .tensors
            .into_iter()
            .find(|t| t.name == "a.weight")
            .unwrap();
        (t.violations, t.output_violations, t.recorded)
    };
    assert_eq!(check(&q, true), (0, 0, true));
    let mut low = q.clone();
    low.vector_errors.iter_mut().for_each(|e| *e *= 0.9);
    assert_eq!(check(&low, false), (128, 0, true));
    let mut low = q.clone();
    low.output_errors.iter_mut().for_each(|e| *e *= 0.9);
    assert_eq!(check(&low, false), (0, 0, true));
    assert_eq!(check(&low, true), (0, 128, true));
}

#[test]
fn bad_calibration_files_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let out = dir.path().join("x.sdq");
    let bad = dir.path().join("bad.safetensors");
    let cases: Vec<(T, &str)> = vec![
        (
            T {
                name: "nope.weight".into(),
                dtype: Dtype::F32,
                shape: vec![4, 4],
                bytes: f32_bytes((0..16).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })),
            },
            "\"nope.weight\" is not a tensor of the checkpoint",
        ),
        (
            T {
                name: "a.weight".into(),
                dtype: Dtype::F32,
                shape: vec![8, 8],
                bytes: f32_bytes((0..64).map(|i| if i % 9 == 0 { 1.0 } else { 0.0 })),
            },
            "dimension 8, but the weight [128, 256] has 256 inputs",
        ),
        (
            T {
                name: "a.weight".into(),
                dtype: Dtype::F32,
                shape: vec![256, 128],
                bytes: f32_bytes((0..256 * 128).map(|_| 0.0)),
            },
            "a Gram matrix is [n, n]",
        ),
        (
            T {
                name: "b.weight".into(),
                dtype: Dtype::F32,
                shape: vec![128, 128],
                bytes: f32_bytes((0..128 * 128).map(|i| if i == 1 { 1.0 } else { 0.0 })),
            },
            "not symmetric",
        ),
        (
            T {
                name: "b.weight".into(),
                dtype: Dtype::F32,
                shape: vec![128],
                bytes: f32_bytes((0..128).map(|i| if i == 3 { f64::NAN } else { 1.0 })),
            },
            "entry 3",
        ),
        (
            T {
                name: "b.weight".into(),
                dtype: Dtype::I32,
                shape: vec![128],
                bytes: vec![0; 512],
            },
            "F32 or F64",
        ),
    ];
    for (t, needle) in cases {
        write(&bad, &[t], &[]);
        let o = run_p(&[&"pack", &s.model, &"-o", &out, &"--calibration", &bad]);
        let err = assert_fails(&o, 3, &[needle, "bad.safetensors"]);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!out.exists(), "a failed pack left {}", out.display());
    }
    // Options calibration cannot work with.
    for args in [
        vec!["--scheme", "first-order"],
        vec!["--axis", "columns"],
        vec!["--max-error", "0.05"],
    ] {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"pack", &s.model, &"-o", &out, &"--calibration", &s.gram];
        for x in &args {
            a.push(x);
        }
        assert_fails(&run_p(&a), 2, &["--calibration"]);
    }
}
