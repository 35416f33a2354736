//! Arbitrary bytes → the pure header parser and `SdqFile::from_bytes`. Neither may panic, and
//! both must agree on whether the bytes are a valid file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdq::format::{header, SdqFile};

fuzz_target!(|data: &[u8]| {
    let parsed = header::parse(data);
    let opened = SdqFile::from_bytes(data.to_vec());
    assert_eq!(
        parsed.is_ok(),
        opened.is_ok(),
        "parse and from_bytes disagree"
    );
    if let Ok(f) = opened {
        // Listing and the storage report must work on anything that opens.
        let r = f.report();
        assert_eq!(r.total_bytes, data.len() as u64);
        for t in f.tensors() {
            let _ = f.tensor(&t.name).expect("listed tensor is found by name");
        }
        let _ = format!("{f:?}");
    }
    if let Err(e) = parsed {
        // Error messages are built from hostile bytes: they must format.
        let _ = e.to_string();
    }
});
