//! The HTTP gateway: `POST /events` and the operator routes, answering problem+json for every
//! refusal. Handlers only parse and forward: the engine thread ([`crate::driver`]) owns all
//! state, and an event's answer is sent only after the journal synced it.

use crate::auth::{Principal, Verifier, gate};
use crate::driver::{EngineDown, Msg, Status};
use crate::ingress::{self, BATCH_BYTES_MAX, Mode};
use crate::metrics::{self, Metrics};
use crate::webhooks::{Webhooks, unix_secs};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use plantloop_core::engine::Ack;
use plantloop_core::event::Event;
use plantloop_core::model::System;
use plantloop_core::time::Duration;
use plantloop_wire::Problem;
use plantloop_wire::problem::PROBLEM_JSON;
use plantloop_wire::routes::query_param;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use tokio::sync::oneshot;

/// What every handler shares.
#[derive(Clone)]
pub struct Gateway {
    pub engine: Sender<Msg>,
    pub status: Arc<Status>,
    /// Checks bearer tokens: every route but `/health` needs one ([`gate`]).
    pub auth: Arc<Verifier>,
    pub webhooks: Arc<Webhooks>,
    pub metrics: Arc<Metrics>,
}

/// The router of the service.
pub fn router(gw: Gateway) -> Router {
    Router::new()
        .route("/events", post(post_events))
        .route("/webhooks/{system}", post(post_webhook))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/{id}/replay", post(replay_dead_letter))
        .route("/audit", get(audit))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BATCH_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            gw.auth.clone(),
            gate::require,
        ))
        .with_state(gw)
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no route {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::method_not_allowed(method.as_str(), uri.path())
}

fn unavailable(why: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engine-unavailable",
        "The integration engine is not available",
        why,
    )
}

fn body_problem(r: BytesRejection) -> Problem {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::too_large(BATCH_BYTES_MAX)
    } else {
        Problem::new(
            r.status(),
            "unreadable-body",
            "Unreadable body",
            r.body_text(),
        )
    }
}

/// Retry-After in whole seconds, at least 1.
fn retry_after_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000).max(1)
}

async fn post_events(
    State(gw): State<Gateway>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The gate puts the principal there; without one, nothing is accepted.
    let Some(Extension(principal)) = principal else {
        return gate::unauthorized(&crate::auth::Refusal::Missing);
    };
    let principal = principal.subject;
    let mode = match ingress::mode_of(&headers) {
        Ok(m) => m,
        Err(p) => return p.into_response(),
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(r).into_response(),
    };
    ingest(&gw, None, mode, &headers, &body, principal).await
}

/// `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]).
async fn metrics_text(State(gw): State<Gateway>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        gw.metrics.encode(),
    )
        .into_response()
}

/// `POST /webhooks/{system}`: a signed delivery from a system of record (structured or batched
/// mode: the signature covers the body only, so binary mode's `ce-*` headers would be unsigned).
/// It needs a token with `webhooks:write` (the gate) *and* a valid signature: refused with 401
/// before anything is journaled when the signature, its timestamp or the replay guard says no;
/// then handled as `POST /events`.
async fn post_webhook(
    State(gw): State<Gateway>,
    principal: Option<Extension<Principal>>,
    Path(system): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(Extension(principal)) = principal else {
        return gate::unauthorized(&crate::auth::Refusal::Missing);
    };
    let principal = principal.subject;
    let Some(system) = System::ALL.into_iter().find(|s| s.as_str() == system) else {
        return Problem::not_found(format!("no system {system:?} (erp, qms, cmms, mes)"))
            .with_field("system")
            .into_response();
    };
    if !gw.webhooks.accepts(system) {
        return Problem::not_found(format!(
            "{system} sends no webhooks here: targets.{system}.webhook_secret is not configured"
        ))
        .with_field("system")
        .into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_problem(r).into_response(),
    };
    if let Err(refusal) = gw.webhooks.check(system, &headers, &body, unix_secs()) {
        tracing::warn!(%system, %refusal, "webhook refused");
        gw.metrics.webhook_refused(system, refusal.label());
        let field = match &refusal {
            crate::webhooks::Refusal::Signature(
                plantloop_wire::signature::SignatureError::MissingHeader(h)
                | plantloop_wire::signature::SignatureError::MalformedHeader(h),
            ) => *h,
            crate::webhooks::Refusal::Signature(
                plantloop_wire::signature::SignatureError::Stale { .. },
            ) => plantloop_wire::signature::TIMESTAMP_HEADER,
            _ => plantloop_wire::signature::SIGNATURE_HEADER,
        };
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "webhook-refused",
            "The webhook delivery is not authentic",
            refusal.to_string(),
        )
        .with_field(field)
        .into_response();
    }
    let mode = match ingress::mode_of(&headers) {
        Ok(Mode::Binary) | Err(_) => {
            return Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!(
                    "a webhook is {} (structured) or {} (batched): the signature covers the body only",
                    ingress::CLOUDEVENTS_JSON,
                    ingress::CLOUDEVENTS_BATCH_JSON
                ),
            )
            .with_field("content-type")
            .into_response();
        }
        Ok(m) => m,
    };
    ingest(&gw, Some(system), mode, &headers, &body, principal).await
}

/// Parses the events of a request and hands them to the engine; answers after the sync.
/// `webhook`: the system whose webhook route this is; an event whose `source` names another
/// system is refused (422, `field: "source"`) and never reaches the engine.
async fn ingest(
    gw: &Gateway,
    webhook: Option<System>,
    mode: Mode,
    headers: &HeaderMap,
    body: &Bytes,
    principal: Arc<str>,
) -> Response {
    let route = if webhook.is_some() {
        "webhooks"
    } else {
        "events"
    };
    let refused = || gw.metrics.event_refused(route);
    let parsed = match mode {
        Mode::Structured => ingress::structured(body).map(|e| vec![Ok(e)]),
        Mode::Binary => ingress::binary(headers, body).map(|e| vec![Ok(e)]),
        Mode::Batch => ingress::batch(body),
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(p) => {
            refused();
            return p.into_response();
        }
    };
    let parsed: Vec<Result<Event, Problem>> = match webhook {
        None => parsed,
        Some(system) => parsed
            .into_iter()
            .map(|r| r.and_then(|e| from_system(e, system)))
            .collect(),
    };
    if mode != Mode::Batch {
        let event = match parsed.into_iter().next() {
            Some(Ok(e)) => e,
            Some(Err(p)) => {
                refused();
                return p.into_response();
            }
            None => return unavailable("no event parsed").into_response(),
        };
        let (source, id) = (event.source.clone(), event.id.clone());
        return match submit(gw, vec![event], principal).await {
            Ok(acks) => Verdict::of(acks.into_iter().next(), source, id).single(),
            Err(down) => unavailable(&down.0).into_response(),
        };
    }
    if parsed.is_empty() {
        return Problem::invalid("", "a batch holds at least one event").into_response();
    }
    // Each good event is submitted; a bad one keeps its problem, at its index.
    let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(parsed.len());
    let mut events = Vec::new();
    let mut submitted = Vec::new();
    for (i, r) in parsed.into_iter().enumerate() {
        match r {
            Ok(e) => {
                submitted.push((i, e.source.clone(), e.id.clone()));
                events.push(e);
                verdicts.push(None);
            }
            Err(p) => {
                refused();
                verdicts.push(Some(Verdict::Refused(p)));
            }
        }
    }
    let acks = if events.is_empty() {
        vec![]
    } else {
        match submit(gw, events, principal).await {
            Ok(a) => a,
            Err(down) => return unavailable(&down.0).into_response(),
        }
    };
    let mut acks = acks.into_iter();
    for (i, source, id) in submitted {
        verdicts[i] = Some(Verdict::of(acks.next(), source, id));
    }
    batch_response(verdicts.into_iter().flatten().collect())
}

/// `e` if its `source` names `system` ([`plantloop_wire::source`]): a system's webhook secret
/// vouches for its own events only.
fn from_system(e: Event, system: System) -> Result<Event, Problem> {
    if plantloop_wire::source::belongs_to(&e.source, system) {
        return Ok(e);
    }
    Err(Problem::invalid(
        "source",
        format!(
            "source {:?} is not {system}'s: on /webhooks/{system} the last segment of `source` \
             must be \"{system}\" (e.g. /{system} or /plants/P1/{system})",
            e.source
        ),
    ))
}

/// Hands events to the engine; `principal` is who delivered them.
async fn submit(
    gw: &Gateway,
    events: Vec<Event>,
    principal: Arc<str>,
) -> Result<Vec<Ack>, EngineDown> {
    let (reply, rx) = oneshot::channel();
    gw.engine
        .send(Msg::Events {
            events,
            principal,
            reply,
        })
        .map_err(|_| EngineDown("the engine has stopped".into()))?;
    rx.await
        .map_err(|_| EngineDown("the engine has stopped".into()))?
}

/// What happened to one event.
enum Verdict {
    Accepted { source: String, id: String },
    Duplicate { source: String, id: String },
    PushedBack { retry_after: Duration },
    Refused(Problem),
}

impl Verdict {
    fn of(ack: Option<Ack>, source: String, id: String) -> Verdict {
        match ack {
            Some(Ack::Accepted) => Verdict::Accepted { source, id },
            Some(Ack::Duplicate) => Verdict::Duplicate { source, id },
            Some(Ack::RetryAfter(d)) => Verdict::PushedBack { retry_after: d },
            _ => Verdict::Refused(unavailable("the engine gave no answer for this event")),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Verdict::Accepted { .. } => StatusCode::ACCEPTED,
            Verdict::Duplicate { .. } => StatusCode::OK,
            Verdict::PushedBack { .. } => StatusCode::TOO_MANY_REQUESTS,
            Verdict::Refused(p) => p.status_code(),
        }
    }

    fn pushed_back_problem(retry_after: Duration) -> Problem {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "pushed-back",
            "The event's latency class is full",
            format!(
                "the outbox of this event's latency class is full: send it again after {} s",
                retry_after_secs(retry_after)
            ),
        )
        .with_field("latencyclass")
    }

    fn json(&self) -> Value {
        match self {
            Verdict::Accepted { source, id } => {
                json!({ "status": 202, "result": "accepted", "source": source, "id": id })
            }
            Verdict::Duplicate { source, id } => {
                json!({ "status": 200, "result": "duplicate", "source": source, "id": id })
            }
            Verdict::PushedBack { retry_after } => {
                let mut v = serde_json::to_value(Self::pushed_back_problem(*retry_after))
                    .unwrap_or(Value::Null);
                v["retry_after_s"] = retry_after_secs(*retry_after).into();
                v
            }
            Verdict::Refused(p) => serde_json::to_value(p).unwrap_or(Value::Null),
        }
    }

    fn single(self) -> Response {
        match self {
            Verdict::Accepted { .. } | Verdict::Duplicate { .. } => {
                (self.status(), axum::Json(self.json())).into_response()
            }
            Verdict::PushedBack { retry_after } => {
                let mut r = Self::pushed_back_problem(retry_after).into_response();
                set_retry_after(&mut r, retry_after);
                r
            }
            Verdict::Refused(p) => p.into_response(),
        }
    }
}

fn set_retry_after(r: &mut Response, d: Duration) {
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs(d).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// A batch's answer: the status all its events share, or 207 Multi-Status; the body lists each
/// event's result by index. A 4xx answer is problem+json (with the same `results`).
fn batch_response(results: Vec<Verdict>) -> Response {
    let first = results.first().map_or(StatusCode::OK, Verdict::status);
    let uniform = results.iter().all(|r| r.status() == first);
    let status = if uniform {
        first
    } else {
        StatusCode::MULTI_STATUS
    };
    let retry_after = results
        .iter()
        .filter_map(|r| match r {
            Verdict::PushedBack { retry_after } => Some(*retry_after),
            _ => None,
        })
        .max();
    let items: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut v = r.json();
            v["index"] = i.into();
            v
        })
        .collect();
    let mut body = json!({ "results": items });
    let problem = status.is_client_error() || status.is_server_error();
    if problem {
        body["type"] = "https://plantloop.dev/problems/batch-refused".into();
        body["title"] = "Every event of the batch was refused".into();
        body["status"] = status.as_u16().into();
        body["detail"] = "see `results` for each event's problem, by index".into();
    }
    let mut r = (status, axum::Json(body)).into_response();
    if problem {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    }
    if let Some(d) = retry_after {
        set_retry_after(&mut r, d);
    }
    r
}

async fn health() -> Response {
    axum::Json(json!({ "status": "up" })).into_response()
}

async fn ready(State(gw): State<Gateway>) -> Response {
    if gw.status.ready.load(Ordering::Acquire) {
        return axum::Json(json!({
            "status": "ready",
            "inputs": gw.status.inputs.load(Ordering::Relaxed),
            "syncs": gw.status.syncs.load(Ordering::Relaxed),
        }))
        .into_response();
    }
    let why = gw
        .status
        .failed
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .unwrap_or_else(|| "recovering the journal".into());
    unavailable(&why).into_response()
}

async fn dead_letters(State(gw): State<Gateway>) -> Response {
    let (reply, rx) = oneshot::channel();
    if gw.engine.send(Msg::DeadLetters { reply }).is_err() {
        return unavailable("the engine has stopped").into_response();
    }
    match rx.await {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => unavailable("the engine has stopped").into_response(),
    }
}

async fn replay_dead_letter(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return Problem::invalid("id", format!("{id:?} is not a dead letter's number"))
            .into_response();
    };
    let (reply, rx) = oneshot::channel();
    if gw.engine.send(Msg::ReplayDeadLetter { id, reply }).is_err() {
        return unavailable("the engine has stopped").into_response();
    }
    match rx.await {
        Ok(Ok(Ack::Ignored)) => Problem::not_found(format!("no dead letter {id}"))
            .with_field("id")
            .into_response(),
        Ok(Ok(_)) => (StatusCode::ACCEPTED, axum::Json(json!({ "replayed": id }))).into_response(),
        Ok(Err(down)) => unavailable(&down.0).into_response(),
        Err(_) => unavailable("the engine has stopped").into_response(),
    }
}

async fn audit(State(gw): State<Gateway>, RawQuery(query): RawQuery) -> Response {
    let correlation = query
        .as_deref()
        .and_then(|q| query_param(q, "correlation"))
        .filter(|c| !c.is_empty());
    let Some(correlation) = correlation else {
        return Problem::invalid(
            "correlation",
            "query parameter `correlation` (an NC, work order, order or record id) is required",
        )
        .into_response();
    };
    let (reply, rx) = oneshot::channel();
    let msg = Msg::Audit {
        correlation: correlation.clone(),
        reply,
    };
    if gw.engine.send(msg).is_err() {
        return unavailable("the engine has stopped").into_response();
    }
    match rx.await {
        Ok(Ok(records)) => {
            axum::Json(json!({ "correlation": correlation, "records": records })).into_response()
        }
        Ok(Err(e)) => unavailable(&e).into_response(),
        Err(_) => unavailable("the engine has stopped").into_response(),
    }
}
