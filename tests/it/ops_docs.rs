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
