//! The portal's settings (`docs/PORTAL.md`): where its links point, who may
//! frame it, how long a session lasts. Checked once at start-up.

use std::time::Duration;

use super::defaults;
use crate::error::AppError;

/// The portal's settings, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalConfig {
    /// The public origin the portal's links start with, without a
    /// trailing slash, e.g. `https://hooks.example.com`
    /// (POSTBOX_PORTAL_BASE_URL). Empty: `http://` + the address the API
    /// listens on (`app::serve` fills it in).
    pub base_url: String,
    /// The CSP `frame-ancestors` sources: `'none'` (the default), `'self'`,
    /// or origins such as `https://app.example.com`, space-separated
    /// (POSTBOX_PORTAL_FRAME_ANCESTORS).
    pub frame_ancestors: String,
    /// How long a session lasts after its link is opened (POSTBOX_PORTAL_SESSION_TTL).
    pub session_ttl: Duration,
}

impl Default for PortalConfig {
    fn default() -> PortalConfig {
        PortalConfig {
            base_url: format!("http://{}", defaults::LISTEN),
            frame_ancestors: defaults::PORTAL_FRAME_ANCESTORS.into(),
            session_ttl: defaults::duration(defaults::PORTAL_SESSION_TTL),
        }
    }
}

impl PortalConfig {
    /// Checks the settings: `base_url` an http(s) URL without query or
    /// fragment; every frame ancestor `'none'` (alone), `'self'`, `*`-free
    /// scheme://host[:port] or `https:`; a session of 1 minute to 30 days.
    pub fn new(
        base_url: Option<&str>,
        frame_ancestors: &str,
        session_ttl: Duration,
    ) -> Result<PortalConfig, AppError> {
        let bad = |what: &str, why: String| AppError::Config(format!("{what}: {why}"));
        let base_url = base_url.unwrap_or("").trim();
        if base_url.is_empty() {
            return Ok(PortalConfig {
                base_url: String::new(),
                ..PortalConfig::new(Some("http://localhost"), frame_ancestors, session_ttl)?
            });
        }
        let url = url::Url::parse(base_url).map_err(|e| {
            bad(
                "POSTBOX_PORTAL_BASE_URL",
                format!("{base_url:?} is not a URL ({e})"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad(
                "POSTBOX_PORTAL_BASE_URL",
                format!("{base_url:?} must be http:// or https:// with a host, no query and no fragment"),
            ));
        }
        let frame_ancestors = frame_ancestors_value(frame_ancestors)
            .map_err(|why| bad("POSTBOX_PORTAL_FRAME_ANCESTORS", why))?;
        if session_ttl < Duration::from_secs(60) || session_ttl > Duration::from_secs(30 * 86400) {
            return Err(bad(
                "POSTBOX_PORTAL_SESSION_TTL",
                "must be between 1m and 30d".into(),
            ));
        }
        Ok(PortalConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            frame_ancestors,
            session_ttl,
        })
    }

    /// Whether cookies get `Secure`: the links are https.
    pub fn secure(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

/// The `frame-ancestors` sources from an operator's list (spaces or commas
/// between entries); refuses anything that could break out of the header.
pub fn frame_ancestors_value(raw: &str) -> Result<String, String> {
    let sources: Vec<&str> = raw
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if sources.is_empty() {
        return Ok(defaults::PORTAL_FRAME_ANCESTORS.into());
    }
    for s in &sources {
        let ok = match *s {
            "'none'" => sources.len() == 1,
            "'self'" | "https:" => true,
            origin => url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && (u.path() == "/" || u.path().is_empty())
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && !origin.ends_with('/')
                    && origin
                        .chars()
                        .all(|c| c.is_ascii_graphic() && c != ';' && c != '\'')
            }),
        };
        if !ok {
            return Err(format!(
                "{s:?} is not a frame ancestor: use 'none' (alone), 'self', https: or origins such as https://app.example.com"
            ));
        }
    }
    Ok(sources.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_accept_origins_and_refuse_injection() {
        assert_eq!(frame_ancestors_value("").unwrap(), "'none'");
        assert_eq!(
            frame_ancestors_value("'self', https://app.example.com").unwrap(),
            "'self' https://app.example.com"
        );
        for bad in [
            "https://a.example; script-src *",
            "'none' 'self'",
            "javascript:alert(1)",
            "https://a.example/path",
            "*",
        ] {
            assert!(frame_ancestors_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_url_must_be_http_without_query() {
        let ttl = Duration::from_secs(3600);
        assert_eq!(
            PortalConfig::new(Some("https://h.example/"), "", ttl)
                .unwrap()
                .base_url,
            "https://h.example"
        );
        assert!(PortalConfig::new(Some("https://h.example"), "", ttl)
            .unwrap()
            .secure());
        for bad in ["ftp://h", "https://h?x=1", "nope", "http://h#f"] {
            assert!(PortalConfig::new(Some(bad), "", ttl).is_err(), "{bad}");
        }
        assert!(PortalConfig::new(Some("http://h"), "", Duration::from_secs(1)).is_err());
    }
}
