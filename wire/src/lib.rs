//! The HTTP contract between the integration core and the systems of record, in one place that
//! both sides depend on: the mock servers (`plantloop-mocks-http`) serve it and the core's tokio
//! driver (`plantloop-server`) calls it, so the two cannot drift apart, and neither the core nor
//! the driver depends on the mocks' state machines.
//!
//! - [`routes`]: one table of capability routes ([`routes::ROUTES`]), the request ⇄ HTTP mapping
//!   of both sides ([`routes::http_call_for`], [`routes::request_from_http`]) and the answer →
//!   [`Outcome`](plantloop_core::call::Outcome) mapping ([`routes::outcome_from_response`]).
//! - [`problem`]: RFC 9457 problem+json bodies with a `field` member, and the JSON body parser
//!   that names the field at fault.
//! - [`signature`]: the HMAC-SHA256 signature of webhook deliveries, made by the mocks and
//!   checked by the core.
//! - [`source`]: which system an event's CloudEvents `source` names.

pub mod problem;
pub mod routes;
pub mod signature;
pub mod source;

pub use problem::Problem;

/// The largest request body a capability route accepts; larger ones get 413.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
