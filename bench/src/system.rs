//! The machine around the benchmark: CPU pinning, the file-descriptor limit, `sync` and
//! settling before a timed phase, a process's resident memory, and finding the server binary.
//!
//! Everything here goes through ordinary tools (`taskset`, `prlimit`, `sync`, `/proc`) so
//! that the crate needs no `unsafe` and no extra dependency; where a tool is missing the
//! run goes on unpinned or with the limit it has, and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{BenchError, Result};

/// The core the servers under test (and the baselines' server processes) run on.
pub const SERVER_CORE: usize = 0;
/// The core the load generator, and the in-process raw-SQLite baselines, run on.
pub const BENCH_CORE: usize = 1;

/// True when `taskset` exists and the machine has both cores.
pub fn can_pin() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores > BENCH_CORE && tool_works("taskset", &["--version"])
}

fn tool_works(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pins every thread of this process to [`BENCH_CORE`]. Call before any thread starts:
/// threads inherit the affinity of the one that spawns them.
pub fn pin_self() -> Result<()> {
    let pid = std::process::id().to_string();
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &BENCH_CORE.to_string(), &pid])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| BenchError::io("taskset", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Setup(format!(
            "taskset -p on the bench exited with {status}"
        )))
    }
}

/// A command that runs `program` pinned to `core` when pinning works, else unpinned.
pub fn pinned_command(program: &Path, core: Option<usize>) -> Command {
    match core {
        Some(core) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(core.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Raises the soft open-files limit of process `pid` to its hard limit; returns the limit
/// in force afterwards. 10,000 WebSocket connections need 10,000 descriptors on each side.
pub fn raise_nofile(pid: u32) -> Result<u64> {
    let pid = pid.to_string();
    let hard = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output",
            "HARD",
        ])
        .output()
        .map_err(|e| BenchError::io("prlimit", e))?;
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    if hard != "unlimited" && hard.parse::<u64>().is_err() {
        return Err(BenchError::Setup(format!(
            "prlimit printed {hard:?} as the hard open-files limit"
        )));
    }
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .status()
        .map_err(|e| BenchError::io("prlimit", e))?;
    if !status.success() {
        return Err(BenchError::Setup(format!(
            "prlimit --nofile={hard} exited with {status}"
        )));
    }
    nofile_limit(&pid)
}

fn nofile_limit(pid: &str) -> Result<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .map_err(|e| BenchError::io("reading /proc/PID/limits", e))?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .ok_or_else(|| BenchError::Setup("no open-files limit in /proc/PID/limits".into()))
}

/// Flushes dirty pages (`sync`) and waits `settle`, so that one phase's write-back does not
/// land in the next phase's timing.
pub async fn sync_and_settle(settle: Duration) {
    let _ = tokio::task::spawn_blocking(|| Command::new("sync").status()).await;
    tokio::time::sleep(settle).await;
}

/// The resident memory of process `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn vm_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// The peak resident memory of process `pid` so far, in KiB (`VmHWM`).
pub fn vm_hwm_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM")
}

/// The CPU time process `pid` has used so far, user and system, in seconds (fields 14 and
/// 15 of `/proc/PID/stat`, in the kernel's clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| BenchError::io(format!("reading /proc/{pid}/stat"), e))?;
    // The command name (field 2) may hold spaces; the fields after it are numbers.
    let ticks: Option<u64> = stat.rsplit_once(')').and_then(|(_, rest)| {
        let mut fields = rest.split_whitespace().skip(11);
        Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
    });
    ticks
        .map(|ticks| ticks as f64 / 100.0)
        .ok_or_else(|| BenchError::Setup(format!("no CPU times in /proc/{pid}/stat")))
}

/// A `kB` field of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| BenchError::io(format!("reading /proc/{pid}/status"), e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| BenchError::Setup(format!("no {field} in /proc/{pid}/status")))
}

/// Finds the `atomsync-server` binary to benchmark:
/// 1. `ATOMSYNC_SERVER_BIN` when set;
/// 2. else, when started by cargo (`cargo run`, `cargo test`: `CARGO` is set), builds it
///    with the same profile as this binary, so that a stale server is never measured;
/// 3. then takes `atomsync-server` beside this binary (both live in `target/<profile>/`).
pub fn server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ATOMSYNC_SERVER_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(BenchError::Setup(format!(
                "ATOMSYNC_SERVER_BIN={} is not a file",
                path.display()
            )))
        };
    }
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
    let dir = exe
        .parent()
        .ok_or_else(|| BenchError::Setup(format!("{} has no parent folder", exe.display())))?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        build_server(Path::new(&cargo), dir)?;
    }
    let server = dir.join(format!("atomsync-server{}", std::env::consts::EXE_SUFFIX));
    if server.is_file() {
        Ok(server)
    } else {
        Err(BenchError::Setup(format!(
            "{} is missing: build it first (cargo build --release --bin atomsync-server) or set ATOMSYNC_SERVER_BIN",
            server.display()
        )))
    }
}

/// `cargo build --bin atomsync-server` in the profile whose folder `dir` is.
fn build_server(cargo: &Path, dir: &Path) -> Result<()> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| BenchError::Setup("the bench crate has no workspace folder".into()))?;
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--quiet", "--bin", "atomsync-server"]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
        None => {
            return Err(BenchError::Setup(format!(
                "cannot tell the cargo profile of {}",
                dir.display()
            )));
        }
    }
    // The server must land beside this binary, wherever this target folder is.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let status = cmd
        .status()
        .map_err(|e| BenchError::io("cargo build --bin atomsync-server", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Setup(format!(
            "cargo build --bin atomsync-server exited with {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_resident_memory_is_readable() {
        let kib = vm_rss_kib(std::process::id()).unwrap();
        assert!(kib > 100, "{kib} KiB");
    }
}
