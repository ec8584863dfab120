//! The verify page: send a `webhook.test` event through the API's own test
//! route (a real, signed, recorded delivery) and show its status, response
//! time and response body; for `https://` endpoints, the certificate too.

use warp::http::StatusCode;

use super::{path_id, PageResult, Portal, Session};
use crate::api::deliveries;
use crate::api::request::{AnyQuery, WebhookId};

impl Portal {
    /// `GET /portal/endpoints/{id}/verify`, and the page after a send.
    pub(super) async fn verify_page(
        &self,
        s: &Session,
        id: &str,
        result: Option<minijinja::Value>,
    ) -> PageResult {
        let id = path_id(id)?;
        let webhook = crate::api::wire::Webhook::from(self.owned(s, id).await?);
        Ok(self.page(
            StatusCode::OK,
            Some(s),
            "verify.html",
            ctx! {
                title => format!("Verify {}", webhook.name),
                https => webhook.url.starts_with("https://"),
                webhook => webhook,
                result => result,
            },
        ))
    }

    /// `POST /portal/endpoints/{id}/verify`: the API's test send, then the
    /// certificate of an https endpoint.
    pub(super) async fn verify_send(&self, s: &Session, id_raw: &str) -> PageResult {
        let id = path_id(id_raw)?;
        let test = deliveries::test_send(&self.api, self.input(s, WebhookId(id), AnyQuery, None))
            .await?
            .0;
        let body = self
            .api
            .store
            .delivery_get(test.delivery_id, id, &s.row.owner_id)
            .await?
            .and_then(|d| d.response_body);
        let webhook = self.owned(s, id).await?;
        let (cert, cert_error) = match url::Url::parse(&webhook.url) {
            Ok(u) if u.scheme() == "https" => {
                match super::cert::inspect(&u, self.api.allow_private_targets, self.api.clock.now())
                    .await
                {
                    Ok(r) => (Some(r), None),
                    Err(e) => (None, Some(e)),
                }
            }
            _ => (None, None),
        };
        let result = ctx! {
            success => test.success,
            status_code => test.status_code,
            duration_ms => test.duration_ms,
            error => test.error,
            delivery_id => test.delivery_id,
            response_body => body,
            cert => cert,
            cert_error => cert_error,
        };
        self.verify_page(s, id_raw, Some(result)).await
    }
}
