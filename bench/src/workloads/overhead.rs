//! What operability costs on the push path: W1 (MessagePack) and W2 (one client, and the
//! concurrent clients) against three servers of the same durability, started for this
//! workload and measured in turn in every repetition (the order rotating, so that drift
//! hits each alike):
//!
//! - `bare`: `[metrics] enabled = false`, no access line per request;
//! - `metrics`: metrics on (the default), no access line;
//! - `logged`: metrics on and an access line per request (`--log info`, the default).
//!
//! Rows: `metrics / bare` (what counting costs) and `logged / metrics` (what the access
//! log costs on top), ratios of rates: 1.0 is free.

use std::path::Path;

use atomsync_proto::Encoding;

use super::write::{w1_rate, w2_concurrent, w2_sequential};
use super::{Ctx, Target};
use crate::error::Result;
use crate::server::{ACCESS_LOG, AtomsyncServer, Durability, QUIET_ACCESS};

/// The servers compared, by name: label, extra config, log filter.
pub const SERVERS: [(&str, &str, &str); 3] = [
    ("bare", "[metrics]\nenabled = false\n", QUIET_ACCESS),
    ("metrics", "", QUIET_ACCESS),
    ("logged", "", ACCESS_LOG),
];

/// The phases measured on each server, by name.
pub const PHASES: [&str; 3] = ["w1", "w2seq", "w2conc"];

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

/// One repetition: every phase on every server, the servers' order rotated by `rep`.
pub async fn run(
    ctx: &mut Ctx,
    servers: &[(&'static str, AtomsyncServer)],
    durability: Durability,
    rep: usize,
) {
    let d = durability.name();
    for phase in PHASES {
        for i in 0..servers.len() {
            let (name, server) = &servers[(i + rep) % servers.len()];
            let target = Target {
                base: server.url(""),
                addr: server.addr,
                durability,
                db: Some(server.db.clone()),
            };
            let group = format!("ovh-{phase}-{name}-{rep}");
            let rate = match phase {
                "w1" => w1_rate(ctx, &target, &group, Encoding::MsgPack).await,
                "w2seq" => w2_sequential(ctx, &target, &group).await,
                _ => w2_concurrent(ctx, &target, &group).await,
            };
            ctx.outcome(&key(d, phase, name), rate);
        }
    }
}

/// The measurement key of `phase` on server `name` in durability `d`.
pub fn key(d: &str, phase: &str, name: &str) -> String {
    format!("ovh.{d}.{phase}.{name}")
}
