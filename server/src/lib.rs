//! plantloop's tokio driver and everything around it that touches the outside world: the durable
//! SQLite journal ([`journal::SqliteJournal`]), the HTTP gateway and the edge agent.
//!
//! The integration engine in `plantloop-core` is sans-IO; this crate supplies the wall clock, the
//! sockets and the files, and is the only place where inputs become durable on disk.

pub mod journal;
