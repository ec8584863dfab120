//! A running API over real HTTP on 127.0.0.1:0, against a fresh database,
//! with helpers to mint tokens and make requests.

use std::time::Duration;

use postbox::api;
use serde_json::Value;

use crate::support::{api_state, TestDb};

pub const SECRET: &str = "test-jwt-secret";

pub struct Api {
    pub db: TestDb,
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn start() -> Api {
        Api::start_with(true).await
    }

    /// `allow_private`: whether webhooks may target loopback and private
    /// addresses (the recording receiver lives on 127.0.0.1).
    pub async fn start_with(allow_private: bool) -> Api {
        let db = TestDb::new().await;
        let state = api_state(db.store(), SECRET, allow_private);
        Api::serve(db, state).await
    }

    /// Serves `state` (built on `db`'s store) over real HTTP.
    pub async fn serve(db: TestDb, mut state: api::ApiState) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Portal links point at this server (as `app::serve` does).
        if state.portal.base_url == postbox::config::PortalConfig::default().base_url {
            state.portal.base_url = format!("http://{addr}");
        }
        tokio::spawn(warp::serve(api::routes(state)).incoming(listener).run());
        Api {
            db,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    pub fn token(&self, sub: &str) -> String {
        token(sub, false)
    }

    pub fn admin(&self) -> String {
        token("ops", true)
    }

    /// A JSON request; answers the status and the parsed body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    /// A request with raw headers and body bytes.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Creates a webhook for `owner` through the API; answers its JSON.
    pub async fn create(&self, owner: &str, body: Value) -> Value {
        let (status, json) = self
            .call(
                "POST",
                "/api/webhooks",
                Some(&self.token(owner)),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{json}");
        json["data"].clone()
    }
}

pub fn token(sub: &str, admin: bool) -> String {
    postbox::api::auth::mint(
        SECRET,
        sub,
        admin,
        Duration::from_secs(600),
        chrono::Utc::now().timestamp(),
    )
    .unwrap()
}

/// True when `json` is the error envelope.
pub fn is_error_envelope(json: &Value) -> bool {
    json["success"] == Value::Bool(false)
        && json["error"]["code"].is_string()
        && json["error"]["message"].is_string()
}
