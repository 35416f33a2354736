//! Helpers shared by the `sdq` command-line tests: build checkpoints with the safetensors
//! crate (independently of sdq's own writer) and run the binary.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::{Dtype, TensorView};

/// The binary under test.
pub fn sdq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sdq"))
}

/// Runs `sdq args…` and returns its output.
pub fn run(args: &[&str]) -> Output {
    sdq().args(args).output().expect("run sdq")
}

/// Runs `sdq args…` with path arguments.
pub fn run_p(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    sdq()
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run sdq")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failure with exit code `code` and exactly one `sdq: …` line on stderr
/// containing every `needles`; returns that line.
pub fn assert_fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit code; stderr: {err}; stdout: {}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got {err:?}");
    assert!(lines[0].starts_with("sdq: "), "{err:?}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {err:?}");
    }
    lines[0].to_string()
}

/// Asserts success and returns stdout.
pub fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}; stderr: {}; stdout: {}",
        o.status.code(),
        stderr(o),
        stdout(o)
    );
    stdout(o)
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
pub struct T {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Deterministic pseudo-random f32 values in [-scale, scale].
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale
        })
        .collect()
}

/// An F32 tensor.
pub fn f32_tensor(name: &str, shape: &[usize], seed: u64) -> T {
    let n = shape.iter().product();
    T {
        name: name.into(),
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        bytes: values(n, seed, 0.1)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    }
}

/// An F16 tensor (the values of [`f32_tensor`] with the same seed, rounded to F16).
pub fn f16_tensor(name: &str, shape: &[usize], seed: u64) -> T {
    let n = shape.iter().product();
    T {
        name: name.into(),
        dtype: Dtype::F16,
        shape: shape.to_vec(),
        bytes: values(n, seed, 0.1)
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
    }
}

/// An I64 tensor.
pub fn i64_tensor(name: &str, v: &[i64]) -> T {
    T {
        name: name.into(),
        dtype: Dtype::I64,
        shape: vec![v.len()],
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Writes a safetensors file with the safetensors crate.
pub fn write(path: &Path, tensors: &[T], metadata: &[(&str, &str)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).expect("view"),
            )
        })
        .collect();
    let meta: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    safetensors::tensor::serialize_to_file(views, meta, path).expect("write safetensors");
}

/// A small model: two quantizable weights (one with a bias), a small last layer, an int tensor.
pub fn small_model(dir: &Path) -> PathBuf {
    let p = dir.join("model.safetensors");
    write(
        &p,
        &[
            f32_tensor("fc1.weight", &[32, 20], 1),
            f32_tensor("fc1.bias", &[32], 2),
            f32_tensor("fc2.weight", &[24, 32], 3),
            f32_tensor("fc3.weight", &[4, 24], 4),
            i64_tensor("step", &[7, -1, 1 << 40]),
        ],
        &[("format", "pt"), ("origin", "cli test")],
    );
    p
}
