//! Integration tests: a real Postgres (one database per test) and real HTTP
//! over loopback.

#[allow(dead_code)]
mod support;

/// The binary's command line (clap), compiled into the tests as well: the
/// documentation tests walk its flags, and some tests start `serve` through it.
#[allow(dead_code)]
#[path = "../../src/cli/args.rs"]
mod cli;

mod api;
mod api_hostile;
mod api_openapi;
#[allow(dead_code)]
mod api_support;
mod batches;
mod bench_database;
mod claim;
mod compose;
mod contract;
mod contract_fuzz;
mod dev;
mod docs;
mod endpoint_cap;
mod fanout;
mod faults;
mod filters;
mod hardening;
mod image;
mod inbound;
mod maintenance;
mod ops_docs;
mod ordering;
mod ordering_surface;
mod pipeline;
mod plans;
mod portal;
mod portal_browser;
mod portal_scale;
#[allow(dead_code)]
mod portal_support;
mod publish;
mod readme;
mod receive;
mod retention_bench;
mod scale;
mod startup;
mod templates;
mod tls;
mod trouble;
mod trouble_recovery;
mod two_phase;
mod verify12;
