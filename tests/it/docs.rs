//! The documentation's examples, run: the four signature-verification servers
//! of docs/WEBHOOKS.md receive real deliveries and refuse a tampered one; the
//! SQL and Rust publishing examples of docs/INTEGRATION.md run against a
//! migrated database; docs/CONFIGURATION.md lists exactly what clap knows.
//!
//! Examples are the fenced blocks right after a `<!-- test: NAME -->` marker.
//! node and python3 must be on PATH and the libraries installed where `scripts/test`
//! puts them; a missing piece fails the test with the command that fixes it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::CommandFactory;
use postbox::publish::PublishOptions;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const WAIT: Duration = Duration::from_secs(20);

fn read_doc(name: &str) -> String {
    let path = Path::new(ROOT).join("docs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced blocks right after each `<!-- test: NAME -->` marker.
fn blocks(doc: &str, name: &str) -> Vec<String> {
    let marker = format!("<!-- test: {name} -->");
    doc.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &doc[at + marker.len()..];
            let fence = rest.find("```").expect("a fenced block after the marker");
            assert!(
                rest[..fence].trim().is_empty(),
                "{marker} must be followed directly by a fenced block"
            );
            let after = &rest[fence + 3..];
            let body = &after[after.find('\n').unwrap() + 1..];
            body[..body.find("\n```").expect("a closing fence") + 1].to_string()
        })
        .collect()
}

fn block(doc: &str, name: &str) -> String {
    let mut found = blocks(doc, name);
    assert_eq!(found.len(), 1, "exactly one block marked {name}");
    found.remove(0)
}

#[derive(Clone, Copy)]
enum Lang {
    Node,
    Python,
}

/// A documentation example running as a server, its output collected.
struct Example {
    _child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Example {
    fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

fn collect<R: AsyncRead + Unpin + Send + 'static>(
    stream: R,
    prefix: &'static str,
    lines: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().unwrap().push(format!("{prefix}{line}"));
        }
    });
}

async fn start_example(name: &str, lang: Lang, code: &str, secret: &str) -> Example {
    let (program, file, path_var, deps, install) = match lang {
        Lang::Node => (
            "node",
            "server.js",
            "NODE_PATH",
            ".ci/node/node_modules",
            "npm install --prefix .ci/node standardwebhooks",
        ),
        Lang::Python => (
            "python3",
            "server.py",
            "PYTHONPATH",
            ".ci/pydeps",
            "python3 -m pip install --target .ci/pydeps standardwebhooks",
        ),
    };
    let deps = Path::new(ROOT).join(deps);
    if code.contains("standardwebhooks") && !deps.join("standardwebhooks").exists() {
        panic!(
            "{} is missing the standardwebhooks library: run scripts/test, or `{install}`",
            deps.display()
        );
    }
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("docs-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join(file);
    std::fs::write(&script, code).unwrap();
    let mut child = Command::new(program)
        .arg(&script)
        .env("WEBHOOK_SECRET", secret)
        .env("PORT", "0")
        .env(path_var, &deps)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    let lines = Arc::new(Mutex::new(Vec::new()));
    collect(child.stdout.take().unwrap(), "", lines.clone());
    collect(child.stderr.take().unwrap(), "stderr: ", lines.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let port = lines
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.strip_prefix("listening on port "))
            .and_then(|p| p.trim().parse::<u16>().ok());
        if let Some(port) = port {
            return Example {
                _child: child,
                lines,
                port,
            };
        }
        if tokio::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            panic!(
                "example {name} did not start listening:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Postbox delivers to the example, which verifies and answers 200; a real
/// delivery replayed unchanged passes, with a tampered body it gets 401.
async fn example_verifies_real_deliveries(name: &str, lang: Lang) {
    let code = block(&read_doc("WEBHOOKS.md"), name);
    let db = TestDb::new().await;
    let c = db.client().await;
    let recorder = Receiver::ok().await;
    let (_, secret) = NewWebhook::new("user_7", recorder.url(), &["project.updated"])
        .insert(&c)
        .await;
    let ex = start_example(name, lang, &code, &secret).await;
    let (direct, _) = NewWebhook::new("user_7", ex.url(), &["project.*"])
        .insert(&c)
        .await;
    c.execute(
        "UPDATE postbox.webhooks SET secret = $1 WHERE id = $2",
        &[&secret, &direct],
    )
    .await
    .unwrap();

    let running = spawn_dispatcher(db.store(), dispatch_config(), system_clock());
    let event_id = publish(
        &c,
        "project.updated",
        json!({"id": 42, "name": "Atlas", "note": "naïve ✓ \"quoted\"", "big": 12345678901234567890u64}),
        "user_7",
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let row = c
            .query_one(
                "SELECT status::text, coalesce(error_message, '') FROM postbox.deliveries WHERE webhook_id = $1",
                &[&direct],
            )
            .await
            .ok();
        let (status, error): (String, String) = row
            .map(|r| (r.get(0), r.get(1)))
            .unwrap_or_else(|| ("none".into(), String::new()));
        if status == "success" {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "the delivery to example {name} is {status} ({error}); its output:\n{}",
                ex.output().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let verified = format!("verified project.updated {event_id} attempt 1");
    assert!(
        ex.output().contains(&verified),
        "{name} printed no `{verified}`:\n{}",
        ex.output().join("\n")
    );

    let recorded = recorder.wait_for(1, WAIT).await.remove(0);
    running.shutdown().await;
    let names = [
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-webhook-event",
        "x-webhook-attempt",
    ];
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (*n, recorded.header(n))).collect();
    assert_eq!(
        post(&ex.url(), &headers, recorded.body.to_vec()).await,
        200,
        "{name} refused a real delivery replayed unchanged:\n{}",
        ex.output().join("\n")
    );
    let body = String::from_utf8(recorded.body.to_vec()).unwrap();
    let tampered = body.replace("Atlas", "Atlaz");
    assert_ne!(tampered, body);
    assert_eq!(
        post(&ex.url(), &headers, tampered.into_bytes()).await,
        401,
        "{name} accepted a tampered body"
    );
    assert_eq!(
        post(&ex.url(), &headers[..1], recorded.body.to_vec()).await,
        401,
        "{name} accepted a request without signature headers"
    );
    let out = ex.output();
    assert_eq!(
        out.iter().filter(|l| l.starts_with("rejected: ")).count(),
        2,
        "{}",
        out.join("\n")
    );
    assert!(
        !out.iter().any(|l| l.starts_with("stderr: ")),
        "{}",
        out.join("\n")
    );
}

#[tokio::test]
async fn webhooks_doc_node_library_example_verifies_real_deliveries() {
    example_verifies_real_deliveries("verify-node-lib", Lang::Node).await;
}

#[tokio::test]
async fn webhooks_doc_node_hmac_example_verifies_real_deliveries() {
    example_verifies_real_deliveries("verify-node-hmac", Lang::Node).await;
}

#[tokio::test]
async fn webhooks_doc_python_library_example_verifies_real_deliveries() {
    example_verifies_real_deliveries("verify-python-lib", Lang::Python).await;
}

#[tokio::test]
async fn webhooks_doc_python_hmac_example_verifies_real_deliveries() {
    example_verifies_real_deliveries("verify-python-hmac", Lang::Python).await;
}

/// The business table the INTEGRATION.md examples update.
const PROJECTS: &str = "CREATE TABLE projects (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO projects VALUES (42, 'Apollo');";

#[tokio::test]
async fn integration_doc_sql_examples_publish_and_refuse_as_documented() {
    let doc = read_doc("INTEGRATION.md");
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(PROJECTS).await.unwrap();
    let runs = blocks(&doc, "sql");
    assert!(runs.len() >= 2, "INTEGRATION.md has tested SQL examples");
    for sql in &runs {
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{e:?}\nin:\n{sql}"));
    }
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM postbox.events WHERE event_type = 'project.updated'"
        )
        .await,
        2,
        "the examples publish twice, once more with a repeated idempotency key (a no-op)"
    );
    let name: String = c
        .query_one("SELECT name FROM projects WHERE id = 42", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Atlas");

    let refusals = blocks(&doc, "sql-error");
    assert!(refusals.len() >= 3);
    for sql in &refusals {
        let err = c
            .batch_execute(sql)
            .await
            .expect_err(&format!("this example must fail:\n{sql}"));
        let msg = err.as_db_error().map(|d| d.message().to_string()).unwrap();
        assert!(msg.starts_with("postbox: "), "{msg}");
        assert!(
            doc.contains(msg.split(" event").next().unwrap()),
            "INTEGRATION.md quotes the error `{msg}`"
        );
    }
}

// BEGIN rust-publish (docs/INTEGRATION.md shows this function verbatim)
/// Renames a project and announces it, atomically.
async fn rename_project(
    client: &mut tokio_postgres::Client,
    project_id: i32,
    name: &str,
) -> Result<uuid::Uuid, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE projects SET name = $1 WHERE id = $2",
        &[&name, &project_id],
    )
    .await?;
    let event_id = postbox::publish::publish(
        &tx,
        "project.updated",
        &json!({"id": project_id, "name": name}),
        "user_7",
        &PublishOptions {
            idempotency_key: Some(&format!("project-{project_id}-renamed-to-{name}")),
            ordering_key: Some(&format!("project-{project_id}")),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(event_id)
}
// END rust-publish

fn squash(s: &str) -> String {
    s.split_whitespace().collect()
}

#[tokio::test]
async fn integration_doc_rust_example_is_the_tested_function() {
    let this = include_str!("docs.rs");
    let start = this.find("// BEGIN rust-publish").unwrap();
    let region = &this
        [this[start..].find('\n').unwrap() + start + 1..this.find("// END rust-publish").unwrap()];
    let shown = block(&read_doc("INTEGRATION.md"), "rust");
    assert!(
        squash(&shown).contains(&squash(region)),
        "the Rust example in INTEGRATION.md differs from rename_project in tests/it/docs.rs"
    );

    let db = TestDb::new().await;
    let mut c = db.client().await;
    c.batch_execute(PROJECTS).await.unwrap();
    let first = rename_project(&mut c, 42, "Atlas").await.unwrap();
    let again = rename_project(&mut c, 42, "Atlas").await.unwrap();
    assert_eq!(first, again, "the idempotency key makes a retry a no-op");
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 1);

    // A refused publish rolls the business change back with it.
    let tx = c.transaction().await.unwrap();
    tx.execute("UPDATE projects SET name = 'Zeus' WHERE id = 42", &[])
        .await
        .unwrap();
    let err = postbox::publish::publish(
        &tx,
        "project.renamed",
        &json!({}),
        "user_7",
        &PublishOptions::default(),
    )
    .await
    .unwrap_err();
    let msg = err.as_db_error().map(|d| d.message()).unwrap_or_default();
    assert!(msg.contains("unknown event type"), "{err:?}");
    drop(tx);
    let name: String = c
        .query_one("SELECT name FROM projects WHERE id = 42", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Atlas");
}

/// Every long flag and environment variable clap knows, over all subcommands.
fn clap_names() -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(cmd: &clap::Command, flags: &mut BTreeSet<String>, envs: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                if long != "help" && long != "version" {
                    flags.insert(format!("--{long}"));
                }
            }
            if let Some(env) = arg.get_env() {
                envs.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, flags, envs);
        }
    }
    let (mut flags, mut envs) = (BTreeSet::new(), BTreeSet::new());
    walk(&crate::cli::Cli::command(), &mut flags, &mut envs);
    (flags, envs)
}

#[test]
fn configuration_doc_lists_exactly_the_flags_and_variables_postbox_reads() {
    let doc = read_doc("CONFIGURATION.md");
    let (flags, envs) = clap_names();
    let tokens: BTreeSet<String> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = flags
        .iter()
        .chain(&envs)
        .filter(|n| !tokens.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "CONFIGURATION.md does not mention {missing:?}"
    );
    let unknown: Vec<_> = tokens
        .iter()
        .filter(|t| t.len() > "POSTBOX_".len() && t.starts_with("POSTBOX_"))
        .filter(|t| !envs.contains(*t))
        .collect();
    assert!(
        unknown.is_empty(),
        "CONFIGURATION.md names variables postbox does not read: {unknown:?}"
    );
    let subcommands: Vec<String> = crate::cli::Cli::command()
        .get_subcommands()
        .map(|s| format!("postbox {}", s.get_name()))
        .collect();
    for s in subcommands {
        assert!(doc.contains(&s), "CONFIGURATION.md has no section on `{s}`");
    }
}
