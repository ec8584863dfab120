//! Producers in two-phase commit (XA/JTA): with `postbox.notify = off` the
//! trigger sends no NOTIFY, so PREPARE TRANSACTION succeeds; the dispatcher
//! finds the event by its poll once COMMIT PREPARED has run. Against a
//! private cluster, since prepared transactions need
//! `max_prepared_transactions` (0 by default).

use std::time::Duration;

use postbox::store::Store;
use serde_json::json;

use crate::support::cluster::Cluster;
use crate::support::*;

const NOTIFY_REFUSED: &str =
    "cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY";

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn a_prepared_publish_is_delivered_after_commit_prepared_and_never_after_rollback_prepared() {
    let cluster = Cluster::new(&[("max_prepared_transactions", "10")]).await;
    let url = cluster.migrated_db("postbox").await;
    let c = connect(&url).await;
    let rx = Receiver::ok().await;
    NewWebhook::new("u", rx.url(), &["*"]).insert(&c).await;

    // By default the trigger notifies (a dispatcher may be idle), and
    // PREPARE refuses that.
    c.batch_execute("BEGIN; SELECT postbox.publish('user.created', '{\"n\": 0}', 'u')")
        .await
        .unwrap();
    let err = c
        .batch_execute("PREPARE TRANSACTION 'p0'")
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains(NOTIFY_REFUSED), "{message}");

    let running = spawn_dispatcher(
        Store::connect(&url, 4).unwrap(),
        dispatch_config(),
        system_clock(),
    );
    // The setting on the producer's connection (a JDBC/libpq `options`)...
    let xa = connect(&format!("{url}?options=-c%20postbox.notify%3Doff")).await;
    xa.batch_execute(
        "BEGIN; SELECT postbox.publish('user.created', '{\"n\": 1}', 'u'); PREPARE TRANSACTION 'p1'",
    )
    .await
    .unwrap();
    // ... or per transaction.
    c.batch_execute(
        "BEGIN; SET LOCAL postbox.notify = off;
         SELECT postbox.publish('user.created', '{\"n\": 2}', 'u');
         PREPARE TRANSACTION 'p2'",
    )
    .await
    .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM pg_prepared_xacts").await, 2);
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 0);

    c.batch_execute("COMMIT PREPARED 'p1'").await.unwrap();
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["data"], json!({"n": 1}));

    c.batch_execute("ROLLBACK PREPARED 'p2'").await.unwrap();
    // A later ordinary event is delivered; the rolled-back one never is.
    publish(&c, "user.created", json!({"n": 3}), "u").await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    running.shutdown().await;
    let data: Vec<serde_json::Value> = got.iter().map(|r| r.json()["data"].clone()).collect();
    assert_eq!(data, vec![json!({"n": 1}), json!({"n": 3})]);
    assert_eq!(rx.count(), 2);
    assert_eq!(count(&c, "SELECT count(*) FROM postbox.events").await, 2);
}
