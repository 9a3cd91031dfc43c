//! Tests that keep `docs/` true: every TOML example loads, or fails with the error the page shows
//! next to it; every flag of the CLI reference exists in `--help` and the reverse; the invariant ids
//! of `docs/invariants.md` are the checker's.

use plantloop_sim::scenario::{InvariantId, Scenario};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn pages() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(docs())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7, "docs/ has its pages");
    out
}

/// Fenced blocks of a page: (info string, body, 1-based line of the opening fence).
fn blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some((info.trim().to_owned(), String::new(), i + 1));
                }
            }
            Some((_, body, _)) => {
                if line.starts_with("```") {
                    out.push(open.take().unwrap());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    out
}

/// The smallest scenario of docs/scenario.md: fragments are appended to it.
fn smallest() -> String {
    let page = std::fs::read_to_string(docs().join("scenario.md")).unwrap();
    blocks(&page)
        .into_iter()
        .find(|(info, body, _)| info == "toml" && body.contains("name = \"smallest\""))
        .expect("docs/scenario.md shows the smallest scenario")
        .1
}

#[test]
fn every_toml_example_loads_or_fails_with_the_error_shown() {
    let base = smallest();
    let mut checked = 0;
    for (page, text) in pages() {
        let bs = blocks(&text);
        for (i, (info, body, line)) in bs.iter().enumerate() {
            if info != "toml" {
                continue;
            }
            let whole = body.contains("[scenario]");
            let source = if whole {
                body.clone()
            } else {
                format!("{base}\n{body}")
            };
            let shown = bs
                .get(i + 1)
                .filter(|(info, b, _)| info == "text" && b.starts_with("error: "))
                .map(|(_, b, _)| b.trim_end().trim_start_matches("error: ").to_owned());
            let got = Scenario::from_str(&source, "scenario.toml");
            match (&shown, got) {
                (None, Ok(_)) => {}
                (None, Err(e)) => panic!("{page}:{line}: the example does not load: {e}"),
                (Some(want), Err(e)) => {
                    assert!(whole, "{page}:{line}: show errors on whole files only");
                    assert_eq!(&e.to_string(), want, "{page}:{line}");
                }
                (Some(want), Ok(_)) => {
                    panic!("{page}:{line}: loads, but the page shows the error {want:?}")
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} TOML examples found");
}

#[test]
fn the_starter_scenario_of_init_loads() {
    let text = include_str!("../src/init/starter.toml");
    Scenario::from_str(text, "starter.toml").unwrap();
}

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_plantloop"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{args:?} --help");
    String::from_utf8(o.stdout).unwrap()
}

/// Long flags in `text`, each a `--word` (the `--help`/`--version` of clap left out).
fn flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at + 2;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'-') {
            end += 1;
        }
        let before_ok = i + at == 0 || !b[i + at - 1].is_ascii_alphanumeric();
        if end > start && before_ok && b[start].is_ascii_lowercase() {
            out.insert(format!("--{}", &text[start..end]));
        }
        i = end.max(start);
    }
    out.remove("--help");
    out.remove("--version");
    out
}

/// The subcommands `plantloop --help` lists.
fn subcommands() -> BTreeSet<String> {
    let h = help(&[]);
    let list = h
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap();
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_owned)
        .collect()
}

/// docs/cli.md's sections `## plantloop COMMAND`, with the text of each.
fn cli_sections() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(docs().join("cli.md")).unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in page.lines() {
        if let Some(h) = line.strip_prefix("## `plantloop ") {
            let cmd = h.split([' ', '`']).next().unwrap().to_owned();
            out.push((cmd, String::new()));
        } else if line.starts_with("## ") {
            out.push((String::new(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.retain(|(c, _)| !c.is_empty());
    out
}

#[test]
fn the_cli_reference_has_every_command_and_flag_of_the_help_and_no_other() {
    let sections = cli_sections();
    let documented: BTreeSet<String> = sections.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(
        documented,
        subcommands(),
        "commands of docs/cli.md vs --help"
    );
    for (cmd, body) in &sections {
        // Flags named in prose about other commands are written `plantloop other --flag`; the
        // reference table of each section is what counts: rows starting with a flag.
        let table: String = body
            .lines()
            .filter(|l| l.starts_with("| `--") || l.starts_with("| `-"))
            .map(|l| l.split('|').nth(1).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            flags(&table),
            flags(&help(&[cmd])),
            "flags of `plantloop {cmd}` in docs/cli.md vs its --help"
        );
    }
}

#[test]
fn the_invariant_ids_of_the_docs_are_the_checkers() {
    let page = std::fs::read_to_string(docs().join("invariants.md")).unwrap();
    let documented: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("## `"))
        .map(|l| l.trim_end_matches('`').to_owned())
        .collect();
    let known: BTreeSet<String> = InvariantId::ALL
        .iter()
        .map(|i| i.as_str().to_owned())
        .collect();
    assert_eq!(documented, known, "docs/invariants.md vs the checker's ids");
}

/// Every `toml serve` example of docs/ is a configuration file `plantloop serve` reads, or fails
/// with the error the `text` block after it shows.
#[test]
fn every_serve_config_example_loads_or_fails_with_the_error_shown() {
    let mut checked = 0;
    for (page, text) in pages() {
        let bs = blocks(&text);
        for (i, (info, body, line)) in bs.iter().enumerate() {
            if info != "toml serve" {
                continue;
            }
            let shown = bs
                .get(i + 1)
                .filter(|(info, b, _)| info == "text" && b.starts_with("error: "))
                .map(|(_, b, _)| b.trim_end().trim_start_matches("error: ").to_owned());
            let got = plantloop_server::ServeConfig::parse("serve.toml", body);
            match (&shown, got) {
                (None, Ok(_)) => {}
                (None, Err(e)) => panic!("{page}:{line}: the example does not load: {e}"),
                (Some(want), Err(e)) => assert_eq!(&e.to_string(), want, "{page}:{line}"),
                (Some(want), Ok(_)) => {
                    panic!("{page}:{line}: loads, but the page shows the error {want:?}")
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} serve examples found");
}
