//! docker/Dockerfile against the repository, without a container engine:
//! every path it copies exists and is not excluded from the build context,
//! the binary it builds is the crate's, its entrypoint and command parse as
//! the CLI, its variables are ones the binary reads and CONFIGURATION.md
//! lists, its exposed port is the API's, its health check path is served,
//! and its Rust image is the crate's `rust-version`.

use std::path::Path;

use clap::Parser;

use crate::cli::Cli;
use crate::compose::clap_env_names;
use crate::support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The instructions of a Dockerfile: (keyword, arguments), continuation
/// lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

fn of<'a>(all: &'a [(String, String)], keyword: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a.as_str())
        .collect()
}

/// `["a", "b"]` (exec form) as a list.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("write {args} in exec form: {e}"))
}

fn cargo_toml(key: &str) -> String {
    read("Cargo.toml")
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("Cargo.toml has {key}"))
}

#[test]
fn the_rust_image_is_the_crates_rust_version() {
    let file = instructions(&read("docker/Dockerfile"));
    let rust = of(&file, "FROM")
        .into_iter()
        .find_map(|f| f.strip_prefix("rust:"))
        .expect("a FROM rust:... build stage");
    let version = rust.split(['-', ' ']).next().unwrap();
    assert_eq!(version, cargo_toml("rust-version"), "FROM rust:{rust}");
}

#[test]
fn every_copied_path_exists_and_reaches_the_build_context() {
    let file = instructions(&read("docker/Dockerfile"));
    let stages: Vec<String> = of(&file, "FROM")
        .iter()
        .filter_map(|f| f.split_once(" AS ").map(|(_, n)| n.trim().to_string()))
        .collect();
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .collect();
    // Large or private directories stay out of the context `COPY . .` sends,
    // and what the build reads stays in.
    for must in ["target", ".postbox-dev", ".git"] {
        assert!(
            ignored.iter().any(|i| i == must),
            ".dockerignore lists {must}"
        );
    }
    for needed in ["src", "sql", "migrations", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !ignored.iter().any(|i| i == needed),
            ".dockerignore keeps {needed}"
        );
    }
    let copies = of(&file, "COPY");
    assert!(!copies.is_empty());
    for copy in copies {
        let words: Vec<&str> = copy.split_whitespace().collect();
        if let Some(stage) = words[0].strip_prefix("--from=") {
            assert!(
                stages.iter().any(|s| s == stage),
                "COPY from unknown stage {stage}"
            );
            continue;
        }
        let (sources, _dest) = words.split_at(words.len() - 1);
        for src in sources.iter().filter(|w| !w.starts_with("--")) {
            assert!(
                Path::new(ROOT).join(src).exists(),
                "COPY source {src} exists"
            );
            assert!(
                !ignored.iter().any(|i| i == src.trim_matches('/')),
                "COPY source {src} is excluded by .dockerignore"
            );
        }
    }
    assert!(
        Path::new(ROOT).join("Cargo.lock").exists(),
        "--locked needs Cargo.lock"
    );
}

#[test]
fn the_image_runs_the_crates_binary_and_its_command_parses() {
    let file = instructions(&read("docker/Dockerfile"));
    let bin = "postbox";
    assert!(read("Cargo.toml").contains(&format!("[[bin]]\nname = \"{bin}\"")));
    let build = of(&file, "RUN")
        .into_iter()
        .find(|r| r.contains("cargo build"))
        .expect("a cargo build step");
    assert!(build.contains(&format!("--bin {bin}")), "{build}");
    assert!(
        build.contains(&format!("target/release/{bin} /usr/local/bin/{bin}")),
        "{build}"
    );
    assert!(of(&file, "COPY")
        .iter()
        .any(|c| c.ends_with(&format!("/usr/local/bin/{bin} /usr/local/bin/{bin}"))));
    let entrypoint = exec_form(of(&file, "ENTRYPOINT").last().expect("ENTRYPOINT"));
    let cmd = exec_form(of(&file, "CMD").last().expect("CMD"));
    assert_eq!(entrypoint, [bin]);
    let argv = entrypoint.iter().chain(&cmd);
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("the image's command {cmd:?} does not parse: {e}");
    }
    assert_eq!(cmd, ["serve"], "the image serves by default");
}

#[test]
fn the_images_variables_and_port_are_the_binarys() {
    let file = instructions(&read("docker/Dockerfile"));
    let known = clap_env_names();
    let documented = read("docs/CONFIGURATION.md");
    let mut listen = None;
    for env in of(&file, "ENV") {
        let (name, value) = env.split_once('=').expect("ENV NAME=value");
        assert!(
            known.contains(name),
            "the image sets {name}, which postbox does not read"
        );
        assert!(documented.contains(name), "CONFIGURATION.md lists {name}");
        if name == "POSTBOX_LISTEN" {
            listen = Some(value.to_string());
        }
    }
    let listen = listen.expect("the image sets POSTBOX_LISTEN");
    assert!(
        listen.starts_with("0.0.0.0:"),
        "a container listens on all interfaces"
    );
    let port = listen.rsplit(':').next().unwrap();
    assert_eq!(of(&file, "EXPOSE"), [port], "EXPOSE is the API port");
}

#[tokio::test]
async fn the_health_check_path_is_served() {
    let file = instructions(&read("docker/Dockerfile"));
    let check = of(&file, "HEALTHCHECK").pop().expect("a HEALTHCHECK");
    let path = check
        .split(['"', ' '])
        .find_map(|w| w.split_once("}/").map(|(_, p)| format!("/{p}")))
        .expect("the check's URL path");
    let db = TestDb::new().await;
    let routes = postbox::api::routes(api_state(db.store(), "image-test-secret", false));
    let resp = warp::test::request().path(&path).reply(&routes).await;
    assert_eq!(resp.status(), 200, "GET {path}");
}

#[test]
fn the_docs_say_how_to_build_the_image() {
    let command = "docker build -f docker/Dockerfile -t postbox .";
    assert!(read("README.md").contains(command), "README: {command}");
    assert!(
        read("docker/Dockerfile").contains(command),
        "Dockerfile: {command}"
    );
    let compose = read("docker/compose.yml");
    assert!(compose.contains("context: ..") && compose.contains("dockerfile: docker/Dockerfile"));
}
