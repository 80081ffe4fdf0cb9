//! The shared harness: a real `atomsync-server` process per test, on a free loopback port,
//! with its database and config in a temporary folder that lives as long as the handle.
//! The process is killed when the handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running server process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    extra_toml: String,
    flags: Vec<String>,
    /// `http`, or `https` when the config has `[server.tls]`.
    scheme: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl TestServer {
    /// A server with auth off.
    pub fn start() -> TestServer {
        TestServer::start_with("")
    }

    /// A server whose config file has `extra_toml` appended (e.g. `[users.alice] ...`, or
    /// keys of `[server]`: the harness writes `[server]` first, then `extra_toml`, so extra
    /// server keys must come before any other table).
    pub fn start_with(extra_toml: &str) -> TestServer {
        TestServer::start_with_flags(extra_toml, &[])
    }

    /// [`start_with`](Self::start_with), with command-line `flags` too (`--log-format json`).
    pub fn start_with_flags(extra_toml: &str, flags: &[&str]) -> TestServer {
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), extra_toml, flags)
    }

    /// A server whose folder is `dir`, made beforehand (e.g. holding TLS files that
    /// `extra_toml` names).
    pub fn start_in(dir: tempfile::TempDir, extra_toml: &str, flags: &[&str]) -> TestServer {
        let log = dir.path().join("server.log");
        let mut server = TestServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
            extra_toml: extra_toml.to_owned(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            scheme: "http",
            child: None,
            log,
        };
        server.spawn("127.0.0.1:0");
        server
    }

    /// The temporary folder (database, config, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("atomsync.db")
    }

    /// The config file the server runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("atomsync.toml")
    }

    /// Runs `atomsync-server --config FILE ARGS...` (a command such as `backup`) with the
    /// server's config, to its end.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        run_server_binary(&self.config_path(), args)
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// `ws://127.0.0.1:PORT` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if self.scheme == "https" { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within 15 s of SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rewrites the config file with `extra_toml` in place of the one it started with, and
    /// sends SIGHUP: the server reloads it while it runs.
    pub fn reload_with(&mut self, extra_toml: &str) {
        self.extra_toml = extra_toml.to_owned();
        let bind = self.addr.to_string();
        self.write_config(&bind);
        let pid = self
            .child
            .as_ref()
            .expect("server is running")
            .id()
            .to_string();
        let _ = Command::new("kill").args(["-HUP", &pid]).status();
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, database and config.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        let bind = self.addr.to_string();
        self.spawn(&bind);
    }

    fn write_config(&self, bind: &str) -> PathBuf {
        let config = self.dir.path().join("atomsync.toml");
        let toml = format!(
            "[server]\nbind = {bind:?}\ndb = {:?}\ndurability = \"normal\"\n{}\n",
            self.db_path().display().to_string(),
            self.extra_toml
        );
        std::fs::write(&config, toml).expect("write config");
        config
    }

    fn spawn(&mut self, bind: &str) {
        let config = self.write_config(bind);
        // The port of a restart can stay taken for a moment: retry.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match start_process(&config, &self.log, &self.flags) {
                Ok((child, addr, scheme)) => {
                    self.child = Some(child);
                    self.addr = addr;
                    self.scheme = scheme;
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("server did not start: {e}"),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the server binary with `--config config` and `args` (a command such as `backup`,
/// or the server itself when it is expected to refuse to start), to its end, within a
/// minute.
pub fn run_server_binary(config: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atomsync-server"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atomsync-server");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("atomsync-server {args:?} did not end within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Starts the binary and waits for its "listening on" line; the rest of its stderr goes
/// to `log` (read by a thread, so the pipe never fills).
fn start_process(
    config: &Path,
    log: &Path,
    flags: &[String],
) -> Result<(Child, SocketAddr, &'static str), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atomsync-server"))
        .arg("--config")
        .arg(config)
        .args(flags)
        .env("ATOMSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    let log = log.to_owned();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .ok();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            // The line, in either log format: `listening on http://ADDR` (or https).
            if !sent && let Some(rest) = line.split("listening on http").nth(1) {
                let tls = rest.starts_with("s://");
                let addr = rest.trim_start_matches("s://").trim_start_matches("://");
                let addr: String = addr
                    .chars()
                    .take_while(|c| !matches!(c, '"' | ' '))
                    .collect();
                let _ = tx.send(Ok((addr, tls)));
                sent = true;
            }
        }
        let _ = tx.send(Err("server exited before listening".to_owned()));
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok((addr, tls))) => {
            let addr: SocketAddr = addr.parse().map_err(|e| format!("address {addr:?}: {e}"))?;
            if tls {
                // A plain-HTTP probe cannot speak TLS; the socket was bound before the
                // line was logged, so connections queue until the workers run.
                return Ok((child, addr, "https"));
            }
            wait_healthy(addr)?;
            Ok((child, addr, "http"))
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("{other:?}"))
        }
    }
}

/// Polls `/healthz` until it answers 200 (the port is bound before the app serves).
fn wait_healthy(addr: SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).is_ok() {
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            return Err("/healthz never answered 200".into());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
