//! Running the real `atomsync` binary: found beside this test executable (it belongs to
//! `client-rs`, so cargo gives its path only to that package's tests; `cargo test
//! --workspace` builds it first because `client-rs` has tests of its own, and `test.sh`
//! builds every binary), checked to be newer than its sources, run with a deadline.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::common::TestServer;

/// How long one command may run before the test fails: an export or import of a few
/// thousand documents takes well under a second; a hang must not hang the suite.
const DEADLINE: Duration = Duration::from_secs(60);

/// The `atomsync` binary of this build.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/integration-<hash> → target/<profile>/atomsync
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join(format!("atomsync{}", std::env::consts::EXE_SUFFIX));
    let hint = "build it with `cargo build -p atomsync-client --bin atomsync` \
                (`cargo test --workspace` and ./test.sh do)";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {hint}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest = ["client-rs/src", "proto/src"]
        .iter()
        .map(|dir| newest_file(&root.join(dir)))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    assert!(
        built >= newest,
        "{} is older than its sources: {hint}",
        bin.display()
    );
    bin
}

fn newest_file(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_file(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(time);
    }
    newest
}

/// What a finished command left.
#[derive(Debug)]
pub struct Ran {
    /// The exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Asserts success and returns standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:#?}");
        &self.stdout
    }

    /// Asserts the exit status and that standard error is one line holding `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "{self:#?}");
        let line = self.stderr.trim_end();
        assert!(
            !line.contains('\n') && line.starts_with("atomsync: ") && line.contains(needle),
            "want one line with {needle:?}: {self:#?}"
        );
    }

    /// Standard output's lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// A command: `atomsync --server URL ARGS...`, with no `ATOMSYNC_*` from the test's own
/// environment.
pub struct Cli {
    command: Command,
    stdin: Option<Vec<u8>>,
}

impl Cli {
    /// `atomsync` against `server`.
    pub fn new(server: &TestServer, args: &[&str]) -> Cli {
        let mut cli = Cli::bare(args);
        cli.command.args(["--server", &server.url("/sync")]);
        cli
    }

    /// `atomsync ARGS...`, with no server given.
    pub fn bare(args: &[&str]) -> Cli {
        let mut command = Command::new(binary());
        command.args(args);
        for var in [
            "ATOMSYNC_SERVER",
            "ATOMSYNC_TOKEN",
            "ATOMSYNC_ADMIN_TOKEN",
            "ATOMSYNC_CA_CERT",
        ] {
            command.env_remove(var);
        }
        Cli {
            command,
            stdin: None,
        }
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Cli {
        self.command.env(name, value);
        self
    }

    /// Feeds standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cli {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs to the end (at most [`DEADLINE`]).
    pub fn run(mut self) -> Ran {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn atomsync");
        let input = self.stdin.take().unwrap_or_default();
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let (stdout, stderr) = (collect(child.stdout.take()), collect(child.stderr.take()));
        let code = wait(&mut child, DEADLINE);
        let _ = writer.join();
        Ran {
            code,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// Starts it and hands its standard output over line by line (for `watch`).
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn atomsync");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = collect(child.stderr.take());
        Running {
            child,
            lines,
            stderr: Some(stderr),
        }
    }
}

fn collect(stream: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_string(&mut text);
        }
        text
    })
}

fn wait(child: &mut Child, deadline: Duration) -> Option<i32> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("atomsync did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A command still running, its output read as it comes.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// The next line of standard output, within `timeout`.
    #[track_caller]
    pub fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no line from atomsync within {timeout:?}: {e}"))
    }

    /// A line, if one comes within `timeout`.
    pub fn try_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Sends SIGINT (Ctrl-C) and returns the exit status and standard error.
    pub fn interrupt(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let code = wait(&mut self.child, Duration::from_secs(10));
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (code, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
