//! Turning the measured rows into the reproduction's outputs: the raw CSVs, the Markdown tables,
//! the SVG figures and the README with its checked reading of the results.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::experiments::{Config, Experiment, Row, N_TRAIN, SPLIT_SEED};
use crate::mnist::ModelKind;
use crate::svg::{Plot, Series};

/// The paper's Table 3 (FNN, 1-bit): N, mean accuracy %, standard deviation.
pub const PAPER_TABLE3: [(usize, f64, f64); 7] = [
    (1000, 36.18, 7.65),
    (2000, 74.09, 4.71),
    (3000, 88.47, 1.82),
    (4000, 94.62, 0.44),
    (5000, 96.04, 0.82),
    (6000, 96.83, 0.36),
    (7000, 97.29, 0.25),
];
/// The paper's Table 4 (two residual blocks, 1-bit).
pub const PAPER_TABLE4: [(usize, f64, f64); 7] = [
    (1000, 14.12, 2.52),
    (2000, 31.52, 6.56),
    (3000, 66.93, 5.69),
    (4000, 86.47, 4.04),
    (5000, 92.88, 1.44),
    (6000, 95.28, 0.64),
    (7000, 96.30, 0.50),
];

/// Mean and sample standard deviation (n − 1; 0 for one value).
pub fn stats(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The rows that satisfy `f`.
fn pick(rows: &[Row], f: impl Fn(&Row) -> bool) -> Vec<&Row> {
    rows.iter().filter(|r| f(r)).collect()
}

/// Whether `r` is one of `set` (by identity: rows hold NaNs, so `==` would not do).
fn has(set: &[&Row], r: &Row) -> bool {
    set.iter().any(|x| std::ptr::eq(*x, r))
}

fn mean_of(rows: &[&Row], g: impl Fn(&Row) -> f64) -> (f64, f64) {
    stats(&rows.iter().map(|r| g(r)).collect::<Vec<_>>())
}

/// "95.20 ± 0.31" of accuracies in [0, 1], as percent.
fn acc_cell(rows: &[&Row]) -> String {
    if rows.is_empty() {
        return "–".into();
    }
    let (m, s) = mean_of(rows, |r| 100.0 * r.err.accuracy);
    format!("{m:.2} ± {s:.2}")
}

fn kind_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Fnn => "FNN",
        ModelKind::ResNet => "ResNet",
    }
}

fn file_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Fnn => "fnn",
        ModelKind::ResNet => "resnet",
    }
}

/// Distinct values of `g` over the rows, sorted.
fn distinct<T: Ord>(rows: &[&Row], g: impl Fn(&Row) -> T) -> Vec<T> {
    rows.iter()
        .map(|r| g(r))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Float accuracy of one architecture and width over seeds (one value per trained network).
fn float_cell(rows: &[Row], kind: ModelKind, width: usize) -> String {
    let mut seen = BTreeSet::new();
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.model == kind && r.width == width && seen.insert(r.seed))
        .map(|r| 100.0 * r.float_acc)
        .collect();
    let (m, s) = stats(&v);
    format!("{m:.2} ± {s:.2}")
}

/// Writes `results.csv` (one row per quantized network) and `layers.csv` (one row per layer).
pub fn write_csv(rows: &[Row], dir: &Path) -> Result<(), String> {
    let mut s = String::from(
        "experiment,model,width,seed,method,n,budget_bits,k,delta,float_acc,acc,worst_err,\
         worst_rel_err,mean_rel_err,rel_weight_err,file_bytes,fp32_bytes,bpw_quantized,\
         bpw_hidden,worst_err_over_bound,within_bounds\n",
    );
    let mut l = String::from(
        "experiment,model,width,seed,method,n,budget_bits,k,layer,d,layer_n,delta,max_error,\
         max_bound,uncertified,over_bound,frob_error,frob_norm\n",
    );
    for r in rows {
        let key = format!(
            "{},{},{},{},{},{},{},{}",
            r.experiment.name(),
            kind_name(r.model),
            r.width,
            r.seed,
            r.method,
            r.n,
            r.budget,
            r.k
        );
        let _ = writeln!(
            s,
            "{key},{:.6e},{:.4},{:.4},{:.6e},{:.6e},{:.6e},{:.6e},{},{},{:.4},{:.4},{:.6e},{}",
            r.delta,
            r.float_acc,
            r.err.accuracy,
            r.err.worst,
            r.err.worst_relative,
            r.err.mean_relative,
            r.rel_weight_err,
            r.file_bytes,
            r.fp32_bytes,
            r.bpw_quantized,
            r.bpw_hidden,
            r.worst_ratio,
            r.within_bounds
        );
        for x in &r.layers {
            let _ = writeln!(
                l,
                "{key},{},{},{},{:.6e},{:.6e},{:.6e},{},{},{:.6e},{:.6e}",
                x.name,
                x.d,
                x.n,
                x.delta,
                x.max_error,
                x.max_bound,
                x.uncertified,
                x.over_bound,
                x.frob_error,
                x.frob_norm
            );
        }
    }
    let w = |name: &str, text: &str| {
        fs::write(dir.join(name), text).map_err(|e| format!("writing {name}: {e}"))
    };
    w("results.csv", &s)?;
    w("layers.csv", &l)
}

/// The Table 1–2 analogue for one architecture and width.
fn table12(rows: &[Row], kind: ModelKind, width: usize) -> String {
    let t = pick(rows, |r| {
        r.experiment == Experiment::Table12 && r.model == kind && r.width == width
    });
    if t.is_empty() {
        return String::new();
    }
    let ks = distinct(&t, |r| r.k);
    let ns = distinct(&t, |r| r.n);
    let mut s = String::new();
    let _ = write!(s, "| N |");
    for &k in &ks {
        let (d, _) = mean_of(&pick(rows, |r| has(&t, r) && r.k == k), |r| r.delta);
        let _ = write!(s, " K = {k}, δ ≈ {d:.3} |");
    }
    let _ = write!(s, "\n|---|");
    for _ in &ks {
        s.push_str("---|");
    }
    s.push('\n');
    for &n in &ns {
        let _ = write!(s, "| {n} |");
        for &k in &ks {
            let c = pick(rows, |r| has(&t, r) && r.n == n && r.k == k);
            let (b, _) = mean_of(&c, |r| r.bpw_quantized);
            let _ = write!(s, " {} <br><sub>{b:.2} bits/w</sub> |", acc_cell(&c));
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nFloat accuracy (same networks): {} %. δ ≈ mean over seeds of the network-wide δ; \
         bits/w = code bits per weight of the quantized layers from the .sdq storage report.",
        float_cell(rows, kind, width)
    );
    s
}

/// The Table 3–4 analogue for one architecture, widths side by side, with the paper's numbers.
fn table34(rows: &[Row], cfg: &Config, kind: ModelKind) -> String {
    let paper = match kind {
        ModelKind::Fnn => &PAPER_TABLE3,
        ModelKind::ResNet => &PAPER_TABLE4,
    };
    let t = pick(rows, |r| {
        r.experiment == Experiment::OneBit && r.model == kind
    });
    let main = cfg.widths[0];
    let mut s = String::from("| N | paper (60,000 digits) |");
    for w in &cfg.widths {
        let _ = write!(s, " ours n = {w} |");
    }
    s.push_str(" bits/w, all quantized layers (n = ");
    let _ = write!(
        s,
        "{main}) | bits/w, fan-out-n layers | file vs fp32 | max error / bound |\n|---|---|"
    );
    for _ in &cfg.widths {
        s.push_str("---|");
    }
    s.push_str("---|---|---|---|\n");
    for n in distinct(&t, |r| r.n) {
        let p = paper
            .iter()
            .find(|p| p.0 == n)
            .map_or("–".into(), |p| format!("{:.2} ± {:.2}", p.1, p.2));
        let _ = write!(s, "| {n} | {p} |");
        for &w in &cfg.widths {
            let c = pick(rows, |r| has(&t, r) && r.n == n && r.width == w);
            let _ = write!(s, " {} |", acc_cell(&c));
        }
        let c = pick(rows, |r| has(&t, r) && r.n == n && r.width == main);
        let (bq, _) = mean_of(&c, |r| r.bpw_quantized);
        let (bh, _) = mean_of(&c, |r| r.bpw_hidden);
        let (ratio, _) = mean_of(&c, |r| r.fp32_bytes as f64 / r.file_bytes as f64);
        let worst = c.iter().map(|r| r.worst_ratio).fold(0.0, f64::max);
        let _ = writeln!(
            s,
            " {bq:.2} | {bh:.2} | {ratio:.2}× {} | {worst:.3} |",
            if ratio < 1.0 { "(larger)" } else { "(smaller)" }
        );
    }
    let _ = write!(s, "\nFloat accuracy (same networks):");
    for &w in &cfg.widths {
        let _ = write!(s, " n = {w}: {} %;", float_cell(rows, kind, w));
    }
    s.push_str(" the paper's float accuracy was lost in the text conversion.\n");
    s
}

/// The δ-policy comparison at 1 bit for one architecture (main width).
fn policy_table(rows: &[Row], cfg: &Config, kind: ModelKind) -> String {
    let main = cfg.widths[0];
    let t = pick(rows, |r| {
        r.model == kind
            && r.width == main
            && matches!(r.experiment, Experiment::OneBit | Experiment::Policy)
    });
    let methods = ["uniform", "tensor", "vector", "coefficient"];
    let mut s = String::from(
        "| N | uniform δ (paper) | per-tensor δ | per-vector δ | coefficient δ | bits/w uniform → coefficient |\n|---|---|---|---|---|---|\n",
    );
    for n in distinct(&t, |r| r.n) {
        let _ = write!(s, "| {n} |");
        for m in methods {
            let c = pick(rows, |r| has(&t, r) && r.n == n && r.method.ends_with(m));
            let _ = write!(s, " {} |", acc_cell(&c));
        }
        let b = |m: &str| {
            mean_of(
                &pick(rows, |r| has(&t, r) && r.n == n && r.method.ends_with(m)),
                |r| r.bpw_quantized,
            )
            .0
        };
        let _ = writeln!(s, " {:.2} → {:.2} |", b("uniform"), b("coefficient"));
    }
    s
}

/// A readable name of a storage-experiment method.
fn storage_label(method: &str, k: u32) -> String {
    match (method, k) {
        ("rtn", _) => "round-to-nearest, per row".into(),
        (m, 1) => format!(
            "ΣΔ {} δ, {}, 1-bit codes",
            m.split('-').nth(2).unwrap_or(""),
            m.split('-').nth(1).unwrap_or("")
        ),
        (m, k) => format!(
            "ΣΔ {} δ, {}, K = {k}, N = 2d",
            m.split('-').nth(2).unwrap_or(""),
            m.split('-').nth(1).unwrap_or("")
        ),
    }
}

/// The equal-storage comparison for one architecture (main width).
fn storage_table(rows: &[Row], cfg: &Config, kind: ModelKind) -> String {
    let main = cfg.widths[0];
    let t = pick(rows, |r| {
        r.experiment == Experiment::Storage && r.model == kind && r.width == main
    });
    let mut s = String::from(
        "| budget (bits/w) | method | bits/w stored | accuracy % | ‖W − W̃‖_F / ‖W‖_F |\n|---|---|---|---|---|\n",
    );
    for b in distinct(&t, |r| r.budget) {
        for (m, k) in distinct(&t, |r| (r.method.clone(), r.k)) {
            let c = pick(rows, |r| {
                has(&t, r) && r.budget == b && r.method == m && r.k == k
            });
            if c.is_empty() {
                continue;
            }
            let (bits, _) = mean_of(&c, |r| r.bpw_quantized);
            let (e, _) = mean_of(&c, |r| r.rel_weight_err);
            let _ = writeln!(
                s,
                "| {b} | {} | {bits:.2} | {} | {e:.4} |",
                storage_label(&m, k),
                acc_cell(&c)
            );
        }
    }
    s
}

/// Mean of `g` over seeds, as (x, mean, sd) points along N for the rows `f` selects.
fn curve(rows: &[Row], f: impl Fn(&Row) -> bool, g: impl Fn(&Row) -> f64) -> Vec<(f64, f64, f64)> {
    let t = pick(rows, &f);
    distinct(&t, |r| r.n)
        .into_iter()
        .map(|n| {
            let (m, s) = mean_of(&pick(rows, |r| f(r) && r.n == n), &g);
            (n as f64, m, s)
        })
        .collect()
}

fn series(label: String, color: usize, points: Vec<(f64, f64, f64)>) -> Series {
    Series {
        label,
        points,
        dashed: false,
        color,
    }
}

/// A boxed selection of rows.
type RowFilter = Box<dyn Fn(&Row) -> bool>;

/// Draws the four figures (and the 1-bit accuracy figure) into `dir`; returns their file names.
pub fn write_figures(rows: &[Row], cfg: &Config, dir: &Path) -> Result<Vec<String>, String> {
    let main = cfg.widths[0];
    let mut written = Vec::new();
    let mut save = |name: String, plot: Plot| -> Result<(), String> {
        fs::write(dir.join(&name), plot.render()).map_err(|e| format!("writing {name}: {e}"))?;
        written.push(name);
        Ok(())
    };
    let ks = distinct(&pick(rows, |r| r.experiment == Experiment::Table12), |r| {
        r.k
    });
    // Figure A: accuracy vs N per δ (Tables 1–2).
    for kind in ModelKind::ALL {
        let sel = |r: &Row, k: u32| {
            r.experiment == Experiment::Table12 && r.model == kind && r.width == main && r.k == k
        };
        let mut p = Plot {
            title: format!(
                "{} n = {main}: accuracy vs N (Tables 1–2 analogue)",
                kind_name(kind)
            ),
            x_label: "frame size N".into(),
            y_label: "test accuracy %".into(),
            ..Plot::default()
        };
        for (i, &k) in ks.iter().enumerate() {
            let pts = curve(rows, |r| sel(r, k), |r| 100.0 * r.err.accuracy);
            p.series.push(series(format!("δ(K = {k})"), i, pts));
        }
        let fl = curve(rows, |r| sel(r, ks[0]), |r| 100.0 * r.float_acc);
        p.series.push(series("float".into(), 7, fl).dashed());
        save(format!("accuracy_vs_n_{}.svg", file_name(kind)), p)?;
    }
    // 1-bit accuracy with the paper's Tables 3–4.
    let mut p = Plot {
        title: "1-bit, one uniform δ: accuracy vs N (Tables 3–4)".into(),
        x_label: "frame size N".into(),
        y_label: "test accuracy %".into(),
        ..Plot::default()
    };
    let mut color = 0;
    for kind in ModelKind::ALL {
        for &w in &cfg.widths {
            let pts = curve(
                rows,
                |r| r.experiment == Experiment::OneBit && r.model == kind && r.width == w,
                |r| 100.0 * r.err.accuracy,
            );
            p.series
                .push(series(format!("{} n = {w}", kind_name(kind)), color, pts));
            color += 1;
        }
        let paper = match kind {
            ModelKind::Fnn => &PAPER_TABLE3,
            ModelKind::ResNet => &PAPER_TABLE4,
        };
        let pts = paper.iter().map(|&(n, m, s)| (n as f64, m, s)).collect();
        p.series
            .push(series(format!("{} paper", kind_name(kind)), color, pts).dashed());
        color += 1;
    }
    save("accuracy_1bit.svg".into(), p)?;

    // Figure 1 analogue: worst-case error vs N and δ (FNN, main width), log–log.
    let fnn = move |r: &Row| r.model == ModelKind::Fnn && r.width == main;
    let mut p1 = Plot {
        title: format!("Figure 1 analogue: worst-case error, FNN n = {main}"),
        x_label: "frame size N".into(),
        y_label: "max over test x of ‖Φ(x) − Φ̃(x)‖".into(),
        log_x: true,
        log_y: true,
        ..Plot::default()
    };
    let mut p2 = Plot {
        title: format!("Figure 2 analogue: ln(mean error · N / δ), FNN n = {main}"),
        x_label: "frame size N".into(),
        y_label: "ln( mean ‖Φ(x) − Φ̃(x)‖/‖x‖ · N / δ )".into(),
        log_x: true,
        ..Plot::default()
    };
    let groups: Vec<(String, RowFilter)> = ks
        .iter()
        .map(|&k| {
            let f: RowFilter =
                Box::new(move |r: &Row| fnn(r) && r.experiment == Experiment::Table12 && r.k == k);
            (format!("δ(K = {k}), fc1+fc2"), f)
        })
        .chain(std::iter::once((
            "1-bit, all layers".to_string(),
            Box::new(move |r: &Row| fnn(r) && r.experiment == Experiment::OneBit) as RowFilter,
        )))
        .collect();
    for (i, (label, f)) in groups.iter().enumerate() {
        p1.series
            .push(series(label.clone(), i, curve(rows, f, |r| r.err.worst)));
        p2.series.push(series(
            label.clone(),
            i,
            curve(rows, f, |r| {
                (r.err.mean_relative * r.n as f64 / r.delta).ln()
            }),
        ));
    }
    save("fig1_worst_case_error.svg".into(), p1)?;
    save("fig2_log_error_n_over_delta.svg".into(), p2)?;

    // Per-layer measured error vs certified bound (FNN, main width, 1-bit uniform δ).
    let mut p = Plot {
        title: format!("Per-layer error vs Theorem 3.1 bound, FNN n = {main}, 1-bit"),
        x_label: "frame size N".into(),
        y_label: "max over vectors of ‖w_j − w̃_j‖".into(),
        log_x: true,
        log_y: true,
        ..Plot::default()
    };
    let one = pick(rows, |r| fnn(r) && r.experiment == Experiment::OneBit);
    let names: Vec<String> = one
        .first()
        .map(|r| r.layers.iter().map(|l| l.name.clone()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let layer = |r: &Row, g: &dyn Fn(&crate::harness::LayerStat) -> f64| {
            r.layers
                .iter()
                .find(|l| &l.name == name)
                .map_or(f64::NAN, g)
        };
        let sel = |r: &Row| fnn(r) && r.experiment == Experiment::OneBit;
        let m = curve(rows, sel, |r| layer(r, &|l| l.max_error));
        let b = curve(rows, sel, |r| layer(r, &|l| l.max_bound));
        p.series.push(series(format!("{name} measured"), i, m));
        p.series
            .push(series(format!("{name} bound"), i, b).dashed());
    }
    save("layer_error_vs_bound.svg".into(), p)?;
    Ok(written)
}

/// Everything the README states about the run besides the tables.
pub struct RunInfo {
    /// The command that produced the directory.
    pub command: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU description.
    pub machine: String,
    /// Whether this is the `--quick` version.
    pub quick: bool,
}

/// Checked statements about the results, one bullet each.
fn reading(rows: &[Row], cfg: &Config) -> String {
    let main = cfg.widths[0];
    let mut s = String::new();
    // Monotonicity in N and δ (Tables 1–2).
    for kind in ModelKind::ALL {
        for &w in &cfg.widths {
            let t = pick(rows, |r| {
                r.experiment == Experiment::Table12 && r.model == kind && r.width == w
            });
            if t.is_empty() {
                continue;
            }
            let ks = distinct(&t, |r| r.k);
            let ns = distinct(&t, |r| r.n);
            let m = |n: usize, k: u32| {
                mean_of(&pick(rows, |r| has(&t, r) && r.n == n && r.k == k), |r| {
                    r.err.accuracy
                })
                .0
            };
            let (mut up_n, mut tot_n, mut up_d, mut tot_d) = (0, 0, 0, 0);
            for &k in &ks {
                for p in ns.windows(2) {
                    tot_n += 1;
                    up_n += usize::from(m(p[1], k) >= m(p[0], k));
                }
            }
            for &n in &ns {
                for p in ks.windows(2) {
                    tot_d += 1;
                    up_d += usize::from(m(n, p[1]) >= m(n, p[0]));
                }
            }
            let _ = writeln!(
                s,
                "- Tables 1–2 analogue, {} n = {w}: mean accuracy does not fall when N grows in \
                 {up_n} of {tot_n} steps, and does not fall when δ shrinks (K grows) in {up_d} of \
                 {tot_d} steps (the paper: \"smaller δ and larger N result in higher accuracy\").",
                kind_name(kind)
            );
        }
    }
    // 1-bit.
    for kind in ModelKind::ALL {
        let t = pick(rows, |r| {
            r.experiment == Experiment::OneBit && r.model == kind && r.width == main
        });
        let ns = distinct(&t, |r| r.n);
        let (Some(&lo), Some(&hi)) = (ns.first(), ns.last()) else {
            continue;
        };
        let acc = |n: usize| {
            100.0 * mean_of(&pick(rows, |r| has(&t, r) && r.n == n), |r| r.err.accuracy).0
        };
        let fl = 100.0 * mean_of(&t, |r| r.float_acc).0;
        let near = ns.iter().find(|&&n| acc(n) >= fl - 1.0);
        let _ = writeln!(
            s,
            "- 1-bit, {} n = {main}: {:.1} % at N = {lo} → {:.1} % at N = {hi} (float {fl:.1} %); \
             within 1 point of float from N = {}. The paper: {}.",
            kind_name(kind),
            acc(lo),
            acc(hi),
            near.map_or("never in this range".into(), |n| n.to_string()),
            match kind {
                ModelKind::Fnn => "36.2 % → 97.3 %",
                ModelKind::ResNet => "14.1 % → 96.3 %",
            }
        );
    }
    // Bounds.
    let q = pick(rows, |r| r.method != "rtn");
    let all_in = q.iter().all(|r| r.within_bounds);
    let worst = q.iter().map(|r| r.worst_ratio).fold(0.0, f64::max);
    let layers: usize = q.iter().map(|r| r.layers.len()).sum();
    let _ = writeln!(
        s,
        "- Theorem 3.1: {} in all {} quantized networks ({} quantized layers); the largest \
         measured-error / bound ratio is {worst:.3}, so the certificate is valid but loose.",
        if all_in {
            "every vector of every layer is inside its certified bound"
        } else {
            "SOME VECTORS EXCEED THEIR BOUND"
        },
        q.len(),
        layers
    );
    // Figure 2 flatness.
    let fnn = |r: &Row| r.model == ModelKind::Fnn && r.width == main;
    let f2 = pick(rows, |r| fnn(r) && r.experiment == Experiment::Table12);
    let mut groups: Vec<(String, Vec<&Row>)> = distinct(&f2, |r| r.k)
        .into_iter()
        .map(|k| {
            (
                format!("δ(K = {k})"),
                pick(rows, |r| has(&f2, r) && r.k == k),
            )
        })
        .collect();
    groups.push((
        "1-bit, uniform δ".into(),
        pick(rows, |r| fnn(r) && r.experiment == Experiment::OneBit),
    ));
    for (label, g) in &groups {
        let pts = curve(
            rows,
            |r| has(g, r),
            |r| (r.err.mean_relative * r.n as f64 / r.delta).ln(),
        );
        let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (n0, n1) = (
            pts.first().map_or(0.0, |p| p.0),
            pts.last().map_or(0.0, |p| p.0),
        );
        let _ = writeln!(
            s,
            "- Figure 2 analogue, FNN n = {main}, {label}: ln(mean error · N/δ) stays within \
             [{lo:.2}, {hi:.2}] over N = {n0}…{n1} (a spread of {:.2}, i.e. a factor {:.2}, \
             while N/δ changes by a factor {:.1}).",
            hi - lo,
            (hi - lo).exp(),
            n1 / n0
        );
    }
    // Equal storage.
    for kind in ModelKind::ALL {
        let t = pick(rows, |r| {
            r.experiment == Experiment::Storage && r.model == kind && r.width == main
        });
        for b in distinct(&t, |r| r.budget) {
            let c = pick(rows, |r| has(&t, r) && r.budget == b);
            let r = pick(rows, |r| has(&c, r) && r.method == "rtn");
            let (ra, re, rb) = (
                mean_of(&r, |r| r.err.accuracy).0,
                mean_of(&r, |r| r.rel_weight_err).0,
                mean_of(&r, |r| r.bpw_quantized).0,
            );
            // (accuracy, weight error, stored bits/w, label) of every ΣΔ variant.
            let sd: Vec<(f64, f64, f64, String)> = distinct(&c, |r| (r.method.clone(), r.k))
                .into_iter()
                .filter(|(m, _)| m != "rtn")
                .map(|(m, k)| {
                    let g = pick(rows, |r| has(&c, r) && r.method == m && r.k == k);
                    (
                        mean_of(&g, |r| r.err.accuracy).0,
                        mean_of(&g, |r| r.rel_weight_err).0,
                        mean_of(&g, |r| r.bpw_quantized).0,
                        storage_label(&m, k),
                    )
                })
                .collect();
            let best = |v: &mut dyn Iterator<Item = &(f64, f64, f64, String)>| {
                v.max_by(|a, b| a.0.total_cmp(&b.0)).cloned()
            };
            // Equal storage: ΣΔ variants that store no more bits per weight than round-to-nearest.
            let fair = best(&mut sd.iter().filter(|x| x.2 <= rb));
            let fair_err = sd
                .iter()
                .filter(|x| x.2 <= rb)
                .map(|x| x.1)
                .fold(f64::INFINITY, f64::min);
            let any = best(&mut sd.iter());
            let mut line = format!(
                "- {b} bits/weight, {} n = {main}: round-to-nearest {:.2} % (weight error {re:.4}, \
                 {rb:.2} bits/w stored)",
                kind_name(kind),
                100.0 * ra
            );
            match &fair {
                Some(f) => {
                    let verdict = match (ra >= f.0, re <= fair_err) {
                        (true, true) => "round-to-nearest wins on accuracy and on weight error",
                        (false, false) => "frame quantization wins on accuracy and on weight error",
                        (true, false) => {
                            "round-to-nearest wins on accuracy, frame quantization on weight error"
                        }
                        (false, true) => {
                            "frame quantization wins on accuracy, round-to-nearest on weight error"
                        }
                    };
                    line += &format!(
                        "; best ΣΔ at no more storage: {} {:.2} % ({:.2} bits/w; lowest ΣΔ weight \
                         error at this storage {fair_err:.4}) — {verdict}",
                        f.3,
                        100.0 * f.0,
                        f.2
                    );
                }
                None => line += "; no ΣΔ variant fits in that storage",
            }
            if let Some(a) = any.filter(|a| fair.as_ref().is_none_or(|f| f.3 != a.3)) {
                line += &format!(
                    ". Allowed more storage, {} reaches {:.2} % at {:.2} bits/w — {} \
                     round-to-nearest",
                    a.3,
                    100.0 * a.0,
                    a.2,
                    if a.0 > ra { "above" } else { "still not above" }
                );
            }
            let _ = writeln!(s, "{line}.");
        }
    }
    s
}

/// Writes README.md.
pub fn write_readme(
    rows: &[Row],
    cfg: &Config,
    info: &RunInfo,
    figures: &[String],
    dir: &Path,
) -> Result<(), String> {
    let main = cfg.widths[0];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Reproducing Czaja & Na, \"Frame Quantization of Neural Networks\" (2024), Section 6\n\n\
         Generated by `{}` — do not edit by hand; change `examples/reproduce*` and rerun.{}\n",
        info.command,
        if info.quick {
            "\n\n**This is the `--quick` (CI-sized) version: few frame sizes, one width, few seeds. \
             Run without `--quick` for the full reproduction.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "## Setup\n\n\
         - Machine: {} ({} cores available to the run); wall-clock run time **{:.0} s** ({:.1} min), \
         training included.\n\
         - Data: the 5,000 real MNIST digits shipped in `data/mnist_5k.csv.gz`, shuffled with split \
         seed {SPLIT_SEED} into {N_TRAIN} training and {} test images. **The paper trained on all \
         60,000 MNIST digits**: every comparison with its numbers below is about trends, not levels.\n\
         - Models (Section 6): FNN 784 → n → n → 10 and the network with two residual blocks \
         784 → n → (x + V·ρ(W·x)) ×2 → 10, ReLU, no biases; trained with Adam (lr {}, batch {}, \
         {} epochs) by `examples/mnist`. Training seeds: {:?} — {} trainings per setting{}.\n\
         - Width: n = {main} for all four tables. Table 1 starts at N = 256 and the frame needs \
         N ≥ d + 1 with d = n (the layer's fan-out), so n < 256; a replication found Table 3's \
         shape (collapse at N = 1000, recovery by N ≈ 4000–5000) for n ≈ 200–256. {}\n\
         - Quantizer: harmonic frames, identity ordering, first-order ΣΔ, columns of W[out, in] \
         (d = fan-out, Algorithm 1). Every quantized network goes safetensors → `sdq` library → \
         .sdq file → memory-mapped `SdqFile::open` → decoded weights → evaluation; bits per \
         weight and sizes come from the .sdq storage report.\n\
         - Which layers: Tables 1–2 quantize the layers of fan-out n (FNN: fc1, fc2; ResNet: fc1 \
         and the four block matrices) with one δ and K, and keep the 10 × n output layer in fp32 — \
         the paper's storage discussion counts only \"the first and second weight matrices\", and \
         the lost Table 1 text does not say otherwise. Tables 3–4 quantize **every** layer \
         (fc3 with d = 10) with K = 1 and one network-wide δ from condition (9) \
         (`uniform_delta` over all layers), as Section 6.3 says.\n\
         - δ grid of Tables 1–2 (the paper's values were lost): δ_K = the smallest δ with \
         max_j ‖w_j‖ ≤ (K − ½)·δ over the quantized layers, for K ∈ {:?}; so K is the one \
         condition (9) gives for that δ, and codes take ⌈log2 2K⌉ bits.\n\
         - Accuracy cells are mean ± sample standard deviation over the training seeds, in %.\n",
        info.machine,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        info.seconds,
        info.seconds / 60.0,
        5000 - N_TRAIN,
        cfg.train.lr,
        cfg.train.batch,
        cfg.train.epochs,
        cfg.seeds,
        cfg.seeds.len(),
        if cfg.seeds.len() < 10 {
            " (fewer than the paper's 10)"
        } else {
            " (as the paper)"
        },
        if cfg.widths.len() > 1 {
            format!(
                "n = {} is reported beside it.",
                cfg.widths[1..]
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        },
        cfg.table12_levels
    );
    let _ = writeln!(s, "## Tables 1–2 analogue: N × δ\n");
    for (kind, t) in [(ModelKind::Fnn, "Table 1"), (ModelKind::ResNet, "Table 2")] {
        for &w in &cfg.widths {
            let _ = writeln!(
                s,
                "### {t} analogue — {} n = {w}\n\n{}",
                kind_name(kind),
                table12(rows, kind, w)
            );
        }
    }
    let _ = writeln!(
        s,
        "## Tables 3–4 analogue: 1-bit, one uniform δ, every layer\n\n\
         The paper's columns are its published Tables 3 and 4 (trained on 60,000 digits; compare \
         trends, not levels). \"File vs fp32\" is the fp32 size of the whole network over the \
         .sdq file size (all tensors, header included); below 1× the file is larger than fp32. \
         With 1-bit codes a layer costs N/d bits per weight, so it is smaller than fp32 only for \
         N < 32·d = {} at d = n = {main}; fc3 (d = 10) costs N/10 bits per weight.\n",
        32 * main
    );
    for (kind, t) in [(ModelKind::Fnn, "Table 3"), (ModelKind::ResNet, "Table 4")] {
        let _ = writeln!(
            s,
            "### {t} analogue — {}\n\n{}",
            kind_name(kind),
            table34(rows, cfg, kind)
        );
    }
    let _ = writeln!(s, "## Figures\n");
    let captions = [
        ("accuracy_vs_n_fnn.svg", "Accuracy vs N per δ, FNN (Table 1 data)."),
        ("accuracy_vs_n_resnet.svg", "Accuracy vs N per δ, ResNet (Table 2 data)."),
        ("accuracy_1bit.svg", "1-bit accuracy vs N, ours (solid) and the paper's Tables 3–4 (dashed; 60,000 training digits)."),
        ("fig1_worst_case_error.svg", "Figure 1 analogue: worst case over the test set of ‖Φ(x) − Φ̃(x)‖ (logits), per δ, vs N (log–log). Theorem 5.3 predicts slope −1 in N and proportionality to δ."),
        ("fig2_log_error_n_over_delta.svg", "Figure 2 analogue: ln of the test-set mean of ‖Φ(x) − Φ̃(x)‖/‖x‖ times N/δ. Flat lines mean the O(δ/N) dependence of the bound is tight in N and δ (the paper's claim); the δ used is the network-wide one."),
        ("layer_error_vs_bound.svg", "Per-layer measured max_j ‖w_j − w̃_j‖ (solid) and the certified Theorem 3.1 bound (dashed), FNN, 1-bit, uniform δ."),
    ];
    for (f, c) in captions {
        if figures.iter().any(|x| x == f) {
            let _ = writeln!(s, "![{f}]({f})\n\n*{c}*\n");
        }
    }
    let _ = writeln!(
        s,
        "## Beyond the paper (n = {main})\n\n\
         ### δ rules at 1 bit (every layer, columns)\n\n\
         Per-tensor: the paper's rule layer by layer; per-vector: condition (9) vector by vector; \
         coefficient: the smallest δ with max_n |⟨w_j, e_n⟩| ≤ (K − ½)δ, which still certifies \
         Theorem 3.1. Per-vector rules store one δ per vector (64 bits), included in bits/w.\n"
    );
    for kind in ModelKind::ALL {
        let _ = writeln!(
            s,
            "#### {}\n\n{}",
            kind_name(kind),
            policy_table(rows, cfg, kind)
        );
    }
    let _ = writeln!(
        s,
        "### Equal storage: frame quantization vs round-to-nearest, columns vs rows\n\n\
         Every layer quantized. ΣΔ: N = ⌊b·d / ⌈log2 2K⌉⌋ per layer so that codes cost b bits per \
         original weight (columns: d = fan-out; rows: d = fan-in); \"bits/w stored\" is from the \
         .sdq storage report and includes δ tables and headers. Round-to-nearest: per-row \
         symmetric, scale = max|row| / (2^(b−1) − 1), b bits per weight plus one fp32 scale per \
         row (computed, not written to a file — it is the baseline, not an sdq encoding).\n"
    );
    for kind in ModelKind::ALL {
        let _ = writeln!(
            s,
            "#### {}\n\n{}",
            kind_name(kind),
            storage_table(rows, cfg, kind)
        );
    }
    let _ = writeln!(
        s,
        "## Reading\n\nStatements computed from this run's numbers:\n\n{}",
        reading(rows, cfg)
    );
    s.push_str(&crate::discussion::text(rows, cfg));
    let _ = writeln!(
        s,
        "\n## Files\n\n- `results.csv`: one row per quantized network (experiment, model, width, \
         seed, method, N, budget, K, δ, float and quantized accuracy, worst / relative / mean \
         output errors, relative weight error, file and fp32 bytes, bits per weight, worst \
         error/bound ratio).\n- `layers.csv`: one row per quantized layer (d, N, δ, measured max \
         error, certified bound, Frobenius errors).\n- The SVG figures above, drawn by \
         `examples/reproduce/svg.rs`.\n"
    );
    fs::write(dir.join("README.md"), s).map_err(|e| format!("writing README.md: {e}"))
}
