//! Scale-out: the same loads on three setups, in `full` durability, in one run:
//! - `sqlite`: one server on SQLite (the default backend), the baseline;
//! - `pg1`: one server on PostgreSQL;
//! - `pg2`: two servers on one PostgreSQL database, the load spread over both.
//!
//! The loads, each on a new group:
//! - batched pushes: 100 changes a request, 2 clients (one per instance on `pg2`);
//! - single-change pushes: W2's 16 concurrent clients, spread round-robin over the instances;
//! - push-to-delivery latency (W4's measure) at each W4 rate, one subscriber: the writer on
//!   the first instance, the subscriber on the last, so that on `pg2` every delivery crosses
//!   instances (commit, `NOTIFY`, the other instance reads the documents and streams them).
//!
//! PostgreSQL is a throwaway cluster the bench starts (`tests/support/postgres.rs`) with
//! durable settings (fsync and `synchronous_commit` on), removed when the bench exits. The
//! servers are pinned to the server core like the others; PostgreSQL is not (in production
//! it has a machine of its own), so on a 2-core machine every setup shares two cores with
//! the load generator: the figures say what PostgreSQL costs beside SQLite and what crossing
//! instances adds, not how far two machines scale.

use std::path::Path;

use super::{Ctx, stream, write};
use crate::error::BenchError;
use crate::server::{AtomsyncServer, Durability};

#[path = "../../../tests/support/postgres.rs"]
mod cluster;

/// The setups, by the name in their measurement keys.
pub const SETUPS: [&str; 3] = ["sqlite", "pg1", "pg2"];

/// Every measurement key of the workload, for rows and for failures.
pub fn keys(ctx: &Ctx) -> Vec<String> {
    let mut keys = Vec::new();
    for setup in SETUPS {
        keys.extend([
            format!("scale.{setup}.batched"),
            format!("scale.{setup}.single"),
        ]);
        for rate in &ctx.plan.w4_rates {
            keys.extend(
                ["p50", "p99", "max", "lost"].map(|s| format!("scale.{setup}.r{rate}.{s}")),
            );
        }
    }
    keys
}

/// Starts the cluster and the servers, then runs every load on every setup, each
/// repetition going through the setups in turn.
pub async fn run(ctx: &mut Ctx, bin: &Path, core: Option<usize>) {
    // The cluster stops when `_pg` drops, after the servers (declared after it) are killed.
    let (_pg, servers) = match start(ctx, bin, core).await {
        Ok(started) => started,
        Err(e) => {
            let reason = format!("setup: {e}");
            eprintln!("Scale cannot run: {reason}");
            for key in keys(ctx) {
                ctx.results.fail(&key, &reason);
            }
            return;
        }
    };
    for rep in 0..ctx.plan.reps {
        for (setup, servers) in SETUPS.iter().zip(&servers) {
            eprintln!("Scale {setup}, repetition {}", rep + 1);
            let bases: Vec<String> = servers.iter().map(|s| s.url("")).collect();
            let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
            let group = format!("scale-batched-{setup}-{rep}");
            let batched =
                write::spread(ctx, &bases, &group, 2, ctx.plan.w1_changes, write::BATCH).await;
            ctx.outcome(&format!("scale.{setup}.batched"), batched);
            let group = format!("scale-single-{setup}-{rep}");
            let (clients, changes) = (ctx.plan.w2_clients, ctx.plan.w2_concurrent);
            let single = write::spread(ctx, &bases, &group, clients, changes, 1).await;
            ctx.outcome(&format!("scale.{setup}.single"), single);
            let (first, last) = (servers[0].addr, servers[servers.len() - 1].addr);
            for rate in ctx.plan.w4_rates.clone() {
                let group = format!("scale-r{rate}-{setup}-{rep}");
                let result = stream::latency(ctx, first, last, &group, rate, 1).await;
                crate::run::record_latency(ctx, &format!("scale.{setup}.r{rate}"), result);
            }
        }
    }
}

/// The cluster, and the servers of each setup in [`SETUPS`]' order.
async fn start(
    ctx: &Ctx,
    bin: &Path,
    core: Option<usize>,
) -> crate::error::Result<(cluster::Cluster, Vec<Vec<AtomsyncServer>>)> {
    let pg = tokio::task::spawn_blocking(|| cluster::Cluster::start(&cluster::Settings::durable()))
        .await
        .map_err(|e| BenchError::Setup(format!("starting PostgreSQL: {e}")))?
        .map_err(|e| BenchError::Setup(format!("no PostgreSQL cluster: {e}")))?;
    let dir = ctx.dir.join("scale");
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("the scale folder", e))?;
    let full = Durability::Full;
    let sqlite = dir.join("scale.db").display().to_string();
    let (one, two) = (pg.new_database(), pg.new_database());
    let servers = vec![
        vec![AtomsyncServer::start_on(
            bin, &dir, "sqlite", &sqlite, full, core,
        )?],
        vec![AtomsyncServer::start_on(
            bin, &dir, "pg1", &one, full, core,
        )?],
        vec![
            AtomsyncServer::start_on(bin, &dir, "pg2-a", &two, full, core)?,
            AtomsyncServer::start_on(bin, &dir, "pg2-b", &two, full, core)?,
        ],
    ];
    Ok((pg, servers))
}
