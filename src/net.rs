//! Which network addresses a webhook may reach. Unless private targets are
//! allowed, only globally routable unicast addresses pass: the check runs on
//! literal-IP URLs and, through `GuardedResolver`, on every DNS answer at
//! connect time (so DNS rebinding and rows written by SQL are caught too).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

// IANA IPv4 Special-Purpose Address Registry, plus multicast and class E.
// Some entries there are "globally reachable" (AS112, AMT, 192.0.0.9/10);
// webhooks have no business with them, so they are refused too.
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
    "240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
];

// Only global unicast (2000::/3) can pass at all, which already refuses
// ::/8 (unspecified, loopback, IPv4-compatible ::a.b.c.d, IPv4-translated
// ::ffff:0:a.b.c.d), 64:ff9b:1::/48 (local-use NAT64), 100::/64 (discard),
// 5f00::/16 (SRv6), fc00::/7 (ULA), fe80::/10 and fec0::/10 (link/site-local),
// ff00::/8 (multicast) and every unassigned block. These are the special
// blocks inside 2000::/3 (IANA IPv6 Special-Purpose Address Registry).
const GLOBAL_UNICAST_V6: &str = "2000::/3";
const BLOCKED_V6: &[&str] = &[
    "2001::/23",     // IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID, ...
    "2001:db8::/32", // documentation
    "2002::/16",     // 6to4: refused whatever IPv4 it embeds (see below)
    "3fff::/20",     // documentation
];

struct Lists {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
    global_v6: Ipv6Net,
}

fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| Lists {
        v4: BLOCKED_V4
            .iter()
            .map(|n| n.parse().expect("valid CIDR literal"))
            .collect(),
        v6: BLOCKED_V6
            .iter()
            .map(|n| n.parse().expect("valid CIDR literal"))
            .collect(),
        global_v6: GLOBAL_UNICAST_V6.parse().expect("valid CIDR literal"),
    })
}

/// True when `ip` is a globally routable unicast address.
///
/// Forms that embed an IPv4 address are judged as follows:
/// - IPv4-mapped `::ffff:a.b.c.d` and NAT64 `64:ff9b::a.b.c.d`: by the IPv4
///   address (the OS or the NAT64 gateway connects to exactly that address);
/// - IPv4-compatible `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, Teredo
///   `2001::/32` and 6to4 `2002::/16`: always refused. They are deprecated or
///   tunnel forms whose path goes through relays we do not control, and no
///   real webhook endpoint needs them; refusing them outright leaves no
///   decoding subtleties (Teredo's obfuscated client address) to get wrong.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !lists().v4.iter().any(|net| net.contains(&ip))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
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
    let l = lists();
    l.global_v6.contains(&ip) && !l.v6.iter().any(|net| net.contains(&ip))
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

/// Longest webhook URL accepted, in bytes.
pub const URL_MAX: usize = 2048;

/// [`parse_target_url`]'s rule as a regular expression (ECMA 262 and
/// Python syntax), for the OpenAPI document: an http(s) scheme in any case,
/// a host name (letters, digits, `-`, `_`; the last label starts with a
/// letter; one trailing dot) or a dotted-quad IPv4 address, an optional
/// port, path segments that are not `.` or `..` (nor their `%2e` spellings)
/// and a query, each made of characters a URL parser leaves as they are.
/// IPv6 literals, which the rule accepts too, are left out of the pattern.
pub const URL_PATTERN: &str = concat!(
    "^[Hh][Tt][Tt][Pp][Ss]?://",
    "(?:(?:[A-Za-z0-9_-]+\\.)*(?![Xx][Nn]--)[A-Za-z][A-Za-z0-9_-]*\\.?",
    "|(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})",
    "(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?",
    "(?:/(?:(?:[A-Za-z0-9_~!$&'()*+,;=:@|^\\[\\].-]|%[0-9A-Fa-f]{2})*",
    "[A-Za-z0-9_~!$&'()*+,;=:@|^\\[\\]-]",
    "(?:[A-Za-z0-9_~!$&'()*+,;=:@|^\\[\\].-]|%[0-9A-Fa-f]{2})*)?)*",
    "(?:\\?(?:[A-Za-z0-9_~!$&()*+,;=:@|^\\[\\]./?-]|%[0-9A-Fa-f]{2})*)?$",
);

/// The one rule for what a webhook URL may look like, used by the API (on
/// create and update) and by the dispatcher (before every attempt, for rows
/// written with SQL): at most [`URL_MAX`] bytes of ASCII (internationalised
/// names in punycode), an absolute `http://` or `https://` URL (only
/// `https://` when `require_https`) that names a host, carries no
/// credentials and no fragment, and that a URL parser takes as written.
///
/// A URL parser (the WHATWG URL Standard, which every HTTP client follows)
/// silently repairs many strings into another target: `http:///path`
/// becomes `http://path/`, backslashes become slashes, tabs and line breaks
/// are dropped, `%65xample.com` becomes `example.com`, `http://0x7f.1/`
/// becomes `http://127.0.0.1/`, `/a/../b` becomes `/b`, spaces get
/// percent-encoded. Each is refused with the reason, so that the URL stored
/// and called is the one the client wrote. The only normalisations
/// accepted are those that cannot change the target: the scheme and host
/// name in lower case, a default port (`:443` for https) dropped, an empty
/// path written as `/`, and an IPv6 literal in its canonical text form.
/// A trailing dot on a host name (`example.com.`) is kept as written.
///
/// Answers the parsed URL or the rule it breaks; where it may connect is
/// [`validate_target`]'s and the resolver's business.
pub fn parse_target_url(raw: &str, require_https: bool) -> Result<url::Url, String> {
    if raw.len() > URL_MAX {
        return Err(format!("must be at most {URL_MAX} characters"));
    }
    if !raw.is_ascii() {
        return Err("must be ASCII: write an internationalised host name in punycode (xn--...) and percent-encode the path".into());
    }
    if raw.trim() != raw || raw.is_empty() {
        return Err("must be an absolute URL without surrounding spaces".into());
    }
    if raw.bytes().any(|b| b.is_ascii_control()) {
        return Err("must not contain control characters (tab, CR, LF, ...): a URL parser drops them and calls another URL".into());
    }
    if raw.contains('\\') {
        return Err("must not contain backslashes: a URL parser reads them as slashes".into());
    }
    let parsed = url::Url::parse(raw).map_err(|e| format!("is not a valid URL: {e}"))?;
    if let Some(refusal) = scheme_refusal(&parsed, false) {
        return Err(refusal);
    }
    let (scheme, rest) = raw.split_once(':').unwrap_or((raw, ""));
    let Some(after) = rest.strip_prefix("//") else {
        return Err(format!("must start with {scheme}:// followed by a host"));
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(end);
    if authority.is_empty() {
        return Err(format!(
            "must name a host after {scheme}:// (a URL parser would read the path as the host)"
        ));
    }
    if authority.contains('@') {
        return Err("must not carry credentials; use custom headers for authentication".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment (#...): it is never sent to the endpoint".into());
    }
    host_as_written(authority, &parsed)?;
    let as_parsed = &parsed[url::Position::BeforePath..];
    let written = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    if written != as_parsed {
        return Err(format!(
            "is not in normal form: a URL parser reads the path and query {tail:?} as {as_parsed:?}; send that instead"
        ));
    }
    if let Some(refusal) = scheme_refusal(&parsed, require_https) {
        return Err(refusal);
    }
    Ok(parsed)
}

/// Checks that the parser took `authority` (host and optional port, as
/// written) without turning it into another host.
fn host_as_written(authority: &str, parsed: &url::Url) -> Result<(), String> {
    let (host, port) = if authority.starts_with('[') {
        match authority.split_once(']') {
            Some((h, p)) => (&authority[..h.len() + 1], p.strip_prefix(':')),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.contains('%') {
        return Err(
            "must not percent-encode the host: a URL parser decodes it into another name".into(),
        );
    }
    if let Some(url::Host::Domain(_)) = parsed.host() {
        let name = host.strip_suffix('.').unwrap_or(host);
        let labels: Vec<&str> = name.split('.').collect();
        let ldh = |l: &&str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let last_ok = labels
            .last()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
        if !labels.iter().all(ldh) || !last_ok {
            return Err(format!(
                "host {host:?} is not a host name: dot-separated labels of letters, digits, - and _, the last starting with a letter"
            ));
        }
    }
    if host.starts_with('[') && host.contains('.') {
        return Err(
            "must write an IPv6 address in hexadecimal only (no embedded dotted IPv4)".into(),
        );
    }
    match parsed.host() {
        Some(url::Host::Ipv6(_)) => {}
        Some(_) if parsed.host_str() == Some(&host.to_ascii_lowercase()) => {}
        Some(url::Host::Ipv4(ip)) => {
            return Err(format!(
                "must write an IPv4 address as four decimal numbers: a URL parser reads {host:?} as {ip}"
            ))
        }
        Some(url::Host::Domain(d)) => {
            return Err(format!(
                "host {host:?} is not in normal form: a URL parser reads it as {d:?}"
            ))
        }
        None => return Err("must name a host".into()),
    }
    if let Some(port) = port {
        let canonical = parsed
            .port_or_known_default()
            .map(|p| p.to_string())
            .unwrap_or_default();
        if port != canonical {
            return Err(format!(
                "port {port:?} is not in normal form: write it as a decimal number without leading zeros"
            ));
        }
    }
    Ok(())
}

/// Why `url`'s scheme is refused: anything but `http` and `https`, and
/// `http` when `require_https` (POSTBOX_REQUIRE_HTTPS).
pub fn scheme_refusal(url: &url::Url, require_https: bool) -> Option<String> {
    match url.scheme() {
        "https" => None,
        "http" if require_https => Some("must use https:// (POSTBOX_REQUIRE_HTTPS is on)".into()),
        "http" => None,
        other => Some(format!(
            "scheme {other}:// is not allowed; use http:// or https://"
        )),
    }
}

/// The API's check of where an endpoint URL (already through
/// [`parse_target_url`]) points: literal addresses and, unless private
/// targets are allowed, a DNS lookup whose answers must all be public.
/// Returns the reason for a refusal.
pub async fn validate_target(url: &url::Url, allow_private: bool) -> Result<(), String> {
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

/// The DNS lookup behind `GuardedResolver`: host name in, socket addresses out.
pub type LookupFn = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

/// A DNS resolver that drops every non-public answer, and fails when none is
/// left. It runs at connect time for every new connection, so a name that
/// re-resolves to a private address later (DNS rebinding) is caught too.
#[derive(Clone, Default)]
pub struct GuardedResolver {
    /// `None`: the system resolver. Tests inject answers here.
    lookup: Option<LookupFn>,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("custom_lookup", &self.lookup.is_some())
            .finish()
    }
}

impl GuardedResolver {
    /// A resolver whose answers come from `lookup` (tests: a name that
    /// resolves to loopback, or to a mix of public and private addresses).
    pub fn with_lookup(lookup: LookupFn) -> GuardedResolver {
        GuardedResolver {
            lookup: Some(lookup),
        }
    }

    /// The public answers for `host`, or the reason there are none.
    pub async fn resolve_public(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let all: Vec<SocketAddr> = match &self.lookup {
            Some(lookup) => lookup(host.to_string()).await?,
            None => tokio::net::lookup_host((host, 0)).await?.collect(),
        };
        let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
        if public.is_empty() {
            return Err(Box::new(BlockedHost {
                host: host.to_string(),
            }));
        }
        Ok(public)
    }
}

/// A host name whose every address is non-public. Its message starts with
/// `blocked target`, which is how attempts record it.
#[derive(Debug, thiserror::Error)]
#[error("blocked target: {host} resolves only to non-public addresses")]
pub struct BlockedHost {
    pub host: String,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.resolve_public(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub fn guarded_resolver() -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for (blocked, class) in [
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network 0/8"),
            ("10.1.2.3", "RFC 1918"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.255", "RFC 1918"),
            ("192.168.1.1", "RFC 1918"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.0.1", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("100.127.255.254", "CGNAT"),
            ("192.0.0.8", "IETF assignments"),
            ("192.0.2.1", "TEST-NET-1"),
            ("198.51.100.7", "TEST-NET-2"),
            ("203.0.113.9", "TEST-NET-3"),
            ("198.18.0.1", "benchmarking"),
            ("192.88.99.1", "6to4 relay"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "v6 unspecified"),
            ("::1", "v6 loopback"),
            ("fc00::1", "ULA"),
            ("fd12:3456::1", "ULA"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "global multicast"),
            ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped private"),
            ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
            ("::127.0.0.1", "IPv4-compatible loopback"),
            ("::8.8.8.8", "IPv4-compatible (deprecated) even if public"),
            ("::ffff:0:7f00:1", "IPv4-translated loopback"),
            ("::ffff:0:808:808", "IPv4-translated, even if public"),
            ("64:ff9b::7f00:1", "NAT64 of loopback"),
            ("64:ff9b::a00:1", "NAT64 of private"),
            ("64:ff9b::a9fe:a9fe", "NAT64 of metadata"),
            ("64:ff9b:1::808:808", "local-use NAT64"),
            ("2002:7f00:1::", "6to4 of loopback"),
            ("2002:a9fe:a9fe::1", "6to4 of metadata"),
            ("2002:808:808::1", "6to4 of a public address: refused too"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001:2::1", "benchmarking"),
            ("2001:10::1", "ORCHID"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("100::1", "discard"),
            ("5f00::1", "SRv6"),
            ("4000::1", "unassigned, outside 2000::/3"),
        ] {
            assert!(
                !is_public(blocked.parse().unwrap()),
                "{blocked} ({class}) must be blocked"
            );
        }
        for open in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(open.parse().unwrap()), "{open} must pass");
        }
    }

    fn fixed(answers: &'static [&'static str]) -> GuardedResolver {
        GuardedResolver::with_lookup(Arc::new(move |_host| {
            Box::pin(async move {
                Ok(answers
                    .iter()
                    .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
                    .collect())
            })
        }))
    }

    #[tokio::test]
    async fn the_resolver_drops_private_answers_and_refuses_when_none_is_left() {
        let mixed = fixed(&["127.0.0.1", "93.184.216.34", "::1", "10.0.0.1"]);
        let got = mixed.resolve_public("rebind.example").await.unwrap();
        assert_eq!(got, vec!["93.184.216.34:0".parse().unwrap()]);
        for answers in [
            &["127.0.0.1"][..],
            &["169.254.169.254", "::ffff:127.0.0.1"][..],
            &[][..],
        ] {
            let err = fixed(answers)
                .resolve_public("rebind.example")
                .await
                .unwrap_err();
            assert!(err.to_string().starts_with("blocked target"), "{err}");
        }
        // The system resolver: localhost is loopback.
        let err = GuardedResolver::default()
            .resolve_public("localhost")
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("blocked target"), "{err}");
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
            "http://127.0.0.1./",
            "http://0/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://LOCALHOST./",
            "http://[fe80::1]/",
        ] {
            let url = url::Url::parse(u).unwrap();
            assert!(literal_target_refusal(&url, false).is_some(), "{u}");
            assert!(literal_target_refusal(&url, true).is_none(), "{u}");
        }
        let ok = url::Url::parse("https://example.com/hook").unwrap();
        assert!(literal_target_refusal(&ok, false).is_none());
    }

    #[test]
    fn urls_a_parser_would_repair_are_refused_with_the_reason() {
        for (raw, why) in [
            ("http:///path", "must name a host"),
            ("http:/example.com/", "must start with http://"),
            ("http:example.com", "must start with http://"),
            ("http://example.com\\hook", "backslashes"),
            ("http:\\\\example.com/", "backslashes"),
            ("http://exa\tmple.com/", "control characters"),
            ("http://example.com/a\r\nb", "control characters"),
            ("http://%65xample.com/", "percent-encode the host"),
            ("http://2130706433/", "four decimal numbers"),
            ("http://0x7f.1/", "four decimal numbers"),
            ("http://127.1/", "four decimal numbers"),
            ("http://127.0.0.1./", "four decimal numbers"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://@example.com/", "credentials"),
            ("http://example.com/#frag", "fragment"),
            ("http://example.com/a/../b", "normal form"),
            ("http://example.com/a b", "normal form"),
            ("http://example.com:080/", "port"),
            ("http://example.com:/", "port"),
            ("ftp://example.com/", "scheme ftp"),
            ("http://ex\u{e4}mple.com/", "ASCII"),
            ("http://a..b.com/", "not a host name"),
            ("http://a!b.com/", "not a host name"),
            ("http://example.1a/", "not a host name"),
            ("http://[::ffff:127.0.0.1]/", "hexadecimal"),
        ] {
            let err = parse_target_url(raw, false).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    #[test]
    fn urls_are_stored_as_written_up_to_harmless_normalisation() {
        for (raw, stored) in [
            (
                "https://example.com/hook?a=1&b=2",
                "https://example.com/hook?a=1&b=2",
            ),
            ("HTTPS://Example.COM/Hook", "https://example.com/Hook"),
            ("https://example.com", "https://example.com/"),
            ("https://example.com?x=1", "https://example.com/?x=1"),
            ("https://example.com:443/h", "https://example.com/h"),
            ("http://example.com:8080/h", "http://example.com:8080/h"),
            ("https://example.com./h", "https://example.com./h"),
            ("http://127.0.0.1:9/h", "http://127.0.0.1:9/h"),
            ("http://[::FFFF:7F00:1]/", "http://[::ffff:7f00:1]/"),
            (
                "https://xn--exmple-cua.com/a%20b",
                "https://xn--exmple-cua.com/a%20b",
            ),
        ] {
            let url = parse_target_url(raw, false).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(url.as_str(), stored);
        }
        assert!(parse_target_url("http://example.com/", true).is_err());
    }
}
