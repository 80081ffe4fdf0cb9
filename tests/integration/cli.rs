//! The `atomsync` command line end to end: the real binary against the real server.
//! Here one document at a time, `pull`, `watch`, `groups` and bad input; in [`transfer`]
//! export and import. Every test uses its own server and groups, and every command runs
//! with a deadline.

mod run;
mod transfer;

use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::common::TestServer;
use run::Cli;

/// A value with every type the protocol has.
pub const TYPED: &str = r#"{"text":"Buy milk","tags":{"$set":[{"$kw":"groceries"},{"$kw":"shop/dairy"}]},"due":{"$inst":"2026-11-24T10:00:00.123456789Z"},"id":{"$uuid":"550e8400-e29b-41d4-a716-446655440000"},"raw":{"$bytes":"AAEC/w=="},"big":18446744073709551615,"low":-9223372036854775808,"one":1,"onef":1.0,"negz":-0.0,"nan":{"$float":"NaN"},"inf":{"$float":"-Infinity"},"pairs":{"$map":[[1,"one"],[[2],"list key"]]},"dollar":{"$map":[["$kw","not a keyword"]]},"nil":null,"deep":[[[{"a":[true,false]}]]]}"#;

fn json_line(line: &str) -> Json {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn put_get_del_pull_without_knowing_versions() {
    let server = TestServer::start();
    let put = Cli::new(&server, &["put", "todo", "todo:1", TYPED]).run();
    assert_eq!(
        json_line(put.ok()),
        json!({"key": "todo:1", "version": 1, "seq": 1})
    );
    // `get` prints the value alone, exactly as sent, on one line.
    let got = Cli::new(&server, &["get", "todo", "todo:1"]).run();
    assert_eq!(got.ok(), format!("{TYPED}\n"));

    // An existing key: put uses its current version, whatever it is.
    let put = Cli::new(&server, &["put", "todo", "todo:1", r#""Buy oat milk""#]).run();
    assert_eq!(json_line(put.ok())["version"], 2);
    let doc = Cli::new(&server, &["get", "todo", "todo:1", "--doc"]).run();
    assert_eq!(
        json_line(doc.ok()),
        json!({"key": "todo:1", "version": 2, "seq": 2, "value": "Buy oat milk"})
    );

    let del = Cli::new(&server, &["del", "todo", "todo:1"]).run();
    assert_eq!(
        json_line(del.ok()),
        json!({"key": "todo:1", "version": 3, "seq": 3})
    );
    Cli::new(&server, &["get", "todo", "todo:1"])
        .run()
        .fails(4, "todo todo:1: no such document (deleted, at version 3)");
    Cli::new(&server, &["del", "todo", "todo:1"])
        .run()
        .fails(4, "already deleted");
    Cli::new(&server, &["get", "todo", "never"])
        .run()
        .fails(4, "todo never: no such document");
    Cli::new(&server, &["del", "todo", "never"])
        .run()
        .fails(4, "no such document");
    // A tombstone is re-created on top of, without the user giving a version.
    let put = Cli::new(&server, &["put", "todo", "todo:1", "1"]).run();
    assert_eq!(json_line(put.ok())["version"], 4);
    Cli::new(&server, &["put", "todo", "todo:2", "2"])
        .run()
        .ok();

    let pull = Cli::new(&server, &["pull", "todo"]).run();
    let lines: Vec<Json> = pull.lines().into_iter().map(json_line).collect();
    assert_eq!(
        lines,
        [
            json!({"key": "todo:1", "version": 4, "seq": 4, "value": 1}),
            json!({"key": "todo:2", "version": 1, "seq": 5, "value": 2}),
        ]
    );
    assert!(pull.stderr.contains("cursor 5"), "{pull:#?}");
    let since = Cli::new(&server, &["pull", "todo", "--since", "4"]).run();
    assert_eq!(since.lines().len(), 1);
    assert_eq!(json_line(since.lines()[0])["key"], "todo:2");
}

#[test]
fn a_stale_base_is_a_conflict_and_writes_nothing() {
    let server = TestServer::start();
    Cli::new(&server, &["put", "c", "k", "1"]).run().ok();
    Cli::new(&server, &["put", "c", "k", "2"]).run().ok();
    Cli::new(&server, &["put", "c", "k", "3", "--base", "1"])
        .run()
        .fails(3, "c k: conflict: the document is not at version 1 (it is at version 2); nothing was written");
    Cli::new(&server, &["del", "c", "k", "--base", "1"])
        .run()
        .fails(3, "conflict");
    Cli::new(&server, &["put", "c", "new", "1", "--base", "5"])
        .run()
        .fails(3, "it was never written");
    assert_eq!(Cli::new(&server, &["get", "c", "k"]).run().ok(), "2\n");
    let ok = Cli::new(&server, &["put", "c", "k", "4", "--base", "2"]).run();
    assert_eq!(json_line(ok.ok())["version"], 3);
}

#[test]
fn a_value_from_standard_input() {
    let server = TestServer::start();
    let value = format!("{TYPED}\n");
    Cli::new(&server, &["put", "stdin", "k", "-"])
        .stdin(value.clone())
        .run()
        .ok();
    assert_eq!(Cli::new(&server, &["get", "stdin", "k"]).run().ok(), value);
    Cli::new(&server, &["put", "stdin", "k", "-"])
        .stdin("")
        .run()
        .fails(1, "VALUE (standard input): empty");
}

#[test]
fn watch_prints_each_change_as_a_json_line_and_resumes_after_a_restart() {
    let mut server = TestServer::start();
    Cli::new(&server, &["put", "live", "a", "1"]).run().ok();
    let watch = Cli::new(&server, &["watch", "live"]).spawn();
    let wait = Duration::from_secs(20);
    assert_eq!(
        json_line(&watch.line(wait)),
        json!({"key": "a", "version": 1, "seq": 1, "value": 1})
    );
    Cli::new(&server, &["put", "live", "b", r#"{"$kw":"x"}"#])
        .run()
        .ok();
    assert_eq!(
        json_line(&watch.line(wait)),
        json!({"key": "b", "version": 1, "seq": 2, "value": {"$kw": "x"}})
    );
    Cli::new(&server, &["del", "live", "a"]).run().ok();
    assert_eq!(
        json_line(&watch.line(wait)),
        json!({"key": "a", "version": 2, "seq": 3, "deleted": true})
    );

    // The server goes away and comes back: watch reconnects and resumes after seq 3.
    server.stop();
    server.restart();
    Cli::new(&server, &["put", "live", "c", "3"]).run().ok();
    assert_eq!(
        json_line(&watch.line(wait)),
        json!({"key": "c", "version": 1, "seq": 4, "value": 3})
    );
    assert_eq!(
        watch.try_line(Duration::from_millis(300)),
        None,
        "nothing twice"
    );
    let (code, stderr) = watch.interrupt();
    assert_eq!(code, Some(0), "Ctrl-C ends a watch normally: {stderr}");
    assert!(stderr.contains("reconnecting"), "{stderr}");
}

#[test]
fn groups_need_the_admin_token() {
    let server = TestServer::start_with(
        "[users.alice]\ntoken = \"alice-t\"\ngroups = [\"*\"]\n[admin]\ntoken = \"root-t\"\n",
    );
    for (group, key) in [("todo", "a"), ("todo", "b"), ("notes", "a")] {
        Cli::new(&server, &["put", group, key, "1"])
            .env("ATOMSYNC_TOKEN", "alice-t")
            .run()
            .ok();
    }
    Cli::new(&server, &["del", "todo", "b", "--token", "alice-t"])
        .run()
        .ok();
    Cli::new(&server, &["groups"])
        .run()
        .fails(1, "server: unauthorized (401): token: missing");
    Cli::new(&server, &["groups", "--token", "alice-t"])
        .run()
        .fails(1, "server: forbidden (403): token: a user's token");
    Cli::new(&server, &["groups", "--admin-token", "nope"])
        .run()
        .fails(1, "unauthorized (401): token: not the admin token");

    let table = Cli::new(&server, &["groups"])
        .env("ATOMSYNC_ADMIN_TOKEN", "root-t")
        .run();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "GROUP",
                "SEQ",
                "DOCUMENTS",
                "TOMBSTONES",
                "FLOOR",
                "SUBSCRIBERS"
            ],
            vec!["notes", "1", "1", "0", "0", "0"],
            vec!["todo", "3", "1", "1", "0", "0"],
        ]
    );
    let json = Cli::new(&server, &["groups", "--json", "--admin-token", "root-t"]).run();
    assert_eq!(
        json.lines().into_iter().map(json_line).collect::<Vec<_>>(),
        [
            json!({"name": "notes", "seq": 1, "floor": 0, "documents": 1, "tombstones": 0, "subscribers": 0}),
            json!({"name": "todo", "seq": 3, "floor": 0, "documents": 1, "tombstones": 1, "subscribers": 0}),
        ]
    );
    // A watch is a subscriber while it runs.
    let watch = Cli::new(&server, &["watch", "notes", "--token", "alice-t"]).spawn();
    watch.line(Duration::from_secs(20));
    let one = Cli::new(
        &server,
        &["groups", "notes", "--json", "--admin-token", "root-t"],
    )
    .run();
    assert_eq!(json_line(one.ok())["subscribers"], 1);
    drop(watch);
    Cli::new(&server, &["groups", "nope", "--admin-token", "root-t"])
        .run()
        .fails(4, "nope: no such group on this server");
    let scan = Cli::new(
        &server,
        &["scan", "todo", "--tombstones", "--admin-token", "root-t"],
    )
    .run();
    assert_eq!(scan.lines().len(), 2, "{scan:#?}");

    let off = TestServer::start();
    Cli::new(&off, &["groups", "--admin-token", "root-t"])
        .run()
        .fails(1, "forbidden (403): admin: the admin API is off");
}

#[test]
fn bad_input_gives_one_clear_line_and_a_failure() {
    let server =
        TestServer::start_with("[users.alice]\ntoken = \"alice-t\"\ngroups = [\"todo\"]\n");
    let alice = |args: &[&str]| Cli::new(&server, args).env("ATOMSYNC_TOKEN", "alice-t");
    let as_alice = |args: &[&str]| alice(args).run();
    as_alice(&["put", "todo", "k", "milk"]).fails(1, "VALUE: not tagged JSON");
    as_alice(&["put", "todo", "k", r#"{"a": {"$kw": 3}}"#]).fails(1, "VALUE: not tagged JSON: a:");
    as_alice(&["put", "bad group", "k", "1"]).fails(1, "GROUP \"bad group\": must be 1..128");
    as_alice(&["get", "todo", ""]).fails(1, "KEY \"\": must be 1..1024 bytes");
    // Refused by the server: its code and message.
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    as_alice(&["put", "todo", "k", &deep]).fails(1, "server: bad_request (400): changes[0].value");
    as_alice(&["get", "other", "k"]).fails(1, "server: forbidden (403): group: user \"alice\"");
    Cli::new(&server, &["get", "todo", "k"])
        .run()
        .fails(1, "server: unauthorized (401)");
    alice(&["import", "todo"])
        .stdin("{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":}\n")
        .run()
        .fails(1, "line 2: not tagged JSON");
    // Every line before the bad one is imported; nothing after it.
    assert_eq!(as_alice(&["get", "todo", "a"]).stdout.trim(), "1");

    Cli::bare(&["get", "todo", "k", "--server", "ftp://x"])
        .run()
        .fails(
            1,
            "--server \"ftp://x\": ftp: is not http, https, ws or wss",
        );
    Cli::bare(&["get", "todo", "k", "--server", "http://127.0.0.1:1"])
        .run()
        .fails(1, "cannot reach http://127.0.0.1:1/");
    // The bare address works as well as the clients' URL.
    let bare = server.url("");
    Cli::bare(&[
        "put", "todo", "k", "1", "--server", &bare, "--token", "alice-t",
    ])
    .run()
    .ok();
}

/// `--ca-cert` trusts a CA for a server on https://: get, put and watch (over wss://) work;
/// without it the command says the certificate is the problem.
#[test]
fn ca_cert_reaches_a_tls_server_over_https_and_wss() {
    let (server, ca_pem) = crate::ops::tls_server();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let ca = ca.display().to_string();
    let with_ca = |args: &[&str]| {
        let mut all = vec!["--ca-cert", ca.as_str()];
        all.extend_from_slice(args);
        Cli::new(&server, &all)
    };
    with_ca(&["put", "tls", "a", r#"{"$kw":"secure"}"#])
        .run()
        .ok();
    assert_eq!(
        with_ca(&["get", "tls", "a"]).run().ok().trim(),
        r#"{"$kw":"secure"}"#
    );
    let watch = with_ca(&["watch", "tls"]).spawn();
    let wait = Duration::from_secs(20);
    assert_eq!(
        json_line(&watch.line(wait)),
        json!({"key": "a", "version": 1, "seq": 1, "value": {"$kw": "secure"}})
    );
    with_ca(&["put", "tls", "b", "2"]).run().ok();
    assert_eq!(
        json_line(&watch.line(wait)),
        json!({"key": "b", "version": 1, "seq": 2, "value": 2})
    );
    watch.interrupt();
    // Without the CA: the refusal, and what to do about it.
    Cli::new(&server, &["get", "tls", "a"])
        .run()
        .fails(1, "trust its CA with --ca-cert");
    Cli::new(
        &server,
        &["--ca-cert", "/nonexistent.pem", "get", "tls", "a"],
    )
    .run()
    .fails(1, "--ca-cert");
}
