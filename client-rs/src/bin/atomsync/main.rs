//! `atomsync`: the command line of an Atomsync server, for people and scripts.
//!
//! Values are the tagged JSON of PROTOCOL.md section 2 (`{"$kw": "groceries"}`,
//! `{"$set": [...]}`, `{"$inst": "..."}`), in and out, so every type survives a round trip.
//! Data goes to standard output, one JSON document per line; messages and progress go to
//! standard error. An error is one line (`atomsync: ...`) and a non-zero exit status.
//!
//! - `main`: the arguments (clap), dispatch, the exit status.
//! - `server`: the server's URL and its HTTP endpoints; `watch`: its WebSocket.
//! - `input`: groups, keys and values as typed; `output`: lines out, notes on stderr.
//! - `docs`: `get`, `put`, `del`; `pull`: `pull`, `export`; `import` and `plan`: `import`.
//! - `groups`: `groups`, `scan` (the admin API); `progress`: progress bars.
//! - `error`: every failure and its exit status.
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]

mod docs;
mod error;
mod groups;
mod import;
mod input;
mod output;
mod plan;
mod progress;
mod pull;
mod server;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;
use crate::output::Notes;
use crate::plan::Existing;
use crate::server::Server;

const EXIT_STATUS: &str = "\
Exit status: 0 done; 1 error (network, server, bad input); 2 bad arguments;
3 conflict (the document changed meanwhile; nothing was written);
4 not found (no such document or group).";

/// The Atomsync command line: read, write, follow, export and import the documents of
/// an Atomsync server.
///
/// Values are tagged JSON: '"text"', '42', '1.5', '{"tags": {"$set": [{"$kw": "x"}]}}',
/// '{"$inst": "2026-11-24T10:00:00Z"}', '{"$uuid": "..."}', '{"$bytes": "AAE="}'.
#[derive(Debug, Parser)]
#[command(name = "atomsync", version, after_help = EXIT_STATUS)]
struct Cli {
    /// The server: its clients' URL (http://127.0.0.1:8090/sync) or just its address.
    #[arg(
        long,
        short,
        global = true,
        env = "ATOMSYNC_SERVER",
        default_value = "http://127.0.0.1:8090",
        value_name = "URL"
    )]
    server: String,
    /// A user's token, for servers with auth on (prefer ATOMSYNC_TOKEN: other users of
    /// the machine can read a command line).
    #[arg(
        long,
        short,
        global = true,
        env = "ATOMSYNC_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// The server's [admin] token, for `groups` and `scan` (else --token is tried).
    #[arg(
        long,
        global = true,
        env = "ATOMSYNC_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// A CA certificate (PEM) to trust beside the system's, for a server on https://
    /// whose certificate no public authority signed.
    #[arg(long, global = true, env = "ATOMSYNC_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// No summaries and no progress on standard error (errors still show).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a document's value, as tagged JSON on one line.
    Get {
        /// The group, e.g. todo.
        group: String,
        /// The document's key.
        key: String,
        /// Print the whole document: key, version, seq, and value (or "deleted": true).
        #[arg(long)]
        doc: bool,
    },
    /// Set a document's value. Prints {"key", "version", "seq"}.
    ///
    /// On an existing key it writes over the current version; if another client changes
    /// the document in between, nothing is written and the exit status is 3.
    Put {
        /// The group.
        group: String,
        /// The document's key.
        key: String,
        /// The value in tagged JSON, or - to read it from standard input.
        value: String,
        /// Write only if the document is at this version (0: only if never written).
        #[arg(long, value_name = "VERSION")]
        base: Option<u64>,
    },
    /// Delete a document (it stays as a tombstone). Prints {"key", "version", "seq"}.
    Del {
        /// The group.
        group: String,
        /// The document's key.
        key: String,
        /// Delete only if the document is at this version.
        #[arg(long, value_name = "VERSION")]
        base: Option<u64>,
    },
    /// Print a group's changes after a cursor, one document per line, in seq order.
    Pull {
        /// The group.
        group: String,
        /// The cursor: print changes with a seq above it (0: everything).
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        since: u64,
    },
    /// Follow a group live: one JSON line per change, until Ctrl-C.
    ///
    /// Starts with the group's documents (from --since), then prints each change as it
    /// commits. Reconnects by itself and resumes where it stopped.
    Watch {
        /// The group.
        group: String,
        /// Print changes with a seq above this first (0: the whole group).
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        since: u64,
    },
    /// Write a group's documents to standard output, one {"key", "value"} per line.
    Export {
        /// The group.
        group: String,
    },
    /// Read {"key", "value"} lines from standard input into a group.
    ///
    /// A key that already holds the same value is left alone, so running an import
    /// again is safe and writes nothing new. A key holding another value is kept
    /// (--existing skip) or written over (--existing overwrite).
    Import {
        /// The group.
        group: String,
        /// What to do with keys that already hold another value.
        #[arg(long, value_enum, default_value_t = Existing::Skip)]
        existing: Existing,
        /// Documents per request (the server accepts up to its max_changes, 10000 by default).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        batch: u16,
    },
    /// List the server's groups with their counts (needs the admin token).
    Groups {
        /// Show this group only.
        name: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a group's documents in key order (needs the admin token).
    Scan {
        /// The group.
        group: String,
        /// Only keys that start with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Include tombstones (deleted documents).
        #[arg(long)]
        tombstones: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("atomsync: cannot start: {e}");
            return ExitCode::from(error::EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): end quietly, as SIGPIPE would.
        Err(CliError::BrokenPipe) => ExitCode::from(141),
        Err(e) => {
            eprintln!("atomsync: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let notes = Notes::new(cli.quiet);
    let server = Server::new(
        &cli.server,
        cli.token,
        cli.admin_token,
        cli.ca_cert.as_deref(),
    )?;
    match cli.command {
        Command::Get { group, key, doc } => {
            docs::get(&server, input::group(&group)?, input::key(&key)?, doc).await
        }
        Command::Put {
            group,
            key,
            value,
            base,
        } => {
            let (group, key) = (input::group(&group)?, input::key(&key)?);
            docs::put(&server, group, key, input::value(&value)?, base).await
        }
        Command::Del { group, key, base } => {
            docs::del(&server, input::group(&group)?, input::key(&key)?, base).await
        }
        Command::Pull { group, since } => {
            pull::pull(&server, input::group(&group)?, since, notes).await
        }
        Command::Watch { group, since } => {
            watch::watch(&server, input::group(&group)?, since, notes).await
        }
        Command::Export { group } => pull::export(&server, input::group(&group)?, notes).await,
        Command::Import {
            group,
            existing,
            batch,
        } => {
            let group = input::group(&group)?;
            import::import(&server, group, existing, usize::from(batch), notes).await
        }
        Command::Groups { name, json } => {
            let name = name.as_deref().map(input::group).transpose()?;
            groups::groups(&server, name, json).await
        }
        Command::Scan {
            group,
            prefix,
            tombstones,
        } => groups::scan(&server, input::group(&group)?, &prefix, tombstones).await,
    }
}
