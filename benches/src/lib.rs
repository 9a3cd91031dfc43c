//! Shared pieces of plantloop's benchmarks and the load harness.

pub mod workload;
