//! An image's filesystem as a tar stream (what `docker export` writes and
//! `docker import` reads): index it into a [`Tree`] (with each file's size
//! and the contents of the package databases, Python `RECORD` files and app
//! `package.json` files the unit closure reads, in the same single pass), and copy the kept entries
//! into a new tar with their headers (modes, owners, link targets) as they
//! were.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::app_tree::is_app_manifest;
use super::closure::{normalize, Node, Tree};
use super::lang::is_captured_metadata;
use super::packages::{is_database_file, CapturedFiles};

/// Largest single file whose contents the index captures (a package
/// database file, a `RECORD`); a larger one is refused, and named.
pub const MAX_CAPTURED_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Largest sum of captured contents; files beyond it are refused, and named.
pub const MAX_CAPTURED_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// An image's filesystem as the unit closure needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageIndex {
    /// Every entry and what it is.
    pub tree: Tree,
    /// The size of every regular file, by path.
    pub sizes: BTreeMap<String, u64>,
    /// Contents of the package databases, `*.dist-info/RECORD` files and
    /// app trees' own `package.json` files.
    pub captured: CapturedFiles,
    /// Every entry other than a folder whose mode has the setuid or setgid
    /// bit, with that mode (permission bits only).
    pub setid: BTreeMap<String, u32>,
    /// Every entry's owner and permission bits, by path.
    pub owners: BTreeMap<String, Owner>,
    /// The blake3 digest of every regular file's contents, when the index
    /// was asked for them ([`index_image_hashed`]): a base holds a file
    /// when it holds the same bytes at the same path.
    pub digests: BTreeMap<String, blake3::Hash>,
}

/// An entry's owner and permission bits, as its tar header gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    /// Numeric user id.
    pub uid: u64,
    /// Numeric group id.
    pub gid: u64,
    /// Permission bits (`0o7777` of the mode).
    pub mode: u32,
}

impl Owner {
    /// Whether a process of user `uid` (in no extra group but `gid`) may
    /// create files in this folder: owner, group or other write bit.
    pub fn writable_by(&self, uid: u64, gid: u64) -> bool {
        uid == 0
            || (self.uid == uid && self.mode & 0o200 != 0)
            || (self.gid == gid && self.mode & 0o020 != 0)
            || self.mode & 0o002 != 0
    }
}

/// System files the index captures too: the accounts a base offers (its
/// non-root user) and the release it is built from.
pub const SYSTEM_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/os-release",
    "/usr/lib/os-release",
];

/// The setuid and setgid bits of a mode.
pub const SETID_BITS: u32 = 0o6000;

/// A tar file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageFsError {
    /// Reading or writing the tar file failed.
    #[error("{path}")]
    Io {
        /// The tar file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ImageFsError + '_ {
    move |source| ImageFsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a filtered copy holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Entries written.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Bytes as a path's text, invalid UTF-8 as `\xHH` (as trace paths are, so
/// an image's odd names still match the evidence).
fn text(raw: &[u8]) -> String {
    let mut s = String::with_capacity(raw.len());
    crate::strace::render_into(raw, &mut s);
    s
}

/// The absolute, normal path of a tar entry name (`usr/bin/`, `./etc`).
fn entry_path(raw: &[u8]) -> String {
    normalize(&text(raw))
}

/// Index the tar file at `path`: every entry's path and what it is.
pub fn index_tar(path: &Path) -> Result<Tree, ImageFsError> {
    Ok(index_image(path)?.tree)
}

/// Index the tar file at `path` in one pass: every entry's path and what it
/// is, each regular file's size, and the contents of the files the unit
/// closure reads (bounded by [`MAX_CAPTURED_FILE_BYTES`] and
/// [`MAX_CAPTURED_TOTAL_BYTES`]; a file over either is listed in
/// `captured.too_large`, not read).
pub fn index_image(path: &Path) -> Result<ImageIndex, ImageFsError> {
    index_image_capped(path, MAX_CAPTURED_FILE_BYTES, MAX_CAPTURED_TOTAL_BYTES)
}

/// [`index_image`] with the digest of every regular file's contents (what
/// comparing an image with a base needs; it reads every byte once).
pub fn index_image_hashed(path: &Path) -> Result<ImageIndex, ImageFsError> {
    index_image_with(
        path,
        MAX_CAPTURED_FILE_BYTES,
        MAX_CAPTURED_TOTAL_BYTES,
        true,
    )
}

/// [`index_image`] with other caps (per file, total).
pub fn index_image_capped(
    path: &Path,
    max_file: u64,
    max_total: u64,
) -> Result<ImageIndex, ImageFsError> {
    index_image_with(path, max_file, max_total, false)
}

fn index_image_with(
    path: &Path,
    max_file: u64,
    max_total: u64,
    hash: bool,
) -> Result<ImageIndex, ImageFsError> {
    let file = File::open(path).map_err(io(path))?;
    index_stream_with(BufReader::new(file), path, max_file, max_total, hash)
}

/// [`index_image`] of a tar stream (a streamed `docker export`; `name` is
/// what errors call it).
pub fn index_stream(reader: impl Read, name: &Path) -> Result<ImageIndex, ImageFsError> {
    index_stream_with(
        BufReader::with_capacity(256 * 1024, reader),
        name,
        MAX_CAPTURED_FILE_BYTES,
        MAX_CAPTURED_TOTAL_BYTES,
        false,
    )
}

/// [`index_image_hashed`] of a tar stream (a streamed `docker export`;
/// `name` is what errors call it).
pub fn index_stream_hashed(reader: impl Read, name: &Path) -> Result<ImageIndex, ImageFsError> {
    index_stream_with(
        BufReader::with_capacity(256 * 1024, reader),
        name,
        MAX_CAPTURED_FILE_BYTES,
        MAX_CAPTURED_TOTAL_BYTES,
        true,
    )
}

fn index_stream_with(
    reader: impl Read,
    path: &Path,
    max_file: u64,
    max_total: u64,
    hash: bool,
) -> Result<ImageIndex, ImageFsError> {
    let err = io(path);
    let mut archive = tar::Archive::new(reader);
    let mut index = ImageIndex::default();
    let mut total = 0u64;
    for entry in archive.entries().map_err(&err)? {
        let mut entry = entry.map_err(&err)?;
        let name = entry_path(&entry.path_bytes());
        let link = text(&entry.link_name_bytes().unwrap_or_default());
        let node = match entry.header().entry_type() {
            EntryType::Directory => Node::Dir,
            EntryType::Symlink => Node::Symlink(link),
            // Hard link names are archive paths, not link text.
            EntryType::Link => Node::Hardlink(normalize(&link)),
            _ => Node::File,
        };
        // A setgid folder only passes its group on to new files; a file
        // with either bit runs with its owner's or group's rights.
        let mode = entry.header().mode().unwrap_or(0) & 0o7777;
        if node != Node::Dir && mode & SETID_BITS != 0 {
            index.setid.insert(name.clone(), mode);
        }
        let header = entry.header();
        index.owners.insert(
            name.clone(),
            Owner {
                uid: header.uid().unwrap_or(0),
                gid: header.gid().unwrap_or(0),
                mode,
            },
        );
        if node == Node::File {
            let size = entry.size();
            // A later entry of the same name replaces the earlier one.
            index.digests.remove(&name);
            index.sizes.insert(name.clone(), size);
            if is_database_file(&name)
                || is_captured_metadata(&name)
                || is_app_manifest(&name)
                || SYSTEM_FILES.contains(&name.as_str())
            {
                let cap = if size > max_file {
                    Some(max_file)
                } else if total + size > max_total {
                    Some(max_total)
                } else {
                    None
                };
                match cap {
                    Some(cap) => {
                        index.captured.too_large.insert(name.clone(), (size, cap));
                    }
                    None => {
                        let mut bytes = Vec::with_capacity(size as usize);
                        (&mut entry)
                            .take(size)
                            .read_to_end(&mut bytes)
                            .map_err(&err)?;
                        total += bytes.len() as u64;
                        if hash {
                            index.digests.insert(name.clone(), blake3::hash(&bytes));
                        }
                        index.captured.files.insert(name.clone(), bytes);
                    }
                }
            }
            if hash && !index.digests.contains_key(&name) {
                let mut h = blake3::Hasher::new();
                std::io::copy(&mut (&mut entry).take(size), &mut h).map_err(&err)?;
                index.digests.insert(name.clone(), h.finalize());
            }
        }
        index.tree.insert(name, node);
    }
    Ok(index)
}

/// Copy the entries of `src` whose path is in `keep` to a new tar at `dest`.
pub fn filter_tar(
    src: &Path,
    dest: &Path,
    keep: &BTreeSet<String>,
) -> Result<Copied, ImageFsError> {
    let file = File::open(src).map_err(io(src))?;
    filter_stream(BufReader::new(file), src, dest, keep)
}

/// [`filter_tar`] of a tar stream (`name` is what errors call it).
pub fn filter_stream(
    reader: impl Read,
    name: &Path,
    dest: &Path,
    keep: &BTreeSet<String>,
) -> Result<Copied, ImageFsError> {
    let (rerr, werr) = (io(name), io(dest));
    let mut archive = tar::Archive::new(BufReader::with_capacity(256 * 1024, reader));
    let file = SparseFile::new(File::create(dest).map_err(&werr)?);
    let mut out = tar::Builder::new(BufWriter::with_capacity(SPARSE_BLOCK, file));
    // Keep names and targets exactly as they are, links included.
    out.follow_symlinks(false);
    let mut copied = Copied::default();
    for entry in archive.entries().map_err(&rerr)? {
        let mut entry = entry.map_err(&rerr)?;
        let raw = entry.path().map_err(&rerr)?.into_owned();
        if !keep.contains(&entry_path(&entry.path_bytes())) {
            continue;
        }
        let mut header = entry.header().clone();
        match header.entry_type() {
            EntryType::Symlink | EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(&rerr)?
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                out.append_link(&mut header, &raw, &target).map_err(&werr)?;
            }
            _ => {
                copied.bytes += header.size().unwrap_or(0);
                out.append_data(&mut header, &raw, &mut entry)
                    .map_err(&werr)?;
            }
        }
        copied.entries += 1;
    }
    let w = out.into_inner().map_err(&werr)?;
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(SparseFile::finish)
        .map_err(&werr)?;
    Ok(copied)
}

/// The unit of holes a [`SparseFile`] makes.
const SPARSE_BLOCK: usize = 64 * 1024;

/// A file written with holes where whole writes are zeros: a sparse file in
/// the image (`truncate -s 100G`) costs the host's disk no more than its
/// data when the cut is copied (docs/architecture.md, "Minimal image").
struct SparseFile {
    file: File,
    /// Zeros not written yet (a hole to leave before the next data).
    hole: u64,
}

impl SparseFile {
    fn new(file: File) -> Self {
        SparseFile { file, hole: 0 }
    }

    /// Leave the trailing hole and give the file its full length.
    fn finish(mut self) -> std::io::Result<()> {
        use std::io::Seek;
        let end = self.file.stream_position()? + self.hole;
        self.file.set_len(end)
    }
}

impl std::io::Write for SparseFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::io::{Seek, SeekFrom};
        if buf.iter().all(|b| *b == 0) {
            self.hole += buf.len() as u64;
            return Ok(buf.len());
        }
        if self.hole > 0 {
            let hole = i64::try_from(self.hole).map_err(std::io::Error::other)?;
            self.file.seek(SeekFrom::Current(hole))?;
            self.hole = 0;
        }
        self.file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_of_a_sparse_file_is_sparse_on_the_host() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.tar");
        let mut b = tar::Builder::new(File::create(&src).unwrap());
        let big: u64 = 64 << 20;
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(big);
        // 64 MiB of zeros with one byte of data in the middle.
        let body = std::io::repeat(0)
            .take(big / 2)
            .chain(&b"x"[..])
            .chain(std::io::repeat(0).take(big / 2 - 1));
        b.append_data(&mut h, "app/big.bin", body).unwrap();
        b.finish().unwrap();
        drop(b);
        let dest = dir.path().join("cut.tar");
        let keep: BTreeSet<String> = ["/app/big.bin".to_owned()].into();
        let copied = filter_tar(&src, &dest, &keep).unwrap();
        assert_eq!(copied.bytes, big);
        let meta = std::fs::metadata(&dest).unwrap();
        assert!(meta.len() > big, "the full length: {}", meta.len());
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "holes, not zeros: {} bytes allocated",
            meta.blocks() * 512
        );
        // The same bytes as a plain copy: the cut reads back whole.
        let ix = index_image_hashed(&dest).unwrap();
        assert_eq!(ix.sizes["/app/big.bin"], big);
        let mut plain = vec![0u8; big as usize];
        plain[(big / 2) as usize] = b'x';
        let plain = blake3::hash(&plain);
        assert_eq!(ix.digests["/app/big.bin"], plain);
        // The control: the source, written by the tar crate, is not sparse.
        assert!(std::fs::metadata(&src).unwrap().blocks() * 512 >= big);
    }

    /// A small tar like `docker export` writes: folders, a file, a relative
    /// and an absolute symlink, a hard link.
    fn sample(dir: &Path) -> PathBuf {
        let path = dir.join("fs.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let dir_h = |name: &str, b: &mut tar::Builder<File>| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        };
        dir_h("usr/", &mut b);
        dir_h("usr/lib/", &mut b);
        let mut f = tar::Header::new_gnu();
        f.set_mode(0o644);
        f.set_size(5);
        b.append_data(&mut f, "usr/lib/libz.so.1.2.13", &b"hello"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "usr/lib/libz.so.1", "libz.so.1.2.13")
            .unwrap();
        b.append_link(&mut l, "lib", "usr/lib").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, "usr/lib/libz-hard", "usr/lib/libz.so.1.2.13")
            .unwrap();
        let mut f = tar::Header::new_gnu();
        f.set_mode(0o644);
        f.set_size(3);
        b.append_data(&mut f, "usr/lib/unused", &b"xyz"[..])
            .unwrap();
        b.finish().unwrap();
        path
    }

    #[test]
    fn index_then_filter_keeps_links_as_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = sample(dir.path());
        let tree = index_tar(&src).unwrap();
        assert_eq!(tree["/lib"], Node::Symlink("usr/lib".into()));
        assert_eq!(
            tree["/usr/lib/libz-hard"],
            Node::Hardlink("/usr/lib/libz.so.1.2.13".into())
        );
        assert_eq!(tree["/usr/lib"], Node::Dir);

        let closure = super::super::closure::Closure::of(&tree, ["/lib/libz.so.1"], []);
        let dest = dir.path().join("min.tar");
        let copied = filter_tar(&src, &dest, &closure.keep).unwrap();
        assert_eq!(copied.bytes, 5);
        let kept = index_tar(&dest).unwrap();
        assert_eq!(
            kept.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "/lib",
                "/usr",
                "/usr/lib",
                "/usr/lib/libz.so.1",
                "/usr/lib/libz.so.1.2.13"
            ]
        );
        assert_eq!(
            kept["/usr/lib/libz.so.1"],
            Node::Symlink("libz.so.1.2.13".into())
        );
        assert!(!kept.contains_key("/usr/lib/unused"));
    }

    #[test]
    fn setuid_and_setgid_entries_are_indexed_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (name, mode, ty) in [
            ("opt/su", 0o4755, EntryType::Regular),
            ("usr/bin/wall", 0o2755, EntryType::Regular),
            ("usr/bin/plain", 0o755, EntryType::Regular),
            ("var/mail/", 0o2775, EntryType::Directory),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(ty);
            h.set_mode(mode);
            h.set_size(0);
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let ix = index_image(&path).unwrap();
        assert_eq!(
            ix.setid,
            BTreeMap::from([
                ("/opt/su".to_owned(), 0o4755),
                ("/usr/bin/wall".to_owned(), 0o2755)
            ]),
            "a plain file and a setgid folder are not listed"
        );
    }

    #[test]
    fn a_missing_or_garbled_tar_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.tar");
        assert!(matches!(index_tar(&missing), Err(ImageFsError::Io { .. })));
        let garbled = dir.path().join("bad.tar");
        std::fs::write(&garbled, vec![0xffu8; 1024]).unwrap();
        assert!(index_tar(&garbled).is_err());
    }

    #[test]
    fn the_index_captures_database_contents_and_sizes_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        let mut add = |name: &[u8], body: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
            // A raw name: `append_data` would refuse the non-UTF-8 one.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, body).unwrap();
        };
        add(b"var/lib/dpkg/status", b"Package: a\n");
        add(b"var/lib/dpkg/info/a.list", b"/etc/caf\xe9\n");
        add(b"etc/caf\xe9", b"x");
        add(b"app/big.bin", &[0u8; 2048]);
        b.finish().unwrap();
        drop(b);
        let ix = index_image(&path).unwrap();
        assert_eq!(ix.captured.files["/var/lib/dpkg/status"], b"Package: a\n");
        assert!(ix.captured.files.contains_key("/var/lib/dpkg/info/a.list"));
        assert!(
            !ix.captured.files.contains_key("/app/big.bin"),
            "only databases"
        );
        assert_eq!(ix.sizes["/app/big.bin"], 2048);
        // The same rendering as trace paths: the list's name matches the tree's.
        assert_eq!(ix.tree["/etc/caf\\xe9"], Node::File);
        // And the filter finds it by that name.
        let dest = dir.path().join("min.tar");
        let keep: BTreeSet<String> = ["/etc/caf\\xe9".to_owned()].into();
        assert_eq!(filter_tar(&path, &dest, &keep).unwrap().entries, 1);

        // Over the cap: refused and named, not read.
        let ix = index_image_capped(&path, 10, 1024).unwrap();
        assert_eq!(ix.captured.too_large["/var/lib/dpkg/status"], (11, 10));
        assert!(!ix.captured.files.contains_key("/var/lib/dpkg/status"));
        assert!(ix.captured.files.contains_key("/var/lib/dpkg/info/a.list"));
        let ix = index_image_capped(&path, 1024, 12).unwrap();
        assert_eq!(ix.captured.files.len(), 1, "the total cap holds");
        assert_eq!(ix.captured.too_large.len(), 1);
    }
}
