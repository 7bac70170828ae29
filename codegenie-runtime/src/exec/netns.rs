//! Private network namespaces for the host backend: a child gets a fresh
//! namespace with only a loopback interface (brought up), so the app can
//! bind and connect to 127.0.0.1 but reach nothing else.

#[cfg(target_os = "linux")]
use nix::sched::{unshare, CloneFlags};

/// Runs in the forked child before `exec` (see `CommandExt::pre_exec`):
/// only async-signal-safe system calls, no allocation.
#[cfg(target_os = "linux")]
pub(crate) fn enter_private_network() -> std::io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
    loopback_up()
}

/// Network namespaces exist only on Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn enter_private_network() -> std::io::Result<()> {
    Err(unsupported())
}

#[cfg(not(target_os = "linux"))]
fn unsupported() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "network namespaces exist only on Linux",
    )
}

#[cfg(target_os = "linux")]
fn loopback_up() -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: plain syscalls on a zeroed, correctly sized `ifreq` and an fd we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags =
            (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
        let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Run `f` on a thread that has joined the network namespace of process `pid`
/// (`setns` changes only the calling thread), e.g. to reach the app's 127.0.0.1.
#[cfg(target_os = "linux")]
pub fn in_network_of<T: Send + 'static>(
    pid: i32,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&path)?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// Network namespaces exist only on Linux.
#[cfg(not(target_os = "linux"))]
pub fn in_network_of<T: Send + 'static>(
    _pid: i32,
    _f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    Err(unsupported())
}
