//! The parts of plantloop's integration core that touch the outside world: the tokio driver of
//! the sans-IO engine in `plantloop-core` (quinn's split), behind an HTTP gateway, with the durable
//! SQLite journal. `plantloop serve` is [`service::start`] with a [`config::ServeConfig`].
//!
//! - [`journal`] — the SQLite journal (WAL, group commit, checksums, snapshots);
//! - [`driver`] — the engine's own thread: journal, sync once per turn, then answer and call out;
//! - [`outbound`] — each call attempt over HTTP on its own task (`plantloop-wire`'s route table);
//!   [`oauth`] — the client-credentials tokens of targets that require them;
//! - [`ingress`] — CloudEvents in structured, batched and binary mode;
//! - [`http`] — the gateway's routes (`/events`, `/webhooks/{system}`, `/health`, `/ready`,
//!   `/dead-letters`, `/audit`, `/metrics`);
//! - [`webhooks`] — signed webhooks in: signature, staleness and the replay guard;
//! - [`polling`] — reading a system's event feed on an interval, with a durable cursor;
//! - [`metrics`] — `GET /metrics` in the Prometheus text format;
//! - [`audit_store`] — the audit chain, stored for queries by correlation;
//! - [`auth`] — bearer JWTs with scopes, default deny; [`tls`] — TLS and mutual TLS;
//! - [`config`] — the strict TOML configuration; [`clock`] — wall time as the engine's `Instant`;
//! - [`service`] — the data folder, recovery, start and stop.
//!
//! The engine is sans-IO; this crate supplies the wall clock, the sockets and the files, and is
//! the only place where inputs become durable on disk.

pub mod audit_store;
pub mod auth;
pub mod clock;
pub mod config;
pub mod driver;
pub mod http;
pub mod ingress;
pub mod journal;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod polling;
pub mod service;
pub mod tls;
pub mod webhooks;

pub use config::ServeConfig;
pub use service::{Service, StopHandle, start, start_on};
