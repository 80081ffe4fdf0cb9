//! # atomsync-bench
//!
//! Puts Atomsync beside SQLite's own limit, a raw WebSocket broadcast server and a real peer
//! (pouchdb-server), all measured in the same run on the same machine (issue 7).
//!
//! ```text
//! cargo run --release -p atomsync-bench                  # the full run (about 20 minutes)
//! cargo run --release -p atomsync-bench -- --json        # + one JSON line per metric on stdout
//! cargo run -p atomsync-bench -- --quick                 # a smoke run, under a minute
//! cargo run --release -p atomsync-bench -- --only w1,w4  # some workloads only
//! cargo run --release -p atomsync-bench -- --url http://127.0.0.1:8090 --durability full
//! ```
//!
//! It starts `atomsync-server` (built beside this binary; see [`system::server_binary`]) on a
//! temporary database, once per durability (`full`, `normal`), pinned to core 0 with
//! `taskset`, and pins itself to core 1. Before every timed phase it runs `sync` and settles
//! (2 s; 0.1 s with `--quick`). Each workload is repeated (3 times; once with `--quick`)
//! and the medians are reported, with the ratio to a baseline measured in the same run:
//!
//! | workload | what | baseline |
//! |---|---|---|
//! | W1 | 100 changes per push, MessagePack and JSON | raw SQLite, 100 version-checked writes per tx; pouchdb `_bulk_docs` |
//! | W2 | single-change pushes, 1 and 16 clients | raw SQLite, one tx per change; pouchdb PUTs |
//! | W3 | W1 with half the bases stale | W1 |
//! | W4 | push-to-delivery latency, 20 and 1,000 pushes/s, 1 and 1,000 subscribers | pouchdb `_changes` longpoll |
//! | W5 | fan-out deliveries/s, 1,000 and 5,000 subscribers; KiB per idle connection | a tokio-tungstenite broadcast server |
//! | W6 | 100 groups pushing at once; `SQLITE_BUSY` count | W1 |
//! | W7 | catch-up of 100,000 documents in pages of 10,000 | raw SQLite reading the same rows |
//! | client | the native client: `swap` at 10..100,000 documents, first sync of 100,000, live apply under 20,000 pushes | a one-row SQLite FULL transaction; the 10-document swap; HTTP pull + decode; the server's ack rate |
//! | Browser | the browser client in headless Chromium: first sync of 50,000 documents into IndexedDB; `swap` on that atom | pull + decode + one-transaction put; a one-record put |
//! | Overhead (`metrics`) | W1 and W2 with metrics on, and with an access line per request | the same server with metrics off, and without access lines |
//!
//! `--plot DIR` also writes the run's charts as SVG files (see [`plot`]).
//!
//! The table goes to stdout (to stderr with `--json`, where stdout carries the JSON lines);
//! progress goes to stderr. `--quick` shrinks every count and skips the peer unless `--peer`.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

mod broadcast;
mod data;
mod error;
mod http;
mod latency;
mod plan;
mod plot;
mod raw;
mod report;
mod rows;
mod run;
mod server;
mod system;
mod workloads;
mod ws;

use clap::{Parser, Subcommand};

use crate::server::Durability;

/// Atomsync's benchmark: every workload of issue 7 beside its baseline, measured in one run.
#[derive(Debug, Parser)]
#[command(name = "atomsync-bench", version, about, long_about = None)]
pub struct Cli {
    /// A short smoke run: tiny counts, one repetition, no peer unless --peer.
    #[arg(long)]
    pub quick: bool,
    /// Also print one JSON line per metric on stdout (the table then goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Drive an already running server instead of starting one (no pinning, no memory test).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: the durability that server runs with (picks the raw baseline's pragma).
    #[arg(long, value_enum, default_value = "full")]
    pub durability: Mode,
    /// Run the pouchdb-server comparison even with --quick.
    #[arg(long)]
    pub peer: bool,
    /// Skip the pouchdb-server comparison.
    #[arg(long, conflicts_with = "peer")]
    pub no_peer: bool,
    /// Do not pin the server and the load generator to separate cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Run only these workloads (comma-separated: w1,w2,w3,w4,w5,mem,w6,w7,client,browser,
    /// peer, metrics).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub only: Vec<String>,
    /// Also write SVG charts of the run into DIR: throughput ratios beside their
    /// baselines (throughput.svg) and latency distributions (latency.svg).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<std::path::PathBuf>,
    /// Internal: the process to run instead of the benchmark.
    #[command(subcommand)]
    pub command: Option<Internal>,
}

/// Durability, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// synchronous=FULL
    Full,
    /// synchronous=NORMAL
    Normal,
}

impl From<Mode> for Durability {
    fn from(m: Mode) -> Durability {
        match m {
            Mode::Full => Durability::Full,
            Mode::Normal => Durability::Normal,
        }
    }
}

/// Processes the bench starts from its own binary.
#[derive(Debug, Subcommand)]
pub enum Internal {
    /// W5's baseline server (started by the bench, pinned to the server core).
    #[command(hide = true)]
    BroadcastServer,
    /// The client workload's first sync, in a fresh process so that its peak memory is its own.
    #[command(hide = true)]
    ClientSync {
        /// The server's sync URL.
        #[arg(long)]
        url: String,
        /// The group to sync.
        #[arg(long)]
        group: String,
        /// The documents the group holds.
        #[arg(long)]
        docs: u64,
        /// The new store's file.
        #[arg(long)]
        db: std::path::PathBuf,
    },
}

impl Cli {
    /// Whether workload `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o.eq_ignore_ascii_case(name))
    }
}

fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Internal::BroadcastServer) => {
            return match tokio_runtime().and_then(|rt| rt.block_on(broadcast::serve())) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("broadcast-server: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Some(Internal::ClientSync {
            url,
            group,
            docs,
            db,
        }) => return workloads::client::sync::child(url, group, docs, db),
        None => {}
    }
    // Before any thread exists: threads inherit the affinity of the one that spawns them.
    let pinned =
        !cli.no_pin && cli.url.is_none() && system::can_pin() && system::pin_self().is_ok();
    match system::raise_nofile(std::process::id()) {
        Ok(limit) if limit < 25_000 => eprintln!("open-files limit: {limit}"),
        Ok(_) => {}
        Err(e) => eprintln!("could not raise the open-files limit: {e}"),
    }
    match tokio_runtime().and_then(|rt| rt.block_on(run::run(cli, pinned))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atomsync-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn tokio_runtime() -> error::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| error::BenchError::io("starting the async runtime", e))
}
