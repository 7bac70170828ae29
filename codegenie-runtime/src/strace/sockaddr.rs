//! Socket addresses as strace prints them:
//! `{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}`,
//! `{sa_family=AF_INET6, sin6_port=htons(80), ..., inet_pton(AF_INET6, "::1", &sin6_addr), ...}`,
//! `{sa_family=AF_UNIX, sun_path="/run/x.sock"}` (`sun_path=@"name"` when abstract).

use memchr::memmem;

use super::call::{field, split_args};
use super::unescape::{decode_into, leading_literal};

/// A socket address worth recording.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SockAddr {
    /// An IPv4 or IPv6 endpoint (rendered in `out`), with its port.
    Inet {
        /// The port.
        port: u16,
    },
    /// A unix socket path (rendered in `out`, `@` prefix when abstract).
    Unix,
}

/// Parses a sockaddr argument, rendering the endpoint into `out` (cleared
/// first). `None` for other families, unnamed unix sockets or malformed text.
pub(crate) fn parse_sockaddr(
    arg: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut String,
) -> Option<SockAddr> {
    out.clear();
    let family = field(arg, b"sa_family")?;
    match family {
        b"AF_INET" => {
            let port = port(field(arg, b"sin_port")?)?;
            let addr = field(arg, b"sin_addr")?;
            let lit = addr.strip_prefix(b"inet_addr(")?;
            let (ip, _) = leading_literal(lit)?;
            decode_into(ip, scratch, out);
            out.push(':');
            push_port(port, out);
            Some(SockAddr::Inet { port })
        }
        b"AF_INET6" => {
            let port = port(field(arg, b"sin6_port")?)?;
            let inner = arg.strip_prefix(b"{")?;
            let pton = split_args(inner).find(|f| f.starts_with(b"inet_pton(AF_INET6,"))?;
            let at = memmem::find(pton, b"\"")?;
            let (ip, _) = leading_literal(&pton[at..])?;
            out.push('[');
            decode_into(ip, scratch, out);
            out.push_str("]:");
            push_port(port, out);
            Some(SockAddr::Inet { port })
        }
        b"AF_UNIX" => {
            let path = field(arg, b"sun_path")?;
            let (abstract_, path) = match path.strip_prefix(b"@") {
                Some(p) => (true, p),
                None => (false, path),
            };
            let (lit, _) = leading_literal(path)?;
            if abstract_ {
                out.push('@');
            }
            decode_into(lit, scratch, out);
            Some(SockAddr::Unix)
        }
        _ => None,
    }
}

/// `htons(5432)` or a bare number.
fn port(v: &[u8]) -> Option<u16> {
    let v = v
        .strip_prefix(b"htons(")
        .and_then(|r| r.strip_suffix(b")"))
        .unwrap_or(v);
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn push_port(port: u16, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{port}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<(SockAddr, String)> {
        let mut out = String::new();
        parse_sockaddr(s.as_bytes(), &mut Vec::new(), &mut out).map(|a| (a, out))
    }

    #[test]
    fn inet_inet6_and_unix_addresses() {
        assert_eq!(
            p(r#"{sa_family=AF_INET, sin_port=htons(5432), sin_addr=inet_addr("127.0.0.1")}"#),
            Some((SockAddr::Inet { port: 5432 }, "127.0.0.1:5432".into()))
        );
        assert_eq!(
            p(
                r#"{sa_family=AF_INET6, sin6_port=htons(58929), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}"#
            ),
            Some((SockAddr::Inet { port: 58929 }, "[::1]:58929".into()))
        );
        assert_eq!(
            p(r#"{sa_family=AF_UNIX, sun_path=@"abstract"}"#),
            Some((SockAddr::Unix, "@abstract".into()))
        );
        assert_eq!(
            p(r#"{sa_family=AF_UNIX, sun_path="/run/a\377.sock"}"#),
            Some((SockAddr::Unix, r"/run/a\xff.sock".into()))
        );
    }

    #[test]
    fn other_families_and_garbage_are_none() {
        for s in [
            "{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}",
            "{sa_family=AF_UNIX}",
            "{sa_family=AF_INET, sin_port=htons(99999), sin_addr=inet_addr(\"127.0.0.1\")}",
            "0x7ffd1234",
            "{sa_family=AF_INET6, sin6_port=htons(1)}",
        ] {
            assert_eq!(p(s), None, "{s}");
        }
    }
}
