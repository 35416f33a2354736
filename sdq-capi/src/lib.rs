//! The C ABI of the sdq decoder: open an .sdq file (from a path or a buffer), list and describe
//! its tensors, decode a tensor into a caller's `float` buffer, read the storage totals.
//!
//! Conventions, for every function:
//! - the return value is an [`SdqStatus`]; `SDQ_STATUS_OK` (0) is success;
//! - on failure, [`sdq_last_error`] gives a message (thread-local, UTF-8, NUL-terminated);
//! - every pointer is checked: NULL where a pointer is required gives
//!   `SDQ_STATUS_NULL_POINTER`; every buffer comes with its length, which is checked;
//! - no panic crosses the boundary: each entry point runs under `catch_unwind`, and a panic (a
//!   bug) comes back as `SDQ_STATUS_INTERNAL`;
//! - an `SdqFile` handle may be used from several threads at once (decoding is read-only), but
//!   [`sdq_close`] must not race with any other use of the same handle.
//!
//! The header `include/sdq.h` is generated from this file by cbindgen.

#![warn(missing_docs)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use sdq::format::{Encoding, TensorInfo};

/// Largest tensor rank an .sdq file can hold (spec/sdq-v1.md §9): a shape array of this many
/// entries always suffices.
pub const SDQ_MAX_RANK: usize = 8;

/// What a call returned. Every value other than `SDQ_STATUS_OK` comes with a message from
/// [`sdq_last_error`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdqStatus {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullPointer = 1,
    /// An argument is invalid on its own: a string that is not UTF-8 (where UTF-8 is needed), an
    /// index past the tensor count, ….
    InvalidArgument = 2,
    /// A buffer's length does not match what the call needs (a decode buffer whose length is not
    /// the tensor's element count, a shape array shorter than the rank).
    BufferLength = 3,
    /// No tensor of that name is in the file.
    NoSuchTensor = 4,
    /// An I/O failure (missing file, permission denied, …).
    Io = 5,
    /// The bytes are not a valid .sdq file (the message names the rule of the spec).
    Format = 6,
    /// A section's CRC32 does not match its bytes.
    Checksum = 7,
    /// A size is past one of the documented limits (or memory for it could not be allocated).
    Limit = 8,
    /// A bug in sdq (a caught panic) or an error this version does not classify.
    Internal = 9,
}

/// The element type a tensor had before it was stored (the file's dtype ids).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdqDtype {
    /// Boolean, one byte.
    Bool = 0,
    /// Unsigned 8-bit integer.
    U8 = 1,
    /// Signed 8-bit integer.
    I8 = 2,
    /// Unsigned 16-bit integer.
    U16 = 3,
    /// Signed 16-bit integer.
    I16 = 4,
    /// IEEE half precision.
    F16 = 5,
    /// bfloat16.
    Bf16 = 6,
    /// Unsigned 32-bit integer.
    U32 = 7,
    /// Signed 32-bit integer.
    I32 = 8,
    /// IEEE single precision.
    F32 = 9,
    /// Unsigned 64-bit integer.
    U64 = 10,
    /// Signed 64-bit integer.
    I64 = 11,
    /// IEEE double precision.
    F64 = 12,
    /// 8-bit float, 4 exponent bits, 3 mantissa bits.
    F8E4m3 = 13,
    /// 8-bit float, 5 exponent bits, 2 mantissa bits.
    F8E5m2 = 14,
}

/// How a tensor is stored.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdqEncoding {
    /// The original bytes (decoding converts them to float; integers are converted by value).
    Raw = 0,
    /// Frame-quantized: ΣΔ codes, rebuilt by one FFT per vector.
    SigmaDelta = 1,
    /// A bias quantized together with its weight (decoded from the weight's codes).
    BiasOf = 2,
    /// Rounded weights or frame coefficients with per-group steps and entropy-coded codes.
    Pcm = 3,
}

/// A description of one tensor, filled by [`sdq_tensor_info`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SdqTensorInfo {
    /// The name, UTF-8, NUL-terminated; owned by the file handle, valid until [`sdq_close`].
    /// A name may itself contain NUL bytes: `name_len` is its full length.
    pub name: *const c_char,
    /// The name's length in bytes, without the terminating NUL.
    pub name_len: usize,
    /// The original element type.
    pub dtype: SdqDtype,
    /// How the tensor is stored.
    pub encoding: SdqEncoding,
    /// Number of dimensions (0 for a scalar, at most [`SDQ_MAX_RANK`]).
    pub rank: usize,
    /// Number of elements (the product of the shape; 1 for a scalar): the length of the
    /// buffer [`sdq_decode`] needs.
    pub elements: u64,
}

/// Totals of the storage report of a file, filled by [`sdq_storage_report`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SdqStorageTotals {
    /// Number of tensors.
    pub tensors: usize,
    /// Number of tensors that are not stored raw (sigma-delta and bias-of).
    pub quantized_tensors: usize,
    /// The file's length in bytes.
    pub file_bytes: u64,
    /// Bytes that belong to no tensor (preamble, metadata, padding after the header).
    pub overhead_bytes: u64,
    /// Total number of elements.
    pub elements: u64,
    /// The same elements as fp32: elements × 4.
    pub fp32_bytes: u64,
    /// The same elements as fp16: elements × 2.
    pub fp16_bytes: u64,
    /// fp32 bytes / file bytes (how many times smaller than fp32).
    pub ratio_fp32: f64,
    /// fp16 bytes / file bytes.
    pub ratio_fp16: f64,
    /// File bytes × 8 / elements.
    pub bits_per_weight: f64,
}

/// An open, validated .sdq file (opaque). Create with [`sdq_open`], [`sdq_open_read`] or
/// [`sdq_open_buffer`]; release with [`sdq_close`].
pub struct SdqFile {
    file: sdq::SdqFile,
    /// Each tensor's name with a terminating NUL, in file order.
    names: Vec<Vec<u8>>,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `msg` as this thread's last error (interior NULs are replaced).
fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = c;
        }
    });
}

/// A failure: its status and message.
struct Fail(SdqStatus, String);

impl From<sdq::Error> for Fail {
    fn from(e: sdq::Error) -> Self {
        use sdq::Error as E;
        let status = match &e {
            E::Parameter(_) | E::Data(_) => SdqStatus::InvalidArgument,
            E::Limit { .. } => SdqStatus::Limit,
            E::Format(_) => SdqStatus::Format,
            E::NoSuchTensor(_) => SdqStatus::NoSuchTensor,
            E::Checksum { .. } => SdqStatus::Checksum,
            E::Io { .. } => SdqStatus::Io,
            _ => SdqStatus::Internal,
        };
        Fail(status, e.to_string())
    }
}

fn fail<T>(status: SdqStatus, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(status, msg.into()))
}

/// Runs `f` with panics caught; records the message of a failure.
fn guard(f: impl FnOnce() -> Result<(), Fail>) -> SdqStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SdqStatus::Ok,
        Ok(Err(Fail(status, msg))) => {
            set_error(&msg);
            status
        }
        Err(_) => {
            set_error("internal error: sdq panicked (a bug; please report it)");
            SdqStatus::Internal
        }
    }
}

/// Checks that `p` is not NULL, naming the argument otherwise.
fn non_null<T>(p: *const T, what: &str) -> Result<(), Fail> {
    if p.is_null() {
        fail(SdqStatus::NullPointer, format!("{what} is NULL"))
    } else {
        Ok(())
    }
}

/// The file behind a handle.
///
/// # Safety
/// `file` is NULL or a live handle from an `sdq_open*` function.
unsafe fn handle<'a>(file: *const SdqFile) -> Result<&'a SdqFile, Fail> {
    non_null(file, "file")?;
    // SAFETY: not NULL, and by the caller's contract a live handle.
    Ok(unsafe { &*file })
}

/// A NUL-terminated string argument, as UTF-8.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string.
unsafe fn utf8<'a>(s: *const c_char, what: &str) -> Result<&'a str, Fail> {
    non_null(s, what)?;
    // SAFETY: not NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str()
        .or_else(|_| fail(SdqStatus::InvalidArgument, format!("{what} is not UTF-8")))
}

/// A path argument (any bytes on Unix, UTF-8 elsewhere).
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string.
unsafe fn path_arg(s: *const c_char) -> Result<PathBuf, Fail> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        non_null(s, "path")?;
        // SAFETY: not NULL and NUL-terminated by the caller's contract.
        let c = unsafe { CStr::from_ptr(s) };
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        // SAFETY: forwarded contract.
        unsafe { utf8(s, "path") }.map(PathBuf::from)
    }
}

/// Wraps an opened file into a new handle written to `*out`.
///
/// # Safety
/// `out` is a valid pointer to writable storage for one pointer.
unsafe fn publish(file: sdq::SdqFile, out: *mut *mut SdqFile) {
    let names = file
        .tensors()
        .iter()
        .map(|t| {
            let mut n = Vec::with_capacity(t.name.len() + 1);
            n.extend_from_slice(t.name.as_bytes());
            n.push(0);
            n
        })
        .collect();
    let h = Box::into_raw(Box::new(SdqFile { file, names }));
    // SAFETY: by the caller's contract.
    unsafe { out.write(h) };
}

/// Opens the .sdq file at `path` (a NUL-terminated path) by memory-mapping it, validates its
/// preamble, header and layout, and writes a new handle to `*out` (NULL on failure).
///
/// A mapped file must not be truncated by another process while it is open (the process would
/// receive SIGBUS); use [`sdq_open_read`] where that cannot be ruled out.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn sdq_open(path: *const c_char, out: *mut *mut SdqFile) -> SdqStatus {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: `out` is not NULL and valid by the caller's contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        let path = unsafe { path_arg(path) }?;
        let file = sdq::SdqFile::open(&path)?;
        // SAFETY: checked above.
        unsafe { publish(file, out) };
        Ok(())
    })
}

/// Like [`sdq_open`], but with ordinary reads instead of a memory map: the header is read and
/// validated now, each tensor's sections when it is decoded.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn sdq_open_read(path: *const c_char, out: *mut *mut SdqFile) -> SdqStatus {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: `out` is not NULL and valid by the caller's contract.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded contract.
        let path = unsafe { path_arg(path) }?;
        let file = sdq::SdqFile::open_read(&path)?;
        // SAFETY: checked above.
        unsafe { publish(file, out) };
        Ok(())
    })
}

/// Validates the whole .sdq file held in `data[0..len]` and writes a new handle to `*out`.
/// The bytes are copied: the caller's buffer may be freed as soon as this returns.
///
/// # Safety
/// `data` is NULL or valid for reading `len` bytes; `out` is NULL or valid for writing one
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn sdq_open_buffer(
    data: *const u8,
    len: usize,
    out: *mut *mut SdqFile,
) -> SdqStatus {
    guard(|| {
        non_null(out, "out")?;
        // SAFETY: `out` is not NULL and valid by the caller's contract.
        unsafe { out.write(std::ptr::null_mut()) };
        non_null(data, "data")?;
        // SAFETY: not NULL and valid for `len` bytes by the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        let mut copy = Vec::new();
        if copy.try_reserve_exact(len).is_err() {
            return fail(
                SdqStatus::Limit,
                format!("cannot allocate {len} bytes for the file"),
            );
        }
        copy.extend_from_slice(bytes);
        let file = sdq::SdqFile::from_bytes(copy)?;
        // SAFETY: checked above.
        unsafe { publish(file, out) };
        Ok(())
    })
}

/// Releases a handle. NULL is accepted and does nothing. The handle, and every name pointer
/// obtained from it, must not be used afterwards.
///
/// # Safety
/// `file` is NULL or a live handle that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn sdq_close(file: *mut SdqFile) {
    if file.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a live handle from Box::into_raw, by the caller's contract.
        drop(unsafe { Box::from_raw(file) });
    }));
}

/// The message of the last call that failed on this thread (UTF-8, NUL-terminated; "" if none
/// has). The pointer is valid until the next failing call on the same thread. Never NULL.
#[no_mangle]
pub extern "C" fn sdq_last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    catch_unwind(|| {
        LAST_ERROR
            .try_with(|e| match e.try_borrow() {
                // The CString's heap buffer lives until the next set_error on this thread.
                Ok(e) => e.as_ptr(),
                Err(_) => EMPTY.as_ptr(),
            })
            .unwrap_or(EMPTY.as_ptr())
    })
    .unwrap_or(EMPTY.as_ptr())
}

/// The version of this library, e.g. "0.1.0" (NUL-terminated, static).
#[no_mangle]
pub extern "C" fn sdq_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"",
        };
    VERSION.as_ptr()
}

/// Writes the number of tensors in the file to `*count`.
///
/// # Safety
/// `file` is NULL or a live handle; `count` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn sdq_tensor_count(file: *const SdqFile, count: *mut usize) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        non_null(count, "count")?;
        // SAFETY: not NULL and valid by the caller's contract.
        unsafe { count.write(f.file.tensors().len()) };
        Ok(())
    })
}

/// Writes to `*index` the position of the tensor named `name` (NUL-terminated UTF-8).
///
/// # Safety
/// `file` is NULL or a live handle; `name` is NULL or NUL-terminated; `index` is NULL or valid
/// for writing.
#[no_mangle]
pub unsafe extern "C" fn sdq_find_tensor(
    file: *const SdqFile,
    name: *const c_char,
    index: *mut usize,
) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        // SAFETY: forwarded contract.
        let name = unsafe { utf8(name, "name") }?;
        non_null(index, "index")?;
        let i = f
            .file
            .tensors()
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| Fail::from(sdq::Error::NoSuchTensor(name.to_owned())))?;
        // SAFETY: not NULL and valid by the caller's contract.
        unsafe { index.write(i) };
        Ok(())
    })
}

fn tensor_at(f: &SdqFile, index: usize) -> Result<&TensorInfo, Fail> {
    let n = f.file.tensors().len();
    f.file.tensors().get(index).ok_or_else(|| {
        Fail(
            SdqStatus::InvalidArgument,
            format!("tensor index {index} is out of range: the file has {n} tensors"),
        )
    })
}

fn dtype(d: sdq::Dtype) -> Result<SdqDtype, Fail> {
    use sdq::Dtype as D;
    Ok(match d {
        D::Bool => SdqDtype::Bool,
        D::U8 => SdqDtype::U8,
        D::I8 => SdqDtype::I8,
        D::U16 => SdqDtype::U16,
        D::I16 => SdqDtype::I16,
        D::F16 => SdqDtype::F16,
        D::BF16 => SdqDtype::Bf16,
        D::U32 => SdqDtype::U32,
        D::I32 => SdqDtype::I32,
        D::F32 => SdqDtype::F32,
        D::U64 => SdqDtype::U64,
        D::I64 => SdqDtype::I64,
        D::F64 => SdqDtype::F64,
        D::F8E4M3 => SdqDtype::F8E4m3,
        D::F8E5M2 => SdqDtype::F8E5m2,
        other => {
            return fail(
                SdqStatus::Internal,
                format!("dtype {} has no C value in this version", other.name()),
            )
        }
    })
}

/// Describes tensor number `index` (0-based, file order) into `*info`, and, if `shape` is not
/// NULL, writes its dimensions (outermost first) to `shape[0..rank]`.
///
/// `shape_capacity` is the length of `shape`; if it is smaller than the rank, `*info` is still
/// filled (so the caller learns the rank), nothing is written to `shape`, and the call returns
/// `SDQ_STATUS_BUFFER_LENGTH`. An array of [`SDQ_MAX_RANK`] entries always suffices.
///
/// # Safety
/// `file` is NULL or a live handle; `info` is NULL or valid for writing; `shape` is NULL or
/// valid for writing `shape_capacity` values.
#[no_mangle]
pub unsafe extern "C" fn sdq_tensor_info(
    file: *const SdqFile,
    index: usize,
    info: *mut SdqTensorInfo,
    shape: *mut u64,
    shape_capacity: usize,
) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        non_null(info, "info")?;
        let t = tensor_at(f, index)?;
        let name = f
            .names
            .get(index)
            .map(Vec::as_ptr)
            .unwrap_or(c"".as_ptr().cast());
        let desc = SdqTensorInfo {
            name: name.cast(),
            name_len: t.name.len(),
            dtype: dtype(t.dtype)?,
            encoding: match t.encoding {
                Encoding::Raw { .. } => SdqEncoding::Raw,
                Encoding::SigmaDelta(_) => SdqEncoding::SigmaDelta,
                Encoding::BiasOf { .. } => SdqEncoding::BiasOf,
                Encoding::Pcm(_) => SdqEncoding::Pcm,
            },
            rank: t.shape.len(),
            elements: t.elements,
        };
        // SAFETY: not NULL and valid by the caller's contract.
        unsafe { info.write(desc) };
        if !shape.is_null() {
            if shape_capacity < t.shape.len() {
                return fail(
                    SdqStatus::BufferLength,
                    format!(
                        "tensor {:?} has rank {}, the shape array holds {shape_capacity}",
                        t.name,
                        t.shape.len()
                    ),
                );
            }
            // SAFETY: not NULL and valid for `shape_capacity` ≥ rank values.
            let out = unsafe { std::slice::from_raw_parts_mut(shape, t.shape.len()) };
            out.copy_from_slice(&t.shape);
        }
        Ok(())
    })
}

/// Decodes `t` into `out[0..out_len]`, which must be exactly its element count.
///
/// # Safety
/// `out` is NULL or valid for writing `out_len` floats.
unsafe fn decode(f: &SdqFile, t: &TensorInfo, out: *mut f32, out_len: usize) -> Result<(), Fail> {
    if out_len as u64 != t.elements {
        return fail(
            SdqStatus::BufferLength,
            format!(
                "tensor {:?} has {} elements, the buffer holds {out_len}",
                t.name, t.elements
            ),
        );
    }
    let out: &mut [f32] = if out_len == 0 {
        &mut []
    } else {
        non_null(out, "out")?;
        // SAFETY: not NULL and valid for `out_len` floats by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(out, out_len) }
    };
    f.file.decode_into(&t.name, out)?;
    Ok(())
}

/// Decodes the tensor named `name` (NUL-terminated UTF-8) into `out`, one float per element,
/// row-major. `out_len` must equal the tensor's element count (`SDQ_STATUS_BUFFER_LENGTH`
/// otherwise; `out` may be NULL only when it is 0). Sigma-delta tensors are rebuilt from their
/// codes; raw tensors are converted from their dtype. Every section's CRC32, every code and δ
/// is checked on the way.
///
/// # Safety
/// `file` is NULL or a live handle; `name` is NULL or NUL-terminated; `out` is NULL or valid for
/// writing `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn sdq_decode(
    file: *const SdqFile,
    name: *const c_char,
    out: *mut f32,
    out_len: usize,
) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        // SAFETY: forwarded contract.
        let name = unsafe { utf8(name, "name") }?;
        let t = f.file.tensor(name)?;
        // SAFETY: forwarded contract.
        unsafe { decode(f, t, out, out_len) }
    })
}

/// [`sdq_decode`] for tensor number `index` (0-based, file order); works for every name,
/// including one with NUL bytes.
///
/// # Safety
/// `file` is NULL or a live handle; `out` is NULL or valid for writing `out_len` floats.
#[no_mangle]
pub unsafe extern "C" fn sdq_decode_at(
    file: *const SdqFile,
    index: usize,
    out: *mut f32,
    out_len: usize,
) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        let t = tensor_at(f, index)?;
        // SAFETY: forwarded contract.
        unsafe { decode(f, t, out, out_len) }
    })
}

/// Copies the stored bytes of raw tensor number `index` (0-based, file order) into
/// `out[0..out_len]`, exactly as they were packed: little-endian values of its dtype, row-major.
/// `out_len` must be its element count × the dtype's size in bytes (`SDQ_STATUS_BUFFER_LENGTH`
/// otherwise); a tensor that is not raw gives `SDQ_STATUS_INVALID_ARGUMENT`. For integer
/// tensors whose values a float cannot hold exactly.
///
/// # Safety
/// `file` is NULL or a live handle; `out` is NULL or valid for writing `out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn sdq_read_raw_at(
    file: *const SdqFile,
    index: usize,
    out: *mut u8,
    out_len: usize,
) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        let t = tensor_at(f, index)?;
        if !matches!(t.encoding, Encoding::Raw { .. }) {
            return fail(
                SdqStatus::InvalidArgument,
                format!(
                    "tensor {:?} is stored as {}, not raw",
                    t.name,
                    t.encoding.name()
                ),
            );
        }
        let need = t.elements.saturating_mul(t.dtype.size());
        if out_len as u64 != need {
            return fail(
                SdqStatus::BufferLength,
                format!(
                    "tensor {:?} has {need} bytes, the buffer holds {out_len}",
                    t.name
                ),
            );
        }
        let bytes = f.file.raw_bytes(&t.name)?;
        if out_len > 0 {
            non_null(out, "out")?;
            // SAFETY: not NULL and valid for `out_len` bytes by the caller's contract.
            let dst = unsafe { std::slice::from_raw_parts_mut(out, out_len) };
            if bytes.len() != out_len {
                return fail(SdqStatus::Internal, "raw section length mismatch");
            }
            dst.copy_from_slice(&bytes);
        }
        Ok(())
    })
}

/// Checks everything opening did not: every section's CRC32 and decompressed length, and for
/// quantized tensors every δ, permutation and code. `SDQ_STATUS_OK` if the whole file is intact.
///
/// # Safety
/// `file` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sdq_verify(file: *const SdqFile) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        f.file.verify_all()?;
        Ok(())
    })
}

/// Writes the storage totals of the file (the last lines of `sdq info`) to `*totals`.
///
/// # Safety
/// `file` is NULL or a live handle; `totals` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn sdq_storage_report(
    file: *const SdqFile,
    totals: *mut SdqStorageTotals,
) -> SdqStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let f = unsafe { handle(file) }?;
        non_null(totals, "totals")?;
        let r = f.file.report();
        let t = SdqStorageTotals {
            tensors: r.tensors.len(),
            quantized_tensors: r.tensors.iter().filter(|t| t.encoding != "raw").count(),
            file_bytes: r.total_bytes,
            overhead_bytes: r.overhead_bytes,
            elements: r.total_elements,
            fp32_bytes: r.total_fp32_bytes,
            fp16_bytes: r.total_fp16_bytes,
            ratio_fp32: r.ratio_fp32(),
            ratio_fp16: r.ratio_fp16(),
            bits_per_weight: r.bits_per_weight(),
        };
        // SAFETY: not NULL and valid by the caller's contract.
        unsafe { totals.write(t) };
        Ok(())
    })
}
