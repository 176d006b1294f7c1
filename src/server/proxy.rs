//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in front of the servers
//! sends it first on every connection to say who the real client is.
//!
//! This is the sans-I/O part: [`parse`] looks at the bytes received so far and says whether
//! they hold a whole header (and how long it is, so what follows is handed on untouched: on
//! the implicit-TLS port the ClientHello may arrive in the same segment), need more bytes, or
//! are not a valid header. It gives the same answer however the bytes were split, so the
//! shell can call it after every read. [`sniff`] tells from the first bytes of a connection
//! whether they start a header at all, for refusing one from an address that may not send it.
//!
//! The `ppp` crate was the candidate; its streaming mode reports a terminal error for some
//! valid prefixes (`PROXY TCP4 1.2.3.4 5.6.7.8 80 ` split before the last port), which is
//! exactly the split-invariance the shell relies on, so this is a small parser of its own.
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The longest v1 header, CRLF included (the spec's own bound).
pub const V1_MAX: usize = 107;
/// The longest v2 header accepted, TLVs included: HAProxy's own with SSL and unique-id TLVs
/// stay well under this, and a bound keeps a hostile proxy from holding memory.
pub const V2_MAX: usize = 4096;
/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The fixed part of a v2 header: signature, version and command, family, length.
const V2_FIXED: usize = 16;

/// Who the proxy says the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A TCP client over IPv4 or IPv6.
    Client(SocketAddr),
    /// v2's LOCAL command: the proxy's own connection (a health check), no client behind it.
    Local,
    /// v1's UNKNOWN, or a v2 family without an IP address (UNSPEC, UNIX): the spec says to
    /// use the connection's own addresses.
    Unknown,
}

/// A whole header: its version, the source, and how many bytes it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub source: Source,
    pub len: usize,
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// They start with neither the v1 nor the v2 signature.
    NotAHeader,
    /// Longer than [`V1_MAX`] or [`V2_MAX`].
    TooLong { version: u8 },
    /// The signature is there, the rest is wrong.
    Malformed { version: u8, what: String },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotAHeader => f.write_str("no PROXY protocol header"),
            HeaderError::TooLong { version: 1 } => {
                write!(f, "PROXY v1 header without CRLF in {V1_MAX} octets")
            }
            HeaderError::TooLong { version } => {
                write!(f, "PROXY v{version} header longer than {V2_MAX} octets")
            }
            HeaderError::Malformed { version, what } => {
                write!(f, "malformed PROXY v{version} header: {what}")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// They begin a PROXY header (its whole signature is there).
    Header,
    /// They cannot begin one.
    NotHeader,
    /// Too few bytes to tell.
    Undecided,
}

/// Whether `input`, the first bytes of a connection, begins a PROXY header.
pub fn sniff(input: &[u8]) -> Sniff {
    for signature in [&V1_PREFIX[..], &V2_SIGNATURE[..]] {
        if input.starts_with(signature) {
            return Sniff::Header;
        }
        if signature.starts_with(input) {
            return Sniff::Undecided;
        }
    }
    Sniff::NotHeader
}

/// Parse the header at the start of `input`: `Ok(None)` when more bytes are needed.
///
/// # Errors
/// `input` does not start with a valid header, or it is too long; more bytes would not help.
pub fn parse(input: &[u8]) -> Result<Option<Header>, HeaderError> {
    match sniff(input) {
        Sniff::NotHeader => Err(HeaderError::NotAHeader),
        Sniff::Undecided => Ok(None),
        Sniff::Header if input[0] == b'P' => parse_v1(input),
        Sniff::Header => parse_v2(input),
    }
}

fn parse_v1(input: &[u8]) -> Result<Option<Header>, HeaderError> {
    let malformed = |what: String| HeaderError::Malformed { version: 1, what };
    let window = &input[..input.len().min(V1_MAX)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if input.len() >= V1_MAX {
            Err(HeaderError::TooLong { version: 1 })
        } else {
            Ok(None)
        };
    };
    let len = newline + 1;
    let Some(line) = window[..newline].strip_suffix(b"\r") else {
        return Err(malformed("the line ends in a bare LF, not CRLF".into()));
    };
    let line =
        std::str::from_utf8(&line[V1_PREFIX.len()..]).map_err(|_| malformed("not ASCII".into()))?;
    let mut fields = line.split(' ');
    let protocol = fields.next().unwrap_or_default();
    let source = match protocol {
        // Whatever follows UNKNOWN is to be ignored.
        "UNKNOWN" => Source::Unknown,
        "TCP4" | "TCP6" => {
            let fields: Vec<&str> = fields.collect();
            let [source, destination, source_port, destination_port] = fields[..] else {
                return Err(malformed(format!(
                    "{protocol} needs 4 fields separated by single spaces, got {:?}",
                    line
                )));
            };
            let address = |text: &str| -> Result<IpAddr, HeaderError> {
                let parsed = if protocol == "TCP4" {
                    text.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    text.parse::<Ipv6Addr>().map(IpAddr::V6)
                };
                parsed.map_err(|_| malformed(format!("bad {protocol} address {text:?}")))
            };
            let port = |text: &str| -> Result<u16, HeaderError> {
                let canonical = text == "0" || !text.starts_with('0');
                let digits = text.bytes().all(|b| b.is_ascii_digit());
                match text.parse::<u16>() {
                    Ok(port) if canonical && digits => Ok(port),
                    _ => Err(malformed(format!("bad port {text:?}"))),
                }
            };
            let source = address(source)?;
            address(destination)?;
            let source_port = port(source_port)?;
            port(destination_port)?;
            Source::Client(SocketAddr::new(source, source_port))
        }
        other => {
            return Err(malformed(format!(
                "unknown protocol {:?} (TCP4, TCP6 or UNKNOWN)",
                other
            )))
        }
    };
    Ok(Some(Header {
        version: 1,
        source,
        len,
    }))
}

fn parse_v2(input: &[u8]) -> Result<Option<Header>, HeaderError> {
    let malformed = |what: String| HeaderError::Malformed { version: 2, what };
    if input.len() < V2_FIXED {
        // The version and command are decided as soon as they arrive, so an error does not
        // depend on how the bytes were split.
        if let Some(&byte) = input.get(12) {
            check_version_command(byte).map_err(malformed)?;
        }
        if let Some(&byte) = input.get(13) {
            check_family(byte).map_err(malformed)?;
        }
        return Ok(None);
    }
    let command = check_version_command(input[12]).map_err(malformed)?;
    let family = check_family(input[13]).map_err(malformed)?;
    let len = V2_FIXED + usize::from(u16::from_be_bytes([input[14], input[15]]));
    if len > V2_MAX {
        return Err(HeaderError::TooLong { version: 2 });
    }
    let needed = match family >> 4 {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if len - V2_FIXED < needed {
        return Err(malformed(format!(
            "{} octets of addresses, the family needs {needed}",
            len - V2_FIXED
        )));
    }
    if input.len() < len {
        return Ok(None);
    }
    let addresses = &input[V2_FIXED..len];
    let source = if command == 0 {
        Source::Local
    } else {
        match family >> 4 {
            1 => {
                let ip: [u8; 4] = addresses[..4].try_into().expect("12 octets checked");
                let port = u16::from_be_bytes([addresses[8], addresses[9]]);
                Source::Client(SocketAddr::new(IpAddr::from(ip), port))
            }
            2 => {
                let ip: [u8; 16] = addresses[..16].try_into().expect("36 octets checked");
                let port = u16::from_be_bytes([addresses[32], addresses[33]]);
                Source::Client(SocketAddr::new(IpAddr::from(ip), port))
            }
            _ => Source::Unknown,
        }
    };
    // What follows the addresses is TLVs (ALPN, SSL, unique id...): skipped.
    Ok(Some(Header {
        version: 2,
        source,
        len,
    }))
}

/// The command (0 LOCAL, 1 PROXY) of a valid version-and-command byte.
fn check_version_command(byte: u8) -> Result<u8, String> {
    if byte >> 4 != 2 {
        return Err(format!("version {} (only 2 is defined)", byte >> 4));
    }
    match byte & 0x0f {
        command @ (0 | 1) => Ok(command),
        other => Err(format!("command {other} (LOCAL 0 or PROXY 1)")),
    }
}

/// A family-and-transport byte, if it is one a TCP connection can carry.
fn check_family(byte: u8) -> Result<u8, String> {
    if byte >> 4 > 3 {
        return Err(format!("address family {}", byte >> 4));
    }
    match byte & 0x0f {
        // UNSPEC or STREAM; a datagram header makes no sense on a TCP connection.
        0 | 1 => Ok(byte),
        other => Err(format!("transport {other} on a TCP connection")),
    }
}

/// A `--trusted-proxy` range: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet {
    address: IpAddr,
    prefix: u8,
}

impl TrustedNet {
    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for TrustedNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| {
            format!("{address:?} is not an IP address (e.g. 10.0.0.5 or 10.0.0.0/24)")
        })?;
        let address = address.to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("prefix length {prefix:?} is not 0 to {max}"))?,
        };
        Ok(TrustedNet { address, prefix })
    }
}

impl fmt::Display for TrustedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    fn v2_tcp4_with_tlvs() -> Vec<u8> {
        let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1, 0xc3, 0x50, 0, 110];
        // PP2_TYPE_ALPN "pop3", then PP2_TYPE_UNIQUE_ID.
        body.extend_from_slice(&[0x01, 0, 4]);
        body.extend_from_slice(b"pop3");
        body.extend_from_slice(&[0x05, 0, 3, 1, 2, 3]);
        v2(1, 0x11, &body)
    }

    fn client(text: &str) -> Source {
        Source::Client(text.parse().unwrap())
    }

    #[test]
    fn v1_tcp4_and_tcp6_name_the_client_and_the_length() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 50000 110\r\nUSER x\r\n";
        let header = parse(line).unwrap().unwrap();
        assert_eq!(header.source, client("192.0.2.7:50000"));
        assert_eq!(header.len, 41);
        let line = b"PROXY TCP6 2001:db8::7 ::1 50000 143\r\n";
        let header = parse(line).unwrap().unwrap();
        assert_eq!(header.source, client("[2001:db8::7]:50000"));
        assert_eq!(header.len, line.len());
    }

    #[test]
    fn v1_unknown_ignores_the_rest_of_its_line() {
        for line in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN ffff:: 1.2.3.4 1 2\r\n",
        ] {
            let header = parse(line).unwrap().unwrap();
            assert_eq!((header.source, header.len), (Source::Unknown, line.len()));
        }
    }

    #[test]
    fn v1_mistakes_are_named() {
        for (line, what) in [
            (&b"PROXY TCP4 192.0.2.7 10.0.0.1 50000 110\n"[..], "bare LF"),
            (b"PROXY TCP4 ::1 10.0.0.1 50000 110\r\n", "bad TCP4 address"),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad TCP6 address"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.5 080 2\r\n", "bad port \"080\""),
            (b"PROXY TCP4 1.2.3.4 1.2.3.5 +80 2\r\n", "bad port \"+80\""),
            (b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "bad port"),
            (b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n", "4 fields"),
            (b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", "4 fields"),
            (b"PROXY UDP4 1.2.3.4 1.2.3.5 1 2\r\n", "unknown protocol"),
        ] {
            let error = parse(line).unwrap_err().to_string();
            assert!(error.contains(what), "{error} for {line:?}");
        }
        let long = [&b"PROXY UNKNOWN "[..], &[b'x'; 100]].concat();
        assert_eq!(
            parse(&long).unwrap_err(),
            HeaderError::TooLong { version: 1 }
        );
    }

    #[test]
    fn v2_proxy_skips_tlvs_and_counts_them_in_its_length() {
        let mut bytes = v2_tcp4_with_tlvs();
        let len = bytes.len();
        bytes.extend_from_slice(b"\x16\x03\x01 a ClientHello");
        let header = parse(&bytes).unwrap().unwrap();
        assert_eq!(header.source, client("192.0.2.7:50000"));
        assert_eq!((header.version, header.len), (2, len));

        let mut body = vec![0; 36];
        body[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body[32..34].copy_from_slice(&993u16.to_be_bytes());
        let header = parse(&v2(1, 0x21, &body)).unwrap().unwrap();
        assert_eq!(header.source, client("[2001:db8::7]:993"));
    }

    #[test]
    fn v2_local_unspec_and_unix_use_the_connection() {
        let local = v2(0, 0x00, &[]);
        assert_eq!(parse(&local).unwrap().unwrap().source, Source::Local);
        // LOCAL with addresses (HAProxy's health checks may send them): still LOCAL.
        let local = v2(0, 0x11, &[127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2]);
        assert_eq!(parse(&local).unwrap().unwrap().source, Source::Local);
        let unspec = v2(1, 0x00, &[9, 9]);
        assert_eq!(parse(&unspec).unwrap().unwrap().source, Source::Unknown);
        let unix = v2(1, 0x31, &[0; 216]);
        assert_eq!(parse(&unix).unwrap().unwrap().source, Source::Unknown);
    }

    #[test]
    fn v2_mistakes_are_named() {
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        for (bytes, what) in [
            (wrong_version, "version 1"),
            (v2(2, 0x11, &[0; 12]), "command 2"),
            (v2(1, 0x41, &[0; 12]), "address family 4"),
            (v2(1, 0x12, &[0; 12]), "transport 2"),
            (v2(1, 0x11, &[0; 11]), "11 octets of addresses"),
            (v2(1, 0x21, &[0; 12]), "the family needs 36"),
        ] {
            let error = parse(&bytes).unwrap_err().to_string();
            assert!(error.contains(what), "{error}");
        }
        let huge = v2(1, 0x11, &[0; V2_MAX]);
        assert_eq!(
            parse(&huge[..V2_FIXED]).unwrap_err(),
            HeaderError::TooLong { version: 2 }
        );
    }

    #[test]
    fn anything_else_is_not_a_header_and_prefixes_wait() {
        assert_eq!(parse(b"USER asterix\r\n"), Err(HeaderError::NotAHeader));
        assert_eq!(parse(b"\x16\x03\x01"), Err(HeaderError::NotAHeader));
        assert_eq!(parse(b"PROXX"), Err(HeaderError::NotAHeader));
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"PROX"), Ok(None));
        assert_eq!(parse(b"\r\n\r\n\0"), Ok(None));
        assert_eq!(sniff(b"PROXY TCP4"), Sniff::Header);
        assert_eq!(sniff(b"\r\n"), Sniff::Undecided);
        assert_eq!(sniff(b"\r\nQ"), Sniff::NotHeader);
        assert_eq!(sniff(b"a1 LOGIN"), Sniff::NotHeader);
    }

    #[test]
    fn trusted_ranges_match_by_prefix() {
        let net: TrustedNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let one: TrustedNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: TrustedNet = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert!(!all.contains("1.2.3.4".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<TrustedNet>().is_err());
        assert!("proxy.example".parse::<TrustedNet>().is_err());
        assert_eq!(one.to_string(), "127.0.0.1/32");
    }

    /// Feed `input` in the chunks `cuts` make, parsing after each, as the shell does.
    fn incrementally(input: &[u8], cuts: &[usize]) -> Result<Option<Header>, HeaderError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        for cut in cuts {
            match parse(&input[..cut]) {
                Ok(None) => {}
                decided => return decided,
            }
        }
        Ok(None)
    }

    fn samples() -> Vec<Vec<u8>> {
        let mut samples: Vec<Vec<u8>> = [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 50000 110\r\n+OK"[..],
            b"PROXY TCP6 2001:db8::7 ::1 50000 143\r\n",
            b"PROXY UNKNOWN\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.5 080 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 50000 110\n",
            b"PROXY TCP9 x\r\n",
            b"USER asterix\r\n",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        samples.push(v2_tcp4_with_tlvs());
        samples.push(v2(0, 0, &[]));
        samples.push(v2(3, 0x11, &[0; 12]));
        samples.push(v2(1, 0x11, &[0; 5]));
        samples
    }

    proptest! {
        /// However the bytes arrive, the answer is the one for all of them at once.
        #[test]
        fn any_split_gives_the_same_answer(
            which in 0..11usize,
            cuts in proptest::collection::vec(0..200usize, 0..6),
        ) {
            let input = &samples()[which];
            prop_assert_eq!(incrementally(input, &cuts), parse(input));
        }

        /// Arbitrary bytes never panic, and a header never claims more than it was given.
        #[test]
        fn arbitrary_bytes_are_safe(
            prefix in 0..3usize,
            tail in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let start: &[u8] = [&b""[..], b"PROXY ", V2_SIGNATURE][prefix];
            let input = [start, &tail].concat();
            if let Ok(Some(header)) = parse(&input) {
                prop_assert!(header.len <= input.len());
            }
        }
    }
}
