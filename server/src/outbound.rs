//! Calls out: each attempt the engine releases is one HTTP request on its own task, over the
//! route table the mocks serve (`plantloop-wire`), so a slow target never blocks ingress or the
//! calls to other targets; how many run at once is bounded by the engine's per-target in-flight
//! limits. The answer comes back to the engine as an `Input::Reply`. A target that requires
//! OAuth 2.0 gets a bearer token from its [`TokenSource`]; a 401 drops that token and the call is
//! sent once more with a fresh one, within the same attempt.

use crate::driver::Msg;
use crate::metrics::Metrics;
use crate::oauth::TokenSource;
use plantloop_core::call::{Call, EventRef, Outcome};
use plantloop_core::model::System;
use plantloop_core::time::Instant;
use plantloop_wire::routes::{CallOptions, call_with};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::Sender;

/// Source events whose trace id is remembered for their calls' `traceparent`.
pub const TRACES_REMEMBERED_MAX: usize = 100_000;
/// The shortest timeout an attempt is given, even when its deadline is (nearly) past.
const ATTEMPT_TIMEOUT_MIN: std::time::Duration = std::time::Duration::from_millis(50);

/// Sends the engine's calls to the targets.
pub struct Outbound {
    client: reqwest::Client,
    /// Per target, in [`System::ALL`] order.
    base_urls: [String; 4],
    runtime: tokio::runtime::Handle,
    replies: Sender<Msg>,
    traces: Traces,
    /// Per target, in [`System::ALL`] order: its token source if it requires OAuth.
    tokens: [Option<Arc<TokenSource>>; 4],
    origins: Remembered<u64>,
    metrics: Arc<Metrics>,
}

impl Outbound {
    pub fn new(
        client: reqwest::Client,
        base_urls: [String; 4],
        runtime: tokio::runtime::Handle,
        replies: Sender<Msg>,
        metrics: Arc<Metrics>,
    ) -> Outbound {
        Outbound {
            client,
            base_urls,
            runtime,
            replies,
            traces: Traces::default(),
            tokens: Default::default(),
            origins: Remembered::default(),
            metrics,
        }
    }

    /// Calls to the targets with a token source carry its bearer token.
    pub fn with_oauth(mut self, tokens: [Option<Arc<TokenSource>>; 4]) -> Outbound {
        self.tokens = tokens;
        self
    }

    /// Remembers when a source event happened (microseconds since the UNIX epoch), for the
    /// end-to-end latency of the calls it causes. After a restart the events before it are
    /// forgotten, and their calls are not measured.
    pub fn note_origin(&mut self, origin: EventRef, at_us: u64) {
        self.origins.note(origin, at_us);
    }

    /// Remembers the trace id of a source event that came with a `traceparent`.
    pub fn note_trace(&mut self, origin: EventRef, traceparent: &str) {
        self.traces.note(origin, traceparent);
    }

    /// Starts one attempt; its outcome arrives later as [`Msg::Reply`].
    pub fn send(&mut self, call: Call, now: Instant) {
        let url = self.base_urls[call.target.index()].clone();
        let traceparent = self.traces.traceparent_for(&call);
        let timeout =
            std::time::Duration::from_micros(call.deadline.saturating_since(now).as_micros())
                .max(ATTEMPT_TIMEOUT_MIN);
        let client = self.client.clone();
        let replies = self.replies.clone();
        let tokens = self.tokens[call.target.index()].clone();
        let metrics = self.metrics.clone();
        let origin_us = self.origins.get(&call.origin);
        if call.attempt > 1 {
            metrics.retry(call.target);
        }
        self.runtime.spawn(async move {
            let options = CallOptions {
                timeout: Some(timeout),
                traceparent: Some(&traceparent),
                bearer: None,
            };
            let outcome = match tokens {
                None => call_with(&client, &url, &call.key, &call.request, &options).await,
                Some(tokens) => authorised(&client, &url, &call, options, &tokens).await,
            };
            metrics.call(call.target, &outcome);
            if let (Outcome::Done { .. }, Some(from)) = (&outcome, origin_us) {
                let now_us = crate::clock::unix_micros();
                metrics.end_to_end(call.class, now_us.saturating_sub(from) as f64 / 1e6);
            }
            // The engine may have stopped meanwhile: the reply is then lost, and the restarted
            // engine sends the call again under the same key.
            let _ = replies.send(Msg::Reply {
                call: call.id,
                attempt: call.attempt,
                outcome,
            });
        });
    }

    /// Where calls to `target` go.
    pub fn base_url(&self, target: System) -> &str {
        &self.base_urls[target.index()]
    }
}

/// One call with a bearer token; after a 401, once more with a fresh token. A token that cannot
/// be had is a transient failure (`Unavailable { status: 0 }`: nothing was sent).
async fn authorised(
    client: &reqwest::Client,
    url: &str,
    call: &Call,
    options: CallOptions<'_>,
    tokens: &TokenSource,
) -> Outcome {
    let mut outcome = Outcome::Unavailable { status: 0 };
    for _ in 0..2 {
        let token = match tokens.token().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(target = %call.target, "no access token: {e}");
                return Outcome::Unavailable { status: 0 };
            }
        };
        let options = CallOptions {
            bearer: Some(&token),
            ..options.clone()
        };
        outcome = call_with(client, url, &call.key, &call.request, &options).await;
        if outcome != (Outcome::Unavailable { status: 401 }) {
            return outcome;
        }
        tokens.invalidate(&token).await;
    }
    outcome
}

/// A value per recent source event, at most [`TRACES_REMEMBERED_MAX`], oldest forgotten first.
struct Remembered<T> {
    values: HashMap<EventRef, T>,
    order: VecDeque<EventRef>,
}

impl<T> Default for Remembered<T> {
    fn default() -> Self {
        Remembered {
            values: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<T: Copy> Remembered<T> {
    /// Remembers `value` for `origin` unless it has one already.
    fn note(&mut self, origin: EventRef, value: T) {
        if self.values.contains_key(&origin) {
            return;
        }
        self.values.insert(origin.clone(), value);
        self.order.push_back(origin);
        if self.order.len() > TRACES_REMEMBERED_MAX
            && let Some(old) = self.order.pop_front()
        {
            self.values.remove(&old);
        }
    }

    fn get(&self, origin: &EventRef) -> Option<T> {
        self.values.get(origin).copied()
    }
}

/// Trace ids of recent source events.
#[derive(Default)]
struct Traces {
    ids: Remembered<[u8; 16]>,
}

impl Traces {
    fn note(&mut self, origin: EventRef, traceparent: &str) {
        if let Some(id) = traceparent.split('-').nth(1).and_then(hex16) {
            self.ids.note(origin, id);
        }
    }

    /// `00-<trace>-<span>-01`: the trace of the source event (its own `traceparent`'s trace id
    /// when it came with one, else one derived from its source and id, so every call an event
    /// causes shares a trace across restarts), and a span per attempt.
    fn traceparent_for(&self, call: &Call) -> String {
        let trace = self.ids.get(&call.origin).unwrap_or_else(|| {
            let mut h = blake3::Hasher::new_derive_key("plantloop trace id v1");
            h.update(call.origin.source().as_bytes());
            h.update(&[0]);
            h.update(call.origin.id().as_bytes());
            let mut id = [0u8; 16];
            id.copy_from_slice(&h.finalize().as_bytes()[..16]);
            id
        });
        let mut h = blake3::Hasher::new_derive_key("plantloop span id v1");
        h.update(&call.id.0.to_le_bytes());
        h.update(&call.attempt.to_le_bytes());
        let span = h.finalize();
        format!("00-{}-{}-01", hex(&trace), hex(&span.as_bytes()[..8]))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{ClientSecret, OAuthClientConfig};
    use plantloop_core::call::{CallId, IdempotencyKey, Request};
    use plantloop_core::model::LatencyClass;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn call(id: u64, attempt: u32, origin: &EventRef) -> Call {
        Call {
            id: CallId(id),
            attempt,
            target: System::Erp,
            class: LatencyClass::Critical,
            key: IdempotencyKey("k".into()),
            request: Request::LookupPosting {
                key: IdempotencyKey("k".into()),
            },
            deadline: Instant::ZERO,
            origin: origin.clone(),
        }
    }

    #[test]
    fn traceparent_continues_the_source_trace_or_derives_one() {
        let mut t = Traces::default();
        let a = EventRef::new("/qms", "1");
        let derived = t.traceparent_for(&call(1, 1, &a));
        assert_eq!(derived.len(), 55, "{derived}");
        assert!(derived.starts_with("00-") && derived.ends_with("-01"));
        assert_eq!(derived, t.traceparent_for(&call(1, 1, &a)), "stable");
        assert_ne!(
            derived,
            t.traceparent_for(&call(1, 2, &a)),
            "a span per attempt"
        );
        t.note(
            a.clone(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let continued = t.traceparent_for(&call(1, 1, &a));
        assert!(continued.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    /// A token endpoint and a target in one server: tokens `t1`, `t2`, … in order; the target
    /// answers 401 to the first `refused` tokens and counts every request it gets.
    struct Target {
        source: TokenSource,
        url: String,
        issued: Arc<AtomicU32>,
        hits: Arc<AtomicU32>,
    }

    async fn target(refused: u32) -> Target {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let issued = Arc::new(AtomicU32::new(0));
        let hits = Arc::new(AtomicU32::new(0));
        let token = {
            let issued = issued.clone();
            move || async move {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                axum::Json(serde_json::json!({
                    "access_token": format!("t{n}"), "token_type": "Bearer", "expires_in": 3600
                }))
            }
        };
        let call = {
            let hits = hits.clone();
            move |headers: HeaderMap| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let n: u32 = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok()?.strip_prefix("Bearer t")?.parse().ok())
                    .unwrap_or(0);
                if n == 0 || n <= refused {
                    StatusCode::UNAUTHORIZED.into_response()
                } else {
                    axum::Json(serde_json::json!({ "reference": "k", "receipt": "ERP-1" }))
                        .into_response()
                }
            }
        };
        let app = axum::Router::new()
            .route("/oauth/token", axum::routing::post(token))
            .fallback(call);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = OAuthClientConfig {
            token_url: format!("{url}/oauth/token"),
            client_id: "c".into(),
            client_secret: ClientSecret::Value("s".into()),
            scope: None,
        };
        Target {
            source: TokenSource::new(reqwest::Client::new(), config).unwrap(),
            url,
            issued,
            hits,
        }
    }

    async fn send(t: &Target) -> Outcome {
        let client = reqwest::Client::new();
        let c = call(1, 1, &EventRef::new("/qms", "1"));
        let options = CallOptions {
            timeout: Some(std::time::Duration::from_secs(5)),
            ..CallOptions::default()
        };
        authorised(&client, &t.url, &c, options, &t.source).await
    }

    fn counts(t: &Target) -> (u32, u32) {
        (
            t.issued.load(Ordering::SeqCst),
            t.hits.load(Ordering::SeqCst),
        )
    }

    #[tokio::test]
    async fn a_401_drops_the_token_and_the_call_goes_once_more_with_a_fresh_one() {
        let found = Outcome::Found {
            receipt: Some("ERP-1".into()),
        };
        // The cached token is refused (revoked): one more token, one more request, done.
        let t = target(1).await;
        assert_eq!(send(&t).await, found);
        assert_eq!(
            counts(&t),
            (2, 2),
            "(tokens issued, requests to the target)"
        );
        // The fresh token is kept for the next call.
        assert_eq!(send(&t).await, found);
        assert_eq!(counts(&t), (2, 3));

        // A target that refuses every token: the call goes twice, not more, and the 401 is a
        // transient failure for the engine to retry, never a refusal to dead-letter.
        let t = target(u32::MAX).await;
        assert_eq!(send(&t).await, Outcome::Unavailable { status: 401 });
        assert_eq!(counts(&t), (2, 2));

        // A token that is accepted: one of each.
        let t = target(0).await;
        assert_eq!(send(&t).await, found);
        assert_eq!(counts(&t), (1, 1));
    }
}
