//! Form and query fields (`application/x-www-form-urlencoded`), in order,
//! repeated names kept (a checkbox list sends one pair per box).

/// Decoded name/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Decodes `bytes`; malformed escapes decode leniently, as browsers send them.
    pub fn parse(bytes: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, `None` when blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_and_blanks() {
        let f = Form::parse(b"events=a.b&events=c.*&name=+x+&empty=&pct=%zz");
        assert_eq!(f.all("events"), vec!["a.b", "c.*"]);
        assert_eq!(f.text("name"), Some("x"));
        assert_eq!(f.text("empty"), None);
        assert_eq!(f.get("pct"), Some("%zz"));
        assert_eq!(f.get("missing"), None);
    }
}
