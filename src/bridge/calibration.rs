//! Calibration files for `sdq pack --calibration` and `sdq verify --calibration`: a safetensors
//! file holding, for each weight W[out, in] it covers, a tensor **with the weight's name** and
//! shape `[in, in]` (the mean of x xᵀ over the layer's calibration inputs x, F32 or F64) or `[in]`
//! (the mean of x_i² only). `in` is the product of the weight's dimensions after the first (a
//! convolution [out, in, kh, kw] sees patches of in·kh·kw values). docs/calibration.md describes
//! the format and how to make one.

use std::path::Path;

use super::safetensors::{Checkpoint, TensorEntry};
use crate::error::{Error, Result};
use crate::format::Dtype;
use crate::quant::gram::Gram;

/// An open calibration file.
pub struct Calibration {
    ck: Checkpoint,
}

impl std::fmt::Debug for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calibration")
            .field("path", &self.ck.path())
            .field("tensors", &self.ck.tensors().len())
            .finish()
    }
}

fn bad(path: &Path, name: &str, why: impl std::fmt::Display) -> Error {
    Error::Data(format!(
        "calibration file {}: tensor {name:?} {why}",
        path.display()
    ))
}

impl Calibration {
    /// Opens `path` and checks that every tensor is F32 or F64 of shape `[n, n]` or `[n]`, n ≥ 1.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let ck = Checkpoint::open(path.as_ref())?;
        for t in ck.tensors() {
            if !matches!(t.dtype, Dtype::F32 | Dtype::F64) {
                return Err(bad(
                    ck.path(),
                    &t.name,
                    format!("has dtype {}; a Gram matrix is F32 or F64", t.dtype),
                ));
            }
            match t.shape.as_slice() {
                [n] | [n, _] if *n == 0 => {
                    return Err(bad(ck.path(), &t.name, "is empty"));
                }
                [_] => {}
                [a, b] if a == b => {}
                s => {
                    return Err(bad(
                        ck.path(),
                        &t.name,
                        format!("has shape {s:?}; a Gram matrix is [n, n] (or [n], its diagonal)"),
                    ))
                }
            }
        }
        Ok(Calibration { ck })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.ck.path()
    }

    /// The names of the tensors it holds.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ck.tensors().iter().map(|t| t.name.as_str())
    }

    /// Whether it holds a Gram matrix for `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.ck.tensor(name).is_ok()
    }

    /// The dimension n of the Gram matrix for `name`, if any.
    pub fn dim(&self, name: &str) -> Option<u64> {
        self.ck
            .tensor(name)
            .ok()
            .and_then(|t| t.shape.first().copied())
    }

    /// The Gram matrix for `name` (`None` if not covered), validated ([`Gram::full`],
    /// [`Gram::diagonal`]); errors name the file and the tensor.
    pub fn gram(&self, name: &str) -> Result<Option<Gram>> {
        let Ok(t) = self.ck.tensor(name) else {
            return Ok(None);
        };
        let values = self.values(t)?;
        let g = match t.shape.as_slice() {
            [_] => Gram::diagonal(values),
            [n, _] => Gram::full(*n as usize, values),
            _ => return Err(bad(self.ck.path(), name, "is not a Gram matrix")),
        };
        g.map(Some)
            .map_err(|e| bad(self.ck.path(), name, format_args!("is not usable: {e}")))
    }

    fn values(&self, t: &TensorEntry) -> Result<Vec<f64>> {
        let bytes = self.ck.bytes(t)?;
        Ok(match t.dtype {
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
        })
    }
}
