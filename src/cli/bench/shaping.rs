//! The costs of filters, templates and batches (SPEC 7.3): the fan-out with
//! a filter on each of 100 webhooks of one owner against the same fan-out
//! without, timed statement by statement with no dispatcher running (every
//! filter matches, so both write the same rows: the filter's own cost); and
//! the time to render one delivery's body in the dispatcher's process, per
//! template. The batched drain is a drain part (`drain.rs`).

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use postbox::store::{ClaimLimits, Store};
use postbox::template::{EventView, Template};

use super::receiver::BenchReceiver;
use super::report::{median, FanoutFigures, TemplateFigures};

/// Webhooks of the one owner whose events are fanned out.
pub const FANOUT_WEBHOOKS: usize = 100;

/// A filter every benchmark event matches: containment and a path
/// predicate, both evaluated for every (event, webhook).
fn matching_filter() -> serde_json::Value {
    json!({"contains": {"name": "bench project"}, "path": "$.id > 0 && $.tags[0] == \"a\""})
}

/// The fan-out of `events` events to 100 webhooks of one owner, unfiltered
/// and filtered, `runs` times each (alternating); microseconds per event.
pub async fn fanout(
    store: &Store,
    receiver: &BenchReceiver,
    secret: &str,
    events: usize,
    runs: usize,
) -> anyhow::Result<FanoutFigures> {
    let (mut plain, mut filtered) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for filter in [false, true] {
            let prefix = format!("fan{}{run}_", if filter { "f" } else { "u" });
            let owner = format!("{prefix}0");
            let mut ids = Vec::with_capacity(FANOUT_WEBHOOKS);
            for i in 0..FANOUT_WEBHOOKS {
                ids.push(
                    store
                        .bench_webhook_insert(&owner, &receiver.ok_url(i), secret, 3600)
                        .await?,
                );
            }
            if filter {
                store
                    .bench_webhook_shape_many(&ids, Some(&matching_filter()), None)
                    .await?;
            }
            store
                .bench_events_insert_many(&prefix, 1, events as i32, 0)
                .await?;
            let secs = fan_out_all(store).await?;
            let per_event = secs * 1e6 / events as f64;
            if filter { &mut filtered } else { &mut plain }.push(per_event);
            // Nothing of this part is sent: the webhooks go, with their rows.
            for id in &ids {
                store.webhook_delete(*id, &owner).await?;
            }
        }
    }
    let unfiltered_us = median(plain).unwrap_or(f64::NAN);
    let filtered_us = median(filtered).unwrap_or(f64::NAN);
    Ok(FanoutFigures {
        webhooks: FANOUT_WEBHOOKS,
        events,
        runs,
        unfiltered_us_per_event: unfiltered_us,
        filtered_us_per_event: filtered_us,
        ratio: filtered_us / unfiltered_us,
    })
}

/// Fans out every pending event (claiming none); the seconds it took.
async fn fan_out_all(store: &Store) -> anyhow::Result<f64> {
    let limits = ClaimLimits {
        limit: 0,
        busy_webhooks: &[],
        busy_room: &[],
        lease: Duration::from_secs(60),
        per_webhook: 0,
    };
    let t = Instant::now();
    loop {
        let fan = store.event_fanout_many(500, Utc::now(), limits).await?;
        if fan.events == 0 {
            break;
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Microseconds to build one delivery's body: the standard body, each
/// built-in chat template, and a custom Jinja template (parsed and rendered
/// per delivery, as the dispatcher does), for a benchmark-sized payload.
pub fn templates(renders: usize) -> TemplateFigures {
    let payload =
        json!({"id": 4242, "name": "bench project", "tags": ["a", "b"], "note": "x".repeat(265)})
            .to_string();
    let event = EventView {
        id: Uuid::now_v7(),
        event_type: "project.updated",
        created_at: Utc::now(),
        payload: &payload,
    };
    let time = |t: &Template| {
        let start = Instant::now();
        for _ in 0..renders {
            std::hint::black_box(t.render(&event).expect("renders"));
        }
        start.elapsed().as_secs_f64() * 1e6 / renders as f64
    };
    let standard = {
        let start = Instant::now();
        for _ in 0..renders {
            std::hint::black_box(postbox::dispatch::sender::standard_body(
                event.id,
                event.event_type,
                event.created_at,
                event.payload,
            ));
        }
        start.elapsed().as_secs_f64() * 1e6 / renders as f64
    };
    let custom = Template::Body(
        "{\"text\": {{ (type ~ \" for project \" ~ data.name) | tojson }}, \"id\": \"{{ id }}\", \"at\": \"{{ timestamp }}\", \"tags\": {{ data.tags | tojson }}}"
            .into(),
    );
    TemplateFigures {
        renders,
        standard_us: standard,
        slack_us: time(&Template::Slack),
        discord_us: time(&Template::Discord),
        teams_us: time(&Template::Teams),
        custom_us: time(&custom),
    }
}
