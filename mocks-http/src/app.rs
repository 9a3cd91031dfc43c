//! One system's axum application: capability routes over its state machine, operator routes, the
//! ledger and event feed for checkers, the OpenAPI document, and problem+json for every error.

use crate::problem::{Problem, read_body};
use crate::routes::{self, Capability, LookupResult, PostingReceipt, ROUTES};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use plantloop_core::System;
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::event::Event;
use plantloop_mocks::{Personality, Reply, ReplyBody, SystemOfRecord};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The most events the pull feed keeps; older ones fall off (a reader behind gets 410).
pub const FEED_LEN_MAX: usize = 10_000;
/// The most events one `GET /events` returns.
pub const FEED_PAGE_MAX: usize = 500;

/// Events drained from the outbox for the pull feed, numbered 1, 2, … in drain order.
#[derive(Debug, Default)]
pub(crate) struct EventFeed {
    next_seq: u64,
    events: VecDeque<(u64, serde_json::Value)>,
}

impl EventFeed {
    pub(crate) fn push(&mut self, event: &Event) {
        self.next_seq += 1;
        if self.events.len() == FEED_LEN_MAX {
            self.events.pop_front();
        }
        self.events
            .push_back((self.next_seq, event.to_cloudevent()));
    }
}

/// What every handler of one system shares: the state machine behind its lock.
pub(crate) struct Shared<M> {
    pub(crate) system: System,
    pub(crate) personality: Personality,
    machine: Mutex<M>,
    /// `None` for a webhook-only (SaaS) system.
    pub(crate) feed: Option<Mutex<EventFeed>>,
    /// Woken after every state change, so the dispatcher drains the outbox.
    pub(crate) wake: Arc<Notify>,
    openapi: Bytes,
}

impl<M: SystemOfRecord> Shared<M> {
    pub(crate) fn new(machine: M, feed: bool) -> Shared<M> {
        let system = machine.system();
        Shared {
            system,
            personality: machine.personality(),
            machine: Mutex::new(machine),
            feed: feed.then(|| Mutex::new(EventFeed::default())),
            wake: Arc::new(Notify::new()),
            openapi: Bytes::from(
                serde_json::to_vec_pretty(&crate::openapi::document(system))
                    .expect("documents serialize"),
            ),
        }
    }

    /// The state machine, locked. Never held across an await.
    pub(crate) fn lock(&self) -> MutexGuard<'_, M> {
        self.machine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs an operator or integration action at the wall clock's now and wakes the dispatcher.
    pub(crate) fn act<T>(&self, f: impl FnOnce(&mut M, plantloop_core::Instant) -> T) -> T {
        let out = f(&mut self.lock(), crate::clock::now());
        self.wake.notify_one();
        out
    }

    /// Takes the next event from the outbox, copying it into the pull feed.
    pub(crate) fn next_event(&self) -> Option<Event> {
        let event = self.lock().poll_event()?;
        if let Some(feed) = &self.feed {
            feed.lock().unwrap_or_else(|p| p.into_inner()).push(&event);
        }
        Some(event)
    }
}

/// Renders a state machine's reply: a receipt, a lookup result or problem+json, with `Retry-After`
/// on a 429.
pub(crate) fn render(reply: Reply, reference: Option<&IdempotencyKey>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        ReplyBody::Receipt(r) => json(
            status,
            &PostingReceipt {
                receipt: r.to_string(),
            },
        ),
        ReplyBody::Lookup(r) => json(
            status,
            &LookupResult {
                reference: reference.map(|k| k.as_str().to_owned()).unwrap_or_default(),
                receipt: r.map(|r| r.to_string()),
            },
        ),
        ReplyBody::Problem(p) => {
            let problem = Problem {
                type_uri: p.kind.type_uri().to_owned(),
                title: p.kind.title().to_owned(),
                status: reply.status,
                detail: p.detail,
                field: p.field.map(|f| f.into_owned()),
            };
            let mut r = problem.into_response();
            *r.status_mut() = status;
            r
        }
    };
    if let Some(wait) = reply.retry_after {
        let secs = wait.as_micros().div_ceil(1_000_000).max(1);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

async fn serve_capability<M: SystemOfRecord>(
    shared: Arc<Shared<M>>,
    capability: Capability,
    id: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let key = routes::idempotency_key(headers)?;
    let reference = query.and_then(|q| routes::query_param(q, "reference"));
    let request = routes::request_from_http(capability, id, reference.as_deref(), body)?;
    let reply = shared.act(|m, now| m.apply(now, key.as_ref(), &request));
    let reference = match &request {
        Request::LookupPosting { key } => Some(key),
        _ => None,
    };
    Ok(render(reply, reference))
}

fn method_filter(method: &str) -> MethodFilter {
    let m = Method::from_bytes(method.as_bytes()).expect("route methods are valid");
    MethodFilter::try_from(m).expect("route methods are standard")
}

/// The capability routes `system` serves.
fn capability_router<M: SystemOfRecord + Send + 'static>(system: System) -> Router<Arc<Shared<M>>> {
    let mut router = Router::new();
    for spec in ROUTES.iter().filter(|r| r.systems.contains(&system)) {
        let cap = spec.capability;
        let filter = method_filter(spec.method);
        router = if spec.path.contains("{id}") {
            router.route(
                spec.path,
                on(
                    filter,
                    move |State(s): State<Arc<Shared<M>>>,
                          path: Result<Path<String>, axum::extract::rejection::PathRejection>,
                          headers: HeaderMap,
                          body: Result<Bytes, axum::extract::rejection::BytesRejection>| async move {
                        let id = path.map_err(|e| Problem::not_found(e.body_text()))?.0;
                        let body = read_body(&headers, body)?;
                        serve_capability(s, cap, Some(&id), None, &headers, &body).await
                    },
                ),
            )
        } else {
            router.route(
                spec.path,
                on(
                    filter,
                    move |State(s): State<Arc<Shared<M>>>,
                          RawQuery(query): RawQuery,
                          headers: HeaderMap,
                          body: Result<Bytes, axum::extract::rejection::BytesRejection>| async move {
                        let body = read_body(&headers, body)?;
                        serve_capability(s, cap, None, query.as_deref(), &headers, &body).await
                    },
                ),
            )
        };
    }
    router
}

/// `GET /ledger[?after=SEQ]`: the ledger entries after `SEQ` (all by default), for checkers.
async fn ledger<M: SystemOfRecord>(
    State(s): State<Arc<Shared<M>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let after = match query
        .as_deref()
        .and_then(|q| routes::query_param(q, "after"))
    {
        None => 0,
        Some(a) => match a.parse::<u64>() {
            Ok(a) => a,
            Err(_) => {
                return Problem::invalid(
                    "after",
                    "query parameter `after` must be a ledger sequence number",
                )
                .into_response();
            }
        },
    };
    #[derive(Serialize)]
    struct LedgerPage<'a> {
        system: System,
        personality: Personality,
        entries: &'a [plantloop_mocks::LedgerEntry],
    }
    let machine = s.lock();
    let entries = machine.ledger().entries();
    let start = usize::try_from(after)
        .unwrap_or(usize::MAX)
        .min(entries.len());
    json(
        StatusCode::OK,
        &LedgerPage {
            system: s.system,
            personality: s.personality,
            entries: &entries[start..],
        },
    )
}

/// `GET /events[?after=SEQ]`: the pull feed (not offered by webhook-only systems).
async fn events<M: SystemOfRecord>(
    State(s): State<Arc<Shared<M>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(feed) = &s.feed else {
        return Problem::not_found(format!("{} sends events by webhook only", s.system))
            .into_response();
    };
    let after = match query
        .as_deref()
        .and_then(|q| routes::query_param(q, "after"))
        .map(|a| a.parse::<u64>())
    {
        None => 0,
        Some(Ok(a)) => a,
        Some(Err(_)) => {
            return Problem::invalid(
                "after",
                "query parameter `after` must be an event sequence number",
            )
            .into_response();
        }
    };
    // The dispatcher fills the feed as it drains the outbox, right after every state change.
    let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((oldest, _)) = feed.events.front()
        && after + 1 < *oldest
    {
        return Problem::new(
            StatusCode::GONE,
            "feed-truncated",
            "Events no longer kept",
            format!("events after {after} are gone; the oldest kept is {oldest}"),
        )
        .into_response();
    }
    #[derive(Serialize)]
    struct Page<'a> {
        /// Pass as `after` to get the next page.
        next: u64,
        events: Vec<&'a serde_json::Value>,
    }
    let events: Vec<&serde_json::Value> = feed
        .events
        .iter()
        .filter(|(seq, _)| *seq > after)
        .take(FEED_PAGE_MAX)
        .map(|(_, e)| e)
        .collect();
    let next = after + events.len() as u64;
    json(StatusCode::OK, &Page { next, events })
}

async fn health<M: SystemOfRecord>(State(s): State<Arc<Shared<M>>>) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "system": s.system, "personality": s.personality, "status": "up" }),
    )
}

async fn openapi<M: SystemOfRecord>(State(s): State<Arc<Shared<M>>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        s.openapi.clone(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Problem {
    Problem::not_found(format!("no route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::method_not_allowed(method.as_str(), uri.path())
}

/// The whole application of one system. `operator` holds the system's operator routes; `faults`
/// wraps the capability routes only (checkers and operators never see injected faults).
pub(crate) fn app<M: SystemOfRecord + Send + 'static>(
    shared: Arc<Shared<M>>,
    operator: Router<Arc<Shared<M>>>,
    faults: Option<crate::fault::FaultLayer>,
) -> Router {
    let mut capabilities = capability_router::<M>(shared.system);
    if let Some(layer) = faults {
        capabilities = capabilities.route_layer(layer);
    }
    capabilities
        .merge(operator)
        .route("/ledger", get(ledger::<M>))
        .route("/events", get(events::<M>))
        .route("/health", get(health::<M>))
        .route("/openapi.json", get(openapi::<M>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(crate::BODY_BYTES_MAX))
        .with_state(shared)
}
