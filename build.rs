//! Rebuilds the crate when a migration changes: `refinery::embed_migrations!`
//! reads `migrations/` at compile time but does not tell cargo, so without
//! this an edited or added migration leaves a binary with the old set.
//! (`sql/` needs nothing: `include_str!` is tracked.)

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
