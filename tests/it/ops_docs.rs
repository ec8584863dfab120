//! docs/OPERATIONS.md stays true: every ```sql block in it runs, in order,
//! against a migrated database holding a little of everything.

use serde_json::json;

use crate::support::*;

fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sql") => current = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(
        current.is_none(),
        "an unclosed ```sql block in OPERATIONS.md"
    );
    blocks
}

#[tokio::test]
async fn every_query_in_operations_md_runs() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
        .expect("docs/OPERATIONS.md exists");
    let blocks = sql_blocks(&doc);
    assert!(blocks.len() >= 15, "found only {} sql blocks", blocks.len());

    let db = TestDb::new().await;
    let c = db.client().await;
    let rx = Receiver::start(std::sync::Arc::new(|n| {
        Answer::status(if n % 2 == 0 { 200 } else { 500 })
    }))
    .await;
    NewWebhook::new("user_7", rx.url(), &["*"]).insert(&c).await;
    for i in 0..4 {
        publish(&c, "project.updated", json!({"i": i}), "user_7").await;
    }
    publish(&c, "user.created", json!({"i": 9}), "nobody").await;
    let d =
        postbox::dispatch::Dispatcher::new(db.store(), dispatch_config(), system_clock()).unwrap();
    d.run_once().await.unwrap();

    for (i, block) in blocks.iter().enumerate() {
        // One block at a time, as psql users paste them (the purge block commits).
        if let Err(e) = c.batch_execute(block).await {
            panic!(
                "OPERATIONS.md sql block #{} fails: {}\n{block}",
                i + 1,
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or(e.to_string())
            );
        }
    }
    // The last pause/resume pair leaves the queue running.
    assert_eq!(
        count(&c, "SELECT count(*) FROM postbox.queue_state WHERE paused").await,
        0
    );
}

/// Every metric the code emits is in OPERATIONS.md's metrics table.
#[test]
fn every_metric_is_in_the_metrics_table() {
    let doc = include_str!("../../docs/OPERATIONS.md");
    let mut names = std::collections::BTreeSet::new();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut dirs = vec![std::path::PathBuf::from(src)];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for part in text.split("metrics::").skip(1) {
                let Some((kind, rest)) = part.split_once("!(") else {
                    continue;
                };
                if !["counter", "gauge", "histogram"].contains(&kind) {
                    continue;
                }
                let name: String = rest
                    .trim_start()
                    .trim_start_matches('"')
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name.starts_with("postbox_") {
                    names.insert(name);
                }
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for n in names {
        assert!(
            doc.contains(&format!("| `{n}` |")),
            "{n} is not in docs/OPERATIONS.md's metrics table"
        );
    }
}
