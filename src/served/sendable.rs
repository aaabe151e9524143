//! The served State in a file of its own, so the listener can hand its
//! pages to the kernel (sendfile) instead of copying it into every socket.
//!
//! When a devnet restarts, every node checkpoint-syncs at once: hundreds of
//! downloads of the same State. Written from a buffer, each download costs a
//! copy of the whole State into the socket, and in the burst benchmark those
//! copies were most of a core. With sendfile from a file, the kernel attaches
//! the file's pages to the socket and copies nothing on our side.
//!
//! So a State about to be served is copied once into a file that nobody can
//! change and mapped read-only. The routes serve `Bytes` of that mapping
//! exactly as before (ranges are slices of it), and [`SendableBodies`] tells
//! the listener's socket wrapper (`http::sendfile`) which file and offset a
//! buffer it is asked to write lives at. The file is, in order of preference:
//!
//! 1. An unnamed file (`O_TMPFILE | O_EXCL`) in the temporary directory
//!    (`$TMPDIR`, else `/tmp`) when that is a disk file system. Its page
//!    cache holds large folios, which the kernel sends with a fraction of the
//!    per-page work shared memory costs (the burst benchmark's server CPU:
//!    1.1x nginx's against 1.4x). It never has a name and, once written, is
//!    held only through a read-only descriptor: nothing can reach it but a
//!    process of the same user through `/proc/<pid>/fd`, which could as well
//!    write this process's memory. A State replaced within the kernel's
//!    writeback delay (30 s by default) is never written to the disk.
//! 2. A memfd sealed against writes, shrinking and growth (where the
//!    temporary directory is read-only, missing, or in memory anyway).
//!    The seals make it unchangeable by anyone.
//! 3. Neither (out of fds, say): the State is served from the heap as
//!    before and the reason is logged. Slower under a burst, never wrong.
//!
//! Only the served State's file is registered. A download that started
//! before the State changed keeps its mapping alive (its `Bytes` owns it)
//! and is written the ordinary way, so this costs one fd whatever the
//! clients do.

use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

/// File systems whose pages are shared memory: a file there is no better
/// than a memfd, and cannot be sealed.
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// What holds a sendable body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// An unnamed file in the temporary directory's disk file system.
    TmpFile,
    /// A sealed memfd.
    Memfd,
}

impl Backing {
    pub fn as_str(self) -> &'static str {
        match self {
            Backing::TmpFile => "tmpfile",
            Backing::Memfd => "memfd",
        }
    }
}

/// One body in a file nobody can change: the file (for sendfile) and where
/// its read-only mapping lies in our address space (for finding it again).
#[derive(Debug)]
pub struct SendableBody {
    fd: OwnedFd,
    /// Keeps the mapping, so its address range is not reused while this
    /// body is registered.
    mapped: Bytes,
    backing: Backing,
}

impl SendableBody {
    /// Copies `data` into a file in `tmp_dir` if that is a disk file system,
    /// else into a sealed memfd, and maps it.
    pub fn new(data: &[u8], tmp_dir: &Path) -> io::Result<SendableBody> {
        match tmp_file(data, tmp_dir) {
            Ok(Some(fd)) => Self::map(fd, data.len(), Backing::TmpFile),
            Ok(None) | Err(_) => Self::map(sealed_memfd(data)?, data.len(), Backing::Memfd),
        }
    }

    fn map(fd: OwnedFd, len: usize, backing: Backing) -> io::Result<SendableBody> {
        let mapped = if len == 0 {
            // mmap of length 0 fails; an empty body needs no pages.
            Bytes::new()
        } else {
            // SAFETY: memmap2's contract is that the file does not change
            // while mapped. A memfd is sealed against any write, truncate or
            // growth, by anyone, for the life of the file (F_SEAL_SEAL keeps
            // the seals on). A tmpfile has no name and is held only by this
            // read-only descriptor (see the module doc).
            let map = unsafe { memmap2::Mmap::map(&fd)? };
            if map.len() != len {
                return Err(io::Error::other(
                    "the file's length is not what was written",
                ));
            }
            Bytes::from_owner(map)
        };
        Ok(SendableBody {
            fd,
            mapped,
            backing,
        })
    }

    /// The body, a view of the mapping (no copy).
    pub fn bytes(&self) -> Bytes {
        self.mapped.clone()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// Where `buf` starts in the file, if it lies wholly inside the mapping.
    fn offset_of(&self, buf: &[u8]) -> Option<u64> {
        let start = self.mapped.as_ptr() as usize;
        let end = start + self.mapped.len();
        let (b, b_end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        (!buf.is_empty() && b >= start && b_end <= end).then(|| (b - start) as u64)
    }
}

/// `data` in an unnamed file of `dir`, held read-only; None where `dir` is
/// in memory anyway (a sealed memfd is as fast there, and unchangeable).
fn tmp_file(data: &[u8], dir: &Path) -> io::Result<Option<OwnedFd>> {
    let fd = open_tmpfile(dir)?;
    if in_memory(rustix::fs::fstatfs(&fd)?.f_type as u64) {
        return Ok(None);
    }
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    // A read-only descriptor of the same file; the writable one closes here.
    let own = format!("/proc/self/fd/{}", file.as_raw_fd());
    let read_only = rustix::fs::open(
        own.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Some(read_only))
}

/// A new unnamed file in `dir` that can never be given a name (O_EXCL).
fn open_tmpfile(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )?)
}

/// A statfs `f_type` of a file system whose pages are shared memory (the
/// magic numbers are 32 bits, whatever the field's width).
fn in_memory(f_type: u64) -> bool {
    let kind = f_type & 0xffff_ffff;
    kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
}

fn sealed_memfd(data: &[u8]) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "leanpoint-state",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(OwnedFd::from(file))
}

/// The sendable bodies the listener may send with sendfile: the served
/// State's. Shared by every `AppState` of the process (a reload keeps the
/// served State) and by the listener.
#[derive(Debug)]
pub struct SendableBodies {
    /// Where tmpfiles go: the temporary directory at start-up.
    tmp_dir: PathBuf,
    current: RwLock<Option<Arc<SendableBody>>>,
    /// The backing of the last body made, so a change is logged once.
    last_backing: std::sync::Mutex<Option<Backing>>,
}

impl SendableBodies {
    pub fn new(tmp_dir: PathBuf) -> SendableBodies {
        SendableBodies {
            tmp_dir,
            current: RwLock::new(None),
            last_backing: std::sync::Mutex::new(None),
        }
    }

    /// In the process's temporary directory (`$TMPDIR`, else `/tmp`).
    pub fn in_temp_dir() -> SendableBodies {
        SendableBodies::new(std::env::temp_dir())
    }

    /// Copies `bytes` into a sendable file and returns the mapped copy with
    /// its file; on failure returns `bytes` itself and no file, and says why.
    pub fn make(&self, bytes: Bytes) -> (Bytes, Option<Arc<SendableBody>>) {
        match SendableBody::new(&bytes, &self.tmp_dir) {
            Ok(body) => {
                let mut last = self.last_backing.lock().unwrap_or_else(|p| p.into_inner());
                if *last != Some(body.backing()) {
                    tracing::info!(backing = body.backing().as_str(), tmp_dir = %self.tmp_dir.display(), "the served State is sent with sendfile from a file of its own");
                    *last = Some(body.backing());
                }
                (body.bytes(), Some(Arc::new(body)))
            }
            Err(e) => {
                tracing::warn!(error = %e, bytes = bytes.len(), "could not put the State in a file of its own; serving it from the heap (each download copies it)");
                (bytes, None)
            }
        }
    }

    /// Registers the served State's file (or none), closing the previous
    /// one's fd once no write is using it.
    pub fn set(&self, body: Option<Arc<SendableBody>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = body;
    }

    /// The registered body `buf` lies in, and `buf`'s offset in its file.
    pub fn find(&self, buf: &[u8]) -> Option<(Arc<SendableBody>, u64)> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let body = current.as_ref()?;
        let offset = body.offset_of(buf)?;
        Some((body.clone(), offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 251) as u8).collect()
    }

    /// The checkout: on a disk file system wherever these tests have run,
    /// and an O_TMPFILE leaves no name in it. (Where it is in memory, the
    /// test below checks the memfd instead.)
    fn disk_dir() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_memfd_body_reads_back_and_cannot_be_changed() {
        let data = data();
        let body = SendableBody::map(
            sealed_memfd(&data).expect("memfd"),
            data.len(),
            Backing::Memfd,
        )
        .expect("map");
        assert_eq!(&body.bytes()[..], &data[..]);
        let seals = rustix::fs::fcntl_get_seals(body.fd()).expect("seals");
        assert!(seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW));
        let dup = body.fd.try_clone().expect("dup");
        let err = std::fs::File::from(dup)
            .write_all(b"x")
            .expect_err("a sealed memfd refuses writes");
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error())
        );
    }

    /// On a disk file system the body is an unnamed file held read-only;
    /// in memory (tmpfs) it is a sealed memfd.
    #[test]
    fn the_backing_follows_the_temporary_directorys_file_system() {
        let data = data();
        let dir = disk_dir();
        let kind = rustix::fs::statfs(&dir).expect("statfs").f_type as u64;
        let body = SendableBody::new(&data, &dir).expect("a body");
        assert_eq!(&body.bytes()[..], &data[..]);
        // A disk file system without O_TMPFILE (some overlay or network file
        // systems) gets the memfd too; that is the fallback, not a failure.
        let tmpfile_works = open_tmpfile(&dir).is_ok();
        if in_memory(kind) || !tmpfile_works {
            assert_eq!(
                body.backing(),
                Backing::Memfd,
                "no disk tmpfile here: a memfd"
            );
        } else {
            assert_eq!(body.backing(), Backing::TmpFile, "a disk file system");
            let flags = rustix::fs::fcntl_getfl(body.fd()).expect("getfl");
            assert_eq!(flags & OFlags::RWMODE, OFlags::RDONLY, "held read-only");
            // An O_TMPFILE has no name: its fd links to "#<inode> (deleted)".
            let link = std::fs::read_link(format!("/proc/self/fd/{}", body.fd().as_raw_fd()))
                .expect("fd link");
            assert!(
                link.to_string_lossy().ends_with("(deleted)"),
                "a nameless file: {link:?}"
            );
        }
        let missing = dir.join("no-such-directory");
        let body = SendableBody::new(&data, &missing).expect("a memfd instead");
        assert_eq!(body.backing(), Backing::Memfd);
    }

    #[test]
    fn only_slices_of_the_registered_body_are_found() {
        let bodies = SendableBodies::new(disk_dir());
        let data = vec![7u8; 10_000];
        let (bytes, body) = bodies.make(Bytes::from(data.clone()));
        assert!(bodies.find(&bytes).is_none(), "nothing registered yet");
        bodies.set(body);
        let (_, at) = bodies.find(&bytes).expect("the whole body");
        assert_eq!(at, 0);
        let (_, at) = bodies.find(&bytes.slice(4096..9000)).expect("a range");
        assert_eq!(at, 4096);
        assert!(bodies.find(&bytes.slice(0..0)).is_none(), "empty");
        assert!(bodies.find(&data).is_none(), "equal bytes elsewhere");
        let (other, _) = bodies.make(Bytes::from(data));
        assert!(bodies.find(&other).is_none(), "another sendable body");
        bodies.set(None);
        assert!(bodies.find(&bytes).is_none(), "unregistered");
        assert_eq!(bytes.len(), 10_000, "the mapping outlives its registration");
    }
}
