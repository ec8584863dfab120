//! Webhook body templates (SPEC 7.3): the request body rendered from the
//! event instead of the standard one. Pure: no I/O, no clock, so a given
//! event renders to the same bytes on every attempt.
//!
//! A template is `"slack"`, `"discord"`, `"teams"` (built in, producing the
//! JSON each tool's incoming webhooks document) or `{"body": "<jinja>"}`,
//! rendered with minijinja in a sandbox: an environment with no loader and
//! the one template in it, whose source may not name another template
//! (`include`, `import`, `from` and `extends` are refused as syntax errors,
//! so no file and no other template can be reached; the crate is built with
//! multi-template support for the portal's pages), no auto-escaping, bounded
//! fuel (instructions), recursion and output.
//! Compiled templates are cached (the dispatcher renders a few templates
//! many times). The context is `id`, `type`,
//! `timestamp` (RFC 3339, milliseconds, UTC) and `data` (the payload).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, Value};
use uuid::Uuid;

/// Longest `{"body": ...}` template source, in bytes.
pub const SOURCE_MAX: usize = 64 * 1024;
/// Largest rendered body, in bytes (the API's body limit too).
pub const OUTPUT_MAX: usize = 1024 * 1024;
/// Instructions one render may run (minijinja fuel): far more than any
/// reasonable template over a 1 MiB payload needs, and a bound on a loop.
pub const FUEL: u64 = 200_000;
/// Nesting depth of one render (macros, loops, includes of itself).
pub const RECURSION_LIMIT: usize = 64;
/// Characters of the payload's JSON shown by the built-in chat templates
/// (Discord refuses a `content` over 2,000 characters).
pub const CHAT_DATA_MAX: usize = 1500;

/// A webhook's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Template {
    /// Slack incoming webhook: `{"text": ...}` (mrkdwn).
    Slack,
    /// Discord webhook: `{"content": ...}` (markdown, at most 2,000 characters).
    Discord,
    /// Microsoft Teams (Workflows "post to a channel when a webhook request
    /// is received"): a message with one Adaptive Card attachment.
    Teams,
    /// A Jinja template of the whole body.
    Body(String),
}

/// Why a template cannot be used or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Not one of the accepted shapes.
    #[error("must be \"slack\", \"discord\", \"teams\" or {{\"body\": \"<template>\"}}")]
    Shape,
    #[error("body must be at most {SOURCE_MAX} bytes")]
    TooLong,
    /// The Jinja source does not parse.
    #[error("template syntax error: {0}")]
    Syntax(String),
    /// The template failed while rendering this event.
    #[error("template failed to render: {0}")]
    Render(String),
    /// The stored payload is not JSON (written around the checks).
    #[error("event payload is not valid JSON: {0}")]
    Payload(String),
}

/// The event a template renders: what the standard body carries.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    pub id: Uuid,
    pub event_type: &'a str,
    pub created_at: DateTime<Utc>,
    /// The payload as JSON text.
    pub payload: &'a str,
}

impl EventView<'_> {
    /// `timestamp` as in the standard body: RFC 3339, milliseconds, `Z`.
    pub fn timestamp(&self) -> String {
        self.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

impl Template {
    /// The template a stored or submitted JSON value describes; `Ok(None)`
    /// for `null`. Checks the shape only (see [`Template::check`]).
    pub fn parse(v: &serde_json::Value) -> Result<Option<Template>, TemplateError> {
        use serde_json::Value as J;
        match v {
            J::Null => Ok(None),
            J::String(s) => match s.as_str() {
                "slack" => Ok(Some(Template::Slack)),
                "discord" => Ok(Some(Template::Discord)),
                "teams" => Ok(Some(Template::Teams)),
                _ => Err(TemplateError::Shape),
            },
            J::Object(o) if o.len() == 1 => match o.get("body") {
                Some(J::String(body)) => Ok(Some(Template::Body(body.clone()))),
                _ => Err(TemplateError::Shape),
            },
            _ => Err(TemplateError::Shape),
        }
    }

    /// Checks that a `Body` template is short enough and parses.
    pub fn check(&self) -> Result<(), TemplateError> {
        if let Template::Body(source) = self {
            if source.len() > SOURCE_MAX {
                return Err(TemplateError::TooLong);
            }
            refuse_other_templates(source)?;
            let env = environment();
            env.template_from_str(source)
                .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        }
        Ok(())
    }

    /// The body for `event`: deterministic (the same bytes for the same
    /// event and template).
    pub fn render(&self, event: &EventView<'_>) -> Result<String, TemplateError> {
        match self {
            // The built-ins are written directly (only their strings go
            // through serde_json): a few microseconds per delivery.
            Template::Slack => Ok(format!(
                "{{\"text\":{}}}",
                json_string(&chat_text(event, "*", "```"))
            )),
            Template::Discord => Ok(format!(
                "{{\"content\":{},\"allowed_mentions\":{{\"parse\":[]}}}}",
                json_string(&chat_text(event, "**", "```json\n"))
            )),
            Template::Teams => Ok(teams_card(event)),
            Template::Body(source) => render_body(source, event),
        }
    }
}

/// Parses and renders `template` (a stored or submitted value) for `event`;
/// `Ok(None)` when there is no template.
pub fn render(
    template: &serde_json::Value,
    event: &EventView<'_>,
) -> Result<Option<String>, TemplateError> {
    match Template::parse(template)? {
        None => Ok(None),
        Some(t) => t.check().and_then(|()| t.render(event)).map(Some),
    }
}

/// Statements that name another template: refused in a body template.
const OTHER_TEMPLATE_STATEMENTS: [&str; 4] = ["include", "import", "from", "extends"];

/// Refuses a source with a `{% include %}`, `{% import %}`, `{% from %}` or
/// `{% extends %}` statement (whitespace-control markers allowed). A
/// conservative scan of the text: such a statement inside `{% raw %}` is
/// refused too.
fn refuse_other_templates(source: &str) -> Result<(), TemplateError> {
    for (at, _) in source.match_indices("{%") {
        let rest = source[at + 2..].trim_start_matches(['-', '+']).trim_start();
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if OTHER_TEMPLATE_STATEMENTS.contains(&word.as_str()) {
            return Err(TemplateError::Syntax(format!(
                "`{word}` is not allowed in a body template: it renders from the event alone"
            )));
        }
    }
    Ok(())
}

/// The sandbox: no loader, no auto-escaping, bounded fuel and recursion.
fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env
}

/// A minijinja error as one line, with its cause and location.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Compiled `{"body": ...}` templates kept: a dispatcher renders the same
/// few templates over and over, so each is parsed once, not per delivery.
const CACHE_MAX: usize = 256;

/// The name a cached template is registered under in its own environment.
const BODY: &str = "body";

type Cache = Mutex<HashMap<String, Arc<Environment<'static>>>>;

/// An environment holding `source`, compiled, as [`BODY`]; from the cache
/// when it was compiled before. The cache is emptied when full (templates
/// are few; a flood of distinct ones costs a parse each, as without it).
fn compiled(source: &str) -> Result<Arc<Environment<'static>>, TemplateError> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(env) = cache.lock().expect("template cache").get(source) {
        return Ok(env.clone());
    }
    refuse_other_templates(source)?;
    let mut env = environment();
    env.add_template_owned(BODY, source.to_owned())
        .map_err(|e| TemplateError::Syntax(describe(&e)))?;
    let env = Arc::new(env);
    let mut kept = cache.lock().expect("template cache");
    if kept.len() >= CACHE_MAX {
        kept.clear();
    }
    kept.insert(source.to_owned(), env.clone());
    Ok(env)
}

fn render_body(source: &str, event: &EventView<'_>) -> Result<String, TemplateError> {
    if source.len() > SOURCE_MAX {
        return Err(TemplateError::TooLong);
    }
    let env = compiled(source)?;
    let tmpl = env
        .get_template(BODY)
        .map_err(|e| TemplateError::Syntax(describe(&e)))?;
    let data: serde_json::Value =
        serde_json::from_str(event.payload).map_err(|e| TemplateError::Payload(e.to_string()))?;
    let ctx = Value::from(BTreeMap::from([
        ("id", Value::from(event.id.to_string())),
        ("type", Value::from(event.event_type)),
        ("timestamp", Value::from(event.timestamp())),
        ("data", to_value(&data)),
    ]));
    let mut out = Capped::default();
    let rendered = tmpl.render_captured_to(ctx, &mut out).map(drop);
    match rendered {
        Ok(()) => String::from_utf8(out.bytes)
            .map_err(|_| TemplateError::Render("output is not UTF-8".into())),
        Err(_) if out.overflowed => Err(TemplateError::Render(format!(
            "output is larger than {OUTPUT_MAX} bytes"
        ))),
        Err(e) => Err(TemplateError::Render(describe(&e))),
    }
}

/// A JSON value as a template value. Numbers are converted by hand: the
/// crate's serde_json keeps arbitrary precision, which minijinja's serde
/// path would see as a map. Integers beyond 128 bits become floats.
fn to_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            let text = n.to_string();
            if let Ok(i) = text.parse::<i128>() {
                Value::from(i)
            } else if let Ok(u) = text.parse::<u128>() {
                Value::from(u)
            } else {
                Value::from(text.parse::<f64>().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => Value::from(a.iter().map(to_value).collect::<Vec<_>>()),
        J::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// The rendered bytes, refused past `OUTPUT_MAX`.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > OUTPUT_MAX {
            self.overflowed = true;
            return Err(io::Error::other("template output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// The chat message: the type in bold, the event id, then the payload as
/// a code block (cut to `CHAT_DATA_MAX` characters).
fn chat_text(event: &EventView<'_>, bold: &str, fence_open: &str) -> String {
    format!(
        "{bold}{}{bold} `{}` at {}\n{fence_open}{}\n```",
        event.event_type,
        event.id,
        event.timestamp(),
        clip(event.payload, CHAT_DATA_MAX)
    )
}

/// A string as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A Teams message carrying one Adaptive Card (1.4): the type as the title,
/// id and time below it, then the payload in monospace.
fn teams_card(event: &EventView<'_>) -> String {
    format!(
        concat!(
            "{{\"type\":\"message\",\"attachments\":[{{",
            "\"contentType\":\"application/vnd.microsoft.card.adaptive\",\"contentUrl\":null,",
            "\"content\":{{\"$schema\":\"http://adaptivecards.io/schemas/adaptive-card.json\",",
            "\"type\":\"AdaptiveCard\",\"version\":\"1.4\",\"body\":[",
            "{{\"type\":\"TextBlock\",\"text\":{},\"weight\":\"Bolder\",\"size\":\"Medium\",\"wrap\":true}},",
            "{{\"type\":\"TextBlock\",\"text\":{},\"isSubtle\":true,\"spacing\":\"None\",\"wrap\":true}},",
            "{{\"type\":\"TextBlock\",\"text\":{},\"fontType\":\"Monospace\",\"wrap\":true}}",
            "]}}}}]}}"
        ),
        json_string(event.event_type),
        json_string(&format!("{} at {}", event.id, event.timestamp())),
        json_string(&clip(event.payload, CHAT_DATA_MAX)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn event(payload: &str) -> EventView<'_> {
        EventView {
            id: Uuid::from_u128(1),
            event_type: "payment.succeeded",
            created_at: Utc.with_ymd_and_hms(2026, 11, 28, 19, 47, 22).unwrap(),
            payload,
        }
    }

    #[test]
    fn shapes_are_parsed_and_others_refused() {
        assert_eq!(Template::parse(&json!(null)), Ok(None));
        assert_eq!(Template::parse(&json!("slack")), Ok(Some(Template::Slack)));
        assert_eq!(
            Template::parse(&json!({"body": "x"})),
            Ok(Some(Template::Body("x".into())))
        );
        for bad in [
            json!("email"),
            json!(1),
            json!({}),
            json!({"body": 1}),
            json!({"body": "x", "more": 1}),
            json!(["slack"]),
        ] {
            assert_eq!(Template::parse(&bad), Err(TemplateError::Shape), "{bad}");
        }
    }

    #[test]
    fn a_body_template_sees_id_type_timestamp_and_data() {
        let t = Template::Body(
            r#"{"t": {{ type | tojson }}, "at": "{{ timestamp }}", "who": {{ data.user.name | tojson }}, "n": {{ data.n + 1 }}, "big": {{ data.big }}, "id": "{{ id }}"}"#.into(),
        );
        let out = t
            .render(&event(
                r#"{"user": {"name": "Ada \"L\""}, "n": 41, "big": 12345678901234567890}"#,
            ))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["t"], "payment.succeeded");
        assert_eq!(v["at"], "2026-11-28T19:47:22.000Z");
        assert_eq!(v["who"], "Ada \"L\"");
        assert_eq!(v["n"], 42);
        assert_eq!(v["big"].to_string(), "12345678901234567890");
        assert_eq!(v["id"], Uuid::from_u128(1).to_string());
    }

    #[test]
    fn rendering_is_deterministic() {
        let t = Template::Body("{{ data | tojson }} {% for k in data %}{{ k }}{% endfor %}".into());
        let e = event(r#"{"b": 1, "a": [1, 2], "c": {"z": null}}"#);
        assert_eq!(t.render(&e).unwrap(), t.render(&e).unwrap());
    }

    #[test]
    fn syntax_errors_are_found_before_rendering() {
        let err = Template::Body("{{ data.x ".into()).check().unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err}");
        assert!(Template::Body("x".repeat(SOURCE_MAX + 1)).check().is_err());
    }

    #[test]
    fn runaway_templates_stop_with_a_reason() {
        let e = event(r#"{"n": 0}"#);
        let fuel = Template::Body(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                .into(),
        );
        assert!(matches!(fuel.render(&e), Err(TemplateError::Render(_))));
        let big = Template::Body(
            "{% for i in range(10000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}".into(),
        );
        let err = big.render(&e).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let zero = Template::Body("{{ 1 // data.n }}".into());
        assert!(matches!(zero.render(&e), Err(TemplateError::Render(_))));
    }

    #[test]
    fn no_other_template_and_no_file_can_be_reached() {
        // include, import, from and extends are refused before parsing
        // (the crate has multi-template support for the portal), so no
        // file, no other template and no self-inclusion; the environment
        // has no loader either.
        for source in [
            "{% include '/etc/passwd' %}",
            "x{% include 'body' %}",
            "{%- include 'body' %}",
            "{%+   extends 'body' %}",
            "{% import 'body' as b %}",
            "{% from 'body' import x %}",
        ] {
            let err = Template::Body(source.into()).check().unwrap_err();
            assert!(matches!(err, TemplateError::Syntax(_)), "{source}: {err}");
        }
    }

    #[test]
    fn chat_templates_produce_their_tools_shapes() {
        let e = event(r#"{"amount": 1200, "currency": "EUR"}"#);
        let slack: serde_json::Value =
            serde_json::from_str(&Template::Slack.render(&e).unwrap()).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.starts_with("*payment.succeeded*"), "{text}");
        assert!(text.contains(r#""amount": 1200"#), "{text}");
        let discord: serde_json::Value =
            serde_json::from_str(&Template::Discord.render(&e).unwrap()).unwrap();
        assert!(discord["content"]
            .as_str()
            .unwrap()
            .starts_with("**payment.succeeded**"));
        let teams: serde_json::Value =
            serde_json::from_str(&Template::Teams.render(&e).unwrap()).unwrap();
        assert_eq!(teams["type"], "message");
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["text"], "payment.succeeded");
        assert_eq!(card["contentUrl"], serde_json::Value::Null);
        assert_eq!(card["content"]["version"], "1.4");
        let blocks = card["content"]["body"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert!(blocks[2]["text"]
            .as_str()
            .unwrap()
            .contains("\"amount\": 1200"));
        assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
        // Quotes and newlines in the event are escaped, not breaking the JSON.
        let odd = EventView {
            event_type: "a\"b\nc",
            ..event(r#"{"q": "\"\\"}"#)
        };
        for t in [Template::Slack, Template::Discord, Template::Teams] {
            let v: serde_json::Value = serde_json::from_str(&t.render(&odd).unwrap()).unwrap();
            assert!(v.is_object(), "{t:?}");
        }
    }

    #[test]
    fn discord_content_stays_under_its_limit() {
        let long = format!(r#"{{"s": "{}"}}"#, "é".repeat(5000));
        let discord: serde_json::Value =
            serde_json::from_str(&Template::Discord.render(&event(&long)).unwrap()).unwrap();
        assert!(discord["content"].as_str().unwrap().chars().count() <= 2000);
    }
}
