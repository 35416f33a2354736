//! A plain text table: left-aligned text columns, right-aligned number columns.

/// Rows of cells under a header; `right[i]` right-aligns column i.
pub struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles and alignments.
    pub fn new(cols: &[(&str, bool)]) -> Self {
        Table {
            header: cols.iter().map(|(h, _)| (*h).to_owned()).collect(),
            right: cols.iter().map(|(_, r)| *r).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (cells beyond the header are dropped, missing ones are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with two spaces between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let width = |s: &str| s.chars().count();
        let mut w: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().take(n).enumerate() {
                w[i] = w[i].max(width(c));
            }
        }
        let mut out = String::new();
        let empty = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (&wi, &right)) in w.iter().zip(&self.right).enumerate() {
                let c = r.get(i).unwrap_or(&empty);
                let pad = " ".repeat(wi - width(c));
                if i > 0 {
                    line.push_str("  ");
                }
                if right {
                    line.push_str(&pad);
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `s` if it has at most `max` characters, else its start and end joined by `…` (`max`
/// characters in all), so that a long tensor name keeps a table aligned.
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max || max < 3 {
        return s.to_owned();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

/// A byte count with a binary unit (`1.5 MiB`), exact below 1 KiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A bound or error in short scientific notation.
pub fn sci(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x:.3e}")
    }
}

/// `6.92x smaller (85.5% saved)`, or `3.03x larger (203.0% more)` for a ratio below 1
/// (`ratio` = reference bytes / stored bytes).
pub fn savings(ratio: f64) -> String {
    if !ratio.is_finite() || ratio <= 0.0 {
        "n/a".into()
    } else if ratio >= 1.0 {
        format!(
            "{ratio:.2}x smaller ({:.1}% saved)",
            100.0 * (1.0 - 1.0 / ratio)
        )
    } else {
        format!(
            "{:.2}x larger ({:.1}% more)",
            1.0 / ratio,
            100.0 * (1.0 / ratio - 1.0)
        )
    }
}
