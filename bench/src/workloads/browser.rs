//! Browser: the browser client (`client-js`) in headless Chromium against the server under
//! test, with its baselines measured in the same page, the same run:
//! - first sync of a group of documents into IndexedDB (`syncedAtom(group)` until `ready`),
//!   beside pulling the same pages over HTTP, decoding them and putting every record in
//!   one IndexedDB transaction (the least any client must do);
//! - `swap` of one key on the synced atom, until stored (strict durability), beside one
//!   record put in one IndexedDB transaction of the same durability; and until the view
//!   changed, which is what a page's code waits for.
//!
//! The page is driven by `bench/browser/driver.mjs` (Node, with playwright-core from
//! `client-js/node_modules`), which runs on the load core like every load generator here.
//! Without Chromium, Node or playwright-core, the rows say so ("skipped: ...") and the rest
//! of the run goes on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atomsync_proto::Encoding;

use super::{Ctx, Target};
use crate::data;
use crate::error::{BenchError, Result};
use crate::http;
use crate::plan::Plan;
use crate::report::{RowSpec, Target as Goal};

/// The group the browser syncs.
const GROUP: &str = "browser-sync";
/// The most one repetition may take (a first sync of 50,000 documents takes seconds).
const REP_LIMIT: Duration = Duration::from_secs(180);

/// The rows of this workload, for `rows::specs`.
pub fn rows(plan: &Plan) -> Vec<RowSpec> {
    let docs = plan.browser_docs;
    let row =
        |metric: String, unit, value: &str, baseline: &str, key: Option<&str>, goal| RowSpec {
            workload: "Browser",
            metric,
            unit,
            value: value.to_owned(),
            baseline: baseline.to_owned(),
            baseline_key: key.map(str::to_owned),
            target: goal,
        };
    vec![
        row(
            format!("first sync of {docs} documents into IndexedDB (until ready)"),
            "docs/s",
            "browser.sync",
            "pull + decode + one-transaction put of all records",
            Some("browser.sync.base"),
            // At most 1.5 times the baseline's time: at least 1/1.5 of its rate, rounded up.
            Some(Goal::RatioAtLeast(0.667)),
        ),
        row(
            format!("swap of one key, atom of {docs} documents, until stored"),
            "ms",
            "browser.swap",
            "one-record IndexedDB put, strict",
            Some("browser.swap.base"),
            Some(Goal::AtMost(20.0)),
        ),
        row(
            format!("swap of one key, atom of {docs} documents, until the view changed"),
            "ms",
            "browser.swap.view",
            "",
            None,
            None,
        ),
    ]
}

/// Every measurement key, for rows that must say why they have no value.
const KEYS: [&str; 5] = [
    "browser.sync",
    "browser.sync.base",
    "browser.swap",
    "browser.swap.base",
    "browser.swap.view",
];

/// Writes the documents (untimed), then runs every repetition in one browser.
pub async fn run(ctx: &mut Ctx, target: &Target) {
    let driver = match prerequisites() {
        Ok(driver) => driver,
        Err(reason) => {
            eprintln!("Browser: {reason}");
            for key in KEYS {
                ctx.results.fail(key, &reason);
            }
            return;
        }
    };
    eprintln!("Browser setup: {} documents", ctx.plan.browser_docs);
    if let Err(e) = setup(ctx, target).await {
        for key in KEYS {
            ctx.results.fail(key, &format!("setup: {e}"));
        }
        return;
    }
    ctx.settle().await;
    let (plan, dir, base) = (ctx.plan.clone(), ctx.dir.clone(), target.base.clone());
    let outcome = tokio::task::spawn_blocking(move || drive(&driver, &plan, &dir, &base))
        .await
        .map_err(|e| BenchError::Setup(format!("the browser driver thread failed: {e}")))
        .and_then(|r| r);
    match outcome {
        Ok(reps) => {
            for rep in reps {
                let docs = ctx.plan.browser_docs as f64;
                ctx.outcome("browser.sync", Ok(docs / (rep.sync_ms / 1000.0)));
                ctx.outcome("browser.sync.base", Ok(docs / (rep.base_sync_ms / 1000.0)));
                ctx.outcome("browser.swap", Ok(rep.swap_ms));
                ctx.outcome("browser.swap.base", Ok(rep.base_put_ms));
                ctx.outcome("browser.swap.view", Ok(rep.swap_view_ms));
            }
        }
        Err(e) => {
            eprintln!("Browser: {e}");
            for key in KEYS {
                ctx.results.fail(key, &e.to_string());
            }
        }
    }
}

/// The driver script, once Chromium, Node and playwright-core are known to be there; else
/// why the workload is skipped.
fn prerequisites() -> std::result::Result<PathBuf, String> {
    let chromium = chromium();
    if !chromium.is_file() {
        return Err(format!(
            "skipped: no Chromium at {} (apt-get install chromium, or set CHROMIUM_BIN)",
            chromium.display()
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Err("skipped: node is not available".into());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let playwright = root.join("../client-js/node_modules/playwright-core");
    if !playwright.is_dir() {
        return Err(format!(
            "skipped: {} is missing (run npm ci in client-js)",
            playwright.display()
        ));
    }
    Ok(root.join("browser/driver.mjs"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Writes the group the browser syncs, in the largest pushes the server takes.
async fn setup(ctx: &Ctx, target: &Target) -> Result<()> {
    let client = http::client()?;
    let changes = data::changes("browser", 0..ctx.plan.browser_docs, |_| 0);
    for body in data::push_bodies(GROUP, &changes, 10_000, Encoding::MsgPack) {
        let outcome = http::push(&client, &target.base, body, Encoding::MsgPack).await?;
        if outcome.conflicts > 0 {
            return Err(BenchError::Protocol(format!(
                "browser setup: {} conflicts on a new group",
                outcome.conflicts
            )));
        }
    }
    Ok(())
}

/// One repetition's figures, as the driver prints them (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rep {
    sync_ms: f64,
    base_sync_ms: f64,
    swap_ms: f64,
    swap_view_ms: f64,
    base_put_ms: f64,
}

/// Runs the driver for every repetition and reads its lines.
fn drive(driver: &Path, plan: &Plan, dir: &Path, base: &str) -> Result<Vec<Rep>> {
    let limit = REP_LIMIT * plan.reps as u32;
    let out_path = dir.join("browser-driver.out");
    let out = std::fs::File::create(&out_path).map_err(|e| BenchError::io("driver output", e))?;
    let mut child = Command::new("node")
        .arg(driver)
        .args(["--server", base, "--group", GROUP])
        .args(["--docs", &plan.browser_docs.to_string()])
        .args(["--reps", &plan.reps.to_string()])
        .args(["--swaps", &plan.browser_swaps.to_string()])
        .args(["--deadline-ms", &limit.as_millis().to_string()])
        .env("CHROMIUM_BIN", chromium())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BenchError::io("starting the browser driver", e))?;
    // The driver stops itself at its deadline; this one is for a driver that hangs anyway.
    let deadline = Instant::now() + limit + Duration::from_secs(30);
    let status = loop {
        match child
            .try_wait()
            .map_err(|e| BenchError::io("browser driver", e))?
        {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Timeout("the browser driver".into()));
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let text =
        std::fs::read_to_string(&out_path).map_err(|e| BenchError::io("driver output", e))?;
    if !status.success() {
        return Err(BenchError::Setup(format!(
            "the browser driver failed ({status}); its errors are above"
        )));
    }
    let reps = text.lines().map(parse_rep).collect::<Result<Vec<_>>>()?;
    if reps.len() != plan.reps {
        return Err(BenchError::Protocol(format!(
            "the browser driver reported {} of {} repetitions",
            reps.len(),
            plan.reps
        )));
    }
    Ok(reps)
}

/// One line of the driver's output.
fn parse_rep(line: &str) -> Result<Rep> {
    let bad = |what: String| BenchError::Protocol(format!("browser driver: {what} in {line:?}"));
    let json: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
    let field = |name: &str| {
        json[name]
            .as_f64()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| bad(format!("no {name}")))
    };
    Ok(Rep {
        sync_ms: field("sync_ms")?,
        base_sync_ms: field("base_sync_ms")?,
        swap_ms: field("swap_ms")?,
        swap_view_ms: field("swap_view_ms")?,
        base_put_ms: field("base_put_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_line_is_read_and_checked() {
        let rep = parse_rep(
            r#"{"rep":0,"docs":10,"sync_ms":2.5,"base_sync_ms":2,"swap_ms":1,"swap_view_ms":0.5,"base_put_ms":0.25}"#,
        )
        .unwrap();
        assert_eq!(rep.sync_ms, 2.5);
        assert_eq!(rep.base_put_ms, 0.25);
        assert!(parse_rep(r#"{"sync_ms":1}"#).is_err());
        assert!(parse_rep(r#"{"sync_ms":-1,"base_sync_ms":2,"swap_ms":1,"swap_view_ms":0.5,"base_put_ms":0.25}"#).is_err());
        assert!(parse_rep("not json").is_err());
    }

    #[test]
    fn every_row_names_a_key_this_workload_records() {
        for row in rows(&Plan::quick()) {
            assert!(KEYS.contains(&row.value.as_str()), "{}", row.value);
            if let Some(key) = &row.baseline_key {
                assert!(KEYS.contains(&key.as_str()), "{key}");
            }
        }
    }
}
