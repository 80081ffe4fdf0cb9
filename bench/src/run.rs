//! One benchmark run, start to end: the servers, every workload in turn (each repetition
//! interleaving a workload with its baseline, so that drift hits both alike), then the table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};
use crate::plan::Plan;
use crate::report::{Results, rows, table};
use crate::server::{AtomsyncServer, Durability, Process};
use crate::workloads::{Ctx, Target, catchup, client, peer, stream, write};
use crate::{Cli, system};

/// Runs everything `cli` asks for and prints the results.
pub async fn run(cli: Cli, pinned: bool) -> Result<()> {
    let plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let dir = tempfile::Builder::new()
        .prefix("atomsync-bench-")
        .tempdir()
        .map_err(|e| BenchError::io("temporary folder", e))?;
    let server_core = pinned.then_some(system::SERVER_CORE);
    eprintln!("{}", machine(pinned));
    let mut ctx = Ctx {
        plan,
        results: Results::default(),
        dir: dir.path().to_owned(),
    };
    let run_peer = cli.runs("peer") && !cli.no_peer && (!cli.quick || cli.peer);
    // npm can take minutes: it installs while the server workloads run.
    let install = run_peer.then(|| tokio::task::spawn_blocking(|| peer::install(&peer_cache())));

    let durabilities: Vec<Durability> = match &cli.url {
        Some(_) => vec![cli.durability.into()],
        None => vec![Durability::Full, Durability::Normal],
    };
    let bin = match cli.url {
        Some(_) => None,
        None => Some(system::server_binary()?),
    };
    for (i, &durability) in durabilities.iter().enumerate() {
        let server = match &bin {
            Some(bin) => Some(start_server(bin, dir.path(), durability, server_core)?),
            None => None,
        };
        let target = match (&server, &cli.url) {
            (Some(s), _) => Target {
                base: s.url(""),
                addr: s.addr,
                durability,
                db: Some(s.db.clone()),
            },
            (None, Some(url)) => url_target(url, durability).await?,
            (None, None) => return Err(BenchError::Setup("no server to drive".into())),
        };
        eprintln!(
            "== {} durability, server at {}",
            durability.name(),
            target.base
        );
        for rep in 0..ctx.plan.reps {
            eprintln!("-- repetition {} of {}", rep + 1, ctx.plan.reps);
            if cli.runs("w1") || cli.runs("w2") {
                write::raw(&mut ctx, &target, rep).await;
            }
            if cli.runs("w1") || cli.runs("w3") || cli.runs("w6") {
                write::w1(&mut ctx, &target, rep).await;
            }
            if cli.runs("w2") {
                write::w2(&mut ctx, &target, rep).await;
            }
            if cli.runs("w3") {
                write::w3(&mut ctx, &target, rep).await;
            }
            if cli.runs("w6") {
                write::w6(&mut ctx, &target, rep).await;
            }
        }
        if cli.runs("metrics") {
            overhead(
                &mut ctx,
                bin.as_deref(),
                dir.path(),
                durability,
                server_core,
            )
            .await;
        }
        streaming(&mut ctx, &cli, &target, server_core).await;
        // Reads do not depend on durability: W7 runs once, on the first (the default).
        if i == 0 && cli.runs("w7") {
            catch_up(&mut ctx, &target).await;
        }
        // A client's work is the same whatever the server's durability: once, on the
        // first (the default, FULL).
        if i == 0 && cli.runs(client::NAME) {
            client::run(&mut ctx, &target).await;
        }
        if i == 0 && cli.runs("browser") {
            crate::workloads::browser::run(&mut ctx, &target).await;
        }
    }
    if cli.runs("mem") {
        memory(&mut ctx, bin.as_deref(), dir.path(), server_core).await;
    }
    match install {
        Some(install) => {
            let script = install
                .await
                .map_err(|e| BenchError::Setup(format!("the npm install task failed: {e}")))
                .and_then(|r| r);
            peer_workloads(&mut ctx, script, server_core).await;
        }
        None => {
            let why = if cli.quick && !cli.peer {
                "skipped: --quick runs the peer only with --peer"
            } else {
                "skipped"
            };
            for key in peer_keys(&ctx.plan) {
                ctx.results.fail(&key, why);
            }
        }
    }

    let names: Vec<&str> = durabilities.iter().map(|d| d.name()).collect();
    let rows = rows(crate::rows::specs(&ctx.plan, &names), &ctx.results);
    let text = table(&rows);
    if let Some(dir) = &cli.plot {
        match crate::plot::write(dir, &rows) {
            Ok(files) => {
                for file in files {
                    eprintln!("chart: {}", file.display());
                }
            }
            Err(e) => eprintln!("--plot {}: {e}", dir.display()),
        }
    }
    if cli.json {
        eprintln!("{text}");
        for row in &rows {
            println!("{}", row.json());
        }
    } else {
        println!("{text}");
    }
    Ok(())
}

fn start_server(
    bin: &Path,
    dir: &Path,
    durability: Durability,
    core: Option<usize>,
) -> Result<AtomsyncServer> {
    let server = AtomsyncServer::start(bin, dir, durability, core)?;
    // 10,000 subscribers need 10,000 descriptors in the server too.
    if let Err(e) = system::raise_nofile(server.process.pid()) {
        eprintln!("could not raise the server's open-files limit: {e}");
    }
    Ok(server)
}

async fn url_target(url: &str, durability: Durability) -> Result<Target> {
    let base = url.trim_end_matches('/').to_owned();
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| BenchError::Setup(format!("--url {url}: must start with http://")))?;
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| BenchError::io(format!("resolving {authority}"), e))?
        .find(|a: &SocketAddr| a.ip().is_loopback())
        .ok_or_else(|| {
            BenchError::Setup(format!(
                "--url {url}: the bench drives loopback servers only"
            ))
        })?;
    Ok(Target {
        base,
        addr,
        durability,
        db: None,
    })
}

/// The cost of metrics and of the access log (see [`overhead`](crate::workloads::overhead)),
/// on servers of its own.
async fn overhead(
    ctx: &mut Ctx,
    bin: Option<&Path>,
    dir: &Path,
    durability: Durability,
    core: Option<usize>,
) {
    use crate::workloads::overhead::{COSTS, PHASES, SERVERS, key, run, start};
    let d = durability.name();
    let servers = match bin
        .ok_or_else(|| "needs servers started by the bench (not --url)".to_owned())
        .and_then(|bin| start(bin, dir, durability, core).map_err(|e| e.to_string()))
    {
        Ok(servers) => servers,
        Err(reason) => {
            for (phase, _, _) in PHASES {
                for (name, _, _) in SERVERS {
                    ctx.results.fail(&key(d, phase, name), &reason);
                }
                for (cost, _, _) in COSTS {
                    ctx.results.fail(&key(d, phase, cost), &reason);
                }
            }
            return;
        }
    };
    eprintln!("== metrics and access-log cost, {d}");
    for rep in 0..ctx.plan.reps {
        run(ctx, &servers, durability, rep).await;
    }
}

/// W4 and W5 (with the broadcast baseline), after checking that `/sync/ws` upgrades.
async fn streaming(ctx: &mut Ctx, cli: &Cli, target: &Target, core: Option<usize>) {
    let (w4, w5) = (cli.runs("w4"), cli.runs("w5"));
    if !w4 && !w5 {
        return;
    }
    let d = target.durability.name();
    if let Err(e) = crate::ws::probe(target.addr).await {
        // Fail fast, once, with the reason in every row, rather than time out per phase.
        let reason = e.to_string();
        eprintln!("W4/W5 cannot run: {reason}");
        for key in stream_keys(&ctx.plan, d) {
            ctx.results.fail(&key, &reason);
        }
        return;
    }
    let bcast = if w5 {
        start_broadcast(ctx, core).map_err(|e| e.to_string())
    } else {
        Err("skipped".into())
    };
    for rep in 0..ctx.plan.reps {
        if w4 {
            for rate in ctx.plan.w4_rates.clone() {
                for subs in ctx.plan.w4_subscribers.clone() {
                    eprintln!("W4 {d}: {rate} pushes/s, {subs} subscribers");
                    let result = stream::w4(ctx, target, rate, subs, rep).await;
                    record_latency(ctx, &format!("w4.{d}.r{rate}.s{subs}"), result);
                }
            }
        }
        if w5 {
            for subs in ctx.plan.w5_subscribers.clone() {
                let bcast_addr = bcast.as_ref().map(|(_, a)| *a).map_err(Clone::clone);
                for (prefix, addr, path) in [
                    ("w5", Ok(target.addr), "/sync/ws"),
                    ("bcast", bcast_addr, "/"),
                ] {
                    let key = format!("{prefix}.{d}.s{subs}");
                    eprintln!("W5 {d}: {prefix}, {subs} subscribers");
                    let result = match addr {
                        Ok(addr) => stream::w5(ctx, addr, path, subs, rep).await,
                        Err(reason) => Err(BenchError::Setup(reason)),
                    };
                    let lost = result
                        .as_ref()
                        .map(|f| f.lost as f64)
                        .map_err(|e| BenchError::Setup(e.to_string()));
                    ctx.outcome(&format!("{key}.lost"), lost);
                    ctx.outcome(&key, result.map(|f| f.per_second));
                }
            }
        }
    }
}

fn record_latency(ctx: &mut Ctx, key: &str, result: Result<crate::latency::Latency>) {
    match result {
        Ok(l) => {
            for (stat, v) in [
                ("p50", l.p50),
                ("p99", l.p99),
                ("max", l.max),
                ("lost", l.lost as f64),
            ] {
                ctx.outcome(&format!("{key}.{stat}"), Ok(v));
            }
        }
        Err(e) => {
            for stat in ["p50", "p99", "max", "lost"] {
                ctx.outcome(
                    &format!("{key}.{stat}"),
                    Err(BenchError::Setup(e.to_string())),
                );
            }
        }
    }
}

/// The broadcast baseline: this binary's hidden subcommand, pinned like the server.
fn start_broadcast(ctx: &Ctx, core: Option<usize>) -> Result<(Process, SocketAddr)> {
    let exe =
        std::env::current_exe().map_err(|e| BenchError::io("locating the bench binary", e))?;
    let mut cmd = system::pinned_command(&exe, core);
    cmd.arg("broadcast-server");
    let log = ctx
        .dir
        .join(format!("broadcast-{}.log", std::process::id()));
    let (process, addr) = Process::start(
        cmd,
        &log,
        "broadcast listening on",
        "the broadcast baseline",
    )?;
    let addr = addr
        .parse()
        .map_err(|e| BenchError::Setup(format!("the broadcast server printed {addr:?}: {e}")))?;
    let _ = system::raise_nofile(process.pid());
    Ok((process, addr))
}

async fn catch_up(ctx: &mut Ctx, target: &Target) {
    eprintln!("W7 setup: {} documents", ctx.plan.w7_docs);
    if let Err(e) = catchup::setup(ctx, target).await {
        for key in ["w7.msgpack", "w7.json", "raw.w7"] {
            ctx.results.fail(key, &format!("setup: {e}"));
        }
        return;
    }
    for _ in 0..ctx.plan.reps {
        catchup::w7(ctx, target).await;
    }
}

/// Memory per idle connection, each server fresh, so that memory freed by earlier
/// workloads cannot hide what new connections take.
async fn memory(ctx: &mut Ctx, bin: Option<&Path>, dir: &Path, core: Option<usize>) {
    let n = ctx.plan.memory_connections;
    let Some(bin) = bin else {
        ctx.results.fail(
            "mem.atomsync",
            "needs a server started by the bench (not with --url)",
        );
        return;
    };
    eprintln!("W5 memory: {n} idle subscribed connections");
    let sub = dir.join("memory");
    let result = match std::fs::create_dir_all(&sub).map_err(|e| BenchError::io("memory folder", e))
    {
        Ok(()) => match start_server(bin, &sub, Durability::Full, core) {
            Ok(server) => {
                stream::memory_per_connection(server.addr, "/sync/ws", server.process.pid(), n)
                    .await
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    ctx.outcome("mem.atomsync", result);
    let result = match start_broadcast(ctx, core) {
        Ok((process, addr)) => stream::memory_per_connection(addr, "/", process.pid(), n).await,
        Err(e) => Err(e),
    };
    ctx.outcome("mem.bcast", result);
}

async fn peer_workloads(ctx: &mut Ctx, script: Result<PathBuf>, core: Option<usize>) {
    let started = script.and_then(|s| peer::Peer::start(&s, core));
    let peer = match started {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("pouchdb-server: {e}");
            for key in peer_keys(&ctx.plan) {
                ctx.results.fail(&key, &format!("pouchdb-server: {e}"));
            }
            return;
        }
    };
    eprintln!("== pouchdb-server at {}", peer.base);
    for rep in 0..ctx.plan.reps {
        peer::writes(ctx, &peer, rep).await;
        for rate in ctx.plan.peer_rates.clone() {
            let result = peer::longpoll(ctx, &peer, rate, rep).await;
            record_latency(ctx, &format!("peer.longpoll.r{rate}"), result);
        }
    }
}

fn peer_keys(plan: &Plan) -> Vec<String> {
    let mut keys = vec![
        "peer.bulk".to_owned(),
        "peer.put.sequential".into(),
        "peer.put.concurrent".into(),
    ];
    for rate in &plan.peer_rates {
        keys.extend(["p50", "p99", "max", "lost"].map(|s| format!("peer.longpoll.r{rate}.{s}")));
    }
    keys
}

fn stream_keys(plan: &Plan, d: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for rate in &plan.w4_rates {
        for subs in &plan.w4_subscribers {
            keys.extend(
                ["p50", "p99", "max", "lost"].map(|s| format!("w4.{d}.r{rate}.s{subs}.{s}")),
            );
        }
    }
    for subs in &plan.w5_subscribers {
        for prefix in ["w5", "bcast"] {
            keys.extend([
                format!("{prefix}.{d}.s{subs}"),
                format!("{prefix}.{d}.s{subs}.lost"),
            ]);
        }
    }
    keys
}

/// `target/bench-peer/`: beside the target folder's profiles, so `cargo clean` clears it.
fn peer_cache() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(Path::parent)
                .map(|target| target.join("bench-peer"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("atomsync-bench-peer"))
}

/// One line about the machine, for the README's table.
fn machine(pinned: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Not available_parallelism: once pinned, this process sees one core.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |c| {
        c.lines().filter(|l| l.starts_with("processor")).count()
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let pin = if pinned {
        "server on core 0, bench on core 1"
    } else {
        "not pinned"
    };
    format!(
        "machine: {cpu}, {cores} cores, Linux {}; {pin}",
        kernel.trim()
    )
}
