//! A throwaway PostgreSQL cluster for tests and the benchmark: std only, so that the
//! server's unit tests, the end-to-end tests and `atomsync-bench` can each include it
//! (`#[path = ...] mod`).
//!
//! [`cluster`] starts one per process, on first use: `initdb` into a temporary folder, then
//! `postgres` on a free loopback port, under a watchdog shell that stops it and removes the
//! folder as soon as the process that started it exits, however it exits (the watchdog
//! waits for its standard input, a pipe the process holds, to close). As root, the cluster
//! runs as the `postgres` user (`runuser`): PostgreSQL refuses to run as root.
//!
//! `ATOMSYNC_TEST_POSTGRES=postgres://user@host:port` uses a running server instead (a
//! role that may create databases); `ATOMSYNC_PG_BIN` names the folder of the PostgreSQL
//! binaries (default: the newest `/usr/lib/postgresql/*/bin`, else `initdb` on `PATH`).
//! Each test takes a fresh database of its own ([`Cluster::new_database`]).

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A PostgreSQL server to make test databases on.
pub struct Cluster {
    /// `postgres://USER@127.0.0.1:PORT`, without a database.
    pub base: String,
    bin: Option<PathBuf>,
    host: String,
    port: u16,
    user: String,
    /// A cluster of its own: its folder and how it runs; `None` for an external server.
    own: Option<Own>,
}

/// A cluster this process started: its folder (removed when the process exits, however it
/// exits) and its server, which a test may stop and start again.
struct Own {
    dir: PathBuf,
    data: PathBuf,
    options: Vec<(&'static str, String)>,
    /// The running server; its closing stops it. Before the folder: dropped first.
    server: Option<Watchdog>,
    /// Held until the process exits (or the cluster is dropped): its closing removes the
    /// folder, once the server has stopped.
    _folder: Watchdog,
}

/// A shell that waits for its standard input, a pipe this process holds, to close, then
/// does its job (stops a server, removes a folder).
struct Watchdog(Mutex<(Child, ChildStdin)>);

impl Watchdog {
    fn spawn(script: &str, dir: &Path) -> Result<Watchdog, String> {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        Ok(Watchdog(Mutex::new((child, stdin))))
    }

    /// Lets it do its job now, and waits until it is done.
    fn finish(self) {
        let (mut child, stdin) = self.0.into_inner().unwrap_or_else(|p| p.into_inner());
        drop(stdin);
        let _ = child.wait();
    }
}

/// How long the cluster gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The process's cluster, started on first use. Panics with what to install when no
/// PostgreSQL can be found or started.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| match std::env::var("ATOMSYNC_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Cluster::external(&url),
        _ => Cluster::start(&Settings::testing()).unwrap_or_else(|e| {
            panic!(
                "cannot start a PostgreSQL cluster for the tests: {e}\n\
                 install PostgreSQL (apt-get install -y postgresql; ./test.sh does) or set \
                 ATOMSYNC_TEST_POSTGRES=postgres://user@host:port"
            )
        }),
    })
}

/// How a cluster runs.
pub struct Settings {
    /// `-c name=value` settings given to `postgres`.
    pub options: Vec<(&'static str, String)>,
}

impl Settings {
    /// For tests: durability off (the folder is thrown away), room for many connections.
    pub fn testing() -> Settings {
        Settings {
            options: vec![
                ("fsync", "off".into()),
                ("synchronous_commit", "off".into()),
                ("full_page_writes", "off".into()),
                ("max_connections", "300".into()),
                ("shared_buffers", "64MB".into()),
            ],
        }
    }

    /// As shipped, but for the connection limit: commits are durable (fsync), as in
    /// production, for the benchmark.
    pub fn durable() -> Settings {
        Settings {
            options: vec![("max_connections", "300".into())],
        }
    }
}

impl Cluster {
    fn external(url: &str) -> Cluster {
        let rest = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/');
        let (user, hostport) = rest.split_once('@').unwrap_or(("postgres", rest));
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        Cluster {
            base: format!("postgres://{user}@{hostport}"),
            bin: find_bin().ok(),
            host: host.to_owned(),
            port: port.parse().expect("ATOMSYNC_TEST_POSTGRES: a port number"),
            user: user.split(':').next().unwrap_or(user).to_owned(),
            own: None,
        }
    }

    /// Starts a cluster of its own in a temporary folder, stopped when this process exits.
    pub fn start(settings: &Settings) -> Result<Cluster, String> {
        let bin = find_bin()?;
        let as_root = is_root();
        let dir = new_folder(as_root)?;
        let data = dir.join("data");
        // Run from the cluster's folder: the postgres user may not enter the current one.
        let mut initdb = as_postgres(as_root, &bin.join("initdb"));
        initdb
            .current_dir(&dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data);
        let folder = folder_guard(&dir, &data)?;
        run(&mut initdb)?;
        Cluster::launch(bin, dir, data, folder, free_port()?, settings)
    }

    /// A standby made from a base backup of this cluster (a cluster of its own, listening on
    /// `port`), as this one is now: it follows nothing, so it stays at that point (a replica
    /// that lags) until [`promote`](Cluster::promote)d.
    pub fn standby(&self, port: u16, settings: &Settings) -> Result<Cluster, String> {
        let bin = self.bin.clone().ok_or("no PostgreSQL binaries")?;
        let as_root = is_root();
        let dir = new_folder(as_root)?;
        let data = dir.join("data");
        let folder = folder_guard(&dir, &data)?;
        let mut backup = as_postgres(as_root, &bin.join("pg_basebackup"));
        backup
            .current_dir(&dir)
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            // A fast checkpoint: the default spreads it over minutes.
            .args(["-X", "stream", "--checkpoint=fast", "--no-sync", "-D"])
            .arg(&data);
        run(&mut backup)?;
        run(as_postgres(as_root, Path::new("touch"))
            .current_dir(&dir)
            .arg(data.join("standby.signal")))?;
        Cluster::launch(bin, dir, data, folder, port, settings)
    }

    /// Promotes a standby: it ends recovery on a new timeline and takes writes.
    pub fn promote(&self) -> Result<(), String> {
        match self.psql("postgres", "SELECT pg_promote()")?.as_str() {
            "t" => Ok(()),
            other => Err(format!("pg_promote: {other}")),
        }
    }

    /// Stops the server (fast shutdown), keeping its data.
    pub fn stop_server(&mut self) {
        if let Some(server) = self.own.as_mut().and_then(|own| own.server.take()) {
            server.finish();
        }
    }

    /// Starts the stopped server again on its data and port.
    pub fn start_server(&mut self) -> Result<(), String> {
        let own = self.own.as_mut().ok_or("not a cluster of this process")?;
        let bin = self.bin.as_deref().ok_or("no PostgreSQL binaries")?;
        own.server = Some(serve(bin, own, self.port)?);
        let log = own_log(own);
        self.wait_ready(&log)
    }

    /// The data folder of a cluster of this process (to copy it, or put a copy back).
    pub fn data_dir(&self) -> Option<&Path> {
        self.own.as_ref().map(|own| own.data.as_path())
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `postgres` on `data` under a watchdog, and waits for it.
    fn launch(
        bin: PathBuf,
        dir: PathBuf,
        data: PathBuf,
        folder: Watchdog,
        port: u16,
        settings: &Settings,
    ) -> Result<Cluster, String> {
        let mut own = Own {
            dir,
            data,
            options: settings.options.clone(),
            server: None,
            _folder: folder,
        };
        own.server = Some(serve(&bin, &own, port)?);
        let log = own_log(&own);
        let cluster = Cluster {
            base: format!("postgres://postgres@127.0.0.1:{port}"),
            bin: Some(bin),
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            own: Some(own),
        };
        cluster.wait_ready(&log)?;
        Ok(cluster)
    }

    fn wait_ready(&self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while self.psql("postgres", "SELECT 1").is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!("postgres did not start in time:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// A new empty database; its URL.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "atomsync_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
        format!("{}/{name}", self.base)
    }

    /// Runs `sql` in `database` with psql; its output, or why it failed.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let psql = match &self.bin {
            Some(bin) => bin.join("psql"),
            None => PathBuf::from("psql"),
        };
        let out = Command::new(psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            .args(["-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Runs the PostgreSQL client tool `tool` (`pg_dump`, `pg_restore`, ...) against this
    /// server with `args`; its standard output, or why it failed.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Result<Vec<u8>, String> {
        let program = match &self.bin {
            Some(bin) => bin.join(tool),
            None => PathBuf::from(tool),
        };
        let out = Command::new(program)
            .args([
                "-h",
                &self.host,
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The database name of a URL that [`new_database`](Cluster::new_database) returned.
    pub fn database_of(url: &str) -> &str {
        url.rsplit('/').next().unwrap_or(url)
    }
}

/// A new folder for a cluster, which the postgres user owns when this process is root.
fn new_folder(as_root: bool) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("atomsync-pg-{}-{}", std::process::id(), nanos()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if as_root {
        run(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    Ok(dir)
}

/// Removes `dir` once this process exits (after the server on `data` has stopped).
fn folder_guard(dir: &Path, data: &Path) -> Result<Watchdog, String> {
    let script = format!(
        "cat >/dev/null; n=0; while [ -e {pidfile} ] && [ $n -lt 100 ]; do sleep 0.1; \
         n=$((n+1)); done; rm -rf {dir}",
        pidfile = shell_quote(&data.join("postmaster.pid").display().to_string()),
        dir = shell_quote(&dir.display().to_string()),
    );
    Watchdog::spawn(&script, dir)
}

fn own_log(own: &Own) -> PathBuf {
    own.dir.join("postgres.log")
}

/// Runs `postgres` on `own`'s data and `port` under a watchdog that stops it (fast
/// shutdown: SIGINT to the postmaster itself, as runuser does not pass SIGINT on) once its
/// standard input closes.
fn serve(bin: &Path, own: &Own, port: u16) -> Result<Watchdog, String> {
    let mut postgres = vec![
        bin.join("postgres").display().to_string(),
        "-D".into(),
        own.data.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-c".into(),
        format!("unix_socket_directories={}", own.dir.display()),
    ];
    for (name, value) in &own.options {
        postgres.push("-c".into());
        postgres.push(format!("{name}={value}"));
    }
    let postgres = postgres
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let runner = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "{runner}{postgres} >>{log} 2>&1 & pid=$!; cat >/dev/null; \
         kill -INT \"$(head -n 1 {pidfile})\" 2>/dev/null || kill $pid; wait $pid",
        log = shell_quote(&own_log(own).display().to_string()),
        pidfile = shell_quote(&own.data.join("postmaster.pid").display().to_string()),
    );
    Watchdog::spawn(&script, &own.dir)
}

/// The folder of the PostgreSQL binaries.
fn find_bin() -> Result<PathBuf, String> {
    if let Ok(bin) = std::env::var("ATOMSYNC_PG_BIN")
        && !bin.is_empty()
    {
        return Ok(PathBuf::from(bin));
    }
    // Debian installs each major version in its own folder: take the newest.
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
        .ok_or_else(|| "no PostgreSQL binaries (initdb, postgres) found".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program` run as the `postgres` user when this process is root.
fn as_postgres(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut err = String::new();
        let _ = out.stderr.as_slice().read_to_string(&mut err);
        Err(format!("{cmd:?}: {}", err.trim()))
    }
}

/// A loopback port nothing listens on now (for a cluster started later).
pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
