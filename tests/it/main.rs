//! Integration tests: a real Postgres (one database per test) and real HTTP
//! over loopback.

#[allow(dead_code)]
mod support;

mod maintenance;
mod ops_docs;
mod pipeline;
mod publish;
mod retention_bench;
