//! Which network addresses a webhook may reach. Unless private targets are
//! allowed, only globally routable unicast addresses pass: the check runs on
//! literal-IP URLs and, through `GuardedResolver`, on every DNS answer at
//! connect time (so DNS rebinding and rows written by SQL are caught too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

const BLOCKED_V4: &[&str] = &[
    "0.0.0.0/8",       // "this" network, unspecified
    "10.0.0.0/8",      // RFC 1918
    "100.64.0.0/10",   // CGNAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local, cloud metadata
    "172.16.0.0/12",   // RFC 1918
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // TEST-NET-1
    "192.31.196.0/24", // AS112
    "192.52.193.0/24", // AMT
    "192.88.99.0/24",  // 6to4 relay anycast
    "192.168.0.0/16",  // RFC 1918
    "192.175.48.0/24", // AS112
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // TEST-NET-2
    "203.0.113.0/24",  // TEST-NET-3
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, broadcast
];

const BLOCKED_V6: &[&str] = &[
    "::/128",         // unspecified
    "::1/128",        // loopback
    "::/96",          // IPv4-compatible (deprecated)
    "::ffff:0:0/96",  // IPv4-mapped (checked through the embedded v4 too)
    "64:ff9b:1::/48", // local-use NAT64
    "100::/64",       // discard
    "2001::/23",      // IETF protocol assignments (Teredo, ORCHID, ...)
    "2001:db8::/32",  // documentation
    "2002::/16",      // 6to4 (checked through the embedded v4 too)
    "3fff::/20",      // documentation
    "5f00::/16",      // SRv6 SIDs
    "fc00::/7",       // unique local
    "fe80::/10",      // link-local
    "fec0::/10",      // site-local (deprecated)
    "ff00::/8",       // multicast
];

/// True when `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !BLOCKED_V4.iter().any(|net| {
        net.parse::<Ipv4Net>()
            .expect("valid CIDR literal")
            .contains(&ip)
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // Forms that embed an IPv4 address are judged by that address too.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 well-known prefix 64:ff9b::/96: the last 32 bits are the IPv4 target.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return is_public_v4(v4);
    }
    !BLOCKED_V6.iter().any(|net| {
        net.parse::<Ipv6Net>()
            .expect("valid CIDR literal")
            .contains(&ip)
    })
}

/// Why a URL may not be called, or `None` when it may (literal IPs only;
/// host names are checked by the resolver at connect time).
pub fn literal_target_refusal(url: &url::Url, allow_private: bool) -> Option<String> {
    if allow_private {
        return None;
    }
    let ip = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Some(format!("blocked target: {d} is a loopback name"));
            }
            return None;
        }
    };
    (!is_public(ip)).then(|| format!("blocked target: {ip} is not a public address"))
}

/// The API's check of an endpoint URL: scheme, HTTPS-only mode, literal
/// addresses, and (unless private targets are allowed) a DNS lookup whose
/// answers must all be public. Returns the reason for a refusal.
pub async fn validate_target(
    url: &url::Url,
    allow_private: bool,
    require_https: bool,
) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if require_https => {
            return Err("must use https:// (POSTBOX_REQUIRE_HTTPS is on)".into())
        }
        "http" => {}
        other => {
            return Err(format!(
                "scheme {other}:// is not allowed; use http:// or https://"
            ))
        }
    }
    if let Some(reason) = literal_target_refusal(url, allow_private) {
        return Err(reason);
    }
    if allow_private {
        return Ok(());
    }
    if let Some(url::Host::Domain(host)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let lookup = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await;
        if let Ok(Ok(addrs)) = lookup {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(format!(
                    "blocked target: {host} resolves to {}, which is not a public address",
                    bad.ip()
                ));
            }
        }
        // A name that does not resolve now may later: the resolver checks again at send time.
    }
    Ok(())
}

/// A DNS resolver that drops every non-public answer, and fails when none is left.
#[derive(Debug, Default, Clone)]
pub struct GuardedResolver;

#[derive(Debug, thiserror::Error)]
#[error("blocked target: {host} resolves only to non-public addresses")]
pub struct BlockedHost {
    host: String,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(BlockedHost { host }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub fn guarded_resolver() -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(
                !is_public(blocked.parse().unwrap()),
                "{blocked} must be blocked"
            );
        }
        for open in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(open.parse().unwrap()), "{open} must pass");
        }
    }

    #[test]
    fn numeric_tricks_in_urls_are_caught() {
        for u in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://017700000001/",
            "http://[::ffff:7f00:1]/",
            "http://localhost:8080/",
            "http://foo.localhost/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let url = url::Url::parse(u).unwrap();
            assert!(literal_target_refusal(&url, false).is_some(), "{u}");
            assert!(literal_target_refusal(&url, true).is_none(), "{u}");
        }
        let ok = url::Url::parse("https://example.com/hook").unwrap();
        assert!(literal_target_refusal(&ok, false).is_none());
    }
}
