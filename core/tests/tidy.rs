//! Tidy: the engine and the simulator stay deterministic and sans-IO.
//!
//! - No source file of `core/src` or `sim/src` reads the wall clock, draws from a global or OS
//!   RNG, sleeps, spawns threads, uses tokio, or touches files and sockets. Comments are not code
//!   and are skipped. The few places where the simulator's *driver* legitimately reaches out (it
//!   loads a scenario file; the runner reports wall time) are listed with a reason in `ALLOWED`,
//!   and an entry that no longer matches anything fails too, so the list cannot rot.
//! - `plantloop-core`'s dependency tree (normal and build dependencies, as Cargo resolves them
//!   for core) holds no async runtime, HTTP, database or OS-randomness crate.

use std::path::{Path, PathBuf};

/// What must not appear in code, and why.
const BANNED: &[(&str, &str)] = &[
    ("Instant::now", "reads the wall clock"),
    ("SystemTime", "reads the wall clock"),
    ("UNIX_EPOCH", "reads the wall clock"),
    ("thread_rng", "global RNG"),
    ("rand::rng(", "global RNG"),
    ("rand::random", "global RNG"),
    ("from_entropy", "OS-seeded RNG"),
    ("from_os_rng", "OS-seeded RNG"),
    ("OsRng", "OS RNG"),
    ("getrandom", "OS RNG"),
    ("tokio", "async runtime"),
    ("std::fs", "file I/O"),
    ("std::net", "sockets"),
    ("std::thread", "sleeps or threads"),
    ("std::process", "child processes"),
    ("std::env::var", "configuration from the environment"),
];

/// Exceptions: (file under the workspace root, banned pattern, why it is fine there).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "sim/src/scenario/mod.rs",
        "std::fs",
        "the scenario loader reads the scenario file the user named; nothing in the run reads files",
    ),
    (
        "sim/src/explore.rs",
        "std::thread",
        "the explorer runs independent seeds on worker threads (`--jobs`); each run owns its own \
         world, and results are sorted by seed, so the number of threads never changes an outcome",
    ),
    (
        "sim/src/runner.rs",
        "Instant::now",
        "the runner reports the run's wall time (`wall_s`), the one figure a report marks as not \
         reproducible; it never feeds the simulation",
    ),
];

/// Crates `plantloop-core` must never depend on: runtimes, HTTP, databases, sockets.
const BANNED_CRATES: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "hyper",
    "reqwest",
    "ureq",
    "axum",
    "tower",
    "actix-web",
    "rusqlite",
    "libsqlite3-sys",
    "sqlx",
    "sled",
    "redb",
    "async-nats",
    "rumqttc",
    "getrandom",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source with comments blanked out (line structure kept), so that a doc comment saying
/// "never calls `Instant::now`" is not a violation. String literals are kept: code that builds
/// a banned path in a string is suspicious enough.
fn strip_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let mut depth = 0usize;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if depth > 0 {
            if c == b'*' && next == Some(b'/') {
                depth -= 1;
                i += 2;
            } else if c == b'/' && next == Some(b'*') {
                depth += 1;
                i += 2;
            } else {
                if c == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            continue;
        }
        if in_str {
            if c == b'\\' {
                out.push_str(&src[i..(i + 2).min(b.len())]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'r'
            && !b[..i]
                .last()
                .is_some_and(|p| p.is_ascii_alphanumeric() || *p == b'_')
            && let Some(hashes) = raw_string_start(&b[i + 1..])
        {
            // r"…" or r#"…"#: copied whole, quotes inside and all.
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + 2 + hashes;
            let end = src[body..]
                .find(&close)
                .map_or(b.len(), |e| body + e + close.len());
            out.push_str(&src[i..end]);
            i = end;
            continue;
        } else if c == b'\'' {
            // A char literal ('"', '\'', '→') is copied whole; a lifetime ('a) is not one.
            let rest = &src[i + 1..];
            let mut it = rest.chars();
            let len = match (it.next(), it.next()) {
                (Some('\\'), _) => rest[1..].find('\'').map(|e| e + 3),
                (Some(ch), Some('\'')) => Some(ch.len_utf8() + 2),
                _ => None,
            };
            if let Some(len) = len {
                out.push_str(&src[i..i + len]);
                i += len;
                continue;
            }
        } else if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if c == b'/' && next == Some(b'*') {
            depth = 1;
            i += 2;
            continue;
        }
        let ch = src[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// After an `r`: the number of `#` of a raw string's opening, if one starts here.
fn raw_string_start(b: &[u8]) -> Option<usize> {
    let hashes = b.iter().take_while(|c| **c == b'#').count();
    (b.get(hashes) == Some(&b'"')).then_some(hashes)
}

/// `use std::{fs, …}` and the like: the grouped form of a banned path.
fn grouped_uses(code: &str) -> Vec<(usize, String)> {
    let mut found = vec![];
    for (start, _) in code.match_indices("std::{") {
        let line = code[..start].matches('\n').count() + 1;
        let group = &code[start + 6..];
        let end = group.find('}').unwrap_or(group.len());
        for item in group[..end].split(',') {
            let name = item.trim().split("::").next().unwrap_or("").trim();
            if ["fs", "net", "thread", "process"].contains(&name) {
                found.push((line, format!("std::{name}")));
            }
        }
    }
    found
}

#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    pattern: String,
}

fn violations(root: &Path, crates: &[&str]) -> Vec<Violation> {
    let mut found = vec![];
    for krate in crates {
        let mut files = vec![];
        rust_files(&root.join(krate), &mut files);
        assert!(!files.is_empty(), "no sources under {krate}");
        for path in files {
            let file = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let code = strip_comments(&std::fs::read_to_string(&path).unwrap());
            for (n, line) in code.lines().enumerate() {
                for (pattern, _) in BANNED {
                    if line.contains(pattern) {
                        found.push(Violation {
                            file: file.clone(),
                            line: n + 1,
                            pattern: (*pattern).to_owned(),
                        });
                    }
                }
            }
            for (line, pattern) in grouped_uses(&code) {
                found.push(Violation {
                    file: file.clone(),
                    line,
                    pattern,
                });
            }
        }
    }
    found
}

#[test]
fn the_engine_and_the_simulator_never_read_the_clock_draw_global_randomness_or_do_io() {
    let all = violations(&workspace_root(), &["core/src", "sim/src"]);
    let why = |p: &str| BANNED.iter().find(|(b, _)| *b == p).map_or("", |(_, w)| w);
    let bad: Vec<String> = all
        .iter()
        .filter(|v| {
            !ALLOWED
                .iter()
                .any(|(f, p, _)| *f == v.file && *p == v.pattern)
        })
        .map(|v| format!("{}:{}: {} ({})", v.file, v.line, v.pattern, why(&v.pattern)))
        .collect();
    assert!(
        bad.is_empty(),
        "banned in the deterministic crates:\n  {}",
        bad.join("\n  ")
    );
    let unused: Vec<_> = ALLOWED
        .iter()
        .filter(|(f, p, _)| !all.iter().any(|v| v.file == *f && v.pattern == *p))
        .collect();
    assert!(
        unused.is_empty(),
        "exceptions that match nothing any more; remove them: {unused:?}"
    );
}

#[test]
fn the_scanner_sees_through_comments_but_not_past_code() {
    let code = strip_comments(
        "// Instant::now in a comment\nlet t = std::time::Instant::now(); /* tokio\n still */ x\n\
         let s = \"// not a comment\"; use std::{fs, io};\n\
         let q = '\"'; let r = r#\"{\"a\": \"//\"}\"#; fn f<'a>() {} // gone\n",
    );
    assert!(!code.contains("gone"), "{code}");
    assert!(code.contains(r##"r#"{"a": "//"}"#"##), "{code}");
    assert!(!code.contains("in a comment"));
    assert!(code.contains("Instant::now()"));
    assert!(!code.contains("still"));
    assert_eq!(code.lines().count(), 5, "line numbers are kept");
    assert!(code.contains("\"// not a comment\""));
    assert_eq!(grouped_uses(&code), [(4, "std::fs".to_owned())]);
}

/// The normal and build dependencies of `plantloop-core`, transitively, with the features core
/// itself enables (`cargo tree -p`, not the workspace-wide feature union of `cargo metadata`, in
/// which another crate's features would show up as core's).
fn core_dependency_tree() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "plantloop-core",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
            "--locked",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn core_depends_on_no_runtime_http_or_database_crate() {
    let tree = core_dependency_tree();
    // The walk is real: it finds what core does depend on, directly and transitively.
    for expected in ["serde", "blake3", "postcard", "rand_chacha", "rand_core"] {
        assert!(tree.iter().any(|n| n == expected), "{expected} in {tree:?}");
    }
    // Dev-dependencies are not part of what core ships.
    assert!(!tree.iter().any(|n| n == "proptest"), "{tree:?}");
    let banned: Vec<_> = tree
        .iter()
        .filter(|n| BANNED_CRATES.contains(&n.as_str()))
        .collect();
    assert!(
        banned.is_empty(),
        "plantloop-core depends on {banned:?}; the engine must stay sans-IO"
    );
}
