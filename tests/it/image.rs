//! docker/Dockerfile against the repository, without a container engine:
//! every file the build reads (manifest, lock file, `src/`, and what `src/`
//! includes or embeds) is copied into the build stage's WORKDIR and not
//! excluded by `.dockerignore` (read as Docker's globs), the profile built is
//! the one installed, the binary it builds is the crate's, its entrypoint and command parse as
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

/// A `FROM` line: its image and stage name, flags (`--platform=...`) skipped.
fn from_line(args: &str) -> (String, Option<String>) {
    let words: Vec<&str> = args
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    let stage = match words.as_slice() {
        [_, kw, name, ..] if kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
        _ => None,
    };
    (
        words.first().copied().unwrap_or_default().to_string(),
        stage,
    )
}

#[test]
fn from_lines_parse_with_flags_and_either_case() {
    assert_eq!(
        from_line("--platform=$BUILDPLATFORM rust:1.92-bookworm as build"),
        ("rust:1.92-bookworm".to_string(), Some("build".to_string()))
    );
    assert_eq!(
        from_line("debian:bookworm-slim"),
        ("debian:bookworm-slim".to_string(), None)
    );
}

#[test]
fn the_rust_image_is_the_crates_rust_version() {
    let file = instructions(&read("docker/Dockerfile"));
    let images: Vec<String> = of(&file, "FROM").iter().map(|f| from_line(f).0).collect();
    let rust = images
        .iter()
        .find_map(|f| f.strip_prefix("rust:"))
        .expect("a FROM rust:... build stage");
    let version = rust.split(['-', ' ']).next().unwrap();
    assert_eq!(version, cargo_toml("rust-version"), "FROM rust:{rust}");
}

/// `.dockerignore` as Docker reads it: glob patterns (`*` stops at `/`,
/// `**` does not), `!` re-includes, the last matching line wins, and a
/// pattern that matches a directory excludes everything under it.
struct DockerIgnore(Vec<(globset::GlobMatcher, bool)>);

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        DockerIgnore(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (pattern, include) = match l.strip_prefix('!') {
                        Some(p) => (p, true),
                        None => (l, false),
                    };
                    let pattern = pattern.trim_start_matches("./").trim_matches('/');
                    let glob = globset::GlobBuilder::new(pattern)
                        .literal_separator(true)
                        .build()
                        .unwrap_or_else(|e| panic!(".dockerignore: {l}: {e}"));
                    (glob.compile_matcher(), include)
                })
                .collect(),
        )
    }

    /// True when `path` (relative to the context) stays out of it.
    fn excludes(&self, path: &str) -> bool {
        let ancestors: Vec<&Path> = Path::new(path)
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        let mut excluded = false;
        for (glob, include) in &self.0 {
            if ancestors.iter().any(|a| glob.is_match(a)) {
                excluded = !include;
            }
        }
        excluded
    }
}

/// Every file under `rel` (a file or a directory of the repository).
fn files_under(rel: &str) -> Vec<String> {
    let path = Path::new(ROOT).join(rel);
    if path.is_file() {
        return vec![rel.to_string()];
    }
    let mut out = vec![];
    for entry in std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        out.extend(files_under(&format!("{rel}/{name}")));
    }
    out
}

/// What the build reads: the manifest, the lock file, `src/`, and every
/// path `src/` names in include_str!, include_bytes! or embed_migrations!
/// (relative to the including file, or to CARGO_MANIFEST_DIR).
fn build_inputs() -> Vec<String> {
    let mut inputs = vec!["Cargo.toml".to_string(), "Cargo.lock".into(), "src".into()];
    for file in files_under("src").iter().filter(|f| f.ends_with(".rs")) {
        let text = read(file);
        for mac in ["include_str!(", "include_bytes!(", "embed_migrations!("] {
            for (at, _) in text.match_indices(mac) {
                let call = &text[at..];
                let call = &call[..call.find(";").unwrap_or(call.len())];
                let literal = call
                    .split('"')
                    .skip(1)
                    .step_by(2)
                    .find(|l| *l != "CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|| panic!("{file}: a path in {call}"));
                let relative_to_file =
                    mac != "embed_migrations!(" && !call.contains("CARGO_MANIFEST_DIR");
                let mut path = match relative_to_file {
                    true => Path::new(file).parent().unwrap().join(literal),
                    false => Path::new(literal.trim_start_matches('/')).to_path_buf(),
                };
                // Normalise `src/../sql/x.sql`; a partial path (`/sql/` + name) means its directory.
                let mut parts: Vec<String> = vec![];
                for c in path.components() {
                    match c {
                        std::path::Component::ParentDir => drop(parts.pop()),
                        std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into()),
                        _ => {}
                    }
                }
                path = parts.iter().collect();
                while !Path::new(ROOT).join(&path).exists() {
                    assert!(
                        path.pop(),
                        "{file}: {literal} names nothing in the repository"
                    );
                }
                inputs.push(path.to_string_lossy().into_owned());
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

/// Where `COPY sources... dest` puts the repository file `file`, if it copies it.
fn lands_at(workdir: &str, sources: &[&str], dest: &str, file: &str) -> Option<String> {
    let dest = match dest.starts_with('/') {
        true => dest.to_string(),
        false => format!("{}/{}", workdir.trim_end_matches('/'), dest),
    };
    let dest = dest
        .trim_end_matches('/')
        .trim_end_matches("/.")
        .to_string();
    for src in sources {
        let src = src.trim_start_matches("./").trim_end_matches('/');
        if src == "." || src.is_empty() {
            return Some(format!("{dest}/{file}"));
        }
        if let Some(rel) = file.strip_prefix(&format!("{src}/")) {
            return Some(format!("{dest}/{rel}"));
        }
        if file == src {
            let name = Path::new(file).file_name().unwrap().to_string_lossy();
            return Some(format!("{dest}/{name}"));
        }
    }
    None
}

#[test]
fn every_file_the_build_reads_is_copied_into_the_workdir_and_not_ignored() {
    let file = instructions(&read("docker/Dockerfile"));
    let ignore = DockerIgnore::parse(&read(".dockerignore"));
    // Large or private directories stay out of the context.
    for must in ["target/debug/postbox", ".postbox-dev/data", ".git/HEAD"] {
        assert!(ignore.excludes(must), ".dockerignore excludes {must}");
    }
    // The build stage: from its FROM to the cargo build.
    let build_at = file
        .iter()
        .position(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .expect("a cargo build step");
    let stage_at = file[..build_at]
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("a FROM before cargo build");
    let stages: Vec<String> = of(&file, "FROM")
        .iter()
        .filter_map(|f| from_line(f).1)
        .collect();
    let mut workdir = "/".to_string();
    let mut copies = vec![];
    for (keyword, args) in &file[stage_at..build_at] {
        let words: Vec<&str> = args.split_whitespace().collect();
        match keyword.as_str() {
            "WORKDIR" => workdir = args.trim().to_string(),
            "COPY" | "ADD" => {
                if let Some(stage) = words[0].strip_prefix("--from=") {
                    assert!(
                        stages.iter().any(|s| s == stage),
                        "COPY from unknown stage {stage}"
                    );
                    continue;
                }
                let words: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
                let (sources, dest) = words.split_at(words.len() - 1);
                for src in sources {
                    assert!(
                        Path::new(ROOT).join(src).exists(),
                        "COPY source {src} exists"
                    );
                }
                copies.push((workdir.clone(), sources.to_vec(), dest[0]));
            }
            _ => {}
        }
    }
    for input in build_inputs() {
        for f in files_under(&input) {
            let want = format!("{}/{f}", workdir.trim_end_matches('/'));
            let landed = copies.iter().any(|(wd, srcs, dest)| {
                lands_at(wd, srcs, dest, &f).as_deref() == Some(want.as_str())
            });
            assert!(landed, "the build reads {f}, but no COPY puts it at {want}");
            assert!(
                !ignore.excludes(&f),
                "the build reads {f}, but .dockerignore excludes it"
            );
        }
    }
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
    // The profile built is the directory installed from.
    let words: Vec<&str> = build.split_whitespace().collect();
    let profile = if words.contains(&"--release") {
        "release"
    } else {
        match words.iter().position(|w| *w == "--profile") {
            Some(i) if words[i + 1] != "dev" => words[i + 1],
            _ => "debug",
        }
    };
    assert!(
        build.contains(&format!("target/{profile}/{bin} /usr/local/bin/{bin}")),
        "the build makes target/{profile}/{bin}; install that: {build}"
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
