//! One system's axum application: capability routes over its state machine, operator routes, the
//! ledger and event feed for checkers, the OpenAPI document, and problem+json for every error.

use crate::problem::{self, Problem};
use crate::routes::{self, Capability, LookupResult, ROUTES};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
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

/// Events drained from the outbox for the pull feed, numbered 1, 2, … in drain order. Kept as
/// events and rendered as CloudEvents only when read: posting is hot, reading the feed is not.
#[derive(Debug, Default)]
pub(crate) struct EventFeed {
    next_seq: u64,
    events: VecDeque<(u64, Event)>,
}

impl EventFeed {
    pub(crate) fn push(&mut self, event: Event) {
        self.next_seq += 1;
        if self.events.len() == FEED_LEN_MAX {
            self.events.pop_front();
        }
        self.events.push_back((self.next_seq, event));
    }
}

/// What every handler of one system shares: the state machine behind its lock.
pub(crate) struct Shared<M> {
    pub(crate) system: System,
    pub(crate) personality: Personality,
    machine: Mutex<M>,
    /// `None` for a webhook-only (SaaS) system.
    pub(crate) feed: Option<Mutex<EventFeed>>,
    /// `Some` when a webhook dispatcher drains the outbox (it is woken after a state change that
    /// emitted events, and fills the feed as it drains); `None` when the system has no subscribers,
    /// and then every state change moves its events straight into the feed (or, with no feed
    /// either, leaves them in the outbox).
    pub(crate) wake: Option<Arc<Notify>>,
    openapi: Bytes,
}

impl<M: SystemOfRecord> Shared<M> {
    /// `feed`: keep a pull feed; `dispatched`: a webhook dispatcher drains the outbox.
    pub(crate) fn new(machine: M, feed: bool, dispatched: bool) -> Shared<M> {
        let system = machine.system();
        Shared {
            system,
            personality: machine.personality(),
            machine: Mutex::new(machine),
            feed: feed.then(|| Mutex::new(EventFeed::default())),
            wake: dispatched.then(|| Arc::new(Notify::new())),
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

    /// Runs an operator or integration action at the wall clock's now (read before the lock is
    /// taken); see [`Shared::act_locked`].
    pub(crate) fn act<T>(&self, f: impl FnOnce(&mut M, plantloop_core::Instant) -> T) -> T {
        let now = crate::clock::now();
        self.act_locked(|m| f(m, now))
    }

    /// Runs an action on the locked state machine (the lock is held for the state change only),
    /// then hands the events it emitted on: wakes the dispatcher, or moves them into the feed.
    pub(crate) fn act_locked<T>(&self, f: impl FnOnce(&mut M) -> T) -> T {
        let mut machine = self.lock();
        let out = f(&mut machine);
        if machine.pending_events() > 0 {
            match (&self.wake, &self.feed) {
                (Some(wake), _) => wake.notify_one(),
                (None, Some(feed)) => {
                    // Lock order: machine, then feed (the dispatcher and readers never hold both
                    // the other way round).
                    let mut feed = feed.lock().unwrap_or_else(|p| p.into_inner());
                    while let Some(event) = machine.poll_event() {
                        feed.push(event);
                    }
                }
                (None, None) => {}
            }
        }
        out
    }

    /// Takes the next event from the outbox, copying it into the pull feed.
    pub(crate) fn next_event(&self) -> Option<Event> {
        let event = self.lock().poll_event()?;
        if let Some(feed) = &self.feed {
            feed.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event.clone());
        }
        Some(event)
    }
}

/// Renders a state machine's reply: a receipt, a lookup result or problem+json, with `Retry-After`
/// on a 429.
pub(crate) fn render(reply: Reply, reference: Option<&IdempotencyKey>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        ReplyBody::Receipt(r) => receipt_json(status, r),
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

/// `{"receipt":"ERP-0000042"}` ([`PostingReceipt`](crate::routes::PostingReceipt)), written directly: the hottest answer of
/// every mock, and a receipt never needs escaping.
pub(crate) fn receipt_json(status: StatusCode, receipt: plantloop_mocks::Receipt) -> Response {
    let mut body = String::with_capacity(40);
    body.push_str("{\"receipt\":\"");
    receipt.push_to(&mut body);
    body.push_str("\"}");
    json_response(status, Body::from(body))
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    json_response(status, Body::from(bytes))
}

/// A response with `body` as `application/json`, built directly: `(status, [header], body)` would
/// first set the body's own content type and then replace it.
fn json_response(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves one capability route: headers, path and query are read from the request's parts
/// (never cloned), the body is read under the body limit, parsed, applied and rendered.
async fn serve_capability<M: SystemOfRecord>(
    shared: Arc<Shared<M>>,
    capability: Capability,
    has_id: bool,
    request: axum::extract::Request,
) -> Result<Response, Problem> {
    let (mut parts, body) = request.into_parts();
    problem::check_content_type(&parts.headers)?;
    let key = routes::idempotency_key(&parts.headers)?;
    let id = if has_id {
        let Path(id) = Path::<String>::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| Problem::not_found(e.body_text()))?;
        Some(id)
    } else {
        None
    };
    let reference = parts
        .uri
        .query()
        .and_then(|q| routes::query_param(q, "reference"));
    let body = Bytes::from_request(axum::extract::Request::from_parts(parts, body), &())
        .await
        .map_err(problem::body_problem)?;
    let request =
        routes::request_from_http(capability, id.as_deref(), reference.as_deref(), &body)?;
    let now = crate::clock::now();
    let reply = shared.act_locked(|m| m.apply(now, key.as_ref(), &request));
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
        let has_id = spec.path.contains("{id}");
        router = router.route(
            spec.path,
            on(
                method_filter(spec.method),
                move |State(s): State<Arc<Shared<M>>>, request: axum::extract::Request| {
                    serve_capability(s, cap, has_id, request)
                },
            ),
        );
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
    struct Page {
        /// Pass as `after` to get the next page.
        next: u64,
        events: Vec<serde_json::Value>,
    }
    let events: Vec<serde_json::Value> = feed
        .events
        .iter()
        .filter(|(seq, _)| *seq > after)
        .take(FEED_PAGE_MAX)
        .map(|(_, e)| e.to_cloudevent())
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
/// `oauth`: the capability routes need a token it issued, and `/oauth/token` issues them.
pub(crate) fn app<M: SystemOfRecord + Send + 'static>(
    shared: Arc<Shared<M>>,
    operator: Router<Arc<Shared<M>>>,
    faults: Option<crate::fault::FaultLayer>,
    oauth: Option<Arc<crate::oauth::TokenStore>>,
) -> Router {
    let mut capabilities = capability_router::<M>(shared.system);
    if let Some(layer) = faults {
        capabilities = capabilities.route_layer(layer);
    }
    // Outermost: a call without a token is refused before a fault is drawn for it.
    let mut token_route = Router::new();
    if let Some(store) = oauth {
        capabilities = capabilities.route_layer(axum::middleware::from_fn_with_state(
            store.clone(),
            crate::oauth::require_token,
        ));
        token_route = token_route.route(
            crate::oauth::TOKEN_PATH,
            axum::routing::post(crate::oauth::token_route).with_state(store),
        );
    }
    capabilities
        .merge(token_route)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_written_receipt_is_what_serde_would_write() {
        for receipt in [
            plantloop_mocks::Receipt {
                system: System::Erp,
                number: 42,
            },
            plantloop_mocks::Receipt {
                system: System::Cmms,
                number: 12_345_678,
            },
        ] {
            let resp = receipt_json(StatusCode::CREATED, receipt);
            assert_eq!(resp.status(), StatusCode::CREATED);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
            let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
            let expected = serde_json::to_vec(&routes::PostingReceipt {
                receipt: receipt.to_string(),
            })
            .unwrap();
            assert_eq!(body, expected);
        }
    }
}
