//! Outbound events as CloudEvents webhooks, signed with HMAC-SHA256, delivered at least once.
//!
//! A [`Dispatcher`] drains one state machine's outbox and POSTs every event, in structured mode
//! (`content-type: application/cloudevents+json`), to each subscriber. Each subscriber has its own
//! bounded queue and delivery task; a delivery is retried with exponential backoff until the receiver
//! answers 2xx. When a queue is full the dispatcher stops draining, so undelivered events stay in the
//! state machine's outbox: nothing is dropped, memory stays bounded.
//!
//! Signature: `X-Plantloop-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
//! `X-Plantloop-Timestamp: <UNIX seconds>`. The timestamp is inside the MAC and a receiver refuses one
//! outside its tolerance, so a captured delivery cannot be replayed later. Receivers call
//! [`verify_signature`].

use axum::http::HeaderMap;
use plantloop_core::event::Event;
use plantloop_mocks::fault::{EventDecision, FaultInjector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// The CloudEvents structured-mode media type.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// Signing and checking live in `plantloop-wire`, shared with the core's `POST /webhooks/{system}`;
/// re-exported here under their old paths.
pub use plantloop_wire::signature::{
    ATTEMPT_HEADER, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER, TOLERANCE_SECS_DEFAULT,
    sign, verify_signature_at,
};

/// Checks a delivery against `secret`, with the wall clock and the default tolerance.
pub fn verify_signature(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_signature_at(
        secret,
        headers,
        body,
        crate::clock::unix_secs(),
        TOLERANCE_SECS_DEFAULT,
    )
}

/// One receiver of a system's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// Where events are POSTed.
    pub url: String,
    /// The HMAC key shared with the receiver.
    pub secret: Vec<u8>,
    /// Sent as `Authorization: Bearer <token>` when the receiver requires a token (as
    /// `plantloop serve` does).
    pub bearer_token: Option<String>,
}

/// How a [`Dispatcher`] delivers. Every queue and wait has a bound.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub subscribers: Vec<Subscriber>,
    /// Events waiting per subscriber; when full, events stay in the outbox.
    pub queue_len_max: usize,
    /// Wait before the second attempt; doubles per attempt up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A delivery without an answer in this time counts as failed.
    pub request_timeout: Duration,
    /// How often the outbox is drained even without a notification.
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            subscribers: vec![],
            queue_len_max: 1024,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
        }
    }
}

impl WebhookConfig {
    /// The wait before attempt `attempt + 1` after `attempt` failed (`attempt` ≥ 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Counters of one dispatcher, for tests and status pages.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events taken from the outbox.
    pub drained: AtomicU64,
    /// Deliveries acknowledged with 2xx (one per event and subscriber).
    pub delivered: AtomicU64,
    /// HTTP attempts made, successful or not.
    pub attempts: AtomicU64,
}

/// Something with an outbox of events: a mock's state machine behind its lock.
pub type EventSource = Arc<dyn Fn() -> Option<Event> + Send + Sync>;

/// Drains one outbox into the subscribers' queues and delivers them; stops when shutdown is signalled.
pub struct Dispatcher {
    stats: Arc<WebhookStats>,
}

/// Duplicates and reordering of outbound events (the profile's `duplicate-delivery` and `reorder`
/// rules), decided by the mocks' [`FaultInjector`] with time measured from the dispatcher's start.
struct EventFaults {
    injector: FaultInjector,
    rng: ChaCha8Rng,
    origin: std::time::Instant,
}

impl EventFaults {
    fn decide(&mut self) -> EventDecision {
        let elapsed = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.injector
            .decide_event(plantloop_core::Instant::from_micros(elapsed), &mut self.rng)
    }
}

type Permits = Vec<mpsc::OwnedPermit<Arc<Vec<u8>>>>;

impl Dispatcher {
    /// Starts the drain task and one delivery task per subscriber on the current tokio runtime.
    /// The drain task takes events from `source` whenever `wake` is notified (and every
    /// `poll_interval`); `faults` may duplicate and delay (reorder) them.
    pub fn spawn(
        source: EventSource,
        wake: Arc<Notify>,
        config: WebhookConfig,
        faults: Option<&crate::fault::FaultConfig>,
        client: reqwest::Client,
        shutdown: watch::Receiver<bool>,
    ) -> Dispatcher {
        let stats = Arc::new(WebhookStats::default());
        let config = Arc::new(config);
        let mut queues = vec![];
        for sub in config.subscribers.clone() {
            let (tx, rx) = mpsc::channel::<Arc<Vec<u8>>>(config.queue_len_max.max(1));
            queues.push(tx);
            tokio::spawn(deliver_loop(
                sub,
                rx,
                config.clone(),
                client.clone(),
                stats.clone(),
                shutdown.clone(),
            ));
        }
        let faults = faults.map(|f| EventFaults {
            injector: FaultInjector::new(f.profile.clone()),
            rng: ChaCha8Rng::seed_from_u64(f.seed ^ 0x5eed_e7e7),
            origin: std::time::Instant::now(),
        });
        tokio::spawn(drain_loop(
            source,
            queues,
            faults,
            config,
            wake,
            stats.clone(),
            shutdown,
        ));
        Dispatcher { stats }
    }

    /// The dispatcher's counters.
    pub fn stats(&self) -> &Arc<WebhookStats> {
        &self.stats
    }
}

/// Reserves a slot in every queue (waiting while one is full), or `None` on shutdown.
async fn reserve(
    queues: &[mpsc::Sender<Arc<Vec<u8>>>],
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Permits> {
    let mut permits = Vec::with_capacity(queues.len());
    for q in queues {
        tokio::select! {
            p = q.clone().reserve_owned() => permits.push(p.ok()?),
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
    }
    Some(permits)
}

/// Sends `body` into the reserved slots, now or after `delay` (the slots stay reserved meanwhile,
/// so a delayed event still counts against the queue bound).
fn send_after(permits: Permits, body: Arc<Vec<u8>>, delay: plantloop_core::Duration) {
    if delay.is_zero() {
        for p in permits {
            p.send(body.clone());
        }
    } else {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(delay.as_micros())).await;
            for p in permits {
                p.send(body.clone());
            }
        });
    }
}

async fn drain_loop(
    source: EventSource,
    queues: Vec<mpsc::Sender<Arc<Vec<u8>>>>,
    mut faults: Option<EventFaults>,
    config: Arc<WebhookConfig>,
    wake: Arc<Notify>,
    stats: Arc<WebhookStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    // One timer for the whole loop (not a new one per wake-up).
    let mut tick = tokio::time::interval(config.poll_interval.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Take an event only when every queue has room, so that a slow receiver leaves events in the
        // outbox instead of growing a queue.
        loop {
            let Some(permits) = reserve(&queues, &mut shutdown).await else {
                return;
            };
            let Some(event) = source() else { break };
            stats.drained.fetch_add(1, Ordering::Relaxed);
            let body = Arc::new(event.to_json_bytes());
            let decision = faults.as_mut().map(EventFaults::decide);
            send_after(
                permits,
                body.clone(),
                decision.map_or(plantloop_core::Duration::ZERO, |d| d.delay),
            );
            if let Some(again) = decision.and_then(|d| d.duplicate) {
                let Some(permits) = reserve(&queues, &mut shutdown).await else {
                    return;
                };
                send_after(permits, body, again);
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn deliver_loop(
    sub: Subscriber,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    config: Arc<WebhookConfig>,
    client: reqwest::Client,
    stats: Arc<WebhookStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let body = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let mut attempt: u32 = 1;
        loop {
            stats.attempts.fetch_add(1, Ordering::Relaxed);
            let acknowledged = tokio::select! {
                ok = deliver_once(&client, &sub, &body, attempt, config.request_timeout) => ok,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            if acknowledged {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
                break;
            }
            tracing::debug!(url = %sub.url, attempt, "webhook delivery failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(config.backoff(attempt)) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

async fn deliver_once(
    client: &reqwest::Client,
    sub: &Subscriber,
    body: &[u8],
    attempt: u32,
    timeout: Duration,
) -> bool {
    let timestamp = crate::clock::unix_secs();
    let mut request = client.post(&sub.url);
    if let Some(token) = &sub.bearer_token {
        request = request.bearer_auth(token);
    }
    let result = request
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, CLOUDEVENTS_JSON)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, sign(&sub.secret, timestamp, body))
        .header(ATTEMPT_HEADER, attempt.to_string())
        .body(body.to_vec())
        .send()
        .await;
    matches!(result, Ok(r) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let c = WebhookConfig {
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..WebhookConfig::default()
        };
        let waits: Vec<u128> = (1..=5).map(|a| c.backoff(a).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 50, 50]);
        assert_eq!(c.backoff(u32::MAX).as_millis(), 50);
    }
}
