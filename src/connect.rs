//! `connect HOST PORT --proxy ADDR [--proxy-auth USER:PASS]`: the HTTP
//! CONNECT helper ssh runs as its ProxyCommand (SPEC §3.3).
//!
//! Runs as ssh's child with the caller's privileges. HOST comes from a git
//! remote URL, so it is untrusted: everything is validated before a single
//! byte is sent, and the request is built only from validated parts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;

use anyhow::{Context, Result, anyhow, bail};

use crate::exit::Exit;
use crate::pump::{Pump, StdioGuard};
use crate::relay::parse_target;

/// The proxy's response header may not exceed this.
const MAX_HEADER: usize = 8 * 1024;

/// A validated `connect` invocation.
#[derive(Debug, PartialEq, Eq)]
pub struct ConnectSpec {
    /// As it goes into the request: an IPv6 literal bracketed.
    pub authority: String,
    pub proxy: SocketAddr,
    pub auth: Option<String>,
}

/// Validates HOST, PORT, ADDR and USER:PASS; nothing is sent on failure.
pub fn parse(host: &str, port: &str, proxy: &str, auth: Option<&str>) -> Result<ConnectSpec> {
    let host = validate_host(host)?;
    let port = parse_port(port)?;
    let proxy = parse_target(proxy).context("--proxy")?;
    Ok(ConnectSpec {
        authority: format!("{host}:{port}"),
        proxy,
        auth: auth.map(String::from),
    })
}

/// 1-255 bytes of letters, digits, `.`, `-`, `_`, `:`, or a bracketed IPv6
/// literal. Anything else (CR, LF, space, `@`, `/`, `;` …) could smuggle a
/// header or a second request into the CONNECT line. A host with a `:`
/// must be an IPv6 address, bracketed or not (it always goes out
/// bracketed): `host:22:22` or `[1.2.3.4]` would be ambiguous to the proxy.
/// Zone ids (`fe80::1%eth0`) are refused: they name an interface of this
/// machine, which means nothing to the proxy. Returns HOST as it goes into
/// the request.
fn validate_host(host: &str) -> Result<String> {
    let plain = |c: u8| c.is_ascii_alphanumeric() || b".-_:".contains(&c);
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let ipv6 = |s: &str| s.parse::<std::net::Ipv6Addr>().is_ok();
    let valid = match bracketed {
        Some(inner) => ipv6(inner).then(|| host.to_string()),
        None if host.contains(':') => ipv6(host).then(|| format!("[{host}]")),
        None => host.bytes().all(plain).then(|| host.to_string()),
    };
    match valid {
        Some(authority_host) if !host.is_empty() && host.len() <= 255 => Ok(authority_host),
        _ => Err(Exit::usage(format!(
            "connect: invalid HOST {host:?} (1-255 of A-Z a-z 0-9 . - _, or an IPv6 address)"
        ))),
    }
}

fn parse_port(port: &str) -> Result<u16> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| Exit::usage(format!("connect: invalid PORT {port:?} (1-65535)")))
}

/// The CONNECT request for a validated spec.
pub fn request(spec: &ConnectSpec) -> String {
    let mut req = format!("CONNECT {a} HTTP/1.1\r\nHost: {a}\r\n", a = spec.authority);
    if let Some(auth) = &spec.auth {
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(auth.as_bytes())
        ));
    }
    req.push_str("\r\n");
    req
}

/// Standard base64 with padding (RFC 4648 §4), for Basic credentials.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Opens the tunnel and pumps stdin/stdout through it until both
/// directions end.
pub fn run(spec: &ConnectSpec) -> Result<i32> {
    let mut proxy =
        TcpStream::connect(spec.proxy).with_context(|| format!("connect: proxy {}", spec.proxy))?;
    let _ = proxy.set_nodelay(true);
    proxy
        .write_all(request(spec).as_bytes())
        .with_context(|| format!("connect: send to proxy {}", spec.proxy))?;
    let (header, tunnel_bytes) = read_header(&mut proxy)?;
    let status = header
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if !(status.starts_with("HTTP/1.") && code.len() == 3 && code.starts_with('2')) {
        bail!("connect: proxy refused {}: {status}", spec.authority);
    }
    // Bytes of the tunnel that came in the same read as the header.
    std::io::stdout()
        .write_all(&tunnel_bytes)
        .and_then(|()| std::io::stdout().flush())
        .context("connect: write to stdout")?;

    let _stdio = StdioGuard::new()?;
    let socket: OwnedFd = proxy.into();
    crate::sys::set_fl(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        crate::sys::get_fl(std::os::fd::AsRawFd::as_raw_fd(&socket))? | libc::O_NONBLOCK,
    )?;
    let mut pump = Pump::new()?;
    pump.add_stdio_pair(socket)?;
    pump.run()
        .map_err(|e| Exit::error(1, format!("connect: tunnel: {e:#}")))?;
    Ok(0)
}

/// Reads up to the end of the response header; returns the header text
/// and any tunnel bytes that followed it in the same read.
fn read_header(proxy: &mut TcpStream) -> Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let end = find_header_end(&buf);
        if end.unwrap_or(buf.len()) > MAX_HEADER {
            bail!("connect: proxy response header exceeds {MAX_HEADER} bytes");
        }
        if let Some(end) = end {
            let rest = buf.split_off(end);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = proxy.read(&mut chunk).context("connect: read from proxy")?;
        if n == 0 {
            return Err(anyhow!(
                "connect: proxy closed the connection before answering"
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("user:p@ss:w0rd", "dXNlcjpwQHNzOncwcmQ="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn hosts_are_validated() {
        for good in [
            "github.com",
            "a",
            "host_1.example-x",
            "::1",
            "[::1]",
            "[2001:db8::1]",
            "[::ffff:1.2.3.4]",
            "fe80::1",
            "10.0.0.1",
        ] {
            assert!(validate_host(good).is_ok(), "{good}");
        }
        assert_eq!(validate_host("::1").unwrap(), "[::1]");
        assert_eq!(validate_host("[::1]").unwrap(), "[::1]");
        let long = "a".repeat(256);
        for bad in [
            "",
            "a b",
            "a\r\nX: y",
            "a\n",
            "user@host",
            "a/b",
            "a;b",
            "[",
            "[]",
            "[x]",
            "[1.2.3.4]",
            "[::1",
            "::1]",
            "[[::1]]",
            "[fe80::1%eth0]",
            "fe80::1%eth0",
            "a:b",
            "host:22",
            "ä",
            long.as_str(),
        ] {
            let err = validate_host(bad).unwrap_err();
            assert_eq!(crate::cli::render::run_code(&err), 2, "{bad:?}");
        }
        assert!(validate_host(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(parse_port("22").unwrap(), 22);
        assert_eq!(parse_port("65535").unwrap(), 65535);
        for bad in ["0", "65536", "-1", "+22", "", "2 2", "0x16"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_is_exact() {
        let spec = parse("::1", "22", "127.0.0.1:3128", Some("u:p")).unwrap();
        assert_eq!(
            request(&spec),
            "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        let spec = parse("github.com", "443", "[::1]:8080", None).unwrap();
        assert_eq!(
            request(&spec),
            "CONNECT github.com:443 HTTP/1.1\r\nHost: github.com:443\r\n\r\n"
        );
    }

    #[test]
    fn proxy_must_be_a_literal_address() {
        assert!(parse("h", "1", "proxy.local:3128", None).is_err());
        assert!(parse("h", "1", "127.0.0.1:0", None).is_err());
    }
}
