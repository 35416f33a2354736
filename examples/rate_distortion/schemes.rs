//! The methods the rate–distortion report compares: each frame-quantization scheme is one entry
//! of [`frame_schemes`] (a [`Scheme`] → a [`PackOptions`]); per-row round-to-nearest is the
//! baseline outside the file format.
//!
//! To add a scheme the library gains (spectral-tetris frames, once the pack options select a
//! frame family): give [`Scheme`] a field for it, set it in [`Scheme::options`] and push the
//! entries in [`frame_schemes`]; nothing else in the report needs to change.

use sdq::bridge::pack::{DeltaChoice, FrameRule, PackOptions};
use sdq::quant::alphabet::bits_for_levels;
use sdq::quant::Scheme as Recursion;

/// One frame-quantization scheme: everything but the frame size and zstd.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    /// First- or second-order ΣΔ.
    pub recursion: Recursion,
    /// How δ is chosen.
    pub delta: DeltaChoice,
    /// K: 2K levels, ⌈log2 2K⌉ bits per code.
    pub levels: u32,
}

impl Scheme {
    /// Stable id for the CSV (`sd1-harmonic-coefficient-k1`).
    pub fn id(&self) -> String {
        format!(
            "sd{}-harmonic-{}-k{}",
            self.order(),
            self.delta.describe(),
            self.levels
        )
    }

    /// Legend text.
    pub fn label(&self) -> String {
        format!(
            "ΣΔ{} harmonic, {} δ, K={}",
            self.order(),
            self.delta.describe(),
            self.levels
        )
    }

    /// Short legend text for the figures.
    pub fn short(&self) -> String {
        format!(
            "ΣΔ{} {} K={}",
            self.order(),
            self.delta.describe(),
            self.levels
        )
    }

    /// Order of the ΣΔ scheme (for the CSV).
    pub fn order(&self) -> u32 {
        self.recursion.order()
    }

    /// Frame family (for the CSV).
    pub fn family(&self) -> &'static str {
        "harmonic"
    }

    /// Bits per code.
    pub fn bits_per_code(&self) -> u32 {
        bits_for_levels(self.levels)
    }

    /// The redundancy N/d that spends `code_bits` code bits per original weight, if this scheme
    /// can. Harmonic frames need N > d, so for first order the smallest budget gives N = d + 1.
    /// Second order lowers an odd N by one (it wants an even N with a harmonic frame), which
    /// N = d + 1 cannot afford for even d; it starts at N/d = 1.25.
    pub fn redundancy_for(&self, code_bits: f64) -> Option<f64> {
        let r = code_bits / f64::from(self.bits_per_code());
        match self.recursion {
            Recursion::FirstOrder if r + 1e-12 < 1.0 => None,
            // N = ⌈r·d⌉ must exceed d: the smallest step above r = 1.
            Recursion::FirstOrder if r <= 1.0 => Some(1.0 + 1e-9),
            Recursion::SecondOrder if r + 1e-12 < 1.25 => None,
            _ => Some(r),
        }
    }

    /// The library's options for this scheme: N = ⌈r·d⌉ in every quantized tensor, the
    /// tensors `names` quantized (columns, the paper's orientation), zstd at `zstd` if given.
    pub fn options(&self, redundancy: f64, names: &[String], zstd: Option<i32>) -> PackOptions {
        PackOptions {
            frame: FrameRule::Redundancy(redundancy),
            levels: self.levels,
            scheme: self.recursion,
            delta: self.delta,
            include: names.to_vec(),
            min_dim: 1,
            zstd,
            ..PackOptions::default()
        }
    }
}

/// The frame-quantization schemes measured, all in harmonic frames (the one family the file
/// format and the pack options have): first-order ΣΔ with every δ policy at K = 1 and K = 2 and
/// the per-vector coefficient δ (the library's default) also at K = 4, 8, 32 and 128 (3, 4, 6
/// and 8 bits per code); second-order ΣΔ (K ≥ 2) with every δ policy at K = 2 and the
/// coefficient δ at K = 4, 8, 32 and 128.
///
/// Spectral-tetris frames are not selectable in the pack options (nor storable in a file) yet;
/// their entries go here when they are.
pub fn frame_schemes() -> Vec<Scheme> {
    let policies = [
        DeltaChoice::Coefficient,
        DeltaChoice::Vector,
        DeltaChoice::Tensor,
        DeltaChoice::Uniform,
    ];
    let mut v = Vec::new();
    let mut push = |recursion, delta, levels| {
        v.push(Scheme {
            recursion,
            delta,
            levels,
        })
    };
    for (recursion, all_policies) in [
        (Recursion::FirstOrder, &[1u32, 2][..]),
        (Recursion::SecondOrder, &[2u32][..]),
    ] {
        for &levels in all_policies {
            for delta in policies {
                push(recursion, delta, levels);
            }
        }
        for levels in [4, 8, 32, 128] {
            push(recursion, DeltaChoice::Coefficient, levels);
        }
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
            recursion: Recursion::FirstOrder,
            delta: DeltaChoice::Coefficient,
            levels: 1,
        };
        let k2 = Scheme {
            levels: 2,
            ..k1.clone()
        };
        let second = Scheme {
            recursion: Recursion::SecondOrder,
            ..k2.clone()
        };
        assert!(k1
            .redundancy_for(1.0)
            .is_some_and(|r| r > 1.0 && r < 1.0001));
        assert_eq!(k1.redundancy_for(4.0), Some(4.0));
        assert_eq!(k2.redundancy_for(1.0), None);
        assert_eq!(k2.redundancy_for(4.0), Some(2.0));
        assert_eq!(second.redundancy_for(2.0), None);
        assert_eq!(second.redundancy_for(2.5), Some(1.25));
        assert_eq!(k1.id(), "sd1-harmonic-coefficient-k1");
        assert_eq!(second.id(), "sd2-harmonic-coefficient-k2");
        assert_eq!(frame_schemes().len(), 20);
    }
}
