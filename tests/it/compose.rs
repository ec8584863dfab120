//! docker/compose.yml against the binary: every variable it sets for a postbox
//! container is one `postbox` reads, every command it runs parses, and the
//! demo wiring (published port, shared demo secret) holds together.

use std::collections::BTreeSet;

use crate::cli::Cli;
use clap::{CommandFactory, Parser};
use serde_yaml_ng::Value;

/// Every environment variable clap knows, across all subcommands.
pub fn clap_env_names() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&Cli::command(), &mut out);
    out
}

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/compose.yml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("docker/compose.yml"))
        .expect("compose.yml is YAML")
}

fn as_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The services that run the postbox image, with their command line.
fn postbox_services(doc: &Value) -> Vec<(String, &Value, Vec<String>)> {
    let services = doc["services"].as_mapping().expect("services");
    services
        .iter()
        .filter(|(_, s)| s["image"].as_str() == Some("postbox:dev"))
        .map(|(name, s)| {
            let command = match &s["command"] {
                Value::Sequence(items) => items.iter().map(as_str).collect(),
                Value::Null => vec!["serve".to_string()],
                other => panic!("{name:?}: write command as a list, not {other:?}"),
            };
            (as_str(name), s, command)
        })
        .collect()
}

fn env_of(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Mapping(m) => m.iter().map(|(k, v)| (as_str(k), as_str(v))).collect(),
        Value::Null => vec![],
        other => panic!("write environment as a mapping, not {other:?}"),
    }
}

#[test]
fn compose_sets_only_variables_postbox_reads() {
    let known = clap_env_names();
    let doc = compose();
    let services = postbox_services(&doc);
    assert!(
        services.len() >= 2,
        "postbox and receiver run the postbox image"
    );
    for (name, service, _) in &services {
        for (var, _) in env_of(service) {
            let ours = var.starts_with("POSTBOX_")
                || var == "DATABASE_URL"
                || var.starts_with("STRIPE_")
                || var.starts_with("CLERK_");
            assert!(
                !ours || known.contains(&var),
                "service {name} sets {var}, which postbox does not read"
            );
        }
    }
}

#[test]
fn every_compose_command_parses() {
    let doc = compose();
    for (name, _, command) in postbox_services(&doc) {
        let argv = std::iter::once("postbox".to_string()).chain(command.iter().cloned());
        if let Err(e) = Cli::try_parse_from(argv) {
            panic!(
                "service {name}: `postbox {}` does not parse: {e}",
                command.join(" ")
            );
        }
    }
}

#[test]
fn the_demo_stack_is_wired_together() {
    let doc = compose();
    let services = postbox_services(&doc);
    let (_, postbox, command) = services
        .iter()
        .find(|(n, _, _)| n == "postbox")
        .expect("a postbox service");
    assert_eq!(command[0], "serve");
    let env = env_of(postbox);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let listen = get("POSTBOX_LISTEN").expect("POSTBOX_LISTEN");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "a container listens on all interfaces"
    );
    let port = listen.rsplit(':').next().unwrap();
    let ports: Vec<String> = postbox["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(as_str)
        .collect();
    assert!(
        ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
        "the API port {port} is published: {ports:?}"
    );
    let jwt = get("POSTBOX_JWT_SECRET").expect("POSTBOX_JWT_SECRET");
    if let Err(e) = postbox::startup::jwt_secret(Some(&jwt)) {
        panic!("serve would refuse the compose file's secret: {e}");
    }
    assert_eq!(
        get("POSTBOX_ALLOW_PRIVATE_TARGETS").as_deref(),
        Some("true")
    );
    assert!(get("DATABASE_URL").unwrap().contains("@postgres:5432/"));

    // The receiver verifies with the secret the seed gives the demo webhook.
    let (_, _, receive) = services
        .iter()
        .find(|(n, _, _)| n == "receiver")
        .expect("a receiver service");
    let cli =
        Cli::try_parse_from(std::iter::once("postbox".to_string()).chain(receive.clone())).unwrap();
    let crate::cli::Command::Receive(args) = cli.command else {
        panic!("the receiver runs `postbox receive`")
    };
    let secret = args.secret.expect("the receiver checks signatures");
    postbox::signing::SigningKey::from_secret(&secret).expect("a valid whsec_ secret");
    let seed_sql = doc["services"]["seed"]["command"]
        .as_sequence()
        .expect("seed command")
        .iter()
        .map(as_str)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        seed_sql.contains(&secret),
        "seed and receiver share the demo secret"
    );
    assert!(
        seed_sql.contains(&format!("http://receiver:{}/", args.port)),
        "the demo webhook points at the receiver's port"
    );
}
