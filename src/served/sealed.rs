//! The served State in a sealed memory file, so the listener can hand its
//! pages to the kernel (sendfile) instead of copying it into every socket.
//!
//! When a devnet restarts, every node checkpoint-syncs at once: hundreds of
//! downloads of the same State. Written from a buffer, each download costs a
//! copy of the whole State into the socket, and in the burst benchmark those
//! copies were most of a core. With sendfile from a file, the kernel attaches
//! the file's pages to the socket and copies nothing on our side.
//!
//! So a State about to be served is copied once into a memfd, sealed
//! against any change, and mapped read-only. The routes serve `Bytes` of
//! that mapping exactly as before (ranges are slices of it).
//! [`SealedBodies`] tells the listener's socket wrapper (`http::sendfile`)
//! which file and offset a buffer it is asked to write lives at.
//!
//! - Sealing (no write, shrink or grow, and no unsealing) is what makes the
//!   mapping sound: nothing, this process included, can change the bytes a
//!   mapping or an in-flight sendfile reads.
//! - Only the served State's file is registered. A download that started
//!   before the State changed keeps its mapping alive (its `Bytes` owns it)
//!   and is written the ordinary way. So sealing costs one fd, whatever the
//!   clients do.
//! - Where a memfd cannot be made (out of fds, a sandbox without
//!   memfd_create), the State is served from the heap as before and the
//!   reason is logged: slower under a burst, never wrong.

use std::io::{self, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags};

/// One body in a sealed memfd: the file (for sendfile) and where its
/// read-only mapping lies in our address space (for finding it again).
#[derive(Debug)]
pub struct SealedBody {
    fd: OwnedFd,
    /// Keeps the mapping, so its address range is not reused while this
    /// body is registered.
    mapped: Bytes,
}

impl SealedBody {
    /// Copies `data` into a new memfd, seals it and maps it.
    pub fn new(data: &[u8]) -> io::Result<SealedBody> {
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
        let mapped = if data.is_empty() {
            // mmap of length 0 fails; an empty body needs no pages.
            Bytes::new()
        } else {
            // SAFETY: memmap2's contract is that the file does not change
            // while mapped. The seals just added forbid any write, truncate
            // or growth of this memfd by anyone, for the life of the file,
            // and F_SEAL_SEAL forbids lifting them.
            let map = unsafe { memmap2::Mmap::map(&file)? };
            Bytes::from_owner(map)
        };
        Ok(SealedBody {
            fd: OwnedFd::from(file),
            mapped,
        })
    }

    /// The body, a view of the mapping (no copy).
    pub fn bytes(&self) -> Bytes {
        self.mapped.clone()
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where `buf` starts in the file, if it lies wholly inside the mapping.
    fn offset_of(&self, buf: &[u8]) -> Option<u64> {
        let start = self.mapped.as_ptr() as usize;
        let end = start + self.mapped.len();
        let (b, b_end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        (!buf.is_empty() && b >= start && b_end <= end).then(|| (b - start) as u64)
    }
}

/// Copies `bytes` into a sealed memfd and returns the mapped copy with its
/// file; on failure returns `bytes` itself and no file, and says why once.
pub fn seal(bytes: Bytes) -> (Bytes, Option<Arc<SealedBody>>) {
    match SealedBody::new(&bytes) {
        Ok(body) => (body.bytes(), Some(Arc::new(body))),
        Err(e) => {
            tracing::warn!(error = %e, bytes = bytes.len(), "could not put the State in a sealed memfd; serving it from the heap (each download copies it)");
            (bytes, None)
        }
    }
}

/// The sealed bodies the listener may send with sendfile: those of the
/// served pair. Shared by every `AppState` of the process (a reload keeps
/// the served State) and by the listener.
#[derive(Debug, Default)]
pub struct SealedBodies {
    current: RwLock<Option<Arc<SealedBody>>>,
}

impl SealedBodies {
    /// Registers the served State's file (or none), closing the previous
    /// one's fd once no write is using it.
    pub fn set(&self, body: Option<Arc<SealedBody>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = body;
    }

    /// The registered body `buf` lies in, and `buf`'s offset in its file.
    pub fn find(&self, buf: &[u8]) -> Option<(Arc<SealedBody>, u64)> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        let body = current.as_ref()?;
        let offset = body.offset_of(buf)?;
        Some((body.clone(), offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_reads_back_and_cannot_be_changed() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let body = SealedBody::new(&data).expect("memfd");
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

    #[test]
    fn only_slices_of_the_registered_body_are_found() {
        let bodies = SealedBodies::default();
        let data = vec![7u8; 10_000];
        let (bytes, body) = seal(Bytes::from(data.clone()));
        assert!(bodies.find(&bytes).is_none(), "nothing registered yet");
        bodies.set(body);
        let (_, at) = bodies.find(&bytes).expect("the whole body");
        assert_eq!(at, 0);
        let (_, at) = bodies.find(&bytes.slice(4096..9000)).expect("a range");
        assert_eq!(at, 4096);
        assert!(bodies.find(&bytes.slice(0..0)).is_none(), "empty");
        assert!(bodies.find(&data).is_none(), "equal bytes elsewhere");
        let (other, _) = seal(Bytes::from(data));
        assert!(bodies.find(&other).is_none(), "another sealed body");
        bodies.set(None);
        assert!(bodies.find(&bytes).is_none(), "unregistered");
        assert_eq!(bytes.len(), 10_000, "the mapping outlives its registration");
    }
}
