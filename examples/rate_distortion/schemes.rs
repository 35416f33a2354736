//! The methods the rate–distortion report compares: each frame-quantization scheme is one entry
//! of [`frame_schemes`] (a [`Scheme`] → a [`PackOptions`]); per-row round-to-nearest is the
//! baseline outside the file format.
//!
//! To add a scheme the library gains (second-order ΣΔ, spectral-tetris frames, …): give
//! [`Scheme`] a field for it, set it in [`Scheme::options`] and push the entries in
//! [`frame_schemes`]; nothing else in the report needs to change.

use sdq::bridge::pack::{DeltaChoice, FrameRule, PackOptions};
use sdq::quant::alphabet::bits_for_levels;

/// One frame-quantization scheme: everything but the frame size and zstd.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    /// How δ is chosen.
    pub delta: DeltaChoice,
    /// K: 2K levels, ⌈log2 2K⌉ bits per code.
    pub levels: u32,
}

impl Scheme {
    /// Stable id for the CSV (`sd1-harmonic-coefficient-k1`).
    pub fn id(&self) -> String {
        format!("sd1-harmonic-{}-k{}", self.delta.describe(), self.levels)
    }

    /// Legend text.
    pub fn label(&self) -> String {
        format!(
            "ΣΔ1 harmonic, {} δ, K={}",
            self.delta.describe(),
            self.levels
        )
    }

    /// Short legend text for the figures.
    pub fn short(&self) -> String {
        format!("ΣΔ1 {} K={}", self.delta.describe(), self.levels)
    }

    /// Order of the ΣΔ scheme (for the CSV).
    pub fn order(&self) -> u32 {
        1
    }

    /// Frame family (for the CSV).
    pub fn family(&self) -> &'static str {
        "harmonic"
    }

    /// Bits per code.
    pub fn bits_per_code(&self) -> u32 {
        bits_for_levels(self.levels)
    }

    /// The smallest redundancy N/d the frame family accepts (harmonic: N ≥ d + 1).
    pub fn min_redundancy(&self) -> f64 {
        1.0
    }

    /// The redundancy N/d that spends `code_bits` code bits per original weight, if this scheme
    /// can (harmonic frames need N > d, so the smallest budget gives N = d + 1).
    pub fn redundancy_for(&self, code_bits: f64) -> Option<f64> {
        let r = code_bits / f64::from(self.bits_per_code());
        let min = self.min_redundancy();
        if r + 1e-12 < min {
            None
        } else if r <= min {
            // N = ⌈r·d⌉ must exceed d: the smallest step above r = 1.
            Some(min + 1e-9)
        } else {
            Some(r)
        }
    }

    /// The library's options for this scheme: N = ⌈r·d⌉ in every quantized tensor, the
    /// tensors `names` quantized (columns, the paper's orientation), zstd at `zstd` if given.
    pub fn options(&self, redundancy: f64, names: &[String], zstd: Option<i32>) -> PackOptions {
        PackOptions {
            frame: FrameRule::Redundancy(redundancy),
            levels: self.levels,
            delta: self.delta,
            include: names.to_vec(),
            min_dim: 1,
            zstd,
            ..PackOptions::default()
        }
    }
}

/// The frame-quantization schemes measured: first-order ΣΔ in harmonic frames with every δ
/// policy at K = 1 and K = 2, and the per-vector coefficient δ (the library's default) also at
/// K = 4, 8, 32 and 128 (3, 4, 6 and 8 bits per code).
///
/// Second-order ΣΔ and spectral-tetris frames are not in the library's pack options yet; their
/// entries go here when they are.
pub fn frame_schemes() -> Vec<Scheme> {
    let mut v = Vec::new();
    for levels in [1, 2] {
        for delta in [
            DeltaChoice::Coefficient,
            DeltaChoice::Vector,
            DeltaChoice::Tensor,
            DeltaChoice::Uniform,
        ] {
            v.push(Scheme { delta, levels });
        }
    }
    for levels in [4, 8, 32, 128] {
        v.push(Scheme {
            delta: DeltaChoice::Coefficient,
            levels,
        });
    }
    v
}

/// Bits per code of K.
pub fn bits_for(k: u32) -> u32 {
    bits_for_levels(k)
}

/// Code-bit budgets (bits per original weight before δ and headers) the frame sizes are chosen
/// for.
pub fn code_bit_targets(quick: bool) -> Vec<f64> {
    if quick {
        vec![1.0, 2.0, 4.0, 8.0, 16.0]
    } else {
        vec![
            1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0,
        ]
    }
}

/// Bit widths of the per-row round-to-nearest baseline.
pub fn rtn_bits(quick: bool) -> Vec<u32> {
    if quick {
        vec![2, 3, 4, 8]
    } else {
        vec![2, 3, 4, 5, 6, 8, 10, 12, 16]
    }
}

/// zstd level used for the compressed variant of every point (the CLI's `--zstd` default).
pub const ZSTD_LEVEL: i32 = 9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redundancies() {
        let k1 = Scheme {
            delta: DeltaChoice::Coefficient,
            levels: 1,
        };
        let k2 = Scheme {
            delta: DeltaChoice::Coefficient,
            levels: 2,
        };
        assert!(k1
            .redundancy_for(1.0)
            .is_some_and(|r| r > 1.0 && r < 1.0001));
        assert_eq!(k1.redundancy_for(4.0), Some(4.0));
        assert_eq!(k2.redundancy_for(1.0), None);
        assert_eq!(k2.redundancy_for(4.0), Some(2.0));
        assert_eq!(frame_schemes().len(), 12);
    }
}
