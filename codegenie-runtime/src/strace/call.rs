//! A syscall line `name(arg, arg, ...) = ret` split into its parts, with
//! top-level argument splitting that respects strings, nesting, comments and
//! `-y` decorations (`3</path>`, `AT_FDCWD</dir>`).

/// A complete (joined) syscall line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Call<'a> {
    /// The syscall name.
    pub name: &'a [u8],
    /// Everything between the parentheses.
    pub args: &'a [u8],
    /// The return value.
    pub ret: Ret<'a>,
    /// Where the top-level arguments end, found by the same scan that found
    /// the closing parenthesis, so taking an argument does not scan again.
    commas: Commas,
}

/// Top-level commas most calls have (`mmap` has five); a call with more is
/// split again on demand.
const MAX_COMMAS: usize = 8;

/// Offsets of the top-level commas of an argument list.
#[derive(Debug, PartialEq, Eq, Default, Clone, Copy)]
struct Commas {
    at: [u32; MAX_COMMAS],
    len: u8,
    /// More than [`MAX_COMMAS`] (or an offset beyond `u32`): not recorded.
    overflow: bool,
}

impl Commas {
    fn push(&mut self, i: usize) {
        match u32::try_from(i) {
            Ok(i) if usize::from(self.len) < MAX_COMMAS => {
                self.at[usize::from(self.len)] = i;
                self.len += 1;
            }
            _ => self.overflow = true,
        }
    }
}

impl<'a> Call<'a> {
    /// The `n`-th top-level argument: what [`arg`]`(self.args, n)` gives.
    pub(crate) fn arg(&self, n: usize) -> Option<&'a [u8]> {
        let c = &self.commas;
        if c.overflow {
            return arg(self.args, n);
        }
        let count = usize::from(c.len);
        if n > count {
            return None;
        }
        let start = if n == 0 { 0 } else { c.at[n - 1] as usize + 1 };
        if n < count {
            return Some(trim(&self.args[start..c.at[n] as usize]));
        }
        // The last argument; an empty one means an empty list.
        let t = trim(&self.args[start..]);
        (!t.is_empty()).then_some(t)
    }
}

/// A syscall's return value.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Ret<'a> {
    /// The value; `None` for `?` or an unparseable value.
    pub value: Option<i64>,
    /// The `-y` decoration of a returned fd (`3</path>` gives `/path`, still escaped).
    pub decoration: Option<&'a [u8]>,
    /// The errno name of a failed call (`-1 ENOENT (...)` gives `ENOENT`).
    pub errno: Option<&'a [u8]>,
}

impl Ret<'_> {
    /// Success per the contract: a known, non-negative value.
    pub(crate) fn ok(&self) -> bool {
        self.value.is_some_and(|v| v >= 0)
    }
}

/// The syscall name at the start of `body`, when it looks like a call.
pub(crate) fn call_name(body: &[u8]) -> Option<&[u8]> {
    let n = body
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    (n > 0 && body.get(n) == Some(&b'(')).then(|| &body[..n])
}

/// Parses `name(args) = ret`. `None` when the shape is wrong.
/// `newfstatat(3</x>, "", ...)` and kin: a probe of an open fd (an `fstat`
/// in disguise), which names no path and shows no cwd. Most probe lines are
/// these, so they are recognised without scanning the whole line.
pub(crate) fn is_fd_probe(body: &[u8], name_len: usize) -> bool {
    let mut args = split_args(&body[name_len + 1..]);
    let numeric_fd = args
        .next()
        .is_some_and(|fd| fd.first().is_some_and(u8::is_ascii_digit));
    numeric_fd && args.next() == Some(&b"\"\""[..])
}

/// Calls whose first argument is a dirfd.
pub(crate) fn has_dirfd(name: &[u8]) -> bool {
    matches!(
        name,
        b"openat"
            | b"openat2"
            | b"execveat"
            | b"newfstatat"
            | b"fstatat64"
            | b"statx"
            | b"faccessat"
            | b"faccessat2"
            | b"readlinkat"
    )
}

/// Syscalls the facts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    Open,
    Exec,
    Clone,
    Mmap,
    /// Existence probes: the `stat`, `access` and `readlink` families.
    Probe,
    Connect,
    Bind,
    /// `chdir`, `fchdir`: the cwd changes.
    Chdir,
}

impl Wanted {
    pub(crate) fn of(name: &[u8]) -> Option<Wanted> {
        Some(match name {
            b"open" | b"openat" | b"openat2" => Wanted::Open,
            b"execve" | b"execveat" => Wanted::Exec,
            b"clone" | b"clone3" | b"fork" | b"vfork" => Wanted::Clone,
            b"mmap" | b"mmap2" => Wanted::Mmap,
            // `stat64`, `lstat64`, `fstatat64`: the same calls on 32-bit ABIs.
            b"stat" | b"lstat" | b"newfstatat" | b"statx" | b"access" | b"faccessat"
            | b"faccessat2" | b"readlink" | b"readlinkat" | b"stat64" | b"lstat64"
            | b"fstatat64" => Wanted::Probe,
            b"connect" => Wanted::Connect,
            b"bind" => Wanted::Bind,
            b"chdir" | b"fchdir" => Wanted::Chdir,
            _ => return None,
        })
    }
}

#[cfg(test)]
pub(crate) fn parse_call(body: &[u8]) -> Option<Call<'_>> {
    parse_call_named(body, call_name(body)?.len())
}

/// [`parse_call`] of a body whose name, as [`call_name`] found it, is its
/// first `name_len` bytes.
pub(crate) fn parse_call_named(body: &[u8], name_len: usize) -> Option<Call<'_>> {
    let name = body.get(..name_len)?;
    let open = name_len + 1;
    let mut commas = Commas::default();
    let close = open + scan(&body[open..], Stop::CloseParen, Some(&mut commas))?;
    let args = &body[open..close];
    let after = skip_spaces(&body[close + 1..]);
    let after = skip_spaces(after.strip_prefix(b"=")?);
    Some(Call {
        name,
        args,
        ret: parse_value(after),
        commas,
    })
}

/// Top-level arguments of a call (or fields of a `{...}` struct body).
pub(crate) fn split_args(args: &[u8]) -> SplitArgs<'_> {
    SplitArgs { rest: Some(args) }
}

/// Iterator over top-level comma-separated items.
pub(crate) struct SplitArgs<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for SplitArgs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match scan_to(rest, Stop::Comma) {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(trim(&rest[..i]))
            }
            None => {
                self.rest = None;
                let t = trim(rest);
                (!t.is_empty()).then_some(t)
            }
        }
    }
}

/// The `n`-th top-level argument.
pub(crate) fn arg(args: &[u8], n: usize) -> Option<&[u8]> {
    split_args(args).nth(n)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The `)` closing the argument list.
    CloseParen,
    /// A top-level `,`.
    Comma,
}

/// Index of the first top-level stop byte, skipping strings, nested
/// brackets, comments and decorations.
fn scan_to(s: &[u8], stop: Stop) -> Option<usize> {
    scan(s, stop, None)
}

/// [`scan_to`], noting the top-level commas on the way to a
/// [`Stop::CloseParen`] in `commas`. A comma found by this scan is exactly
/// where a [`Stop::Comma`] scan from the previous one stops: both start at
/// depth 0 after a byte that opens no decoration.
fn scan(s: &[u8], stop: Stop, mut commas: Option<&mut Commas>) -> Option<usize> {
    let mut depth: u32 = 0;
    let mut i = 0;
    while i < s.len() {
        // Most bytes outside strings and decorations (flag names, numbers)
        // mean nothing here: step over them with one lookup each.
        if !SCAN_STOP[usize::from(s[i])] {
            i += 1;
            continue;
        }
        let b = s[i];
        match b {
            b'"' => {
                // Jump between quotes and backslashes: paths are the long part.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', s.get(i..).unwrap_or_default()) {
                        Some(off) if s[i + off] == b'\\' => i += off + 2,
                        Some(off) => {
                            i += off;
                            break;
                        }
                        None => return None,
                    }
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' if depth == 0 => {
                if stop == Stop::CloseParen {
                    return Some(i);
                }
                // An unbalanced `)` inside a comma scan ends the list.
                return None;
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => match (stop, commas.as_deref_mut()) {
                (Stop::Comma, _) => return Some(i),
                (Stop::CloseParen, Some(c)) => c.push(i),
                (Stop::CloseParen, None) => {}
            },
            b'/' if s.get(i + 1) == Some(&b'*') => {
                i = match memchr::memmem::find(&s[i + 2..], b"*/") {
                    Some(off) => i + 2 + off + 1,
                    None => return None,
                };
            }
            // `3</p>` and `AT_FDCWD</p>` are decorations; `1<<3` is not.
            b'<' if i > 0
                && (s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_')
                && s.get(i + 1) != Some(&b'<') =>
            {
                i += 1 + decoration_len(&s[i + 1..])?;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The bytes [`scan`] looks at; every other byte is passed over.
static SCAN_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let stops = b"\"()[]{},/<";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
};

/// Length of a decoration's content (after `<`), up to its closing `>`.
/// Paths have `<`/`>` escaped by strace; `-yy` socket details contain `->`
/// inside `[...]`, which does not close the decoration.
fn decoration_len(s: &[u8]) -> Option<usize> {
    let mut brackets = 0u32;
    // Jump between the three bytes that matter: decorations are mostly paths.
    for i in memchr::memchr3_iter(b'[', b']', b'>', s) {
        match s[i] {
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            _ if !(brackets > 0 && i > 0 && s[i - 1] == b'-') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Parses a value like `-1 ENOENT (...)`, `3</path>`, `0x7f00`, `AT_FDCWD</dir>`, `?`.
pub(crate) fn parse_value(s: &[u8]) -> Ret<'_> {
    let (neg, digits_start) = match s.first() {
        Some(b'-') => (true, 1),
        _ => (false, 0),
    };
    let body = &s[digits_start..];
    let (value, len) = if let Some(hex) = body.strip_prefix(b"0x") {
        let n = hex.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let v = digits_value(&hex[..n], 16).map(|v| v as i64 & i64::MAX);
        (v, 2 + n)
    } else {
        let n = body.iter().take_while(|b| b.is_ascii_digit()).count();
        let v = digits_value(&body[..n], 10).and_then(|v| i64::try_from(v).ok());
        (v, n)
    };
    let value = value.map(|v| if neg { -v } else { v });
    let mut after = &s[digits_start + len..];
    if value.is_none() {
        // A named value such as `AT_FDCWD</app>`.
        let n = after
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        after = &after[n..];
    }
    let decoration = decoration_at(after);
    let errno = (value.is_some_and(|v| v < 0))
        .then(|| {
            let rest = after.trim_ascii_start();
            let n = rest
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                .count();
            (n > 0).then(|| &rest[..n])
        })
        .flatten();
    Ret {
        value,
        decoration,
        errno,
    }
}

/// The value of a non-empty run of digits in `radix` (10 or 16); `None`
/// when empty or beyond `u64`. Every line has a return value: parsed here
/// without the UTF-8 check and generic parsing of `str::parse`.
fn digits_value(d: &[u8], radix: u64) -> Option<u64> {
    if d.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in d {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        if u64::from(digit) >= radix {
            return None;
        }
        v = v.checked_mul(radix)?.checked_add(u64::from(digit))?;
    }
    Some(v)
}

/// The decoration content of `<...>` at the start of `s`, if any.
pub(crate) fn decoration_at(s: &[u8]) -> Option<&[u8]> {
    let inner = s.strip_prefix(b"<")?;
    decoration_len(inner).map(|n| &inner[..n])
}

/// A `name=value` field of a struct-like argument (`{flags=O_RDONLY, ...}`).
pub(crate) fn field<'a>(item: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let inner = item.strip_prefix(b"{")?;
    let inner = inner.strip_suffix(b"}").unwrap_or(inner);
    split_args(inner).find_map(|f| f.strip_prefix(name).and_then(|r| r.strip_prefix(b"=")))
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

fn trim(s: &[u8]) -> &[u8] {
    // Mostly there is nothing to trim.
    if let (Some(first), Some(last)) = (s.first(), s.last()) {
        if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() {
            return s;
        }
    }
    let start = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let s = &s[start..];
    let end = s.len()
        - s.iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(body: &str) -> Vec<String> {
        let c = parse_call(body.as_bytes()).unwrap();
        split_args(c.args)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn arguments_split_at_top_level_only() {
        assert_eq!(
            args(r#"openat(AT_FDCWD</tmp/a,b>, "x,\"y)", O_RDONLY|O_CLOEXEC) = 3</tmp/x>"#),
            ["AT_FDCWD</tmp/a,b>", r#""x,\"y)""#, "O_RDONLY|O_CLOEXEC"]
        );
        assert_eq!(
            args(r#"execve("/bin/sh", ["sh", "-c", "a, b"], 0x7ff /* 39 vars, ) */) = 0"#),
            [
                r#""/bin/sh""#,
                r#"["sh", "-c", "a, b"]"#,
                "0x7ff /* 39 vars, ) */"
            ]
        );
        assert_eq!(
            args("connect(3<TCP:[127.0.0.1:4->127.0.0.1:80]>, {sa_family=AF_INET, sin_port=htons(80)}, 16) = 0"),
            [
                "3<TCP:[127.0.0.1:4->127.0.0.1:80]>",
                "{sa_family=AF_INET, sin_port=htons(80)}",
                "16"
            ]
        );
        assert_eq!(args("getpid() = 5"), Vec::<String>::new());
    }

    #[test]
    fn arguments_from_the_call_scan_match_a_fresh_split() {
        let lines = [
            r#"openat(AT_FDCWD</tmp/a,b>, "x,\"y)", O_RDONLY|O_CLOEXEC) = 3</tmp/x>"#,
            r#"execve("/bin/sh", ["sh", "-c", "a, b"], 0x7ff /* 39 vars, ) */) = 0"#,
            "mmap(NULL, 8192, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3</l,ib.so>, 0) = 0x7f",
            "getpid() = 5",
            "f( ) = 0",
            "f(a, ) = 0",
            "f(, b) = 0",
            "f(a,,b) = 0",
            "f(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11) = 0",
            "f(1, 2, 3, 4, 5, 6, 7, 8, 9) = 0",
            "f(x<y,z>, {a=1, b=[2, 3]}, z) = 0",
        ];
        for l in lines {
            let c = parse_call(l.as_bytes()).unwrap();
            for n in 0..14 {
                assert_eq!(c.arg(n), arg(c.args, n), "{l} argument {n}");
            }
        }
    }

    #[test]
    fn return_values_and_decorations() {
        let r = |s: &str| {
            let v = parse_value(s.as_bytes());
            (
                v.value,
                v.decoration
                    .map(|d| String::from_utf8_lossy(d).into_owned()),
            )
        };
        assert_eq!(
            r("3</usr/lib/libc.so.6>"),
            (Some(3), Some("/usr/lib/libc.so.6".into()))
        );
        assert_eq!(r("-1 ENOENT (No such file or directory)"), (Some(-1), None));
        assert_eq!(r("0x7fc9974f1000"), (Some(0x7fc9974f1000), None));
        assert_eq!(r("?"), (None, None));
        assert_eq!(r("0 <0.000012>"), (Some(0), None));
        assert_eq!(r("AT_FDCWD</app>"), (None, Some("/app".into())));
    }

    #[test]
    fn digits_parse_like_the_standard_library() {
        for d in [
            "",
            "0",
            "7",
            "42",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "000000000000000000000012",
        ] {
            let std = d.parse::<i64>().ok();
            let ours = digits_value(d.as_bytes(), 10).and_then(|v| i64::try_from(v).ok());
            assert_eq!(ours, std, "{d}");
        }
        for h in [
            "",
            "0",
            "7f",
            "DEADbeef",
            "ffffffffffffffff",
            "10000000000000000",
            "000000000000000000ff",
        ] {
            assert_eq!(
                digits_value(h.as_bytes(), 16),
                u64::from_str_radix(h, 16).ok(),
                "{h}"
            );
        }
    }

    #[test]
    fn malformed_calls_are_rejected() {
        for l in ["openat(", "openat(\"x) = 3", "no call", "x(a) 3", "(a) = 1"] {
            assert!(parse_call(l.as_bytes()).is_none(), "{l}");
        }
    }

    #[test]
    fn struct_fields() {
        assert_eq!(
            field(b"{flags=O_RDONLY|O_CLOEXEC, resolve=0, mode=0}", b"flags"),
            Some(&b"O_RDONLY|O_CLOEXEC"[..])
        );
        assert_eq!(field(b"{flags=0}", b"mode"), None);
    }
}
