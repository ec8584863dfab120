//! The portal's HTML: minijinja templates compiled into the binary, with
//! HTML autoescape on (every `.html` template), so payloads, names, URLs and
//! response bodies are shown as text whatever they hold. The vendored
//! script and stylesheet are embedded the same way.

use minijinja::Environment;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("endpoints.html", include_str!("templates/endpoints.html")),
    (
        "endpoint_form.html",
        include_str!("templates/endpoint_form.html"),
    ),
    ("endpoint.html", include_str!("templates/endpoint.html")),
    ("secret.html", include_str!("templates/secret.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("delivery.html", include_str!("templates/delivery.html")),
    ("verify.html", include_str!("templates/verify.html")),
    ("tail.html", include_str!("templates/tail.html")),
    ("admin.html", include_str!("templates/admin.html")),
    ("message.html", include_str!("templates/message.html")),
];

/// The vendored assets: name, content type, bytes.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/portal.js"),
    ),
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_str!("assets/portal.css"),
    ),
];

/// The compiled templates.
pub struct Views {
    env: Environment<'static>,
}

impl Views {
    /// Compiles every template; a syntax error is a bug the unit test catches.
    pub fn new() -> Views {
        let mut env = Environment::new();
        // Undefined variables are errors, so a typo cannot render as empty.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        Views { env }
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

impl Default for Views {
    fn default() -> Views {
        Views::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        let v = Views::new();
        let html = v
            .render(
                "message.html",
                ctx! {
                    title => "<script>alert(1)</script>",
                    message => "<b>x</b>",
                    session => minijinja::Value::from(()),
                },
            )
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>x</b>"));
    }
}
