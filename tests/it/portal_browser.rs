//! The portal in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, fantoccini) through the main flows. With
//! `POSTBOX_PORTAL_SCREENSHOTS=docs/portal` it also writes the screenshots
//! the docs show (desktop 1280 px and narrow 375 px wide).
//!
//! Without chromedriver the test fails in CI (`CI=true`) with what to
//! install, and is skipped with a printed reason elsewhere.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::api_support::Api;
use crate::portal_support::mint;
use crate::support::{dispatch_config, publish, spawn_dispatcher, system_clock, Receiver};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for a page element (the page's own work, not a sleep).
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// chromedriver's path, or why the browser tests cannot run.
fn chromedriver() -> Result<PathBuf, String> {
    let path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    let path = PathBuf::from(path);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does) or set CHROMEDRIVER",
            path.display()
        ))
    }
}

async fn start_driver(path: PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    crate::support::wait_until("chromedriver answers", WAIT, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US"]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Where screenshots go, when asked for.
fn shots() -> Option<PathBuf> {
    std::env::var("POSTBOX_PORTAL_SCREENSHOTS")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Checks that the page reads at 375 px (nothing wider than the screen, so
/// no sideways scrolling), and saves it as `<name>-desktop.png` and
/// `<name>-narrow.png` when screenshots are asked for.
async fn shoot(c: &Client, name: &str) {
    let dir = shots();
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).unwrap();
    }
    for (suffix, width, height) in [("desktop", 1280, 900), ("narrow", 375, 812)] {
        c.set_window_size(width, height).await.unwrap();
        if suffix == "narrow" {
            let fits = c
                .execute(
                    "return document.documentElement.scrollWidth <= window.innerWidth",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(fits, json!(true), "{name} is wider than 375 px");
        }
        let Some(dir) = &dir else { continue };
        // Full page height, so the screenshot shows the whole page.
        let h = c
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(height as u64) as u32;
        c.set_window_size(width, h.clamp(height, 4000))
            .await
            .unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
    }
    c.set_window_size(1280, 900).await.unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn click(c: &Client, at: Locator<'_>) {
    c.find(at).await.unwrap().click().await.unwrap();
}

async fn type_into(c: &Client, at: Locator<'_>, text: &str) {
    c.find(at).await.unwrap().send_keys(text).await.unwrap();
}

async fn value(c: &Client, at: Locator<'_>) -> String {
    c.find(at)
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap()
}

/// Waits until the page's body text contains `what`.
async fn wait_text(c: &Client, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Mid-navigation there may be no body yet: look again.
        let body = match c.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains(what) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("the page never showed {what:?}: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_main_flows_work_in_a_real_browser() {
    let path = match chromedriver() {
        Ok(p) => p,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the browser tests must run in CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping the browser test: {why}");
            return;
        }
    };
    let api = Api::start().await;
    let receiver = Receiver::ok().await;
    let dispatcher = spawn_dispatcher(api.db.store(), dispatch_config(), system_clock());
    let theirs = api
        .create(
            "other",
            json!({"name": "theirs", "url": "http://127.0.0.1:9/h", "events": ["*"]}),
        )
        .await;
    let driver = start_driver(path).await;
    let c = browser(&driver).await;

    // Open a portal link: it lands on the (empty) endpoints page.
    let link = mint(&api, "acme", true).await;
    c.goto(&link).await.unwrap();
    wait_text(&c, "No endpoints yet").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/portal/");
    // Keyboard: the first Tab reaches the skip link.
    type_into(&c, Locator::Css("body"), "\u{E004}").await;
    let focused = c
        .execute("return document.activeElement.className", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("skip"));
    shoot(&c, "endpoints-empty").await;

    // Create an endpoint with the form and the event type picker.
    click(&c, Locator::LinkText("Create your first endpoint")).await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Id("f-name"))
        .await
        .unwrap();
    shoot(&c, "endpoint-new").await;
    type_into(&c, Locator::Id("f-name"), "Orders <b>bot</b>").await;
    type_into(&c, Locator::Id("f-url"), &receiver.url()).await;
    click(&c, Locator::Css("input[value='project.*']")).await;
    click(&c, Locator::Css("input[value='webhook.test']")).await;
    click(&c, Locator::Css("form.stack button[type=submit]")).await;
    wait_text(&c, "shown this once").await;
    let first_secret = value(&c, Locator::Id("secret")).await;
    assert!(first_secret.starts_with("whsec_"));
    shoot(&c, "secret").await;
    let id = c
        .find(Locator::LinkText("Continue to the endpoint"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap()
        .trim_start_matches("/portal/endpoints/")
        .to_string();

    // The live tail shows a delivery as it happens; the payload carries a
    // script tag that must stay text.
    c.goto(&format!("{}/portal/tail", api.base)).await.unwrap();
    wait_text(&c, "Live:").await;
    let db = api.db.client().await;
    publish(
        &db,
        "project.created",
        json!({"name": "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"}),
        "acme",
    )
    .await;
    let row = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#tail-rows tr"))
        .await
        .unwrap();
    assert!(row.text().await.unwrap().contains("project.created"));
    wait_text(&c, "success").await;
    receiver.wait_for(1, WAIT).await;
    // A few more, for the screenshot: they join the top of the table.
    for ty in ["project.updated", "project.updated", "project.deleted"] {
        publish(&db, ty, json!({"id": 42}), "acme").await;
    }
    receiver.wait_for(4, WAIT).await;
    wait_text(&c, "project.deleted").await;
    shoot(&c, "tail").await;

    // Open its attempts.
    row.find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "Attempts").await;
    let payload = text_of(&c, "pre.code").await;
    assert!(
        payload.contains("<script>window.__pwned = 1</script>"),
        "shown as text: {payload}"
    );
    let pwned = c
        .execute("return window.__pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!(true), "the payload's script never ran");
    let attempts = text_of(&c, "#h-attempts + table tbody").await;
    assert!(attempts.contains("200"), "{attempts}");
    // Times are shown in the viewer's time zone by the script (not the raw ISO string).
    let created = text_of(&c, "dl.facts time").await;
    assert!(!created.contains('T'), "localised: {created}");
    shoot(&c, "delivery").await;

    // Retry it: a second request arrives.
    click(&c, Locator::Css("form[action$='/retry'] button")).await;
    wait_text(&c, "Queued again").await;
    receiver.wait_for(5, WAIT).await;

    // The endpoint's page, its log, verify.
    c.goto(&format!("{}/portal/endpoints/{id}", api.base))
        .await
        .unwrap();
    wait_text(&c, "Statistics").await;
    shoot(&c, "endpoint").await;
    c.goto(&format!("{}/portal/endpoints/{id}/deliveries", api.base))
        .await
        .unwrap();
    wait_text(&c, "project.created").await;
    shoot(&c, "deliveries").await;
    c.goto(&format!("{}/portal/endpoints/{id}/verify", api.base))
        .await
        .unwrap();
    click(&c, Locator::Css("main form button")).await;
    wait_text(&c, "Delivered").await;
    shoot(&c, "verify").await;

    // Rotate the secret (the confirm-free form).
    c.goto(&format!("{}/portal/endpoints/{id}", api.base))
        .await
        .unwrap();
    click(&c, Locator::Css("form[action$='/rotate'] button")).await;
    wait_text(&c, "Secret rotated").await;
    let second = value(&c, Locator::Id("secret")).await;
    assert!(second.starts_with("whsec_") && second != first_secret);

    // Another owner's endpoint is not found.
    let other = theirs["id"].as_str().unwrap();
    c.goto(&format!("{}/portal/endpoints/{other}", api.base))
        .await
        .unwrap();
    wait_text(&c, "Not found").await;
    let body = text_of(&c, "main").await;
    assert!(!body.contains("theirs"));

    // The list now shows health at a glance; the operator view.
    c.goto(&format!("{}/portal/", api.base)).await.unwrap();
    wait_text(&c, "Orders <b>bot</b>").await;
    shoot(&c, "endpoints").await;
    c.goto(&format!("{}/portal/admin", api.base)).await.unwrap();
    wait_text(&c, "Event catalogue").await;
    shoot(&c, "admin").await;

    c.close().await.unwrap();
    dispatcher.shutdown().await;
}
