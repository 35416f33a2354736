//! Interoperability with Python's safetensors and numpy: runs tests/interop/check.py against
//! the built binary. Needs `python3` with `safetensors` and `numpy`
//! (`pip install -r tests/interop/requirements.txt`).

use std::process::Command;

#[test]
fn python_safetensors_interop() {
    let root = env!("CARGO_MANIFEST_DIR");
    let probe = Command::new("python3")
        .args(["-c", "import safetensors.numpy, numpy"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "Python's safetensors and numpy are not importable ({}): pip install -r tests/interop/requirements.txt",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => panic!(
            "python3 cannot be run ({e}): install Python 3, then pip install -r tests/interop/requirements.txt"
        ),
    }
    let out = Command::new("python3")
        .arg(format!("{root}/tests/interop/check.py"))
        .arg(env!("CARGO_BIN_EXE_sdq"))
        .output()
        .expect("run tests/interop/check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/interop/check.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
