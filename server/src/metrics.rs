//! `GET /metrics`: the service's metrics in the Prometheus text format (OpenMetrics), kept and
//! encoded by `prometheus-client` rather than written by hand.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `plantloop_events_in_total` | `type`, `class`, `plant`, `result` | events the engine answered: `accepted`, `duplicate`, `pushed_back` |
//! | `plantloop_events_refused_total` | `route` | events refused before the engine (`events`, `webhooks`, `feed`) |
//! | `plantloop_webhooks_refused_total` | `system`, `reason` | deliveries refused with 401: `signature`, `stale`, `replayed` |
//! | `plantloop_polls_total` | `system`, `outcome` | feed reads: `read`, `empty`, `pushed-back`, `gap`, `failed`, `unreachable`, `engine-down` |
//! | `plantloop_queue_depth` | `class`, `target` | calls waiting in the outbox |
//! | `plantloop_in_flight` | `target` | calls sent and not answered |
//! | `plantloop_calls_total` | `target`, `outcome` | answered attempts: `done`, `found`, `unavailable`, `timed_out`, `throttled`, `conflict`, `rejected` |
//! | `plantloop_retries_total` | `target` | attempts after a call's first |
//! | `plantloop_breaker_open` | `target` | 1 while the target's circuit breaker is open |
//! | `plantloop_journal_sync_seconds` | | one journal sync (group commit) |
//! | `plantloop_end_to_end_seconds` | `class` | from the source event's `time` (or its arrival, without one) to the target's acknowledgement of each call it caused |
//!
//! Counters count since the process started. Gauges are set by the engine thread after each turn.

use plantloop_core::call::Outcome;
use plantloop_core::engine::TargetHealth;
use plantloop_core::model::{LatencyClass, System};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The media type of `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: &'static str,
    class: &'static str,
    plant: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SystemReason {
    system: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SystemOutcome {
    system: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassTarget {
    class: &'static str,
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetOutcome {
    target: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

fn sync_histogram() -> Histogram {
    // 50 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the service, shared by the gateway, the engine thread, the calls out and the
/// pollers.
pub struct Metrics {
    registry: Registry,
    events_in: Family<EventLabels, Counter>,
    events_refused: Family<RouteLabel, Counter>,
    webhooks_refused: Family<SystemReason, Counter>,
    polls: Family<SystemOutcome, Counter>,
    queue_depth: Family<ClassTarget, Gauge>,
    in_flight: Family<TargetLabel, Gauge>,
    calls: Family<TargetOutcome, Counter>,
    retries: Family<TargetLabel, Counter>,
    breaker_open: Family<TargetLabel, Gauge>,
    journal_sync: Histogram,
    end_to_end: Family<ClassLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            events_in: Family::default(),
            events_refused: Family::default(),
            webhooks_refused: Family::default(),
            polls: Family::default(),
            queue_depth: Family::default(),
            in_flight: Family::default(),
            calls: Family::default(),
            retries: Family::default(),
            breaker_open: Family::default(),
            journal_sync: sync_histogram(),
            end_to_end: Family::new_with_constructor(latency_histogram),
        };
        let r = &mut registry;
        r.register(
            "plantloop_events_in",
            "Events the engine answered, by type, latency class, plant and result",
            m.events_in.clone(),
        );
        r.register(
            "plantloop_events_refused",
            "Events refused before reaching the engine, by route",
            m.events_refused.clone(),
        );
        r.register(
            "plantloop_webhooks_refused",
            "Webhook deliveries refused with 401, by system and reason",
            m.webhooks_refused.clone(),
        );
        r.register(
            "plantloop_polls",
            "Reads of a system's event feed, by outcome",
            m.polls.clone(),
        );
        r.register(
            "plantloop_queue_depth",
            "Calls waiting in the outbox, by latency class and target",
            m.queue_depth.clone(),
        );
        r.register(
            "plantloop_in_flight",
            "Calls sent and not yet answered, by target",
            m.in_flight.clone(),
        );
        r.register(
            "plantloop_calls",
            "Answered call attempts, by target and outcome",
            m.calls.clone(),
        );
        r.register(
            "plantloop_retries",
            "Call attempts after the first, by target",
            m.retries.clone(),
        );
        r.register(
            "plantloop_breaker_open",
            "1 while the target's circuit breaker is open",
            m.breaker_open.clone(),
        );
        r.register(
            "plantloop_journal_sync_seconds",
            "Time of one journal sync (one group commit)",
            m.journal_sync.clone(),
        );
        r.register(
            "plantloop_end_to_end_seconds",
            "From the source event's time to the target's acknowledgement, by latency class",
            m.end_to_end.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The exposition, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }

    /// An event the engine answered with `result` (`accepted`, `duplicate`, `pushed_back`).
    pub fn event_in(
        &self,
        event_type: &'static str,
        class: LatencyClass,
        plant: &str,
        result: &'static str,
    ) {
        self.events_in
            .get_or_create(&EventLabels {
                r#type: event_type,
                class: class.as_str(),
                plant: plant.to_owned(),
                result,
            })
            .inc();
    }

    /// An event refused before the engine, on `route`.
    pub fn event_refused(&self, route: &'static str) {
        self.events_refused
            .get_or_create(&RouteLabel { route })
            .inc();
    }

    pub fn webhook_refused(&self, system: System, reason: &'static str) {
        self.webhooks_refused
            .get_or_create(&SystemReason {
                system: system.as_str(),
                reason,
            })
            .inc();
    }

    pub fn poll(&self, system: System, outcome: &'static str) {
        self.polls
            .get_or_create(&SystemOutcome {
                system: system.as_str(),
                outcome,
            })
            .inc();
    }

    /// Sets the gauges of one target from the engine's view of it.
    pub fn target(&self, target: System, h: &TargetHealth) {
        let t = target.as_str();
        for class in LatencyClass::ALL {
            self.queue_depth
                .get_or_create(&ClassTarget {
                    class: class.as_str(),
                    target: t,
                })
                .set(i64::from(h.queued[class.index()]));
        }
        self.in_flight
            .get_or_create(&TargetLabel { target: t })
            .set(i64::from(h.in_flight));
        self.breaker_open
            .get_or_create(&TargetLabel { target: t })
            .set(i64::from(h.breaker_open));
    }

    /// One answered attempt.
    pub fn call(&self, target: System, outcome: &Outcome) {
        let outcome = match outcome {
            Outcome::Done { .. } => "done",
            Outcome::Found { .. } => "found",
            Outcome::Unavailable { .. } => "unavailable",
            Outcome::TimedOut => "timed_out",
            Outcome::Throttled { .. } => "throttled",
            Outcome::Conflict { .. } => "conflict",
            Outcome::Rejected { .. } => "rejected",
        };
        self.calls
            .get_or_create(&TargetOutcome {
                target: target.as_str(),
                outcome,
            })
            .inc();
    }

    /// An attempt after a call's first.
    pub fn retry(&self, target: System) {
        self.retries
            .get_or_create(&TargetLabel {
                target: target.as_str(),
            })
            .inc();
    }

    pub fn journal_synced(&self, seconds: f64) {
        self.journal_sync.observe(seconds);
    }

    pub fn end_to_end(&self, class: LatencyClass, seconds: f64) {
        self.end_to_end
            .get_or_create(&ClassLabel {
                class: class.as_str(),
            })
            .observe(seconds);
    }
}

/// The plant an event is about: its `plant` extension, else the `{plant}` of a
/// `/plants/{plant}/…` source, else empty.
pub fn plant_of(e: &plantloop_core::event::Event) -> &str {
    if let Some(p) = &e.plant {
        return p.as_str();
    }
    e.source
        .strip_prefix("/plants/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

/// A source event's `time` (RFC 3339) in microseconds since the UNIX epoch, if it has a valid one.
pub fn event_time_us(time: Option<&str>) -> Option<u64> {
    let t: jiff::Timestamp = time?.parse().ok()?;
    u64::try_from(t.as_microsecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_labels_and_values() {
        let m = Metrics::new();
        m.event_in(
            "nonconformance.created",
            LatencyClass::Critical,
            "P1",
            "accepted",
        );
        m.call(System::Erp, &Outcome::TimedOut);
        m.end_to_end(LatencyClass::Critical, 0.25);
        let text = m.encode();
        assert!(
            text.contains(
                "plantloop_events_in_total{type=\"nonconformance.created\",class=\"critical\",plant=\"P1\",result=\"accepted\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("plantloop_calls_total{target=\"erp\",outcome=\"timed_out\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("plantloop_end_to_end_seconds_count{class=\"critical\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn event_times_are_rfc_3339() {
        assert_eq!(
            event_time_us(Some("1970-01-01T00:00:01.5Z")),
            Some(1_500_000)
        );
        assert_eq!(event_time_us(Some("yesterday")), None);
        assert_eq!(event_time_us(None), None);
    }
}
