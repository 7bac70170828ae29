//! Why a repository's `Dockerfile` is not used: the probe only builds a
//! regular file inside the repository, and a hostile one (a symlink out of
//! the repository, a symlink loop, a folder) deserves a precise message
//! rather than "no Dockerfile".

use std::path::Path;

/// What is wrong with `<root>/Dockerfile`, or `None` when it is absent or usable.
pub fn problem(root: &Path) -> Option<String> {
    let path = root.join("Dockerfile");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let target = match std::fs::canonicalize(&path) {
        Ok(t) => t,
        Err(e) => return Some(format!("{} cannot be resolved: {e}", path.display())),
    };
    if !target.starts_with(&root) {
        return Some(format!(
            "{} is a symlink to {}, outside the repository; it is not used",
            path.display(),
            target.display()
        ));
    }
    if !target.is_file() {
        let what = if meta.is_dir() || target.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Some(format!("{} is {what}", path.display()));
    }
    if let Err(e) = std::fs::File::open(&target) {
        return Some(format!("{} cannot be read: {e}", path.display()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_is_named() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let repo = tempfile::tempdir().unwrap();
        let df = repo.path().join("Dockerfile");
        assert_eq!(problem(repo.path()), None);
        std::fs::write(&df, "FROM scratch\n").unwrap();
        assert_eq!(problem(repo.path()), None);
        std::fs::remove_file(&df).unwrap();
        std::os::unix::fs::symlink(outside.path().join("Dockerfile"), &df).unwrap();
        let p = problem(repo.path()).unwrap();
        assert!(p.contains("outside the repository"), "{p}");
        std::fs::remove_file(&df).unwrap();
        std::os::unix::fs::symlink("Dockerfile", &df).unwrap();
        let p = problem(repo.path()).unwrap();
        assert!(p.contains("cannot be resolved"), "{p}");
        std::fs::remove_file(&df).unwrap();
        std::fs::create_dir(&df).unwrap();
        assert!(problem(repo.path()).unwrap().ends_with("is a folder"));
    }
}
