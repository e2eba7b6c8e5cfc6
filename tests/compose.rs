//! docker-compose.yml and docs/docker.md, checked without a Docker engine: the compose
//! file parses, every rexi-node command line in it (and in the docs) is accepted by the
//! CLI parser, and the Erlang command lines use modules and apps erlang-interop has.

// The binary's CLI, compiled into this test so that `Cli::try_parse_from` judges the
// command lines exactly as `rexi-node` would.
#[allow(dead_code, unused_imports)]
#[path = "../src/cli/mod.rs"]
mod cli;

use clap::Parser;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compose's variable interpolation: `${X:-default}` takes the default, `${X:?msg}` (a
/// required variable) a stand-in value, `${X}` the empty string. The test environment's
/// own variables are ignored on purpose, so the result does not depend on the machine.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &rest[i + 2..i + j];
        if let Some((_, default)) = inner.split_once(":-") {
            out.push_str(default);
        } else if inner.contains(":?") {
            out.push_str("required-value");
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(interpolate(s)),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Value::String(s) => interpolate(s)
            .split_whitespace()
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Every command line of a service: `command`, and `healthcheck.test` without its `CMD`.
fn command_lines(service: &Value) -> Vec<Vec<String>> {
    let mut v = Vec::new();
    if let Some(c) = service.get("command") {
        v.push(strings(c));
    }
    if let Some(t) = service.get("healthcheck").and_then(|h| h.get("test")) {
        let mut argv = strings(t);
        if argv.first().is_some_and(|x| x == "CMD" || x == "CMD-SHELL") {
            argv.remove(0);
        }
        v.push(argv);
    }
    v
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml"))
        .expect("docker-compose.yml at the repository root");
    let mut v: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is valid YAML");
    v.apply_merge().expect("YAML merge keys resolve");
    v
}

fn services(v: &Value) -> Vec<(String, Value)> {
    match v.get("services") {
        Some(Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, s)| k.as_str().map(|k| (k.to_string(), s.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

fn assert_parses(argv: &[String], whence: &str) {
    if let Err(e) = cli::Cli::try_parse_from(argv) {
        panic!(
            "{whence}: `{}` is rejected by the CLI:\n{e}",
            argv.join(" ")
        );
    }
}

#[test]
fn compose_has_three_beam_nodes_and_one_rexi_node_on_one_network() {
    let v = compose();
    let svcs = services(&v);
    let mut beams = 0;
    let mut rexi_nodes = 0;
    let mut cookies = std::collections::BTreeSet::new();
    for (name, s) in &svcs {
        let argv = s.get("command").map(strings).unwrap_or_default();
        match argv.first().map(String::as_str) {
            Some("erl") => {
                beams += 1;
                let name_at = argv.iter().position(|a| a == "-name");
                let node = name_at
                    .and_then(|i| argv.get(i + 1))
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    node.split_once('@').is_some_and(|(_, h)| h.contains('.')),
                    "{name}: a long name is expected, got {node:?}"
                );
                let cookie_at = argv.iter().position(|a| a == "-setcookie");
                let raw = s.get("command").and_then(|c| match c {
                    Value::Sequence(x) => cookie_at
                        .and_then(|i| x.get(i + 1))
                        .and_then(|c| c.as_str())
                        .map(String::from),
                    _ => None,
                });
                cookies.insert(raw.unwrap_or_default());
                let rel_at = argv
                    .windows(2)
                    .position(|w| w[0] == "-rexi" && w[1] == "release");
                let rel = rel_at
                    .and_then(|i| argv.get(i + 2))
                    .and_then(|r| r.parse::<u8>().ok());
                assert!(
                    rel.is_some_and(|r| r <= 3),
                    "{name}: -rexi release 0..3 expected: {argv:?}"
                );
            }
            Some("rexi-node") => {
                rexi_nodes += 1;
                let env = s
                    .get("environment")
                    .and_then(|e| e.get("REXI_NODE_COOKIE"))
                    .and_then(|c| c.as_str());
                cookies.insert(env.unwrap_or_default().to_string());
                assert!(
                    !argv.iter().any(|a| a == "--cookie"),
                    "{name}: the cookie must not be on the command line"
                );
            }
            other => panic!("{name}: unexpected command {other:?}"),
        }
        let nets = s.get("networks").cloned().unwrap_or(Value::Null);
        let on_rexi = match &nets {
            Value::Sequence(x) => x.iter().any(|n| n.as_str() == Some("rexi")),
            Value::Mapping(m) => m.contains_key(Value::String("rexi".into())),
            _ => false,
        };
        assert!(on_rexi, "{name} is not on the rexi network");
    }
    assert_eq!(
        (beams, rexi_nodes),
        (3, 1),
        "three BEAM nodes and one rexi-node"
    );
    assert_eq!(cookies.len(), 1, "one cookie for all: {cookies:?}");
    let cookie = cookies.iter().next().cloned().unwrap_or_default();
    assert!(
        cookie.starts_with("${REXI_COOKIE"),
        "the cookie comes from the environment: {cookie}"
    );

    // The build targets exist in the Dockerfile.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    for (name, s) in &svcs {
        if let Some(t) = s
            .get("build")
            .and_then(|b| b.get("target"))
            .and_then(|t| t.as_str())
        {
            assert!(
                dockerfile.contains(&format!(" AS {t}\n")),
                "{name}: no stage {t} in Dockerfile"
            );
        }
    }
}

#[test]
fn every_rexi_node_command_line_is_accepted_by_the_cli() {
    let v = compose();
    let mut checked = 0;
    for (name, s) in services(&v) {
        for argv in command_lines(&s) {
            if argv.first().is_some_and(|a| a == "rexi-node") {
                assert_parses(&argv, &format!("docker-compose.yml service {name}"));
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 5,
        "expected the rexi-node service and the healthchecks, got {checked}"
    );

    // And the commands the migration guide tells an operator to type.
    let docs = std::fs::read_to_string(root().join("docs/docker.md")).expect("docs/docker.md");
    let mut from_docs = 0;
    for line in docs.lines() {
        let code = line.trim_start();
        if !line.starts_with("    ") || !code.starts_with("docker compose exec ") {
            continue;
        }
        let words: Vec<String> = code.split_whitespace().map(String::from).collect();
        // docker compose exec SERVICE rexi-node ...
        let argv = &words[4..];
        if argv.first().is_some_and(|a| a == "rexi-node") {
            assert_parses(argv, "docs/docker.md");
            from_docs += 1;
        }
    }
    assert!(
        from_docs >= 5,
        "docs/docker.md: only {from_docs} tool command lines found"
    );
}

/// `Module:Function(` calls and `-s`/`-run` modules in an Erlang command line, and the
/// applications it starts.
fn erlang_references(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let mut modules = Vec::new();
    let mut apps = Vec::new();
    for (i, a) in argv.iter().enumerate() {
        if (a == "-s" || a == "-run") && i + 1 < argv.len() {
            modules.push(argv[i + 1].clone());
        }
        if i > 0 && argv[i - 1] == "-eval" {
            let b = a.as_bytes();
            let mut k = 0;
            while k < b.len() {
                if b[k].is_ascii_lowercase()
                    && (k == 0
                        || !(b[k - 1].is_ascii_alphanumeric()
                            || b[k - 1] == b'_'
                            || b[k - 1] == b'\''))
                {
                    let start = k;
                    while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_') {
                        k += 1;
                    }
                    if b.get(k) == Some(&b':')
                        && b.get(k + 1).is_some_and(|c| c.is_ascii_lowercase())
                    {
                        modules.push(a[start..k].to_string());
                    }
                } else {
                    k += 1;
                }
            }
            for call in ["application:ensure_all_started(", "application:start("] {
                for (pos, _) in a.match_indices(call) {
                    let rest = &a[pos + call.len()..];
                    let app: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    apps.push(app);
                }
            }
        }
    }
    (modules, apps)
}

#[test]
fn erlang_command_lines_use_what_erlang_interop_has() {
    /// OTP modules a command line may call besides the project's own.
    const OTP: &[&str] = &[
        "application",
        "erlang",
        "init",
        "io",
        "lists",
        "net_adm",
        "net_kernel",
        "timer",
    ];
    let v = compose();
    let interop = root().join("erlang-interop");
    let mut lines = 0;
    for (name, s) in services(&v) {
        for argv in command_lines(&s) {
            if argv.first().map(String::as_str) != Some("erl") {
                continue;
            }
            lines += 1;
            assert!(
                argv.windows(2)
                    .any(|w| w[0] == "-pa" && w[1].ends_with("erlang-interop/ebin")),
                "{name}: erlang-interop's ebin must be on the code path: {argv:?}"
            );
            let (modules, apps) = erlang_references(&argv);
            assert!(
                apps.iter().any(|a| a == "rexi"),
                "{name}: the rexi app must be started: {argv:?}"
            );
            assert!(
                interop.join("src").is_dir(),
                "erlang-interop/src is missing: {name}'s modules {modules:?} cannot be checked"
            );
            for m in modules.iter().filter(|m| !OTP.contains(&m.as_str())) {
                let f = interop.join("src").join(format!("{m}.erl"));
                assert!(
                    Path::new(&f).exists(),
                    "{name}: module {m} is not in erlang-interop/src"
                );
            }
            for app in &apps {
                let f = interop.join("src").join(format!("{app}.app.src"));
                assert!(
                    f.exists(),
                    "{name}: application {app} has no erlang-interop/src/{app}.app.src"
                );
            }
        }
    }
    assert_eq!(lines, 3, "three erl command lines");
}

/// The checks above read docker-compose.yml through `interpolate`, which knows two of
/// Compose's forms. This holds them to the real file: every `$` in it starts one of those
/// two forms (`${NAME:-default}`, `${NAME:?message}`), so nothing in the file is read
/// differently here than by `docker compose`, and no `$` is left after interpolation.
#[test]
fn every_variable_in_the_compose_file_is_a_form_the_checks_interpolate() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml"))
        .expect("docker-compose.yml at the repository root");
    let mut forms = 0;
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            let var = &rest[i..];
            let end = var.find('}').unwrap_or_else(|| {
                panic!("docker-compose.yml:{}: unclosed variable: {line}", n + 1)
            });
            let inner = var[..end]
                .strip_prefix("${")
                .unwrap_or_else(|| panic!("docker-compose.yml:{}: bare `$` form: {line}", n + 1));
            let (name, form) = inner
                .split_once(":-")
                .or_else(|| inner.split_once(":?"))
                .unwrap_or_else(|| {
                    panic!("docker-compose.yml:{}: `${{{inner}}}` is neither ${{NAME:-default}} nor ${{NAME:?message}}", n + 1)
                });
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "docker-compose.yml:{}: variable name {name:?}",
                n + 1
            );
            assert!(
                !form.contains('$'),
                "docker-compose.yml:{}: nested variable: {line}",
                n + 1
            );
            forms += 1;
            rest = &var[end + 1..];
        }
        assert!(
            !interpolate(line).contains('$'),
            "docker-compose.yml:{}: a `$` survives interpolation: {line}",
            n + 1
        );
    }
    assert!(forms >= 8, "only {forms} variables in docker-compose.yml");
}
