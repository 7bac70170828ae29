//! What the kernel loads without a traced `open`: a script's `#!` interpreter
//! and an ELF binary's `PT_INTERP` loader. Pure functions over a file's first
//! bytes (docs/architecture.md, "Runtime trace").

/// How many leading bytes of a file are enough for [`interpreter_of`] in
/// practice (ELF program headers sit right after the 64-byte header).
pub(crate) const HEAD_BYTES: usize = 64 * 1024;

/// An executable's interpreter, and whether it is an ELF program's loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpreter {
    /// Its path, as the executable names it.
    pub(crate) path: String,
    /// A `PT_INTERP` loader: the kernel maps it as an ELF image and never
    /// reads an interpreter of its own (binfmt_elf), so a chain of
    /// interpreters ends there without looking.
    pub(crate) loader: bool,
}

/// The interpreter of an executable, from its leading bytes: the `#!` program
/// of a script, or the `PT_INTERP` path of a dynamically linked ELF. `None`
/// for static ELF files, unknown formats and truncated input.
pub(crate) fn interpreter_in(head: &[u8]) -> Option<Interpreter> {
    if head.starts_with(b"#!") {
        shebang_interpreter(head).map(|path| Interpreter {
            path,
            loader: false,
        })
    } else if head.starts_with(b"\x7fELF") {
        elf_pt_interp(head).map(|path| Interpreter { path, loader: true })
    } else {
        None
    }
}

/// The program named on a `#!` line (the first word; `#!/usr/bin/env node`
/// gives `/usr/bin/env`, which is what the kernel executes).
pub(crate) fn shebang_interpreter(head: &[u8]) -> Option<String> {
    let rest = head.strip_prefix(b"#!")?;
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let word: Vec<u8> = line
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b'\t')
        .take_while(|b| *b != b' ' && *b != b'\t')
        .collect();
    if word.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&word).into_owned())
}

const PT_INTERP: u32 = 3;

/// The `PT_INTERP` path of an ELF file (32 or 64 bit, either byte order).
pub(crate) fn elf_pt_interp(head: &[u8]) -> Option<String> {
    if head.len() < 0x34 || !head.starts_with(b"\x7fELF") {
        return None;
    }
    let class64 = match head[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match head[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let rd = Reader { bytes: head, le };
    let (phoff, phentsize, phnum) = if class64 {
        (rd.u64(0x20)?, rd.u16(0x36)? as u64, rd.u16(0x38)? as u64)
    } else {
        (
            rd.u32(0x1c)? as u64,
            rd.u16(0x2a)? as u64,
            rd.u16(0x2c)? as u64,
        )
    };
    if phentsize == 0 {
        return None;
    }
    for i in 0..phnum {
        let off = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if rd.u32(off)? != PT_INTERP {
            continue;
        }
        let (p_offset, p_filesz) = if class64 {
            (rd.u64(off + 8)?, rd.u64(off + 32)?)
        } else {
            (rd.u32(off + 4)? as u64, rd.u32(off + 16)? as u64)
        };
        let start = usize::try_from(p_offset).ok()?;
        let end = start.checked_add(usize::try_from(p_filesz).ok()?)?;
        let raw = head.get(start..end)?;
        let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
        if raw.is_empty() {
            return None;
        }
        return Some(String::from_utf8_lossy(raw).into_owned());
    }
    None
}

struct Reader<'a> {
    bytes: &'a [u8],
    le: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.take::<2>(at)?;
        Some(if self.le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.take::<4>(at)?;
        Some(if self.le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let b = self.take::<8>(at)?;
        Some(if self.le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
}

/// The interpreter of the file at `path` (see [`interpreter_in`]); `None`
/// when it has none or cannot be read.
pub(crate) fn interpreter_of_file(path: &std::path::Path) -> Option<String> {
    interpreter_in_file(path).map(|i| i.path)
}

/// [`interpreter_of_file`], with the kind of interpreter.
pub(crate) fn interpreter_in_file(path: &std::path::Path) -> Option<Interpreter> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    interpreter_in(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interpreter_of(head: &[u8]) -> Option<String> {
        interpreter_in(head).map(|i| i.path)
    }

    #[test]
    fn an_elf_s_interpreter_is_a_loader_and_a_script_s_is_not() {
        let elf = elf64(Some(b"/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(
            interpreter_in(&elf),
            Some(Interpreter {
                path: "/lib64/ld-linux-x86-64.so.2".into(),
                loader: true
            })
        );
        assert_eq!(
            interpreter_in(b"#!/bin/sh\n"),
            Some(Interpreter {
                path: "/bin/sh".into(),
                loader: false
            })
        );
    }

    /// A minimal little-endian ELF64 with one PT_LOAD and one PT_INTERP.
    fn elf64(interp: Option<&[u8]>) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1;
        let phoff = 64u64;
        let phnum: u16 = if interp.is_some() { 2 } else { 1 };
        f[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        let data_at = 64 + 56 * phnum as u64;
        let mut load = vec![0u8; 56];
        load[..4].copy_from_slice(&1u32.to_le_bytes());
        f.extend(load);
        if let Some(path) = interp {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&PT_INTERP.to_le_bytes());
            ph[8..16].copy_from_slice(&data_at.to_le_bytes());
            ph[32..40].copy_from_slice(&(path.len() as u64 + 1).to_le_bytes());
            f.extend(ph);
            f.extend_from_slice(path);
            f.push(0);
        }
        f
    }

    #[test]
    fn reads_pt_interp_of_a_dynamic_elf() {
        let f = elf64(Some(b"/lib64/ld-linux-x86-64.so.2"));
        assert_eq!(
            interpreter_of(&f).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
    }

    #[test]
    fn static_elf_has_no_interpreter() {
        assert_eq!(interpreter_of(&elf64(None)), None);
    }

    #[test]
    fn truncated_or_corrupt_elf_is_none_not_a_panic() {
        let f = elf64(Some(b"/lib/ld-musl-x86_64.so.1"));
        for n in 0..f.len() {
            let _ = interpreter_of(&f[..n]);
        }
        assert_eq!(interpreter_of(&f[..f.len() - 5]), None);
        let mut bad = f.clone();
        bad[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interpreter_of(&bad), None);
    }

    #[test]
    fn reads_the_running_executable() {
        // The test binary itself is a dynamically linked ELF on Linux.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter_of(&me[..HEAD_BYTES.min(me.len())]).unwrap();
        assert!(interp.contains("ld-"), "{interp}");
    }

    #[test]
    fn shebang_lines() {
        assert_eq!(
            interpreter_of(b"#!/bin/sh\necho hi\n").as_deref(),
            Some("/bin/sh")
        );
        assert_eq!(
            interpreter_of(b"#! /usr/bin/env node\n").as_deref(),
            Some("/usr/bin/env")
        );
        assert_eq!(
            interpreter_of(b"#!/bin/bash -e\r\n").as_deref(),
            Some("/bin/bash")
        );
        assert_eq!(interpreter_of(b"#!\n"), None);
        assert_eq!(interpreter_of(b"#!/bin/sh").as_deref(), Some("/bin/sh"));
        assert_eq!(interpreter_of(b"echo no shebang\n"), None);
    }
}
