//! The endpoint form: what the browser sent, turned into the API's
//! `WebhookBody` (so the API's rules and messages apply), and the
//! catalogue grouped for the event-type picker.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::Req;
use crate::api::wire::{EventType, OrderingPolicy, Webhook, WebhookBody};
use crate::web::ApiError;

/// The form's values as typed, to show them again after a refusal.
#[derive(Serialize, Default)]
pub(super) struct FormValues {
    name: String,
    url: String,
    description: String,
    events: Vec<String>,
    headers: String,
    max_retries: String,
    retry_delay: String,
    /// `block` or `skip_failed`; blank: left out (the API's default).
    ordering_policy: String,
    active: bool,
}

impl FormValues {
    /// A new endpoint's form: the API's defaults, active.
    pub(super) fn new_endpoint() -> FormValues {
        FormValues {
            max_retries: crate::api::validate::DEFAULT_MAX_RETRIES.to_string(),
            retry_delay: crate::api::validate::DEFAULT_RETRY_DELAY.to_string(),
            ordering_policy: crate::store::OrderingPolicy::default().as_str().into(),
            active: true,
            ..FormValues::default()
        }
    }

    pub(super) fn from_webhook(w: &Webhook) -> FormValues {
        FormValues {
            name: w.name.clone(),
            url: w.url.clone(),
            description: w.description.clone().unwrap_or_default(),
            events: w.events.clone(),
            headers: w
                .headers
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            max_retries: w.max_retries.to_string(),
            retry_delay: w.retry_delay.to_string(),
            ordering_policy: match w.ordering_policy {
                OrderingPolicy::Block => "block",
                OrderingPolicy::SkipFailed => "skip_failed",
            }
            .into(),
            active: w.active,
        }
    }

    pub(super) fn from_form(req: &Req) -> FormValues {
        let f = &req.form;
        FormValues {
            name: f.get("name").unwrap_or("").to_string(),
            url: f.get("url").unwrap_or("").trim().to_string(),
            description: f.get("description").unwrap_or("").to_string(),
            events: f.all("events").into_iter().map(str::to_string).collect(),
            headers: f.get("headers").unwrap_or("").to_string(),
            max_retries: f.get("max_retries").unwrap_or("").to_string(),
            retry_delay: f.get("retry_delay").unwrap_or("").to_string(),
            ordering_policy: f.get("ordering_policy").unwrap_or("").trim().to_string(),
            active: f.get("active").is_some(),
        }
    }

    /// The API body these values make: numbers as JSON numbers when they
    /// are numbers (else the API names the field), blank numbers left out.
    pub(super) fn body(&self) -> Result<WebhookBody, ApiError> {
        // Blank: left out (the API's default on create, unchanged on edit).
        let number = |s: &str| -> Option<Value> {
            let s = s.trim();
            (!s.is_empty()).then(|| {
                serde_json::from_str::<serde_json::Number>(s)
                    .map(Value::Number)
                    .unwrap_or_else(|_| Value::String(s.to_string()))
            })
        };
        Ok(WebhookBody {
            name: Some(Value::String(self.name.clone())),
            url: Some(Value::String(self.url.clone())),
            description: Some(if self.description.trim().is_empty() {
                Value::Null
            } else {
                Value::String(self.description.clone())
            }),
            events: Some(json!(self.events)),
            headers: Some(parse_headers(&self.headers)?),
            max_retries: number(&self.max_retries),
            retry_delay: number(&self.retry_delay),
            active: Some(Value::Bool(self.active)),
            // The API names `orderingPolicy` when the value is not one of its two.
            ordering_policy: (!self.ordering_policy.is_empty())
                .then(|| Value::String(self.ordering_policy.clone())),
            // Not on the portal's form: left as they are (issue 15's and
            // 17's settings are set through the API or SQL).
            filter: None,
            template: None,
            batch: None,
            paused: None,
            rate_limit: None,
            max_in_flight: None,
            retry_schedule: None,
            backfill_since: None,
        })
    }
}

/// `Name: value` lines into the API's headers object.
fn parse_headers(text: &str) -> Result<Value, ApiError> {
    let mut map = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once(':') else {
            return Err(ApiError::validation(
                "headers",
                format!("each line is Name: value; {line:?} has no colon"),
            ));
        };
        map.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Ok(Value::Object(map))
}

/// The catalogue grouped for the picker: each group's `group.*` and types.
#[derive(Serialize)]
pub(super) struct Group {
    name: String,
    pattern: String,
    types: Vec<EventType>,
}

pub(super) fn groups(catalogue: Vec<EventType>) -> Vec<Group> {
    let mut out: Vec<Group> = vec![];
    for t in catalogue {
        let g = t
            .name
            .split_once('.')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        match out.iter_mut().find(|x| x.name == g) {
            Some(x) => x.types.push(t),
            None => out.push(Group {
                pattern: format!("{g}.*"),
                name: g,
                types: vec![t],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_become_an_object_and_bad_lines_name_the_field() {
        assert_eq!(
            parse_headers("X-A: 1\n\n  X-B :two words ").unwrap(),
            json!({"X-A": "1", "X-B": "two words"})
        );
        let e = parse_headers("nocolon").unwrap_err();
        assert!(e.message.starts_with("headers:"), "{}", e.message);
    }

    #[test]
    fn the_catalogue_groups_by_prefix() {
        let t = |n: &str| EventType {
            name: n.into(),
            description: String::new(),
        };
        let g = groups(vec![t("a.x"), t("b.y"), t("a.z")]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].pattern, "a.*");
        assert_eq!(g[0].types.len(), 2);
    }
}
