//! Statements for the inbox of incoming webhooks (Stripe, Clerk).

#[allow(unused_imports)]
use super::{db, Store, StoreError};

impl Store {}
