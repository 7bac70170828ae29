//! Fixture repositories for the benchmarks that drive the real engine: a
//! fixture folder copied into a temp dir, as the tests' `fixture_repo` does.

use std::path::Path;

/// Copy the folder `src` into `dest` (created), recursively; symlinks stay
/// symlinks, as a build context sends them.
pub fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dest.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), to).unwrap();
        } else if kind.is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}
