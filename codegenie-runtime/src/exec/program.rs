//! The allowlist: the only programs codegenie ever starts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::ExecError;

/// A program the exec layer may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// The Docker CLI, found on `PATH`.
    Docker,
    /// The Podman CLI, found on `PATH`.
    Podman,
    /// strace, found on `PATH`.
    Strace,
    /// The host's dynamic loader (the `PT_INTERP` of the running executable),
    /// used with `--list` to find a binary's shared-library closure.
    HostLoader,
}

impl Program {
    /// The name used in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Program::Docker => "docker",
            Program::Podman => "podman",
            Program::Strace => "strace",
            Program::HostLoader => "host dynamic loader",
        }
    }

    /// The absolute path that will be executed.
    pub fn resolve(&self) -> Result<PathBuf, ExecError> {
        match self {
            Program::Docker | Program::Podman | Program::Strace => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                find_on_path(self.name(), &path).ok_or_else(|| ExecError::NotFound {
                    program: self.name().to_owned(),
                })
            }
            Program::HostLoader => host_loader(),
        }
    }
}

/// The host's dynamic loader: the `PT_INTERP` of the running executable.
pub fn host_loader() -> Result<PathBuf, ExecError> {
    let unresolvable = |detail: String| ExecError::Unresolvable {
        program: Program::HostLoader.name().to_owned(),
        detail,
    };
    let exe = std::env::current_exe().map_err(|e| unresolvable(format!("/proc/self/exe: {e}")))?;
    crate::interp::interpreter_of_file(&exe)
        .filter(|i| i.starts_with('/'))
        .map(PathBuf::from)
        .ok_or_else(|| {
            unresolvable(format!(
                "{} names no dynamic loader (PT_INTERP)",
                exe.display()
            ))
        })
}

/// The first executable regular file named `name` in the `:`-separated `path`.
fn find_on_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_absolute_path_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("docker");
        std::fs::write(&exe, b"#!/bin/true\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([Path::new("relative"), dir.path()]).unwrap();
        assert_eq!(find_on_path("docker", &path), Some(exe.clone()));
        // A non-executable file is not a program.
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(find_on_path("docker", &path), None);
        // Relative PATH entries are ignored (they depend on the current directory).
        let rel = std::env::join_paths([Path::new("relative")]).unwrap();
        assert_eq!(find_on_path("docker", &rel), None);
    }
}
