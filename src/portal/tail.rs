//! The live tail: server-sent events of the owner's new deliveries and
//! their outcomes, woken by `NOTIFY postbox_portal_tail` (never polled).
//!
//! One [`Hub`] per process holds one LISTEN connection while at least one
//! tail is open, and keeps `postbox.portal_tail.watched_until` in the
//! future so that the deliveries trigger notifies (migrations/V8); with no
//! tail open, no connection is held and the trigger sends nothing. A wake-up
//! is a counter in a `watch` channel: any number of NOTIFYs between two
//! reads fold into one. Each client reads at most once per [`COALESCE`]
//! (so at most 4 reads a second, whatever the event rate), each read at
//! most [`READ_LIMIT`] new rows (the newest) plus the rows it still shows
//! in flight, all through owner-scoped, indexed statements.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{future, Stream, StreamExt};
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;
use warp::sse::Event;
use warp::Reply;

use super::{Portal, Session};
use crate::api::wire::Delivery;
use crate::clock::SharedClock;
use crate::store::{DeliveryRow, DeliveryStatus, Store, PORTAL_TAIL_CHANNEL};

/// Shortest time between two reads of one client.
pub const COALESCE: Duration = Duration::from_millis(250);
/// New rows read at most per read.
pub const READ_LIMIT: i64 = 50;
/// How far back the first read looks.
const FIRST_LOOKBACK: chrono::Duration = chrono::Duration::hours(1);
/// Rows committed late (their created_at is their transaction's start) are
/// found by looking this far behind the newest row seen.
const LATE_COMMIT: chrono::Duration = chrono::Duration::seconds(10);
/// How long the trigger keeps notifying after the last renewal, and how often it is renewed.
const WATCH_FOR: chrono::Duration = chrono::Duration::seconds(30);
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// Tails open at once per process; more get 503 (each costs up to 4 reads a second).
pub const MAX_TAILS: usize = 256;
/// Rows a client remembers (to send only changes).
const SEEN_MAX: usize = 500;

struct Shared {
    /// Open tails, and whether the listener task runs.
    state: Mutex<(usize, bool)>,
    wake: watch::Sender<u64>,
    store: Store,
    clock: SharedClock,
}

/// The process's wake-up source for live tails.
#[derive(Clone)]
pub struct Hub(Arc<Shared>);

/// One open tail; dropping it closes it.
pub struct Subscription {
    hub: Hub,
    pub wake: watch::Receiver<u64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut s) = self.hub.0.state.lock() {
            s.0 = s.0.saturating_sub(1);
        }
    }
}

impl Hub {
    pub fn new(store: Store, clock: SharedClock) -> Hub {
        Hub(Arc::new(Shared {
            state: Mutex::new((0, false)),
            wake: watch::channel(0).0,
            store,
            clock,
        }))
    }

    /// Opens a tail, starting the listener if it is the first; `None` when
    /// [`MAX_TAILS`] are open.
    pub fn subscribe(&self) -> Option<Subscription> {
        let start = {
            let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.0 >= MAX_TAILS {
                return None;
            }
            s.0 += 1;
            let start = !s.1;
            s.1 = true;
            start
        };
        if start {
            tokio::spawn(listen(self.clone()));
        }
        Some(Subscription {
            hub: self.clone(),
            wake: self.0.wake.subscribe(),
        })
    }

    /// Whether the listener should stop (no tail open); clears its flag if so.
    fn idle(&self) -> bool {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 == 0 {
            s.1 = false;
            true
        } else {
            false
        }
    }

    fn poke(&self) {
        self.0.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The listener: LISTEN, renew the trigger's flag, poke on each NOTIFY;
/// reconnect with backoff; stop when no tail is open.
async fn listen(hub: Hub) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match listen_once(&hub).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "live tail: LISTEN connection lost; reconnecting");
                // Notifications may have been missed: let every tail read once.
                hub.poke();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if hub.idle() {
                    return;
                }
            }
        }
    }
}

async fn listen_once(hub: &Hub) -> Result<(), String> {
    let store = &hub.0.store;
    let (client, mut connection) = Store::connect_one(store.url())
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen = async {
        client
            .batch_execute(&format!("LISTEN {PORTAL_TAIL_CHANNEL}"))
            .await?;
        future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    tokio::pin!(listen);
    let mut renew = tokio::time::interval(RENEW_EVERY);
    loop {
        tokio::select! {
            r = &mut listen => return r.map_err(|e| e.to_string()),
            _ = renew.tick() => {
                if hub.idle() {
                    return Ok(());
                }
                let until = hub.0.clock.now() + WATCH_FOR;
                if let Err(e) = store.portal_tail_watch(until).await {
                    tracing::warn!(error = %e, "live tail: cannot renew the wake-up flag");
                }
                // Anything committed before the flag was on is read now.
                hub.poke();
            }
            msg = messages.next() => match msg {
                Some(Ok(AsyncMessage::Notification(_))) => hub.poke(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            }
        }
    }
}

/// One client's tail: what it has sent, and where the next read starts.
struct Client {
    sub: Subscription,
    store: Store,
    clock: SharedClock,
    /// The session's id hash: the tail ends when the session does.
    session: Vec<u8>,
    owner: String,
    since: DateTime<Utc>,
    /// Per row sent: (status, attempts) as last sent.
    seen: HashMap<Uuid, (DeliveryStatus, i32)>,
    queue: Vec<Event>,
    last_read: Option<tokio::time::Instant>,
}

/// Still on its way: re-read until it ends. A held delivery waits its turn
/// behind its ordering key, so it counts as waiting too.
fn in_flight(s: DeliveryStatus) -> bool {
    matches!(
        s,
        DeliveryStatus::Pending
            | DeliveryStatus::Sending
            | DeliveryStatus::Retrying
            | DeliveryStatus::Held
    )
}

impl Client {
    /// Waits for a wake-up (not before the first read), at most one read
    /// per [`COALESCE`], then reads and queues the changes.
    /// False when the session has ended (signed out, revoked, expired):
    /// the stream stops. Checked on every read, and the listener pokes every
    /// tail at least every 10 s.
    async fn next_batch(&mut self) -> bool {
        if let Some(last) = self.last_read {
            if self.sub.wake.changed().await.is_err() {
                // The hub is gone (the server is stopping): idle until dropped.
                future::pending::<()>().await;
            }
            tokio::time::sleep_until(last + COALESCE).await;
        }
        self.sub.wake.borrow_and_update();
        self.last_read = Some(tokio::time::Instant::now());
        match self
            .store
            .portal_session_get(&self.session, self.clock.now())
            .await
        {
            Ok(None) => return false,
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "live tail: cannot check the session; the next wake-up tries again");
                return true;
            }
        }
        if let Err(e) = self.read().await {
            tracing::warn!(error = %e, "live tail: read failed; the next wake-up tries again");
        }
        true
    }

    async fn read(&mut self) -> Result<(), crate::store::StoreError> {
        let fresh = self
            .store
            .delivery_list_recent_by_owner(&self.owner, self.since - LATE_COMMIT, READ_LIMIT)
            .await?;
        let tracked: Vec<Uuid> = self
            .seen
            .iter()
            .filter(|(id, (s, _))| in_flight(*s) && !fresh.iter().any(|f| f.id == **id))
            .map(|(id, _)| *id)
            .collect();
        let updated = if tracked.is_empty() {
            vec![]
        } else {
            self.store.delivery_get_many(&tracked, &self.owner).await?
        };
        let mut rows: Vec<DeliveryRow> = fresh.into_iter().chain(updated).collect();
        // Oldest first, so that the page prepends them in order.
        rows.sort_by_key(|r| (r.created_at, r.id));
        for r in rows {
            let now = (r.status, r.attempts);
            if self.seen.get(&r.id) == Some(&now) {
                continue;
            }
            self.since = self.since.max(r.created_at);
            self.seen.insert(r.id, now);
            if let Ok(e) = Event::default()
                .event("delivery")
                .json_data(Delivery::from(r))
            {
                self.queue.push(e);
            }
        }
        if self.seen.len() > SEEN_MAX {
            self.seen.retain(|_, (s, _)| in_flight(*s));
        }
        self.queue.reverse();
        Ok(())
    }
}

/// The client's events: its reads run in a task of their own, which ends
/// (closing the tail) as soon as the browser goes away, or when the session
/// does (`until`: the browser's reconnection then meets a 401).
fn events(
    mut client: Client,
    until: tokio::time::Instant,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(READ_LIMIT as usize * 2);
    tokio::spawn(async move {
        let ended = tokio::time::sleep_until(until);
        tokio::pin!(ended);
        loop {
            while let Some(e) = client.queue.pop() {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = &mut ended => return,
                live = client.next_batch() => if !live { return },
            }
        }
    });
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

impl Portal {
    /// `GET /portal/tail`
    pub(super) fn tail_page(&self, s: &Session) -> super::PageResult {
        Ok(self.page(
            warp::http::StatusCode::OK,
            Some(s),
            "tail.html",
            ctx! { title => "Live tail", read_limit => READ_LIMIT },
        ))
    }

    /// `GET /portal/tail/stream`: the event stream (`text/event-stream`).
    pub(super) fn tail_stream(&self, s: &Session) -> super::PageResult {
        let now = self.api.clock.now();
        let sub = self.tail.subscribe().ok_or_else(|| {
            super::PageError::new(
                warp::http::StatusCode::SERVICE_UNAVAILABLE,
                "Too many live tails are open on this server; try again later.",
            )
        })?;
        let left = (s.row.expires_at - now).to_std().unwrap_or_default();
        let client = Client {
            sub,
            store: self.api.store.clone(),
            clock: self.api.clock.clone(),
            session: s.id_hash.clone(),
            owner: s.row.owner_id.clone(),
            since: now - FIRST_LOOKBACK,
            seen: HashMap::new(),
            queue: vec![],
            last_read: None,
        };
        Ok(warp::sse::reply(
            warp::sse::keep_alive()
                .interval(Duration::from_secs(15))
                .stream(events(client, tokio::time::Instant::now() + left)),
        )
        .into_response())
    }
}
