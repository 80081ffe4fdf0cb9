//! `get`, `put` and `del`: one document at a time, without the user ever handling
//! versions. `put` and `del` read the key's current version (`GET /sync/doc`) and write
//! with it as the base, so a write that meets another client's change in between is a
//! conflict (exit status 3), never a silent overwrite. `--base N` writes only if the
//! version is still N (a compare-and-set for scripts).

use atomsync_proto::wire::{Change, Doc, Op, PushRequest, PushResult};
use atomsync_proto::{Encoding, Packed, Value};

use crate::error::CliError;
use crate::output::Output;
use crate::server::Server;

/// `get GROUP KEY`: prints the value alone, in tagged JSON on one line; with `whole`, the
/// whole document (`key`, `version`, `seq`, `value` or `deleted`).
pub async fn get(server: &Server, group: &str, key: &str, whole: bool) -> Result<(), CliError> {
    let answer = server.doc(group, key).await?;
    let mut out = Output::buffered();
    match answer.doc {
        Some(doc) if whole => out.doc(&doc)?,
        Some(Doc {
            value: Some(value), ..
        }) => out.line(value.to_json().as_bytes())?,
        Some(Doc { version, .. }) => {
            return Err(CliError::NotFound(format!(
                "{group} {key}: no such document (deleted, at version {version})"
            )));
        }
        None => return Err(no_such(group, key)),
    }
    out.flush()
}

/// `put GROUP KEY VALUE`: sets the value; prints `{"key", "version", "seq"}`.
pub async fn put(
    server: &Server,
    group: &str,
    key: &str,
    value: Packed,
    base: Option<u64>,
) -> Result<(), CliError> {
    let explicit = base.is_some();
    let base = match base {
        Some(base) => base,
        None => current(server, group, key)
            .await?
            .map_or(0, |doc| doc.version),
    };
    write(server, group, key, Op::Set(value), base, explicit).await
}

/// `del GROUP KEY`: deletes (leaves a tombstone); prints `{"key", "version", "seq"}`. A
/// key that does not exist, or is already deleted, is an error (exit status 4).
pub async fn del(
    server: &Server,
    group: &str,
    key: &str,
    base: Option<u64>,
) -> Result<(), CliError> {
    let explicit = base.is_some();
    let base = match base {
        Some(base) => base,
        None => match current(server, group, key).await? {
            Some(Doc {
                value: Some(_),
                version,
                ..
            }) => version,
            Some(Doc { version, .. }) => {
                return Err(CliError::NotFound(format!(
                    "{group} {key}: already deleted (at version {version})"
                )));
            }
            None => return Err(no_such(group, key)),
        },
    };
    write(server, group, key, Op::Delete, base, explicit).await
}

async fn current(server: &Server, group: &str, key: &str) -> Result<Option<Doc>, CliError> {
    Ok(server.doc(group, key).await?.doc)
}

fn no_such(group: &str, key: &str) -> CliError {
    CliError::NotFound(format!("{group} {key}: no such document"))
}

/// Pushes one change with `base` (given by the user when `explicit`, else just read); a
/// conflict is an error that says what the server has.
async fn write(
    server: &Server,
    group: &str,
    key: &str,
    op: Op,
    base: u64,
    explicit: bool,
) -> Result<(), CliError> {
    let request = PushRequest {
        group: group.to_owned(),
        changes: vec![Change {
            key: key.to_owned(),
            base,
            op,
        }],
    };
    let response = server.push(&request).await?;
    match response.results.into_iter().next() {
        Some(PushResult::Accepted { key, version, seq }) => {
            let result = Value::Map(vec![
                ("key".into(), key.into()),
                ("version".into(), version.into()),
                ("seq".into(), seq.into()),
            ]);
            let mut out = Output::buffered();
            out.line(&atomsync_proto::wire::encode_value(&result, Encoding::Json))?;
            out.flush()
        }
        Some(PushResult::Conflict { current, .. }) => {
            let now = match current {
                None => "it was never written".to_owned(),
                Some(Doc {
                    value: None,
                    version,
                    ..
                }) => format!("it is deleted, at version {version}"),
                Some(Doc { version, .. }) => format!("it is at version {version}"),
            };
            let why = if explicit {
                format!("the document is not at version {base}")
            } else {
                "another client changed the document meanwhile".to_owned()
            };
            Err(CliError::Conflict(format!(
                "{group} {key}: conflict: {why} ({now}); nothing was written"
            )))
        }
        None => Err(CliError::Protocol("a push answer with no result".into())),
    }
}
