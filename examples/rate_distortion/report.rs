//! The report's outputs: `points.csv`, the SVG figures and `README.md` with its tables and the
//! recommendations drawn from the measured points.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::measure::{Point, Subject};
use crate::schemes::{self, ZSTD_LEVEL};
use crate::svg::{Plot, Series};

/// How the run went, for the README.
pub struct RunInfo {
    /// The command that generated the report.
    pub command: String,
    /// Wall-clock seconds, training included.
    pub seconds: f64,
    /// CPU and cores.
    pub machine: String,
    /// Load averages at the start and the end.
    pub load_start: String,
    /// See `load_start`.
    pub load_end: String,
    /// `--quick`.
    pub quick: bool,
    /// `RAYON_NUM_THREADS` of the run.
    pub threads: String,
    /// (subject, f32 read µs per million weights before, after) per subject.
    pub f32_times: Vec<(String, f64, f64)>,
}

/// File bits per weight budgets of the README's tables.
const BUDGETS: [f64; 8] = [1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.5];

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// The largest prime factor of `n` (0 for n < 2).
fn largest_prime_factor(mut n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    let (mut f, mut largest) = (2, 1);
    while f * f <= n {
        while n % f == 0 {
            largest = f;
            n /= f;
        }
        f += 1;
    }
    if n > 1 {
        n
    } else {
        largest
    }
}

/// `points.csv`: every measured point.
pub fn write_csv(points: &[Point], dir: &Path) -> Result<(), String> {
    let mut s = String::from(
        "subject,method,family,order,reordered,delta,k,bits_per_code,target_code_bits,redundancy,n_min,n_max,n_max_largest_prime_factor,code_bits,\
         file_bits,file_bits_zstd,file_bits_whole_file,rel_weight_error,accuracy,float_accuracy,certified,\
         worst_error_over_bound,decode_us_per_mweight,decode_zstd_us_per_mweight,\
         f32_read_us_per_mweight,decode_ratio,decode_zstd_ratio\n",
    );
    for p in points {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.6e},{:.4},{:.4},{},{:.4},{:.1},{:.1},{:.1},{:.3},{:.3}",
            p.subject,
            p.method,
            p.family,
            p.order,
            p.reordered,
            p.delta,
            p.k,
            p.bits_per_code,
            p.target,
            p.redundancy,
            p.n_min,
            p.n_max,
            largest_prime_factor(p.n_max),
            p.code_bits,
            p.file_bits,
            p.file_bits_zstd,
            p.file_bits_total,
            p.rel_err,
            p.accuracy,
            p.float_accuracy,
            p.certified,
            p.worst_ratio,
            p.decode_us,
            p.decode_zstd_us,
            p.f32_us,
            p.decode_us / p.f32_us,
            p.decode_zstd_us / p.f32_us,
        );
    }
    write(&dir.join("points.csv"), &s)
}

/// The methods in the order they were measured (id, legend text, short legend text).
fn methods(points: &[Point]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for p in points {
        if !v.iter().any(|m| m.0 == p.method) {
            v.push((p.method.clone(), p.label.clone()));
        }
    }
    v
}

/// A family of figures: which methods it shows and how each is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// First-order ΣΔ with every δ policy and K, and round-to-nearest.
    FirstOrder,
    /// The coefficient δ, first order (solid) against second order (dashed), coloured by K,
    /// and round-to-nearest.
    Orders,
    /// The coefficient δ: harmonic (solid) against spectral-tetris (dashed) frames, natural and
    /// computed orderings, and round-to-nearest.
    Families,
}

impl View {
    const ALL: [View; 3] = [View::FirstOrder, View::Orders, View::Families];

    fn suffix(self) -> &'static str {
        match self {
            View::FirstOrder => "",
            View::Orders => "_orders",
            View::Families => "_families",
        }
    }

    fn what(self) -> &'static str {
        match self {
            View::FirstOrder => "first-order ΣΔ in harmonic frames, every δ policy",
            View::Orders => {
                "harmonic frames, coefficient δ, first-order (solid) vs second-order (dashed) ΣΔ"
            }
            View::Families => {
                "coefficient δ, harmonic (solid) vs spectral-tetris (dashed) frames, natural and computed orderings"
            }
        }
    }

    /// Legend text, colour and dash of `method` in this view, or `None` if it is not shown.
    fn style(self, method: &str) -> Option<(String, usize, bool)> {
        if method == "rtn" {
            return Some(("round-to-nearest".into(), 7, false));
        }
        let s = schemes::frame_schemes()
            .into_iter()
            .find(|s| s.id() == method)?;
        let delta = s.delta.describe();
        let harmonic = s.family() == "harmonic";
        let coefficient = delta == "coefficient";
        match self {
            View::FirstOrder if s.order() == 1 && harmonic && !s.reorder => {
                let color = match (delta.as_str(), s.levels) {
                    ("coefficient", 1 | 2) => 0,
                    ("vector", _) => 1,
                    ("tensor", _) => 2,
                    ("uniform", _) => 3,
                    (_, 4) => 4,
                    (_, 32) => 6,
                    _ => 5,
                };
                Some((s.short(), color, s.levels == 2 || s.levels == 128))
            }
            View::Orders if coefficient && harmonic && !s.reorder => {
                let color = match s.levels {
                    1 => 0,
                    2 => 1,
                    4 => 4,
                    8 => 5,
                    32 => 6,
                    _ => 2,
                };
                Some((s.short(), color, s.order() == 2))
            }
            View::Families if coefficient => {
                let color = match (s.order(), s.levels, s.reorder) {
                    (1, 1, false) => 0,
                    (1, 2, false) => 1,
                    (1, 8, false) => 5,
                    (2, 2, false) => 4,
                    (1, 1, true) => 3,
                    _ => return None,
                };
                Some((s.short(), color, !harmonic))
            }
            _ => None,
        }
    }
}

fn of<'a>(points: &'a [Point], subject: &str, method: &str) -> Vec<&'a Point> {
    let mut v: Vec<&Point> = points
        .iter()
        .filter(|p| p.subject == subject && p.method == method)
        .collect();
    v.sort_by(|a, b| a.file_bits.total_cmp(&b.file_bits));
    v
}

/// Writes the figures of every subject; returns (file name, caption) of each.
pub fn write_figures(
    points: &[Point],
    subjects: &[Subject],
    dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let ms = methods(points);
    let x_label = "bits per weight of the quantized tensors in the .sdq file (zstd off)";
    for s in subjects {
        for view in View::ALL {
            let series = |g: &dyn Fn(&Point) -> f64| -> Vec<Series> {
                ms.iter()
                    .filter_map(|(m, _)| {
                        let (label, color, dashed) = view.style(m)?;
                        Some(Series {
                            label,
                            points: of(points, &s.id, m)
                                .iter()
                                .map(|p| (p.file_bits, g(p), 0.0))
                                .collect(),
                            dashed,
                            color,
                        })
                    })
                    .filter(|x| !x.points.is_empty())
                    .collect()
            };
            let v = view.suffix();
            let mut plots = vec![(
                format!("error{v}_{}.svg", s.id),
                format!(
                    "{}: relative weight error vs bits per weight ({})",
                    s.name,
                    view.what()
                ),
                Plot {
                    title: format!("{}: ‖W − W̃‖_F / ‖W‖_F", s.name),
                    x_label: x_label.into(),
                    y_label: "relative weight error".into(),
                    log_y: true,
                    series: series(&|p| p.rel_err),
                    ..Plot::default()
                },
            )];
            if s.eval.is_some() {
                plots.push((
                    format!("accuracy{v}_{}.svg", s.id),
                    format!(
                        "{}: test accuracy vs bits per weight ({})",
                        s.name,
                        view.what()
                    ),
                    Plot {
                        title: format!("{}: test accuracy", s.name),
                        x_label: x_label.into(),
                        y_label: "test accuracy %".into(),
                        series: series(&|p| 100.0 * p.accuracy),
                        ..Plot::default()
                    },
                ));
            }
            if view == View::Orders {
                plots.push((
                    format!("decode_{}.svg", s.id),
                    format!(
                        "{}: decode time relative to reading the same tensors stored as f32 ({})",
                        s.name,
                        view.what()
                    ),
                    Plot {
                        title: format!("{}: decode time / f32 read time", s.name),
                        x_label: x_label.into(),
                        y_label: "decode time / f32 read".into(),
                        log_y: true,
                        series: series(&|p| p.decode_us / p.f32_us),
                        ..Plot::default()
                    },
                ));
            }
            for (file, caption, plot) in plots {
                write(&dir.join(&file), &plot.render())?;
                out.push((file, caption));
            }
        }
    }
    Ok(out)
}

/// The point of `method` with the lowest error among those at most `budget` file bits.
fn best_within<'a>(
    points: &'a [Point],
    subject: &str,
    method: &str,
    budget: f64,
) -> Option<&'a Point> {
    of(points, subject, method)
        .into_iter()
        .filter(|p| p.file_bits <= budget)
        .min_by(|a, b| a.rel_err.total_cmp(&b.rel_err))
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

/// Rows: methods; columns: file-size budgets; cells: the best point within the budget.
fn budget_table(points: &[Point], s: &Subject) -> String {
    let mut t = String::from("| method |");
    for b in BUDGETS {
        let _ = write!(t, " ≤ {b} |");
    }
    t.push_str("\n|---|");
    t.push_str(&"---|".repeat(BUDGETS.len()));
    t.push('\n');
    for (m, label) in methods(points) {
        if of(points, &s.id, &m).is_empty() {
            continue;
        }
        let _ = write!(t, "| {label} |");
        for b in BUDGETS {
            match best_within(points, &s.id, &m, b) {
                Some(p) if s.eval.is_some() => {
                    let _ = write!(
                        t,
                        " {}% · {:.3} <br><sub>{:.2} b</sub> |",
                        pct(p.accuracy),
                        p.rel_err,
                        p.file_bits
                    );
                }
                Some(p) => {
                    let _ = write!(t, " {:.4} <br><sub>{:.2} b</sub> |", p.rel_err, p.file_bits);
                }
                None => t.push_str(" – |"),
            }
        }
        t.push('\n');
    }
    t
}

/// Code-bit budgets of the zstd and decode tables.
const TABLE_TARGETS: [f64; 5] = [1.0, 2.0, 4.0, 8.0, 16.0];

fn at_target<'a>(points: &'a [Point], subject: &str, method: &str, t: f64) -> Option<&'a Point> {
    points
        .iter()
        .find(|p| p.subject == subject && p.method == method && p.target == t)
}

/// Per method and code-bit budget: the file size zstd off → on, and the decode time relative to
/// the f32 read (zstd off / on).
fn size_speed_table(points: &[Point], s: &Subject) -> String {
    let mut t = String::from("| method |");
    for b in TABLE_TARGETS {
        let _ = write!(t, " {b} code bits/w |");
    }
    t.push_str(" every vector certified |\n|---|");
    t.push_str(&"---|".repeat(TABLE_TARGETS.len() + 1));
    t.push('\n');
    for (m, label) in methods(points) {
        let v = of(points, &s.id, &m);
        if v.is_empty() {
            continue;
        }
        let _ = write!(t, "| {label} |");
        for b in TABLE_TARGETS {
            match at_target(points, &s.id, &m, b) {
                Some(p) if m == "rtn" => {
                    let _ = write!(
                        t,
                        " {:.2} b <br>decode {:.1}× (loop) |",
                        p.file_bits,
                        p.decode_us / p.f32_us
                    );
                }
                Some(p) => {
                    let _ = write!(
                        t,
                        " {:.2} → {:.2} b <br>decode {:.0}× / {:.0}× |",
                        p.file_bits,
                        p.file_bits_zstd,
                        p.decode_us / p.f32_us,
                        p.decode_zstd_us / p.f32_us
                    );
                }
                None => t.push_str(" – |"),
            }
        }
        if m == "rtn" {
            t.push_str(" no certificate recorded |\n");
        } else {
            let c = v.iter().filter(|p| p.certified).count();
            let _ = writeln!(t, " {c} of {} |", v.len());
        }
    }
    t
}

/// The smallest file (either zstd setting) whose accuracy is within `points_lost` accuracy
/// points of the float network: (point, bits, zstd?).
fn smallest_near_float<'a>(
    points: &'a [Point],
    subject: &str,
    points_lost: f64,
    filter: impl Fn(&Point) -> bool,
) -> Option<(&'a Point, f64, bool)> {
    points
        .iter()
        .filter(|p| p.subject == subject && filter(p))
        .filter(|p| 100.0 * (p.float_accuracy - p.accuracy) <= points_lost)
        .flat_map(|p| [(p, p.file_bits, false), (p, p.file_bits_zstd, true)])
        .filter(|x| x.1.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The best accuracy (networks) or error (matrices) within `budget` file bits (zstd off).
fn best_at<'a>(
    points: &'a [Point],
    subject: &str,
    budget: f64,
    filter: impl Fn(&Point) -> bool,
) -> Option<&'a Point> {
    points
        .iter()
        .filter(|p| p.subject == subject && p.file_bits <= budget && filter(p))
        .min_by(|a, b| {
            if a.accuracy.is_nan() {
                a.rel_err.total_cmp(&b.rel_err)
            } else {
                b.accuracy
                    .total_cmp(&a.accuracy)
                    .then(a.rel_err.total_cmp(&b.rel_err))
            }
        })
}

fn is_sd(p: &Point) -> bool {
    p.method != "rtn"
}

fn describe(p: &Point) -> String {
    if p.accuracy.is_nan() {
        format!(
            "{} at {:.2} bits/w (error {:.4})",
            p.label, p.file_bits, p.rel_err
        )
    } else {
        format!(
            "{} at {:.2} bits/w ({}%, error {:.3})",
            p.label,
            p.file_bits,
            pct(p.accuracy),
            p.rel_err
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Budgets (file bits per weight, zstd off) of the equal-storage comparison.
const COMPARE: [f64; 7] = [2.5, 3.5, 4.5, 6.5, 8.5, 12.5, 16.5];

/// The point with the lowest weight error within `budget` file bits (zstd off).
fn lowest_error<'a>(
    points: &'a [Point],
    subject: &str,
    budget: f64,
    filter: impl Fn(&Point) -> bool,
) -> Option<&'a Point> {
    points
        .iter()
        .filter(|p| p.subject == subject && p.file_bits <= budget && filter(p))
        .min_by(|a, b| a.rel_err.total_cmp(&b.rel_err))
}

/// (min, max) of an iterator of finite values.
fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        })
}

/// Least-squares slope of log y against log x.
fn loglog_slope(xy: &[(f64, f64)]) -> f64 {
    let v: Vec<(f64, f64)> = xy
        .iter()
        .filter(|p| p.0 > 0.0 && p.1 > 0.0)
        .map(|p| (p.0.ln(), p.1.ln()))
        .collect();
    let n = v.len() as f64;
    if v.len() < 2 {
        return f64::NAN;
    }
    let (mx, my) = (
        v.iter().map(|p| p.0).sum::<f64>() / n,
        v.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxy: f64 = v.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = v.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

/// How fast the error falls with the bits, fitted per subject (median over subjects): the
/// log–log slope of error against code bits for first-order (K = 1) and second-order (K = 2)
/// ΣΔ with the coefficient δ, and round-to-nearest's error ratio per extra bit (2–8 bits).
fn rates(points: &[Point], subjects: &[Subject]) -> String {
    let slope = |method: &str| {
        median(
            subjects
                .iter()
                .map(|s| {
                    let xy: Vec<(f64, f64)> = of(points, &s.id, method)
                        .iter()
                        .map(|p| (p.code_bits, p.rel_err))
                        .collect();
                    loglog_slope(&xy)
                })
                .collect(),
        )
    };
    let first = slope("sd1-harmonic-coefficient-k1");
    let second = slope("sd2-harmonic-coefficient-k2");
    let per_bit = median(
        subjects
            .iter()
            .filter_map(|s| {
                let v: Vec<&Point> = of(points, &s.id, "rtn")
                    .into_iter()
                    .filter(|p| p.code_bits <= 8.0)
                    .collect();
                let (a, b) = (v.first()?, v.last()?);
                let bits = b.code_bits - a.code_bits;
                (bits > 0.0).then(|| (a.rel_err / b.rel_err).powf(1.0 / bits))
            })
            .collect(),
    );
    let mut parts = Vec::new();
    if first.is_finite() {
        parts.push(format!(
            "first-order ΣΔ's error fell like bits^{first:.2} (coefficient δ, K = 1)"
        ));
    }
    if second.is_finite() {
        parts.push(format!(
            "second order's like bits^{second:.2} (coefficient δ, K = 2)"
        ));
    }
    if per_bit.is_finite() {
        parts.push(format!(
            "round-to-nearest's fell {per_bit:.2}× per extra bit (2 → 8 bits)"
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(
            " — {} (log–log fits over the code bits, median over subjects)",
            parts.join(", ")
        )
    }
}

/// Pairs (a, b) of ΣΔ points with the same subject, order, δ policy, K and code-bit budget (and
/// frame family if `same_family`), where `a` satisfies `is_a` and `b` is its counterpart
/// satisfying `is_b`.
fn pairs(
    points: &[Point],
    same_family: bool,
    is_a: impl Fn(&Point) -> bool,
    is_b: impl Fn(&Point) -> bool,
) -> Vec<(&Point, &Point)> {
    points
        .iter()
        .filter(|p| is_sd(p) && is_a(p))
        .filter_map(|a| {
            let b = points.iter().find(|b| {
                is_sd(b)
                    && is_b(b)
                    && b.subject == a.subject
                    && b.order == a.order
                    && b.delta == a.delta
                    && b.k == a.k
                    && b.target == a.target
                    && (!same_family || b.family == a.family)
            })?;
            Some((a, b))
        })
        .collect()
}

/// "X of N, median ratio R" comparing `a` against `b` on the error, and the decode-time ratio.
fn pair_summary(v: &[(&Point, &Point)]) -> Option<(usize, usize, usize, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let lower = v.iter().filter(|(a, b)| a.rel_err < b.rel_err).count();
    let same = v.iter().filter(|(a, b)| a.rel_err == b.rel_err).count();
    let err = median(v.iter().map(|(a, b)| a.rel_err / b.rel_err).collect());
    let dec = median(v.iter().map(|(a, b)| a.decode_us / b.decode_us).collect());
    Some((lower, same, v.len(), err, dec))
}

/// A network with its smallest near-float ΣΔ and round-to-nearest points.
type Smallest<'a> = (
    &'a Subject<'a>,
    Option<(&'a Point, f64, bool)>,
    Option<(&'a Point, f64, bool)>,
);

/// The recommendations, every sentence and number computed from the points.
fn recommendations(points: &[Point], subjects: &[Subject]) -> String {
    let mut r = String::new();
    let nets: Vec<&Subject> = subjects.iter().filter(|s| s.eval.is_some()).collect();

    // Smallest file near float accuracy.
    let smallest: Vec<Smallest> = nets
        .iter()
        .map(|s| {
            (
                *s,
                smallest_near_float(points, &s.id, 1.0, is_sd),
                smallest_near_float(points, &s.id, 1.0, |p| !is_sd(p)),
            )
        })
        .collect();
    // Equal-budget comparisons: (subject, budget, ΣΔ by accuracy, rtn by accuracy, ΣΔ by
    // error, rtn by error).
    type Cmp<'a> = (
        &'a Subject<'a>,
        f64,
        Option<&'a Point>,
        Option<&'a Point>,
        Option<&'a Point>,
        Option<&'a Point>,
    );
    let mut cmps: Vec<Cmp> = Vec::new();
    for s in subjects {
        for b in COMPARE {
            let rtn_e = lowest_error(points, &s.id, b, |p| !is_sd(p));
            let sd_e = lowest_error(points, &s.id, b, is_sd);
            if sd_e.is_none() && rtn_e.is_none() {
                continue;
            }
            cmps.push((
                s,
                b,
                best_at(points, &s.id, b, is_sd),
                best_at(points, &s.id, b, |p| !is_sd(p)),
                sd_e,
                rtn_e,
            ));
        }
    }
    // Accuracy verdicts: −1 rtn, 0 tie (within one point), 1 ΣΔ.
    let acc_verdict = |a: Option<&Point>, b: Option<&Point>| -> Option<i32> {
        match (a, b) {
            (Some(a), Some(b)) if !a.accuracy.is_nan() => {
                Some(if (a.accuracy - b.accuracy).abs() < 0.01 {
                    0
                } else if a.accuracy > b.accuracy {
                    1
                } else {
                    -1
                })
            }
            _ => None,
        }
    };
    let (mut acc_n, mut acc_rtn, mut acc_tie, mut acc_sd) = (0, 0, 0, 0);
    let (mut err_n, mut err_rtn) = (0, 0);
    let mut best_sd_methods: Vec<String> = Vec::new();
    for c in &cmps {
        match acc_verdict(c.2, c.3) {
            Some(-1) => acc_rtn += 1,
            Some(0) => acc_tie += 1,
            Some(_) => acc_sd += 1,
            None => {}
        }
        acc_n += usize::from(acc_verdict(c.2, c.3).is_some());
        if let (Some(a), Some(b)) = (c.4, c.5) {
            err_n += 1;
            err_rtn += usize::from(b.rel_err < a.rel_err);
        }
        if let Some(a) = c.4 {
            best_sd_methods.push(a.label.clone());
        }
    }
    let mut tally: Vec<(String, usize)> = Vec::new();
    for m in &best_sd_methods {
        match tally.iter_mut().find(|t| &t.0 == m) {
            Some(t) => t.1 += 1,
            None => tally.push((m.clone(), 1)),
        }
    }
    tally.sort_by_key(|t| std::cmp::Reverse(t.1));

    // Decode: median ratio per K and code-bit budget, over subjects and δ policies.
    let mut ks: Vec<u32> = points.iter().filter(|p| is_sd(p)).map(|p| p.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let ratio = |p: &Point| p.decode_us / p.f32_us;
    let med_k = |k: u32, t: f64| {
        median(
            points
                .iter()
                .filter(|p| is_sd(p) && p.k == k && p.target == t)
                .filter(|p| p.family == "harmonic" && !p.reordered)
                .map(ratio)
                .collect(),
        )
    };
    let sd_range = range(points.iter().filter(|p| is_sd(p)).map(ratio));
    let rtn_ratio = median(points.iter().filter(|p| !is_sd(p)).map(ratio).collect());
    // Timing noise: points of different δ policies with the same subject, K and N do the
    // same decoding work.
    let mut spreads = Vec::new();
    for s in subjects {
        for &k in &ks {
            for t in schemes::code_bit_targets(false) {
                let v: Vec<f64> = points
                    .iter()
                    .filter(|p| is_sd(p) && p.subject == s.id && p.k == k && p.target == t)
                    .filter(|p| p.family == "harmonic" && !p.reordered && p.order == 1)
                    .map(|p| p.decode_us)
                    .collect();
                if v.len() > 1 {
                    let (lo, hi) = range(v.into_iter());
                    spreads.push(hi / lo);
                }
            }
        }
    }

    // Certificates.
    let sd_points: Vec<&Point> = points.iter().filter(|p| is_sd(p)).collect();
    let certified = sd_points.iter().filter(|p| p.certified).count();
    let worst = sd_points
        .iter()
        .map(|p| p.worst_ratio)
        .fold(0.0f64, f64::max);

    // The paragraph.
    let _ = writeln!(
        r,
        "Every number in this section is computed from this run's points. One training per network: accuracy differences under about one point are within the spread the reproduction measured across seeds, and count as ties here.\n"
    );
    let sd_small = range(smallest.iter().filter_map(|x| x.1.map(|y| y.1)));
    let rtn_small = range(smallest.iter().filter_map(|x| x.2.map(|y| y.1)));
    let sd_smaller = smallest
        .iter()
        .filter(|x| match (x.1, x.2) {
            (Some(a), Some(b)) => a.1 < b.1,
            (Some(_), None) => true,
            _ => false,
        })
        .count();
    let mut p = String::from("**In short.** ");
    if !nets.is_empty() {
        let _ = write!(
            p,
            "*Smallest file* at near-float accuracy (≤ 1 point lost): ΣΔ files of {:.2}–{:.2} bits per weight (zstd on where it helps), round-to-nearest {:.2}–{:.2} (counted, no entropy coding); ΣΔ was smaller on {sd_smaller} of {} networks. ",
            sd_small.0,
            sd_small.1,
            rtn_small.0,
            rtn_small.1,
            nets.len()
        );
    }
    let _ = write!(
        p,
        "*Accuracy per bit*: at equal file budgets ({} comparisons over the networks), round-to-nearest was better in {acc_rtn}, ΣΔ in {acc_sd}, and {acc_tie} were ties; on relative weight error round-to-nearest was lower in {err_rtn} of {err_n} comparisons (networks and the Gaussian matrix){}. ",
        acc_n,
        rates(points, subjects)
    );
    let (mut second_n, mut second_wins) = (0, 0);
    for s in subjects {
        for b in COMPARE {
            let first = lowest_error(points, &s.id, b, |p| p.order == 1);
            let second = lowest_error(points, &s.id, b, |p| p.order == 2);
            if let (Some(f), Some(x)) = (first, second) {
                second_n += 1;
                second_wins += usize::from(x.rel_err < f.rel_err);
            }
        }
    }
    if second_n > 0 {
        let _ = write!(
            p,
            "*Second order vs first order* (best of each within a budget): second-order ΣΔ had the lower weight error in {second_wins} of {second_n} comparisons. "
        );
    }
    let tetris = pairs(
        points,
        false,
        |p| p.family != "harmonic" && !p.reordered,
        |p| p.family == "harmonic" && !p.reordered,
    );
    if let Some((lower, _, n, err, dec)) = pair_summary(&tetris) {
        let _ = write!(
            p,
            "*Spectral-tetris vs harmonic frames* (same scheme, δ, K and code bits; natural order): tetris had the lower weight error in {lower} of {n} pairs (median error ratio tetris / harmonic {err:.2}, decode time ratio {dec:.2}). "
        );
    }
    let reordered = pairs(points, true, |p| p.reordered, |p| !p.reordered);
    if let Some((lower, same, n, err, dec)) = pair_summary(&reordered) {
        let _ = write!(
            p,
            "*Computed ordering vs natural order* (`reorder`, same frame family): lower weight error in {lower} of {n} pairs, the same error in {same} (median error ratio {err:.3}, decode time ratio {dec:.2}). "
        );
    }
    if let Some((m, n)) = tally.first() {
        let _ = write!(
            p,
            "Among the ΣΔ schemes the lowest error at a budget came most often from {m} ({n} of {} budgets): the per-vector coefficient δ (the library's default) with the largest K the budget allows, i.e. N close to d. ",
            best_sd_methods.len()
        );
    }
    let _ = write!(
        p,
        "*Fastest decode*: round-to-nearest (a multiply per weight; this example's loop ran at {rtn_ratio:.1}× an f32 read); every ΣΔ decode cost {:.0}×–{:.0}× the f32 read of the same tensors, growing with N. ",
        sd_range.0, sd_range.1
    );
    let _ = write!(
        p,
        "*A certified bound*: only the .sdq path gives one — {certified} of {} ΣΔ points had every vector certified and inside the bound recorded in the file (largest measured error / bound {worst:.3}; the bound is loose), and `sdq verify` checks it; round-to-nearest's error is also bounded per row (√cols·scale/2) but nothing records or checks it. ",
        sd_points.len()
    );
    // zstd saving per δ policy.
    let mut policies: Vec<String> = Vec::new();
    for x in points.iter().filter(|p| is_sd(p)) {
        if !policies.contains(&x.delta) {
            policies.push(x.delta.clone());
        }
    }
    let savings: Vec<String> = policies
        .iter()
        .map(|d| {
            let m = median(
                points
                    .iter()
                    .filter(|x| is_sd(x) && &x.delta == d)
                    .map(|x| 1.0 - x.file_bits_zstd / x.file_bits)
                    .collect(),
            );
            format!("{d} δ {:.0}%", 100.0 * m)
        })
        .collect();
    let _ = write!(
        p,
        "*zstd* (median file-size saving per δ policy): {}; it shrinks most where the codes carry least information (large δ relative to the coefficients), which is also where the error is largest. ",
        savings.join(", ")
    );
    let only_coefficient = best_sd_methods.iter().all(|m| m.contains("coefficient"));
    let mut so = String::from("\n\n**So**, on what this run measured: ");
    if !nets.is_empty() {
        let _ = write!(
            so,
            "for the *smallest file* at near-float accuracy, {} ({sd_smaller} of {} networks went smaller with ΣΔ, counting zstd); ",
            if 2 * sd_smaller > nets.len() {
                "sdq (coefficient δ, K ≥ 2, zstd on) tends to win"
            } else if 2 * sd_smaller == nets.len() {
                "sdq and round-to-nearest split the networks"
            } else {
                "round-to-nearest tends to win"
            },
            nets.len()
        );
    }
    let _ = write!(
        so,
        "for the *lowest weight error per stored bit*, {} ({err_rtn} of {err_n} comparisons went to round-to-nearest); ",
        if 2 * err_rtn > err_n {
            "pick round-to-nearest — ΣΔ loses to it at equal storage"
        } else {
            "ΣΔ held its own"
        }
    );
    if acc_n > 0 {
        let _ = write!(
            so,
            "for *accuracy per bit*, {} (round-to-nearest {acc_rtn}, ΣΔ {acc_sd}, ties {acc_tie}); ",
            if acc_rtn > acc_sd {
                "round-to-nearest, where the difference exceeds a point"
            } else if acc_rtn == acc_sd {
                "neither side wins more often"
            } else {
                "ΣΔ more often than not"
            }
        );
    }
    let _ = writeln!(
        so,
        "for the *fastest decode*, round-to-nearest; for a *certified bound*, sdq{}. {}\n",
        tally.first().map_or(String::new(), |(m, _)| format!(
            " — and within sdq, {m}, the ΣΔ scheme with the lowest error at the most budgets"
        )),
        if only_coefficient {
            "The paper's uniform and per-tensor δ rules and the per-vector norm rule were never the lowest-error ΣΔ at any budget."
        } else {
            "See the tables for where the other δ rules won."
        }
    );
    p.push_str(&so);
    r.push_str(&p);

    // Supporting tables.
    if !nets.is_empty() {
        let _ = writeln!(
            r,
            "### Smallest file within one accuracy point of the float network\n\n| network | float accuracy | smallest ΣΔ | smallest round-to-nearest |\n|---|---|---|---|"
        );
        for (s, sd, rtn) in &smallest {
            let cell = |x: &Option<(&Point, f64, bool)>| match x {
                Some((p, bits, z)) => format!(
                    "{bits:.2} bits/w{}: {} ({}%)",
                    if *z { " with zstd" } else { "" },
                    p.label,
                    pct(p.accuracy)
                ),
                None => "none of the measured points".into(),
            };
            let _ = writeln!(
                r,
                "| {} | {}% | {} | {} |",
                s.name,
                pct(s.eval.as_ref().map_or(f64::NAN, |e| e.0.accuracy)),
                cell(sd),
                cell(rtn)
            );
        }
    }
    let _ = writeln!(
        r,
        "\n### Equal storage: the best of each side within a file budget (zstd off)\n\nBest accuracy (networks) and lowest relative weight error, each over the points whose file is at most the budget.\n\n| subject | ≤ bits/w | best ΣΔ by accuracy | round-to-nearest by accuracy | accuracy | lowest ΣΔ error | round-to-nearest error |\n|---|---|---|---|---|---|---|"
    );
    for c in &cmps {
        let verdict = match acc_verdict(c.2, c.3) {
            Some(-1) => "**round-to-nearest**",
            Some(0) => "tie",
            Some(_) => "**ΣΔ**",
            None => "–",
        };
        let d = |x: Option<&Point>| x.map_or("–".into(), describe);
        let e = |x: Option<&Point>| {
            x.map_or("–".into(), |p| {
                format!("{:.4} ({:.2} b, {})", p.rel_err, p.file_bits, p.label)
            })
        };
        let (acc_a, acc_b) = if c.0.eval.is_some() {
            (d(c.2), d(c.3))
        } else {
            ("–".into(), "–".into())
        };
        let _ = writeln!(
            r,
            "| {} | {} | {acc_a} | {acc_b} | {verdict} | {} | {} |",
            c.0.name,
            c.1,
            e(c.4),
            e(c.5)
        );
    }
    let mut targets: Vec<f64> = points
        .iter()
        .filter(|p| is_sd(p))
        .map(|p| p.target)
        .collect();
    targets.sort_by(f64::total_cmp);
    targets.dedup();
    let _ = write!(
        r,
        "\n### Decode time by K and code-bit budget\n\nHarmonic frames, natural order. Median of decode time / f32 read time (zstd off) over the subjects, δ policies and both ΣΔ orders (the decoder is the same for both: w̃ = (d/N)·E·q); N = ⌈b·d / ⌈log2 2K⌉⌉ (second order: lowered to even).\n\n| K (bits per code) |"
    );
    for t in &targets {
        let _ = write!(r, " {t} |");
    }
    let _ = write!(r, "\n|---|{}\n", "---|".repeat(targets.len()));
    for &k in &ks {
        let _ = write!(r, "| {k} ({}) |", schemes::bits_for(k));
        for &t in &targets {
            let m = med_k(k, t);
            if m.is_finite() {
                let _ = write!(r, " {m:.0}× |");
            } else {
                r.push_str(" – |");
            }
        }
        r.push('\n');
    }
    let noise = median(spreads.clone());
    let (_, worst_spread) = range(spreads.into_iter());
    let _ = writeln!(
        r,
        "\nTiming noise: points that differ only in the δ policy do the same decoding work; their decode times differ by a factor of {noise:.2} (median) and up to {worst_spread:.2} under this run's load."
    );
    let (one, one_half) = (med_k(1, 1.0), med_k(1, 1.5));
    if one.is_finite() && one_half.is_finite() && one > one_half {
        let _ = writeln!(
            r,
            "The smallest frame, N = d + 1, decoded slower (median {one:.0}×) than N = ⌈1.5·d⌉ ({one_half:.0}×) although it has fewer frame vectors — presumably because its FFT length has a large prime factor (201 = 3·67, 129 = 3·43, 301 = 7·43 here; `points.csv` gives the largest prime factor of each point's largest N, `n_max_largest_prime_factor`, to check other outliers against)."
        );
    }
    r
}

/// Writes `README.md`.
pub fn write_readme(
    points: &[Point],
    subjects: &[Subject],
    info: &RunInfo,
    figures: &[(String, String)],
    dir: &Path,
) -> Result<(), String> {
    let mut r = String::new();
    let _ = writeln!(r, "# Rate–distortion report\n");
    let _ = writeln!(
        r,
        "Generated by `{}` — do not edit by hand; change `examples/rate_distortion*` and rerun.{}\n",
        info.command,
        if info.quick {
            " **This is a `--quick` run** (one network, 5 frame sizes per scheme)."
        } else {
            ""
        }
    );
    let _ = writeln!(r, "## Setup\n");
    let _ = writeln!(
        r,
        "- Machine: {}; wall-clock run time **{:.0} s** ({:.1} min), training included. Load average (1, 5, 15 min) at the start: {}; at the end: {}. The machine is shared, so timings carry that load.",
        info.machine,
        info.seconds,
        info.seconds / 60.0,
        info.load_start,
        info.load_end
    );
    let _ = writeln!(
        r,
        "- Subjects: {}. The networks are the reproduction's (`examples/reproduce`, `examples/mnist`): trained on 4,000 of the shipped 5,000 MNIST digits (split seed 2024), tested on the other 1,000, **one training (seed 1) per network** — the reproduction's README gives the spread over 10 seeds. The Gaussian matrix has independent N(0, 1) entries and is not evaluated as a network.",
        subjects
            .iter()
            .map(|s| format!("{} ({} weights)", s.name, s.weights()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        r,
        "- Every tensor of every subject is quantized (including the 10 × n output layer, d = 10), columns of W[out, in] (d = fan-out, the paper's orientation). Each point goes float weights → safetensors → `sdq::bridge::pack::pack` → .sdq file → memory-mapped `SdqFile::open` → `decode_into` → error and accuracy measured on the decoded weights."
    );
    let _ = writeln!(
        r,
        "- **Bits per weight** (x axes, tables) = bytes of the quantized tensors in the .sdq file × 8 / their weights, from the file's storage report (`StorageReport::quantized_bits_per_weight`): codes, per-vector δ (64 bits per vector: 64/d bits per weight, 6.4 on the d = 10 output layer), tensor headers and padding. `code_bits` in the CSV is the nominal Σ N·⌈log2 2K⌉·m / Σ d·m. Every ΣΔ point is packed twice, zstd off and zstd level {ZSTD_LEVEL} on (the CLI's `--zstd`); the two files decode to the same weights (checked), so error and accuracy are shared and only size and decode time differ."
    );
    let _ = writeln!(
        r,
        "- Frame sizes: N = ⌈r·d⌉ in every tensor with r = b / ⌈log2 2K⌉ for code-bit budgets b ∈ {:?} (b = ⌈log2 2K⌉ gives N = d + 1, the smallest harmonic frame).",
        schemes::code_bit_targets(info.quick)
    );
    let _ = writeln!(
        r,
        "- Round-to-nearest: the reproduction's per-row symmetric baseline (`harness::round_to_nearest`), b ∈ {:?} bits; its storage is counted, not written: b bits per weight + one f32 scale per row (no offset). Its decode time is this example's in-memory loop over byte-aligned i16 codes × the row's scale — a lower bound for a bit-packed file, not an sdq path.",
        schemes::rtn_bits(info.quick)
    );
    let _ = writeln!(
        r,
        "- **Decode speed**: wall time (the best of two ≈ 80 ms windows of ≥ 5 repetitions each, the zstd-off and zstd-on files interleaved) of `SdqFile::decode_into` over every quantized tensor (CRC checks on, the default) with `RAYON_NUM_THREADS` = {} (the example sets 1 unless told otherwise, so that the minimum over repetitions is robust to the shared machine's load and comparable with the single-threaded f32 read — the library decodes in parallel by default), in µs per million weights, and as a ratio to reading the same tensors from an .sdq file that stores them as f32 (`decode_into` of raw tensors), re-timed before each scheme in the same run. f32 read times (µs per 10⁶ weights, at the start / end of each subject): {}.",
        info.threads,
        info.f32_times
            .iter()
            .map(|(s, a, b)| format!("{s} {a:.0} / {b:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        r,
        "- Schemes (`examples/rate_distortion/schemes.rs`, one entry each, every field a `PackOptions` field): first-order ΣΔ in harmonic frames with every δ policy at K = 1, 2 and the coefficient δ at K = 4, 8, 32, 128; second-order ΣΔ (`scheme: Scheme::SecondOrder`, K ≥ 2) with every δ policy at K = 2 and the coefficient δ at K = 4, 8, 32, 128; spectral-tetris frames (`family: FrameFamily::SpectralTetris`, N ≥ 2d) with the coefficient δ, first order at K = 1, 2, 8 and second order at K = 2; and the library's computed ordering of the frame vectors (`reorder: true`, greedy + 2-opt) for first order, coefficient δ, K = 1, in both families. Second order in a harmonic frame starts at N/d = 1.25: the library lowers a rule-derived odd N by one (second order wants an even N there), so N = d + 1 is not available to it for even d.\n- Not measured: the other δ policies with spectral-tetris frames or the computed ordering, second order with the computed ordering, rows orientation, biases (the networks have none), more than one training per network.\n"
    );
    let _ = writeln!(r, "## Which scheme for which goal\n");
    r.push_str(&recommendations(points, subjects));
    for s in subjects {
        let _ = writeln!(r, "\n## {}\n", s.name);
        if let Some((reference, _)) = &s.eval {
            let _ = writeln!(
                r,
                "Float test accuracy {}%. Cells: the lowest-error point of each method whose file is at most the column's bits per weight (zstd off): accuracy · relative weight error, and its bits per weight.\n",
                pct(reference.accuracy)
            );
        } else {
            let _ = writeln!(
                r,
                "Cells: the lowest relative weight error ‖W − W̃‖_F / ‖W‖_F of each method whose file is at most the column's bits per weight (zstd off), and its bits per weight.\n"
            );
        }
        r.push_str(&budget_table(points, s));
        let _ = writeln!(
            r,
            "\nPer code-bit budget: bits per weight of the file zstd off → on, and decode time / f32 read time zstd off / on (round-to-nearest: its computed storage and this example's in-memory loop); certificates:\n"
        );
        r.push_str(&size_speed_table(points, s));
        r.push('\n');
        for (file, caption) in figures {
            if file.ends_with(&format!("_{}.svg", s.id)) {
                let _ = writeln!(r, "![{caption}]({file})\n");
            }
        }
    }
    let _ = writeln!(r, "## Files\n");
    let _ = writeln!(
        r,
        "- `points.csv`: every measured point (subject, method, order, family, δ policy, K, bits per code, N/d, N range, nominal code bits, file bits per weight zstd off and on, whole-file bits per weight (also preamble, metadata and padding), relative weight error, accuracy and float accuracy, certified, worst error / bound, decode µs per 10⁶ weights zstd off and on, the f32 read time and the ratios).\n- The SVG figures above, drawn by `examples/reproduce/svg.rs`."
    );
    write(&dir.join("README.md"), &r)
}
