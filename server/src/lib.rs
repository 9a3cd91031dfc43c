//! The parts of plantloop's integration core that touch the outside world. Today that is the
//! durable SQLite journal ([`journal::SqliteJournal`]); the tokio driver with its HTTP gateway and
//! the edge agent are to come here too.
//!
//! The integration engine in `plantloop-core` is sans-IO; this crate supplies the wall clock, the
//! sockets and the files, and is the only place where inputs become durable on disk.

pub mod journal;
