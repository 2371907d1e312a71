//! Trusted proxy headers (`WSGITrustedProxyHeaders` from `WSGITrustedProxies` peers): what a
//! front-end proxy's headers change in the environ, and which copies are stripped so an
//! application never sees a forged one. Follows mod_wsgi's rules, plus: when the peer is not
//! trusted, every configured header is stripped (mod_wsgi leaves `X-Forwarded-Server` and
//! `X-Forwarded-Port` in place).

use crate::config::proxy::{Category, IpNet, ProxyHeader};
use std::net::IpAddr;

/// The environ changes trusted proxy headers make.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub remote_addr: Option<Vec<u8>>,
    /// The new `X-Forwarded-For` value (trimmed to the hops after the client).
    pub forwarded_for: Option<Vec<u8>>,
    pub host: Option<Vec<u8>>,
    pub server_name: Option<Vec<u8>>,
    pub server_port: Option<Vec<u8>>,
    /// New `SCRIPT_NAME`, also given as `mod_wsgi.mount_point`.
    pub script_name: Option<Vec<u8>>,
    /// `Some(true)`: HTTPS; `Some(false)`: plain HTTP, whatever the connection says.
    pub https: Option<bool>,
    /// Request headers the application must not see.
    pub drop: Vec<ProxyHeader>,
}

impl Rewrite {
    /// True when the header named `name` is stripped.
    pub fn drops(&self, name: &[u8]) -> bool {
        self.drop
            .iter()
            .any(|h| h.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

fn in_list(ip: IpAddr, list: &[IpNet]) -> bool {
    list.iter().any(|n| n.contains(ip))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// `X-Forwarded-For`: the client is the hop just before the trusted proxies at the right end
/// of the list (the list is cut to start there); without a proxy list, the first hop.
fn forwarded_for(value: &[u8], proxies: Option<&[IpNet]>, out: &mut Rewrite) -> bool {
    let items: Vec<&[u8]> = value
        .split(|&c| c == b',')
        .map(trim)
        .filter(|i| !i.is_empty())
        .collect();
    let Some(&last) = items.last() else {
        return false;
    };
    let Some(proxies) = proxies else {
        out.remote_addr = Some(items[0].to_vec());
        return true;
    };
    let mut first_trusted = None;
    for i in (0..items.len()).rev() {
        match parse_ip(items[i]) {
            Some(ip) if in_list(ip, proxies) => first_trusted = Some(i),
            _ => break,
        }
    }
    let client = match first_trusted {
        Some(i) => i.saturating_sub(1),
        None => {
            out.remote_addr = Some(last.to_vec());
            out.forwarded_for = Some(last.to_vec());
            return true;
        }
    };
    out.remote_addr = Some(items[client].to_vec());
    out.forwarded_for = Some(items[client..].join(&b", "[..]));
    true
}

/// Records that a category was configured and, if given, the header applied for it (a later
/// trusted header of the same category takes over, as in mod_wsgi).
fn mark(
    matched: &mut Vec<(Category, Option<ProxyHeader>)>,
    c: Category,
    applied: Option<ProxyHeader>,
) {
    match matched.iter_mut().find(|(mc, _)| *mc == c) {
        Some(m) => m.1 = applied.or(m.1),
        None => matched.push((c, applied)),
    }
}

/// Works out the rewrite for one request. `header` looks a request header up by name
/// (case-insensitive); `peer` is the address the connection (or mod_remoteip) gives.
pub fn rewrite<'h>(
    trusted: &[ProxyHeader],
    proxies: Option<&[IpNet]>,
    peer: &[u8],
    header: &dyn Fn(&str) -> Option<&'h [u8]>,
) -> Rewrite {
    let mut out = Rewrite::default();
    if trusted.is_empty() {
        return out;
    }
    let peer_trusted = match proxies {
        None => true,
        Some(list) => parse_ip(peer).is_some_and(|ip| in_list(ip, list)),
    };
    // Per category: was it configured, and which header (if any) was applied.
    let mut matched: Vec<(Category, Option<ProxyHeader>)> = Vec::new();
    for &h in trusted {
        let value = if peer_trusted { header(h.name()) } else { None };
        let Some(value) = value else {
            mark(&mut matched, h.category(), None);
            continue;
        };
        let applied = match h {
            ProxyHeader::XForwardedFor => forwarded_for(value, proxies, &mut out),
            ProxyHeader::XClientIp | ProxyHeader::XRealIp => {
                out.remote_addr = Some(value.to_vec());
                true
            }
            ProxyHeader::XForwardedHost | ProxyHeader::XHost => {
                out.host = Some(value.to_vec());
                true
            }
            ProxyHeader::XForwardedServer => {
                out.server_name = Some(value.to_vec());
                true
            }
            ProxyHeader::XForwardedPort => {
                out.server_port = Some(value.to_vec());
                true
            }
            ProxyHeader::XScriptName | ProxyHeader::XForwardedScriptName => {
                out.script_name = Some(value.to_vec());
                true
            }
            ProxyHeader::XForwardedProto | ProxyHeader::XForwardedScheme | ProxyHeader::XScheme => {
                if value.eq_ignore_ascii_case(b"https") {
                    out.https = Some(true);
                } else if value.eq_ignore_ascii_case(b"http") {
                    out.https = Some(false);
                }
                true
            }
            ProxyHeader::XForwardedHttps | ProxyHeader::XForwardedSsl | ProxyHeader::XHttps => {
                let v = value;
                if [&b"on"[..], b"true", b"1"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t))
                {
                    out.https = Some(true);
                } else if [&b"off"[..], b"false", b"0"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t))
                {
                    out.https = Some(false);
                }
                true
            }
        };
        mark(&mut matched, h.category(), applied.then_some(h));
    }
    for (category, applied) in matched {
        for h in ProxyHeader::ALL {
            if h.category() == category && Some(h) != applied {
                out.drop.push(h);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProxyHeader as H;

    fn run(
        trusted: &[ProxyHeader],
        proxies: Option<&[&str]>,
        peer: &str,
        headers: &[(&str, &str)],
    ) -> Rewrite {
        let nets: Option<Vec<IpNet>> =
            proxies.map(|p| p.iter().map(|s| IpNet::parse(s).unwrap()).collect());
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        };
        rewrite(trusted, nets.as_deref(), peer.as_bytes(), &lookup)
    }

    fn s(v: &Option<Vec<u8>>) -> Option<&str> {
        v.as_deref().map(|b| std::str::from_utf8(b).unwrap())
    }

    #[test]
    fn nothing_configured_changes_nothing() {
        assert_eq!(
            run(&[], None, "1.2.3.4", &[("X-Forwarded-For", "5.6.7.8")]),
            Rewrite::default()
        );
    }

    #[test]
    fn forwarded_for_walks_trusted_hops_from_the_right() {
        let hdr = [("X-Forwarded-For", "1.1.1.1, 2.2.2.2 ,, 10.0.0.2, 10.0.0.3")];
        let r = run(&[H::XForwardedFor], Some(&["10.0.0.0/8"]), "10.0.0.9", &hdr);
        assert_eq!(s(&r.remote_addr), Some("2.2.2.2"));
        assert_eq!(s(&r.forwarded_for), Some("2.2.2.2, 10.0.0.2, 10.0.0.3"));
        // The other client headers are stripped; X-Forwarded-For itself stays (rewritten).
        assert!(r.drops(b"x-real-ip") && r.drops(b"X-Client-IP"));
        assert!(!r.drops(b"X-Forwarded-For"));
        // Rightmost hop not a trusted proxy: it is the client.
        let hdr = [("X-Forwarded-For", "1.1.1.1, 3.3.3.3")];
        let r = run(&[H::XForwardedFor], Some(&["10.0.0.0/8"]), "10.0.0.9", &hdr);
        assert_eq!(s(&r.remote_addr), Some("3.3.3.3"));
        assert_eq!(s(&r.forwarded_for), Some("3.3.3.3"));
        // A garbage hop stops the walk.
        let hdr = [("X-Forwarded-For", "1.1.1.1, junk, 10.0.0.2")];
        let r = run(&[H::XForwardedFor], Some(&["10.0.0.0/8"]), "10.0.0.9", &hdr);
        assert_eq!(s(&r.remote_addr), Some("junk"));
        // No proxy list: the first hop, list untouched.
        let hdr = [("X-Forwarded-For", " , 1.1.1.1, 2.2.2.2")];
        let r = run(&[H::XForwardedFor], None, "9.9.9.9", &hdr);
        assert_eq!(s(&r.remote_addr), Some("1.1.1.1"));
        assert_eq!(r.forwarded_for, None);
        // Only empty elements: nothing applied, and the header is stripped.
        let r = run(
            &[H::XForwardedFor],
            None,
            "9.9.9.9",
            &[("X-Forwarded-For", " , ")],
        );
        assert_eq!(r.remote_addr, None);
        assert!(r.drops(b"X-Forwarded-For"));
    }

    #[test]
    fn untrusted_peer_gets_everything_configured_stripped() {
        let all = [
            H::XForwardedFor,
            H::XForwardedHost,
            H::XForwardedProto,
            H::XForwardedPort,
            H::XForwardedServer,
            H::XScriptName,
        ];
        let hdr = [
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-Host", "evil"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Port", "1"),
        ];
        let r = run(&all, Some(&["10.0.0.1"]), "127.0.0.1", &hdr);
        assert_eq!(r.remote_addr, None);
        assert_eq!(r.host, None);
        assert_eq!(r.https, None);
        assert_eq!(r.server_port, None);
        for h in ProxyHeader::ALL {
            assert!(r.drops(h.name().as_bytes()), "{}", h.name());
        }
        // A peer that is not an IP address is not trusted either.
        let r = run(&all, Some(&["10.0.0.1"]), "", &hdr);
        assert_eq!(r.remote_addr, None);
    }

    #[test]
    fn trusted_peer_applies_each_category() {
        let hdr = [
            ("X-Real-IP", "4.4.4.4"),
            ("X-Forwarded-For", "5.5.5.5"),
            ("X-Forwarded-Host", "example.org:8443"),
            ("X-Host", "other"),
            ("X-Forwarded-Server", "front"),
            ("X-Forwarded-Port", "8443"),
            ("X-Script-Name", "/mount"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-SSL", "off"),
        ];
        let r = run(
            &[
                H::XRealIp,
                H::XForwardedHost,
                H::XForwardedServer,
                H::XForwardedPort,
                H::XScriptName,
                H::XForwardedProto,
            ],
            Some(&["127.0.0.1"]),
            "127.0.0.1",
            &hdr,
        );
        assert_eq!(s(&r.remote_addr), Some("4.4.4.4"));
        assert_eq!(s(&r.host), Some("example.org:8443"));
        assert_eq!(s(&r.server_name), Some("front"));
        assert_eq!(s(&r.server_port), Some("8443"));
        assert_eq!(s(&r.script_name), Some("/mount"));
        assert_eq!(r.https, Some(true));
        // Synonyms not trusted are stripped; the trusted ones stay.
        for gone in [
            "X-Forwarded-For",
            "X-Client-IP",
            "X-Host",
            "X-Forwarded-SSL",
            "X-Forwarded-HTTPS",
            "X-Forwarded-Script-Name",
        ] {
            assert!(r.drops(gone.as_bytes()), "{gone}");
        }
        for kept in [
            "X-Real-IP",
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "X-Script-Name",
            "X-Forwarded-Port",
        ] {
            assert!(!r.drops(kept.as_bytes()), "{kept}");
        }
        let r = run(
            &[H::XForwardedHttps],
            None,
            "1.2.3.4",
            &[("X-Forwarded-HTTPS", "Off")],
        );
        assert_eq!(r.https, Some(false));
    }
}
