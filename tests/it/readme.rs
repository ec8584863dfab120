//! The README, run: its SQL quick start delivers a signed webhook through a
//! real dispatcher, its commands parse, it links every document in docs/; and
//! the API table of docs/WEBHOOKS.md matches the OpenAPI document and the
//! routes actually served.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::cli::Cli;
use clap::Parser;
use postbox::signing::{verify, SigningKey};

use crate::support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The receiver URL the README's INSERT names; the test's receiver replaces it.
const README_URL: &str = "http://127.0.0.1:4000/hook";

fn read(path: &str) -> String {
    let path = Path::new(ROOT).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced blocks of `lang`, in order, with the indentation of list items
/// removed.
fn fenced(doc: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}");
    let mut blocks = vec![];
    let mut current: Option<(usize, Vec<String>)> = None;
    for line in doc.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == open => {
                current = Some((line.len() - trimmed.len(), vec![]));
            }
            None => {}
            Some((indent, lines)) => {
                if trimmed == "```" {
                    blocks.push(lines.join("\n"));
                    current = None;
                } else {
                    lines.push(line.get(*indent..).unwrap_or("").to_string());
                }
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```{lang} block");
    blocks
}

fn first_column(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<String>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn readme_sql_quick_start_delivers_a_signed_webhook() {
    let readme = read("README.md");
    let blocks = fenced(&readme, "sql");
    assert!(
        blocks.len() >= 4,
        "the README has its quick-start and business-transaction SQL blocks"
    );
    assert_eq!(
        blocks.iter().filter(|b| b.contains(README_URL)).count(),
        1,
        "exactly one block registers the webhook at {README_URL}"
    );

    let db = TestDb::new().await;
    let client = db.client().await;
    // The business table the README's own-transaction example updates.
    client
        .batch_execute(
            "CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
             INSERT INTO projects VALUES (42, 'Apollo');",
        )
        .await
        .unwrap();
    let receiver = Receiver::ok().await;
    let dispatcher = spawn_dispatcher(db.store(), dispatch_config(), system_clock());

    let mut secret = None;
    let mut published = 0;
    for block in &blocks {
        let sql = block.replace(README_URL, &receiver.url());
        if sql.contains("FROM postbox.deliveries") {
            // What the user watches: every delivery so far reaches success.
            wait_until(
                "the README's deliveries query shows every delivery as success",
                Duration::from_secs(20),
                || async {
                    let rows = first_column(&client.simple_query(&sql).await.unwrap());
                    rows.len() == published && rows.iter().all(|r| r[0] == "success")
                },
            )
            .await;
            let rows = first_column(&client.simple_query(&sql).await.unwrap());
            for row in rows {
                assert_eq!(
                    row,
                    ["success", "1", "200"],
                    "status, attempts, response_code"
                );
            }
            continue;
        }
        let messages = client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|e| panic!("README block failed: {e}\n{sql}"));
        if sql.contains("RETURNING id, secret") {
            let row = first_column(&messages)
                .pop()
                .expect("the INSERT answers a row");
            assert!(row[1].starts_with("whsec_"), "a generated secret: {row:?}");
            secret = Some(row[1].clone());
        }
        published += sql.matches("postbox.publish(").count();
    }
    assert!(published >= 2, "quick start and business example publish");

    wait_until(
        "every README event delivered",
        Duration::from_secs(20),
        || async {
            count(
                &client,
                "SELECT count(*) FROM postbox.deliveries WHERE status = 'success'",
            )
            .await
                == published as i64
        },
    )
    .await;
    let name: String = client
        .query_one("SELECT name FROM projects WHERE id = 42", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        name, "Atlas",
        "the business change committed with its event"
    );

    let key =
        SigningKey::from_secret(&secret.expect("the README's INSERT returned a secret")).unwrap();
    let got = receiver.wait_for(published, Duration::from_secs(5)).await;
    let mut types = BTreeSet::new();
    for r in &got {
        let h = |n: &str| Some(r.header(n)).filter(|v| !v.is_empty());
        verify(
            &key,
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            &r.body,
            chrono::Utc::now().timestamp(),
            300,
        )
        .expect("signed with the secret the README's INSERT returned");
        types.insert(r.json()["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        BTreeSet::from(["project.created".to_string(), "project.updated".to_string()])
    );
    dispatcher.shutdown().await;
}

/// The README's `cargo run --release -- ...` lines, as argument lists for
/// `postbox` (environment assignments and comments removed).
fn readme_commands(readme: &str) -> Vec<Vec<String>> {
    let marker = "cargo run --release -- ";
    let mut found = vec![];
    for line in readme.lines() {
        let mut rest = line;
        while let Some(at) = rest.find(marker) {
            let after = &rest[at + marker.len()..];
            let end = after.find(['`', '#']).unwrap_or(after.len());
            let args: Vec<String> = std::iter::once("postbox".to_string())
                .chain(after[..end].split_whitespace().map(str::to_string))
                .collect();
            found.push(args);
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn readme_commands_parse_as_the_cli_defines_them() {
    let commands = readme_commands(&read("README.md"));
    let names: BTreeSet<&str> = commands.iter().map(|c| c[1].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["bench", "dev", "portal-link", "receive", "serve"]),
        "{commands:?}"
    );
    for args in &commands {
        if let Err(e) = Cli::try_parse_from(args) {
            panic!("README command {args:?} does not parse: {e}");
        }
    }
    let readme = read("README.md");
    // The two set-up commands come first, in this order.
    let blocks = fenced(&readme, "sh");
    let setup: Vec<&str> = blocks[0].lines().collect();
    assert!(
        setup[0].starts_with("cargo run --release -- dev "),
        "{setup:?}"
    );
    assert!(setup[1].starts_with("scripts/test "), "{setup:?}");
    for needed in [
        "apt-get install postgresql",
        "POSTBOX_JWT_SECRET=$(openssl rand -hex 32)",
        "docker compose -f docker/compose.yml up",
        "POSTBOX_ALLOW_PRIVATE_TARGETS=true",
    ] {
        assert!(readme.contains(needed), "README mentions {needed}");
    }
    assert!(Path::new(ROOT).join("scripts/test").exists());
    assert!(Path::new(ROOT).join("docker/compose.yml").exists());
}

#[test]
fn readme_links_every_document() {
    let readme = read("README.md");
    let mut docs: BTreeSet<String> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    // Written in parallel with this README: linked before they land.
    for planned in ["OPERATIONS.md", "PERFORMANCE.md", "SCALING.md"] {
        docs.insert(planned.to_string());
    }
    for doc in docs {
        assert!(
            readme.contains(&format!("](docs/{doc})")),
            "README links docs/{doc}"
        );
    }
}

/// `(METHOD, /path/{param})` rows of the markdown tables between `start`
/// and the next `## ` heading; `:name` becomes `{name}`.
fn route_tables(doc: &str, start: &str) -> Vec<Vec<(String, String)>> {
    let at = doc
        .find(start)
        .unwrap_or_else(|| panic!("{start} in the doc"));
    let section = &doc[at + start.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut tables = vec![];
    let mut current: Vec<(String, String)> = vec![];
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if !line.starts_with('|') {
            if !current.is_empty() {
                tables.push(std::mem::take(&mut current));
            }
            continue;
        }
        let method = cells[1];
        if !["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method) {
            continue;
        }
        let path = cells[2].trim_matches('`');
        let path = path
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(p) => format!("{{{p}}}"),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        current.push((method.to_string(), path));
    }
    if !current.is_empty() {
        tables.push(current);
    }
    tables
}

#[tokio::test]
async fn webhooks_doc_api_table_is_the_openapi_document_and_every_route_is_served() {
    let doc = read("docs/WEBHOOKS.md");
    let tables = route_tables(&doc, "## API reference");
    assert_eq!(
        tables.len(),
        2,
        "two route tables: the OpenAPI routes, then the routes served beside them"
    );
    let documented: BTreeSet<(String, String)> = tables[0].iter().cloned().collect();
    assert_eq!(documented.len(), tables[0].len(), "no route listed twice");
    let openapi = postbox::api::openapi::document();
    let described: BTreeSet<(String, String)> = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let missing: Vec<_> = described.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&described).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/WEBHOOKS.md vs /api/openapi.json: missing from the doc {missing:?}, not in the OpenAPI document {extra:?}"
    );
    let beside: BTreeSet<(String, String)> = tables[1].iter().cloned().collect();
    assert!(
        beside.is_disjoint(&described),
        "the second table lists only routes outside the OpenAPI document"
    );

    // Every documented route is served: neither 404 nor 405, whatever the
    // auth or body. Parameters get a well-formed id.
    let db = TestDb::new().await;
    let routes = postbox::api::routes(api_state(db.store(), "readme-secret", true));
    let id = uuid::Uuid::new_v4().to_string();
    for (method, path) in documented.iter().chain(&beside) {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { id.as_str() } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let resp = warp::test::request()
            .method(method)
            .path(&concrete)
            .reply(&routes)
            .await;
        let status = resp.status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but answers {status}"
        );
    }
    // And an undocumented path is not served, so the check above means something.
    let resp = warp::test::request()
        .method("GET")
        .path("/api/webhooks/nope/nothing")
        .reply(&routes)
        .await;
    assert_eq!(resp.status().as_u16(), 404);
}
