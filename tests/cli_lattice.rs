//! Tensors whose values lie on a grid — a causal attention mask (GPT-2's `attn.bias`), a one-hot
//! table, ternary rows with a scale each, integers stored as BF16 — come back from a default
//! `sdq pack` / `sdq unpack` bit for bit, in their own dtype (a negative zero would come back as
//! a zero), next to ordinary weights that are rounded as before; the whole file still keeps the
//! default cap. A budget below their exact cost rounds them instead.

mod cli_common;

use std::path::Path;

use cli_common::*;
use safetensors::{Dtype, SafeTensors};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The model: a mask [1, 1, 128, 128], a one-hot table [300, 64], ternary F16 rows [64, 96]
/// with a scale each, small integers as BF16 [48, 80], and an ordinary weight [256, 384].
fn model(dir: &Path) -> (std::path::PathBuf, Vec<&'static str>) {
    let mask: Vec<f32> = (0..128 * 128)
        .map(|i| if i % 128 <= i / 128 { 1.0 } else { 0.0 })
        .collect();
    let onehot: Vec<f32> = (0..300 * 64)
        .map(|i| {
            if (i / 64 * 7) % 64 == i % 64 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let u = values(64 * 96, 11, 1.0);
    let ternary: Vec<u8> = u
        .iter()
        .enumerate()
        .flat_map(|(i, &x)| {
            let scale = half::f16::from_f32(0.02 + (i / 96) as f32 * 0.001).to_f32();
            // (+ 0.0: a negative zero comes back as a zero, equal but not the same bits)
            let t = (x * 1.6).round().clamp(-1.0, 1.0) + 0.0;
            half::f16::from_f32(t * scale + 0.0).to_le_bytes()
        })
        .collect();
    let ints: Vec<u8> = values(48 * 80, 12, 1.0)
        .iter()
        .flat_map(|&x| half::bf16::from_f32((x * 9.0).round() + 0.0).to_le_bytes())
        .collect();
    let p = dir.join("grid.safetensors");
    write(
        &p,
        &[
            T {
                name: "h.0.attn.bias".into(),
                dtype: Dtype::F32,
                shape: vec![1, 1, 128, 128],
                bytes: f32_bytes(&mask),
            },
            T {
                name: "table".into(),
                dtype: Dtype::F32,
                shape: vec![300, 64],
                bytes: f32_bytes(&onehot),
            },
            T {
                name: "ternary.weight".into(),
                dtype: Dtype::F16,
                shape: vec![64, 96],
                bytes: ternary,
            },
            T {
                name: "counts".into(),
                dtype: Dtype::BF16,
                shape: vec![48, 80],
                bytes: ints,
            },
            f32_tensor("dense.weight", &[256, 384], 13),
        ],
        &[],
    );
    (
        p,
        vec!["h.0.attn.bias", "table", "ternary.weight", "counts"],
    )
}

#[test]
fn grid_tensors_come_back_bit_for_bit_at_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (m, grid) = model(dir.path());
    let out = dir.path().join("grid.sdq");
    let back = dir.path().join("back.safetensors");
    let said = assert_ok(&run_p(&[&"pack", &m, &"-o", &out]));
    assert!(
        said.contains("4 quantized tensors are rebuilt exactly (values on a grid)"),
        "{said}"
    );
    assert_ok(&run_p(&[&"verify", &out, &"--against", &m]));
    assert_ok(&run_p(&[&"unpack", &out, &"-o", &back]));
    let (a, b) = (std::fs::read(&m).unwrap(), std::fs::read(&back).unwrap());
    let (a, b) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let info = stdout(&run_p(&[&"info", &out, &"--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let tensors = info["tensors"].as_array().unwrap();
    for name in &grid {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        assert_eq!(x.dtype(), y.dtype(), "{name}");
        assert_eq!(x.data(), y.data(), "{name} comes back bit for bit");
        let t = tensors.iter().find(|t| t["name"] == *name).unwrap();
        assert_ne!(t["encoding"], "raw", "{name} is quantized, not stored raw");
    }
    // The ordinary weight is rounded as before.
    let (x, y) = (
        a.tensor("dense.weight").unwrap(),
        b.tensor("dense.weight").unwrap(),
    );
    assert_ne!(x.data(), y.data());
    // The whole file keeps the default cap of 5 bits per float weight.
    let floats: usize = a
        .tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>())
        .sum();
    let bits = 8.0 * std::fs::metadata(&out).unwrap().len() as f64 / floats as f64;
    assert!(bits <= 5.0, "{bits} bits per float weight");
}

#[test]
fn every_budget_rule_takes_lattice_steps_and_too_small_a_budget_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = model(dir.path());
    let decoded_mask = |extra: &[&str]| -> (Vec<f32>, String) {
        let out = dir.path().join("m.sdq");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &m, &"-o", &out];
        for e in extra {
            args.push(e);
        }
        let said = assert_ok(&run_p(&args));
        let f = sdq::format::SdqFile::open(&out).unwrap();
        (f.decode("h.0.attn.bias").unwrap(), said)
    };
    let exact: Vec<f32> = (0..128 * 128)
        .map(|i| if i % 128 <= i / 128 { 1.0 } else { 0.0 })
        .collect();
    for extra in [
        &["--bits-per-weight", "3"][..],
        &["--bits-per-weight", "3", "--same-bits"],
        &["--max-error", "0.001"],
        &["--bits-per-weight", "8"],
    ] {
        assert_eq!(decoded_mask(extra).0, exact, "{extra:?}");
    }
    // Half a bit per weight cannot code a half-full mask exactly (about 1 bit): it is rounded.
    let (got, _) = decoded_mask(&["--bits-per-weight", "0.5", "--same-bits"]);
    assert_ne!(got, exact);
}
