//! Reading a running container's files on this machine. Where the engine
//! is local, stores containers with an overlay driver and this user can
//! read its folders, a running container's root is a folder here (the
//! overlay's merged view). A file's head read there, with every link resolved by
//! the kernel inside that root, replace an archive request: for one the
//! engine tars the whole file through the storage driver while the app
//! runs (on fuse-overlayfs, through the FUSE daemon that also serves the
//! app's own reads), which slowed a Node service's startup by about a
//! tenth. Anywhere else the caller asks the engine.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use super::Engine;

/// A running container's root folder on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRoot(PathBuf);

impl Engine {
    /// `container`'s root on this machine, if the engine is local, its
    /// driver an overlay, and the folder readable here; valid while the
    /// container runs (the engine unmounts it at the stop, and reads then
    /// fail, so the caller asks the engine).
    pub fn container_root(&self, container: &str) -> Option<ContainerRoot> {
        if !self.is_local() {
            return None;
        }
        let (driver, folders) = self.api()?.graph_driver(container).ok()?;
        let merged = PathBuf::from(folders.get("MergedDir")?);
        (super::writable::is_overlay(&driver)
            && merged.is_absolute()
            && std::fs::read_dir(&merged).is_ok())
        .then_some(ContainerRoot(merged))
    }
}

impl ContainerRoot {
    /// A root at `dir` (for tests: any folder read as a container's root).
    pub fn at(dir: &Path) -> ContainerRoot {
        ContainerRoot(dir.to_owned())
    }

    /// The first `limit` bytes of the regular file `path` (absolute, as the
    /// container sees it): links, absolute ones included, are resolved
    /// inside the root and never leave it; magic links are refused; a
    /// FIFO, a device or a folder is an error, opened for reading never.
    pub fn read_head(&self, path: &str, limit: usize) -> io::Result<Vec<u8>> {
        // Not kept open between reads: an open folder would hold the
        // container's mount busy at its stop.
        let root = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
            .open(&self.0)?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(root.as_raw_fd(), path.trim_start_matches('/'), how)?;
        // SAFETY: `openat2` just returned this descriptor, and nothing else owns it.
        let found = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        if !found.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is not a regular file"),
            ));
        }
        // The file found, opened for reading through its descriptor: no
        // second resolution of the name.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(format!("/proc/self/fd/{}", found.as_raw_fd()))?;
        let mut head = Vec::with_capacity(limit.min(64 << 10));
        file.take(limit as u64).read_to_end(&mut head)?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_root_and_only_regular_files_are_read() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/dash"), b"\x7fELF dash").unwrap();
        std::os::unix::fs::symlink("dash", root.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("/bin/dash", root.join("bin/abs")).unwrap();
        // Outside the root, a file of the same name: an absolute link and
        // `..` must not reach it.
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("bin/dash"), b"host's own").unwrap();
        std::fs::write(d.path().join("secret"), b"host's own").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("bin/up")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let r = ContainerRoot::at(&root);
        assert_eq!(r.read_head("/bin/sh", 64).unwrap(), b"\x7fELF dash");
        assert_eq!(r.read_head("/bin/abs", 64).unwrap(), b"\x7fELF dash");
        assert_eq!(r.read_head("/bin/dash", 4).unwrap(), b"\x7fELF");
        // `..` stops at the root: /secret inside it does not exist.
        assert_eq!(
            r.read_head("/bin/up", 64).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            r.read_head("/../secret", 64).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // A FIFO is refused without being opened for reading (which would
        // block: no writer), and so is a folder.
        assert_eq!(
            r.read_head("/fifo", 64).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(r.read_head("/bin", 64).is_err());
        // The control: the same names read plainly leave the root.
        assert_eq!(
            std::fs::read(root.join("bin/up")).unwrap(),
            b"host's own",
            "a plain read follows the link out"
        );
    }
}
