//! The portal on a history shaped like production (`scale::FILL`: one
//! webhook with most of 110,000 deliveries at CI size, 1.1 M with
//! `POSTBOX_SCALE_FACTOR=10`): every portal statement stays on an index (no
//! sequential scan of deliveries, events or attempts, in custom and generic
//! plans), and every page answers. It prints each page's best time over real
//! HTTP; it asserts plans and answers, never a time. The 1.1 M figures are in
//! docs/PORTAL.md:
//! `POSTBOX_SCALE_FACTOR=10 cargo test --test it portal_scale -- --nocapture`

use std::time::{Duration, Instant};

use crate::api_support::Api;
use crate::portal_support::PortalSession;
use crate::scale::{assert_on_indexes, FILL};

macro_rules! sql_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/", $name, ".sql")),
        )
    };
}

const BIG: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test]
async fn every_portal_page_stays_on_indexes_at_scale() {
    let factor: i32 = std::env::var("POSTBOX_SCALE_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let api = Api::start().await;
    let c = api.db.client().await;
    let started = Instant::now();
    c.batch_execute(&format!("SET postbox.scale_factor = {factor}; {FILL}"))
        .await
        .unwrap();
    api.db.store().delivery_count_rollup().await.unwrap();
    c.batch_execute("VACUUM ANALYZE").await.unwrap();
    println!(
        "filled {} deliveries in {:.1} s",
        crate::support::count(&c, "SELECT count(*) FROM postbox.deliveries").await,
        started.elapsed().as_secs_f64()
    );
    let middle = 30_000 * factor as i64;
    let middle_key: (chrono::DateTime<chrono::Utc>, uuid::Uuid) = {
        let r = c
            .query_one(
                "SELECT created_at, id FROM postbox.deliveries WHERE webhook_id = $1::text::uuid
                 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
                &[&BIG, &middle],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    let (t, id) = middle_key;
    let ts = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let cases: Vec<((&str, &str), String)> = vec![
        (
            sql_file!("delivery_page_by_webhook"),
            format!("'{BIG}', 'owner_0', now() + interval '1 day', 'ffffffff-ffff-ffff-ffff-ffffffffffff', NULL, 500, NULL, NULL"),
        ),
        (
            sql_file!("delivery_page_by_webhook"),
            format!("'{BIG}', 'owner_0', '{ts}', '{id}', now() - interval '7 days', 500, 'failed', 'user.created'"),
        ),
        (
            sql_file!("delivery_attempt_list"),
            format!("'{id}', '{BIG}', 'owner_0', 50, 0"),
        ),
        (
            sql_file!("delivery_get_many"),
            format!("ARRAY['{id}']::uuid[], 'owner_0'"),
        ),
        (
            sql_file!("delivery_list_recent_by_owner"),
            "'owner_0', now() - interval '1 hour', 50".into(),
        ),
        (
            sql_file!("event_get"),
            "'00000000-0000-7000-8000-000000000001', 'owner_0'".into(),
        ),
        (
            sql_file!("webhook_health_many"),
            format!("ARRAY['{BIG}']::uuid[], 'owner_0'"),
        ),
        (
            sql_file!("webhook_hourly_stats"),
            format!("'{BIG}', 'owner_0', now() - interval '24 hours'"),
        ),
        (sql_file!("webhook_list_troubled"), "50".into()),
    ];
    assert_on_indexes(&c, &cases).await;

    // Every page over real HTTP, as owner_0 with the operator view.
    let s = PortalSession::open(&api, "owner_0", true).await;
    let cursor = format!("{ts}_{id}").replace('+', "%2B");
    let pages = [
        "/portal/".to_string(),
        format!("/portal/endpoints/{BIG}"),
        format!("/portal/endpoints/{BIG}/edit"),
        format!("/portal/endpoints/{BIG}/deliveries"),
        format!("/portal/endpoints/{BIG}/deliveries?status=failed"),
        format!("/portal/endpoints/{BIG}/deliveries?type=user.created&within=7d"),
        format!("/portal/endpoints/{BIG}/deliveries?before={cursor}"),
        format!("/portal/endpoints/{BIG}/deliveries/{id}"),
        format!("/portal/endpoints/{BIG}/verify"),
        "/portal/admin".to_string(),
        "/portal/tail".to_string(),
    ];
    for page in &pages {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let (status, html) = s.get(page).await;
            best = best.min(started.elapsed());
            assert_eq!(status, 200, "{page}: {html}");
        }
        println!("page {page}: best of 3 {:.1} ms", best.as_secs_f64() * 1e3);
    }
}

/// The live tail at 1,000 events a second (run by hand, it loads the
/// machine: `cargo test --test it portal_scale::the_live_tail_keeps_up --
/// --ignored --nocapture`): a tail stays open while 100 events are
/// published every 100 ms for 10 s and a dispatcher delivers them; it
/// prints how many updates the tail sent and how late its last one was.
#[tokio::test]
#[ignore]
async fn the_live_tail_keeps_up_at_1000_events_a_second() {
    use futures_util::StreamExt;
    let api = Api::start().await;
    let receiver = crate::support::Receiver::ok().await;
    let s = PortalSession::open(&api, "acme", false).await;
    s.create(&api, "hook", &receiver.url(), &["*"]).await;
    let dispatcher = crate::support::spawn_dispatcher(
        api.db.store(),
        crate::support::dispatch_config(),
        crate::support::system_clock(),
    );
    let r = s.get_raw("/portal/tail/stream").await;
    let mut body = r.bytes_stream();
    let reader = tokio::spawn(async move {
        let (mut events, mut chunks, mut last) = (0usize, 0usize, Instant::now());
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(5), body.next()).await
        {
            chunks += 1;
            events += String::from_utf8_lossy(&chunk)
                .matches("event:delivery")
                .count();
            last = Instant::now();
        }
        (events, chunks, last)
    });
    let c = api.db.client().await;
    let started = Instant::now();
    for tick in 0..100u32 {
        c.execute(
            "INSERT INTO postbox.events (event_type, owner_id, payload)
             SELECT 'project.updated', 'acme', jsonb_build_object('i', g) FROM generate_series(1, 100) g",
            &[],
        )
        .await
        .unwrap();
        tokio::time::sleep_until(
            tokio::time::Instant::from_std(started) + Duration::from_millis(100) * (tick + 1),
        )
        .await;
    }
    let published = started.elapsed();
    receiver.wait_for(10_000, Duration::from_secs(120)).await;
    let delivered = started.elapsed();
    let (events, chunks, last) = reader.await.unwrap();
    dispatcher.shutdown().await;
    println!(
        "published 10,000 events in {:.1} s, all delivered after {:.1} s; the tail sent {events} updates in {chunks} chunks, its last {:.1} s after the start",
        published.as_secs_f64(),
        delivered.as_secs_f64(),
        (last - started).as_secs_f64()
    );
    assert!(events > 0);
}
