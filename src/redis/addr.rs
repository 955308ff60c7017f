//! Host and port: the one rule every TCP address is held to, whoever wrote it (a user's
//! `addr`, a URL, a cluster seed or sentinel address, or a server's CLUSTER SHARDS / SLOTS,
//! MOVED / ASK or sentinel reply).
//!
//! - No whitespace, control or other byte anywhere that a host or port cannot hold: a host
//!   is a DNS name or an IPv4 literal (ASCII letters, digits, '.', '-', '_'), or an IPv6
//!   literal, at most 253 bytes (RFC 1035).
//! - In "host:port" an IPv6 host is written in brackets: "[::1]:6379".
//! - A port is 1 to 5 ASCII digits, 1..=65535: no sign, no space, no 0.
//!
//! Before this rule, " 127.0.0.1:6379" and "127.0.0.1:+6379" were accepted (Rust's
//! resolver trims and signs what it is given) while "127.0.0.1:6379 " was refused.

use std::net::Ipv6Addr;

/// The longest host: a DNS name (RFC 1035).
pub const MAX_HOST_LEN: usize = 253;
/// The longest "host:port": "[" host "]:" port.
pub const MAX_ADDR_LEN: usize = MAX_HOST_LEN + 2 + 1 + 5;

/// Why an address breaks the rule; the text names the culprit (clipped to 64 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddrError(String);

/// `s` quoted for a message, at most 64 characters of it.
fn quoted(s: &str) -> String {
    if s.chars().count() <= 64 {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(61).collect();
    format!("{head:?}...")
}

/// A port as written: 1 to 5 ASCII digits, 1..=65535.
pub fn parse_port(s: &str) -> Result<u16, AddrError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u32>() {
        Ok(p) if digits && (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(AddrError(format!(
            "bad port {} (1 to 65535, digits only)",
            quoted(s)
        ))),
    }
}

/// A port a server gave as a number: 1..=65535.
pub fn check_port(port: i64) -> Result<u16, AddrError> {
    u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| AddrError(format!("bad port {port} (1 to 65535)")))
}

/// A host without brackets: an IPv6 literal, or a DNS name or IPv4 literal.
pub fn check_host(host: &str) -> Result<(), AddrError> {
    if host.is_empty() {
        return Err(AddrError("empty host".into()));
    }
    if host.len() > MAX_HOST_LEN {
        return Err(AddrError(format!(
            "host is {} bytes, longer than a DNS name can be ({MAX_HOST_LEN}): {}",
            host.len(),
            quoted(host)
        )));
    }
    if host.contains(':') {
        return match host.parse::<Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(AddrError(format!("bad IPv6 host {}", quoted(host)))),
        };
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    if !host.bytes().all(ok) {
        return Err(AddrError(format!(
            "bad host {} (a DNS name, an IPv4 address or a bracketed IPv6 address; no spaces)",
            quoted(host)
        )));
    }
    Ok(())
}

/// Splits "host:port" or "[v6]:port" into the host (without brackets) and the port, both
/// checked.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), AddrError> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(AddrError(format!(
            "expected \"host:port\" or \"[v6]:port\", got {}",
            quoted(addr)
        )));
    };
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| AddrError(format!("unclosed '[' in {}", quoted(addr))))?;
            if inner.parse::<Ipv6Addr>().is_err() {
                return Err(AddrError(format!("bad IPv6 host {}", quoted(inner))));
            }
            inner
        }
        None if host.contains(':') => {
            return Err(AddrError(format!(
                "an IPv6 host must be written \"[v6]:port\", got {}",
                quoted(addr)
            )));
        }
        None => {
            check_host(host)?;
            host
        }
    };
    Ok((host, parse_port(port)?))
}

/// "host:port", brackets around an IPv6 host (`host` is given without them).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An address a server wrote ("host:port", MOVED / ASK): Redis writes an IPv6 host without
/// brackets ("::1:7000", split at the last ':'). Returned in the form the library uses.
pub fn normalize_server_addr(addr: &str) -> Result<String, AddrError> {
    if addr.starts_with('[') {
        let (host, port) = split_host_port(addr)?;
        return Ok(join_host_port(host, port));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(AddrError(format!(
            "expected \"host:port\", got {}",
            quoted(addr)
        )));
    };
    check_host(host)?;
    Ok(join_host_port(host, parse_port(port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for (addr, host, port) in [
            ("127.0.0.1:6379", "127.0.0.1", 6379),
            ("localhost:1", "localhost", 1),
            ("redis-1.example.com.:65535", "redis-1.example.com.", 65535),
            ("my_redis:7000", "my_redis", 7000),
            ("[::1]:6379", "::1", 6379),
            ("[fe80::1:2]:06379", "fe80::1:2", 6379),
        ] {
            assert_eq!(split_host_port(addr), Ok((host, port)), "{addr}");
        }
    }

    #[test]
    fn refused_and_the_message_names_the_culprit() {
        for (addr, culprit) in [
            (" 127.0.0.1:6379", "\" 127.0.0.1\""),
            ("127.0.0.1 :6379", "\"127.0.0.1 \""),
            ("127.0.0.1:6379 ", "\"6379 \""),
            ("127.0.0.1: 6379", "\" 6379\""),
            ("127.0.0.1:+6379", "\"+6379\""),
            ("127.0.0.1:-1", "\"-1\""),
            ("127.0.0.1:0", "\"0\""),
            ("127.0.0.1:00000", "\"00000\""),
            ("127.0.0.1:65536", "\"65536\""),
            ("127.0.0.1:999999", "\"999999\""),
            ("127.0.0.1:", "\"\""),
            ("127.0.0.1", "\"127.0.0.1\""),
            (":6379", "empty host"),
            ("\t127.0.0.1:6379", "\"\\t127.0.0.1\""),
            ("127.0.0.1\n:6379", "\"127.0.0.1\\n\""),
            ("h\u{e9}te:6379", "\"h\u{e9}te\""),
            ("::1:6379", "[v6]:port"),
            ("[::1:6379", "unclosed"),
            ("[::1]x:6379", "unclosed"),
            ("[not-v6]:6379", "\"not-v6\""),
            ("[ ::1]:6379", "\" ::1\""),
            ("[::1]:6379x", "\"6379x\""),
        ] {
            let e = split_host_port(addr).unwrap_err().to_string();
            assert!(e.contains(culprit), "{addr:?}: {e}");
        }
        let long = format!("{}:6379", "a".repeat(254));
        let e = split_host_port(&long).unwrap_err().to_string();
        assert!(e.contains("254 bytes") && e.len() < 200, "{e}");
        assert!(split_host_port(&format!("{}:6379", "a".repeat(253))).is_ok());
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("1"), Ok(1));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["", "0", "65536", "+1", "-1", " 1", "1 ", "1e3", "0x10", "١"] {
            assert!(parse_port(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_port(7000), Ok(7000));
        for bad in [0, -1, 65536, i64::MAX] {
            assert!(check_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_from_servers() {
        for ok in ["10.0.0.1", "::1", "fe80::1", "node-1.local", "a"] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            " ",
            "10.0.0.1 ",
            "a b",
            "a\r\nb",
            "[::1]",
            "x:y",
            "a/b",
            "a@b",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        assert_eq!(join_host_port("::1", 7000), "[::1]:7000");
        assert_eq!(join_host_port("10.0.0.1", 7000), "10.0.0.1:7000");
        assert_eq!(
            normalize_server_addr("::1:7000").as_deref(),
            Ok("[::1]:7000")
        );
        assert_eq!(
            normalize_server_addr("[::1]:7000").as_deref(),
            Ok("[::1]:7000")
        );
        assert_eq!(
            normalize_server_addr("10.0.0.1:7000").as_deref(),
            Ok("10.0.0.1:7000")
        );
        for bad in [
            "10.0.0.1:+7000",
            " 10.0.0.1:7000",
            "10.0.0.1:0",
            "10.0.0.1",
            ":7000",
        ] {
            assert!(normalize_server_addr(bad).is_err(), "{bad:?}");
        }
    }
}
