//! `import GROUP < file.jsonl`: reads `{"key": K, "value": V}` lines (what `export`
//! writes; `pull`'s lines work too) and writes them into the group in batches.
//!
//! A thread reads and checks the input while the previous batch is on the wire. A batch
//! holds at most `--batch` changes (1000 by default, the server takes up to its
//! `max_changes`) and about [`BATCH_BYTES`] of values, below the server's default body
//! limit; a batch the server still finds too large (413: a server with lower limits) is
//! split in two and sent again, since a refused request applies nothing. What each line
//! does to a key that exists is [`plan`](crate::plan)'s business.
//!
//! A bad line stops the import before its batch is sent, naming the line; everything
//! before it is imported, and running the import again after fixing the file is safe.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::time::Instant;

use atomsync_proto::wire::{Change, PushRequest, PushResult, check_key};
use atomsync_proto::{ErrorCode, Packed, Value, json};
use tokio::sync::mpsc;

use crate::error::{CliError, io};
use crate::input::MAX_DEPTH;
use crate::output::{self, Notes};
use crate::plan::{Existing, Line, Plan, Round, Tally};
use crate::progress;
use crate::server::Server;

/// About how many bytes of keys and values one push carries: half the server's default
/// body limit (8 MiB), leaving room for the message around them.
pub const BATCH_BYTES: usize = 4 << 20;

/// A batch of lines, no key twice (a later line for a key replaces an earlier one).
struct Batch {
    lines: Vec<Line>,
    /// The input's bytes read up to the end of this batch.
    read: u64,
    /// The number of the batch's last line.
    last: u64,
}

/// `import GROUP`, with what to do with keys that hold another value and the batch size.
pub async fn import(
    server: &Server,
    group: &str,
    existing: Existing,
    batch: usize,
    notes: Notes,
) -> Result<(), CliError> {
    let started = Instant::now();
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        notes.say(
            "atomsync: reading lines from the terminal; end with Ctrl-D (or use `< file.jsonl`)",
        );
    }
    let bar = match stdin_size() {
        Some(total) => progress::bytes(&notes, total),
        None => progress::counter(&notes, "lines"),
    };
    // Two batches ahead at most: reading runs beside the pushes without filling memory.
    let (sender, mut batches) = mpsc::channel(2);
    std::thread::spawn(move || read_batches(std::io::stdin().lock(), batch, &sender));
    let mut plan = Plan::new(existing);
    let mut done = 0u64;
    while let Some(next) = batches.recv().await {
        let applied = match next {
            Ok(next) => apply(server, group, &next.lines, &mut plan)
                .await
                .map(|()| next),
            Err(e) => Err(e),
        };
        let next = applied.map_err(|e| stopped(e, done))?;
        done = next.last;
        match bar.length() {
            Some(_) => bar.set_position(next.read),
            None => bar.set_position(next.last),
        }
        bar.set_message(counts(&plan.tally));
    }
    bar.finish_and_clear();
    let tally = plan.tally;
    let mut summary = format!(
        "atomsync: imported {} into {group} in {:.1} s: {}",
        output::count(done, "line"),
        started.elapsed().as_secs_f64(),
        counts(&tally)
    );
    if tally.kept > 0 {
        summary.push_str(
            "; kept keys hold another value on the server (--existing overwrite replaces them)",
        );
    }
    notes.say(summary);
    if tally.conflicts > 0 {
        return Err(CliError::Conflict(format!(
            "{} changed by another client during the import kept that client's value: {}{}",
            output::count(tally.conflicts, "document"),
            tally.conflict_keys.join(", "),
            if tally.conflicts as usize > tally.conflict_keys.len() {
                ", ..."
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// `written 10, unchanged 2, ...`, naming only what happened.
fn counts(tally: &Tally) -> String {
    let parts: Vec<String> = [
        ("written", tally.written),
        ("unchanged", tally.unchanged),
        ("kept", tally.kept),
        ("deleted", tally.deleted),
        ("conflicts", tally.conflicts),
    ]
    .into_iter()
    .filter(|&(_, n)| n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "nothing to do".into()
    } else {
        parts.join(", ")
    }
}

/// The error that stopped an import, with where it stopped.
fn stopped(error: CliError, done: u64) -> CliError {
    let note = format!(" (lines 1 to {done} are imported; running the import again is safe)");
    match error {
        CliError::Input(text) if done > 0 => CliError::Input(text + &note),
        CliError::Network(text) => CliError::Network(text + &note),
        other => other,
    }
}

/// Pushes one batch: first every line, then the retries with the versions found.
async fn apply(
    server: &Server,
    group: &str,
    lines: &[Line],
    plan: &mut Plan,
) -> Result<(), CliError> {
    let mut todo: Vec<(&Line, Change)> = lines
        .iter()
        .filter_map(|line| plan.first(line).map(|change| (line, change)))
        .collect();
    let mut round = Round::First;
    while !todo.is_empty() {
        let results = push_split(server, group, &todo).await?;
        let mut retries = Vec::new();
        for ((line, _), result) in todo.iter().zip(results) {
            if let Some(change) = plan.settle(line, result, round) {
                retries.push((*line, change));
            }
        }
        todo = retries;
        round = Round::Retry;
    }
    Ok(())
}

/// Pushes the changes in order, halving any part the server finds too large.
async fn push_split(
    server: &Server,
    group: &str,
    todo: &[(&Line, Change)],
) -> Result<Vec<PushResult>, CliError> {
    let mut results = Vec::with_capacity(todo.len());
    let mut parts = VecDeque::from([todo]);
    while let Some(part) = parts.pop_front() {
        let request = PushRequest {
            group: group.to_owned(),
            changes: part.iter().map(|(_, change)| change.clone()).collect(),
        };
        match server.push(&request).await {
            Ok(response) => {
                let fits = response.results.len() == part.len()
                    && response
                        .results
                        .iter()
                        .zip(part)
                        .all(|(result, (line, _))| {
                            let (PushResult::Accepted { key, .. }
                            | PushResult::Conflict { key, .. }) = result;
                            *key == line.key
                        });
                if !fits {
                    return Err(CliError::Protocol(
                        "a push answer whose results do not match the changes sent".into(),
                    ));
                }
                results.extend(response.results);
            }
            Err(e) if e.code() == Some(ErrorCode::PayloadTooLarge) && part.len() > 1 => {
                let (front, back) = part.split_at(part.len() / 2);
                parts.push_front(back);
                parts.push_front(front);
            }
            Err(e) => return Err(at_line(e, part)),
        }
    }
    Ok(results)
}

/// Names the input line a server error is about: the change its message points at
/// (`changes[3].value: ...`), or the only one sent.
fn at_line(error: CliError, part: &[(&Line, Change)]) -> CliError {
    let index = match &error {
        CliError::Server { error } => error
            .message
            .strip_prefix("changes[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|n| n.parse::<usize>().ok()),
        _ => None,
    };
    let index = index.or((part.len() == 1).then_some(0));
    match index.and_then(|i| part.get(i)) {
        Some((line, _)) => CliError::Input(format!(
            "line {} (key {:?}): {error}",
            line.number, line.key
        )),
        None => error,
    }
}

/// Reads the input into batches until its end or a bad line, and hands them over.
fn read_batches(
    mut input: impl BufRead,
    max_lines: usize,
    sender: &mpsc::Sender<Result<Batch, CliError>>,
) {
    let mut buffer = Vec::new();
    let mut number = 0u64;
    let mut read = 0u64;
    let mut batch = Batch {
        lines: Vec::new(),
        read: 0,
        last: 0,
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut bytes = 0usize;
    loop {
        buffer.clear();
        let got = match input.read_until(b'\n', &mut buffer) {
            Ok(got) => got,
            Err(e) => {
                let _ = sender.blocking_send(Err(io("standard input", &e)));
                return;
            }
        };
        read += got as u64;
        let end = got == 0;
        if !end {
            number += 1;
            match parse_line(&buffer, number) {
                Ok(None) => {}
                Ok(Some(line)) => {
                    bytes += line.key.len() + line.value.as_ref().map_or(0, Packed::len) + 32;
                    match index.get(&line.key) {
                        Some(&at) => batch.lines[at] = line,
                        None => {
                            index.insert(line.key.clone(), batch.lines.len());
                            batch.lines.push(line);
                        }
                    }
                }
                Err(e) => {
                    // The lines before the bad one are imported, as the README says: the
                    // batch read so far goes first, then the error.
                    if !batch.lines.is_empty() {
                        batch.read = read - got as u64;
                        batch.last = number - 1;
                        if sender.blocking_send(Ok(batch)).is_err() {
                            return;
                        }
                    }
                    let _ = sender.blocking_send(Err(e));
                    return;
                }
            }
        }
        if end || batch.lines.len() >= max_lines || bytes >= BATCH_BYTES {
            batch.read = read;
            batch.last = number;
            let full = std::mem::replace(
                &mut batch,
                Batch {
                    lines: Vec::new(),
                    read: 0,
                    last: 0,
                },
            );
            index.clear();
            bytes = 0;
            if (!full.lines.is_empty() || end) && sender.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
        if end {
            return;
        }
    }
}

/// One input line: `{"key": K, "value": V}` or `{"key": K, "deleted": true}` (other
/// members, such as `version` and `seq` in `pull`'s lines, are ignored); `None` for a blank
/// line.
/// The members a line may have: those `export` writes.
const KNOWN_MEMBERS: [&str; 5] = ["key", "value", "deleted", "version", "seq"];

fn parse_line(text: &[u8], number: u64) -> Result<Option<Line>, CliError> {
    let bad = |why: String| CliError::Input(format!("line {number}: {why}"));
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let decoded =
        json::decode(text, MAX_DEPTH).map_err(|e| bad(format!("not tagged JSON: {e}")))?;
    let Value::Map(members) = decoded else {
        return Err(bad(r#"must be an object {"key": ..., "value": ...}"#.into()));
    };
    // What `export` writes; anything else is a typo (`"delted": true`) that would
    // otherwise be dropped without a word.
    for (name, _) in &members {
        match name {
            Value::Str(n) if KNOWN_MEMBERS.contains(&n.as_str()) => {}
            Value::Str(n) => {
                return Err(bad(format!(
                    "unknown member {n:?}; a line has \"key\", \"value\" or \"deleted\", \
                     and may keep export's \"version\" and \"seq\""
                )));
            }
            _ => return Err(bad("member names must be strings".into())),
        }
    }
    let member = |name: &str| {
        members
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(k) if k == name))
            .map(|(_, v)| v)
    };
    let key = match member("key") {
        Some(Value::Str(key)) => key.clone(),
        Some(_) => return Err(bad("key: must be a string".into())),
        None => return Err(bad(r#"no "key""#.into())),
    };
    check_key(&key).map_err(|e| bad(format!("key: {e}")))?;
    let value = match (member("value"), member("deleted")) {
        (Some(value), None | Some(Value::Bool(false))) => Some(Packed::from_value(value)),
        (None, Some(Value::Bool(true))) => None,
        _ => {
            return Err(bad(format!(
                r#"key {key:?}: must have either "value" or "deleted": true"#
            )));
        }
    };
    Ok(Some(Line { number, key, value }))
}

/// The size of standard input when it is a file (`< file.jsonl`), for a progress bar.
fn stdin_size() -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
        let meta = std::fs::File::from(fd).metadata().ok()?;
        meta.is_file().then_some(meta.len())
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_exactly_what_export_writes() {
        let line = parse_line(
            br#"{"key":"k","value":{"n":1,"f":1.0,"big":18446744073709551615,"at":{"$inst":"2026-11-24T10:00:00.123456789Z"}}}"#,
            3,
        )
        .unwrap()
        .unwrap();
        assert_eq!(line.number, 3);
        assert_eq!(
            line.value.unwrap().to_json(),
            r#"{"n":1,"f":1.0,"big":18446744073709551615,"at":{"$inst":"2026-11-24T10:00:00.123456789Z"}}"#
        );
        let gone = parse_line(br#"{"key":"k","deleted":true}"#, 1)
            .unwrap()
            .unwrap();
        assert_eq!(gone.value, None);
        let pulled = parse_line(br#"{"key":"k","version":3,"seq":9,"value":null}"#, 1).unwrap();
        assert!(pulled.unwrap().value.is_some());
        assert_eq!(parse_line(b"  \r\n", 1).unwrap(), None);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, needle) in [
            (
                &b"{\"key\": \"k\", \"value\": }"[..],
                "line 7: not tagged JSON",
            ),
            (b"[1, 2]", "line 7: must be an object"),
            (b"{\"value\": 1}", "line 7: no \"key\""),
            (
                b"{\"key\": \"\", \"value\": 1}",
                "line 7: key: must be 1..1024 bytes",
            ),
            (b"{\"key\": \"k\"}", "either \"value\" or \"deleted\""),
            (
                b"{\"key\": \"k\", \"value\": 1, \"deleted\": true}",
                "either",
            ),
            (
                b"{\"key\": \"k\", \"value\": 1, \"delted\": true}",
                "line 7: unknown member \"delted\"",
            ),
        ] {
            let err = parse_line(text, 7).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn the_lines_before_a_bad_one_are_sent_before_its_error() {
        let input = b"{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":2}\nnot json\n{\"key\":\"c\",\"value\":3}\n";
        let (sender, mut receiver) = mpsc::channel(10);
        read_batches(&input[..], 100, &sender);
        drop(sender);
        let first = receiver.try_recv().unwrap().unwrap();
        let keys: Vec<&str> = first.lines.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(first.last, 2);
        let Err(err) = receiver.try_recv().unwrap() else {
            panic!("the bad line's error must follow the batch before it");
        };
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(receiver.try_recv().is_err(), "nothing after the error");
    }

    #[test]
    fn batches_fold_repeated_keys_and_respect_the_count() {
        let input = b"{\"key\":\"a\",\"value\":1}\n{\"key\":\"a\",\"value\":2}\n\n{\"key\":\"b\",\"value\":3}\n{\"key\":\"c\",\"value\":4}\n";
        let (sender, mut receiver) = mpsc::channel(10);
        read_batches(&input[..], 2, &sender);
        drop(sender);
        let mut batches = Vec::new();
        while let Ok(batch) = receiver.try_recv() {
            batches.push(batch.unwrap());
        }
        let keys: Vec<Vec<(&str, u64)>> = batches
            .iter()
            .map(|b| b.lines.iter().map(|l| (l.key.as_str(), l.number)).collect())
            .collect();
        assert_eq!(keys, [vec![("a", 2), ("b", 4)], vec![("c", 5)]]);
        assert_eq!(batches[0].last, 4);
        assert_eq!(batches[1].last, 5);
        assert_eq!(batches[1].read, input.len() as u64);
    }
}
