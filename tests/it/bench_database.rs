//! The benchmark's throwaway database: its name reaches Postgres as a quoted
//! identifier, never as SQL text.

use postbox::store::bench::{bench_database_create, bench_database_drop};

use crate::support::*;

async fn exists(c: &tokio_postgres::Client, name: &str) -> bool {
    c.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
        &[&name],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn bench_database_names_are_quoted_identifiers() {
    let db = TestDb::new().await;
    let c = db.client().await;
    // Quotes, a semicolon, a comment and upper case: each would change the
    // statement if the name were pasted into it.
    let unique = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let name = format!(r#"Bench "{unique}"; -- x"#);
    bench_database_create(&db.url, &name).await.unwrap();
    assert!(exists(&c, &name).await, "created under its exact name");
    bench_database_drop(&db.url, &name).await.unwrap();
    assert!(!exists(&c, &name).await, "dropped");
    // Dropping again is not an error (IF EXISTS); a name Postgres would
    // truncate is refused before anything runs.
    bench_database_drop(&db.url, &name).await.unwrap();
    let long = "x".repeat(64);
    assert!(bench_database_create(&db.url, &long).await.is_err());
    assert!(!exists(&c, &long[..63]).await);
}
