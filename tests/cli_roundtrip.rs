//! `sdq pack` → `info` → `verify` → `unpack` round trips, checked by re-reading the output
//! with the safetensors crate: names, order, dtypes, shapes, metadata, raw bytes, bounds.

mod cli_common;

use std::path::Path;

use cli_common::*;
use safetensors::tensor::{Dtype, SafeTensors};

/// (names in data-offset order, metadata) of a safetensors file, read by the safetensors crate.
fn layout(bytes: &[u8]) -> (Vec<String>, Vec<(String, String)>) {
    let (_, meta) = SafeTensors::read_metadata(bytes).expect("valid safetensors");
    let mut m: Vec<(String, String)> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    m.sort();
    (meta.offset_keys(), m)
}

fn info_json(q: &Path) -> serde_json::Value {
    let out = assert_ok(&run_p(&[&"info", &q, &"--json"]));
    serde_json::from_str(&out).expect("info --json is JSON")
}

#[test]
fn pack_unpack_round_trip_keeps_names_order_metadata_and_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    let out = assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &q,
    ]));
    assert!(out.contains("largest certified bound"), "{out}");
    assert!(out.contains("vs fp32"), "{out}");
    assert_ok(&run_p(&[&"verify", &q, &"--against", &st]));
    let un = dir.path().join("un.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &un]));

    let orig = std::fs::read(&st).unwrap();
    let back = std::fs::read(&un).unwrap();
    assert_eq!(layout(&orig), layout(&back));
    let a = SafeTensors::deserialize(&orig).unwrap();
    let b = SafeTensors::deserialize(&back).unwrap();
    let j = info_json(&q);
    for (name, ta) in a.tensors() {
        let tb = b.tensor(&name).unwrap();
        assert_eq!(ta.shape(), tb.shape(), "{name}");
        let info = j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name.as_str())
            .unwrap();
        match info["encoding"].as_str().unwrap() {
            "raw" => {
                assert_eq!(ta.dtype(), tb.dtype(), "{name}");
                assert_eq!(ta.data(), tb.data(), "{name} bit-exact");
            }
            enc => {
                assert_eq!(enc, "sigma-delta", "{name}");
                assert_eq!(tb.dtype(), Dtype::F32);
                // Every column (d = rows) within the file's largest certified bound.
                let bound = info["quantization"]["max_bound"].as_f64().unwrap();
                let (rows, cols) = (ta.shape()[0], ta.shape()[1..].iter().product::<usize>());
                let f = |d: &[u8], i: usize| {
                    f32::from_le_bytes(d[4 * i..4 * i + 4].try_into().unwrap()) as f64
                };
                for c in 0..cols {
                    let e: f64 = (0..rows)
                        .map(|r| (f(ta.data(), r * cols + c) - f(tb.data(), r * cols + c)).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    assert!(e <= bound, "{name} column {c}: {e} > {bound}");
                }
            }
        }
    }
    // Defaults: fc1 (d = 32) and fc2 (d = 24) quantized, fc3 (d = 4 < 16), the 1-D bias and the
    // int64 tensor raw.
    let enc: Vec<(&str, &str)> = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["encoding"].as_str().unwrap()))
        .collect();
    for (n, e) in [
        ("fc1.weight", "sigma-delta"),
        ("fc2.weight", "sigma-delta"),
        ("fc1.bias", "raw"),
        ("fc3.weight", "raw"),
        ("step", "raw"),
    ] {
        assert!(enc.contains(&(n, e)), "{n}: {enc:?}");
    }
}

#[test]
fn info_json_schema() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &q,
        &"--bias",
    ]));
    let j = info_json(&q);
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["format_version"], "1.0");
    assert_eq!(j["metadata"]["format"], "pt");
    assert_eq!(j["file_bytes"], std::fs::metadata(&q).unwrap().len());
    let t = j["tensors"].as_array().unwrap();
    assert_eq!(t.len(), 5);
    let w = t.iter().find(|t| t["name"] == "fc1.weight").unwrap();
    let qn = &w["quantization"];
    assert_eq!(qn["frame"], "harmonic");
    assert_eq!(qn["d"], 32);
    assert_eq!(qn["n"], 128); // 4 bits per weight, 1 bit per code
    assert_eq!(qn["k"], 1);
    assert_eq!(qn["bits_per_code"], 1);
    assert_eq!(qn["has_bias"], true);
    assert_eq!(qn["vectors"], 21);
    assert_eq!(qn["delta_policy"], "coefficient");
    assert_eq!(qn["uncertified"], 0);
    assert!(qn["max_bound"].as_f64().unwrap() > 0.0);
    let b = t.iter().find(|t| t["name"] == "fc1.bias").unwrap();
    assert_eq!(b["encoding"], "bias-of");
    assert_eq!(b["bias_of"], "fc1.weight");
    assert!(b["quantization"].is_null());
    let tot = &j["totals"];
    assert_eq!(tot["tensors"], 5);
    assert_eq!(tot["quantized"], 2);
    assert_eq!(tot["stored_bytes"], j["file_bytes"]);
    let ratio = tot["ratio_fp32"].as_f64().unwrap();
    let want = tot["fp32_bytes"].as_f64().unwrap() / tot["stored_bytes"].as_f64().unwrap();
    assert!((ratio - want).abs() < 1e-12);
    // --tensor selects; the totals stay those of the file.
    let out = assert_ok(&run_p(&[&"info", &q, &"--json", &"--tensor", &"step"]));
    let one: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(one["tensors"].as_array().unwrap().len(), 1);
    assert_eq!(one["totals"], j["totals"]);
    // Human output: the table and the savings lines.
    let human = assert_ok(&run_p(&[&"info", &q]));
    for s in [
        "name",
        "bits/weight",
        "bias-of fc1.weight",
        "vs fp32",
        "vs fp16",
        "format 1.0",
    ] {
        assert!(human.contains(s), "{s:?} in {human}");
    }
    // -o writes the same to a file.
    let f = dir.path().join("info.json");
    assert_ok(&run_p(&[&"info", &q, &"--json", &"-o", &f]));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        serde_json::to_string_pretty(&j).unwrap() + "\n"
    );
}

#[test]
fn bias_is_quantized_with_its_weight_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    for axis in ["columns", "rows"] {
        let q = dir.path().join(format!("{axis}.sdq"));
        assert_ok(&run_p(&[
            &"pack",
            &"--scheme",
            &"first-order",
            &st,
            &"-o",
            &q,
            &"--bias",
            &"--axis",
            &axis,
        ]));
        let out = assert_ok(&run_p(&[&"verify", &q, &"--against", &st]));
        assert!(out.contains("ok (with its weight)"), "{out}");
        let un = dir.path().join(format!("{axis}.safetensors"));
        assert_ok(&run_p(&[
            &"unpack",
            &q,
            &"-o",
            &un,
            &"--tensor",
            &"fc1.bias",
        ]));
        let bytes = std::fs::read(&un).unwrap();
        let st2 = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st2.names(), vec!["fc1.bias"]);
        assert_eq!(st2.tensor("fc1.bias").unwrap().shape(), &[32]);
    }
}

#[test]
fn unpack_to_stdout_equals_unpack_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let f = dir.path().join("u.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &f]));
    let o = run_p(&[&"unpack", &q, &"-o", &"-"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&f).unwrap());
    // info to stdout with -o - as well.
    assert_ok(&run_p(&[&"info", &q, &"-o", &"-"]));
}

#[test]
fn half_precision_inputs_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.safetensors");
    let vals = values(24 * 10, 5, 0.5);
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let f64b: Vec<u8> = vals
        .iter()
        .flat_map(|&x| f64::from(x).to_le_bytes())
        .collect();
    write(
        &p,
        &[
            T {
                name: "a".into(),
                dtype: Dtype::F16,
                shape: vec![24, 10],
                bytes: f16,
            },
            T {
                name: "b".into(),
                dtype: Dtype::BF16,
                shape: vec![24, 10],
                bytes: bf16,
            },
            T {
                name: "c".into(),
                dtype: Dtype::F64,
                shape: vec![24, 2, 5],
                bytes: f64b,
            },
        ],
        &[],
    );
    let q = dir.path().join("h.sdq");
    assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &p,
        &"-o",
        &q,
    ]));
    assert_ok(&run_p(&[&"verify", &q, &"--against", &p]));
    let j = info_json(&q);
    let dtype = |n: &str| {
        j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap()["dtype"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!([dtype("a"), dtype("b"), dtype("c")], ["F16", "BF16", "F64"]);
    for (flag, want) in [
        ("f32", [Dtype::F32; 3]),
        ("f16", [Dtype::F16; 3]),
        ("bf16", [Dtype::BF16; 3]),
        ("original", [Dtype::F16, Dtype::BF16, Dtype::F32]),
    ] {
        let u = dir.path().join(format!("{flag}.safetensors"));
        assert_ok(&run_p(&[&"unpack", &q, &"-o", &u, &"--dtype", &flag]));
        let bytes = std::fs::read(&u).unwrap();
        let t = SafeTensors::deserialize(&bytes).unwrap();
        let got: Vec<Dtype> = ["a", "b", "c"]
            .iter()
            .map(|n| t.tensor(n).unwrap().dtype())
            .collect();
        assert_eq!(got, want, "{flag}");
        assert_eq!(t.tensor("c").unwrap().shape(), &[24, 2, 5]);
    }
}

#[test]
fn include_exclude_and_sharded_input() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("model-00001-of-00002.safetensors"),
        &[
            f32_tensor("layers.0.weight", &[20, 8], 1),
            f32_tensor("head.weight", &[3, 80], 2),
        ],
        &[("format", "pt")],
    );
    write(
        &dir.path().join("model-00002-of-00002.safetensors"),
        &[
            f32_tensor("layers.1.weight", &[20, 20], 3),
            i64_tensor("pos", &[1, 2]),
        ],
        &[("format", "pt")],
    );
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"metadata": {"total_size": 2296}, "weight_map": {
            "layers.0.weight": "model-00001-of-00002.safetensors",
            "head.weight": "model-00001-of-00002.safetensors",
            "layers.1.weight": "model-00002-of-00002.safetensors",
            "pos": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &index,
        &"-o",
        &q,
    ]));
    assert_ok(&run_p(&[&"verify", &q, &"--against", &index]));
    // The directory works as input too.
    assert_ok(&run_p(&[&"verify", &q, &"--against", &dir.path()]));
    let j = info_json(&q);
    let enc = |j: &serde_json::Value, n: &str| {
        j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .unwrap()["encoding"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(enc(&j, "layers.0.weight"), "sigma-delta");
    assert_eq!(enc(&j, "layers.1.weight"), "sigma-delta");
    assert_eq!(enc(&j, "head.weight"), "raw");
    assert_eq!(j["metadata"]["total_size"], "2296");
    assert_eq!(j["metadata"]["format"], "pt");
    // --exclude keeps matching tensors raw; --include quantizes only (and even small) matches.
    assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &index,
        &"-o",
        &q,
        &"--exclude",
        &"layers.1.*",
    ]));
    let j = info_json(&q);
    assert_eq!(enc(&j, "layers.1.weight"), "raw");
    assert_eq!(enc(&j, "layers.0.weight"), "sigma-delta");
    let o = run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &index,
        &"-o",
        &q,
        &"--include",
        &"head.*",
        &"--include",
        &"nothing*",
        // One δ for the tensor: with d = 3, eight bytes of δ per vector would make it larger
        // than raw (and stored raw).
        &"--delta",
        &"tensor",
    ]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("--include \"nothing*\" matched no tensor"),
        "{}",
        stderr(&o)
    );
    let j = info_json(&q);
    assert_eq!(enc(&j, "head.weight"), "sigma-delta");
    assert_eq!(enc(&j, "layers.0.weight"), "raw");
    // Order: shard by shard, each by offset.
    let un = dir.path().join("un.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &un]));
    let (names, _) = layout(&std::fs::read(&un).unwrap());
    let n1 = layout(&std::fs::read(dir.path().join("model-00001-of-00002.safetensors")).unwrap()).0;
    let n2 = layout(&std::fs::read(dir.path().join("model-00002-of-00002.safetensors")).unwrap()).0;
    assert_eq!(names, [n1, n2].concat());
}

#[test]
fn uniform_and_explicit_delta() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("u.sdq");
    let out = assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &q,
        &"--delta",
        &"uniform",
        &"--frame-size",
        &"64",
    ]));
    assert!(out.contains("uniform step size"), "{out}");
    let j = info_json(&q);
    let deltas: Vec<f64> = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["encoding"] == "sigma-delta")
        .map(|t| {
            assert_eq!(t["quantization"]["delta_policy"], "uniform");
            t["quantization"]["delta"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(deltas.len(), 2);
    assert_eq!(deltas[0], deltas[1]);
    // Few code bits per weight on small random tensors: the bounds hold, the relative error
    // is above verify's default limit of 0.5.
    assert_ok(&run_p(&[
        &"verify",
        &q,
        &"--against",
        &st,
        &"--max-relative-error",
        &"4",
    ]));
    // A tiny explicit δ certifies nothing: pack warns (issue 14 item 2).
    let packed = run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &q,
        &"--delta",
        &"1e-6",
    ]);
    assert_ok(&packed);
    assert!(
        stderr(&packed).contains("are not certified"),
        "{}",
        stderr(&packed)
    );
    // δ = 1e-6 certifies no vector: no bound is violated, but verify fails on the uncertified
    // vectors.
    let o = run_p(&[&"verify", &q, &"--against", &st]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(" 0 violations") && out.contains("are not certified"),
        "{out}"
    );
    // A huge explicit δ certifies garbage: pack warns, verify fails on the relative error.
    let q2 = dir.path().join("huge.sdq");
    let packed = run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &q2,
        &"--delta",
        &"1e30",
    ]);
    assert_ok(&packed);
    assert!(
        stderr(&packed).contains("is destroyed"),
        "{}",
        stderr(&packed)
    );
    let v = run_p(&[&"verify", &q2, &"--against", &st]);
    assert_fails(&v, 1, &["verification failed"]);
    assert!(stdout(&v).contains("relative error"), "{}", stdout(&v));
    let j = info_json(&q);
    assert!(
        j["tensors"][0]["quantization"].is_null()
            || j["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["quantization"]["uncertified"].as_u64().unwrap_or(0) > 0)
    );
}

#[test]
fn conv_weights_and_zstd() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("conv.safetensors");
    write(&p, &[f32_tensor("conv.weight", &[16, 3, 3, 3], 9)], &[]);
    let q = dir.path().join("conv.sdq");
    assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &p,
        &"-o",
        &q,
        &"--zstd",
        &"--delta",
        &"uniform",
    ]));
    let j = info_json(&q);
    let t = &j["tensors"][0];
    assert_eq!(t["shape"], serde_json::json!([16, 3, 3, 3]));
    assert_eq!(t["quantization"]["d"], 16);
    assert_eq!(t["quantization"]["vectors"], 27);
    assert_ok(&run_p(&[&"verify", &q, &"--against", &p]));
    let un = dir.path().join("un.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &un]));
    let bytes = std::fs::read(&un).unwrap();
    assert_eq!(
        SafeTensors::deserialize(&bytes)
            .unwrap()
            .tensor("conv.weight")
            .unwrap()
            .shape(),
        &[16, 3, 3, 3]
    );
}

#[test]
fn info_escapes_control_characters_in_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil.safetensors");
    write(
        &p,
        &[f32_tensor("w\x1b[2J\x07", &[16, 2], 1)],
        &[("k\x1b", "v\n")],
    );
    let q = dir.path().join("evil.sdq");
    let out = assert_ok(&run_p(&[&"pack", &p, &"-o", &q]));
    assert!(!out.contains('\x1b'), "{out:?}");
    let out = assert_ok(&run_p(&[&"info", &q]));
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("w\\x1b[2J\\x07"), "{out}");
    let out = assert_ok(&run_p(&[&"verify", &q, &"--against", &p]));
    assert!(!out.contains('\x1b'), "{out:?}");
    // JSON escapes them its own way and keeps the exact name.
    let j = info_json(&q);
    assert_eq!(j["tensors"][0]["name"], "w\x1b[2J\x07");
}

#[test]
fn second_order_scheme_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("s2.sdq");
    // --redundancy 2.53 gives N = ceil(2.53·d) = 81 for d = 32 and 61 for d = 24: both odd, so
    // the planner lowers them to even sizes.
    assert_ok(&run_p(&[
        &"pack",
        &st,
        &"-o",
        &q,
        &"--scheme",
        &"second-order",
        &"--axis",
        &"columns",
        &"-K",
        &"2",
        &"--redundancy",
        &"2.53",
        &"--bias",
    ]));
    let j = info_json(&q);
    let quantized: Vec<&serde_json::Value> = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["encoding"] == "sigma-delta")
        .collect();
    assert_eq!(quantized.len(), 2);
    for t in &quantized {
        let qz = &t["quantization"];
        assert_eq!(qz["scheme"], "second-order");
        let (n, d) = (qz["n"].as_u64().unwrap(), qz["d"].as_u64().unwrap());
        // ceil(2.53·d) is odd for d = 32 (81) and d = 24 (61): lowered to an even N.
        assert_eq!(n % 2, 0, "{t}");
        assert_eq!(n, (2.53 * d as f64).ceil() as u64 - 1);
        assert_eq!(qz["uncertified"], 0);
    }
    let out = assert_ok(&run_p(&[&"info", &q]));
    assert!(out.contains("sigma-delta-2"), "{out}");
    // Few code bits per weight on small random tensors: the bounds hold, the relative error
    // is above verify's default limit of 0.5.
    let out = assert_ok(&run_p(&[
        &"verify",
        &q,
        &"--against",
        &st,
        &"--max-relative-error",
        &"4",
    ]));
    assert!(out.contains(" 0 violations"), "{out}");
    let back = dir.path().join("back.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &back]));
    let bytes = std::fs::read(&back).unwrap();
    let (names, _) = layout(&bytes);
    assert!(names.contains(&"fc1.weight".to_string()));
}

#[test]
fn spectral_tetris_with_reordering_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("t.sdq");
    // N = floor(2.5·d): non-integer redundancy, so the frames have 2×2 blocks to reorder.
    let out = assert_ok(&run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &q,
        &"--frame-family",
        &"spectral-tetris",
        &"--reorder",
        &"--bits-per-weight",
        &"2.5",
    ]));
    assert!(out.contains("frame variation sigma"), "{out}");
    let j = info_json(&q);
    let quantized: Vec<&serde_json::Value> = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["encoding"] == "sigma-delta")
        .collect();
    assert_eq!(quantized.len(), 2);
    for t in &quantized {
        let qz = &t["quantization"];
        assert_eq!(qz["frame"], "spectral-tetris");
        assert_eq!(qz["scheme"], "first-order");
        assert_eq!(qz["permuted"], true, "{t}");
    }
    let out = assert_ok(&run_p(&[&"info", &q]));
    assert!(out.contains("sigma-delta/tetris"), "{out}");
    // Few code bits per weight on small random tensors: the bounds hold, the relative error
    // is above verify's default limit of 0.5.
    let out = assert_ok(&run_p(&[
        &"verify",
        &q,
        &"--against",
        &st,
        &"--max-relative-error",
        &"4",
    ]));
    assert!(out.contains(" 0 violations"), "{out}");
    let back = dir.path().join("back.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &back]));
    // Too small a frame for tetris: refused before anything is written.
    let bad = dir.path().join("bad.sdq");
    let o = run_p(&[
        &"pack",
        &"--scheme",
        &"first-order",
        &"--axis",
        &"columns",
        &st,
        &"-o",
        &bad,
        &"--frame-family",
        &"spectral-tetris",
        &"--bits-per-weight",
        &"1.5",
    ]);
    assert_fails(&o, 2, &["spectral-tetris frame needs N >= "]);
    assert!(!bad.exists());
}

/// The dtypes of a safetensors file's tensors, by name.
fn dtypes(p: &Path) -> Vec<(String, Dtype)> {
    let bytes = std::fs::read(p).unwrap();
    let t = SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Dtype)> = t
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn unpack_dtype_converts_every_float_tensor_and_defaults_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bf.safetensors");
    let bf = |n: usize, seed| -> Vec<u8> {
        values(n, seed, 0.5)
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect()
    };
    write(
        &p,
        &[
            // Quantized (d = 24), and two raw BF16 tensors: a bias and a small layer.
            T {
                name: "big.weight".into(),
                dtype: Dtype::BF16,
                shape: vec![24, 10],
                bytes: bf(240, 1),
            },
            T {
                name: "big.bias".into(),
                dtype: Dtype::BF16,
                shape: vec![24],
                bytes: bf(24, 2),
            },
            T {
                name: "head.weight".into(),
                dtype: Dtype::BF16,
                shape: vec![3, 24],
                bytes: bf(72, 3),
            },
            i64_tensor("step", &[3]),
        ],
        &[],
    );
    let q = dir.path().join("bf.sdq");
    assert_ok(&run_p(&[&"pack", &p, &"-o", &q]));
    let names = ["big.bias", "big.weight", "head.weight", "step"];
    let want = |d: Dtype| -> Vec<(String, Dtype)> {
        names
            .iter()
            .map(|n| (n.to_string(), if *n == "step" { Dtype::I64 } else { d }))
            .collect()
    };
    for (flag, d) in [
        ("f16", Dtype::F16),
        ("f32", Dtype::F32),
        ("bf16", Dtype::BF16),
    ] {
        let u = dir.path().join(format!("{flag}.safetensors"));
        assert_ok(&run_p(&[&"unpack", &q, &"-o", &u, &"--dtype", &flag]));
        assert_eq!(dtypes(&u), want(d), "--dtype {flag}");
    }
    // The default is each tensor's original dtype; raw tensors keep their bytes.
    let u = dir.path().join("default.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &u]));
    assert_eq!(dtypes(&u), want(Dtype::BF16));
    let orig = std::fs::read(&p).unwrap();
    let back = std::fs::read(&u).unwrap();
    let (a, b) = (
        SafeTensors::deserialize(&orig).unwrap(),
        SafeTensors::deserialize(&back).unwrap(),
    );
    assert_eq!(
        a.tensor("head.weight").unwrap().data(),
        b.tensor("head.weight").unwrap().data()
    );
    // A converted raw tensor has the converted values.
    let u = dir.path().join("f32.safetensors");
    let bytes = std::fs::read(&u).unwrap();
    let t = SafeTensors::deserialize(&bytes).unwrap();
    let got: Vec<f32> = t
        .tensor("big.bias")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let want: Vec<f32> = a
        .tensor("big.bias")
        .unwrap()
        .data()
        .chunks_exact(2)
        .map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn unpack_prints_a_one_line_summary() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let u = dir.path().join("u.safetensors");
    let out = assert_ok(&run_p(&[&"unpack", &q, &"-o", &u]));
    let len = std::fs::metadata(&u).unwrap().len();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("unpacked 5 tensors into "), "{out}");
    assert!(out.contains(&format!("({len} bytes)")), "{out}");
    assert!(out.trim_end().ends_with(" s"), "{out}");
    // With -o - the data goes to stdout and the summary to stderr.
    let o = run_p(&[&"unpack", &q, &"-o", &"-", &"--tensor", &"step"]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.starts_with("unpacked 1 tensors into stdout"), "{err}");
    assert!(
        err.contains(&format!("({} bytes)", o.stdout.len())),
        "{err}"
    );
}

#[test]
fn info_totals_prints_no_tensor_table() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let full = assert_ok(&run_p(&[&"info", &q]));
    let totals = assert_ok(&run_p(&[&"info", &q, &"--totals"]));
    assert!(full.contains("fc2.weight"), "{full}");
    assert!(!totals.contains("fc2.weight"), "{totals}");
    assert!(!totals.contains("bits/weight"), "{totals}");
    // The totals are the same lines as in the full output.
    let tail = |s: &str| s[s.find("total: ").unwrap()..].to_string();
    assert_eq!(tail(&totals), tail(&full));
    assert_eq!(totals.lines().next(), full.lines().next());
}

#[test]
fn threads_option_is_documented_and_used() {
    let help = assert_ok(&run(&["--help"]));
    assert!(help.contains("--threads"), "{help}");
    assert!(help.contains("RAYON_NUM_THREADS"), "{help}");
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let (a, b) = (dir.path().join("a.sdq"), dir.path().join("b.sdq"));
    assert_ok(&run_p(&[&"--threads", &"1", &"pack", &st, &"-o", &a]));
    assert_ok(&run_p(&[&"pack", &st, &"-o", &b, &"-j", &"2"]));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_fails(&run_p(&[&"-j", &"0", &"info", &a]), 2, &["0"]);
}

#[test]
fn sharded_unpack_writes_hugging_face_shards_that_pack_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let whole = dir.path().join("whole.safetensors");
    assert_ok(&run_p(&[&"unpack", &q, &"-o", &whole]));
    // In file order: step 24 B, fc1.bias 128 B, fc1.weight 2560 B, fc2.weight 3072 B,
    // fc3.weight 384 B.
    let out = dir.path().join("sharded");
    let o = assert_ok(&run_p(&[
        &"unpack",
        &q,
        &"-o",
        &out,
        &"--max-shard-size",
        &"3KB",
    ]));
    assert!(o.contains("3 shards"), "{o}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    assert_eq!(
        index["metadata"]["total_size"],
        2560 + 128 + 3072 + 384 + 24
    );
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), 5);
    assert_eq!(map["fc1.weight"], "model-00001-of-00003.safetensors");
    assert_eq!(map["fc1.bias"], "model-00001-of-00003.safetensors");
    assert_eq!(map["fc2.weight"], "model-00002-of-00003.safetensors");
    assert_eq!(map["fc3.weight"], "model-00003-of-00003.safetensors");
    assert_eq!(map["step"], "model-00001-of-00003.safetensors");
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json"
        ]
    );
    // Every shard is a valid safetensors file with the metadata.
    for f in &files[..3] {
        let (_, meta) = layout(&std::fs::read(out.join(f)).unwrap());
        assert!(meta.contains(&("origin".into(), "cli test".into())), "{f}");
    }
    // pack reads the index (and the directory) back: the same tensors as the unsharded output.
    for input in [out.join("model.safetensors.index.json"), out.clone()] {
        let q2 = dir.path().join("again.sdq");
        assert_ok(&run_p(&[&"pack", &input, &"-o", &q2]));
        let back = dir.path().join("back.safetensors");
        assert_ok(&run_p(&[&"unpack", &q2, &"-o", &back]));
        assert_ok(&run_p(&[&"verify", &q2, &"--against", &whole]));
        let (n1, _) = layout(&std::fs::read(&back).unwrap());
        let (n2, _) = layout(&std::fs::read(&whole).unwrap());
        assert_eq!(n1, n2);
    }
    // Re-sharding into fewer shards removes the earlier run's extra shards; one shard is a
    // single model.safetensors (no index), as save_pretrained writes.
    assert_ok(&run_p(&[
        &"unpack",
        &q,
        &"-o",
        &out,
        &"--max-shard-size",
        &"1GB",
    ]));
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["model.safetensors"]);
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(&whole).unwrap()
    );
    // A tensor that fails to decode in the last shard: no shard of the new set is renamed into
    // place (the directory keeps the previous run's file), no temporary file is left.
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    let mut bytes = std::fs::read(&q).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    let bad = dir.path().join("bad.sdq");
    std::fs::write(&bad, &bytes).unwrap();
    assert_fails(
        &run_p(&[&"unpack", &bad, &"-o", &out, &"--max-shard-size", &"3KB"]),
        3,
        &["checksum"],
    );
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["model.safetensors"]);
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        before
    );
    // An error (unknown tensor) leaves nothing behind.
    let fresh = dir.path().join("fresh");
    assert_fails(
        &run_p(&[
            &"unpack",
            &q,
            &"-o",
            &fresh,
            &"--max-shard-size",
            &"1KB",
            &"--tensor",
            &"nope",
        ]),
        2,
        &["nope"],
    );
    assert!(!fresh.exists() || std::fs::read_dir(&fresh).unwrap().next().is_none());
    assert_fails(
        &run_p(&[&"unpack", &q, &"-o", &fresh, &"--max-shard-size", &"lots"]),
        2,
        &["lots"],
    );
}

/// (name, encoding, stored bits per weight) of every tensor of an .sdq file, from
/// `SdqFile::report()`.
fn tensor_bits(q: &Path) -> Vec<(String, String, f64)> {
    sdq::SdqFile::open(q)
        .unwrap()
        .report()
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.encoding.to_string(), t.bits_per_weight()))
        .collect()
}

#[test]
fn tensor_type_stores_raw_or_sets_the_bits_of_matching_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("m.safetensors");
    write(
        &st,
        &[
            f32_tensor("embeddings.word_embeddings.weight", &[512, 128], 1),
            f32_tensor("encoder.layer.0.weight", &[128, 128], 2),
            f32_tensor("encoder.layer.1.weight", &[128, 128], 3),
        ],
        &[],
    );
    let q = dir.path().join("m.sdq");
    let o = run_p(&[
        &"pack",
        &st,
        &"-o",
        &q,
        &"--tensor-type",
        &"*embeddings*=raw",
    ]);
    assert_ok(&o);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let enc: Vec<String> = tensor_bits(&q).into_iter().map(|t| t.1).collect();
    assert_eq!(enc, ["raw", "pcm", "pcm"]);
    assert_ok(&run_p(&[&"verify", &q, &"--against", &st]));
    // 8 bits for the embedding; the others share the default budget (5.0, which the whole-file
    // cap may lower).
    assert_ok(&run_p(&[
        &"pack",
        &st,
        &"-o",
        &q,
        &"--tensor-type",
        &"*embed*=8",
    ]));
    let bits = tensor_bits(&q);
    assert!((bits[0].2 - 8.0).abs() < 0.3, "{bits:?}");
    let rest = (bits[1].2 + bits[2].2) / 2.0;
    assert!(rest <= 5.0 && rest > 4.0, "{bits:?}");
    // The first matching pattern wins; a preset; a pattern that matched nothing is reported.
    let o = run_p(&[
        &"pack",
        &st,
        &"-o",
        &q,
        &"--tensor-type",
        &"*layer.0*=q8",
        &"--tensor-type",
        &"*layer*=raw",
        &"--tensor-type",
        &"*nothing*=6",
    ]);
    assert_ok(&o);
    let bits = tensor_bits(&q);
    assert_eq!(bits[1].1, "pcm");
    assert!((bits[1].2 - 8.0).abs() < 0.3, "{bits:?}");
    assert_eq!(bits[2].1, "raw");
    assert!(
        stderr(&o).starts_with("sdq: warning: --tensor-type \"*nothing*=6\" matched no tensor")
            && stderr(&o).lines().count() == 1,
        "{}",
        stderr(&o)
    );
    for bad in ["*=q5", "*embed*", "=raw", "*=-1"] {
        assert_fails(
            &run_p(&[&"pack", &st, &"-o", &q, &"--tensor-type", &bad]),
            2,
            &["--tensor-type"],
        );
    }
}

#[test]
fn code_bits_is_levels_by_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let (a, b) = (dir.path().join("a.sdq"), dir.path().join("b.sdq"));
    let sd = ["--scheme", "first-order", "--bits-per-weight", "8"];
    let pack = |q: &Path, extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &st, &"-o", &q];
        for x in sd.iter().chain(extra) {
            args.push(x);
        }
        run_p(&args)
    };
    // 2 bits per code: K = 2, four levels.
    assert_ok(&pack(&a, &["--code-bits", "2"]));
    assert_ok(&pack(&b, &["-K", "2"]));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let j = info_json(&a);
    let fc1 = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fc1.weight")
        .unwrap();
    assert_eq!(fc1["quantization"]["k"], 2, "{j}");
    assert_eq!(fc1["quantization"]["bits_per_code"], 2, "{j}");
    // With -K it conflicts; out of range, or with pcm, it is refused.
    assert_fails(
        &pack(&a, &["--code-bits", "4", "-K", "8"]),
        2,
        &["--code-bits", "cannot be used with"],
    );
    assert_fails(&pack(&a, &["--code-bits", "0"]), 2, &["--code-bits"]);
    assert_fails(&pack(&a, &["--code-bits", "17"]), 2, &["--code-bits"]);
    assert_fails(
        &run_p(&[&"pack", &st, &"-o", &a, &"--code-bits", &"4"]),
        2,
        &["--code-bits is for sigma-delta"],
    );
}

#[test]
fn pack_prints_a_summary_and_the_aligned_table_only_with_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("m.safetensors");
    let long = "model.decoder.layers.0.self_attention.a_rather_long_projection_name.weight";
    write(
        &st,
        &[
            f32_tensor(long, &[256, 256], 1),
            f32_tensor("short.weight", &[256, 256], 2),
            i64_tensor("step", &[7]),
        ],
        &[],
    );
    let q = dir.path().join("m.sdq");
    // Not a terminal, no -v: the summary alone.
    let out = assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("packed 3 tensors (2 quantized, 1 raw) into "),
        "{out}"
    );
    assert!(lines[0].contains(" s: vs fp32 "), "{out}");
    assert!(out.contains("relative error"), "{out}");
    assert!(
        !out.contains("encoding") && !lines.iter().any(|l| l.starts_with("tensor")),
        "{out}"
    );
    // packed …, the whole-file cap's line (the default caps the file), relative error, bounds.
    assert!(lines.len() <= 4, "{out}");
    // -v: the table first, long names shortened in the middle, columns aligned.
    let out = assert_ok(&run_p(&[&"pack", &st, &"-o", &q, &"-v"]));
    let table: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(table.len(), 6, "{out}"); // header, 3 tensors, overhead, total
    assert!(table[0].starts_with("tensor "), "{out}");
    assert!(
        table.iter().all(|l| !l.contains(long) && !l.contains('"')),
        "{out}"
    );
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("model.decoder.lay") && l.contains('…')),
        "{out}"
    );
    let col = |l: &str, word: &str| {
        l.chars()
            .collect::<Vec<_>>()
            .windows(word.len())
            .position(|w| w.iter().collect::<String>() == word)
    };
    let enc = col(table[0], "encoding").unwrap();
    for l in &table[1..4] {
        let c: Vec<char> = l.chars().collect();
        assert!(c[enc - 1] == ' ' && c[enc] != ' ', "{out}");
    }
    let bits = col(table[0], "bits/w").unwrap() + "bits/w".len();
    assert!(
        table
            .iter()
            .skip(1)
            .filter(|l| !l.starts_with("overhead"))
            .all(|l| l.chars().count() == bits),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("packed 3 tensors")),
        "{out}"
    );
}
