//! The methods the rate–distortion report compares: each frame-quantization scheme is one entry
//! of [`frame_schemes`] (a [`Scheme`] → a [`PackOptions`]); per-row round-to-nearest is the
//! baseline outside the file format.
//!
//! To add a scheme the library gains: give [`Scheme`] a field for it, set it in
//! [`Scheme::options`] and push the entries in [`frame_schemes`]; nothing else in the report
//! needs to change.

use sdq::bridge::pack::{DeltaChoice, FrameRule, PackOptions};
use sdq::frame::FrameFamily;
use sdq::quant::alphabet::bits_for_levels;
use sdq::quant::Scheme as Recursion;

/// One frame-quantization scheme: everything but the frame size and zstd.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    /// First- or second-order ΣΔ.
    pub recursion: Recursion,
    /// Harmonic or spectral-tetris frames.
    pub family: FrameFamily,
    /// ΣΔ along the library's computed ordering of the frame vectors instead of the natural one.
    pub reorder: bool,
    /// How δ is chosen.
    pub delta: DeltaChoice,
    /// K: 2K levels, ⌈log2 2K⌉ bits per code.
    pub levels: u32,
}

impl Scheme {
    /// Stable id for the CSV (`sd1-harmonic-coefficient-k1`).
    pub fn id(&self) -> String {
        format!(
            "sd{}-{}-{}-k{}{}",
            self.order(),
            self.family.name(),
            self.delta.describe(),
            self.levels,
            if self.reorder { "-reordered" } else { "" }
        )
    }

    /// Legend text.
    pub fn label(&self) -> String {
        format!(
            "ΣΔ{} {}, {} δ, K={}{}",
            self.order(),
            self.family.name(),
            self.delta.describe(),
            self.levels,
            if self.reorder { ", reordered" } else { "" }
        )
    }

    /// Short legend text for the figures.
    pub fn short(&self) -> String {
        let family = match self.family {
            FrameFamily::Harmonic => "",
            _ => "tetris ",
        };
        let delta = self.delta.describe();
        format!(
            "ΣΔ{} {family}{} K={}{}",
            self.order(),
            if family.is_empty() { &delta } else { "coef" },
            self.levels,
            if self.reorder { " reord." } else { "" }
        )
    }

    /// Order of the ΣΔ scheme (for the CSV).
    pub fn order(&self) -> u32 {
        self.recursion.order()
    }

    /// Frame family (for the CSV).
    pub fn family(&self) -> &'static str {
        self.family.name()
    }

    /// Bits per code.
    pub fn bits_per_code(&self) -> u32 {
        bits_for_levels(self.levels)
    }

    /// The redundancy N/d that spends `code_bits` code bits per original weight, if this scheme
    /// can. Harmonic frames need N > d, so for first order the smallest budget gives N = d + 1.
    /// Second order lowers an odd N by one (it wants an even N with a harmonic frame), which
    /// N = d + 1 cannot afford for even d; it starts at N/d = 1.25. Spectral tetris frames need
    /// N ≥ 2d.
    pub fn redundancy_for(&self, code_bits: f64) -> Option<f64> {
        let r = code_bits / f64::from(self.bits_per_code());
        let tetris = self.family != FrameFamily::Harmonic;
        match self.recursion {
            _ if tetris && r + 1e-12 < 2.0 => None,
            _ if tetris => Some(r.max(2.0)),
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
            method: sdq::bridge::pack::Method::SigmaDelta,
            orientation: sdq::Orientation::Columns,
            force_quantize: true,
            frame: FrameRule::Redundancy(redundancy),
            levels: self.levels,
            scheme: self.recursion,
            family: self.family,
            reorder: self.reorder,
            delta: self.delta,
            include: names.to_vec(),
            min_dim: Some(1),
            zstd,
            ..PackOptions::default()
        }
    }
}

/// The frame-quantization schemes measured. In harmonic frames (natural order): first-order
/// ΣΔ with every δ policy at K = 1 and K = 2 and the per-vector coefficient δ (the library's
/// default) also at K = 4, 8, 32 and 128 (3, 4, 6 and 8 bits per code); second-order ΣΔ (K ≥ 2)
/// with every δ policy at K = 2 and the coefficient δ at K = 4, 8, 32 and 128. With the
/// coefficient δ only: spectral-tetris frames (N ≥ 2d) with first order at K = 1, 2 and 8 and
/// second order at K = 2, and the library's computed ordering (`reorder`) for first order at
/// K = 1 in both families.
pub fn frame_schemes() -> Vec<Scheme> {
    let policies = [
        DeltaChoice::Coefficient,
        DeltaChoice::Vector,
        DeltaChoice::Tensor,
        DeltaChoice::Uniform,
    ];
    let mut v = Vec::new();
    let mut push = |recursion, family, reorder, delta, levels| {
        v.push(Scheme {
            recursion,
            family,
            reorder,
            delta,
            levels,
        })
    };
    let harmonic = FrameFamily::Harmonic;
    let tetris = FrameFamily::SpectralTetris;
    let coefficient = DeltaChoice::Coefficient;
    for (recursion, all_policies) in [
        (Recursion::FirstOrder, &[1u32, 2][..]),
        (Recursion::SecondOrder, &[2u32][..]),
    ] {
        for &levels in all_policies {
            for delta in policies {
                push(recursion, harmonic, false, delta, levels);
            }
        }
        for levels in [4, 8, 32, 128] {
            push(recursion, harmonic, false, coefficient, levels);
        }
    }
    for levels in [1, 2, 8] {
        push(Recursion::FirstOrder, tetris, false, coefficient, levels);
    }
    push(Recursion::SecondOrder, tetris, false, coefficient, 2);
    for family in [harmonic, tetris] {
        push(Recursion::FirstOrder, family, true, coefficient, 1);
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
            family: FrameFamily::Harmonic,
            reorder: false,
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
        let tetris = Scheme {
            family: FrameFamily::SpectralTetris,
            ..k1.clone()
        };
        assert_eq!(tetris.redundancy_for(1.5), None);
        assert_eq!(tetris.redundancy_for(2.0), Some(2.0));
        assert_eq!(tetris.id(), "sd1-spectral-tetris-coefficient-k1");
        assert_eq!(frame_schemes().len(), 26);
    }
}
