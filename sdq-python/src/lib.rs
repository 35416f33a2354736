//! The native part (`sdq._native`) of the `sdq` Python package, whose `sdq/__init__.py`
//! re-exports every name: read .sdq files into numpy arrays (all at once or lazily, mirroring
//! `safetensors`' Python API), pack numpy dicts or safetensors checkpoints into .sdq files, and
//! inspect them (the content of `sdq info --json`).
//!
//! Arrays: quantized tensors (pcm, sigma-delta, and biases quantized with their weight) decode to
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
use sdq::bridge::pack::{
    calibrated_frame_for, Allocation, DeltaChoice, FrameRule, Method, NonFinite, PackOptions,
    TensorSetting,
};
use sdq::bridge::safetensors::{Checkpoint, SafetensorsWriter, TensorSpec};
use sdq::bridge::NoProgress;
use sdq::codes::stream::Coding;
use sdq::format::{Encoding, TensorInfo};
use sdq::frame::FrameFamily;
use sdq::quant::pcm::{PcmOptions, RateTarget, Rounding, StepPolicy, StepRule, StepType};
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
            || k.is(k.py().Ellipsis())
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

/// `tensor_types=`: None, a dict {glob: setting} or a list of (glob, setting) pairs, in the
/// order they are tried (the FIRST matching glob wins); a setting is "raw", "q4", "q6", "q8" or
/// a positive number of bits per weight.
fn tensor_settings(v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, TensorSetting)>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let bad = || {
        ParameterError::new_err(
            "tensor_types= must be a dict {glob: setting} or a list of (glob, setting) pairs (setting: \"raw\", \"q4\", \"q6\", \"q8\" or a number of bits per weight)",
        )
    };
    let pairs: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = if let Ok(d) = v.cast::<PyDict>() {
        d.iter().collect()
    } else if v.is_instance_of::<pyo3::types::PyList>()
        || v.is_instance_of::<pyo3::types::PyTuple>()
    {
        v.extract().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    pairs
        .into_iter()
        .map(|(g, s)| {
            let glob: String = g.extract().map_err(|_| bad())?;
            if glob.is_empty() {
                return Err(ParameterError::new_err(
                    "tensor_types=: a glob may not be empty",
                ));
            }
            let setting = if s.is_instance_of::<PyString>() {
                s.extract::<String>()?
            } else if s.is_instance_of::<pyo3::types::PyBool>() {
                return Err(bad());
            } else {
                s.extract::<f64>().map_err(|_| bad())?.to_string()
            };
            let setting = TensorSetting::parse(&setting)
                .map_err(|e| ParameterError::new_err(format!("tensor_types= {glob:?}: {e}")))?;
            Ok((glob, setting))
        })
        .collect()
}

/// Packs `tensors` (a dict of numpy arrays, or the path of a safetensors checkpoint — one file,
/// a sharded `*.safetensors.index.json`, or a directory holding one) into the .sdq file
/// `path`, as `sdq pack` does (the same defaults, and byte for byte the same file for the same
/// options), and returns a summary dict.
///
/// `scheme`: "pcm" (the default), "first-order" or "second-order" (sigma-delta, the paper's).
///
/// pcm: each vector is rounded (in its frame, if one is given) to one step per vector (or per
/// `group` coefficients), and the codes are entropy-coded. `bits_per_weight` (default 5.0) is
/// the STORED size (codes, steps, headers) of the quantized tensors, spread over the model so
/// that their errors are least (`same_bits=True`: every tensor gets it); or `max_error` E: the
/// fewest bits with relative error at most E in every tensor. `file_bits_per_weight` F caps
/// the whole file at F bits per float weight (raw tensors, records and header counted): the
/// quantized tensors' budget is lowered to fit when 3 bits or more fit, and where small
/// tensors' own bits alone would keep the file over, they give up their extra bits: every
/// quantized tensor then gets at most one ceiling, "small_ceiling" (default 5.0 when neither
/// `bits_per_weight` nor `max_error` is given, as `sdq pack`; the summary's "file_cap" says
/// what it did). `sign_seed` (0: no sign flips),
/// `group`, `step_rule` ("group" or "tensor"), `step_type` ("f16" or "f32"), `coding` ("rans"
/// or "fixed"), `step_policy` ("certified", the default, or "least-squares": with
/// coding="fixed", each group's step chosen for the least squared error with the codes clipped
/// to the width the budget allows, every tensor the same bits, vectors recording measured
/// errors, as `sdq pack --step-policy least-squares`), `frame_family` ("identity", the default:
/// no frame; "harmonic" or "spectral-tetris", then `frame_size` N may be given), `rounding`
/// ("zero-sum", the default without a frame: a few codes moved by one level so that each
/// convolution kernel window's and each vector's rounding errors sum to about zero;
/// "zero-sum-rows", each vector's only; or "nearest"; as `sdq pack --rounding`). Small
/// tensors, whose records and steps would dominate a shared budget, get bits per weight of their own,
/// the budget plus 3.5 (at least 6, or raw when 6 would not halve them), as with `sdq pack`.
/// `levels`, `code_bits`, `redundancy`, `reorder` and `delta` are refused with pcm.
///
/// Sigma-delta: one of `frame_size` N, `redundancy` r (N = ceil(r*d)) or `bits_per_weight` =
/// CODE bits (N = floor(B*d / ceil(log2 2K)), default 4); `levels` K (default 1) or `code_bits`
/// b (K = 2^(b-1)); second order needs K >= 2; `frame_family` "harmonic" (default) or
/// "spectral-tetris" (N >= 2d); `reorder`; `delta` ("coefficient" (default), "vector",
/// "tensor", "uniform" or a positive number).
///
/// Both: `axis` ("rows" (default) or "columns"), `bias`, `include` / `exclude` (a glob or a
/// list of globs), `tensor_types` (a dict {glob: "raw" | "q4" | "q6" | "q8" | bits}, first
/// match wins), `min_dim` (None: 9 with pcm, 16 with sigma-delta), `zstd` (True for level 9,
/// or a level 1..=22), `nonfinite` ("refuse" (default) or "raw": store a tensor holding a NaN
/// or infinity unquantized).
/// `metadata` (a dict of strings) is stored with a dict of arrays. pcm: `calibration`, the path
/// of a Gram file (`sdq.calibration.GramAccumulator.save`, docs/calibration.md), quantizes the
/// weights it covers with error feedback (`damping`, default 0.1), as `sdq pack --calibration`.
#[pyfunction]
#[pyo3(signature = (
    tensors, path, *, scheme = "pcm", bits_per_weight = None, max_error = None,
    file_bits_per_weight = None, sign_seed = 0,
    group = None, step_rule = "group", step_type = "f16", coding = "rans", same_bits = false,
    step_policy = "certified", rounding = None,
    frame_family = None, frame_size = None, redundancy = None, levels = None, code_bits = None,
    reorder = false, delta = None, axis = "rows", bias = false, include = None, exclude = None,
    tensor_types = None, min_dim = None, zstd = None, nonfinite = "refuse", metadata = None,
    calibration = None, damping = 0.1
))]
#[allow(clippy::too_many_arguments)]
fn pack<'py>(
    py: Python<'py>,
    tensors: &Bound<'py, PyAny>,
    path: PathBuf,
    scheme: &str,
    bits_per_weight: Option<f64>,
    max_error: Option<f64>,
    file_bits_per_weight: Option<f64>,
    sign_seed: u64,
    group: Option<usize>,
    step_rule: &str,
    step_type: &str,
    coding: &str,
    same_bits: bool,
    step_policy: &str,
    rounding: Option<&str>,
    frame_family: Option<&str>,
    frame_size: Option<usize>,
    redundancy: Option<f64>,
    levels: Option<u32>,
    code_bits: Option<u32>,
    reorder: bool,
    delta: Option<&Bound<'py, PyAny>>,
    axis: &str,
    bias: bool,
    include: Option<&Bound<'py, PyAny>>,
    exclude: Option<&Bound<'py, PyAny>>,
    tensor_types: Option<&Bound<'py, PyAny>>,
    min_dim: Option<usize>,
    zstd: Option<&Bound<'py, PyAny>>,
    nonfinite: &str,
    metadata: Option<&Bound<'py, PyDict>>,
    calibration: Option<PathBuf>,
    damping: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let perr = |m: String| Err(ParameterError::new_err(m));
    let metadata: Option<Vec<(String, String)>> = metadata
        .map(|m| {
            m.iter()
                .map(|(k, v)| Ok((k.extract::<String>()?, v.extract::<String>()?)))
                .collect::<PyResult<_>>()
        })
        .transpose()
        .map_err(|_| PyTypeError::new_err("metadata must be a dict of str to str"))?;
    let (pcm, scheme) = match scheme {
        "pcm" => (true, Scheme::FirstOrder),
        "first-order" => (false, Scheme::FirstOrder),
        "second-order" => (false, Scheme::SecondOrder),
        s => {
            return perr(format!(
                "scheme={s:?}: must be \"pcm\", \"first-order\" or \"second-order\""
            ))
        }
    };
    let orientation = match axis {
        "columns" => Orientation::Columns,
        "rows" => Orientation::Rows,
        a => return perr(format!("axis={a:?}: must be \"columns\" or \"rows\"")),
    };
    let family = match frame_family {
        Some("identity") if !pcm => {
            return perr(
                "frame_family=\"identity\" is for scheme=\"pcm\": sigma-delta needs a frame with N > d"
                    .into(),
            )
        }
        Some("identity") => None,
        Some("harmonic") => Some(FrameFamily::Harmonic),
        Some("spectral-tetris") => Some(FrameFamily::SpectralTetris),
        None if pcm => None,
        None => Some(FrameFamily::Harmonic),
        Some(f) => {
            return perr(format!(
                "frame_family={f:?}: must be \"identity\" (pcm only), \"harmonic\" or \"spectral-tetris\""
            ))
        }
    };
    if levels.is_some() && code_bits.is_some() {
        return perr("levels and code_bits are mutually exclusive".into());
    }
    if let Some(b) = code_bits {
        if !(1..=16).contains(&b) {
            return perr(format!("code_bits={b}: must be in 1..=16"));
        }
    }
    if max_error.is_some() && bits_per_weight.is_some() {
        return perr("bits_per_weight and max_error are mutually exclusive".into());
    }
    let delta = delta_choice(delta)?;
    let nonfinite = match nonfinite {
        "refuse" => NonFinite::Refuse,
        "raw" => NonFinite::Raw,
        n => return perr(format!("nonfinite={n:?}: must be \"refuse\" or \"raw\"")),
    };
    let method = if pcm {
        if code_bits.is_some() {
            return perr(
                "code_bits is for sigma-delta (pcm codes are entropy-coded: give bits_per_weight)"
                    .into(),
            );
        }
        if redundancy.is_some() {
            return perr(
                "redundancy is for sigma-delta; with pcm give frame_size N with a frame family"
                    .into(),
            );
        }
        if frame_size.is_some() && family.is_none() {
            return perr(
                "frame_size needs frame_family=\"harmonic\" or \"spectral-tetris\" with pcm (without a frame N = d)"
                    .into(),
            );
        }
        let target = match (max_error, bits_per_weight) {
            (Some(e), _) if !(e.is_finite() && e > 0.0) => {
                return perr(format!("max_error={e}: must be a positive number"))
            }
            (Some(e), _) => RateTarget::RelativeError(e),
            (None, Some(b)) if !(b.is_finite() && b > 0.0 && b <= 32.0) => {
                return perr(format!(
                    "bits_per_weight={b}: must be a number above 0 and at most 32 (fp32's own size)"
                ))
            }
            (None, Some(b)) => RateTarget::BitsPerWeight(b),
            (None, None) => PcmOptions::default().target,
        };
        if group == Some(0) {
            return perr("group must be at least 1".into());
        }
        if levels.is_some_and(|k| k != 1) || reorder || delta != DeltaChoice::Coefficient {
            return perr(
                "levels, reorder and delta are sigma-delta options: add scheme=\"first-order\" (or \"second-order\"), or drop them (pcm's codes have no fixed alphabet and its steps are set by bits_per_weight or max_error)"
                    .into(),
            );
        }
        Method::Pcm(PcmOptions {
            family,
            frame_size,
            sign_seed,
            group: group.unwrap_or(0),
            policy: match (step_policy, coding) {
                ("certified", _) => StepPolicy::Certified,
                ("least-squares", "fixed") => StepPolicy::LeastSquares,
                ("least-squares", _) => {
                    return perr(
                        "step_policy=\"least-squares\" needs coding=\"fixed\" (entropy-coded codes have no alphabet limit, so nothing is clipped)"
                            .into(),
                    )
                }
                (p, _) => {
                    return perr(format!(
                        "step_policy={p:?}: must be \"certified\" or \"least-squares\""
                    ))
                }
            },
            rule: match step_rule {
                "group" => StepRule::Group,
                "tensor" => StepRule::Tensor,
                r => return perr(format!("step_rule={r:?}: must be \"group\" or \"tensor\"")),
            },
            step_type: match step_type {
                "f16" => StepType::F16,
                "f32" => StepType::F32,
                t => return perr(format!("step_type={t:?}: must be \"f16\" or \"f32\"")),
            },
            coding: match coding {
                "rans" => Coding::Rans,
                "fixed" => Coding::Fixed,
                c => return perr(format!("coding={c:?}: must be \"rans\" or \"fixed\"")),
            },
            target,
            record_bytes: 0,
            window: 0,
            rounding: match rounding {
                None => Rounding::ZeroSum,
                Some("nearest") => Rounding::Nearest,
                Some(r @ ("zero-sum" | "zero-sum-rows")) if family.is_some() => {
                    return perr(format!(
                        "rounding={r:?} is for pcm without a frame (there a code is a weight): drop frame_family, or use rounding=\"nearest\""
                    ))
                }
                Some(r @ ("zero-sum" | "zero-sum-rows")) if step_policy == "least-squares" => {
                    return perr(format!(
                        "rounding={r:?} is for certified steps: least-squares steps clip, and their codes are chosen for the least squared error"
                    ))
                }
                Some("zero-sum") => Rounding::ZeroSum,
                Some("zero-sum-rows") => Rounding::ZeroSumRows,
                Some(r) => {
                    return perr(format!(
                        "rounding={r:?}: must be \"zero-sum\", \"zero-sum-rows\" or \"nearest\""
                    ))
                }
            },
        })
    } else {
        if rounding.is_some() {
            return perr(
                "rounding is for scheme=\"pcm\" (sigma-delta's codes follow its own feedback)"
                    .into(),
            );
        }
        if max_error.is_some() {
            return perr("max_error is for scheme=\"pcm\"".into());
        }
        Method::SigmaDelta
    };
    let given = [
        frame_size.is_some(),
        redundancy.is_some(),
        bits_per_weight.is_some(),
    ];
    if !pcm && given.iter().filter(|&&x| x).count() > 1 {
        return perr(
            "frame_size, redundancy and bits_per_weight are mutually exclusive with sigma-delta"
                .into(),
        );
    }
    let frame = match (frame_size, redundancy, bits_per_weight) {
        (Some(n), _, _) => FrameRule::FrameSize(n),
        (_, Some(r), _) => FrameRule::Redundancy(r),
        (_, _, Some(b)) => FrameRule::BitsPerWeight(b),
        _ => FrameRule::BitsPerWeight(4.0),
    };
    match frame {
        FrameRule::Redundancy(r) if !(r.is_finite() && r > 1.0) => {
            return perr(format!(
                "redundancy={r}: the redundancy must be a number above 1 (N > d)"
            ))
        }
        FrameRule::BitsPerWeight(b) if !(b.is_finite() && b > 0.0) => {
            return perr(format!("bits_per_weight={b}: must be a positive number"))
        }
        _ => {}
    }
    let opts = PackOptions {
        method,
        frame,
        levels: code_bits.map_or(levels.unwrap_or(1), |b| 1 << (b - 1)),
        scheme,
        family: family.unwrap_or(FrameFamily::Harmonic),
        reorder,
        delta,
        orientation,
        bias,
        include: globs("include", include)?,
        exclude: globs("exclude", exclude)?,
        min_dim,
        zstd: zstd_level(zstd)?,
        allocation: if same_bits {
            Allocation::PerTensor
        } else {
            Allocation::Model
        },
        tensor_types: tensor_settings(tensor_types)?,
        force_quantize: false,
        calibration,
        file_bits: sdq::bridge::budget::file_bits_for(
            file_bits_per_weight,
            pcm,
            bits_per_weight.is_some() || max_error.is_some(),
        ),
        // As the CLI: without frame_family, calibrated tensors take the harmonic frame.
        calibrated_frame: calibrated_frame_for(frame_family.is_some(), sign_seed),
        feedback: sdq::quant::pcm::FeedbackOptions {
            damping,
            ..Default::default()
        },
    };
    if !(damping.is_finite() && damping > 0.0) {
        return perr(format!("damping={damping}: must be a positive number"));
    }
    if let Some(f) = file_bits_per_weight {
        if !pcm {
            return perr("file_bits_per_weight is for scheme=\"pcm\"".into());
        }
        if max_error.is_some() {
            return perr("file_bits_per_weight needs a bit budget: drop max_error".into());
        }
        if !(f.is_finite() && f > 0.0) {
            return perr(format!(
                "file_bits_per_weight={f}: must be a positive number"
            ));
        }
    }
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
        sdq::bridge::pack::pack_nonfinite(&ck, &path, &opts, nonfinite, &mut NoProgress)
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
        "file_cap": summary.file_cap.map(|c| json!({
            "cap": c.cap,
            "requested": c.requested,
            "budget": c.budget,
            "fixed": c.fixed,
            "raw": c.raw,
            "own": c.own,
            "overhead": c.overhead,
            "estimated": c.estimated,
            "reached": c.reached,
            "small_ceiling": c.small_ceiling,
            "floor_estimate": c.floor_estimate,
        })),
        "unmatched_includes": summary.plan.unmatched_includes,
        "warnings": summary
            .plan
            .warnings
            .iter()
            .map(|w| w.to_string())
            // As the CLI: a cap asked for and missed is a warning (the default's is in "file_cap").
            .chain(
                summary
                    .file_cap
                    .and_then(|c| c.over_cap())
                    .filter(|_| file_bits_per_weight.is_some() && !summary.quantized.is_empty()),
            )
            .collect::<Vec<_>>(),
        "nonfinite_raw": summary.nonfinite_raw.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
    });
    json_to_py(py, &doc)
}

/// The native part of the `sdq` Python package, `sdq._native`: `sdq/__init__.py` re-exports
/// every name it defines.
#[pymodule]
#[pyo3(name = "_native")]
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
