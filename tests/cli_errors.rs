//! Every bad path of the `sdq` command line: one clear `sdq: …` line on stderr and the
//! documented exit code (0 ok, 1 verification failed, 2 bad usage, 3 invalid input file,
//! 4 I/O failure).

mod cli_common;

use cli_common::*;

#[test]
fn no_arguments_prints_help_and_exits_2() {
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    let all = stderr(&o) + &stdout(&o);
    assert!(all.contains("Usage"), "{all}");
    assert!(all.contains("pack") && all.contains("verify"), "{all}");
}

#[test]
fn help_of_every_subcommand_has_examples() {
    for sub in ["pack", "info", "unpack", "verify"] {
        let out = assert_ok(&run(&[sub, "--help"]));
        assert!(out.contains("Examples:"), "{sub}: {out}");
        assert!(out.contains(&format!("sdq {sub}")), "{sub}: {out}");
    }
    assert!(assert_ok(&run(&["--help"])).contains("Exit codes"));
}

#[test]
fn missing_input_file_is_an_io_failure() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let m = missing.to_str().unwrap();
    assert_fails(
        &run(&["pack", m, "-o", "x.sdq"]),
        4,
        &["nope.safetensors", "No such file"],
    );
    assert_fails(&run(&["info", m]), 4, &["nope.safetensors"]);
    assert_fails(&run(&["unpack", m, "-o", "x"]), 4, &["nope.safetensors"]);
    assert_fails(&run(&["verify", m]), 4, &["nope.safetensors"]);
}

#[test]
fn non_safetensors_input_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("model.safetensors");
    std::fs::write(&html, b"<!DOCTYPE html><html><body>login</body></html>").unwrap();
    let out = dir.path().join("o.sdq");
    let line = assert_fails(
        &run_p(&[&"pack", &html, &"-o", &out]),
        3,
        &["model.safetensors", "not a safetensors file", "HTML"],
    );
    assert!(!out.exists(), "{line}");
    let lfs = dir.path().join("lfs.safetensors");
    std::fs::write(
        &lfs,
        b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n",
    )
    .unwrap();
    assert_fails(&run_p(&[&"pack", &lfs, &"-o", &out]), 3, &["Git LFS"]);
    // Model files of other formats: what they are, and what to do about it.
    for (name, bytes, says) in [
        (
            "model.pth",
            &b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03."[..],
            &["Python pickle", "safetensors.torch.save_file"][..],
        ),
        (
            "pytorch_model.bin",
            b"PK\x03\x04\x14\x00\x00\x00\x08\x00archive/data.pkl",
            &["ZIP archive", "safetensors.torch.save_file"],
        ),
        (
            "model.onnx",
            b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x8a\x01\x0a",
            &["ONNX model", "write its weights to a safetensors file"],
        ),
        (
            "model.gguf",
            b"GGUF\x03\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01\x00",
            &["GGUF", "float checkpoints in safetensors"],
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut want = vec![name, "not a safetensors file"];
        want.extend_from_slice(says);
        assert_fails(&run_p(&[&"pack", &path, &"-o", &out]), 3, &want);
        assert!(!out.exists());
    }
    let empty = dir.path().join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    assert_fails(&run_p(&[&"pack", &empty, &"-o", &out]), 3, &["empty"]);
    // Truncated safetensors: the data does not reach the end the header promises.
    let good = small_model(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    assert_fails(
        &run_p(&[&"pack", &cut, &"-o", &out]),
        3,
        &["cut.safetensors", "invalid safetensors"],
    );
}

#[test]
fn safetensors_given_where_sdq_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    for sub in ["info", "verify"] {
        assert_fails(
            &run_p(&[&sub, &st]),
            3,
            &["not an .sdq file", "safetensors"],
        );
    }
    let out = dir.path().join("o.safetensors");
    assert_fails(
        &run_p(&[&"unpack", &st, &"-o", &out]),
        3,
        &["not an .sdq file"],
    );
}

#[test]
fn sdq_given_where_safetensors_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    assert_fails(
        &run_p(&[&"pack", &q, &"-o", &dir.path().join("x.sdq")]),
        3,
        &["it is an .sdq file"],
    );
    assert_fails(
        &run_p(&[&"verify", &q, &"--against", &q]),
        3,
        &["it is an .sdq file"],
    );
}

#[test]
fn unwritable_output_is_an_io_failure() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let bad = dir.path().join("no/such/dir/out.sdq");
    assert_fails(
        &run_p(&[&"pack", &st, &"-o", &bad]),
        4,
        &["no/such/dir/out.sdq"],
    );
    let bad = dir.path().join("no/such/dir/out.safetensors");
    assert_fails(
        &run_p(&[&"unpack", &q, &"-o", &bad]),
        4,
        &["no/such/dir/out.safetensors"],
    );
    assert_fails(&run_p(&[&"info", &q, &"-o", &bad]), 4, &["no/such/dir"]);
    // Nothing was left behind in the existing directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn unknown_tensor_name_is_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    assert_fails(
        &run_p(&[&"info", &q, &"--tensor", &"nope"]),
        2,
        &["\"nope\""],
    );
    let out = dir.path().join("o.safetensors");
    assert_fails(
        &run_p(&[
            &"unpack",
            &q,
            &"-o",
            &out,
            &"--tensor",
            &"fc1.weight",
            &"--tensor",
            &"nope",
        ]),
        2,
        &["\"nope\""],
    );
    assert!(!out.exists());
}

#[test]
fn conflicting_and_invalid_options_are_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    let s = st.to_str().unwrap();
    let o = q.to_str().unwrap();
    for args in [
        vec![
            "pack",
            s,
            "-o",
            o,
            "--scheme",
            "first-order",
            "--frame-size",
            "100",
            "--redundancy",
            "2",
        ],
        vec![
            "pack",
            s,
            "-o",
            o,
            "--scheme",
            "first-order",
            "--bits-per-weight",
            "2",
            "--redundancy",
            "2",
        ],
        vec![
            "pack",
            s,
            "-o",
            o,
            "--scheme",
            "first-order",
            "--frame-size",
            "100",
            "--bits-per-weight",
            "2",
        ],
    ] {
        assert_fails(&run(&args), 2, &["give one of"]);
    }
    assert_fails(
        &run(&["pack", s, "-o", o, "--delta", "sometimes"]),
        2,
        &["sometimes"],
    );
    assert_fails(
        &run(&["pack", s, "-o", o, "--delta", "-1"]),
        2,
        &["positive"],
    );
    assert_fails(
        &run(&["pack", s, "-o", o, "--axis", "diagonal"]),
        2,
        &["diagonal"],
    );
    assert_fails(
        &run(&["pack", s, "-o", o, "--redundancy", "0.5"]),
        2,
        &["redundancy"],
    );
    assert_fails(
        &run(&[
            "pack",
            s,
            "-o",
            o,
            "--scheme",
            "first-order",
            "--levels",
            "0",
        ]),
        2,
        &["levels"],
    );
    assert_fails(
        &run(&["pack", s, "-o", o, "--scheme", "second-order"]),
        2,
        &["second-order", "K ≥ 2"],
    );
    assert_fails(
        &run(&[
            "pack",
            s,
            "-o",
            o,
            "--scheme",
            "second-order",
            "-K",
            "2",
            "--frame-size",
            "65",
        ]),
        2,
        &["--frame-size 65 is odd", "64 or 66"],
    );
    assert_fails(
        &run(&["pack", s, "-o", o, "--scheme", "third-order"]),
        2,
        &["third-order"],
    );
    assert_fails(&run(&["pack", s, "-o", "-"]), 2, &["stdout"]);
    assert_fails(&run(&["pack", s]), 2, &["--output"]);
    assert_fails(&run(&["frobnicate"]), 2, &["frobnicate"]);
    assert_fails(&run(&["unpack", o, "-o", "x", "--dtype", "f8"]), 2, &["f8"]);
    assert!(!q.exists());
}

#[test]
fn frame_size_not_above_d_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    // fc2.weight has d = 32 (its rows are the vectors): N = 30 is too small.
    assert_fails(
        &run_p(&[
            &"pack",
            &st,
            &"-o",
            &q,
            &"--scheme",
            &"first-order",
            &"--frame-size",
            &"30",
        ]),
        2,
        &["\"fc2.weight\"", "N = 30", "d = 32", "N >= d + 1"],
    );
    // K = 8 (4 bits per code) at the default 4 bits per weight gives N = d.
    assert_fails(
        &run_p(&[
            &"pack",
            &st,
            &"-o",
            &q,
            &"--scheme",
            &"first-order",
            &"--levels",
            &"8",
        ]),
        2,
        &["\"fc1.weight\"", "N = 20", "--levels 8"],
    );
    assert_fails(
        &run_p(&[
            &"pack",
            &st,
            &"-o",
            &q,
            &"--scheme",
            &"first-order",
            &"--bits-per-weight",
            &"0.5",
        ]),
        2,
        &["\"fc1.weight\"", "N = 10"],
    );
    assert!(!q.exists());
}

#[test]
fn damaged_file_fails_verification_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    assert_ok(&run_p(&[&"verify", &q]));
    let mut bytes = std::fs::read(&q).unwrap();
    // The last section ends the file (the raw int64 tensor, or codes): flip a bit in it.
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&q, &bytes).unwrap();
    let o = run_p(&[&"verify", &q]);
    assert_fails(&o, 1, &["m.sdq", "verification failed"]);
    assert!(stdout(&o).contains("checksum mismatch"), "{}", stdout(&o));
    // A damaged header is an invalid file.
    let mut bytes = std::fs::read(&q).unwrap();
    bytes[70] ^= 0xFF;
    std::fs::write(&q, &bytes).unwrap();
    assert_fails(
        &run_p(&[&"info", &q]),
        3,
        &["m.sdq", "not a valid .sdq file"],
    );
}

#[test]
fn verify_against_a_different_original_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    assert_ok(&run_p(&[&"verify", &q, &"--against", &st]));
    // Another checkpoint: same names and shapes, other values.
    let other = dir.path().join("other.safetensors");
    write(
        &other,
        &[
            f32_tensor("fc1.weight", &[32, 20], 11),
            f32_tensor("fc1.bias", &[32], 2),
            f32_tensor("fc2.weight", &[24, 32], 3),
            f32_tensor("fc3.weight", &[4, 24], 4),
            i64_tensor("step", &[7, -1, 1 << 41]),
        ],
        &[],
    );
    let o = run_p(&[&"verify", &q, &"--against", &other]);
    assert_fails(&o, 1, &["verification failed"]);
    let out = stdout(&o);
    assert!(out.contains("raw bytes differ"), "{out}");
    // A missing tensor in the original.
    let fewer = dir.path().join("fewer.safetensors");
    write(&fewer, &[f32_tensor("fc2.weight", &[24, 32], 3)], &[]);
    let o = run_p(&[&"verify", &q, &"--against", &fewer]);
    assert_fails(&o, 1, &["verification failed"]);
    assert!(stdout(&o).contains("not in the original"), "{}", stdout(&o));
}

#[test]
fn non_finite_weight_is_invalid_input_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.safetensors");
    let mut t = f32_tensor("w", &[16, 64], 1);
    t.bytes[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    write(&p, &[t], &[]);
    let q = dir.path().join("nan.sdq");
    assert_fails(
        &run_p(&[&"pack", &p, &"-o", &q, &"--scheme", &"first-order"]),
        3,
        &["\"w\"", "non-finite"],
    );
    assert!(!q.exists());
    // Excluding it stores it raw, bit-exact.
    assert_ok(&run_p(&[
        &"pack",
        &p,
        &"-o",
        &q,
        &"--scheme",
        &"first-order",
        &"--exclude",
        &"w",
    ]));
    assert_ok(&run_p(&[&"verify", &q, &"--against", &p]));
}

#[test]
fn nonfinite_raw_stores_such_tensors_unquantized_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.safetensors");
    let mut bad = f32_tensor("bad.weight", &[16, 64], 1);
    bad.bytes[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut inf = f32_tensor("inf.weight", &[16, 64], 2);
    inf.bytes[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    write(
        &p,
        &[bad, f32_tensor("good.weight", &[16, 64], 3), inf],
        &[],
    );
    let q = dir.path().join("nan.sdq");
    // The default refuses the model, and says how to keep going.
    assert_fails(
        &run_p(&[&"pack", &p, &"-o", &q, &"--scheme", &"first-order"]),
        3,
        &["\"bad.weight\"", "non-finite", "--nonfinite raw"],
    );
    assert!(!q.exists());
    let o = run_p(&[
        &"pack",
        &p,
        &"-o",
        &q,
        &"--scheme",
        &"first-order",
        &"--nonfinite",
        &"raw",
    ]);
    assert_ok(&o);
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("\"bad.weight\"") && lines[0].contains("NaN at element 2"),
        "{err}"
    );
    assert!(
        lines[1].contains("\"inf.weight\"") && lines[1].contains("inf at element 0"),
        "{err}"
    );
    assert!(lines.iter().all(|l| l.contains("stored raw")), "{err}");
    let j: serde_json::Value =
        serde_json::from_str(&assert_ok(&run_p(&[&"info", &q, &"--json"]))).unwrap();
    let enc: Vec<(String, String)> = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["encoding"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        enc,
        [
            ("bad.weight".to_string(), "raw".to_string()),
            ("good.weight".to_string(), "sigma-delta".to_string()),
            ("inf.weight".to_string(), "raw".to_string())
        ]
    );
    // Raw means bit-exact, NaN included.
    assert_ok(&run_p(&[&"verify", &q, &"--against", &p]));
    assert_fails(
        &run_p(&[&"pack", &p, &"-o", &q, &"--nonfinite", &"zero"]),
        2,
        &["zero"],
    );
}

/// Every file of `dir` whose name ends with `.tmp`.
fn temporaries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn output_that_is_the_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let orig = std::fs::read(&st).unwrap();
    // pack m.safetensors -o m.safetensors (also through a relative spelling).
    assert_fails(
        &run_p(&[&"pack", &st, &"-o", &st]),
        2,
        &["model.safetensors", "is the input", "destroy"],
    );
    let dotted = dir.path().join(".").join("model.safetensors");
    assert_fails(&run_p(&[&"pack", &st, &"-o", &dotted]), 2, &["destroy"]);
    // A hard link to the input.
    let link = dir.path().join("link.sdq");
    std::fs::hard_link(&st, &link).unwrap();
    assert_fails(
        &run_p(&[&"pack", &st, &"-o", &link]),
        2,
        &["link.sdq", "same file as the input", "destroy"],
    );
    assert_eq!(std::fs::read(&st).unwrap(), orig);
    // unpack x.sdq -o x.sdq, and through a hard link.
    let q = dir.path().join("m.sdq");
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    let packed = std::fs::read(&q).unwrap();
    assert_fails(
        &run_p(&[&"unpack", &q, &"-o", &q]),
        2,
        &["m.sdq", "is the input"],
    );
    let qlink = dir.path().join("restored.safetensors");
    std::fs::hard_link(&q, &qlink).unwrap();
    assert_fails(
        &run_p(&[&"unpack", &q, &"-o", &qlink]),
        2,
        &["same file as the input"],
    );
    assert_fails(&run_p(&[&"info", &q, &"-o", &q]), 2, &["is the input"]);
    assert_eq!(std::fs::read(&q).unwrap(), packed);
    // A sharded unpack whose shard would replace the input.
    let shards = dir.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    let inside = shards.join("model.safetensors");
    std::fs::copy(&q, &inside).unwrap();
    assert_fails(
        &run_p(&[
            &"unpack",
            &inside,
            &"-o",
            &shards,
            &"--max-shard-size",
            &"1GB",
        ]),
        2,
        &["is the input"],
    );
    assert_eq!(std::fs::read(&inside).unwrap(), packed);
    // An input named like a shard of an earlier run is not removed as a stale shard.
    let stale_named = shards.join("model-00001-of-00009.safetensors");
    std::fs::rename(&inside, &stale_named).unwrap();
    assert_ok(&run_p(&[
        &"unpack",
        &stale_named,
        &"-o",
        &shards,
        &"--max-shard-size",
        &"1GB",
    ]));
    assert_eq!(std::fs::read(&stale_named).unwrap(), packed);
    assert!(shards.join("model.safetensors").exists());
    assert!(temporaries(dir.path()).is_empty());
}

#[test]
fn output_that_is_a_shard_or_the_index_of_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("model-00001-of-00001.safetensors");
    write(&shard, &[f32_tensor("w", &[20, 8], 1)], &[]);
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"weight_map": {"w": "model-00001-of-00001.safetensors"}}"#,
    )
    .unwrap();
    let (s0, i0) = (
        std::fs::read(&shard).unwrap(),
        std::fs::read(&index).unwrap(),
    );
    for input in [&index, &dir.path().to_path_buf()] {
        assert_fails(&run_p(&[&"pack", input, &"-o", &shard]), 2, &["destroy"]);
        assert_fails(&run_p(&[&"pack", input, &"-o", &index]), 2, &["destroy"]);
    }
    let link = dir.path().join("elsewhere.sdq");
    std::fs::hard_link(&shard, &link).unwrap();
    assert_fails(
        &run_p(&[&"pack", &index, &"-o", &link]),
        2,
        &["same file as the input"],
    );
    assert_eq!(std::fs::read(&shard).unwrap(), s0);
    assert_eq!(std::fs::read(&index).unwrap(), i0);
    // A fresh output is fine.
    assert_ok(&run_p(&[
        &"pack",
        &index,
        &"-o",
        &dir.path().join("ok.sdq"),
    ]));
}

#[test]
fn a_directory_where_a_file_is_expected_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("checkpoints");
    std::fs::create_dir(&d).unwrap();
    let out = dir.path().join("o.safetensors");
    for args in [
        vec![&"info" as &dyn AsRef<std::ffi::OsStr>, &d],
        vec![&"verify", &d],
        vec![&"unpack", &d, &"-o", &out],
    ] {
        let line = assert_fails(&run_p(&args), 4, &["checkpoints: is a directory"]);
        assert!(!line.contains("os error"), "{line}");
    }
    assert!(!out.exists());
}

/// docs/cli.md's exit-code table, one case per code.
#[test]
fn every_documented_exit_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let table = &doc[doc.find("## Exit codes").unwrap()..];
    for code in 0..=4 {
        assert!(
            table.contains(&format!("| {code} |")),
            "code {code} not documented"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let st = small_model(dir.path());
    let q = dir.path().join("m.sdq");
    // 0: success.
    assert_ok(&run_p(&[&"pack", &st, &"-o", &q]));
    // 2: invalid option values, including those past the library's limits.
    for args in [
        vec!["--frame-size", "1000000000"],
        vec!["--frame-size", "100000"],
        vec!["--redundancy", "5000"],
        vec!["--bits-per-weight", "1e6"],
        vec!["--levels", "100000"],
    ] {
        let o = dir.path().join("x.sdq");
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"pack", &st, &"-o", &o, &"--scheme", &"first-order"];
        for a in &args {
            all.push(a);
        }
        assert_fails(&run_p(&all), 2, &[]);
        assert!(!o.exists(), "{args:?}");
    }
    // The same for pcm (the default): bits beyond fp32, sigma-delta-only options.
    for args in [
        vec!["--bits-per-weight", "1e6"],
        vec!["--bits-per-weight", "0"],
        vec!["--max-error", "-1"],
        vec!["--levels", "4"],
        vec!["--reorder"],
        vec!["--delta", "tensor"],
        vec!["--redundancy", "2"],
        vec!["--frame-size", "100"],
        vec!["--frame-family", "harmonic", "--frame-size", "10"],
        vec!["--group", "0"],
    ] {
        let o = dir.path().join("x.sdq");
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &st, &"-o", &o];
        for a in &args {
            all.push(a);
        }
        assert_fails(&run_p(&all), 2, &[]);
        assert!(!o.exists(), "{args:?}");
    }
    // 3: an invalid input file; 4: a missing one.
    let html = dir.path().join("page.safetensors");
    std::fs::write(&html, b"<html></html>").unwrap();
    assert_fails(
        &run_p(&[&"pack", &html, &"-o", &q]),
        3,
        &["not a safetensors file"],
    );
    assert_fails(
        &run_p(&[&"info", &dir.path().join("none.sdq")]),
        4,
        &["none.sdq"],
    );
    // 1: verification failed.
    let mut bytes = std::fs::read(&q).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&q, &bytes).unwrap();
    assert_fails(&run_p(&[&"verify", &q]), 1, &["verification failed"]);
}

#[test]
fn errors_escape_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil\x1b[31m.safetensors");
    let o = run_p(&[&"info", &p]);
    let line = assert_fails(&o, 4, &["evil\\x1b[31m"]);
    assert!(!line.contains('\x1b'));
}

/// The `sdq: warning:` lines of a run.
fn warnings(o: &std::process::Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("sdq: warning: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn options_that_do_nothing_warn() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    write(
        &p,
        &[
            f32_tensor("fc1.weight", &[32, 20], 1),
            f32_tensor("fc1.bias", &[32], 2),
            f32_tensor("fc2.weight", &[24, 32], 3),
            f32_tensor("LayerNorm.weight", &[32], 4),
            f32_tensor("LayerNorm.bias", &[32], 5),
            f32_tensor("token_type_embeddings.weight", &[2, 384], 6),
            i64_tensor("step", &[7]),
        ],
        &[],
    );
    let q = dir.path().join("m.sdq");
    let sd = ["--scheme", "first-order"];
    let pack = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &p, &"-o", &q];
        for a in extra {
            args.push(a);
        }
        let o = run_p(&args);
        assert_ok(&o);
        // Every stderr line is a one-line warning.
        assert!(
            stderr(&o).lines().all(|l| l.starts_with("sdq: warning: ")),
            "{}",
            stderr(&o)
        );
        warnings(&o)
    };
    // An include that matches only 1-D tensors.
    let w = pack(&[sd[0], sd[1], "--include", "*LayerNorm*"]);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("--include \"*LayerNorm*\" matched 2 tensors and none can be quantized"),
        "{w:?}"
    );
    assert!(w[1].contains("nothing is quantized"), "{w:?}");
    // An include undone by an exclude (fc2 is still quantized: no "nothing" warning).
    let w = pack(&[
        sd[0],
        sd[1],
        "--include",
        "fc*",
        "--include",
        "fc1*",
        "--exclude",
        "fc1*",
    ]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("--include \"fc1*\" quantizes nothing"),
        "{w:?}"
    );
    // --bias with no bias beside a quantized weight.
    let w = pack(&[sd[0], sd[1], "--bias", "--exclude", "fc1.weight"]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("--bias") && w[0].contains("no bias"), "{w:?}");
    assert!(pack(&[sd[0], sd[1], "--bias"]).is_empty());
    // A [2, 384] tensor at 38 code bits per weight is larger quantized than raw: stored raw.
    let w = pack(&[
        sd[0],
        sd[1],
        "--include",
        "*token_type*",
        "--bits-per-weight",
        "38",
    ]);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("\"token_type_embeddings.weight\"") && w[0].contains("stored raw"),
        "{w:?}"
    );
    assert!(w[1].contains("nothing is quantized"), "{w:?}");
    let j: serde_json::Value =
        serde_json::from_str(&assert_ok(&run_p(&[&"info", &q, &"--json"]))).unwrap();
    assert!(j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["encoding"] == "raw"));
    // At 4 bits it is smaller quantized: no warning.
    assert!(pack(&[sd[0], sd[1], "--include", "*token_type*"]).is_empty());
    // Nothing quantized at all: one warning.
    let w = pack(&["--exclude", "*"]);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("nothing is quantized: all 7 tensors"),
        "{w:?}"
    );
}
