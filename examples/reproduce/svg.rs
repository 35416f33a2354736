//! A small hand-written SVG line-plot writer: axes, ticks, grid, legend, optional log scales,
//! solid or dashed series, optional error bars. Enough for the reproduction's figures and no more.

use std::fmt::Write as _;

/// One line of a plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y, ±error) points; non-finite or (on a log axis) non-positive points are skipped.
    pub points: Vec<(f64, f64, f64)>,
    /// Dashed instead of solid.
    pub dashed: bool,
    /// Colour index into the palette.
    pub color: usize,
}

impl Series {
    /// A solid series without error bars.
    #[cfg(test)]
    pub fn new(label: impl Into<String>, color: usize, points: &[(f64, f64)]) -> Series {
        Series {
            label: label.into(),
            points: points.iter().map(|&(x, y)| (x, y, 0.0)).collect(),
            dashed: false,
            color,
        }
    }

    /// The same series, dashed.
    pub fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }
}

/// A line plot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plot {
    /// Title above the plot.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 58.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "Nice" linear tick positions covering [lo, hi] (about five of them).
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Tick positions (in log10 units) for a log axis over [lo, hi] (log10 units): decades, plus
/// 2 and 5 when the range spans less than three decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut t = Vec::new();
    let few = hi - lo < 3.0;
    for e in (lo.floor() as i64)..=(hi.ceil() as i64) {
        for m in [1.0f64, 2.0, 5.0] {
            if m != 1.0 && !few {
                continue;
            }
            let v = e as f64 + m.log10();
            if v >= lo - 1e-9 && v <= hi + 1e-9 {
                t.push(v);
            }
        }
    }
    t
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.0e}")
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// One axis's mapping from data to pixels.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
    p0: f64,
    p1: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool, p0: f64, p1: f64) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            let v = if log { v.log10() } else { v };
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let pad = 0.04 * (hi - lo);
        Axis {
            log,
            lo: lo - pad,
            hi: hi + pad,
            p0,
            p1,
        }
    }

    fn to_px(&self, v: f64) -> f64 {
        let v = if self.log { v.log10() } else { v };
        self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)
    }

    /// (pixel, label) of each tick.
    fn ticks(&self) -> Vec<(f64, String)> {
        if self.log {
            log_ticks(self.lo, self.hi)
                .into_iter()
                .map(|t| {
                    let v = 10f64.powf(t);
                    (self.to_px(v), fmt_tick(v))
                })
                .collect()
        } else {
            linear_ticks(self.lo, self.hi)
                .into_iter()
                .map(|t| (self.to_px(t), fmt_tick(t)))
                .collect()
        }
    }
}

impl Plot {
    fn usable(&self, x: f64, y: f64) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0)
    }

    /// Renders the plot as a standalone SVG document.
    pub fn render(&self) -> String {
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|p| self.usable(p.0, p.1))
        };
        let xa = Axis::new(pts().map(|p| p.0), self.log_x, LEFT, W - RIGHT);
        let ya = Axis::new(
            pts().flat_map(|p| {
                let lo = if self.log_y && p.1 - p.2 <= 0.0 {
                    p.1
                } else {
                    p.1 - p.2
                };
                [lo, p.1 + p.2]
            }),
            self.log_y,
            H - BOTTOM,
            TOP,
        );
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            escape(&self.title)
        );
        // Grid and ticks.
        for (px, label) in xa.ticks() {
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#e4e4e4"/><line x1="{px:.1}" y1="{}" x2="{px:.1}" y2="{}" stroke="black"/><text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM,
                H - BOTTOM + 5.0,
                H - BOTTOM + 19.0,
                escape(&label)
            );
        }
        for (py, label) in ya.ticks() {
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e4e4e4"/><line x1="{}" y1="{py:.1}" x2="{LEFT}" y2="{py:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 5.0,
                LEFT - 8.0,
                py + 4.0,
                escape(&label)
            );
        }
        // Axes frame and labels.
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            W - RIGHT - LEFT,
            H - BOTTOM - TOP
        );
        let log_note = |log: bool| if log { " (log scale)" } else { "" };
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 16.0,
            escape(&self.x_label),
            log_note(self.log_x)
        );
        let cy = (TOP + H - BOTTOM) / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="18" y="{cy}" text-anchor="middle" transform="rotate(-90 18 {cy})">{}{}</text>"#,
            escape(&self.y_label),
            log_note(self.log_y)
        );
        // Series.
        for (i, ser) in self.series.iter().enumerate() {
            let color = PALETTE[ser.color % PALETTE.len()];
            let dash = if ser.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let p: Vec<(f64, f64, f64)> = ser
                .points
                .iter()
                .copied()
                .filter(|p| self.usable(p.0, p.1))
                .collect();
            let path: Vec<String> = p
                .iter()
                .map(|&(x, y, _)| format!("{:.1},{:.1}", xa.to_px(x), ya.to_px(y)))
                .collect();
            if path.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
                    path.join(" ")
                );
            }
            for &(x, y, e) in &p {
                let (px, py) = (xa.to_px(x), ya.to_px(y));
                if e > 0.0 && (!self.log_y || y - e > 0.0) {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{color}"/>"#,
                        ya.to_px(y - e),
                        ya.to_px(y + e)
                    );
                }
                let _ = writeln!(
                    s,
                    r#"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{color}"/>"#
                );
            }
            // Legend entry.
            let ly = TOP + 10.0 + 20.0 * i as f64;
            let lx = W - RIGHT + 14.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 26.0,
                lx + 32.0,
                ly + 4.0,
                escape(&ser.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range() {
        let t = linear_ticks(0.0, 100.0);
        assert!(t.first().is_some_and(|&v| v >= 0.0) && t.len() >= 3);
        let l = log_ticks(-3.2, 0.1);
        assert!(l.contains(&-3.0) && l.contains(&0.0));
    }

    #[test]
    fn renders_valid_looking_svg() {
        let p = Plot {
            title: "a < b".into(),
            log_y: true,
            series: vec![Series::new("s", 0, &[(1.0, 1.0), (2.0, 0.1), (3.0, 0.0)])],
            ..Plot::default()
        };
        let svg = p.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b") && svg.contains("<polyline"));
    }
}
