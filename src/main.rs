//! `atomsync-server`: parses the configuration, starts logging, binds, and runs
//! [`atomsync::run_with_reload`] until SIGTERM or Ctrl-C (SIGHUP reloads the
//! configuration); or runs one of the commands that work on the database file
//! ([`atomsync::offline`]): `backup`, `restore`, `compact`.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use atomsync::Config;
use atomsync::config::{Durability, parse_duration, parse_seconds_or_duration};
use atomsync::logging::LogFormat;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// The Atomsync sync server. With no command it serves: on 127.0.0.1:8090 with the
/// database `atomsync.db` in the working directory and auth off, unless told otherwise.
/// Options override the config file's keys; `ATOMSYNC_*` environment variables sit between
/// the two.
#[derive(Debug, Parser)]
#[command(name = "atomsync-server", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file (see config/atomsync.toml for every key).
    #[arg(
        long,
        short,
        env = "ATOMSYNC_CONFIG",
        value_name = "FILE",
        global = true
    )]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8090 (port 0 picks a free port).
    #[arg(long, env = "ATOMSYNC_BIND", value_name = "ADDR")]
    bind: Option<String>,
    /// SQLite database file, created when missing; or a PostgreSQL URL,
    /// postgres://user:password@host:port/dbname (the database must exist).
    #[arg(long, env = "ATOMSYNC_DB", value_name = "PATH", global = true)]
    db: Option<PathBuf>,
    /// The state file that remembers which databases were served from the database's
    /// path (default: beside it, `<db>.state`); keep it on another volume than the data to
    /// notice a snapshot that rolls the volume back.
    #[arg(long, env = "ATOMSYNC_STATE_FILE", value_name = "PATH", global = true)]
    state_file: Option<PathBuf>,
    /// full: fsync before every acknowledgement; normal: survives a process crash, not a power cut.
    #[arg(long, env = "ATOMSYNC_DURABILITY", value_enum)]
    durability: Option<Durability>,
    /// Read connections in the pool.
    #[arg(long, env = "ATOMSYNC_POOL_SIZE")]
    pool_size: Option<u32>,
    /// Largest request body or WebSocket frame, in bytes (default 8 MiB).
    #[arg(long, env = "ATOMSYNC_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest value in its MessagePack encoding, in bytes (default 1 MiB).
    #[arg(long, env = "ATOMSYNC_MAX_VALUE_BYTES")]
    max_value_bytes: Option<usize>,
    /// Deepest nesting of containers in a value (default 64).
    #[arg(long, env = "ATOMSYNC_MAX_DEPTH")]
    max_depth: Option<usize>,
    /// Most changes in one push (default 10000).
    #[arg(long, env = "ATOMSYNC_MAX_CHANGES")]
    max_changes: Option<usize>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "ATOMSYNC_WORKERS")]
    workers: Option<usize>,
    /// The admin API's bearer token (`[admin] token`); prefer the environment or the file
    /// to the command line, where other users of the machine can read it.
    #[arg(
        long,
        env = "ATOMSYNC_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Seconds for a request's head and body to arrive before 408 (default 30).
    #[arg(long, env = "ATOMSYNC_REQUEST_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds_or_duration)]
    request_timeout: Option<Duration>,
    /// Open connections past which a new one is refused (default: from the open-file limit).
    #[arg(long, env = "ATOMSYNC_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds between WebSocket pings (default 15).
    #[arg(long, env = "ATOMSYNC_PING_INTERVAL", value_name = "SECONDS", value_parser = parse_seconds_or_duration)]
    ping_interval: Option<Duration>,
    /// Seconds of WebSocket silence before the server closes it (default 45).
    #[arg(long, env = "ATOMSYNC_IDLE_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds_or_duration)]
    idle_timeout: Option<Duration>,
    /// Seconds a connection the server closes may take to go before it is reset (default 2).
    #[arg(long, env = "ATOMSYNC_CLOSE_TIMEOUT", value_name = "SECONDS", value_parser = parse_seconds_or_duration)]
    close_timeout: Option<Duration>,
    /// Web origins whose pages may open a WebSocket, comma-separated (e.g. https://app.example).
    #[arg(
        long,
        env = "ATOMSYNC_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGINS"
    )]
    allowed_origins: Option<Vec<String>>,
    /// Log filter, e.g. info, debug, atomsync=trace (default: info when serving, warn for
    /// a command).
    #[arg(long, env = "ATOMSYNC_LOG", global = true)]
    log: Option<String>,
    /// Log lines as text (for people) or JSON (one object per line, for log shippers).
    #[arg(
        long,
        env = "ATOMSYNC_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
enum Command {
    /// Copies the database to PATH, consistently, while the server serves (it never
    /// overwrites a file). Put it back with `restore`, never by hand.
    Backup {
        /// Where the copy goes; must not exist.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Installs a backup as the database, with a new epoch, so that every client syncs
    /// again from 0 (keeping its unsent changes). The server must be stopped; the database
    /// it replaces is kept beside it.
    Restore {
        /// The backup to install.
        #[arg(long, value_name = "PATH")]
        from: PathBuf,
    },
    /// Removes the tombstones older than AGE once (the server must be stopped; to do it on
    /// a schedule while serving, set [compaction] tombstones_older_than).
    Compact {
        /// How old a tombstone must be to go, e.g. 30d, 12h.
        #[arg(long, value_name = "AGE", value_parser = parse_duration)]
        older_than: Duration,
    },
}

impl Cli {
    /// The file's config (or the embedded default), with environment and flags on top.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let s = &mut config.server;
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field.clone() { s.$field = v; } )* };
        }
        if let Some(state_file) = self.state_file.clone() {
            s.state_file = Some(state_file);
        }
        set!(
            bind,
            db,
            durability,
            pool_size,
            max_body_bytes,
            max_value_bytes,
            max_depth,
            max_changes,
            workers,
            request_timeout,
            max_connections,
            ping_interval,
            idle_timeout,
            close_timeout,
            allowed_origins
        );
        if let Some(token) = self.admin_token.clone() {
            config.admin.token = Some(token);
        }
        config.validate()?;
        Ok(config)
    }
}

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: each error's text already says what it wraps.
            eprintln!("atomsync-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let default_log = if cli.command.is_some() {
        "warn"
    } else {
        "info"
    };
    let log = cli.log.as_deref().unwrap_or(default_log);
    atomsync::logging::init(log, cli.log_format)?;
    let config = cli.config()?;
    match cli.command.take() {
        None => serve(cli, config),
        Some(command) => run_command(&command, &config),
    }
}

/// Serves until SIGTERM or Ctrl-C; `cli` reads the configuration again on SIGHUP.
fn serve(cli: Cli, config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&config.server.bind)
        .with_context(|| format!("cannot listen on {}", config.server.bind))?;
    actix_web::rt::System::new().block_on(async move {
        let (reload, reloads) = tokio::sync::mpsc::channel(1);
        actix_web::rt::spawn(reload_on_hangup(cli, reload));
        atomsync::run_with_reload(config, listener, shutdown_signal(), reloads).await
    })?;
    Ok(())
}

fn run_command(command: &Command, config: &Config) -> anyhow::Result<()> {
    let db = config.server.database().redacted();
    match command {
        Command::Backup { out } => {
            let bar = progress_bar("copying", "bytes");
            let report = atomsync::offline::backup(config, out, &mut follow(&bar));
            bar.finish_and_clear();
            let report = report?;
            let c = &report.contents;
            println!(
                "backed up {db} to {}: {}, {}, {} bytes, epoch {} at commit {}, in {:.1} s",
                report.out.display(),
                count(c.groups, "group"),
                count(c.documents, "document"),
                c.bytes,
                c.epoch,
                c.commits,
                report.elapsed.as_secs_f64()
            );
            println!(
                "put it back with `atomsync-server restore --from {}` (the server stopped); \
                 a copy put in place by hand gets a new epoch too",
                report.out.display()
            );
        }
        Command::Restore { from } => {
            let bar = progress_bar("restoring", "pages");
            let report = atomsync::offline::restore(config, from, &mut follow(&bar));
            bar.finish_and_clear();
            let report = report?;
            let c = &report.contents;
            println!(
                "restored {} into {db}: {}, {}",
                from.display(),
                count(c.groups, "group"),
                count(c.documents, "document")
            );
            println!(
                "new epoch {} (the backup's was {}): every client notices and syncs again \
                 from 0, keeping the changes it had not sent",
                c.epoch, report.old_epoch
            );
            match &report.kept {
                Some(kept) => println!(
                    "the database it replaced is kept as {}; delete it once you no longer need it",
                    kept.display()
                ),
                None => println!("there was no database at {db} before"),
            }
        }
        Command::Compact { older_than } => {
            let done = actix_web::rt::System::new()
                .block_on(atomsync::offline::compact(config, *older_than))?;
            let age = short_duration(*older_than);
            if done.tombstones == 0 {
                println!("no tombstone in {db} is older than {age}; nothing removed");
            } else {
                println!(
                    "removed {} older than {age} from {db}; the floor of {} rose, and a client \
                     whose cursor is below it pulls that group again from 0",
                    count(done.tombstones, "tombstone"),
                    count(done.groups, "group")
                );
            }
        }
    }
    Ok(())
}

/// `1 group`, `3 groups`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration as it is typed: `30d`, `12h`, `90m`, `45s`.
fn short_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A `progress(done, total)` callback of the offline commands that moves `bar`.
fn follow(bar: &ProgressBar) -> impl FnMut(u64, u64) + '_ {
    |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// A progress bar on standard error when it is a terminal; nothing otherwise.
fn progress_bar(what: &str, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match unit {
        "bytes" => "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
        _ => "{msg} [{bar:30}] {pos}/{len} pages ({eta})",
    };
    let bar = ProgressBar::new(0).with_message(what.to_owned());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// On SIGHUP, reads the configuration again (file, then environment and flags, as at
/// start) and hands it to the server; a file that does not parse or validate is logged
/// and the configuration in force stays.
async fn reload_on_hangup(cli: Cli, reload: tokio::sync::mpsc::Sender<Config>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; config reload is off");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            match cli.config() {
                Ok(config) => {
                    if reload.send(config).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload refused; the old configuration stays in force")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (cli, reload);
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C still stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
