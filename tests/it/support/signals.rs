//! A dispatcher with test signals: tests wait for "went idle", "claimed N"
//! and "completed N" instead of sleeping or polling the database.

use std::time::Duration;

use postbox::clock::SharedClock;
use postbox::config::DispatchConfig;
use postbox::dispatch::{DispatchInputs, Dispatcher, Signalled, TestSignals};
use postbox::store::Store;
use tokio_util::sync::CancellationToken;

use super::Running;

/// How long a test waits for a signal before it fails.
pub const SIGNAL_WAIT: Duration = Duration::from_secs(15);

/// Like `spawn_dispatcher`, firing `signals` (several dispatchers may share
/// one handle: their counts add up).
pub fn spawn_signalled(
    store: Store,
    config: DispatchConfig,
    clock: SharedClock,
    signals: &TestSignals,
) -> Running {
    let inputs = DispatchInputs {
        signals: Some(signals.clone()),
        ..DispatchInputs::new(clock)
    };
    let dispatcher = Dispatcher::with_inputs(store, config, inputs).unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let handle = tokio::spawn(async move { dispatcher.run(s).await.unwrap() });
    Running { stop, handle }
}

/// Waits until `done` holds for the signals; fails the test, naming `what`,
/// after `SIGNAL_WAIT`.
pub async fn signalled(
    signals: &TestSignals,
    what: &str,
    done: impl FnMut(&Signalled) -> bool,
) -> Signalled {
    signals
        .wait_for(SIGNAL_WAIT, done)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}
