//! The table's rows: which measurement is compared with which, and the target for
//! each. Ratios are always ours / the baseline: above 1 is faster for rates, slower for
//! latencies (whose targets are absolute, in ms).

use crate::plan::Plan;
use crate::report::{RowSpec, Target};

const MODES: [&str; 2] = ["full", "normal"];

fn row(
    workload: &'static str,
    metric: String,
    unit: &'static str,
    value: String,
    baseline: String,
    baseline_key: Option<String>,
    target: Option<Target>,
) -> RowSpec {
    RowSpec {
        workload,
        metric,
        unit,
        value,
        baseline,
        baseline_key,
        target,
    }
}

/// `1 subscriber`, `1000 subscribers`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Every row of a run with `plan`, in the order.
pub fn specs(plan: &Plan, durabilities: &[&str]) -> Vec<RowSpec> {
    let modes: Vec<&str> = MODES
        .iter()
        .copied()
        .filter(|m| durabilities.contains(m))
        .collect();
    let first = modes.first().copied().unwrap_or("full");
    let mut rows = Vec::new();
    for d in &modes {
        for enc in ["msgpack", "json"] {
            rows.push(row(
                "W1",
                format!("batched push, 100/request, {enc}, {d}"),
                "changes/s",
                format!("w1.{d}.{enc}"),
                format!("raw SQLite, 100/tx, {d}"),
                Some(format!("raw.w1.{d}")),
                Some(Target::RatioAtLeast(0.5)),
            ));
        }
    }
    rows.push(row(
        "W1",
        format!("batched push, msgpack, {first}"),
        "changes/s",
        format!("w1.{first}.msgpack"),
        "pouchdb-server _bulk_docs, 100/request".into(),
        Some("peer.bulk".into()),
        Some(Target::RatioAtLeast(20.0)),
    ));
    for d in &modes {
        rows.push(row(
            "W2",
            format!("single-change pushes, 1 client, {d}"),
            "changes/s",
            format!("w2.{d}.sequential"),
            format!("raw SQLite, 1 change/tx, {d}"),
            Some(format!("raw.w2.{d}")),
            Some(Target::RatioAtLeast(0.5)),
        ));
        let target = (*d == "full").then_some(Target::RatioAtLeast(2.0));
        rows.push(row(
            "W2",
            format!("single-change pushes, {} clients, {d}", plan.w2_clients),
            "changes/s",
            format!("w2.{d}.concurrent"),
            format!("raw SQLite, 1 change/tx, {d}"),
            Some(format!("raw.w2.{d}")),
            target,
        ));
    }
    rows.push(row(
        "W2",
        format!("single-change pushes, 1 client, {first}"),
        "changes/s",
        format!("w2.{first}.sequential"),
        "pouchdb-server PUT, 1 client".into(),
        Some("peer.put.sequential".into()),
        None,
    ));
    rows.push(row(
        "W2",
        format!("single-change pushes, {} clients, {first}", plan.w2_clients),
        "changes/s",
        format!("w2.{first}.concurrent"),
        format!("pouchdb-server PUT, {} clients", plan.w2_clients),
        Some("peer.put.concurrent".into()),
        None,
    ));
    for d in &modes {
        rows.push(row(
            "W3",
            format!("half-stale batches, 100/request, {d}"),
            "changes/s",
            format!("w3.{d}"),
            format!("W1 msgpack, {d}"),
            Some(format!("w1.{d}.msgpack")),
            Some(Target::RatioAtLeast(1.0)),
        ));
    }
    for d in &modes {
        for &rate in &plan.w4_rates {
            for &subs in &plan.w4_subscribers {
                let key = format!("w4.{d}.r{rate}.s{subs}");
                let who = format!("{rate} pushes/s, {}, {d}", plural(subs, "subscriber"));
                for stat in ["p50", "p99", "max"] {
                    let target = match (rate, subs, stat) {
                        (1000, 1, "p50") => Some(Target::AtMost(1.0)),
                        (1000, 1, "p99") => Some(Target::AtMost(3.0)),
                        // At 1,000 pushes/s, 1,000 subscribers need a million deliveries a second:
                        // past what one core sends (see the README), so the target is read at 20/s.
                        (20, 1000, "p99") => Some(Target::AtMost(30.0)),
                        _ => None,
                    };
                    let (baseline, baseline_key) = if subs == 1 && plan.peer_rates.contains(&rate) {
                        (
                            format!("pouchdb-server _changes longpoll, {stat}"),
                            Some(format!("peer.longpoll.r{rate}.{stat}")),
                        )
                    } else {
                        (String::new(), None)
                    };
                    rows.push(row(
                        "W4",
                        format!("push-to-delivery {stat}, {who}"),
                        "ms",
                        format!("{key}.{stat}"),
                        baseline,
                        baseline_key,
                        target,
                    ));
                }
                rows.push(row(
                    "W4",
                    format!(
                        "deliveries missing {}s after the last push, {who}",
                        plan.drain_limit.as_secs()
                    ),
                    "deliveries",
                    format!("{key}.lost"),
                    String::new(),
                    None,
                    Some(Target::AtMost(0.0)),
                ));
            }
        }
    }
    for d in &modes {
        for &subs in &plan.w5_subscribers {
            let who = format!("{}, {d}", plural(subs, "subscriber"));
            rows.push(row(
                "W5",
                format!("fan-out, unpaced writer, {who}"),
                "deliveries/s",
                format!("w5.{d}.s{subs}"),
                "tokio-tungstenite broadcast server".into(),
                Some(format!("bcast.{d}.s{subs}")),
                Some(Target::RatioAtLeast(0.5)),
            ));
            rows.push(row(
                "W5",
                format!(
                    "deliveries missing {}s after the last push, {who}",
                    plan.drain_limit.as_secs()
                ),
                "deliveries",
                format!("w5.{d}.s{subs}.lost"),
                "broadcast server".into(),
                Some(format!("bcast.{d}.s{subs}.lost")),
                Some(Target::AtMost(0.0)),
            ));
        }
    }
    rows.push(row(
        "W5",
        format!(
            "resident memory per idle subscribed connection, {} connections",
            plan.memory_connections
        ),
        "KiB",
        "mem.atomsync".into(),
        "tokio-tungstenite broadcast server".into(),
        Some("mem.bcast".into()),
        Some(Target::AtMost(12.0)),
    ));
    for d in &modes {
        rows.push(row(
            "W6",
            format!(
                "{} groups pushing at once, 100/request, {d}",
                plan.w6_groups
            ),
            "changes/s",
            format!("w6.{d}"),
            format!("W1 msgpack, {d}"),
            Some(format!("w1.{d}.msgpack")),
            Some(Target::RatioAtLeast(0.9)),
        ));
        rows.push(row(
            "W6",
            format!("SQLITE_BUSY errors, {d}"),
            "errors",
            format!("w6.{d}.busy"),
            String::new(),
            None,
            Some(Target::AtMost(0.0)),
        ));
    }
    for (enc, target) in [("msgpack", Some(Target::RatioAtLeast(0.3))), ("json", None)] {
        rows.push(row(
            "W7",
            format!(
                "catch-up of {} documents, pages of {}, {enc}",
                plan.w7_docs, plan.w7_page
            ),
            "docs/s",
            format!("w7.{enc}"),
            "raw SQLite reading the same rows".into(),
            Some("raw.w7".into()),
            target,
        ));
    }
    rows.extend(crate::workloads::browser::rows(plan));
    rows.extend(crate::workloads::client::rows(&plan.client));
    rows.extend(scale_rows(plan));
    rows.extend(overhead_rows(&modes));
    rows
}

/// The scale-out rows: each PostgreSQL setup beside SQLite under the same load.
fn scale_rows(plan: &Plan) -> Vec<RowSpec> {
    let mut rows = Vec::new();
    let setups = [
        ("pg1", "PostgreSQL, 1 server"),
        ("pg2", "PostgreSQL, 2 servers"),
    ];
    for (load, what) in [
        ("batched", "batched push, 100/request, 2 clients".to_owned()),
        (
            "single",
            format!("single-change pushes, {} clients", plan.w2_clients),
        ),
    ] {
        for (setup, name) in setups {
            rows.push(row(
                "Scale",
                format!("{what}, {name}, full"),
                "changes/s",
                format!("scale.{setup}.{load}"),
                "SQLite, the same load".into(),
                Some(format!("scale.sqlite.{load}")),
                None,
            ));
        }
    }
    for &rate in &plan.w4_rates {
        for (setup, name) in setups {
            let across = if setup == "pg2" {
                " (writer on one, subscriber on the other)"
            } else {
                ""
            };
            for stat in ["p50", "p99"] {
                rows.push(row(
                    "Scale",
                    format!("push-to-delivery {stat}, {rate} pushes/s, {name}{across}, full"),
                    "ms",
                    format!("scale.{setup}.r{rate}.{stat}"),
                    format!("SQLite, {stat}"),
                    Some(format!("scale.sqlite.r{rate}.{stat}")),
                    None,
                ));
            }
            rows.push(row(
                "Scale",
                format!(
                    "deliveries missing {}s after the last push, {rate} pushes/s, {name}",
                    plan.drain_limit.as_secs()
                ),
                "deliveries",
                format!("scale.{setup}.r{rate}.lost"),
                String::new(),
                None,
                Some(Target::AtMost(0.0)),
            ));
        }
    }
    rows
}

/// What metrics and the access log cost: the extra time of a push, in percent, from
/// pushes interleaved across servers (see `workloads::overhead`); the median of the
/// repetitions. Metrics are meant to be free: the target is at most 5 %.
fn overhead_rows(modes: &[&str]) -> Vec<RowSpec> {
    use crate::workloads::overhead::key;
    let mut rows = Vec::new();
    for d in modes {
        for (phase, what) in [
            ("w1", "W1 batched push, msgpack"),
            ("w2seq", "W2 single-change pushes, 1 client"),
            ("w2conc", "W2 single-change pushes, concurrent clients"),
        ] {
            rows.push(row(
                "Overhead",
                format!("{what}: cost of metrics (vs off), {d}"),
                "%",
                key(d, phase, "metrics_cost"),
                String::new(),
                None,
                Some(Target::AtMost(5.0)),
            ));
            rows.push(row(
                "Overhead",
                format!("{what}: cost of access lines (vs none), {d}"),
                "%",
                key(d, phase, "log_cost"),
                String::new(),
                None,
                None,
            ));
        }
    }
    rows
}
