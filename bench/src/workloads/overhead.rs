//! What operability costs on the push path: W1 (MessagePack) and W2 (one client, and the
//! concurrent clients) against three servers of the same durability, started for this
//! workload:
//!
//! - `bare`: `[metrics] enabled = false`, no access line per request;
//! - `metrics`: metrics on (the default), no access line;
//! - `logged`: metrics on and an access line per request (`--log info`, the default).
//!
//! The machine is shared, so rates drift by tens of percent between minutes, far more than
//! what is measured here. Hence paired rounds: a round runs one short phase on each server
//! back to back (the order rotating from round to round), and yields the costs of that
//! round, `1 - metrics / bare` and `1 - logged / metrics`, in percent. The rows are the
//! medians of those per-round costs over [`Plan::overhead_rounds`](crate::plan::Plan)
//! rounds: a drift slower than a round cancels out, and a burst of noise in one round is
//! one sample of many. 0 % is free; a negative cost is noise.

use std::path::Path;
use std::time::Duration;

use atomsync_proto::Encoding;

use super::write::{w1_rate, w2_concurrent, w2_sequential};
use super::{Ctx, Target};
use crate::error::Result;
use crate::report::Results;
use crate::server::{ACCESS_LOG, AtomsyncServer, Durability, QUIET_ACCESS};

/// The servers compared, by name: label, extra config, log filter.
pub const SERVERS: [(&str, &str, &str); 3] = [
    ("bare", "[metrics]\nenabled = false\n", QUIET_ACCESS),
    ("metrics", "", QUIET_ACCESS),
    ("logged", "", ACCESS_LOG),
];

/// The phases measured on each server, by name.
pub const PHASES: [&str; 3] = ["w1", "w2seq", "w2conc"];

/// The costs a round yields: its name, the server measured, the server it is compared with.
pub const COSTS: [(&str, &str, &str); 2] = [
    ("metrics_cost", "metrics", "bare"),
    ("log_cost", "logged", "metrics"),
];

/// Each phase of a round is this share of the plan's W1/W2 counts: short, so that the
/// three servers of a round run close together in time.
const ROUND_SHARE: u64 = 4;

/// The pause (sync, settle) before each phase of a round.
const ROUND_SETTLE: Duration = Duration::from_millis(200);

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

/// Every round; records each phase's rate per server and its costs per round.
pub async fn run(
    ctx: &mut Ctx,
    servers: &[(&'static str, AtomsyncServer)],
    durability: Durability,
) {
    let d = durability.name();
    let mut short = Ctx {
        plan: ctx.plan.clone(),
        results: Results::default(),
        dir: ctx.dir.clone(),
    };
    short.plan.w1_changes = (ctx.plan.w1_changes / ROUND_SHARE).max(100);
    short.plan.w2_sequential = (ctx.plan.w2_sequential / ROUND_SHARE).max(10);
    short.plan.w2_concurrent = (ctx.plan.w2_concurrent / ROUND_SHARE).max(32);
    short.plan.settle = ROUND_SETTLE.min(ctx.plan.settle);
    for round in 0..ctx.plan.overhead_rounds {
        for phase in PHASES {
            let mut rates = Vec::new();
            for i in 0..servers.len() {
                let (name, server) = &servers[(i + round) % servers.len()];
                let target = Target {
                    base: server.url(""),
                    addr: server.addr,
                    durability,
                    db: Some(server.db.clone()),
                };
                let group = format!("ovh-{phase}-{name}-{round}");
                let rate = match phase {
                    "w1" => w1_rate(&short, &target, &group, Encoding::MsgPack).await,
                    "w2seq" => w2_sequential(&short, &target, &group).await,
                    _ => w2_concurrent(&short, &target, &group).await,
                };
                if let Ok(rate) = &rate {
                    rates.push((*name, *rate));
                }
                ctx.outcome(&key(d, phase, name), rate);
            }
            let rate_of = |name: &str| rates.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
            for (cost, measured, against) in COSTS {
                let value = match (rate_of(measured), rate_of(against)) {
                    (Some(m), Some(a)) if a > 0.0 => Ok((1.0 - m / a) * 100.0),
                    _ => Err(crate::error::BenchError::Setup(format!(
                        "no rate of {measured} or {against} in this round"
                    ))),
                };
                ctx.outcome(&key(d, phase, cost), value);
            }
        }
    }
}

/// The measurement key of `what` (a server's rate, or a cost) in `phase`, durability `d`.
pub fn key(d: &str, phase: &str, what: &str) -> String {
    format!("ovh.{d}.{phase}.{what}")
}
