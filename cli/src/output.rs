//! Where output goes: the human summary, and files for machine-readable output where `-` means
//! stdout (spec/cli.md). When a machine-readable output takes stdout, the human summary moves to
//! stderr, so `plantloop run x.toml --json - | jq` sees JSON only.
//!
//! A closed stdout (`plantloop run … | head -1`) is not bad input: [`Human`] notes it and drops
//! later writes, and the commands end quietly (see `run.rs` for the exit code).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A machine-readable output named by a flag: a file, or stdout for `-`.
pub enum Sink {
    Stdout,
    File(File),
}

impl Sink {
    /// Whether `path` is `-`.
    pub fn is_stdout(path: &Path) -> bool {
        path.as_os_str() == "-"
    }

    /// Opens (creates) the output of `--flag path`; errors name the flag and the path.
    pub fn open(path: &Path, flag: &str) -> Result<Sink, String> {
        if Sink::is_stdout(path) {
            return Ok(Sink::Stdout);
        }
        File::create(path)
            .map(Sink::File)
            .map_err(|e| format!("--{flag} {}: {e}", path.display()))
    }

    /// A writer of its own (a clone of the file, or a stdout handle).
    pub fn writer(&self, flag: &str) -> Result<Box<dyn Write + Send>, String> {
        Ok(match self {
            Sink::Stdout => Box::new(io::BufWriter::new(io::stdout())),
            Sink::File(f) => Box::new(io::BufWriter::new(
                f.try_clone().map_err(|e| format!("--{flag}: {e}"))?,
            )),
        })
    }
}

/// At most one machine-readable output may take stdout; returns whether one does.
pub fn check_one_stdout(flags: &[(&str, Option<&PathBuf>)]) -> Result<bool, String> {
    let on_stdout: Vec<&str> = flags
        .iter()
        .filter(|(_, p)| p.is_some_and(|p| Sink::is_stdout(p)))
        .map(|(f, _)| *f)
        .collect();
    if on_stdout.len() > 1 {
        return Err(format!(
            "--{} -: only one output can go to stdout (`-`); give the others a file",
            on_stdout.join(" - and --")
        ));
    }
    Ok(!on_stdout.is_empty())
}

/// The human summary: stdout, or stderr when stdout carries machine-readable output. A closed
/// stream (broken pipe) is remembered and later writes are dropped.
pub struct Human {
    out: Box<dyn Write>,
    closed: bool,
}

impl Human {
    /// To stderr when `stdout_taken`, else to stdout.
    pub fn new(stdout_taken: bool) -> Human {
        let out: Box<dyn Write> = if stdout_taken {
            Box::new(io::stderr())
        } else {
            Box::new(io::stdout())
        };
        Human { out, closed: false }
    }

    /// The reader went away (a broken pipe).
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Whether `e` means the reader closed the pipe.
pub fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

impl Write for Human {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.out.write(buf) {
            Err(e) if is_closed_pipe(&e) => {
                self.closed = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.out.flush() {
            Err(e) if is_closed_pipe(&e) => {
                self.closed = true;
                Ok(())
            }
            r => r,
        }
    }
}
