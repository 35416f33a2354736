//! Zero-sum rounding (the pcm default without a frame): each row's rounding errors sum to within
//! half its step of zero, so a layer whose inputs share an offset gets no bias shift; the file
//! keeps its size, its squared error and every certificate. A convolution's kernel windows are
//! zero-summed first (`--rounding zero-sum-rows`: the rows only). `--rounding nearest` keeps
//! plain rounding; the option is refused where it cannot apply.

mod cli_common;

use std::path::{Path, PathBuf};

use cli_common::*;
use sdq::format::SdqFile;

const ROWS: usize = 96;
const COLS: usize = 384;

fn pack(dir: &Path, model: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.sdq"));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &model, &"-o", &out];
    for a in extra {
        args.push(a);
    }
    assert_ok(&run_p(&args));
    assert_ok(&run_p(&[&"verify", &out, &"--against", &model]));
    out
}

/// (largest |Σ_k e_k| / δ over the rows, ‖W − W̃‖², mean |offset shift| over the rows).
fn measure(file: &Path, w: &[f32]) -> (f64, f64, f64) {
    let f = SdqFile::open(file).unwrap();
    let dec = f.decode("layer.weight").unwrap();
    let steps = f.pcm_steps("layer.weight").unwrap();
    assert_eq!(steps.len(), ROWS, "one step per row");
    let (mut worst, mut e2, mut shift) = (0.0f64, 0.0f64, 0.0f64);
    for (r, &step) in steps.iter().enumerate() {
        let row = r * COLS..(r + 1) * COLS;
        let sum: f64 = w[row.clone()]
            .iter()
            .zip(&dec[row.clone()])
            .map(|(&a, &b)| f64::from(a) - f64::from(b))
            .sum();
        e2 += w[row.clone()]
            .iter()
            .zip(&dec[row])
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>();
        worst = worst.max(sum.abs() / f64::from(step));
        // Inputs x = 1 + noise: the output's error averaged over many inputs is Σ_k e_k.
        shift += sum.abs() / ROWS as f64;
    }
    (worst, e2, shift)
}

#[test]
fn zero_sum_rows_cost_nothing_and_remove_the_offset_shift() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    write(&m, &[f32_tensor("layer.weight", &[ROWS, COLS], 5)], &[]);
    let w = values(ROWS * COLS, 5, 0.1);
    let zs = pack(dir.path(), &m, "zs", &[]);
    let explicit = pack(dir.path(), &m, "explicit", &["--rounding", "zero-sum"]);
    let near = pack(dir.path(), &m, "near", &["--rounding", "nearest"]);
    assert_eq!(
        std::fs::read(&zs).unwrap(),
        std::fs::read(&explicit).unwrap(),
        "zero-sum is the default"
    );
    let (zs_worst, zs_e2, zs_shift) = measure(&zs, &w);
    let (near_worst, near_e2, near_shift) = measure(&near, &w);
    // Each row's errors sum to within half a step (f32 decoding adds a little).
    assert!(zs_worst <= 0.5 + 1e-3, "{zs_worst}");
    // Nearest rounding's sums are about δ·√(d/12) ≈ 5.7 steps at d = 384; here ≥ 2 somewhere.
    assert!(near_worst > 2.0, "{near_worst}");
    assert!(zs_shift * 5.0 < near_shift, "{zs_shift} vs {near_shift}");
    // At almost no cost: squared error within 1 %, size within 1 %.
    assert!(zs_e2 < near_e2 * 1.01, "{zs_e2} vs {near_e2}");
    let (a, b) = (
        std::fs::metadata(&zs).unwrap().len() as f64,
        std::fs::metadata(&near).unwrap().len() as f64,
    );
    assert!((a - b).abs() < 0.01 * b, "{a} vs {b}");
}

#[test]
fn rounding_is_refused_where_it_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    write(&m, &[f32_tensor("layer.weight", &[8, 64], 1)], &[]);
    let out = dir.path().join("o.sdq");
    for (args, needle) in [
        (
            &["--rounding", "zero-sum", "--frame-family", "harmonic"][..],
            "without a frame",
        ),
        (
            &["--rounding", "zero-sum-rows", "--frame-family", "harmonic"][..],
            "--rounding zero-sum-rows is for pcm without a frame",
        ),
        (
            &[
                "--rounding",
                "zero-sum",
                "--coding",
                "fixed",
                "--step-policy",
                "least-squares",
            ][..],
            "certified steps",
        ),
        (
            &["--rounding", "nearest", "--scheme", "first-order"][..],
            "--rounding is for --scheme pcm",
        ),
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"pack", &m, &"-o", &out];
        for a in args {
            all.push(a);
        }
        assert_fails(&run_p(&all), 2, &[needle]);
        assert!(!out.exists(), "no output on a refused option");
    }
    // With a frame, the default is nearest rounding (zero-sum would not be in the weights).
    let h = dir.path().join("h.sdq");
    let h2 = dir.path().join("h2.sdq");
    assert_ok(&run_p(&[
        &"pack",
        &m,
        &"-o",
        &h,
        &"--frame-family",
        &"harmonic",
    ]));
    assert_ok(&run_p(&[
        &"pack",
        &m,
        &"-o",
        &h2,
        &"--frame-family",
        &"harmonic",
        &"--rounding",
        &"nearest",
    ]));
    assert_eq!(std::fs::read(&h).unwrap(), std::fs::read(&h2).unwrap());
}

/// For a convolution weight [out, in, kh, kw] packed by `file`: (the largest |Σ e| / δ over the
/// kernel windows (out, in), the share of windows over half a step, the largest row sum in
/// steps, ‖W − W̃‖²).
fn windows(file: &Path, w: &[f32], shape: [usize; 4]) -> (f64, f64, f64, f64) {
    let f = SdqFile::open(file).unwrap();
    let dec = f.decode("conv.weight").unwrap();
    let steps = f.pcm_steps("conv.weight").unwrap();
    let [out, inp, kh, kw] = shape;
    let (win, d) = (kh * kw, inp * kh * kw);
    assert_eq!(steps.len(), out, "one step per row");
    let (mut worst, mut over, mut row_worst, mut e2) = (0.0f64, 0usize, 0.0f64, 0.0f64);
    for (r, &step) in steps.iter().enumerate() {
        let step = f64::from(step);
        let mut row = 0.0;
        for c in 0..inp {
            let at = r * d + c * win;
            let sum: f64 = (at..at + win)
                .map(|k| f64::from(w[k]) - f64::from(dec[k]))
                .sum();
            worst = worst.max(sum.abs() / step);
            over += usize::from(sum.abs() > 0.5 * step * (1.0 + 1e-3));
            row += sum;
        }
        row_worst = row_worst.max(row.abs() / step);
        e2 += (r * d..(r + 1) * d)
            .map(|k| (f64::from(w[k]) - f64::from(dec[k])).powi(2))
            .sum::<f64>();
    }
    (worst, over as f64 / (out * inp) as f64, row_worst, e2)
}

#[test]
fn zero_sum_takes_each_kernel_window_too() {
    // A 3×3 convolution: each (output, input channel) window of 9 weights sees that input
    // channel; where it is constant (a flat patch, padding), the window's error sum is the
    // output's offset. The default zero-sums each window, then the row; zero-sum-rows only the
    // row; a matrix (rank 2) has no windows and packs the same with either.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    let shape = [48, 32, 3, 3];
    write(
        &m,
        &[
            f32_tensor("conv.weight", &shape, 9),
            f32_tensor("layer.weight", &[ROWS, COLS], 5),
        ],
        &[],
    );
    let w = values(48 * 32 * 9, 9, 0.1);
    let zs = pack(dir.path(), &m, "zs", &["--bits-per-weight", "4"]);
    let rows = pack(
        dir.path(),
        &m,
        "rows",
        &["--bits-per-weight", "4", "--rounding", "zero-sum-rows"],
    );
    let (zs_worst, zs_over, zs_row, zs_e2) = windows(&zs, &w, shape);
    let (rows_worst, rows_over, rows_row, rows_e2) = windows(&rows, &w, shape);
    // Every window within a step, most within half; the rows within half a step.
    assert!(zs_worst <= 1.0 + 1e-3, "{zs_worst}");
    assert!(zs_over < 0.1, "{zs_over}");
    assert!(
        zs_row <= 0.5 + 1e-3 && rows_row <= 0.5 + 1e-3,
        "{zs_row} {rows_row}"
    );
    // Rows alone leave windows' sums of several tenths of a step, many over half.
    assert!(
        rows_worst > 1.0 && rows_over > 0.2,
        "{rows_worst} {rows_over}"
    );
    // For a little more squared error.
    assert!(zs_e2 < rows_e2 * 1.15, "{zs_e2} vs {rows_e2}");
    // The matrix is coded the same either way.
    let (a, b) = (SdqFile::open(&zs).unwrap(), SdqFile::open(&rows).unwrap());
    assert_eq!(
        a.decode("layer.weight").unwrap(),
        b.decode("layer.weight").unwrap()
    );
    assert_eq!(
        a.pcm_steps("layer.weight").unwrap(),
        b.pcm_steps("layer.weight").unwrap()
    );
}
