//! Standard output, one JSON document per line, buffered; and the optional messages on
//! standard error (summaries, progress), silenced by `--quiet`.

use std::io::{BufWriter, IsTerminal, Stdout, Write};

use atomsync_proto::Encoding;
use atomsync_proto::wire::{Doc, encode_doc};

use crate::error::{CliError, io};

/// Lines to standard output.
pub struct Output {
    out: BufWriter<Stdout>,
    /// Flush after every line: someone is reading as it happens (`watch`).
    live: bool,
}

impl Output {
    /// Buffered output, flushed at the end (pull, export).
    pub fn buffered() -> Output {
        Output {
            out: BufWriter::with_capacity(256 << 10, std::io::stdout()),
            live: false,
        }
    }

    /// Output flushed line by line.
    pub fn live() -> Output {
        Output {
            out: BufWriter::new(std::io::stdout()),
            live: true,
        }
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: &[u8]) -> Result<(), CliError> {
        self.out
            .write_all(text)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| io("standard output", &e))?;
        if self.live {
            self.flush()?;
        }
        Ok(())
    }

    /// One document as a line: `{"key", "version", "seq", "value"}` or, for a tombstone,
    /// `{"key", "version", "seq", "deleted": true}`.
    pub fn doc(&mut self, doc: &Doc) -> Result<(), CliError> {
        self.line(&encode_doc(doc, Encoding::Json))
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> Result<(), CliError> {
        self.out.flush().map_err(|e| io("standard output", &e))
    }
}

/// Messages for the person at the terminal, on standard error.
#[derive(Debug, Clone, Copy)]
pub struct Notes {
    quiet: bool,
}

impl Notes {
    /// Notes that print unless `quiet`.
    pub fn new(quiet: bool) -> Notes {
        Notes { quiet }
    }

    /// Prints one line on standard error, unless quiet.
    pub fn say(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// True when progress bars should show: not quiet, and standard error is a terminal.
    pub fn progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// `1 document`, `2 documents`.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
