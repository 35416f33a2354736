//! Small tensors of a pcm pack (first convolutions, 1×1 convolutions, detection heads: too few
//! weights for the model-wide budget's per-tensor costs) get bits of their own: the budget plus
//! 3.5, at least 6, and never so many that the tensor takes more than half its raw bytes — nor
//! fewer than the budget the others share.

mod cli_common;

use std::path::Path;

use cli_common::*;

/// The entry of `name` in `file`'s `sdq info --json`.
fn entry(file: &Path, name: &str) -> serde_json::Value {
    let j: serde_json::Value =
        serde_json::from_str(&assert_ok(&run_p(&[&"info", &file, &"--json"]))).unwrap();
    j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {file:?}"))
        .clone()
}

/// (stored bits per weight, relative error) of `name` in `file`, from `sdq info --json`.
fn tensor(file: &Path, name: &str) -> (f64, f64) {
    let t = entry(file, name);
    assert_eq!(t["encoding"], "pcm", "{t}");
    (
        t["bits_per_weight"].as_f64().unwrap(),
        t["quantization"]["relative_error"].as_f64().unwrap(),
    )
}

fn pack(dir: &Path, model: &Path, bits: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{bits}.sdq"));
    assert_ok(&run_p(&[
        &"pack",
        &model,
        &"-o",
        &out,
        &"--bits-per-weight",
        &bits,
    ]));
    out
}

/// An F16 model: big.weight [256, 256] and a small head.weight [32, 192].
fn f16_model(dir: &Path) -> std::path::PathBuf {
    let m = dir.join("m16.safetensors");
    write(
        &m,
        &[
            f16_tensor("big.weight", &[256, 256], 1),
            f16_tensor("head.weight", &[32, 192], 2),
        ],
        &[],
    );
    m
}

#[test]
fn small_tensors_get_more_bits_than_the_budget_and_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    // head.weight [16, 64]: 1,024 weights, small (its record and steps alone are ~3,400 bits).
    write(
        &m,
        &[
            f32_tensor("big.weight", &[256, 256], 1),
            f32_tensor("head.weight", &[16, 64], 2),
        ],
        &[],
    );
    let at45 = pack(dir.path(), &m, "4.5");
    let at8 = pack(dir.path(), &m, "8");
    let (big_bits, big_err) = tensor(&at45, "big.weight");
    let (head_bits, head_err) = tensor(&at45, "head.weight");
    // 4.5 + 3.5 = 8 bits for the codes and steps, the section padding and model on top.
    assert!(big_bits < 4.6, "{big_bits}");
    assert!(head_bits >= 8.0, "{head_bits}");
    // Three and a half more bits: about 11 times less error.
    assert!(head_err < big_err / 6.0, "{head_err} {big_err}");
    // The small tensor's bits follow the budget (before: 6 whatever the budget).
    let (head_bits8, head_err8) = tensor(&at8, "head.weight");
    assert!(head_bits8 >= 11.5, "{head_bits8}");
    assert!(head_err8 < head_err / 6.0, "{head_err8} {head_err}");
}

#[test]
fn a_small_f16_tensor_takes_at_most_half_its_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // head.weight [32, 192]: 6,144 F16 weights (98,304 raw bits). 8 bits each and the record
    // would pass half of that; it gets fewer, but at least 6.
    let m = f16_model(dir.path());
    let (bits, _) = tensor(&pack(dir.path(), &m, "4.5"), "head.weight");
    assert!((6.0..=8.0).contains(&bits), "{bits}");
}

#[test]
fn a_small_f16_tensor_never_gets_fewer_bits_than_the_budget() {
    // At --bits-per-weight 8, half of an F16 tensor's raw bytes leaves its codes and steps
    // less than 8 bits: before, the small tensor got about 6 while the others got 8.
    let dir = tempfile::tempdir().unwrap();
    let at8 = pack(dir.path(), &f16_model(dir.path()), "8");
    let (head_bits, head_err) = tensor(&at8, "head.weight");
    let (big_bits, big_err) = tensor(&at8, "big.weight");
    assert!((8.0..16.0).contains(&head_bits), "{head_bits}");
    assert!(big_bits <= 8.0, "{big_bits}");
    assert!(head_err <= big_err * 1.1, "{head_err} {big_err}");
}

#[test]
fn a_small_tensor_named_by_include_gets_bits_of_its_own() {
    // Before: named by --include, a small tensor shared the budget, whose bits its record and
    // steps alone exceeded, and came back as zeros (relative error 1.0, "destroyed").
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    // conv.weight [16, 27] (a first 3×3 convolution over 3 channels): 432 weights.
    write(
        &m,
        &[
            f32_tensor("big.weight", &[256, 256], 1),
            f32_tensor("conv.weight", &[16, 27], 3),
        ],
        &[],
    );
    for include in [&["--include", "conv.weight"][..], &["--include", "*"][..]] {
        let out = dir.path().join("inc.sdq");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &m, &"-o", &out];
        for a in include {
            args.push(a);
        }
        let o = run_p(&args);
        assert_ok(&o);
        assert!(!stderr(&o).contains("destroyed"), "{}", stderr(&o));
        let (bits, err) = tensor(&out, "conv.weight");
        assert!(bits >= 6.0, "{include:?}: {bits}");
        assert!(err < 0.05, "{include:?}: {err}");
        assert_ok(&run_p(&[&"verify", &out, &"--against", &m]));
    }
}

/// The encoding of `name` in `file` ("pcm", "raw", …), from `sdq info --json`.
fn encoding(file: &Path, name: &str) -> String {
    entry(file, name)["encoding"].as_str().unwrap().to_string()
}

#[test]
fn depthwise_3x3_kernels_are_quantized_by_default_when_that_halves_them() {
    // dw.weight [256, 1, 3, 3]: rows of d = 9, a depthwise 3×3 convolution. pcm's default
    // smallest d is 9: in F32 it is quantized (bits of its own, well under half of 32); in F16
    // the same bits would not halve it, so it stays raw; --min-dim 16 (the default before) and
    // sigma-delta (whose default stays 16) keep it raw.
    let dir = tempfile::tempdir().unwrap();
    let (m32, m16) = (
        dir.path().join("m32.safetensors"),
        dir.path().join("m16.safetensors"),
    );
    write(
        &m32,
        &[
            f32_tensor("big.weight", &[256, 256], 1),
            f32_tensor("dw.weight", &[256, 1, 3, 3], 4),
        ],
        &[],
    );
    write(
        &m16,
        &[
            f16_tensor("big.weight", &[256, 256], 1),
            f16_tensor("dw.weight", &[256, 1, 3, 3], 4),
        ],
        &[],
    );
    let packed = |m: &Path, tag: &str, extra: &[&str]| {
        let out = dir.path().join(format!("{tag}.sdq"));
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &m, &"-o", &out];
        for a in extra {
            args.push(a);
        }
        assert_ok(&run_p(&args));
        out
    };
    let f32_default = packed(&m32, "f32", &[]);
    assert_eq!(encoding(&f32_default, "dw.weight"), "pcm");
    let (bits, err) = tensor(&f32_default, "dw.weight");
    assert!(bits < 16.0, "{bits}");
    assert!(err < 0.02, "{err}");
    assert_ok(&run_p(&[&"verify", &f32_default, &"--against", &m32]));
    let old = packed(&m32, "f32-16", &["--min-dim", "16"]);
    assert_eq!(encoding(&old, "dw.weight"), "raw");
    assert_eq!(encoding(&packed(&m16, "f16", &[]), "dw.weight"), "raw");
    let sd = packed(&m32, "sd", &["--scheme", "first-order"]);
    assert_eq!(encoding(&sd, "dw.weight"), "raw");
    assert_eq!(encoding(&sd, "big.weight"), "sigma-delta");
}
