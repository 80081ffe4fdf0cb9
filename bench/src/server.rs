//! The processes under test: an `atomsync-server` on a temporary database, or any other
//! server process (the broadcast baseline, pouchdb-server), each pinned to the server core,
//! on a free loopback port, and killed when its handle drops.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::system;

/// How long a server gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How hard the server under test pushes commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// `synchronous=FULL`.
    Full,
    /// `synchronous=NORMAL`.
    Normal,
}

impl Durability {
    /// The config file's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }

    /// The SQLite pragma value.
    pub fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// A child process that is killed (and reaped) on drop.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `cmd` with stdout and stderr copied to `log`, and waits for a line that
    /// contains `marker`; returns the process and the rest of that line after the marker.
    pub fn start(
        mut cmd: Command,
        log: &Path,
        marker: &'static str,
        what: &str,
    ) -> Result<(Process, String)> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {what}"), e))?;
        let (tx, rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            copy_lines(stream, log.to_owned(), marker, tx.clone());
        }
        drop(tx);
        let mut process = Process { child };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(rest) => Ok((process, rest)),
            Err(_) => {
                process.kill();
                let log = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .take(10)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Err(BenchError::Setup(format!(
                    "{what} did not print {marker:?} within {START_TIMEOUT:?}; its log ends with: {}",
                    tail.join(" / ")
                )))
            }
        }
    }

    /// The process id (of `taskset`'s exec'd program: `taskset -c` execs in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a child's output to `log` on a thread (so the pipe never fills), and sends the
/// text after `marker` the first time a line contains it.
fn copy_lines(
    stream: Box<dyn Read + Send>,
    log: PathBuf,
    marker: &'static str,
    tx: mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok();
        let mut sent = false;
        for line in BufReader::new(stream)
            .lines()
            .map_while(std::result::Result::ok)
        {
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if let (false, Some((_, rest))) = (sent, line.split_once(marker)) {
                let _ = tx.send(rest.trim().to_owned());
                sent = true;
            }
        }
    });
}

/// The log filter the bench's servers run with: start-up lines, no access line per request
/// (their cost is measured on its own, by the `metrics` workload, with [`ACCESS_LOG`]).
pub const QUIET_ACCESS: &str = "info,atomsync::access=warn";

/// The server's default filter: an access line for every request.
pub const ACCESS_LOG: &str = "info";

/// A running `atomsync-server` on its own temporary database.
pub struct AtomsyncServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub process: Process,
    /// The database file (read in place by the catch-up baseline).
    pub db: PathBuf,
}

impl AtomsyncServer {
    /// Starts `bin` on a new database in `dir`, pinned to `core` when given.
    pub fn start(
        bin: &Path,
        dir: &Path,
        durability: Durability,
        core: Option<usize>,
    ) -> Result<AtomsyncServer> {
        AtomsyncServer::start_with(bin, dir, durability, core, "", "", QUIET_ACCESS)
    }

    /// [`start`](Self::start), its files named with `label`, `extra_toml` appended to its
    /// config (tables after `[server]`, e.g. `[metrics]\nenabled = false`), and `log` as
    /// its log filter.
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        durability: Durability,
        core: Option<usize>,
        label: &str,
        extra_toml: &str,
        log: &str,
    ) -> Result<AtomsyncServer> {
        let name = format!("{}{label}", durability.name());
        let db = dir.join(format!("atomsync-{name}.db"));
        let config = dir.join(format!("atomsync-{name}.toml"));
        let toml = format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndb = {:?}\ndurability = {:?}\n{extra_toml}\n",
            db.display().to_string(),
            durability.name()
        );
        std::fs::write(&config, toml)
            .map_err(|e| BenchError::io("writing the server config", e))?;
        let mut cmd = system::pinned_command(bin, core);
        cmd.arg("--config").arg(&config).env("ATOMSYNC_LOG", log);
        let log = dir.join(format!("server-{name}.log"));
        let (process, addr) = Process::start(cmd, &log, "listening on http://", "atomsync-server")?;
        let addr = addr.parse().map_err(|e| {
            BenchError::Setup(format!("the server said it listens on {addr:?}: {e}"))
        })?;
        wait_until_serving(addr)?;
        Ok(AtomsyncServer { addr, process, db })
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Waits until `addr` answers an HTTP request at all (the port is bound before the app
/// serves), with any status.
pub fn wait_until_serving(addr: SocketAddr) -> Result<()> {
    use std::io::Write;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_exact(&mut head).is_ok()
                && head.starts_with(b"HTTP/1.1 ")
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!("{addr} never answered HTTP")));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
