//! Integration tests: a real Postgres (one database per test) and real HTTP
//! over loopback.

#[allow(dead_code)]
mod support;

mod api;
mod api_hostile;
#[allow(dead_code)]
mod api_support;
mod claim;
mod compose;
mod docs;
mod hardening;
mod inbound;
mod maintenance;
mod ops_docs;
mod pipeline;
mod publish;
mod readme;
mod receive;
mod retention_bench;
