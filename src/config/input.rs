//! Operator input files (the upstreams file): read only if regular, and
//! bounded, so a wrong path cannot hang or exhaust the process.
//!
//! `/dev/zero` would be read forever and a FIFO would block the open until
//! a writer came; both are refused before they are opened. The size cap is
//! far above any real upstreams file (1000 upstreams are ~150 KB).

use std::io::Read as _;
use std::path::Path;

/// Largest upstreams file read, bytes.
pub const MAX_CONFIG_FILE: u64 = 4 * 1024 * 1024;

/// The text of `path`, if it is a regular file (symlinks followed) of at
/// most `cap` bytes of UTF-8. The error says why, never what the file holds.
pub fn read_regular(path: &Path, cap: u64) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file (a device, FIFO, socket or directory)".to_string());
    }
    if meta.len() > cap {
        return Err(format!(
            "is {} bytes, over the {cap}-byte limit",
            meta.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    // The file may have been replaced between the check and the open, or
    // grow while read: the cap holds on what is actually read.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(format!("is over the {cap}-byte limit"));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_before_reading() {
        for p in ["/dev/zero", "/dev/null", "/"] {
            let e = read_regular(Path::new(p), MAX_CONFIG_FILE).expect_err(p);
            assert!(e.contains("not a regular file"), "{p}: {e}");
        }
    }

    #[test]
    fn the_cap_holds() {
        let p = std::env::temp_dir().join(format!("lp-input-{}", std::process::id()));
        std::fs::write(&p, vec![b'x'; 2000]).expect("write");
        assert!(read_regular(&p, 1000)
            .expect_err("cap")
            .contains("over the 1000-byte"));
        assert_eq!(read_regular(&p, 2000).expect("fits").len(), 2000);
        let _ = std::fs::remove_file(&p);
    }
}
