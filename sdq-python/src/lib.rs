//! The `sdq` Python module: read .sdq files into numpy arrays (all at once or lazily, mirroring
//! `safetensors`' Python API), pack numpy dicts or safetensors checkpoints into .sdq files, and
//! inspect them (the content of `sdq info --json`).
//!
//! Arrays: quantized tensors (sigma-delta, and biases quantized with their weight) decode to
//! float32; raw tensors come back bit for bit in their own dtype where numpy has one (bool,
//! (u)int8/16/32/64, float16/32/64), and as float32 otherwise (BF16, F8_E4M3, F8_E5M2).
//!
//! Errors raise `sdq.SdqError` subclasses whose message is the command line's (`sdq: ` aside).

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use numpy::ndarray::ArrayViewD;
use numpy::{Element, PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::{json, Value};

use sdq::bridge::info::info_json;
use sdq::bridge::pack::{Allocation, DeltaChoice, FrameRule, Method, PackOptions};
use sdq::bridge::safetensors::{Checkpoint, SafetensorsWriter, TensorSpec};
use sdq::bridge::NoProgress;
use sdq::format::{Encoding, TensorInfo};
use sdq::frame::FrameFamily;
use sdq::quant::pcm::{PcmOptions, RateTarget};
use sdq::quant::Scheme;
use sdq::{Dtype, Orientation, SdqFile};

create_exception!(
    sdq,
    SdqError,
    PyException,
    "Base class of every error sdq raises."
);
create_exception!(
    sdq,
    FormatError,
    SdqError,
    "The bytes are not a valid .sdq file (the message names the spec's rule)."
);
create_exception!(
    sdq,
    ChecksumError,
    SdqError,
    "A stored section's CRC32 does not match its bytes."
);
create_exception!(
    sdq,
    LimitError,
    SdqError,
    "A size is past one of sdq's documented limits."
);
create_exception!(
    sdq,
    NoSuchTensorError,
    SdqError,
    "No tensor of that name is in the file."
);
create_exception!(
    sdq,
    ParameterError,
    SdqError,
    "An invalid parameter (an option, a frame size N <= d, a dtype, ...)."
);
create_exception!(
    sdq,
    DataError,
    SdqError,
    "The weights cannot be quantized as given (NaN or infinity)."
);
create_exception!(
    sdq,
    IoError,
    SdqError,
    "An I/O failure (missing file, permission denied, disk full, ...)."
);

/// The Python exception for a library error about `file`, with the command line's message.
fn py_err(file: &Path, e: sdq::Error) -> PyErr {
    use sdq::Error as E;
    let msg = match &e {
        // The I/O error names its own path (which may be the output, not `file`).
        E::Io { .. } => e.to_string(),
        _ => format!("{}: {e}", file.display()),
    };
    match e {
        E::Format(_) => FormatError::new_err(msg),
        E::Checksum { .. } => ChecksumError::new_err(msg),
        E::Limit { .. } => LimitError::new_err(msg),
        E::NoSuchTensor(_) => NoSuchTensorError::new_err(msg),
        E::Parameter(_) => ParameterError::new_err(msg),
        E::Data(_) => DataError::new_err(msg),
        E::Io { .. } => IoError::new_err(msg),
        _ => SdqError::new_err(msg),
    }
}

fn array<'py, T: Element>(
    py: Python<'py>,
    values: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, values).reshape(shape)?.into_any())
}

/// The raw bytes of `t` as a vector of `T` (little-endian, `N` bytes each).
fn le_vec<T, const N: usize>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            from(b)
        })
        .collect()
}

/// Tensor `t` of `file` as a numpy array (see the module's documentation for the dtypes).
fn tensor_array<'py>(
    py: Python<'py>,
    file: &SdqFile,
    path: &Path,
    t: &TensorInfo,
) -> PyResult<Bound<'py, PyAny>> {
    let shape: Vec<usize> = t
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| LimitError::new_err(format!("{}: shape too large", path.display())))?;
    let err = |e| py_err(path, e);
    let own = matches!(t.encoding, Encoding::Raw { .. })
        && !matches!(t.dtype, Dtype::BF16 | Dtype::F8E4M3 | Dtype::F8E5M2);
    if !own {
        let name = t.name.as_str();
        let values = py.detach(|| file.decode(name)).map_err(err)?;
        return array(py, values, &shape);
    }
    let bytes = file.raw_bytes(&t.name).map_err(err)?;
    match t.dtype {
        Dtype::Bool => array(py, bytes.iter().map(|&b| b != 0).collect(), &shape),
        Dtype::U8 => array(py, bytes.to_vec(), &shape),
        Dtype::I8 => array(py, le_vec(&bytes, i8::from_le_bytes), &shape),
        Dtype::U16 => array(py, le_vec(&bytes, u16::from_le_bytes), &shape),
        Dtype::I16 => array(py, le_vec(&bytes, i16::from_le_bytes), &shape),
        Dtype::F16 => array(py, le_vec(&bytes, half::f16::from_le_bytes), &shape),
        Dtype::U32 => array(py, le_vec(&bytes, u32::from_le_bytes), &shape),
        Dtype::I32 => array(py, le_vec(&bytes, i32::from_le_bytes), &shape),
        Dtype::F32 => array(py, le_vec(&bytes, f32::from_le_bytes), &shape),
        Dtype::U64 => array(py, le_vec(&bytes, u64::from_le_bytes), &shape),
        Dtype::I64 => array(py, le_vec(&bytes, i64::from_le_bytes), &shape),
        Dtype::F64 => array(py, le_vec(&bytes, f64::from_le_bytes), &shape),
        _ => {
            let values = file.decode(&t.name).map_err(err)?;
            array(py, values, &shape)
        }
    }
}

fn open(path: &Path) -> PyResult<SdqFile> {
    SdqFile::open(path).map_err(|e| py_err(path, e))
}

/// Loads every tensor of the .sdq file at `path` into a dict of numpy arrays, in file order.
///
/// Quantized tensors decode to float32; raw tensors keep their dtype where numpy has one
/// (BF16 and FP8 become float32).
#[pyfunction]
fn load_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let file = open(&path)?;
    let out = PyDict::new(py);
    for t in file.tensors() {
        out.set_item(&t.name, tensor_array(py, &file, &path, t)?)?;
    }
    Ok(out)
}

/// Lazy access to an .sdq file by tensor name, like `safetensors.safe_open`:
///
/// ```python
/// with sdq.safe_open("model.sdq", framework="np") as f:
///     for name in f.keys():
///         array = f.get_tensor(name)
/// ```
///
/// Opening maps the file and validates its header; each `get_tensor` decodes one tensor.
#[pyclass(name = "safe_open", module = "sdq")]
struct SafeOpen {
    path: PathBuf,
    file: Option<Arc<SdqFile>>,
}

impl SafeOpen {
    fn file(&self) -> PyResult<&Arc<SdqFile>> {
        self.file.as_ref().ok_or_else(|| {
            SdqError::new_err(format!("{}: the file is closed", self.path.display()))
        })
    }
}

#[pymethods]
impl SafeOpen {
    /// Opens `path`. `framework` must be "np" or "numpy" (the arrays are numpy arrays);
    /// `device` must be "cpu".
    #[new]
    #[pyo3(signature = (filename, framework = "np", device = "cpu"))]
    fn new(filename: PathBuf, framework: &str, device: &str) -> PyResult<Self> {
        if !matches!(framework, "np" | "numpy") {
            return Err(ParameterError::new_err(format!(
                "framework {framework:?} is not supported: sdq returns numpy arrays (framework=\"np\")"
            )));
        }
        if device != "cpu" {
            return Err(ParameterError::new_err(format!(
                "device {device:?} is not supported: sdq decodes on the cpu"
            )));
        }
        let file = open(&filename)?;
        Ok(SafeOpen {
            path: filename,
            file: Some(Arc::new(file)),
        })
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        _exc_type: &Bound<'_, PyAny>,
        _exc_value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> bool {
        self.file = None;
        false
    }

    /// The tensor names, in file order.
    fn keys(&self) -> PyResult<Vec<String>> {
        Ok(self
            .file()?
            .tensors()
            .iter()
            .map(|t| t.name.clone())
            .collect())
    }

    /// Decodes the tensor `name` into a numpy array.
    fn get_tensor<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let file = self.file()?;
        let t = file.tensor(name).map_err(|e| py_err(&self.path, e))?;
        tensor_array(py, file, &self.path, t)
    }

    /// A lazy view of the tensor `name`, as safetensors' `get_slice`: `get_shape()`,
    /// `get_dtype()`, and basic indexing (`[a:b]`, `[a:b, c:d]`, integers, `...`) that returns
    /// numpy arrays.
    fn get_slice(&self, name: &str) -> PyResult<SafeSlice> {
        let file = self.file()?;
        file.tensor(name).map_err(|e| py_err(&self.path, e))?;
        Ok(SafeSlice {
            path: self.path.clone(),
            file: Arc::clone(file),
            name: name.to_owned(),
        })
    }

    /// The file's metadata as a dict of strings, or None if it has none (as safetensors).
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let m = self.file()?.metadata();
        if m.is_empty() {
            return Ok(None);
        }
        let d = PyDict::new(py);
        for (k, v) in m {
            d.set_item(k, v)?;
        }
        Ok(Some(d))
    }

    fn __repr__(&self) -> String {
        format!("sdq.safe_open({:?})", self.path.display().to_string())
    }
}

/// One tensor of an open file, indexed lazily (from `safe_open(...).get_slice(name)`).
#[pyclass(name = "safe_slice", module = "sdq")]
struct SafeSlice {
    path: PathBuf,
    file: Arc<SdqFile>,
    name: String,
}

impl SafeSlice {
    fn info(&self) -> PyResult<&TensorInfo> {
        self.file
            .tensor(&self.name)
            .map_err(|e| py_err(&self.path, e))
    }
}

/// Whether `key` is a basic index: an int, a slice, `...`, or a tuple of them.
fn basic_index(key: &Bound<'_, PyAny>) -> bool {
    let one = |k: &Bound<'_, PyAny>| {
        (k.is_instance_of::<pyo3::types::PyInt>() && !k.is_instance_of::<pyo3::types::PyBool>())
            || k.is_instance_of::<pyo3::types::PySlice>()
            || k.is(&k.py().Ellipsis())
    };
    match key.cast::<pyo3::types::PyTuple>() {
        Ok(t) => t.iter().all(|k| one(&k)),
        Err(_) => one(key),
    }
}

#[pymethods]
impl SafeSlice {
    /// The tensor's shape, as a list.
    fn get_shape(&self) -> PyResult<Vec<u64>> {
        Ok(self.info()?.shape.clone())
    }

    /// The tensor's original dtype, in safetensors' spelling ("F32", "BF16", ...).
    fn get_dtype(&self) -> PyResult<&'static str> {
        Ok(self.info()?.dtype.name())
    }

    /// The selected part of the tensor as a numpy array (the tensor is decoded, then indexed).
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !basic_index(key) {
            return Err(ParameterError::new_err(format!(
                "{}: tensor {:?}: only basic indexing is supported (integers, slices such as [a:b, c:d], ...)",
                self.path.display(),
                self.name
            )));
        }
        let t = self.info()?;
        let whole = tensor_array(py, &self.file, &self.path, t)?;
        let part = whole.get_item(key)?;
        // A copy, so the result does not keep the whole decoded tensor alive.
        py.import("numpy")?.call_method1("array", (part,))
    }

    fn __repr__(&self) -> String {
        format!("sdq.safe_slice({:?})", self.name)
    }
}

// --------------------------------------------------------------------------------------------
// info: the document of `sdq info --json` (docs/cli.md, schema_version 1).

fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| SdqError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// What the .sdq file at `path` stores, as a dict: the document `sdq info --json` prints
/// (docs/cli.md, `schema_version` 1), for every tensor.
#[pyfunction]
fn info<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let file = open(&path)?;
    json_to_py(py, &info_json(&path.display().to_string(), &file, &[]))
}

// --------------------------------------------------------------------------------------------
// pack

/// An array's dtype, shape and bytes (little-endian, row-major).
type ArrayBytes = (Dtype, Vec<u64>, Vec<u8>);

/// A dtype numpy can hand over, and its bytes.
fn numpy_bytes(value: &Bound<'_, PyAny>) -> PyResult<Option<ArrayBytes>> {
    fn take<T: Element + Copy, const N: usize>(
        value: &Bound<'_, PyAny>,
        dtype: Dtype,
        le: fn(T) -> [u8; N],
    ) -> PyResult<Option<ArrayBytes>> {
        let Ok(a) = value.extract::<PyReadonlyArrayDyn<'_, T>>() else {
            return Ok(None);
        };
        let shape = a.shape().iter().map(|&d| d as u64).collect();
        let view: ArrayViewD<'_, T> = a.as_array();
        let mut bytes = Vec::with_capacity(view.len() * N);
        // Logical (row-major) order, whatever the strides.
        for &x in view.iter() {
            bytes.extend_from_slice(&le(x));
        }
        Ok(Some((dtype, shape, bytes)))
    }
    macro_rules! try_types {
        ($($t:ty => $d:expr, $le:expr;)*) => {
            $( if let Some(r) = take::<$t, { std::mem::size_of::<$t>() }>(value, $d, $le)? {
                return Ok(Some(r));
            } )*
        };
    }
    try_types! {
        f32 => Dtype::F32, f32::to_le_bytes;
        f64 => Dtype::F64, f64::to_le_bytes;
        half::f16 => Dtype::F16, half::f16::to_le_bytes;
        i64 => Dtype::I64, i64::to_le_bytes;
        i32 => Dtype::I32, i32::to_le_bytes;
        i16 => Dtype::I16, i16::to_le_bytes;
        i8 => Dtype::I8, i8::to_le_bytes;
        u64 => Dtype::U64, u64::to_le_bytes;
        u32 => Dtype::U32, u32::to_le_bytes;
        u16 => Dtype::U16, u16::to_le_bytes;
        u8 => Dtype::U8, u8::to_le_bytes;
        bool => Dtype::Bool, |b: bool| [u8::from(b)];
    }
    Ok(None)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes a file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes a dict of numpy arrays to a temporary safetensors file.
fn dict_to_safetensors(
    py: Python<'_>,
    dict: &Bound<'_, PyDict>,
    metadata: &[(String, String)],
) -> PyResult<TempFile> {
    let numpy = py.import("numpy")?;
    let mut specs = Vec::new();
    let mut data = Vec::new();
    for (k, v) in dict.iter() {
        let name: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("tensor names must be str"))?;
        let arr = numpy.call_method1("asarray", (v,))?;
        let (dtype, shape, bytes) = numpy_bytes(&arr)?.ok_or_else(|| {
            let dt = arr
                .getattr("dtype")
                .map(|d| d.to_string())
                .unwrap_or_default();
            ParameterError::new_err(format!(
                "tensor {name:?}: numpy dtype {dt} is not supported (bool, (u)int8..64, float16/32/64 in native byte order)"
            ))
        })?;
        specs.push(TensorSpec {
            name: name.clone(),
            dtype,
            shape,
        });
        data.push((name, bytes));
    }
    let path = std::env::temp_dir().join(format!(
        "sdq-python-{}-{}.safetensors",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = TempFile(path.clone());
    let write = || -> sdq::Result<()> {
        let mut w = SafetensorsWriter::create(&path, &specs, metadata)?;
        for (name, bytes) in &data {
            w.write_bytes(name, bytes)?;
        }
        w.finish()
    };
    py.detach(write).map_err(|e| py_err(&path, e))?;
    Ok(temp)
}

fn delta_choice(delta: Option<&Bound<'_, PyAny>>) -> PyResult<DeltaChoice> {
    let Some(d) = delta else {
        return Ok(DeltaChoice::Coefficient);
    };
    if d.is_instance_of::<PyString>() {
        let s: String = d.extract()?;
        return Ok(match s.as_str() {
            "tensor" => DeltaChoice::Tensor,
            "vector" => DeltaChoice::Vector,
            "coefficient" => DeltaChoice::Coefficient,
            "uniform" => DeltaChoice::Uniform,
            v => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => DeltaChoice::Value(x),
                _ => {
                    return Err(ParameterError::new_err(format!(
                    "delta {v:?} is not tensor, vector, coefficient, uniform or a positive number"
                )))
                }
            },
        });
    }
    match d.extract::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(DeltaChoice::Value(x)),
        _ => Err(ParameterError::new_err(format!(
            "delta {d} is not tensor, vector, coefficient, uniform or a positive number"
        ))),
    }
}

fn zstd_level(zstd: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i32>> {
    let Some(z) = zstd else { return Ok(None) };
    if z.is_none() {
        return Ok(None);
    }
    if let Ok(b) = z.extract::<bool>() {
        return Ok(b.then_some(9));
    }
    match z.extract::<i32>() {
        Ok(l) if (1..=22).contains(&l) => Ok(Some(l)),
        _ => Err(ParameterError::new_err(format!(
            "zstd={z}: pass True (level 9) or a level in 1..=22"
        ))),
    }
}

/// `include=` / `exclude=`: None, one glob (a str) or a list (or tuple) of globs.
fn globs(what: &str, v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(vec![s.to_cow()?.into_owned()]);
    }
    let list = if v.is_instance_of::<pyo3::types::PyList>()
        || v.is_instance_of::<pyo3::types::PyTuple>()
    {
        v.extract::<Vec<String>>().ok()
    } else {
        None
    };
    list.ok_or_else(|| {
        let t = v
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        ParameterError::new_err(format!(
            "{what}= must be a glob (a str such as \"layers.*\") or a list of globs, not {t}"
        ))
    })
}

/// Packs `tensors` (a dict of numpy arrays, or the path of a safetensors checkpoint — one file,
/// a sharded `*.safetensors.index.json`, or a directory holding one) into the .sdq file
/// `path`, as `sdq pack` does, and returns a summary dict.
///
/// Options mirror the command line's. `scheme`: "pcm" (default: rounding, entropy-coded,
/// `bits_per_weight` = stored bits per weight of the quantized tensors, default 4.5, spread
/// over the model; `frame_family` "identity" (default), "harmonic" or "spectral-tetris"),
/// "first-order" or "second-order" sigma-delta (the paper's: `frame_size`, `redundancy` or
/// `bits_per_weight` = code bits, at most one, default 4; `levels` K, default 1; second order
/// needs levels >= 2; `frame_family` "harmonic" (default) or "spectral-tetris", which needs
/// N >= 2d; `reorder` (compute an ordering of the frame vectors that makes sigma small);
/// `delta` ("coefficient" (default), "vector", "tensor", "uniform" or a positive number)).
/// `axis` ("rows" (default) or "columns"), `bias`,
/// `include` / `exclude` (a glob or a list of globs), `min_dim` (16), `zstd` (True for level 9, or a level
/// 1..=22). `metadata` (a dict of strings) is stored with a dict of arrays.
#[pyfunction]
#[pyo3(signature = (
    tensors, path, *, frame_size = None, redundancy = None, bits_per_weight = None, levels = 1,
    scheme = "pcm", frame_family = None, reorder = false, delta = None, axis = "rows", bias = false, include = None, exclude = None, min_dim = 16,
    zstd = None, metadata = None
))]
#[allow(clippy::too_many_arguments)]
fn pack<'py>(
    py: Python<'py>,
    tensors: &Bound<'py, PyAny>,
    path: PathBuf,
    frame_size: Option<usize>,
    redundancy: Option<f64>,
    bits_per_weight: Option<f64>,
    levels: u32,
    scheme: &str,
    frame_family: Option<&str>,
    reorder: bool,
    delta: Option<&Bound<'py, PyAny>>,
    axis: &str,
    bias: bool,
    include: Option<&Bound<'py, PyAny>>,
    exclude: Option<&Bound<'py, PyAny>>,
    min_dim: usize,
    zstd: Option<&Bound<'py, PyAny>>,
    metadata: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let metadata: Option<Vec<(String, String)>> = metadata
        .map(|m| {
            m.iter()
                .map(|(k, v)| Ok((k.extract::<String>()?, v.extract::<String>()?)))
                .collect::<PyResult<_>>()
        })
        .transpose()
        .map_err(|_| PyTypeError::new_err("metadata must be a dict of str to str"))?;
    let frame = match (frame_size, redundancy, bits_per_weight) {
        (Some(n), None, None) => FrameRule::FrameSize(n),
        (None, Some(r), None) if r.is_finite() && r > 1.0 => FrameRule::Redundancy(r),
        (None, Some(r), None) => {
            return Err(ParameterError::new_err(format!(
                "redundancy={r}: the redundancy must be a number above 1 (N > d)"
            )))
        }
        (None, None, Some(b)) if b.is_finite() && b > 0.0 => FrameRule::BitsPerWeight(b),
        (None, None, Some(b)) => {
            return Err(ParameterError::new_err(format!(
                "bits_per_weight={b}: must be a positive number"
            )))
        }
        (None, None, None) => FrameRule::BitsPerWeight(4.0),
        _ => {
            return Err(ParameterError::new_err(
                "frame_size, redundancy and bits_per_weight are mutually exclusive",
            ))
        }
    };
    let orientation = match axis {
        "columns" => Orientation::Columns,
        "rows" => Orientation::Rows,
        a => {
            return Err(ParameterError::new_err(format!(
                "axis={a:?}: must be \"columns\" or \"rows\""
            )))
        }
    };
    let pcm = scheme == "pcm";
    let family = match frame_family {
        None if pcm => None,
        None | Some("harmonic") => Some(FrameFamily::Harmonic),
        Some("spectral-tetris") => Some(FrameFamily::SpectralTetris),
        Some("identity") if pcm => None,
        Some(f) => {
            return Err(ParameterError::new_err(format!(
                "frame_family={f:?}: must be \"harmonic\" or \"spectral-tetris\" (or \"identity\" with scheme=\"pcm\")"
            )))
        }
    };
    let method = if pcm {
        let mut p = PcmOptions {
            family,
            frame_size: frame_size.filter(|_| family.is_some()),
            ..PcmOptions::default()
        };
        if let FrameRule::BitsPerWeight(b) = frame {
            if bits_per_weight.is_some() {
                p.target = RateTarget::BitsPerWeight(b);
            }
        }
        Method::Pcm(p)
    } else {
        Method::SigmaDelta
    };
    let opts = PackOptions {
        method,
        allocation: Allocation::Model,
        frame,
        levels,
        scheme: match scheme {
            "first-order" | "pcm" => Scheme::FirstOrder,
            "second-order" => Scheme::SecondOrder,
            s => {
                return Err(ParameterError::new_err(format!(
                    "scheme={s:?}: must be \"pcm\", \"first-order\" or \"second-order\""
                )))
            }
        },
        family: family.unwrap_or(FrameFamily::Harmonic),
        reorder,
        delta: delta_choice(delta)?,
        orientation,
        bias,
        include: globs("include", include)?,
        exclude: globs("exclude", exclude)?,
        min_dim,
        zstd: zstd_level(zstd)?,
    };
    let (_temp, input, label) = if let Ok(dict) = tensors.cast::<PyDict>() {
        let temp = dict_to_safetensors(py, dict, &metadata.unwrap_or_default())?;
        let input = temp.0.clone();
        (Some(temp), input, PathBuf::from("<tensors>"))
    } else if let Ok(p) = tensors.extract::<PathBuf>() {
        if metadata.is_some() {
            return Err(ParameterError::new_err(
                "metadata= is for a dict of arrays: a checkpoint's own metadata is stored",
            ));
        }
        (None, p.clone(), p)
    } else {
        return Err(PyTypeError::new_err(
            "tensors must be a dict of numpy arrays or the path of a safetensors checkpoint",
        ));
    };
    let run = || -> sdq::Result<_> {
        sdq::bridge::refuse_output_over_input(&path, [input.as_path()])?;
        let ck = Checkpoint::open(&input)?;
        // The output may not replace the checkpoint (or a shard or the index) being read.
        sdq::bridge::refuse_output_over_input(&path, ck.files())?;
        sdq::bridge::pack::pack(&ck, &path, &opts, &mut NoProgress)
    };
    let summary = py.detach(run).map_err(|e| py_err(&label, e))?;
    let biases = summary
        .quantized
        .iter()
        .filter(|t| t.bias.is_some())
        .count();
    let doc = json!({
        "tensors": summary.plan.tensors.len(),
        "quantized": summary.quantized.len(),
        "biases_quantized": biases,
        "raw": summary.plan.tensors.len() - summary.quantized.len() - biases,
        "max_bound": summary.max_bound(),
        "max_error": summary.max_error(),
        "uncertified": summary.uncertified(),
        "uniform_delta": summary.uniform_delta,
        "unmatched_includes": summary.plan.unmatched_includes,
    });
    json_to_py(py, &doc)
}

/// The `sdq` Python module.
#[pymodule]
#[pyo3(name = "sdq")]
fn sdq_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(load_file, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(pack, m)?)?;
    m.add_class::<SafeOpen>()?;
    m.add_class::<SafeSlice>()?;
    m.add("SdqError", py.get_type::<SdqError>())?;
    m.add("FormatError", py.get_type::<FormatError>())?;
    m.add("ChecksumError", py.get_type::<ChecksumError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("NoSuchTensorError", py.get_type::<NoSuchTensorError>())?;
    m.add("ParameterError", py.get_type::<ParameterError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    Ok(())
}
