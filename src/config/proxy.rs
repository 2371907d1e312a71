//! `WSGITrustedProxyHeaders` and `WSGITrustedProxies`: which proxy headers may rewrite the
//! request's client address, host, port, scheme and mount point, and from which peers.

use std::net::IpAddr;

/// A request header a front-end proxy sets, grouped by what it rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    XForwardedFor,
    XClientIp,
    XRealIp,
    XForwardedHost,
    XHost,
    XForwardedServer,
    XForwardedPort,
    XScriptName,
    XForwardedScriptName,
    XForwardedProto,
    XForwardedScheme,
    XScheme,
    XForwardedHttps,
    XForwardedSsl,
    XHttps,
}

/// What a header rewrites; within a category only the trusted header survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Client,
    Host,
    Server,
    Port,
    ScriptName,
    Scheme,
}

impl ProxyHeader {
    /// Every header mod_wsgi knows.
    pub const ALL: [ProxyHeader; 15] = [
        ProxyHeader::XForwardedFor,
        ProxyHeader::XClientIp,
        ProxyHeader::XRealIp,
        ProxyHeader::XForwardedHost,
        ProxyHeader::XHost,
        ProxyHeader::XForwardedServer,
        ProxyHeader::XForwardedPort,
        ProxyHeader::XScriptName,
        ProxyHeader::XForwardedScriptName,
        ProxyHeader::XForwardedProto,
        ProxyHeader::XForwardedScheme,
        ProxyHeader::XScheme,
        ProxyHeader::XForwardedHttps,
        ProxyHeader::XForwardedSsl,
        ProxyHeader::XHttps,
    ];

    /// The header's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            ProxyHeader::XForwardedFor => "X-Forwarded-For",
            ProxyHeader::XClientIp => "X-Client-IP",
            ProxyHeader::XRealIp => "X-Real-IP",
            ProxyHeader::XForwardedHost => "X-Forwarded-Host",
            ProxyHeader::XHost => "X-Host",
            ProxyHeader::XForwardedServer => "X-Forwarded-Server",
            ProxyHeader::XForwardedPort => "X-Forwarded-Port",
            ProxyHeader::XScriptName => "X-Script-Name",
            ProxyHeader::XForwardedScriptName => "X-Forwarded-Script-Name",
            ProxyHeader::XForwardedProto => "X-Forwarded-Proto",
            ProxyHeader::XForwardedScheme => "X-Forwarded-Scheme",
            ProxyHeader::XScheme => "X-Scheme",
            ProxyHeader::XForwardedHttps => "X-Forwarded-HTTPS",
            ProxyHeader::XForwardedSsl => "X-Forwarded-SSL",
            ProxyHeader::XHttps => "X-HTTPS",
        }
    }

    /// What the header rewrites.
    pub const fn category(self) -> Category {
        match self {
            ProxyHeader::XForwardedFor | ProxyHeader::XClientIp | ProxyHeader::XRealIp => {
                Category::Client
            }
            ProxyHeader::XForwardedHost | ProxyHeader::XHost => Category::Host,
            ProxyHeader::XForwardedServer => Category::Server,
            ProxyHeader::XForwardedPort => Category::Port,
            ProxyHeader::XScriptName | ProxyHeader::XForwardedScriptName => Category::ScriptName,
            ProxyHeader::XForwardedProto
            | ProxyHeader::XForwardedScheme
            | ProxyHeader::XScheme
            | ProxyHeader::XForwardedHttps
            | ProxyHeader::XForwardedSsl
            | ProxyHeader::XHttps => Category::Scheme,
        }
    }

    /// The header for a configured name: the wire name or its CGI form
    /// (`HTTP_X_FORWARDED_FOR`), in any case, `_` and `-` alike (mod_wsgi compares the CGI
    /// forms).
    pub fn parse(name: &str) -> Option<ProxyHeader> {
        let norm = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'_' => '-',
                    b => b.to_ascii_lowercase() as char,
                })
                .collect()
        };
        let n = norm(name);
        let n = n.strip_prefix("http-").unwrap_or(&n);
        ProxyHeader::ALL.into_iter().find(|h| norm(h.name()) == n)
    }
}

/// An address or network of `WSGITrustedProxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// True when `ip` lies in this network (an IPv4-mapped IPv6 peer matches IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Parses `addr`, `addr/bits`, `a.b.c.d/netmask` or a partial IPv4 address (`10.1`
    /// means 10.1.0.0/16), as Apache's `Require ip` does.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let (ip, max) = match addr.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V4(_)) => (ip, 32),
            Ok(ip @ IpAddr::V6(_)) => (ip, 128),
            Err(_) if bits.is_none() => return partial_v4(addr),
            Err(_) => return None,
        };
        let prefix = match bits {
            None => max,
            Some(b) if b.bytes().all(|c| c.is_ascii_digit()) && !b.is_empty() => {
                b.parse::<u8>().ok().filter(|&p| p <= max)?
            }
            Some(b) if max == 32 => {
                let m = u32::from(b.parse::<std::net::Ipv4Addr>().ok()?);
                // Only contiguous masks (255.255.0.0) describe a network.
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return None;
                }
                m.leading_ones() as u8
            }
            Some(_) => return None,
        };
        Some(IpNet { addr: ip, prefix })
    }
}

fn partial_v4(s: &str) -> Option<IpNet> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        octets[i] = p.parse().ok()?;
    }
    Some(IpNet {
        addr: IpAddr::from(octets),
        prefix: 8 * parts.len() as u8,
    })
}

/// Parses the names of `WSGITrustedProxyHeaders`; unknown names are errors, since they would
/// silently do nothing.
pub fn parse_headers(directive: &str, args: &[&str]) -> Result<Vec<ProxyHeader>, String> {
    if args.is_empty() {
        return Err(format!("{directive} needs one or more header names"));
    }
    args.iter()
        .map(|a| {
            ProxyHeader::parse(a).ok_or_else(|| {
                let known: Vec<&str> = ProxyHeader::ALL.iter().map(|h| h.name()).collect();
                format!(
                    "{directive}: '{a}' is not a proxy header mod_rwsgi knows; use one or more \
                     of {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// Parses the addresses of `WSGITrustedProxies`.
pub fn parse_proxies(directive: &str, args: &[&str]) -> Result<Vec<IpNet>, String> {
    if args.is_empty() {
        return Err(format!(
            "{directive} needs one or more IP addresses or networks"
        ));
    }
    args.iter()
        .map(|a| {
            IpNet::parse(a).ok_or_else(|| {
                format!(
                    "{directive}: '{a}' is not an IP address or network; use e.g. 10.0.0.1, \
                     10.0.0.0/8, 10.0.0.0/255.0.0.0 or 2001:db8::/32"
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        assert_eq!(
            ProxyHeader::parse("X-Forwarded-For"),
            Some(ProxyHeader::XForwardedFor)
        );
        assert_eq!(
            ProxyHeader::parse("HTTP_X_FORWARDED_PROTO"),
            Some(ProxyHeader::XForwardedProto)
        );
        assert_eq!(ProxyHeader::parse("x-https"), Some(ProxyHeader::XHttps));
        assert_eq!(ProxyHeader::parse("X-Bogus"), None);
        for h in ProxyHeader::ALL {
            assert_eq!(ProxyHeader::parse(h.name()), Some(h));
        }
        let e = parse_headers("D", &["X-Real-IP", "Forwarded"]).unwrap_err();
        assert!(e.starts_with("D:") && e.contains("'Forwarded'"), "{e}");
        assert!(parse_headers("D", &[]).is_err());
    }

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let n = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.200.1.1")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert_eq!(
            IpNet::parse("192.168.0.0/255.255.0.0"),
            IpNet::parse("192.168.0.0/16")
        );
        assert_eq!(IpNet::parse("10.1"), IpNet::parse("10.1.0.0/16"));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "",
            "host.example",
            "10.0.0.0/33",
            "10.0.0.0/255.0.255.0",
            "::1/129",
            "1.2.3.4.5",
            "10./8",
            "256.1",
        ] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
        let e = parse_proxies("D", &["10.0.0.1", "nope"]).unwrap_err();
        assert!(e.starts_with("D:") && e.contains("'nope'"), "{e}");
    }
}
