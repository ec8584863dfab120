//! Statements for webhooks, deliveries and queue administration for the API.

#[allow(unused_imports)]
use super::{db, Store, StoreError};

impl Store {}
