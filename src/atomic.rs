//! Crash-safe file replacement, shared by every writer of the crate (.sdq and safetensors):
//! write a temporary file beside the target, `sync_all`, rename it over the target, sync the
//! directory. A reader of the target sees the old file or the complete new one, never a part;
//! a mapped old file keeps its bytes (the rename gives the target a new inode). Temporary files
//! that a killed writer left behind are removed by the next successful writer of the same target.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file beside `target` (same directory, so a rename replaces the target
/// atomically), deleted on drop unless [`AtomicFile::commit`] renamed it over the target.
#[derive(Debug)]
pub struct AtomicFile {
    temp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates `.{name}.{pid}.{counter}.tmp` beside `target` and returns it opened for writing.
    pub fn create(target: impl AsRef<Path>) -> Result<(Self, File)> {
        let target = target.as_ref().to_owned();
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| Error::param(format!("{} is not a file path", target.display())))?
            .to_string_lossy()
            .into_owned();
        let temp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(&target, e))?;
        Ok((AtomicFile { temp, target }, file))
    }

    /// The path this file will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs `file` (the temporary file), renames it over the target and syncs the directory.
    pub fn commit(mut self, file: File) -> Result<()> {
        file.sync_all().map_err(|e| Error::io(&self.target, e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.temp = PathBuf::new();
        remove_stale_temps(&self.target);
        sync_dir(&self.target)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Removes the temporary files that writers of `target` killed before they could clean up
/// (SIGKILL, power loss) left beside it: `.{name}.{pid}.{counter}.tmp` whose `pid` is not a
/// running process. Called after a successful rename over `target`, so a crashed run's
/// leftovers disappear with the next successful one. Conservative: a temporary file of this
/// process or of any live process is kept (it may be another writer's, still in progress), and
/// where liveness cannot be checked (no `/proc`) nothing is removed. Errors are ignored: the
/// new file is already in place, and a leftover is only wasted space, never read.
fn remove_stale_temps(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(pid) = stale_temp_pid(&file.to_string_lossy(), &name) else {
            continue;
        };
        if pid != me && process_is_gone(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The writer's pid if `file` is named `.{name}.{pid}.{counter}.tmp`.
fn stale_temp_pid(file: &str, name: &str) -> Option<u32> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name)?
        .strip_prefix('.')?;
    let rest = rest.strip_suffix(".tmp")?;
    let (pid, counter) = rest.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(counter) {
        return None;
    }
    pid.parse().ok()
}

/// Whether no process `pid` exists (Linux `/proc`; elsewhere "unknown", i.e. false).
fn process_is_gone(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    proc_root.join("self").exists() && !proc_root.join(pid.to_string()).exists()
}

#[cfg(unix)]
fn sync_dir(target: &Path) -> Result<()> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> Result<()> {
    Ok(())
}
