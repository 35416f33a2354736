//! The bit budget of a pcm pack: how many stored bits per weight the quantized tensors get.
//!
//! - `file_cap`: under a cap on the whole file's bits per float weight
//!   ([`PackOptions::file_bits`]), the budget left for the quantized tensors once the raw
//!   tensors, the small tensors' own bits, the records and the header are counted;
//! - `allocate`: the model-wide allocation of a budget over the quantized tensors
//!   ([`Allocation::Model`](super::pack::Allocation::Model)).

use std::collections::HashMap;

use super::pack::{in_tensor, load, matrix, Choice, PackOptions, Plan, SmallBits, TensorSetting};
use super::progress::Progress;
use super::safetensors::Checkpoint;
use crate::error::Result;
use crate::format::layout::{ALIGN, PREAMBLE_LEN};
use crate::format::writer::header_len;
use crate::format::TensorPlan;
use crate::quant::pcm::{self, PcmOptions};

/// The whole-file cap of a default pack: at most 5.0 bits per float weight for the whole file,
/// raw tensors, records and header included (the bound issue 13 sets for the defaults; used
/// when no bit budget or error is asked for).
pub const DEFAULT_FILE_BITS: f64 = 5.0;

/// The least budget a whole-file cap lowers the quantized tensors to: at 3 stored bits per
/// weight the models of docs/quality already lose much (all-mpnet-base-v2's worst sentence
/// cosine 0.62, silero-vad's speech decisions 81 %). A file that would need less keeps the
/// budget asked for and stays over its cap, with [`FileCap::reached`] false.
pub const FILE_BITS_FLOOR: f64 = 3.0;

/// The whole-file cap of a pack asked for with `asked` (`--file-bits-per-weight`), for a pcm
/// pack (`pcm`) given a bit budget or an error or neither (`explicit_target`): `asked`, else
/// [`DEFAULT_FILE_BITS`] for a pcm pack with neither (the default budget comes with the
/// default cap), else none. The rule the command line and the Python package share.
pub fn file_bits_for(asked: Option<f64>, pcm: bool, explicit_target: bool) -> Option<f64> {
    asked.or((pcm && !explicit_target).then_some(DEFAULT_FILE_BITS))
}

/// What a whole-file cap did to a pcm budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileCap {
    /// The cap: the whole file's bits per float weight.
    pub cap: f64,
    /// The budget asked for (stored bits per quantized weight).
    pub requested: f64,
    /// The budget given to the quantized tensors of the model-wide allocation: `requested`, or
    /// less to keep the file within `cap` when [`FILE_BITS_FLOOR`] or more does.
    pub budget: f64,
    /// Bits per float weight the rest of the file takes: raw tensors with their records and
    /// alignment, small tensors' own bits, tensors with their own `--tensor-type` bits, the
    /// header and the preamble (`raw + own + overhead`).
    pub fixed: f64,
    /// Of `fixed`: the raw tensors with their records and alignment.
    pub raw: f64,
    /// Of `fixed`: the tensors with bits of their own (small tensors, `--tensor-type NAME=B`),
    /// their records included.
    pub own: f64,
    /// Of `fixed`: the preamble, the metadata and the quantized tensors' section alignment.
    pub overhead: f64,
    /// The file's estimated bits per float weight at `budget` (an upper estimate: every
    /// section's alignment is counted in full).
    pub estimated: f64,
    /// Whether `estimated` is within `cap`.
    pub reached: bool,
    /// When the cap is reached only by taking the small tensors' extra bits (their own bits
    /// alone would keep the file over it even with the shared budget at [`FILE_BITS_FLOOR`]):
    /// the most stored bits per weight that any quantized tensor's codes and steps get, small
    /// or not (`budget` is then at most this too).
    pub small_ceiling: Option<f64>,
    /// The file's estimated bits per float weight with every quantized tensor, small ones
    /// too, at [`FILE_BITS_FLOOR`] (or the budget asked for, if lower): the least a cap must
    /// allow for the cap to lower the budget.
    pub floor_estimate: f64,
}

impl FileCap {
    /// What takes the bits outside the shared budget, in bits per float weight, largest first:
    /// "the small tensors' own bits (3.10), the raw tensors (1.20) and headers and padding
    /// (0.05)".
    pub fn breakdown(&self) -> String {
        let mut parts = [
            (self.own, "the small tensors' own bits"),
            (self.raw, "the raw tensors"),
            (self.overhead, "headers and padding"),
        ];
        parts.sort_by(|a, b| b.0.total_cmp(&a.0));
        let [a, b, c] = parts.map(|(v, what)| format!("{what} ({v:.2})"));
        format!("{a}, {b} and {c}")
    }

    /// When the file stays over its cap: one line saying why, for the caller to show.
    pub fn over_cap(&self) -> Option<String> {
        (!self.reached).then(|| {
            format!(
                "the whole file takes about {:.2} bits per float weight, over its cap of {}: {} alone take {:.2}, and with every quantized tensor at {} bits per weight the file would still take {:.2}, so the quantized tensors keep their {} bits per weight (the cap lowers them to no less than {FILE_BITS_FLOOR})",
                self.estimated, self.cap, self.breakdown(), self.fixed, FILE_BITS_FLOOR.min(self.requested), self.floor_estimate, self.budget
            )
        })
    }
}

/// The budget of the quantized tensors under a cap of `cap` bits per float weight on the whole
/// file, `bits` being the budget asked for. Every float tensor's elements count as float
/// weights (F32, F16, BF16, F64, of any rank: biases and norms too); every byte of the file
/// counts. The tensors with bits of their own (small ones, `--tensor-type NAME=B`) keep them;
/// the others share what is left.
pub(crate) fn file_cap(
    ck: &Checkpoint,
    plan: &Plan,
    opts: &PackOptions,
    bits: f64,
    cap: f64,
) -> FileCap {
    let float_weights: f64 = ck
        .tensors()
        .iter()
        .filter(|t| t.dtype.is_quantizable_float())
        .map(|t| t.elements as f64)
        .sum();
    let plans = plan.tensor_plans();
    // Preamble and metadata; the quantized tensors' records are charged to their own budgets.
    let mut overhead_bits = 8.0 * (PREAMBLE_LEN + header_len(&[], ck.metadata())) as f64;
    let (mut raw_bits, mut own_bits) = (0.0, 0.0);
    // Of own_bits: the tensors with `--tensor-type` bits; and each small tensor's own bits
    // and weights.
    let mut other_own_bits = 0.0;
    let mut smalls: Vec<(SmallBits, f64)> = Vec::new();
    // The total, summed in file order (the budget below depends on it to the last bit).
    let mut fixed_bits = overhead_bits;
    let mut shared_weights = 0.0;
    for (p, tp) in plan.tensors.iter().zip(&plans) {
        let name = p.entry.name.as_str();
        match &p.choice {
            Choice::Raw | Choice::BiasOf { .. } => {
                let data = if matches!(p.choice, Choice::Raw) {
                    p.entry
                        .elements
                        .saturating_mul(p.entry.dtype.size())
                        .saturating_add(ALIGN - 1)
                } else {
                    0
                };
                let b = 8.0 * tp.record_len().saturating_add(data) as f64;
                if matches!(p.choice, Choice::Raw) {
                    raw_bits += b;
                } else {
                    overhead_bits += b;
                }
                fixed_bits += b;
            }
            Choice::Quantize {
                rows, cols, bias, ..
            } => {
                let weights = (rows * cols + if bias.is_some() { *rows } else { 0 }) as f64;
                // Each tensor's budget counts its record and sections, not their alignment.
                overhead_bits += 8.0 * 2.0 * (ALIGN - 1) as f64;
                fixed_bits += 8.0 * 2.0 * (ALIGN - 1) as f64;
                let own = match (opts.tensor_setting(name), plan.small.get(name)) {
                    (Some(TensorSetting::Bits(b)), _) => {
                        other_own_bits += b * weights;
                        Some(b)
                    }
                    (_, Some(s)) => {
                        smalls.push((*s, weights));
                        Some(s.total(None))
                    }
                    _ => None,
                };
                match own {
                    Some(b) => {
                        own_bits += b * weights;
                        fixed_bits += b * weights;
                    }
                    None => shared_weights += weights,
                }
            }
        }
    }
    let per_float = |b: f64| (fixed_bits + b * shared_weights) / float_weights.max(1.0);
    // Lowered only when that reaches the cap: a file that stays over it anyway keeps the
    // quality asked for.
    let floor = FILE_BITS_FLOOR.min(bits);
    let fits = (cap * float_weights - fixed_bits) / shared_weights.max(1.0);
    // The file with every quantized tensor's codes and steps at most y bits per weight.
    let all_at = |y: f64| {
        (fixed_bits - own_bits
            + other_own_bits
            + smalls
                .iter()
                .map(|(s, w)| s.total(Some(y)) * w)
                .sum::<f64>()
            + bits.min(y) * shared_weights)
            / float_weights.max(1.0)
    };
    let floor_estimate = all_at(floor);
    let cap_of = |budget: f64, estimated: f64, small_ceiling: Option<f64>| {
        let own = smalls
            .iter()
            .map(|(s, w)| s.total(small_ceiling) * w)
            .sum::<f64>()
            + other_own_bits;
        FileCap {
            cap,
            requested: bits,
            budget,
            fixed: (fixed_bits - own_bits + own) / float_weights.max(1.0),
            raw: raw_bits / float_weights.max(1.0),
            own: own / float_weights.max(1.0),
            overhead: overhead_bits / float_weights.max(1.0),
            estimated,
            reached: within_cap(estimated, cap),
            small_ceiling,
            floor_estimate,
        }
    };
    if shared_weights > 0.0 && fits >= floor {
        let budget = bits.min(fits);
        return cap_of(budget, per_float(budget), None);
    }
    if within_cap(per_float(bits), cap) {
        // Nothing shares the budget, and the file is within its cap.
        return cap_of(bits, per_float(bits), None);
    }
    // The small tensors' own bits keep the file over the cap. They are presumed sensitive
    // while they are few; where they are this many, they give up their extra bits first: every
    // quantized tensor gets at most one ceiling y (the shared budget too), the largest that
    // meets the cap, if one of at least the floor does.
    if smalls.is_empty() || !within_cap(floor_estimate, cap) {
        return cap_of(bits, per_float(bits), None);
    }
    let (mut lo, mut hi) = (
        floor,
        smalls.iter().map(|(s, _)| s.codes).fold(bits, f64::max),
    );
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if within_cap(all_at(mid), cap) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    cap_of(bits.min(lo), all_at(lo), Some(lo))
}

/// Whether a file estimated at `estimated` bits per float weight meets `cap`: a budget lowered
/// to meet the cap exactly may come out a few ulps over it, which is not a file over its cap.
fn within_cap(estimated: f64, cap: f64) -> bool {
    estimated <= cap * (1.0 + 1e-9)
}

/// The per-tensor bit budgets of [`Allocation::Model`] (tensors with a [`TensorSetting::Bits`]
/// are left out: they get their own bits): measures every other quantized tensor's
/// rate–distortion curve, then finds the multiplier μ whose choices (each tensor minimising
/// D_t(b) + μ·n_t·b on its curve, D = relative squared error, n = weights) spend `bits` per
/// weight over all of them (less a 0.3 % margin for the coder's overhead, which the curves
/// estimate).
pub(crate) fn allocate(
    ck: &Checkpoint,
    plan: &Plan,
    opts: &PackOptions,
    p: &PcmOptions,
    bits: f64,
    progress: &mut dyn Progress,
) -> Result<HashMap<String, f64>> {
    // α = 2^e, e from −14 to 4 by halves: from about 16 down to under 1 bit per weight.
    let exponents: Vec<f64> = (0..=36).map(|i| -14.0 + 0.5 * f64::from(i)).collect();
    // (tensor, weights, its (bits per weight, relative squared error) points by bits)
    type Curve = (String, f64, Vec<(f64, f64)>);
    let mut curves: Vec<Curve> = Vec::new();
    progress.start("measuring rate curves", plan.quantized_weights());
    for t in &plan.tensors {
        let Choice::Quantize {
            rows,
            cols,
            n,
            bias,
            ..
        } = &t.choice
        else {
            continue;
        };
        let name = t.entry.name.as_str();
        if matches!(opts.tensor_setting(name), Some(TensorSetting::Bits(_)))
            || plan.small.contains_key(name)
        {
            // Its own bits, outside the allocation.
            progress.advance_by(t.entry.elements);
            continue;
        }
        progress.tensor(name);
        let (w, b) = load(ck, &t.entry, bias.as_deref())?;
        let m = matrix(&w, b.as_deref(), *rows, *cols).map_err(in_tensor(name))?;
        let record =
            TensorPlan::pcm(name, t.entry.dtype, &t.entry.shape, bias.is_some()).record_len();
        let popts = PcmOptions {
            record_bytes: record,
            frame_size: p.frame_size.or(Some(*n)).filter(|_| p.family.is_some()),
            ..*p
        };
        let curve =
            pcm::rate_curve(&m, opts.orientation, &popts, &exponents).map_err(in_tensor(name))?;
        let weights = (rows * cols + if bias.is_some() { *rows } else { 0 }) as f64;
        let mut pts: Vec<(f64, f64)> = curve
            .iter()
            .filter(|r| r.bits_per_weight.is_finite())
            .map(|r| (r.bits_per_weight, r.relative_error2))
            .collect();
        // A tensor on a grid (a mask, a one-hot table) can be coded exactly: a point of no
        // error, which makes every point with as many bits or more pointless.
        if let Some(exact) =
            pcm::lattice_bits(&m, opts.orientation, &popts).map_err(in_tensor(name))?
        {
            pts.retain(|p| p.0 < exact);
            pts.push((exact, 0.0));
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        curves.push((name.to_owned(), weights, pts));
        progress.advance_by(t.entry.elements);
    }
    progress.finish();
    let total: f64 = curves.iter().map(|c| c.1).sum();
    let budget = bits * total * 0.997;
    // For a multiplier μ: each tensor's best point on its curve, refined between points by
    // interpolating log D linearly in b.
    let choose = |mu: f64| -> Vec<f64> {
        curves
            .iter()
            .map(|(_, weights, pts)| {
                let mut best = (f64::INFINITY, pts.first().map_or(bits, |p| p.0));
                for pair in pts.windows(2) {
                    let ((b0, d0), (b1, d1)) = (pair[0], pair[1]);
                    for s in 0..=16 {
                        let f = f64::from(s) / 16.0;
                        let b = b0 + f * (b1 - b0);
                        let d = if d0 > 0.0 && d1 > 0.0 {
                            (d0.ln() + f * (d1.ln() - d0.ln())).exp()
                        } else {
                            d0 + f * (d1 - d0)
                        };
                        let cost = weights.sqrt() * d + mu * weights * b;
                        if cost < best.0 {
                            best = (cost, b);
                        }
                    }
                }
                best.1
            })
            .collect()
    };
    let spend = |b: &[f64]| -> f64 { b.iter().zip(&curves).map(|(b, c)| b * c.1).sum() };
    // μ large: fewest bits; μ small: most. Bisection on log μ.
    let (mut lo, mut hi) = (-60.0f64, 10.0f64);
    if spend(&choose(hi.exp())) > budget {
        // Even the fewest bits exceed the budget: every tensor at the same bits.
        return Ok(curves.into_iter().map(|c| (c.0, bits)).collect());
    }
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if spend(&choose(mid.exp())) > budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let chosen = choose(hi.exp());
    Ok(curves
        .into_iter()
        .zip(chosen)
        .map(|(c, b)| (c.0, b))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::within_cap;

    #[test]
    fn a_budget_lowered_to_the_cap_meets_it() {
        // The arithmetic of `file_cap`: the budget that fills the cap, then the file's estimate
        // at that budget. Some sizes round a few ulps over the cap; none may count as over it.
        let cap = 5.0;
        let mut rounded_over = 0;
        let mut state = 1u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..20_000 {
            let float_weights = (1e5 + next() * 1e8).floor();
            let fixed_bits = next() * 2.0 * float_weights;
            let shared = (1.0 + next() * (float_weights - 1.0)).floor();
            let fits = (cap * float_weights - fixed_bits) / shared;
            let estimated = (fixed_bits + fits * shared) / float_weights;
            rounded_over += usize::from(estimated > cap);
            assert!(within_cap(estimated, cap), "{i}: {estimated}");
        }
        assert!(rounded_over > 0, "the case this guards against does occur");
        assert!(!within_cap(5.0001, cap));
    }
}
