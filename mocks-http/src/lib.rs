//! HTTP servers over plantloop's mock systems of record.

pub mod clock;
pub mod problem;
pub mod routes;
pub mod webhook;

/// The largest request body a mock accepts; larger ones get 413.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
