//! `pull` and `export`: a group's documents, paged from the server until the end.
//!
//! - `pull GROUP [--since N]` prints the group's changes after cursor N as the server
//!   sends them: one document per line, ascending by `seq`, tombstones included.
//! - `export GROUP` writes the group's documents as `{"key": K, "value": V}` lines, the
//!   input of `import`. A document changed while the export runs comes again later in the
//!   file, at its newer state (a later line wins); one deleted meanwhile is followed by
//!   `{"key": K, "deleted": true}`. Tombstones of documents not in the file are left out.
//!
//! Values are transcoded from the server's MessagePack to tagged JSON without loss: every
//! type of PROTOCOL.md section 2 reads back as itself (`import` does).

use std::collections::HashSet;

use atomsync_proto::wire::PullResponse;
use atomsync_proto::{Value, json};

use crate::error::CliError;
use crate::output::{self, Notes, Output};
use crate::progress;
use crate::server::Server;

/// Documents per pull page: the protocol's largest (the server also bounds a page's bytes).
const PAGE: u32 = 10_000;

/// Pages through a group from a cursor to the end, checking that the pages fit together.
struct Pager<'a> {
    server: &'a Server,
    group: &'a str,
    since: u64,
    /// Later pages of a pull that started from 0 (or was reset) say so (section 8).
    full: bool,
    epoch: Option<String>,
    done: bool,
    notes: Notes,
}

impl<'a> Pager<'a> {
    fn new(server: &'a Server, group: &'a str, since: u64, notes: Notes) -> Pager<'a> {
        Pager {
            server,
            group,
            since,
            full: false,
            epoch: None,
            done: false,
            notes,
        }
    }

    /// The next page, or `None` after the last.
    async fn next(&mut self) -> Result<Option<PullResponse>, CliError> {
        if self.done {
            return Ok(None);
        }
        let first = self.epoch.is_none();
        let page = self
            .server
            .pull(self.group, self.since, PAGE, self.full)
            .await?;
        match &self.epoch {
            None => self.epoch = Some(page.epoch.clone()),
            Some(epoch) if *epoch != page.epoch => {
                return Err(CliError::Protocol(format!(
                    "the server's database changed during the pull (epoch {epoch} became {}); run it again",
                    page.epoch
                )));
            }
            Some(_) => {}
        }
        if page.reset {
            if !first {
                return Err(CliError::Protocol(
                    "the group was compacted during the pull; run it again".into(),
                ));
            }
            self.notes.say(format!(
                "atomsync: cursor {} is below the group's compaction floor: this pull starts again from 0",
                self.since
            ));
        }
        if first && (self.since == 0 || page.reset) {
            self.full = true;
        }
        if page.more && page.seq <= self.since && !page.reset {
            return Err(CliError::Protocol(format!(
                "a pull page with more to come did not advance the cursor ({})",
                page.seq
            )));
        }
        self.since = page.seq;
        self.done = !page.more;
        Ok(Some(page))
    }

    /// The cursor after the pages read so far.
    fn cursor(&self) -> u64 {
        self.since
    }
}

/// `pull GROUP [--since N]`.
pub async fn pull(server: &Server, group: &str, since: u64, notes: Notes) -> Result<(), CliError> {
    let mut pager = Pager::new(server, group, since, notes);
    let mut out = Output::buffered();
    let mut count = 0u64;
    while let Some(page) = pager.next().await? {
        for doc in &page.changes {
            out.doc(doc)?;
        }
        count += page.changes.len() as u64;
    }
    out.flush()?;
    notes.say(format!(
        "atomsync: pulled {} of {group}; cursor {} (pass it as --since to continue)",
        output::count(count, "change"),
        pager.cursor()
    ));
    Ok(())
}

/// `export GROUP`.
pub async fn export(server: &Server, group: &str, notes: Notes) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let mut pager = Pager::new(server, group, 0, notes);
    let mut out = Output::buffered();
    let bar = progress::counter(&notes, "documents");
    // Keys already written: a later line for one of them is a change made during the export.
    let mut written: HashSet<String> = HashSet::new();
    let (mut again, mut deleted) = (0u64, 0u64);
    let mut line = Vec::new();
    while let Some(page) = pager.next().await? {
        for doc in page.changes {
            line.clear();
            line.extend_from_slice(b"{\"key\":");
            json::encode_into(&Value::Str(doc.key.clone()), &mut line);
            match &doc.value {
                Some(value) => {
                    line.extend_from_slice(b",\"value\":");
                    value.write_json(&mut line);
                    if !written.insert(doc.key) {
                        again += 1;
                    }
                }
                None if written.remove(&doc.key) => {
                    line.extend_from_slice(b",\"deleted\":true");
                    deleted += 1;
                }
                None => continue,
            }
            line.push(b'}');
            out.line(&line)?;
            bar.inc(1);
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    let mut summary = format!(
        "atomsync: exported {} of {group} up to seq {} in {:.1} s",
        output::count(written.len() as u64, "document"),
        pager.cursor(),
        started.elapsed().as_secs_f64()
    );
    if again + deleted > 0 {
        summary.push_str(&format!(
            "; {again} changed and {deleted} deleted during the export (later lines win)"
        ));
    }
    notes.say(summary);
    Ok(())
}
