//! The benchmark's smoke run: `atomsync-bench --quick --json` must start the real server
//! (built by the bench itself through cargo when missing or stale, since `CARGO` is set
//! under `cargo test`), run every workload (W1..W7, the clients', Overhead) and its
//! baseline, and print one well-formed JSON line per metric, each with a value, and
//! (`--plot`) both charts. It checks that the bench works, never how fast.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole smoke run, including a first build of the server, must end within this.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[test]
fn quick_run_prints_every_workload() {
    let charts = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_atomsync-bench"))
        .args(["--quick", "--json", "--plot"])
        .arg(charts.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start atomsync-bench");
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("atomsync-bench --quick ran past {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}\n{stderr}", output.status);

    let mut workloads = BTreeSet::new();
    for line in stdout.lines() {
        let row: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in [
            "workload",
            "metric",
            "value",
            "unit",
            "baseline",
            "baseline_value",
            "ratio",
        ] {
            assert!(row.get(field).is_some(), "no {field:?} in {line}");
        }
        let workload = row["workload"]
            .as_str()
            .expect("workload is a string")
            .to_owned();
        let skipped = row["error"]
            .as_str()
            .unwrap_or_default()
            .contains("skipped");
        // Every workload ran: each row has its number (or, for the browser, says why not).
        assert!(
            row["value"].is_number() || (workload == "Browser" && skipped),
            "no value in {line}\n{stderr}"
        );
        let baseline = row["baseline"].as_str().expect("baseline is a string");
        if workload == "Browser" && skipped {
            // Without Chromium (./test.sh --no-browser), the browser rows say so.
        } else if baseline.contains("pouchdb") {
            // --quick skips the peer (it needs npm and time); the row must say so.
            let error = row["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("skipped"),
                "peer row without its reason: {line}"
            );
        } else if !baseline.is_empty() {
            assert!(
                row["baseline_value"].is_number(),
                "no baseline value in {line}\n{stderr}"
            );
        }
        workloads.insert(workload);
    }
    let mut expected: BTreeSet<String> = (1..=7).map(|n| format!("W{n}")).collect();
    expected.insert("Browser".into());
    expected.insert("client".to_owned());
    expected.insert("Overhead".into());
    assert_eq!(workloads, expected, "{stdout}");
    // --plot wrote both charts, with the rows in them.
    for (file, needle) in [
        ("throughput.svg", "W1 · batched push"),
        ("latency.svg", "W4 · push-to-delivery"),
    ] {
        let svg = std::fs::read_to_string(charts.path().join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}\n{stderr}"));
        assert!(
            svg.starts_with("<svg") && svg.contains(needle),
            "{file}: {svg}"
        );
    }
    // The table (on stderr with --json) shows them too.
    for workload in &expected {
        assert!(
            stderr.contains(&format!("| {workload} ")),
            "the table lacks {workload}\n{stderr}"
        );
    }
}
