//! Statements for maintenance jobs: retention, auto-disable, queue gauges.

#[allow(unused_imports)]
use super::{db, Store, StoreError};

impl Store {}
