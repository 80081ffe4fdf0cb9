//! `groups` and `scan`: what the admin API shows (it needs the admin token).
//!
//! - `groups` lists every group, a page at a time, as a table on a terminal-friendly
//!   layout, or as one JSON object per line with `--json`; `groups NAME` shows one.
//! - `scan GROUP [--prefix P]` prints a group's documents in key order, one per line.

use atomsync_proto::Encoding;
use atomsync_proto::wire::GroupInfo;

use crate::error::CliError;
use crate::output::Output;
use crate::server::Server;

/// Groups asked for per page.
const PAGE: u32 = 500;

/// `groups [NAME] [--json]`.
pub async fn groups(server: &Server, name: Option<&str>, json: bool) -> Result<(), CliError> {
    let mut out = Output::buffered();
    let mut table = Table::default();
    if let Some(name) = name {
        let info = server.group(name).await.map_err(|e| match e.code() {
            Some(atomsync_proto::ErrorCode::NotFound) => {
                CliError::NotFound(format!("{name}: no such group on this server"))
            }
            _ => e,
        })?;
        return show(&mut out, &mut table, &[info], json).and_then(|()| out.flush());
    }
    let mut after: Option<String> = None;
    loop {
        let page = server.groups(after.as_deref(), PAGE).await?;
        show(&mut out, &mut table, &page.groups, json)?;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if !json && table.width.is_none() {
        out.line(b"(no groups)")?;
    }
    out.flush()
}

/// Column widths, fixed by the first page so later pages line up.
#[derive(Default)]
struct Table {
    /// The name column's width, once the header is printed.
    width: Option<usize>,
}

fn show(
    out: &mut Output,
    table: &mut Table,
    groups: &[GroupInfo],
    json: bool,
) -> Result<(), CliError> {
    if json {
        for group in groups {
            out.line(&group.encode(Encoding::Json))?;
        }
        return Ok(());
    }
    if groups.is_empty() {
        return Ok(());
    }
    let width = match table.width {
        Some(width) => width,
        None => {
            let widest = groups.iter().map(|g| g.name.len()).max().unwrap_or(0);
            let width = widest.max("GROUP".len());
            table.width = Some(width);
            let header = format!(
                "{:<width$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>11}",
                "GROUP", "SEQ", "DOCUMENTS", "TOMBSTONES", "FLOOR", "SUBSCRIBERS"
            );
            out.line(header.as_bytes())?;
            width
        }
    };
    for g in groups {
        let row = format!(
            "{:<width$}  {:>12}  {:>12}  {:>12}  {:>12}  {:>11}",
            g.name, g.seq, g.documents, g.tombstones, g.floor, g.subscribers
        );
        out.line(row.as_bytes())?;
    }
    Ok(())
}

/// `scan GROUP [--prefix P] [--tombstones]`: documents in key order, one per line.
pub async fn scan(
    server: &Server,
    group: &str,
    prefix: &str,
    tombstones: bool,
) -> Result<(), CliError> {
    let mut out = Output::buffered();
    let mut after: Option<String> = None;
    loop {
        let page = server
            .docs(group, after.as_deref(), prefix, tombstones)
            .await
            .map_err(|e| match e.code() {
                Some(atomsync_proto::ErrorCode::NotFound) => {
                    CliError::NotFound(format!("{group}: no such group on this server"))
                }
                _ => e,
            })?;
        for doc in &page.docs {
            out.doc(doc)?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    out.flush()
}
