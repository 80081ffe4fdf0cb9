//! What operability costs on the push path: W1's pushes (100 changes, MessagePack) and
//! W2's (one change; one client, and bursts of the concurrent clients) against three
//! servers of the same durability, started for this workload:
//!
//! - `bare`: `[metrics] enabled = false`, no access line per request;
//! - `metrics`: metrics on (the default), no access line;
//! - `logged`: metrics on and an access line per request (`--log info`, the default).
//!
//! The machine is shared: rates drift by tens of percent from one second to the next,
//! far more than what is measured here, so whole phases run one after the other cannot
//! tell a few percent apart. So the servers are interleaved **push by push**: each step
//! sends one push (or one burst of concurrent pushes) to each server in turn, the order
//! rotating, and times it. Drift then hits the three alike; the per-server medians of those
//! times give the cost: `metrics / bare - 1` and `logged / metrics - 1`, in percent of
//! the time of a push. 0 % is free; a negative cost is noise.

use std::path::Path;
use std::time::Instant;

use atomsync_proto::Encoding;
use bytes::Bytes;

use super::Ctx;
use crate::data;
use crate::error::{BenchError, Result};
use crate::http;
use crate::report::median;
use crate::server::{ACCESS_LOG, AtomsyncServer, Durability, QUIET_ACCESS};

/// The servers compared, by name: label, extra config, log filter.
pub const SERVERS: [(&str, &str, &str); 3] = [
    ("bare", "[metrics]\nenabled = false\n", QUIET_ACCESS),
    ("metrics", "", QUIET_ACCESS),
    ("logged", "", ACCESS_LOG),
];

/// The phases: name, changes per push, pushes at once (one per client).
pub const PHASES: [(&str, usize, usize); 3] = [("w1", 100, 1), ("w2seq", 1, 1), ("w2conc", 1, 16)];

/// The costs reported: name, the server measured, the server it is compared with.
pub const COSTS: [(&str, &str, &str); 2] = [
    ("metrics_cost", "metrics", "bare"),
    ("log_cost", "logged", "metrics"),
];

/// Starts the three servers of `durability`.
pub fn start(
    bin: &Path,
    dir: &Path,
    durability: Durability,
    core: Option<usize>,
) -> Result<Vec<(&'static str, AtomsyncServer)>> {
    SERVERS
        .iter()
        .map(|&(name, toml, log)| {
            let label = format!("-{name}");
            AtomsyncServer::start_with(bin, dir, durability, core, &label, toml, log)
                .map(|server| (name, server))
        })
        .collect()
}

/// One repetition of every phase; records each server's median push time (µs) and the
/// costs.
pub async fn run(
    ctx: &mut Ctx,
    servers: &[(&'static str, AtomsyncServer)],
    durability: Durability,
    rep: usize,
) {
    let d = durability.name();
    for (phase, per_push, at_once) in PHASES {
        // As many steps as W2 sends single-change pushes (W1: a tenth, each 100 changes).
        let steps = if per_push > 1 {
            (ctx.plan.w1_changes as usize / per_push / 2).max(5)
        } else {
            (ctx.plan.w2_sequential as usize / 2).max(10)
        };
        ctx.settle().await;
        match interleaved(servers, phase, per_push, at_once, steps, rep).await {
            Ok(times) => {
                for (name, time) in &times {
                    ctx.outcome(&key(d, phase, name), Ok(*time));
                }
                let time_of = |name: &str| times.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
                for (cost, measured, against) in COSTS {
                    let value = match (time_of(measured), time_of(against)) {
                        (Some(m), Some(a)) if a > 0.0 => Ok((m / a - 1.0) * 100.0),
                        _ => Err(BenchError::Setup(format!(
                            "no time of {measured} or {against}"
                        ))),
                    };
                    ctx.outcome(&key(d, phase, cost), value);
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for (name, _, _) in SERVERS {
                    ctx.results.fail(&key(d, phase, name), &reason);
                }
                for (cost, _, _) in COSTS {
                    ctx.outcome(&key(d, phase, cost), Err(BenchError::Setup(reason.clone())));
                }
            }
        }
    }
}

/// `steps` steps; in each, `at_once` pushes of `per_push` new changes go to each server in
/// turn (the order rotating), timed. The median time of a step per server, in µs.
async fn interleaved(
    servers: &[(&'static str, AtomsyncServer)],
    phase: &str,
    per_push: usize,
    at_once: usize,
    steps: usize,
    rep: usize,
) -> Result<Vec<(&'static str, f64)>> {
    let encoding = Encoding::MsgPack;
    // Room for every connection of a burst to stay open from one step to the next.
    let _ = http::client()?; // installs the TLS provider reqwest wants, as the bench does
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(2 * at_once)
        .build()?;
    // Every server gets the same bodies: first writes of new keys, in a group of its own.
    let group = format!("ovh-{phase}-{rep}");
    let changes = data::changes(phase, 0..(steps * at_once * per_push) as u64, |_| 0);
    let bodies: Vec<Bytes> = data::push_bodies(&group, &changes, per_push, encoding);
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(steps); servers.len()];
    for (step, burst) in bodies.chunks(at_once).enumerate() {
        for i in 0..servers.len() {
            let which = (i + step) % servers.len();
            let base = servers[which].1.url("");
            let started = Instant::now();
            let pushes = burst
                .iter()
                .map(|body| http::push(&client, &base, body.clone(), encoding));
            for outcome in futures_util::future::join_all(pushes).await {
                let outcome = outcome?;
                if outcome.conflicts > 0 {
                    return Err(BenchError::Protocol(format!(
                        "{} first writes answered as conflicts",
                        outcome.conflicts
                    )));
                }
            }
            times[which].push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(servers
        .iter()
        .zip(times)
        .map(|((name, _), t)| (*name, median(&t)))
        .collect())
}

/// The measurement key of `what` (a server's median push time, or a cost) in `phase`,
/// durability `d`.
pub fn key(d: &str, phase: &str, what: &str) -> String {
    format!("ovh.{d}.{phase}.{what}")
}
