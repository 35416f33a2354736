//! The storage report: what each tensor costs in the file against fp32 and fp16, and the bits per
//! original weight. Every byte of the file is attributed exactly once: a tensor owns its header
//! record, its sections and the padding after each of them; the rest (preamble, counts,
//! metadata, padding after the header) is overhead.

use super::header::Header;

/// The cost of one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorReport {
    /// Its name.
    pub name: String,
    /// `raw`, `sigma-delta` or `bias-of`.
    pub encoding: &'static str,
    /// Original dtype name.
    pub dtype: &'static str,
    /// Elements.
    pub elements: u64,
    /// Bytes it occupies in the file: header record + sections + the padding after them.
    pub stored_bytes: u64,
    /// elements × 4.
    pub fp32_bytes: u64,
    /// elements × 2.
    pub fp16_bytes: u64,
}

impl TensorReport {
    /// fp32 bytes / stored bytes.
    pub fn ratio_fp32(&self) -> f64 {
        ratio(self.fp32_bytes, self.stored_bytes)
    }
    /// fp16 bytes / stored bytes.
    pub fn ratio_fp16(&self) -> f64 {
        ratio(self.fp16_bytes, self.stored_bytes)
    }
    /// stored bytes × 8 / elements.
    pub fn bits_per_weight(&self) -> f64 {
        bits(self.stored_bytes, self.elements)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::INFINITY
    } else {
        a as f64 / b as f64
    }
}

fn bits(bytes: u64, elements: u64) -> f64 {
    if elements == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / elements as f64
    }
}

/// The storage report of a file (see [`crate::format::SdqFile::report`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StorageReport {
    /// One entry per tensor, in file order.
    pub tensors: Vec<TensorReport>,
    /// Preamble, tensor and metadata counts, metadata entries and the padding after the header.
    pub overhead_bytes: u64,
    /// The file's length (= overhead + Σ stored bytes).
    pub total_bytes: u64,
    /// Σ elements.
    pub total_elements: u64,
    /// Σ elements of the float tensors (F16, BF16, F32, F64; quantized or raw, any rank): the
    /// weights a whole-file budget (`sdq pack --file-bits-per-weight`) is counted over.
    pub float_elements: u64,
    /// Σ fp32 bytes.
    pub total_fp32_bytes: u64,
    /// Σ fp16 bytes.
    pub total_fp16_bytes: u64,
}

impl StorageReport {
    /// Builds the report of a parsed header.
    pub fn new(h: &Header) -> Self {
        // Each section owns the padding that follows it (up to the next section or the end).
        let mut starts: Vec<u64> = h
            .tensors
            .iter()
            .flat_map(|t| t.sections().into_iter().map(|(_, s)| s.offset))
            .collect();
        starts.push(h.preamble.file_len);
        let mut next = starts.iter().skip(1);
        let mut tensors = Vec::with_capacity(h.tensors.len());
        let mut owned: u64 = 0;
        for t in &h.tensors {
            let mut stored = t.record_len;
            for (_, s) in t.sections() {
                let end = next.next().copied().unwrap_or(h.preamble.file_len);
                stored = stored.saturating_add(end.saturating_sub(s.offset));
            }
            owned = owned.saturating_add(stored);
            let e = t.elements;
            tensors.push(TensorReport {
                name: t.name.clone(),
                encoding: t.encoding.name(),
                dtype: t.dtype.name(),
                elements: e,
                stored_bytes: stored,
                fp32_bytes: e.saturating_mul(4),
                fp16_bytes: e.saturating_mul(2),
            });
        }
        let total_elements = tensors
            .iter()
            .map(|t| t.elements)
            .fold(0u64, u64::saturating_add);
        let float_elements = h
            .tensors
            .iter()
            .filter(|t| t.dtype.is_quantizable_float())
            .map(|t| t.elements)
            .fold(0u64, u64::saturating_add);
        StorageReport {
            float_elements,
            overhead_bytes: h.preamble.file_len.saturating_sub(owned),
            total_bytes: h.preamble.file_len,
            total_elements,
            total_fp32_bytes: total_elements.saturating_mul(4),
            total_fp16_bytes: total_elements.saturating_mul(2),
            tensors,
        }
    }

    /// fp32 bytes / file bytes.
    pub fn ratio_fp32(&self) -> f64 {
        ratio(self.total_fp32_bytes, self.total_bytes)
    }

    /// fp16 bytes / file bytes.
    pub fn ratio_fp16(&self) -> f64 {
        ratio(self.total_fp16_bytes, self.total_bytes)
    }

    /// File bytes × 8 / elements.
    pub fn bits_per_weight(&self) -> f64 {
        bits(self.total_bytes, self.total_elements)
    }

    /// File bytes × 8 / float elements: the whole file per float weight (what
    /// `sdq pack --file-bits-per-weight` bounds).
    pub fn float_bits_per_weight(&self) -> f64 {
        bits(self.total_bytes, self.float_elements)
    }

    /// Bits per weight of the quantized tensors alone (their stored bytes, including their
    /// biases, over their elements).
    pub fn quantized_bits_per_weight(&self) -> f64 {
        let q = self.tensors.iter().filter(|t| t.encoding != "raw");
        let (b, e) = q.fold((0u64, 0u64), |(b, e), t| {
            (b + t.stored_bytes, e + t.elements)
        });
        bits(b, e)
    }
}

impl std::fmt::Display for StorageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<40} {:<12} {:<8} {:>14} {:>14} {:>9} {:>9} {:>8}",
            "tensor",
            "encoding",
            "dtype",
            "elements",
            "stored bytes",
            "vs fp32",
            "vs fp16",
            "bits/w"
        )?;
        for t in &self.tensors {
            writeln!(
                f,
                "{:<40} {:<12} {:<8} {:>14} {:>14} {:>8.2}x {:>8.2}x {:>8.3}",
                format!("{:?}", t.name),
                t.encoding,
                t.dtype,
                t.elements,
                t.stored_bytes,
                t.ratio_fp32(),
                t.ratio_fp16(),
                t.bits_per_weight()
            )?;
        }
        writeln!(
            f,
            "{:<40} {:>52}",
            "overhead (preamble, metadata, padding)", self.overhead_bytes
        )?;
        write!(
            f,
            "{:<40} {:<12} {:<8} {:>14} {:>14} {:>8.2}x {:>8.2}x {:>8.3}",
            "total",
            "",
            "",
            self.total_elements,
            self.total_bytes,
            self.ratio_fp32(),
            self.ratio_fp16(),
            self.bits_per_weight()
        )
    }
}
