//! `plantloop init [DIR]`: a starter scenario that passes as written, and CI snippets that run
//! it with JUnit output. Refuses to overwrite a file unless `--force`.

use crate::EXIT_BAD_INPUT;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The starter scenario (also checked by the docs' tests: it must pass as written).
pub const STARTER: &str = include_str!("init/starter.toml");
const GITHUB: &str = include_str!("init/github-actions.yml");
const GITLAB: &str = include_str!("init/gitlab-ci.yml");

#[derive(Args)]
pub struct InitArgs {
    /// Folder to write into (created if missing).
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,
}

/// The files `init` writes, relative to DIR, with their contents.
pub fn files() -> [(&'static str, String); 3] {
    let commit = env!("PLANTLOOP_GIT_COMMIT");
    let rev = if commit == "unknown" {
        String::new()
    } else {
        format!("--rev {commit} ")
    };
    let fill = |t: &str| {
        t.replace("{repository}", env!("CARGO_PKG_REPOSITORY"))
            .replace("{rev}", &rev)
    };
    [
        ("scenarios/starter.toml", STARTER.to_owned()),
        ("ci/github-actions.yml", fill(GITHUB)),
        ("ci/gitlab-ci.yml", fill(GITLAB)),
    ]
}

pub fn main(args: InitArgs) -> ExitCode {
    match init(&args.dir, args.force) {
        Ok(written) => {
            // A closed stdout changes nothing: the files are written.
            let mut out = std::io::stdout().lock();
            for p in &written {
                let _ = writeln!(out, "wrote {}", p.display());
            }
            let _ = writeln!(out, "next: plantloop run {}", written[0].display());
            let _ = writeln!(
                out,
                "CI: copy {} to .github/workflows/, or paste {} into .gitlab-ci.yml",
                written[1].display(),
                written[2].display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn init(dir: &Path, force: bool) -> Result<Vec<PathBuf>, String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("{}: exists and is not a folder", dir.display()));
    }
    let files = files();
    // Check every file first, so a refusal writes nothing.
    if !force {
        let existing: Vec<String> = files
            .iter()
            .map(|(rel, _)| dir.join(rel))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "{}: already exists; pass --force to overwrite",
                existing.join(", ")
            ));
        }
    }
    let mut written = Vec::new();
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("{}: cannot create folder: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
