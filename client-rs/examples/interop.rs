//! Cross-client type check: the Rust side of `client-js/e2e/interop.test.js`.
//!
//! Writes a value holding every protocol type through a synced atom, or waits for one
//! key and prints its value as tagged JSON, so the browser test can check that what one
//! client writes, the other reads with the same types, through a real server.
//!
//! ```text
//! interop write SYNC_URL GROUP KEY DB_PATH    # store every_type() under KEY, wait until the server has it
//! interop read  SYNC_URL GROUP KEY DB_PATH    # wait for KEY, print its value as tagged JSON
//! ```
//!
//! `SYNC_URL` is the server's sync endpoint, e.g. `http://127.0.0.1:8090/sync`. The value
//! is built here with the `Value` constructors, not parsed from JSON, so the write is a
//! genuine Rust-side value.

use std::error::Error;
use std::time::{Duration, Instant};

use atomsync_client::{Inst, Options, Store, SyncedAtom, Value};

/// How long to wait for the server (the test's own timeout is longer).
const TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// One value of every type of PROTOCOL.md section 2, in the key order the browser test
/// expects in the tagged JSON.
fn every_type() -> Result<Value, Box<dyn Error>> {
    let uuid = [
        0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00,
        0x00,
    ];
    let entries: Vec<(&str, Value)> = vec![
        ("nil", Value::Nil),
        ("yes", Value::Bool(true)),
        ("int", Value::Int(42)),
        ("neg", Value::Int(-7)),
        ("maxSafe", Value::Int(9_007_199_254_740_991)),
        ("u64max", Value::from(u64::MAX)),
        ("i64min", Value::Int(i64::MIN)),
        ("float", Value::Float(2.5)),
        ("floatOne", Value::Float(1.0)),
        ("nan", Value::Float(f64::NAN)),
        ("str", Value::from("héllo")),
        ("bytes", Value::bytes(vec![0, 1, 255])),
        (
            "list",
            Value::list([Value::Int(1), Value::from("a"), Value::Nil]),
        ),
        (
            "inst",
            Value::Inst(Inst::parse_rfc3339("2026-11-24T10:00:00.123456789Z")?),
        ),
        ("uuid", Value::uuid(uuid)),
        ("kw", Value::try_kw("todo/done")?),
        (
            "set",
            Value::set([Value::try_kw("groceries")?, Value::Int(1)]),
        ),
        (
            "anyKeys",
            Value::map([
                (Value::Int(1), Value::from("one")),
                (Value::try_kw("k")?, Value::list([true])),
            ]),
        ),
        ("dollar", Value::map([("$a", 1)])),
        (
            "nested",
            Value::map([(
                "a",
                Value::list([Value::map([("b", Value::set::<Value>([]))])]),
            )]),
        ),
    ];
    Ok(Value::map(entries))
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

async fn write(atom: &SyncedAtom, key: &str) -> Result<(), Box<dyn Error>> {
    atom.assoc(key, every_type()?)?;
    wait_for("the server to accept the write", || atom.status().in_sync()).await?;
    if let Some(error) = atom.status().last_error {
        return Err(format!("sync failed: {error}").into());
    }
    println!("ok");
    Ok(())
}

async fn read(atom: &SyncedAtom, key: &str) -> Result<(), Box<dyn Error>> {
    wait_for("the key to arrive", || atom.get(key).is_some()).await?;
    let value = atom.get(key).ok_or("the key vanished")?;
    println!("{value}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, url, group, key, db] = args.as_slice() else {
        return Err("usage: interop (write|read) SYNC_URL GROUP KEY DB_PATH".into());
    };
    let store = Store::open(db)?;
    let atom = store.synced_atom(group, Options::new(url.as_str()))?;
    atom.ready().await;
    let outcome = match command.as_str() {
        "write" => write(&atom, key).await,
        "read" => read(&atom, key).await,
        other => Err(format!("unknown command {other:?} (write or read)").into()),
    };
    store.close().await;
    outcome
}
