//! Fixture repositories for the benchmarks that drive the real engine: a
//! fixture folder copied into a temp dir, as the tests' `fixture_repo` does.

use std::path::Path;

/// Copy the folder `src` into `dest` (created), recursively.
pub fn copy_tree(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dest.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}
