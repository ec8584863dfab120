//! A portal session over real HTTP: mint a link through the admin API, open
//! it, keep its cookie and CSRF token, and make page requests.

use reqwest::redirect::Policy;
use serde_json::json;

use crate::api_support::Api;

/// An open portal session.
pub struct PortalSession {
    pub cookie: String,
    pub csrf: String,
    pub base: String,
    pub http: reqwest::Client,
}

/// A client that does not follow redirects (the tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `POST /api/portal/sessions` as an admin; the link's URL.
pub async fn mint(api: &Api, owner: &str, admin: bool) -> String {
    let (status, body) = api
        .call(
            "POST",
            "/api/portal/sessions",
            Some(&api.admin()),
            Some(json!({"ownerId": owner, "admin": admin})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["url"].as_str().unwrap().to_string()
}

/// The `value` of the first `name="csrf"` input of `html`.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

impl PortalSession {
    /// Mints a link for `owner` and opens it.
    pub async fn open(api: &Api, owner: &str, admin: bool) -> PortalSession {
        let url = mint(api, owner, admin).await;
        let http = client();
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 303, "the link redirects");
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        let mut s = PortalSession {
            cookie,
            csrf: String::new(),
            base: api.base.clone(),
            http,
        };
        let (status, html) = s.get("/portal/").await;
        assert_eq!(status, 200, "{html}");
        s.csrf = csrf_of(&html);
        s
    }

    /// GET `path` with the session's cookie: the response, unread.
    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// GET `path`: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.get_raw(path).await;
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POST a form to `path` with the session's CSRF token plus `fields`:
    /// status, `Location` (redirects) and body.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        self.post_raw(path, &form).await
    }

    /// POST exactly `fields` (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, location, r.text().await.unwrap())
    }

    /// Creates an endpoint through the portal's form; its id.
    pub async fn create(&self, api: &Api, name: &str, url: &str, events: &[&str]) -> String {
        let mut fields = vec![("name", name), ("url", url), ("active", "1")];
        fields.extend(events.iter().map(|e| ("events", *e)));
        let (status, _, html) = self.post("/portal/endpoints", &fields).await;
        assert_eq!(status, 201, "{html}");
        assert!(html.contains("whsec_"), "the secret is shown once");
        let (_, list) = api
            .call(
                "GET",
                "/api/webhooks",
                Some(&api.token(&self.owner(api).await)),
                None,
            )
            .await;
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn owner(&self, _api: &Api) -> String {
        let (_, html) = self.get("/portal/").await;
        let at = html.find("title=\"Signed in as\">").unwrap() + 21;
        html[at..].split('<').next().unwrap().to_string()
    }
}
