//! HTTP servers over plantloop's mock ERP, QMS, CMMS and MES (the state machines of
//! `plantloop-mocks`), kept in their own crate so that the simulator builds without tokio.
//!
//! Each system is an axum server over its state machine behind one lock:
//! - **capability routes** ([`routes::ROUTES`], from `plantloop-wire`) for what the integration core asks — post a quality
//!   hold, stop a station, create a work order — never table CRUD. `Idempotency-Key` carries the
//!   core's key. [`routes::http_call_for`] and [`routes::outcome_from_response`] are the client side
//!   of the same table, for the tokio driver; [`routes::call`] does both over reqwest.
//! - **operator routes** ([`operator::OPERATOR_ROUTES`]) for what people and the plant do;
//! - **checker routes**: `GET /ledger`, `GET /events` (pull feed, not for SaaS), `GET /health`,
//!   `GET /openapi.json` ([`openapi::document`], checked in under `mocks-http/openapi/`).
//!
//! Every error is RFC 9457 problem+json with a `field` member ([`problem::Problem`]); bad input never
//! reaches the state machine, so it never changes a ledger. Outbound events go out as signed
//! CloudEvents webhooks ([`webhook`]), at least once. Faults are a tower layer over the capability
//! routes ([`fault`]) that decides with the mocks' own `FaultInjector`. A system can require
//! OAuth 2.0 client-credentials tokens on its capability routes ([`oauth`]).
//!
//! This crate is a driver: it reads the wall clock ([`clock`]) and hands it to the state machines
//! as microseconds since the UNIX epoch.

mod app;
pub mod clock;
pub mod fault;
pub mod oauth;
pub mod openapi;
pub mod operator;
mod server;
pub mod webhook;

pub use app::{FEED_LEN_MAX, FEED_PAGE_MAX};
pub use fault::{FaultConfig, FaultLayer};
pub use oauth::OAuthSettings;
pub use problem::Problem;
pub use routes::{call, http_call_for, outcome_from_response};
pub use server::{
    BASE_PORT_DEFAULT, MocksConfig, RunningMocks, ShutdownHandle, SystemSettings, serve, serve_all,
};
pub use webhook::{Subscriber, WebhookConfig, verify_signature};

/// The capability routes and problem+json live in `plantloop-wire`, shared with the core's tokio
/// driver; they are re-exported here under their old paths.
pub use plantloop_wire::{BODY_BYTES_MAX, problem, routes};
